// Where the device time goes: one calibration forward (with the amax hook), one training step and a
// short greedy decode of the Llama-3.2-1B-shaped checkpoint, each followed by the per-kernel table that
// the CUDA driver collects when MOPT_CUDA_PROFILE=1, and by each run's host time (until the last launch
// is queued) against its wall time (until the device is done): host close to wall means the device
// waited on the host. Run on the GPU machine (the timings are only meaningful without the profiler):
//   MOPT_CUDA_PROFILE=1 bash .gpu/run.sh node dist/bench/profile.js --model /tmp/llama1b
//   bash .gpu/run.sh node dist/bench/profile.js --model /tmp/llama1b
import { loadModel } from '../src/models/load.js';
import { generate } from '../src/runtime/generate.js';
import { crossEntropy } from '../src/nn/functional.js';
import { AdamW } from '../src/nn/optim.js';
import { tidy, noGrad, keep, tensor, amax as absMax, maximum, type Tensor } from '../src/tensor/index.js';
import { getCudaBackend } from '../src/backend/cuda/index.js';
import { performance } from 'node:perf_hooks';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

function report(title: string): void {
  const d = getCudaBackend().driver;
  d.synchronize();
  const rows = d.profileReport();
  const total = rows.reduce((s, r) => s + r.ms, 0);
  console.log(`\n${title}: ${total.toFixed(1)} ms of kernels`);
  for (const r of rows.slice(0, 18)) {
    console.log(`  ${r.ms.toFixed(2).padStart(9)} ms ${((100 * r.ms) / total).toFixed(1).padStart(5)}% ${String(r.calls).padStart(6)} calls  ${r.name}`);
  }
}

/** Runs fn and prints its host time (launches queued) and wall time (device finished), in ms. */
function timed(label: string, fn: () => void): void {
  const d = getCudaBackend().driver;
  d.synchronize();
  const t0 = performance.now();
  fn();
  const host = performance.now() - t0;
  d.synchronize();
  console.log(`  ${label}: host ${host.toFixed(1)} ms, wall ${(performance.now() - t0).toFixed(1)} ms`);
}

function ids(batch: number, seq: number, vocab: number): Tensor {
  const v: number[] = [];
  for (let i = 0; i < batch * seq; i++) v.push((i * 2654435761) % vocab);
  return tensor(v, [batch, seq], { dtype: 'int32', device: 'cuda' });
}

const model = loadModel(arg('--model', '/tmp/llama1b'), { dtype: 'bfloat16', device: 'cuda' });
const vocab = model.config.vocabSize;
const amax = new Map<string, Tensor>();
model.linearHook = (name, x) => {
  const prev = amax.get(name);
  const next = keep(prev === undefined ? absMax(x) : maximum(prev, absMax(x)));
  prev?.dispose();
  amax.set(name, next);
  return undefined;
};
for (let i = 0; i < 2; i++) timed(`calibration run ${i}`, () => noGrad(() => tidy(() => void model.forward(ids(8, 2048, vocab)))));
report('calibration forward 8 x 2048 (2 runs)');
model.linearHook = null;

const params = model.parameters();
for (const p of params) p.requireGrad();
const opt = new AdamW(params, { lr: 1e-5 });
for (let i = 0; i < 2; i++) {
  timed(`training step ${i}`, () => {
    tidy(() => {
      const x = ids(4, 2048, vocab);
      const loss = crossEntropy(model.forward(x.slice(1, 0, 2047)), x.slice(1, 1, 2048));
      loss.backward();
    });
    opt.update();
    opt.zeroGrad();
  });
}
report('training step 4 x 2048 (2 steps)');
for (const p of params) p.requireGrad(false);

// kernels launched one by one (the profile can time each), then the recorded-graph decode (wall time only:
// replays are not split into kernels)
timed('greedy decode of 32 tokens, eager', () => void generate(model, [1, 2, 3, 4], { maxNewTokens: 32, graphs: false }));
report('greedy decode, 32 tokens, eager');
timed('greedy decode of 32 tokens, graph replays', () => void generate(model, [1, 2, 3, 4], { maxNewTokens: 32 }));
timed('greedy decode of 256 tokens, graph replays', () => void generate(model, [1, 2, 3, 4], { maxNewTokens: 256 }));
