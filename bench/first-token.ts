// Where a greedy generate()'s first token goes on CUDA, on the Llama-3.2-1B-shaped checkpoint with a 16-token
// prompt: the first token of generate() at 256 and at 1 new token (their difference: the per-call setup of the
// step decoder), the prefill forward alone to the host logits row, and a host argmax over that row. Each
// median of 8 calls after 2 warm-up calls; with --session, also the first token of generate() calls sharing a
// DecodeSession (the prefill recorded on the second call at this length, replayed after). Run on the GPU machine:
//   bash .gpu/run.sh node dist/bench/first-token.js --model /tmp/llama1b [--session]
// A CPU profile of the same calls: node --cpu-prof --cpu-prof-dir=$OUT/prof dist/bench/first-token.js ...
import { performance } from 'node:perf_hooks';
import { loadModel } from '../src/models/load.js';
import { generate } from '../src/runtime/generate.js';
import { DecodeSession } from '../src/runtime/decode-session.js';
import { argmaxRow } from '../src/runtime/sampling.js';
import { getCudaBackend } from '../src/backend/cuda/index.js';
import { noGrad, tensor, tidy } from '../src/tensor/index.js';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const model = loadModel(arg('--model', '/tmp/llama1b'), { dtype: 'bfloat16', device: 'cuda' });
const driver = getCudaBackend().driver;
const prompt = Array.from({ length: 16 }, (_, i) => (i * 7919 + 13) % model.config.vocabSize);
const med = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1];
const show = (what: string, a: number[]): void => console.log(`${what}: median ${med(a).toFixed(2)} ms [${a.map((x) => x.toFixed(1)).join(' ')}]`);

/** ms from the call's start to its first token */
function firstToken(n: number, session?: DecodeSession): number {
  driver.synchronize();
  const t0 = performance.now();
  let first = 0;
  generate(model, prompt, { maxNewTokens: n, greedy: true, session, onToken: () => void (first ||= performance.now() - t0) });
  driver.synchronize();
  return first;
}

for (let i = 0; i < 2; i++) firstToken(256);
const long: number[] = [], one: number[] = [], forward: number[] = [], hostArgmax: number[] = [];
for (let i = 0; i < 8; i++) long.push(firstToken(256));
for (let i = 0; i < 8; i++) one.push(firstToken(1));
noGrad(() => {
  for (let i = 0; i < 8; i++) {
    const cache = model.newCache(1, 272);
    driver.synchronize();
    const t0 = performance.now();
    const row = tidy(() => model.forward(tensor(prompt, [1, prompt.length], { dtype: 'int32', device: model.backend }), { cache, lastOnly: true }).toFloat32Array());
    forward.push(performance.now() - t0);
    const t1 = performance.now();
    argmaxRow(row);
    hostArgmax.push(performance.now() - t1);
    cache.dispose();
  }
});
show('first token of generate(256 new)', long);
show('first token of generate(1 new)', one);
show('prefill forward to the host logits row', forward);
show('host argmax over the row', hostArgmax);
if (process.argv.includes('--session')) {
  const session = new DecodeSession(model);
  try {
    const calls = Array.from({ length: 10 }, () => firstToken(256, session));
    show('first token of generate(256 new) with a session (calls 1-2: eager, recording)', calls);
    console.log(`recorded prefills: ${session.recordedPrefills}${session.recordingError === null ? '' : `; recording failed: ${String(session.recordingError)}`}`);
  } finally {
    session.dispose();
  }
}
