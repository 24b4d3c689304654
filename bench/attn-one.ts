// One causal prefill attention call at the calibration benchmark's shape (batch 8, 32 heads, 8 KV heads,
// 2048 positions, head dim 64, bf16), timed by wall clock over 20 calls after a warm-up: the kernel the
// calibration forward spends most of its non-GEMM time in. Also a target for `ncu -k regex:attn_fwd_tc`.
// The second line times forward + backward (the training step's attention), gradients for q, k and v.
//   bash .gpu/run.sh node dist/bench/attn-one.js
import { performance } from 'node:perf_hooks';
import { getCudaBackend } from '../src/backend/cuda/index.js';
import { attention } from '../src/tensor/ops/fused.js';
import { mul, noGrad, randn, sum, tidy, type Tensor } from '../src/tensor/index.js';

const driver = getCudaBackend().driver;
const [B, H, KV, S, D] = [8, 32, 8, 2048, 64];
const reps = Number(process.env.ATTN_REPS ?? 20);
const fwdFlops = 4 * B * H * D * (S * (S + 1)) / 2;

/** Milliseconds per call of `run`, after one warm-up call. */
function timeIt(run: () => void): number {
  run();
  driver.synchronize();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) run();
  driver.synchronize();
  return (performance.now() - t0) / reps;
}

const r = (heads: number, seed: number): Tensor => noGrad(() => mul(randn([B, heads, S, D], seed, { device: 'cuda' }), 1).cast('bfloat16'));
const q = r(H, 1), k = r(KV, 2), v = r(KV, 3);
const opts = { scale: 1 / Math.sqrt(D), causal: true, past: 0, window: null, pastAt: null };

const fwd = timeIt(() => noGrad(() => tidy(() => void attention(q, k, v, opts))));
console.log(`attention ${B}x${H}x${S}x${D} causal bf16: ${fwd.toFixed(2)} ms, ${(fwdFlops / (fwd * 1e-3) / 1e12).toFixed(0)} TFLOP/s`);

// Backward does 2.5x the forward's matrix work (recomputed scores, dV, dP, dQ, dK).
const both = timeIt(() => tidy(() => {
  const leaves = [q, k, v].map((t) => t.detach().requireGrad());
  sum(attention(leaves[0]!, leaves[1]!, leaves[2]!, opts)).backward();
  for (const l of leaves) l.grad?.dispose();
}));
console.log(`attention forward + backward: ${both.toFixed(2)} ms, backward alone ~${(both - fwd).toFixed(2)} ms, ${(2.5 * fwdFlops / ((both - fwd) * 1e-3) / 1e12).toFixed(0)} TFLOP/s`);
