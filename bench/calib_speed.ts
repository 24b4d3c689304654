// Issue #4's calibration-speed benchmark, mopt side: NVFP4 max calibration (Model Optimizer's `nvfp4` preset:
// every Linear input quantizer except the LM head gets a running max |x|) of a checkpoint over
// --samples x --seq tokens in batches of --batch, through the product's own QuantizedModel.calibrate.
// Wall time from the first forward to the last amax on the host (device synchronized), after one warm-up
// batch that compiles the kernels. PyTorch side: bench/pytorch_calib_speed.py; both: bench/calib-speed.sh.
//   bash .gpu/run.sh node dist/bench/calib_speed.js --model /tmp/llama1b --device cuda --json out.json
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { loadModel } from '../src/models/load.js';
import { QuantizedModel } from '../src/quant/ptq.js';
import { presetRecipe } from '../src/quant/recipes/index.js';
import { lehmerIds } from './token-ids.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const dir = arg('--model', '/tmp/llama1b');
const device = arg('--device', 'cuda');
const samples = Number(arg('--samples', '512'));
const seq = Number(arg('--seq', '2048'));
const batch = Number(arg('--batch', '8'));
const out = arg('--json', '');

const model = loadModel(dir, { dtype: 'bfloat16', device });
const vocab = model.config.vocabSize;
const rows = Array.from({ length: samples }, (_, i) => lehmerIds(seq, vocab, 4004 + i));
const q = new QuantizedModel(model, presetRecipe('nvfp4'));
q.batchSize = batch;
// warm-up: kernels compile, the allocator fills its cache (calibrate() ends by reading the amax values: synchronized)
new QuantizedModel(model, presetRecipe('nvfp4')).calibrate(rows.slice(0, batch), 'max');
const t0 = performance.now();
q.calibrate(rows, 'max');
const seconds = (performance.now() - t0) / 1000;
const amax = q.amaxValues();
const result = {
  framework: 'mopt', device, samples, seq, batch, seconds, tokens_per_s: (samples * seq) / seconds,
  quantizers: Object.keys(amax).length, amax,
};
console.log(`mopt nvfp4 max calibration: ${samples} x ${seq} tokens in ${seconds.toFixed(2)} s (${Math.round(result.tokens_per_s).toLocaleString('en-US')} tok/s), ${result.quantizers} quantizers`);
if (out !== '') writeFileSync(out, JSON.stringify(result, null, 1));
