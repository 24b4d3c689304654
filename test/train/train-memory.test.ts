// 100 steps of mopt train's loop (forward, backward over two micro-batches, clipping, AdamW, a validation pass
// and a checkpoint) must not grow device memory: from the first step on, the live storage count and, on CUDA,
// the caching allocator's allocated bytes stay where they are, and once train() returns everything it made
// (gradients, AdamW's moments, float32 master weights) is freed. bfloat16 with master weights is the mixed
// precision path; float32 the plain one.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDecoderConfig } from '../../src/models/config.js';
import { initModel } from '../../src/models/load.js';
import { train, type TrainOptions } from '../../src/train/trainer.js';
import { TINY_LLAMA, allocatedBytes, forEachBackend } from '../helpers/backends.js';

const STEPS = 100;
const OPTS: TrainOptions = {
  steps: STEPS, batch: 2, accum: 2, lr: 3e-3, minLr: 3e-4, warmup: 5, weightDecay: 0.01, clip: 1,
  evalEvery: 25, saveEvery: 1000, seed: 3, masterWeights: true,
};

// rows of 17 tokens that follow a rule (id i+1 = (3 id_i + row) mod 64), so the loss has something to learn
const rows = (n: number, from: number): number[][] =>
  Array.from({ length: n }, (_, r) => {
    const row = [(r + from) % 64];
    while (row.length < 17) row.push((3 * row[row.length - 1]! + r + from) % 64);
    return row;
  });

forEachBackend(`no memory growth over ${STEPS} training steps; train() frees its gradients and optimizer state`, ({ name, backend }) => {
  const config = parseDecoderConfig(TINY_LLAMA, 'test config');
  const data = { train: rows(8, 0), val: rows(2, 8), tokens: 10 * 17 };
  for (const dtype of ['bfloat16', 'float32'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'mopt-train-memory-'));
    try {
      const model = initModel(config, 5, { device: name, dtype });
      const before = backend.liveStorages();
      const bytesBefore = allocatedBytes(backend);
      const live: number[] = [];
      const bytes: (number | null)[] = [];
      const state = train(model, { ...TINY_LLAMA }, null, data, dir, OPTS, null, {
        onStep: () => {
          live.push(backend.liveStorages());
          bytes.push(allocatedBytes(backend));
        },
      });
      assert.equal(state.step, STEPS);
      assert.equal(live.length, STEPS);
      assert.equal(Math.max(...live), Math.min(...live), `${dtype}: live storages changed between steps (${Math.min(...live)}..${Math.max(...live)})`);
      assert.ok(bytes.every((b) => b === bytes[0]), `${dtype}: allocated device bytes changed between steps`);
      const losses = state.train.map((p) => p.loss);
      assert.ok(losses[STEPS - 1]! < losses[0]! * 0.8, `${dtype}: loss ${losses[0]} -> ${losses[STEPS - 1]} should drop`);
      assert.equal(backend.liveStorages(), before, `${dtype}: train() left storages behind`);
      assert.equal(allocatedBytes(backend), bytesBefore, `${dtype}: train() left device memory allocated`);
      for (const p of model.parameters()) p.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});
