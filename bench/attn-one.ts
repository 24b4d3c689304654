// One causal prefill attention call at the calibration benchmark's shape (batch 8, 32 heads, 8 KV heads,
// 2048 positions, head dim 64, bf16), timed by wall clock over 20 calls after a warm-up: the kernel the
// calibration forward spends most of its non-GEMM time in. Also a target for `ncu -k regex:attn_fwd_tc`.
//   bash .gpu/run.sh node dist/bench/attn-one.js
import { performance } from 'node:perf_hooks';
import { getCudaBackend } from '../src/backend/cuda/index.js';
import { attention } from '../src/tensor/ops/fused.js';
import { mul, noGrad, randn, tidy } from '../src/tensor/index.js';

const driver = getCudaBackend().driver;
const [B, H, KV, S, D] = [8, 32, 8, 2048, 64];
noGrad(() => tidy(() => {
  const r = (heads: number, seed: number) => mul(randn([B, heads, S, D], seed, { device: 'cuda' }), 1).cast('bfloat16');
  const q = r(H, 1), k = r(KV, 2), v = r(KV, 3);
  const run = (): void => tidy(() => void attention(q, k, v, { scale: 1 / Math.sqrt(D), causal: true, past: 0, window: null, pastAt: null }));
  run();
  driver.synchronize();
  const n = Number(process.env.ATTN_REPS ?? 20);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) run();
  driver.synchronize();
  const ms = (performance.now() - t0) / n;
  const flops = 4 * B * H * D * (S * (S + 1)) / 2;
  console.log(`attention ${B}x${H}x${S}x${D} causal bf16: ${ms.toFixed(2)} ms, ${(flops / (ms * 1e-3) / 1e12).toFixed(0)} TFLOP/s`);
}));
