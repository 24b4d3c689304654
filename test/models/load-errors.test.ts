// Bad model directories give one clear UserError naming the file and the key or tensor.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, truncateSync, statSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/models/load.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import { UserError } from '../../src/util/errors.js';
import { STORIES_HF } from '../helpers/paths.js';

type Json = Record<string, unknown>;

function modelDir(mutateConfig?: (c: Json) => void, mutateTensors?: (m: Map<string, RawTensor>) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'mopt-load-'));
  const cfg = JSON.parse(readFileSync(join(STORIES_HF, 'config.json'), 'utf8')) as Json;
  mutateConfig?.(cfg);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  if (mutateTensors) {
    const f = SafetensorsFile.open(join(STORIES_HF, 'model.safetensors'));
    const m = new Map(f.names().map((n) => [n, f.read(n)] as [string, RawTensor]));
    f.close();
    mutateTensors(m);
    writeSafetensors(join(dir, 'model.safetensors'), m);
  } else {
    copyFileSync(join(STORIES_HF, 'model.safetensors'), join(dir, 'model.safetensors'));
  }
  return dir;
}

function expectUserError(dir: string, ...parts: string[]): void {
  try {
    assert.throws(() => loadModel(dir), (e: unknown) => {
      assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
      assert.ok(!e.message.includes('\n'), `message should be one line: ${e.message}`);
      for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" should mention ${p}`);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('unknown architecture names model_type and the supported ones', () => {
  expectUserError(modelDir((c) => (c.model_type = 'gpt2')), 'config.json', 'model_type', 'gpt2', 'llama');
});

test('unsupported architecture class is named', () => {
  expectUserError(modelDir((c) => (c.architectures = ['LlamaForSequenceClassification'])), 'architectures', 'LlamaForSequenceClassification');
});

test('missing required config key is named', () => {
  expectUserError(modelDir((c) => delete c.hidden_size), 'config.json', 'hidden_size', 'missing');
});

test('unsupported rope type is named', () => {
  expectUserError(modelDir((c) => (c.rope_parameters = { rope_type: 'dynamic', factor: 2, rope_theta: 10000 })), 'rope_type', 'dynamic');
});

test('unsupported activation is named', () => {
  expectUserError(modelDir((c) => (c.hidden_act = 'gelu')), 'hidden_act', 'gelu');
});

test('weights that do not fit config.json name the tensor and both shapes', () => {
  expectUserError(modelDir((c) => (c.intermediate_size = 128)), 'model.layers.0.mlp.gate_proj.weight', '[172, 64]', '[128, 64]');
});

test('a missing tensor is named', () => {
  expectUserError(modelDir(undefined, (m) => m.delete('model.layers.3.self_attn.k_proj.weight')), 'model.layers.3.self_attn.k_proj.weight');
});

test('NaN weights name the tensor', () => {
  expectUserError(
    modelDir(undefined, (m) => {
      const t = m.get('model.norm.weight')!;
      (t.data as Float32Array)[5] = NaN;
    }),
    'model.norm.weight',
    'NaN',
  );
});

test('a truncated safetensors file names the file', () => {
  const dir = modelDir();
  const f = join(dir, 'model.safetensors');
  truncateSync(f, statSync(f).size - 1000);
  expectUserError(dir, 'model.safetensors', 'truncated');
});

test('a corrupt safetensors header names the file', () => {
  const dir = modelDir();
  const f = join(dir, 'model.safetensors');
  const bytes = readFileSync(f);
  bytes.write('{{{{', 8, 'latin1');
  writeFileSync(f, bytes);
  expectUserError(dir, 'model.safetensors');
});

test('a directory without config.json says so', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopt-load-'));
  expectUserError(dir, 'config.json');
});
