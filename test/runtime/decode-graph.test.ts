// Decoding at a device-side position (what a recorded CUDA graph replays): the forward must equal the
// host-position forward, and GraphDecoder's steps (recorded and replayed on CUDA, eager elsewhere) must
// give the eager decode's logits at every step.

import assert from 'node:assert/strict';
import { parseDecoderConfig } from '../../src/models/config.js';
import { initModel, loadModel } from '../../src/models/load.js';
import type { DecoderLM } from '../../src/models/decoder.js';
import { GraphDecoder } from '../../src/runtime/decode-graph.js';
import { generate } from '../../src/runtime/generate.js';
import * as T from '../../src/tensor/index.js';
import { STORIES_HF, DATA_SKIP } from '../helpers/paths.js';
import { forEachBackend } from '../helpers/backends.js';
import { relErr } from '../helpers/rel-err.js';

function logits(model: DecoderLM, ids: number[], opts: Parameters<DecoderLM['forward']>[1]): Float32Array {
  return T.tidy(() => model.forward(T.tensor(ids, [1, ids.length], { dtype: 'int32', device: model.backend }), { ...opts, lastOnly: true }).toFloat32Array());
}

forEachBackend('a forward at a device-side position equals the host-position forward (GQA, sliding window)', ({ name }) => {
  const config = parseDecoderConfig(
    {
      model_type: 'mistral', vocab_size: 96, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, sliding_window: 6,
    },
    'test config',
  );
  const model = initModel(config, 11, { device: name });
  const prompt = [3, 14, 15, 92, 65, 35, 8, 9];
  T.noGrad(() => {
    const host = model.newCache(1, 32);
    const dev = model.newCache(1, 32);
    const pos = model.devicePosition(32);
    try {
      logits(model, prompt, { cache: host });
      logits(model, prompt, { cache: dev });
      // one token, then two at once (positions at, at + 1)
      for (const ids of [[7], [21, 40]]) {
        const want = logits(model, ids, { cache: host });
        model.backend.copy(T.tensor([dev.length], [1], { dtype: 'int32', device: model.backend }), pos.at);
        const got = logits(model, ids, { cache: dev, position: pos });
        dev.length += ids.length;
        assert.ok(relErr(got, want) < 1e-5, `${ids.length} token(s): differs by ${relErr(got, want)}`);
      }
      assert.throws(() => logits(model, [1], { position: pos }), /device-side position needs a KV cache/);
    } finally {
      pos.dispose();
      host.dispose();
      dev.dispose();
    }
  });
});

forEachBackend('GraphDecoder steps give the eager decode logits (stories260K, float32 and bfloat16)', ({ name }, t) => {
  if (DATA_SKIP) return t.skip(DATA_SKIP);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const model = loadModel(STORIES_HF, { device: name, dtype });
    T.noGrad(() => {
      const eager = model.newCache(1, 64);
      const graphed = model.newCache(1, 64);
      const dec = new GraphDecoder(model, graphed, false);
      try {
        const prompt = [1, 403, 411];
        let row = logits(model, prompt, { cache: eager });
        logits(model, prompt, { cache: graphed });
        for (let step = 0; step < 24; step++) {
          const token = row.indexOf(Math.max(...row));
          const got = dec.step(token);
          row = logits(model, [token], { cache: eager });
          assert.equal(got.kind, 'logits');
          if (got.kind !== 'logits') return;
          const e = relErr(got.row, row);
          assert.ok(e < (dtype === 'float32' ? 1e-5 : 2e-2), `${dtype} step ${step}: differs by ${e.toExponential(2)}`);
        }
        assert.equal(graphed.length, eager.length);
      } finally {
        dec.dispose();
        eager.dispose();
        graphed.dispose();
      }
    });
    for (const p of model.parameters()) p.dispose();
  }
});

forEachBackend('greedy steps fed back on the device give the step-by-step greedy tokens; generate() uses them', ({ name }, t) => {
  if (DATA_SKIP) return t.skip(DATA_SKIP);
  const model = loadModel(STORIES_HF, { device: name });
  T.noGrad(() => {
    const prompt = [1, 403, 411];
    // reference: one host round trip per token
    const eager = model.newCache(1, 64);
    const want: number[] = [];
    let row = logits(model, prompt, { cache: eager });
    for (let i = 0; i < 21; i++) {
      want.push(row.indexOf(Math.max(...row)));
      row = logits(model, [want[i]], { cache: eager });
    }
    eager.dispose();
    const cache = model.newCache(1, 64);
    const dec = new GraphDecoder(model, cache, true);
    try {
      logits(model, prompt, { cache });
      // chunks of 1, 4 and 15 steps (the first is eager, the second records, the rest replay)
      const got = [want[0], ...dec.greedySteps(want[0], 1), ...dec.greedySteps(want[1], 4)];
      got.push(...dec.greedySteps(got[got.length - 1], 15));
      assert.deepEqual(got, want);
      assert.equal(cache.length, prompt.length + 20);
      assert.throws(() => dec.greedySteps(1, 64), /KV cache full/);
    } finally {
      dec.dispose();
      cache.dispose();
    }
    assert.deepEqual(generate(model, prompt, { maxNewTokens: 21 }), want);
    assert.deepEqual(generate(model, prompt, { maxNewTokens: 21, eosTokenIds: [want[6]] }), want.slice(0, 7));
  });
  for (const p of model.parameters()) p.dispose();
});
