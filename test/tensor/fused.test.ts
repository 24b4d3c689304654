// Fused routines: gradients against float64 finite differences (CPU reference), and forward values
// against the same computation composed from primitive ops, on every backend under test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { rmsNorm, rope, ropeAppend, swiglu, attention, crossEntropyLoss, fp8Linear } from '../../src/tensor/ops/fused.js';
import { applyRope } from '../../src/models/rope.js';
import type { AttentionOptions } from '../../src/backend/backend.js';
import { Rng } from '../../src/tensor/random.js';
import { gradcheck, randomTensor } from '../helpers/gradcheck.js';
import { forEachBackend } from '../helpers/backends.js';

const rng = new Rng(99);
const r = (shape: number[], lo = -1, hi = 1): T.Tensor => randomTensor(shape, rng, lo, hi);

test('fused gradients match finite differences (float64, CPU)', () => {
  gradcheck('rmsNorm', (x, w) => rmsNorm(x, w, 1e-5), [r([3, 8]), r([8], 0.5, 1.5)]);
  const angles = r([5, 3], -3, 3);
  gradcheck('rope', (x) => rope(x, T.unary('cos', angles), T.unary('sin', angles)), [r([2, 2, 5, 6])]);
  gradcheck('swiglu', (g, u) => swiglu(g, u), [r([4, 6], -3, 3), r([4, 6])]);
  const o: AttentionOptions = { scale: 0.4, causal: true, past: 0, window: null };
  gradcheck('attention causal GQA', (q, k, v) => attention(q, k, v, o), [r([1, 4, 5, 3]), r([1, 2, 5, 3]), r([1, 2, 5, 3])]);
  gradcheck('attention window + past', (q, k, v) => attention(q, k, v, { ...o, past: 3, window: 3 }), [r([2, 2, 2, 4]), r([2, 1, 5, 4]), r([2, 1, 5, 4])]);
  const targets = T.tensor([2, -100, 0, 4], [4], { dtype: 'int32' });
  gradcheck('crossEntropy', (x) => crossEntropyLoss(x, targets), [r([4, 5], -2, 2)], { rtol: 1e-4, atol: 1e-6 });
});

/** LlamaRMSNorm from primitive ops: float32 statistics, cast back, times weight. */
function rmsNormComposed(x: T.Tensor, w: T.Tensor, eps: number): T.Tensor {
  const x32 = T.cast(x, 'float32');
  const variance = T.mean(T.mul(x32, x32), -1, true);
  return T.mul(w, T.cast(T.mul(x32, T.add(variance, eps).rsqrt()), x.dtype));
}

/** Mean cross-entropy from primitive ops (log-softmax + gather), ignoring -100 targets. */
function crossEntropyComposed(logits: T.Tensor, targets: T.Tensor): T.Tensor {
  const ids = targets.toArray();
  const keep: number[] = ids.map((i) => (i === -100 ? 0 : 1));
  const idx = T.tensor(ids.map((i) => (i === -100 ? 0 : i)), [ids.length, 1], { dtype: 'int32', device: logits.backend });
  const picked = T.gather(T.logSoftmax(logits, -1), 1, idx);
  const w = T.tensor(keep, [ids.length, 1], { device: logits.backend });
  return T.div(T.unary('neg', T.sum(T.mul(picked, w))), keep.reduce((a, b) => a + b));
}

function relErr(a: T.Tensor, b: T.Tensor): number {
  const x = a.toFloat64Array();
  const y = b.toFloat64Array();
  let num = 0;
  let den = 0;
  for (let i = 0; i < x.length; i++) {
    num += (x[i] - y[i]) ** 2;
    den += y[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

function rand(shape: number[], seed: number, device: T.CreateOptions['device'], scale = 1): T.Tensor {
  return T.mul(T.randn(shape, seed, { device }), scale);
}

forEachBackend('fused routines equal the composed primitive ops (float32)', ({ backend }) => {
  T.tidy(() => {
    const dev = backend;
    const x = rand([2, 3, 16], 1, dev);
    const w = T.add(rand([16], 2, dev, 0.1), 1);
    assert.ok(relErr(rmsNorm(x, w, 1e-5), rmsNormComposed(x, w, 1e-5)) < 1e-6, 'rmsNorm');
    const q = rand([2, 4, 5, 8], 3, dev);
    const ang = rand([5, 4], 4, dev);
    assert.ok(relErr(rope(q, T.unary('cos', ang), T.unary('sin', ang)), applyRope(q, T.unary('cos', ang), T.unary('sin', ang))) < 1e-6, 'rope');
    const g = rand([3, 7], 5, dev, 2);
    const u = rand([3, 7], 6, dev);
    assert.ok(relErr(swiglu(g, u), T.mul(g.silu(), u)) < 1e-6, 'swiglu');
    const k = rand([2, 2, 7, 8], 7, dev);
    const v = rand([2, 2, 7, 8], 8, dev);
    const o: AttentionOptions = { scale: 1 / Math.sqrt(8), causal: true, past: 2, window: 4 };
    // composed: repeat kv heads, mask, softmax
    const kr = T.reshape(T.expand(T.unsqueeze(k, 2), [2, 2, 2, 7, 8]), [2, 4, 7, 8]);
    const vr = T.reshape(T.expand(T.unsqueeze(v, 2), [2, 2, 2, 7, 8]), [2, 4, 7, 8]);
    const allowed: number[] = [];
    for (let s = 0; s < 5; s++) for (let t = 0; t < 7; t++) allowed.push(t <= s + 2 && s + 2 - t < 4 ? 1 : 0);
    const mask = T.tensor(allowed, [5, 7], { dtype: 'bool', device: dev });
    const scores = T.where(mask, T.mul(T.matmul(q, T.transpose(kr, 2, 3)), o.scale), -Infinity);
    const ref = T.matmul(T.softmax(scores, -1), vr);
    assert.ok(relErr(attention(q, k, v, o), ref) < 1e-6, 'attention');
    const logits = rand([6, 11], 9, dev, 3);
    const targets = T.tensor([1, 0, -100, 10, 5, 5], [6], { dtype: 'int32', device: dev });
    const a = crossEntropyLoss(logits, targets).item();
    const b = crossEntropyComposed(logits, targets).item();
    assert.ok(Math.abs(a - b) < 1e-6 * Math.abs(b), `crossEntropy ${a} vs ${b}`);
  });
});

// ---- 16-bit dtypes at LLM-like sizes, against the CPU reference --------------------------------------
// Every fused routine and its backward on bfloat16 and float16 inputs, compared with the CPU backend run
// on bit-identical copies of the same inputs (relative L2 error of each output and gradient). On a
// CPU-only run the backend under test is the CPU itself and the errors are 0.

import type { AdamWHyper, Backend, FusedKernels } from '../../src/backend/backend.js';
import type { StorageArray } from '../../src/tensor/dtype.js';

/** A CPU tensor holding the same bit patterns (a contiguous copy of views). */
function onCpu(t: T.Tensor): T.Tensor {
  return T.fromStorage(t.toStorageArray(), t.shape, t.dtype);
}

interface HostResult {
  shape: number[];
  dtype: T.DType;
  bits: StorageArray;
}

/**
 * f's output and the gradients of sum(f(xs) * w) with respect to each of `diff` (null where f does not
 * depend on it), as host bit patterns; w is a seeded uniform draw, the same on every backend.
 */
function resultsOf(f: (...xs: T.Tensor[]) => T.Tensor, diff: T.Tensor[], consts: T.Tensor[]): (HostResult | null)[] {
  const host = (t: T.Tensor): HostResult => ({ shape: [...t.shape], dtype: t.dtype, bits: t.toStorageArray() });
  return T.tidy(() => {
    const leaves = diff.map((x) => x.detach().requireGrad());
    const out = f(...leaves, ...consts);
    T.sum(T.mul(out, T.rand([...out.shape], 77, { dtype: out.dtype, device: out.backend }))).backward();
    const res = [host(out), ...leaves.map((l) => (l.grad === null ? null : host(l.grad)))];
    for (const l of leaves) l.grad?.dispose(); // gradients are kept past tidy() scopes
    return res;
  });
}

function assertCloseToCpu(name: string, tol: number, got: (HostResult | null)[], ref: (HostResult | null)[]): void {
  got.forEach((g, i) => {
    const r = ref[i];
    assert.equal(g === null, r === null, `${name}: result ${i} exists on one backend only`);
    if (g === null || r === null) return;
    const e = T.tidy(() => relErr(T.fromStorage(g.bits, g.shape, g.dtype), T.fromStorage(r.bits, r.shape, r.dtype)));
    const what = i === 0 ? 'output' : `gradient of input ${i - 1}`;
    assert.ok(e < tol, `${name}: ${what} differs from the CPU by ${e.toExponential(2)} (tolerance ${tol})`);
  });
}

/** Runs f (with gradients) on the backend under test and on CPU copies of its inputs; asserts they agree. */
function compareWithCpu(name: string, tol: number, f: (...xs: T.Tensor[]) => T.Tensor, diff: T.Tensor[], consts: T.Tensor[] = []): void {
  const got = resultsOf(f, diff, consts);
  const ref = resultsOf(f, diff.map(onCpu), consts.map(onCpu));
  assertCloseToCpu(name, tol, got, ref);
}

const TOLERANCE = { bfloat16: 2e-2, float16: 5e-3 } as const;

forEachBackend('fused routines on bfloat16 and float16 match the CPU reference at LLM-like sizes', ({ backend }) => {
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const tol = TOLERANCE[dtype];
    T.tidy(() => {
      const r = (shape: number[], seed: number, scale = 1): T.Tensor => T.mul(T.randn(shape, seed, { device: backend }), scale).cast(dtype);
      const check = (name: string, f: (...xs: T.Tensor[]) => T.Tensor, diff: T.Tensor[], consts: T.Tensor[] = []): void =>
        compareWithCpu(`${dtype} ${name}`, tol, f, diff, consts);

      check('rmsNorm', (x, w) => rmsNorm(x, w, 1e-5), [r([2, 32, 2048], 1), T.add(r([2048], 2, 0.1), 1)]);

      // RoPE on a transposed projection [B, H, S, D] (a strided view), tables in the activations' dtype
      const angles = T.mul(T.rand([128, 32], 3, { device: backend }), 100);
      const tables = [T.unary('cos', angles).cast(dtype), T.unary('sin', angles).cast(dtype)];
      check('rope', (x, cos, sin) => rope(x, cos, sin), [T.transpose(r([2, 128, 8, 64], 4), 1, 2)], tables);

      check('swiglu', (g, u) => swiglu(g, u), [r([64, 2048], 5, 2), r([64, 2048], 6)]);

      // prefill: [2, 8, 64, 64] with 2 KV heads, causal; q and v are transposed views as in the decoder
      const causal: AttentionOptions = { scale: 1 / 8, causal: true, past: 0, window: null };
      const q = T.transpose(r([2, 64, 8, 64], 7), 1, 2);
      const v = T.transpose(r([2, 64, 2, 64], 9), 1, 2);
      check('attention prefill', (a, b, c) => attention(a, b, c, causal), [q, r([2, 2, 64, 64], 8), v]);

      // chunked prefill with head dim 128: 100 queries after 50 cached keys, sliding window 80, K/V strided
      // views of a cache of capacity 160 (a partial last query tile and partially masked key tiles)
      const k128 = T.slice(r([1, 2, 160, 128], 18), 2, 0, 150);
      const v128 = T.slice(r([1, 2, 160, 128], 19), 2, 0, 150);
      const chunk: AttentionOptions = { scale: 1 / Math.sqrt(128), causal: true, past: 50, window: 80 };
      check('attention prefill d128, past + window', (a, b, c) => attention(a, b, c, chunk), [r([1, 4, 100, 128], 20), k128, v128]);

      // head dim 64 with several 128-query CTAs and a partial last one: 300 queries after 20 cached keys,
      // sliding window 100 (every mask branch of the tensor-core kernels, forward and backward)
      const k64 = r([1, 2, 320, 64], 21);
      const v64 = r([1, 2, 320, 64], 22);
      check('attention prefill d64, 300 queries, past + window', (a, b, c) => attention(a, b, c, { ...causal, past: 20, window: 100 }), [r([1, 4, 300, 64], 23), k64, v64]);

      // decode: one query per head against 300-long views of a KV cache of capacity 320 (strided), past = 299
      const kCache = T.slice(r([2, 2, 320, 64], 10), 2, 0, 300);
      const vCache = T.slice(r([2, 2, 320, 64], 11), 2, 0, 300);
      const q1 = r([2, 8, 1, 64], 12);
      check('attention decode', (a, b, c) => attention(a, b, c, { ...causal, past: 299 }), [q1, kCache, vCache]);
      check('attention decode, sliding window', (a, b, c) => attention(a, b, c, { ...causal, past: 299, window: 100 }), [q1, kCache, vCache]);

      // cross-entropy over a 32000-token vocabulary with ignored rows
      const ids = Array.from({ length: 32 }, (_, i) => (i % 9 === 4 ? -100 : (i * 7919) % 32000));
      const targets = T.tensor(ids, [32], { dtype: 'int32', device: backend });
      check('crossEntropy', (x, t) => crossEntropyLoss(x, t), [r([32, 32000], 13, 3)], [targets]);

      // one AdamW step in place on parameters and moments of this dtype
      const h: AdamWHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, bc1: 1 - 0.9 ** 3, bc2: 1 - 0.999 ** 3 };
      const state = [r([65536], 14), r([65536], 15, 0.01), r([65536], 16, 0.001), T.mul(T.rand([65536], 17, { device: backend }), 1e-4).cast(dtype)];
      const step = (ts: T.Tensor[]): (HostResult | null)[] =>
        T.tidy(() => {
          const [p, g, m, v2] = ts.map((t) => T.clone(t));
          (p.backend as Backend & FusedKernels).adamw(p, g, m, v2, h);
          return [p, m, v2].map((t) => ({ shape: [...t.shape], dtype: t.dtype, bits: t.toStorageArray() }));
        });
      assertCloseToCpu(`${dtype} adamw`, tol, step(state), step(state.map(onCpu)));
    });
  }
});

forEachBackend('FP8 linear (e4m3 operands, float32 scales) equals the dequantized float64 product', ({ backend }) => {
  T.tidy(() => {
    for (const [m, n, k] of [[5, 24, 32], [64, 48, 256]]) {
      const x = T.cast(T.mul(T.randn([m, k], 21, { device: backend }), 3), 'float8_e4m3fn');
      const w = T.cast(T.mul(T.randn([n, k], 22, { device: backend }), 3), 'float8_e4m3fn');
      const sx = T.tensor([0.5], [], { device: backend });
      const sw = T.tensor([0.125], [], { device: backend });
      const xs = x.toFloat32Array();
      const ws = w.toFloat32Array();
      const ref = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) acc += xs[i * k + p] * ws[j * k + p];
        ref[i * n + j] = acc * 0.5 * 0.125;
      }
      // float32 out: the CPU is exact to 1e-12; Hopper's FP8 tensor cores accumulate with reduced internal
      // precision (4.4e-5 measured on an H200), so the bound is 2e-4. bfloat16 out adds its own rounding.
      for (const [dtype, tol] of [['float32', 2e-4], ['bfloat16', 8e-3]] as const) {
        const got = fp8Linear(x, w, sx, sw, dtype).toFloat64Array();
        let num = 0;
        let den = 0;
        for (let i = 0; i < ref.length; i++) {
          num += (got[i] - ref[i]) ** 2;
          den += ref[i] ** 2;
        }
        assert.ok(Math.sqrt(num / den) < tol, `${m}x${n}x${k} ${dtype}: rel ${Math.sqrt(num / den)}`);
      }
    }
  });
});

// A recorded decode step reads `past` from the device (pastAt) and attends over the whole KV cache: it must
// equal the host-side past over the written keys, whatever the unwritten slots hold (here: huge values).
forEachBackend('attention with a device-side past (pastAt) equals the host-side past over the written keys', ({ backend }) => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    T.tidy(() => {
      const r = (shape: number[], seed: number): T.Tensor => T.randn(shape, seed, { device: backend }).cast(dtype);
      const cap = 320;
      const garbage = (seed: number, written: number): T.Tensor => {
        const full = r([2, 2, cap, 64], seed);
        T.scatterInto(full, 2, T.expand(T.reshape(T.arange(written, cap, 1, { device: backend }), [1, 1, cap - written, 1]), [2, 2, cap - written, 64]), T.full([2, 2, cap - written, 64], 3e4, { device: backend, dtype }));
        return full;
      };
      for (const [S, past, window] of [[1, 299, null], [1, 40, 16], [2, 150, null], [1, 0, null]] as const) {
        const k = garbage(31, past + S);
        const v = garbage(32, past + S);
        const q = r([2, 8, S, 64], 33);
        const o: AttentionOptions = { scale: 1 / 8, causal: true, past, window };
        const want = attention(q, T.slice(k, 2, 0, past + S), T.slice(v, 2, 0, past + S), o);
        const at = T.tensor([past], [1], { dtype: 'int32', device: backend });
        const got = attention(q, k, v, { ...o, past: 0, pastAt: at });
        const e = relErr(got.cast('float32'), want.cast('float32'));
        assert.ok(e < (dtype === 'float32' ? 1e-6 : 1e-2), `${dtype} S=${S} past=${past} window=${window}: differs by ${e.toExponential(2)}`);
      }
    });
  }
});

// The decode step's fused RoPE + cache write must equal rope then scatterInto bit for bit, on every backend
// (strided q/k/v as the decoder passes them, tables in another dtype).
forEachBackend('ropeAppend equals rope + scatterInto into the KV cache', ({ backend }) => {
  for (const [dtype, tables] of [['bfloat16', 'float32'], ['float32', 'float32'], ['float16', 'float16']] as const) {
    T.tidy(() => {
      const r = (shape: number[], seed: number): T.Tensor => T.randn(shape, seed, { device: backend }).cast(dtype);
      const [B, H, KV, S, D, cap] = [2, 4, 2, 2, 16, 9];
      const q = T.transpose(r([B, S, H, D], 1), 1, 2);
      const k = T.transpose(r([B, S, KV, D], 2), 1, 2);
      const v = T.transpose(r([B, S, KV, D], 3), 1, 2);
      const angles = T.mul(T.rand([S, D / 2], 4, { device: backend }), 50);
      const [cos, sin] = [T.unary('cos', angles).cast(tables), T.unary('sin', angles).cast(tables)];
      const positions = T.tensor([5, 6], [S], { dtype: 'int32', device: backend });
      const cache = (seed: number): T.Tensor => T.transpose(r([B, cap, KV, D], seed), 1, 2);
      const [kc1, vc1, kc2, vc2] = [cache(5), cache(6), cache(5), cache(6)].map((c) => T.contiguous(c));
      const qr = ropeAppend(q, k, v, cos, sin, positions, kc1, vc1);
      const index = T.expand(T.reshape(positions, [1, 1, S, 1]), [B, KV, S, D]);
      T.scatterInto(kc2, 2, index, rope(k, cos, sin));
      T.scatterInto(vc2, 2, index, v);
      assert.deepEqual(qr.toStorageArray(), rope(q, cos, sin).toStorageArray(), `${dtype}: q`);
      assert.deepEqual(kc1.toStorageArray(), kc2.toStorageArray(), `${dtype}: k cache`);
      assert.deepEqual(vc1.toStorageArray(), vc2.toStorageArray(), `${dtype}: v cache`);
    });
  }
});
