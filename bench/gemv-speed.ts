// The decode step's GEMV shapes (Llama-3.2-1B: hidden 2048, intermediate 8192, vocab 128256), each launched
// `reps` times back to back inside one recorded CUDA graph (as in a decode step, without the other kernels),
// timed by wall clock around replays: microseconds per launch and the weight stream rate, next to a
// device-to-device copy of the same bytes. Run on the GPU machine:
//   bash .gpu/run.sh node dist/bench/gemv-speed.js
import { performance } from 'node:perf_hooks';
import { getCudaBackend } from '../src/backend/cuda/index.js';
import { normLinears, normLinearSwiglu, linearResidual, linears } from '../src/nn/functional.js';
import { keep, mul, noGrad, randn, tidy, type Tensor } from '../src/tensor/index.js';

const backend = getCudaBackend();
const driver = backend.driver;
const reps = 50;
const r = (shape: number[], seed: number): Tensor => keep(mul(randn(shape, seed, { device: 'cuda' }), 0.02).cast('bfloat16'));

function timeGraph(label: string, bytes: number, body: () => void): void {
  const g = backend.captureGraph(() => tidy(() => {
    for (let i = 0; i < reps; i++) body();
  }));
  for (let i = 0; i < 3; i++) g.launch();
  driver.synchronize();
  const ts: number[] = [];
  for (let k = 0; k < 5; k++) {
    const t0 = performance.now();
    g.launch();
    driver.synchronize();
    ts.push((performance.now() - t0) / reps);
  }
  g.dispose();
  const ms = ts.sort((a, b) => a - b)[2];
  console.log(`${label.padEnd(44)} ${(ms * 1000).toFixed(2).padStart(8)} us  ${((bytes / (ms * 1e-3)) / 1e9).toFixed(0).padStart(5)} GB/s  (${(bytes / 1e6).toFixed(1)} MB)`);
}

noGrad(() => {
  const H = 2048, I = 8192, V = 128256, KV = 512;
  const x = r([1, 1, H], 1), xi = r([1, 1, I], 2), nw = r([H], 3);
  const wq = r([H, H], 4), wk = r([KV, H], 5), wv = r([KV, H], 6), wo = r([H, H], 7);
  const wg = r([I, H], 8), wu = r([I, H], 9), wd = r([H, I], 10), head = r([V, H], 11);
  // warm up (compiles the kernels outside the recording)
  tidy(() => {
    normLinears(x, nw, 1e-5, [wq, wk, wv]);
    linears(x, [wq, wk, wv]);
    linearResidual(x, wo, x);
    normLinearSwiglu(x, nw, 1e-5, wg, wu);
    linearResidual(xi, wd, x);
    normLinears(x, nw, 1e-5, [head]);
    backend.copy(wd, wd.clone());
  });
  driver.synchronize();
  const b2 = 2;
  timeGraph('q/k/v 3072x2048 (norm folded)', b2 * 3072 * H, () => void normLinears(x, nw, 1e-5, [wq, wk, wv]));
  timeGraph('q/k/v 3072x2048 (plain)', b2 * 3072 * H, () => void linears(x, [wq, wk, wv]));
  timeGraph('o_proj 2048x2048 + residual', b2 * H * H, () => void linearResidual(x, wo, x));
  timeGraph('gate/up 2x8192x2048 swiglu (norm folded)', b2 * 2 * I * H, () => void normLinearSwiglu(x, nw, 1e-5, wg, wu));
  timeGraph('down 2048x8192 + residual', b2 * H * I, () => void linearResidual(xi, wd, x));
  timeGraph('lm_head 128256x2048 (norm folded)', b2 * V * H, () => void normLinears(x, nw, 1e-5, [head]));
  const dst = keep(wd.clone());
  timeGraph('copy 33.5 MB (read + write counted once)', b2 * H * I, () => backend.copy(wd, dst));
  const layer = b2 * (3072 * H + H * H + 2 * I * H + H * I);
  timeGraph('one layer: qkv, o, gate/up, down', layer, () => {
    normLinears(x, nw, 1e-5, [wq, wk, wv]);
    const h = linearResidual(x, wo, x);
    const a = normLinearSwiglu(h, nw, 1e-5, wg, wu);
    linearResidual(a, wd, h);
  });
});
