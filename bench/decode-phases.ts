// Where the whole-step decode kernel's time goes (issue #3's decode target): on the Llama-3.2-1B-shaped
// checkpoint, the fused step (kernels/decode_step.cu) is launched back to back (1) plain, for the step time,
// and (2) with CTA 0 stamping %globaltimer after every phase, for the per-phase medians over layers and steps
// (each phase's time includes its closing grid barrier). Run on the GPU machine:
//   bash .gpu/run.sh node dist/bench/decode-phases.js --model /tmp/llama1b [--steps 256] [--prompt 16] [--trace FILE]
// --prompt sets the context the steps start at (the attention's cost grows with it; bench/run.sh's decode runs
// from 16 to 272).
// --trace writes the last timed step's phase ends and CTA 0's weight-stream events (issued / landed / freed
// per ring stage, ns from the step's start) as JSON. Built with MOPT_NVRTC_DEFINES=decode_step:DS_MARK=1
// (bench/decode-step-variants.sh "DS_MARK=1"), the kernel also records CTA 0's points inside the phases (the
// attention's only on its register path, contexts up to 240 at head dim 64: `--steps 64` as
// bench/decode-step-variants.sh runs), and the last step's phases are split at them: the wait for the input,
// then the rest. It also prints how far apart the CTAs finish each phase of the last step (every CTA stamps its
// ends) and, with the marks, how long after the last of them CTA 0 has the next phase's input.
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { DecodeStepKernel } from '../src/backend/backend.js';
import { loadModel } from '../src/models/load.js';
import { fusedDecodeStep } from '../src/runtime/decode-fused.js';
import { getCudaBackend } from '../src/backend/cuda/index.js';
import { keep, noGrad, tensor, tidy, zeros } from '../src/tensor/index.js';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const steps = Number(arg('--steps', '256'));
const model = loadModel(arg('--model', '/tmp/llama1b'), { dtype: 'bfloat16', device: 'cuda' });
const driver = getCudaBackend().driver;
const weightBytes = model.parameters().reduce((s, p) => s + 2 * p.size, 0);
const promptLen = Number(arg('--prompt', '16'));
if (!Number.isInteger(promptLen) || promptLen < 1) throw new RangeError(`--prompt: a positive whole number of tokens, not ${arg('--prompt', '')}`);
const prompt = Array.from({ length: promptLen }, (_, i) => 1 + (i % (model.config.vocabSize - 1)));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function run(timing: boolean): { perStepUs: number; phases: number[][]; trace: ReturnType<DecodeStepKernel['traceNs']> } {
  return noGrad(() => {
    const cap = prompt.length + steps;
    const cache = model.newCache(1, cap);
    const pos = model.devicePosition(cap);
    const b = model.backend;
    const ids = keep(zeros([1, 1], { dtype: 'int32', device: b }));
    const next = keep(zeros([1], { dtype: 'int32', device: b }));
    try {
      tidy(() => void model.forward(tensor(prompt, [1, prompt.length], { dtype: 'int32', device: b }), { cache, lastOnly: true }));
      b.copy(tensor([prompt.length], [1], { dtype: 'int32', device: b }), pos.at);
      const k = fusedDecodeStep(model, cache, { pos, ids, next, produced: null, logits: null, timing });
      if (k === null) throw new Error('the fused decode step does not take this model');
      try {
        const phases: number[][] = [];
        k.launch(); // compiles
        driver.synchronize();
        const t0 = performance.now();
        for (let i = 1; i < steps; i++) {
          k.launch();
          if (timing) phases.push(k.phaseNs()!);
        }
        driver.synchronize();
        return { perStepUs: ((performance.now() - t0) * 1000) / (steps - 1), phases, trace: timing ? k.traceNs() : null };
      } finally {
        k.dispose();
      }
    } finally {
      ids.dispose();
      next.dispose();
      pos.dispose();
      cache.dispose();
    }
  });
}

const plain = run(false);
console.log(`fused step: ${plain.perStepUs.toFixed(1)} us/step = ${(1e6 / plain.perStepUs).toFixed(1)} tok/s (${(weightBytes / plain.perStepUs / 1e3).toFixed(0)} GB/s of weights)`);
const { phases, trace } = run(true);
const traceFile = arg('--trace', '');
if (trace !== null) console.log(`CTA 0's SM clock over the timed step: ${trace.smMHz.toFixed(0)} MHz`);
if (traceFile !== '') writeFileSync(traceFile, JSON.stringify({ phases: phases[phases.length - 1], ...trace }));
const L = model.config.numLayers;
const names = ['q/k/v', 'attention', 'o_proj', 'gate/up', 'down'];
const dur = (p: number[], i: number): number => p[i] - (i === 0 ? 0 : p[i - 1]);
console.log(`embedding: ${median(phases.map((p) => dur(p, 0))).toFixed(0)} ns`);
let layerSum = 0;
names.forEach((n, j) => {
  const xs = phases.flatMap((p) => Array.from({ length: L }, (_, l) => dur(p, 1 + 5 * l + j)));
  layerSum += median(xs);
  console.log(`${n.padEnd(10)} median ${(median(xs) / 1000).toFixed(2)} us  (min ${(Math.min(...xs) / 1000).toFixed(2)}, max ${(Math.max(...xs) / 1000).toFixed(2)})`);
});
console.log(`one layer: ${(layerSum / 1000).toFixed(2)} us; LM head (CTA 0 done): ${(median(phases.map((p) => dur(p, 1 + 5 * L))) / 1000).toFixed(2)} us; timed step total ${(median(phases.map((p) => p[p.length - 1])) / 1000).toFixed(1)} us`);

// the last step's phases split at CTA 0's marks (kernels/decode_step.cuh DS_MARKS), medians over layers
if (trace !== null) {
  const p = phases[phases.length - 1];
  const parts: [string, number, number, number][] = [
    // [label, phase j whose end bounds the segment, start point, end point]; points: m >= 0 a mark, -1 the
    // previous phase's end, -2 this phase's end
    ['q/k/v: input arrived, normed', 0, -1, 0],
    ['q/k/v: dots, outputs stored', 0, 0, -2],
    ['attention: q/k/v arrived (KV head 0)', 1, -1, 1],
    ['attention: scores', 1, 1, 2],
    ['attention: softmax', 1, 2, 3],
    ['attention: values, output stored', 1, 3, 4],
    ['attention: to the phase end', 1, 4, -2],
    ['o_proj: input arrived', 2, -1, 5],
    ['o_proj: dots, outputs stored', 2, 5, -2],
    ['gate/up: input arrived, normed', 3, -1, 6],
    ['gate/up: dots, outputs stored', 3, 6, -2],
    ['down: input arrived', 4, -1, 7],
    ['down: dots, outputs stored', 4, 7, -2],
  ];
  for (const [label, j, from, to] of parts) {
    const xs: number[] = [];
    for (let l = 0; l < L; l++) {
      const lo = p[5 * l + j], hi = p[1 + 5 * l + j]; // phase j of layer l: from the previous phase's end to its own
      const at = (m: number): number | null => (m === -1 ? lo : m === -2 ? hi : trace.marks[l][m]);
      const a = at(from), b = at(to);
      if (a === null || b === null || a < lo || b > hi || b < a) continue; // a point this step did not pass
      xs.push(b - a);
    }
    if (xs.length > 0) console.log(`  ${label.padEnd(40)} median ${(median(xs) / 1000).toFixed(2)} us over ${xs.length} layers`);
  }
  // every CTA's end of each phase (trace.ctaDone[i] is phase p[i]'s): how far apart the CTAs finish, and how long
  // after the last one CTA 0 has the next phase's input (its mark; only with DS_MARK): the exchange's own latency
  const inputMark = [1, 5, 6, 7, 0]; // the mark where phase j's output has arrived at CTA 0 (0: the next layer's)
  names.forEach((n, j) => {
    const spread: number[] = [];
    const early: number[] = [];
    const latency: number[] = [];
    for (let l = 0; l < L; l++) {
      const done = trace.ctaDone[1 + 5 * l + j];
      if (done === undefined || done.some((v) => v < 0)) continue;
      const last = Math.max(...done);
      spread.push(last - Math.min(...done));
      early.push(last - done[0]);
      const ml = j === 4 ? l + 1 : l;
      const mark = ml < L ? trace.marks[ml][inputMark[j]] : null;
      if (mark !== null && mark >= last && mark - last < 50_000) latency.push(mark - last);
    }
    if (spread.length === 0) return;
    const us = (xs: number[]): string => (median(xs) / 1000).toFixed(2);
    console.log(`  ${n.padEnd(10)} CTAs' ends: spread ${us(spread)} us, CTA 0 ${us(early)} us before the last` + (latency.length > 0 ? `; last end -> next input at CTA 0 ${us(latency)} us` : ''));
  });
}
