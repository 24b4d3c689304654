// mopt's side of the per-Linear export check (docs/export.md "Checks"): loads an exported checkpoint the way
// `mopt forward` does (the registry's reader: for Model Optimizer checkpoints the packed weights dequantized
// and the input quantizers / pre_quant_scale installed as DecoderLM.linearHook), runs it once on the ids and
// records, for every Linear the forward runs (q/k/v/o, gate/up/down, the LM head as `lm_head`):
//   DIR/<module>.x.npy   the Linear's raw input, before pre_quant_scale and any activation quantizer
//   DIR/<module>.in.npy  what mopt's matmul receives: x * pre_quant_scale, fake-quantized (not written where
//                        the hook leaves the Linear alone: there it is x)
//   DIR/<module>.w.npy   the weight mopt multiplies by (dequantized from the checkpoint's codes and scales)
//   DIR/<module>.y.npy   the Linear's final output (hook included)
// `in` is read through the same hook applied to an identity weight (x_q @ I^T = x_q exactly: each sum has one
// non-zero term), and checked here: linear(in, w, b) must equal y bit for bit, else the script fails.
// scripts/check_modelopt_export{,_numpy}.py --linear-io DIR feed x into their own reconstruction of each Linear.
//   node scripts/dump-linear-io.mjs CKPT IDS.json|IDS.npy DIR [MOPT_LOGITS.npy]
// With MOPT_LOGITS (`mopt forward`'s output) it prints how far the recording forward's logits are from it
// (a hook makes the decoder run Linears one by one instead of fused; on the CPU the results are equal).
// About 4.5 MB per stories260K checkpoint on 97 ids.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { openModel, readIdRows, checkIdsInVocab } from '../dist/src/cli/common.js';
import { DecoderLM } from '../dist/src/models/decoder.js';
import { linear } from '../dist/src/nn/functional.js';
import { tensor, tidy, noGrad } from '../dist/src/tensor/index.js';
import { readNpy, writeNpy } from '../dist/src/io/npy.js';

const [ckpt, idsFile, dir, moptLogits] = process.argv.slice(2);
if (!dir) throw new Error('usage: node scripts/dump-linear-io.mjs CKPT IDS.json|IDS.npy DIR [MOPT_LOGITS.npy]');
const { model } = openModel(ckpt, 'float32', 'cpu');
if (!(model instanceof DecoderLM)) throw new Error(`${ckpt}: not a DecoderLM checkpoint (no Linear hook to record)`);
const rows = readIdRows(idsFile);
checkIdsInVocab(rows, model.config.vocabSize, idsFile);
mkdirSync(dir, { recursive: true });

const head = model.config.tieWordEmbeddings ? 'model.embed_tokens' : 'lm_head';
const prev = model.linearHook;
const seen = new Set();
const bad = [];
const save = (name, what, t) => writeNpy(join(dir, `${name}.${what}.npy`), { dtype: 'float32', shape: [...t.shape], data: t.cast('float32').toFloat32Array() });
model.linearHook = (name, x, w, b) => {
  const y = prev?.(name, x, w, b) ?? linear(x, w, b);
  const k = w.shape[1];
  const eye = new Float32Array(k * k);
  for (let i = 0; i < k; i++) eye[i * k + i] = 1;
  const xq = prev?.(name, x, tensor(eye, [k, k], { dtype: w.dtype, device: w.backend }), null);
  const again = linear(xq ?? x, w, b).toFloat32Array();
  const ys = y.toFloat32Array();
  if (again.some((v, i) => v !== ys[i] && !(Number.isNaN(v) && Number.isNaN(ys[i])))) bad.push(name);
  const file = name === head ? 'lm_head' : name;
  if (seen.has(file)) throw new Error(`${name} ran twice in one forward`);
  seen.add(file);
  save(file, 'x', x);
  if (xq !== undefined) save(file, 'in', xq);
  save(file, 'w', w);
  save(file, 'y', y);
  return y;
};
const seq = rows[0].length;
const logits = noGrad(() => tidy(() => model.forward(tensor(rows.flat(), [rows.length, seq], { dtype: 'int32', device: model.backend })).toFloat32Array()));
model.linearHook = prev;
const res = { checkpoint: ckpt, dir, linears: seen.size, hooked: prev !== null };
if (moptLogits) {
  const ref = readNpy(moptLogits).data;
  let d = 0;
  for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(ref[i] - logits[i]));
  res.max_abs_diff_vs_forward = d;
}
if (bad.length > 0) res.in_not_exact = bad;
console.log(JSON.stringify(res));
if (bad.length > 0) process.exit(1);
