// The pieces of bench/mopt_bench.ts that are about running rather than measuring: JSON types, the CUDA
// backend seen structurally (loaded with a dynamic import, so the bench compiles without it), and the clocks
// (host or CUDA events) with median-of-runs measurement under a time budget.

import { performance } from 'node:perf_hooks';
import { getBackend, registerBackend } from '../src/backend/registry.js';
import type { Backend } from '../src/backend/backend.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

// ---- the CUDA backend, structurally ----------------------------------------------------------------

export interface CudaDriverLike {
  eventCreate(): unknown;
  eventRecord(e: unknown): void;
  eventElapsedMs(start: unknown, end: unknown): number;
  synchronize(): void;
  eventDestroy?: (e: unknown) => void;
  memGetInfo?: () => { free: number; total: number };
  info?: { name?: string; computeCapability?: readonly number[]; smCount?: number };
}

export interface AllocatorLike {
  stats(): unknown;
  resetPeak?: () => void;
}

export interface CudaBackendLike {
  driver: CudaDriverLike;
  allocator?: AllocatorLike;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

export function hasMethods(v: unknown, names: readonly string[]): v is Record<string, unknown> {
  return isRecord(v) && names.every((n) => typeof v[n] === 'function');
}

export function asCudaBackend(v: unknown): CudaBackendLike | null {
  if (!isRecord(v) || !hasMethods(v.driver, ['eventCreate', 'eventRecord', 'eventElapsedMs', 'synchronize'])) return null;
  const alloc = v.allocator;
  if (alloc !== undefined && !hasMethods(alloc, ['stats'])) return null;
  return v as unknown as CudaBackendLike;
}

export function isBackend(v: unknown): v is Backend {
  return isRecord(v) && typeof v.name === 'string' && hasMethods(v, ['alloc', 'free', 'fromHost', 'toHost', 'matmul', 'copy']);
}

export function hasBackend(name: string): boolean {
  try {
    getBackend(name);
    return true;
  } catch {
    return false;
  }
}

export function message(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Imports the CUDA backend module, gets its backend object, and makes sure 'cuda' is registered. */
export async function loadCuda(): Promise<{ cuda: CudaBackendLike | null; error: string | null }> {
  const specs = process.env.MOPT_CUDA_MODULE ? [process.env.MOPT_CUDA_MODULE] : ['../src/backend/cuda/index.js'];
  const errors: string[] = [];
  for (const spec of specs) {
    let mod: unknown;
    try {
      mod = await import(spec);
    } catch (e) {
      errors.push(`import ${spec}: ${message(e)}`);
      continue;
    }
    if (!isRecord(mod) || typeof mod.getCudaBackend !== 'function') {
      errors.push(`${spec} has no getCudaBackend()`);
      continue;
    }
    let obj: unknown;
    try {
      obj = (mod.getCudaBackend as () => unknown)();
    } catch (e) {
      errors.push(`getCudaBackend(): ${message(e)}`);
      continue;
    }
    const cuda = asCudaBackend(obj);
    if (cuda === null) {
      errors.push(`getCudaBackend() returned an object without driver.eventCreate/eventRecord/eventElapsedMs/synchronize`);
      continue;
    }
    if (!hasBackend('cuda')) {
      if (isBackend(obj)) registerBackend('cuda', obj);
      else return { cuda, error: `${spec} loaded but device "cuda" is not registered and getCudaBackend() is not a Backend` };
    }
    return { cuda, error: null };
  }
  return { cuda: null, error: errors.join('; ') || 'no CUDA backend module' };
}

// ---- timing ----------------------------------------------------------------------------------------

export interface Clock {
  method: string;
  sync(): void;
  timeMs(fn: () => void): number;
}

export function hostClock(sync: () => void): Clock {
  return {
    method: 'host-clock',
    sync,
    timeMs(fn) {
      sync();
      const t0 = performance.now();
      fn();
      sync();
      return performance.now() - t0;
    },
  };
}

export function eventClock(d: CudaDriverLike): Clock {
  const start = d.eventCreate();
  const end = d.eventCreate();
  return {
    method: 'cuda-events',
    sync: () => d.synchronize(),
    timeMs(fn) {
      d.eventRecord(start);
      fn();
      d.eventRecord(end);
      return d.eventElapsedMs(start, end);
    },
  };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const round4 = (x: number): number => Math.round(x * 1e4) / 1e4;

export interface Measured {
  warmup: number;
  iters: number;
  times_ms: number[];
  median_ms: number;
  min_ms: number;
  max_ms: number;
  budget_s: number;
  truncated_by_budget: boolean;
}

/** Warm-up runs, then up to `iters` timed runs (at least one) while the time budget lasts. */
export function measure(clock: Clock, fn: () => void, warmup: number, iters: number, budgetS: number): Measured {
  const t0 = performance.now();
  let warm = 0;
  for (let i = 0; i < warmup; i++) {
    fn();
    clock.sync();
    warm++;
    if (performance.now() - t0 > (budgetS * 1e3) / 3) break;
  }
  const times: number[] = [];
  const t1 = performance.now();
  const want = Math.max(1, iters);
  for (let i = 0; i < want; i++) {
    times.push(clock.timeMs(fn));
    if (performance.now() - t1 > budgetS * 1e3) break;
  }
  return {
    warmup: warm,
    iters: times.length,
    times_ms: times.map(round4),
    median_ms: median(times),
    min_ms: Math.min(...times),
    max_ms: Math.max(...times),
    budget_s: budgetS,
    truncated_by_budget: times.length < want,
  };
}
