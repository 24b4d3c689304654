// The backends a conformance test runs on: always the CPU reference; CUDA as well when
// MOPT_TEST_CUDA=1. Test bodies are written once against { name, backend } and registered per backend
// with forEachBackend, so a new backend reuses them unchanged and is held to the CPU's results.

import { test, type TestContext } from 'node:test';
import type { Backend } from '../../src/backend/backend.js';
import { getBackend } from '../../src/backend/registry.js';

export interface BackendUnderTest {
  name: string;
  backend: Backend;
}

const wantCuda = process.env.MOPT_TEST_CUDA === '1';
let cudaLoadError: string | null = null;

// The CUDA backend registers itself when its module is loaded. Unless something in src/ already imported
// it, load it here (MOPT_CUDA_MODULE overrides the module path, relative to this compiled file).
if (wantCuda && !has('cuda')) {
  const candidates = process.env.MOPT_CUDA_MODULE
    ? [process.env.MOPT_CUDA_MODULE]
    : ['../../src/backend/cuda/index.js', '../../src/backend/cuda/cuda-backend.js'];
  for (const spec of candidates) {
    try {
      await import(spec);
      if (has('cuda')) break;
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      // a missing module is expected before the backend exists; anything else is worth reporting
      if (code !== 'ERR_MODULE_NOT_FOUND') cudaLoadError = `${spec}: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
}

function has(name: string): boolean {
  try {
    getBackend(name);
    return true;
  } catch {
    return false;
  }
}

/** Every requested backend: null where it could not be obtained (with why). */
function requested(): { name: string; backend: Backend | null; why: string }[] {
  const out: { name: string; backend: Backend | null; why: string }[] = [{ name: 'cpu', backend: getBackend('cpu'), why: '' }];
  if (wantCuda) {
    let backend: Backend | null = null;
    let why = '';
    try {
      backend = getBackend('cuda');
    } catch (e) {
      why = cudaLoadError ?? (e instanceof Error ? e.message : String(e));
    }
    out.push({ name: 'cuda', backend, why });
  }
  return out;
}

let noted = false;
function noteMissing(all: { name: string; backend: Backend | null; why: string }[]): void {
  for (const r of all) {
    if (r.backend === null && !noted) {
      noted = true;
      console.log(`# note: MOPT_TEST_CUDA=1 but backend "${r.name}" is not available (${r.why}); testing cpu only`);
    }
  }
}

/** The backends to test: cpu always, cuda when MOPT_TEST_CUDA=1 and it is available. */
export function backendsUnderTest(): BackendUnderTest[] {
  const all = requested();
  noteMissing(all);
  return all.flatMap((r) => (r.backend === null ? [] : [{ name: r.name, backend: r.backend }]));
}

/**
 * Registers one node:test test per requested backend, named `[name] title`. A requested backend that
 * is not available is reported as a skipped test rather than a failure.
 */
export function forEachBackend(title: string, fn: (b: BackendUnderTest, t: TestContext) => void | Promise<void>): void {
  const all = requested();
  noteMissing(all);
  for (const r of all) {
    const backend = r.backend;
    test(`[${r.name}] ${title}`, async (t) => {
      if (backend === null) {
        t.skip(`backend ${r.name} is not available: ${r.why}`);
        return;
      }
      await fn({ name: r.name, backend }, t);
    });
  }
}

/** The device allocator's bytes in use, for backends that have one (CUDA); null elsewhere. */
export function allocatedBytes(b: Backend): number | null {
  const a = (b as { allocator?: { stats?: () => { allocatedBytes: number } } }).allocator;
  return typeof a?.stats === 'function' ? a.stats().allocatedBytes : null;
}

/** A two-layer Llama config.json small enough for any backend (GQA: 4 query heads, 2 KV heads); spread and override. */
export const TINY_LLAMA = {
  model_type: 'llama', vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2,
} as const;
