// mopt train's loop: a run killed after step 6 (checkpoints every 4 steps) and resumed from its last
// checkpoint reaches exactly the loss curve of an uninterrupted run (CPU arithmetic is deterministic); the
// checkpoints are loadable models; data packing and the seeded batch order behave as documented.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDecoderConfig } from '../../src/models/config.js';
import { initModel, loadModel } from '../../src/models/load.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { packDocuments, BatchSampler } from '../../src/train/data.js';
import { latestCheckpoint } from '../../src/train/checkpoint.js';
import { train, type TrainOptions } from '../../src/train/trainer.js';
import { DATA_SKIP, SHARED_DATA, STORIES_HF } from '../helpers/paths.js';

const RAW = {
  model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 512, hidden_size: 32, intermediate_size: 64,
  num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-5,
  tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2,
};
const OPTS: TrainOptions = { steps: 12, batch: 2, accum: 2, lr: 5e-3, minLr: 5e-4, warmup: 3, weightDecay: 0.01, clip: 1, evalEvery: 4, saveEvery: 4, seed: 7, masterWeights: false };

test('BatchSampler: every row once per epoch, the same order for the same seed and step', () => {
  const s = new BatchSampler(10, 3);
  const epoch = [...Array(5).keys()].flatMap((step) => s.rows(step, 0, 1, 2));
  assert.deepEqual([...epoch].sort((a, b) => a - b), [...Array(10).keys()]);
  assert.deepEqual(new BatchSampler(10, 3).rows(7, 1, 2, 2), s.rows(7, 1, 2, 2));
  assert.notDeepEqual(new BatchSampler(10, 4).rows(0, 0, 1, 10), s.rows(0, 0, 1, 10));
});

test('a training run killed mid-way and resumed from its checkpoint reproduces the uninterrupted loss curve', { skip: DATA_SKIP }, () => {
  const tok = Tokenizer.fromModelDir(STORIES_HF);
  const text = readFileSync(join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt'), 'utf8').slice(0, 12_000);
  const data = packDocuments(tok, text.split('\n\n'), 32, 0.1, 2, 'test text');
  assert.ok(data.train.every((r) => r.length === 33) && data.val.length >= 1);
  const config = parseDecoderConfig(RAW, 'test config');
  const dir = mkdtempSync(join(tmpdir(), 'mopt-train-'));
  try {
    const full = train(initModel(config, 5), RAW, STORIES_HF, data, join(dir, 'a'), OPTS, null);
    assert.equal(full.train.length, 12);
    assert.ok(full.train[11]!.loss < full.train[0]!.loss - 0.5, `loss ${full.train[0]!.loss} -> ${full.train[11]!.loss}`);
    // the interrupted run: 6 steps, last checkpoint at step 4
    train(initModel(config, 5), RAW, STORIES_HF, data, join(dir, 'b'), OPTS, null, { stopAfter: 6 });
    const ckpt = latestCheckpoint(join(dir, 'b', 'checkpoints'));
    assert.equal(ckpt, join(dir, 'b', 'checkpoints', 'checkpoint-4'));
    const resumed = train(loadModel(ckpt!), RAW, STORIES_HF, data, join(dir, 'b'), OPTS, ckpt);
    assert.deepEqual(resumed.train.map((p) => p.loss), full.train.map((p) => p.loss));
    assert.deepEqual(resumed.val, full.val);
    // checkpoints are Hugging Face model directories with the tokenizer; only the newest two are kept
    const last = latestCheckpoint(join(dir, 'b', 'checkpoints'))!;
    assert.ok(['config.json', 'model.safetensors', 'tokenizer.json', 'optimizer.safetensors', 'trainer_state.json'].every((f) => existsSync(join(last, f))));
    assert.ok(!existsSync(join(dir, 'b', 'checkpoints', 'checkpoint-4')));
    // a fresh run into a directory with checkpoints would mix two runs: refused
    assert.throws(() => train(initModel(config, 5), RAW, STORIES_HF, data, join(dir, 'b'), OPTS, null), /holds checkpoints of an earlier run; pass --resume/);
    // resuming with other batch settings is refused
    assert.throws(() => train(loadModel(last), RAW, STORIES_HF, data, join(dir, 'c'), { ...OPTS, batch: 3 }, last), /batch differ/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
