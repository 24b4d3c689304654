// Host memory of QuantizedModel.apply() (docs/benchmarks.md, "host memory of apply / export"): loads a
// checkpoint, calibrates one short window (max), then samples the process RSS after every weight apply()
// replaces and prints the peak over the RSS before apply. CPU or CUDA; on CUDA the parameters live on the
// device, so what the host holds during apply is what this measures.
//   python3 bench/make_llama1b.py /tmp/llama1b
//   node --expose-gc dist/bench/apply-memory.js --model /tmp/llama1b [--preset nvfp4] [--device cpu|cuda]
import { parseArgs } from 'node:util';
import { loadModel } from '../src/models/load.js';
import { QuantizedModel } from '../src/quant/ptq.js';
import { presetRecipe } from '../src/quant/recipes/index.js';
import { parseDevice } from '../src/cli/common.js';
import { lehmerIds } from './token-ids.js';

const { values: a } = parseArgs({ options: { model: { type: 'string', default: '/tmp/llama1b' }, preset: { type: 'string', default: 'nvfp4' }, device: { type: 'string', default: 'cpu' } } });
const model = loadModel(a.model!, { dtype: 'float32', device: parseDevice(a.device!) });
const q = new QuantizedModel(model, presetRecipe(a.preset!));
q.calibrate([lehmerIds(16, model.config.vocabSize, 1)], 'max');
(globalThis as { gc?: () => void }).gc?.();
const mb = (b: number): string => `${(b / 1e6).toFixed(0)} MB`;
const before = process.memoryUsage().rss;
let peak = before;
const t0 = performance.now();
q.apply(() => void (peak = Math.max(peak, process.memoryUsage().rss)));
console.log(`${a.model} ${a.preset} on ${a.device}: RSS before apply ${mb(before)}, peak during apply ${mb(peak)} (+${mb(peak - before)}), apply ${((performance.now() - t0) / 1000).toFixed(1)} s`);
