// The whole-step decode kernel (backend.ts FusedDecode, CUDA decode_step.cu) against the multi-kernel decode
// step it replaces (GraphDecoder with fused: false, itself checked against the CPU reference in
// decode-graph.test.ts): the same greedy tokens on the trained bundled model, logits within bf16 rounding on
// random models whose shapes cover the kernel's cases (head dims 32 / 64 / 128, 1-4 query heads per KV head,
// tied and untied LM heads, keys spread over many attention splits), and the KV cache it writes equal to the
// one the multi-kernel step writes. On the CPU there is no such kernel: GraphDecoder must not find one.

import assert from 'node:assert/strict';
import { parseDecoderConfig } from '../../src/models/config.js';
import { initModel, loadModel } from '../../src/models/load.js';
import { bundledModelDir } from '../../src/models/bundled.js';
import type { DecoderLM } from '../../src/models/decoder.js';
import { GraphDecoder } from '../../src/runtime/decode-graph.js';
import { fusedDecodeStep } from '../../src/runtime/decode-fused.js';
import * as T from '../../src/tensor/index.js';
import { forEachBackend } from '../helpers/backends.js';
import { relErr } from '../helpers/rel-err.js';

function prefill(model: DecoderLM, ids: readonly number[], cache: ReturnType<DecoderLM['newCache']>): void {
  T.tidy(() => void model.forward(T.tensor(ids, [1, ids.length], { dtype: 'int32', device: model.backend }), { cache, lastOnly: true }));
}

/** Whether the fused kernel takes this model (a throwaway cache and buffers). */
function fusable(model: DecoderLM): boolean {
  const cache = model.newCache(1, 8);
  const pos = model.devicePosition(8);
  const b = model.backend;
  const ids = T.keep(T.zeros([1, 1], { dtype: 'int32', device: b }));
  const next = T.keep(T.zeros([1], { dtype: 'int32', device: b }));
  try {
    const k = fusedDecodeStep(model, cache, { pos, ids, next, produced: null, logits: null });
    k?.dispose();
    return k !== null;
  } finally {
    ids.dispose();
    next.dispose();
    pos.dispose();
    cache.dispose();
  }
}

forEachBackend('the whole-step decode kernel gives the multi-kernel greedy tokens (bundled mopt-tiny, bf16)', ({ name }) => {
  const model = loadModel(bundledModelDir(), { device: name, dtype: 'bfloat16' });
  try {
    if (name === 'cpu') {
      assert.equal(fusable(model), false);
      return;
    }
    assert.equal(fusable(model), true, 'mopt-tiny (head dim 32, 3 query heads per KV head) should run fused');
    const prompt = [0, 57, 201, 1033, 88, 9, 412, 77];
    const run = (fused: boolean): { tokens: number[]; k: Float32Array } =>
      T.noGrad(() => {
        const cache = model.newCache(1, 96);
        const dec = new GraphDecoder(model, cache, true, { fused });
        try {
          const first = T.tidy(() => {
            const row = model.forward(T.tensor(prompt, [1, prompt.length], { dtype: 'int32', device: model.backend }), { cache, lastOnly: true });
            return T.argmax(T.reshape(row, [row.size]), 0).toArray()[0];
          });
          const tokens = [first, ...dec.greedySteps(first, 7)];
          tokens.push(...dec.greedySteps(tokens.at(-1)!, 40));
          assert.equal(cache.length, prompt.length + 47);
          return { tokens, k: T.tidy(() => cache.buffers(5)[0].cast('float32').toFloat32Array()) };
        } finally {
          dec.dispose();
          cache.dispose();
        }
      });
    const want = run(false);
    const got = run(true);
    assert.deepEqual(got.tokens, want.tokens);
    assert.ok(relErr(got.k, want.k) < 1e-2, `layer 5 keys differ by ${relErr(got.k, want.k)}`);
  } finally {
    for (const p of model.parameters()) p.dispose();
  }
});

const SHAPES = [
  { what: 'head dim 64, 4 query heads per KV head, untied', hidden: 256, heads: 8, kv: 2, headDim: 64, tie: false },
  { what: 'head dim 128, 2 query heads per KV head, tied', hidden: 256, heads: 4, kv: 2, headDim: 128, tie: true },
  { what: 'head dim 32, multi-head (no grouping)', hidden: 128, heads: 4, kv: 4, headDim: 32, tie: true },
  // each CTA's weight stream runs through the kernel's shared-memory ring several times per step
  { what: 'wider, 4 layers, 8K vocab', hidden: 512, heads: 8, kv: 2, headDim: 64, tie: false, inter: 2048, vocab: 8192, layers: 4 },
  // a short context and an intermediate size wide enough for the kernel's register attention path (attention_single)
  { what: 'short context, wide MLP', hidden: 256, heads: 8, kv: 2, headDim: 64, tie: true, inter: 8192, prompt: 40 },
  // past the register path's 240 keys with shared memory for it: the split path takes over mid-generation
  { what: 'long context, wide MLP', hidden: 256, heads: 8, kv: 2, headDim: 64, tie: true, inter: 8192, prompt: 300 },
  // the same path at head dim 128 (two words per lane, 8 keys per warp)
  { what: 'short context, wide MLP, head dim 128', hidden: 256, heads: 4, kv: 2, headDim: 128, tie: false, inter: 8192, prompt: 40 },
  // one query head per KV head, 8 KV heads: a grid of 132 CTAs is not a multiple of the KV heads
  { what: 'short context, 8 KV heads', hidden: 512, heads: 8, kv: 8, headDim: 64, tie: true, inter: 2048, prompt: 40 },
  // the kernel's float16 build, on both attention paths
  { what: 'float16, short context', hidden: 256, heads: 8, kv: 2, headDim: 64, tie: true, inter: 2048, prompt: 40, dtype: 'float16' as const },
  { what: 'float16, long context', hidden: 256, heads: 8, kv: 2, headDim: 64, tie: false, dtype: 'float16' as const },
];

forEachBackend('whole-step decode logits equal the multi-kernel step within 16-bit rounding and repeat bit for bit (random models, bf16 and f16)', ({ name }) => {
  for (const s of SHAPES) {
    const config = parseDecoderConfig(
      {
        model_type: 'llama', vocab_size: s.vocab ?? 1000, hidden_size: s.hidden, intermediate_size: s.inter ?? 512, num_hidden_layers: s.layers ?? 2,
        num_attention_heads: s.heads, num_key_value_heads: s.kv, head_dim: s.headDim, max_position_embeddings: 512,
        tie_word_embeddings: s.tie, rope_theta: 10000,
      },
      'test config',
    );
    const model = initModel(config, 5, { device: name, dtype: s.dtype ?? 'bfloat16' });
    try {
      if (name === 'cpu') {
        assert.equal(fusable(model), false);
        continue;
      }
      assert.equal(fusable(model), true, s.what);
      // 300 prompt tokens: every attention split of the kernel holds several keys
      const prompt = Array.from({ length: s.prompt ?? 300 }, (_, i) => (i * 37 + 11) % 1000);
      const rows = (fused: boolean): Float32Array[] =>
        T.noGrad(() => {
          const cache = model.newCache(1, 340);
          const dec = new GraphDecoder(model, cache, false, { fused });
          try {
            prefill(model, prompt, cache);
            const out: Float32Array[] = [];
            let token = 5;
            for (let i = 0; i < 12; i++) {
              const r = dec.step(token);
              assert.equal(r.kind, 'logits');
              if (r.kind !== 'logits') break;
              out.push(r.row);
              token = (token * 7 + 3) % 1000;
            }
            return out;
          } finally {
            dec.dispose();
            cache.dispose();
          }
        });
      const want = rows(false);
      const got = rows(true);
      got.forEach((g, i) => {
        const e = relErr(g, want[i]);
        assert.ok(e < 2e-2, `${s.what}: step ${i} differs by ${e.toExponential(2)}`);
      });
      // the kernel sums in a fixed order (no float atomics): a second run gives the same bits
      const again = rows(true);
      again.forEach((g, i) => assert.ok(g.every((v, j) => Object.is(v, got[i][j])), `${s.what}: step ${i} is not reproducible`));
    } finally {
      for (const p of model.parameters()) p.dispose();
    }
  }
});
