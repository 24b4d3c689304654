// Where a batch-1 decode step's time goes on CUDA (issue #3's decode target), on the Llama-3.2-1B-shaped
// checkpoint: (0) the 16-token prefill generate() starts with (wall time to the host logits row, and its
// kernels), (1) one step run eagerly with every kernel timed by events (the per-kernel device time),
// (2) the recorded step replayed back to back (GraphDecoder.greedySteps), per-step wall time, (3) generate()
// at two lengths, whose difference is the per-token cost without the fixed part (prefill, first eager step,
// recording). The weight bytes over the step time give the achieved stream rate. Run on the GPU machine:
//   bash .gpu/run.sh node dist/bench/decode-profile.js --model /tmp/llama1b
import { performance } from 'node:perf_hooks';
import { loadModel } from '../src/models/load.js';
import { generate } from '../src/runtime/generate.js';
import { GraphDecoder } from '../src/runtime/decode-graph.js';
import { getCudaBackend } from '../src/backend/cuda/index.js';
import { noGrad, tensor, tidy } from '../src/tensor/index.js';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const model = loadModel(arg('--model', '/tmp/llama1b'), { dtype: 'bfloat16', device: 'cuda' });
const driver = getCudaBackend().driver;
const weightBytes = model.parameters().reduce((s, p) => s + 2 * p.size, 0); // bf16; a tied head is the embedding, read once
const prompt = [1, 2, 3, 4, 5, 6, 7, 8];

const t00 = performance.now();
const stamp = (what: string): void => console.log(`[+${((performance.now() - t00) / 1000).toFixed(1)} s] ${what}`);

function wall(fn: () => void): number {
  driver.synchronize();
  const t0 = performance.now();
  fn();
  driver.synchronize();
  return performance.now() - t0;
}

// (1) one eager step, kernel by kernel
noGrad(() => {
  const cache = model.newCache(1, 64);
  tidy(() => void model.forward(tensor(prompt, [1, prompt.length], { dtype: 'int32', device: 'cuda' }), { cache, lastOnly: true }));
  tidy(() => void model.forward(tensor([9], [1, 1], { dtype: 'int32', device: 'cuda' }), { cache, lastOnly: true })); // compile
  driver.synchronize();
  driver.profileReport();
  driver.setProfiling(true);
  tidy(() => void model.forward(tensor([10], [1, 1], { dtype: 'int32', device: 'cuda' }), { cache, lastOnly: true }));
  driver.synchronize();
  driver.setProfiling(false);
  const rows = driver.profileReport();
  const total = rows.reduce((s, r) => s + r.ms, 0);
  console.log(`eager decode step: ${rows.reduce((s, r) => s + r.calls, 0)} kernels, ${(total * 1000).toFixed(0)} us of kernel time`);
  for (const r of rows) console.log(`  ${(r.ms * 1000).toFixed(1).padStart(8)} us ${String(r.calls).padStart(4)} calls  ${r.name}`);
  cache.dispose();
});

// (0) the prefill generate() starts with (16 tokens, the benchmark's prompt length): wall time to the logits
// row on the host, then its kernels' device time
noGrad(() => {
  const prompt16 = Array.from({ length: 16 }, (_, i) => 100 + i);
  const prefill = (): number => {
    const cache = model.newCache(1, 64);
    try {
      return wall(() => void tidy(() => model.forward(tensor(prompt16, [1, 16], { dtype: 'int32', device: 'cuda' }), { cache, lastOnly: true }).toFloat32Array()));
    } finally {
      cache.dispose();
    }
  };
  prefill();
  const t = [prefill(), prefill(), prefill(), prefill(), prefill()].sort((a, b) => a - b);
  console.log(`prefill of 16 tokens to the host logits row: median ${t[2].toFixed(2)} ms (min ${t[0].toFixed(2)}, max ${t[4].toFixed(2)})`);
  driver.profileReport();
  driver.setProfiling(true);
  prefill();
  driver.setProfiling(false);
  const rows = driver.profileReport();
  console.log(`prefill: ${rows.reduce((s, r) => s + r.calls, 0)} kernels, ${(rows.reduce((s, r) => s + r.ms, 0) * 1000).toFixed(0)} us of kernel time`);
  for (const r of rows) console.log(`  ${(r.ms * 1000).toFixed(1).padStart(8)} us ${String(r.calls).padStart(4)} calls  ${r.name}`);
});

// (3) generate() at two lengths
const times = (n: number): number => {
  const t: number[] = [];
  for (let i = 0; i < 3; i++) t.push(wall(() => void generate(model, prompt, { maxNewTokens: n })));
  return t.sort((a, b) => a - b)[1];
};
stamp('generate');
times(16);
stamp('generate 16 done');
const [a, b] = [times(64), times(512)];
console.log(`generate: 64 tokens ${a.toFixed(1)} ms, 512 tokens ${b.toFixed(1)} ms; per token ${((1000 * (b - a)) / 448).toFixed(1)} us; fixed ${(a - (64 * (b - a)) / 448).toFixed(1)} ms`);
// (2) replays of the recorded step, back to back
noGrad(() => {
  const cache = model.newCache(1, 2048);
  const g = new GraphDecoder(model, cache, true);
  try {
    stamp('graph: first steps');
    g.greedySteps(1, 1); // eager step
    stamp('graph: eager step done');
    g.greedySteps(2, 1); // recording + one replay
    stamp('graph: recorded');
    g.greedySteps(3, 6);
    stamp('graph: 6 replays');
    for (const n of [100, 400]) {
      const ms = wall(() => void g.greedySteps(1, n));
      console.log(`graph replay: ${n} steps in ${ms.toFixed(2)} ms = ${((1000 * ms) / n).toFixed(1)} us/step (${((weightBytes / ((ms / n) * 1e-3)) / 1e9).toFixed(0)} GB/s of weights)`);
    }
  } finally {
    g.dispose();
    cache.dispose();
  }
});

console.log(`weights ${(weightBytes / 1e9).toFixed(3)} GB`);
