// Writing a quantized model as a compressed-tensors checkpoint (llm-compressor's format, what vLLM loads;
// compressed-tensors-scheme.ts has the config, compressed-tensors-tensors.ts the layouts): every quantized
// Linear's packed weight and scales, input scales from the calibrated amax, k_scale / v_scale for an FP8 KV
// cache, smoothing factors folded into the preceding RMSNorm / Linear (compressed-tensors-fold.ts); every other
// tensor copied from the source checkpoint byte for byte; config.json with quantization_config, tokenizer and
// generation config copied. The checker runs on the tensors before anything is written, and the directory
// appears only when complete (staging.ts).

import { basename, join, resolve } from 'node:path';
import { SafetensorsCheckpoint, writeShardedCheckpoint } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { layerPrefix } from '../models/decoder.js';
import { linearNames, type FoldedExport, type QuantizedModel } from '../quant/ptq.js';
import type { WeightScheme } from '../quant/scheme.js';
import type { Nvfp4Quantized } from '../quant/formats/nvfp4.js';
import type { ActScheme } from '../quant/scheme.js';
import { allocStorage } from '../tensor/dtype.js';
import { decodeToF32, encodeFromF32 } from '../tensor/codecs.js';
import { checkExportOut, writeStaged } from './staging.js';
import { writeHfFiles } from './hf-files.js';
import { ctSchemeOf, quantizationConfig, type CtScheme } from './compressed-tensors-scheme.js';
import { KV_BOUND, inputTensor, reciprocal, reciprocalExactAmax, weightTensors, weightValues } from './compressed-tensors-tensors.js';
import { planFolding } from './compressed-tensors-fold.js';
import { checkCompressedTensors } from './compressed-tensors-check.js';
import type { ExportRequest, ExportSummary, WriteOptions } from './registry.js';

/** A checkpoint ready to write: its tensors and config, computed from a planned, calibrated model and checked. */
export interface PreparedCompressedTensors {
  source: string;
  scheme: CtScheme;
  tensors: Map<string, RawTensor>;
  /** Linears left unquantized (config.json `ignore`) */
  ignore: string[];
  quantizedLinears: number;
}

/** Exports q (planned, calibrated, not applied) built on the checkpoint in `source` to `out`. */
export function exportCompressedTensors(q: QuantizedModel, source: string, out: string, o: ExportRequest & WriteOptions): ExportSummary {
  checkExportOut(source, out, o.overwrite);
  return writeCompressedTensors(prepareCompressedTensors(q, source, o), out, o);
}

/**
 * The checkpoint's tensors and config, checked; q must not be applied yet (its source weights are needed).
 * q is made to compute what the checkpoint holds, so that q.apply() afterwards gives the model a loader of
 * this checkpoint gives: NVFP4 global amax values move to ones compressed-tensors' 1 / s2 encoding holds
 * exactly (reciprocalExactAmax, a few ulps at most), and the smoothing folded into the preceding ops in the
 * checkpoint's dtype is folded in q too (FoldedExport). The moved amax values are q's from then on: a
 * quantization state saved afterwards describes the model that was exported and scored.
 */
export function prepareCompressedTensors(q: QuantizedModel, source: string, r: ExportRequest): PreparedCompressedTensors {
  // q changes only when the checkpoint is complete and checked: a refused export leaves it as it was
  const before = { rule: q.globalAmaxRule, amax: q.quantizers.map((x) => x.amax) };
  try {
    q.globalAmaxRule = (amax, linear) => reciprocalExactAmax(amax, `${linear}.weight_quantizer`);
    for (const x of q.quantizers) if (x.role === 'input' && x.scheme?.kind === 'nvfp4' && x.amax !== null) x.amax = reciprocalExactAmax(x.amax, x.name);
    return prepareChecked(q, source, r);
  } catch (e) {
    q.globalAmaxRule = before.rule;
    q.quantizers.forEach((x, i) => (x.amax = before.amax[i]!));
    throw e;
  }
}

function prepareChecked(q: QuantizedModel, source: string, r: ExportRequest): PreparedCompressedTensors {
  const scheme = ctSchemeOf(r.preset, r.kvCache, int4Group(q));
  const folding = planFolding(q);
  const codes = q.weightCodes();
  const tensors = new Map<string, RawTensor>();
  const folded: FoldedExport = { params: new Map(), weights: new Map(), foldedInputs: new Set(q.smooth.keys()) };
  const adopt = (name: string, t: RawTensor): void => {
    tensors.set(name, t);
    const v = new Float32Array(t.data.length);
    decodeToF32(t.dtype, t.data, v);
    folded.params.set(name, v);
  };
  const ckpt = SafetensorsCheckpoint.open(source);
  try {
    for (const name of ckpt.names()) {
      const dot = name.lastIndexOf('.');
      const [module, suffix] = [name.slice(0, dot), name.slice(dot + 1)];
      const c = suffix === 'weight' ? codes.get(module) : undefined;
      if (c !== undefined) {
        const rows = folding.rows.get(module);
        const written = weightTensors(c.codes, rows);
        for (const [s, t] of Object.entries(written)) tensors.set(`${module}.${s}`, t);
        // the loaded values where they differ from q's: scales that took a folded row factor, or a weight an
        // algorithm quantized with an s2 (its static global amax) that the 1 / s2 encoding cannot hold
        const moved = c.codes.meta.format === 'nvfp4' && reciprocal(reciprocal((c.codes as Nvfp4Quantized).scale2)) !== (c.codes as Nvfp4Quantized).scale2;
        if (rows !== undefined || moved) folded.weights.set(module, () => weightValues(c.quantizer.scheme as WeightScheme, c.codes.meta.shape, written));
      } else if (suffix === 'weight' && (q.smooth.has(module) || folding.rows.has(module))) {
        // a float Linear that is smoothed (W / c, as the fake-quantized model holds it) or takes row factors
        adopt(name, scaled(ckpt.read(name), q.smooth.get(module), folding.rows.get(module)));
      } else if (suffix === 'bias' && folding.rows.has(module)) {
        adopt(name, scaled(ckpt.read(name), undefined, folding.rows.get(module)));
      } else if (folding.norms.has(name)) {
        adopt(name, scaled(ckpt.read(name), undefined, folding.norms.get(name)));
      } else {
        tensors.set(name, ckpt.read(name));
      }
    }
  } finally {
    ckpt.close();
  }
  for (const x of q.quantizers) {
    if (x.role !== 'input' || x.scheme === null) continue;
    const t = inputTensor(x.scheme as ActScheme, x.amax!);
    if (t !== null) tensors.set(`${x.module}.${t[0]}`, t[1]);
  }
  for (let i = 0; i < q.model.config.numLayers; i++) {
    for (const which of ['k', 'v'] as const) {
      const kv = q.quantizers.find((x) => x.name === `${layerPrefix(i)}.self_attn.${which}_bmm_quantizer` && x.scheme !== null);
      // compressed-tensors keeps K/V scales on the attention module (initialize.py initialize_attn_qparams);
      // vLLM maps `self_attn.k_scale` to its attention layer (weight_utils.py maybe_remap_kv_scale_name)
      if (kv) tensors.set(`${layerPrefix(i)}.self_attn.${which}_scale`, { dtype: 'float32', shape: [1], data: Float32Array.of(Math.fround(kv.amax! / KV_BOUND)) });
    }
  }
  const ignore = linearNames(q.model).filter((l) => !codes.has(l)).map((l) => (l === 'model.embed_tokens' ? 'lm_head' : l));
  checkCompressedTensors(q, scheme, (name) => tensors.get(name), `export of ${source}`);
  q.foldedExport = folded.foldedInputs.size + folded.weights.size + folded.params.size === 0 ? null : folded;
  return { source, scheme, tensors, ignore, quantizedLinears: codes.size };
}

/** Writes a prepared checkpoint to `out`: staged beside it, renamed into place when complete. */
export function writeCompressedTensors(p: PreparedCompressedTensors, out: string, o: WriteOptions): ExportSummary {
  return writeStaged(p.source, out, o.overwrite, (tmp) => {
    const { files } = writeShardedCheckpoint(tmp, p.tensors, { maxShardBytes: o.maxShardBytes, metadata: { format: 'pt' } });
    writeHfFiles(p.source, tmp, quantizationConfig(p.scheme, p.ignore));
    o.alsoWrite?.(tmp);
    const outDir = resolve(out);
    return {
      dir: outDir, format: 'compressed-tensors', quantAlgo: `${p.scheme.label} ${p.scheme.format}`, quantizedLinears: p.quantizedLinears,
      excluded: p.ignore, files: files.map((f) => join(outDir, basename(f))),
    };
  });
}

/**
 * A float tensor in its own dtype with every column j divided by cols[j] (fp32, as QuantizedModel divides a
 * smoothed weight) and every row i multiplied by rows[i]; a 1-D tensor (norm weight, bias) is one row per element.
 */
function scaled(t: RawTensor, cols: Float32Array | undefined, rows: Float32Array | undefined): RawTensor {
  const v = new Float32Array(t.data.length);
  decodeToF32(t.dtype, t.data, v);
  const width = t.shape.length === 2 ? t.shape[1]! : 1;
  for (let i = 0; i < v.length; i++) {
    if (cols !== undefined) v[i] = Math.fround(v[i]! / cols[i % width]!);
    if (rows !== undefined) v[i] = Math.fround(v[i]! * rows[Math.floor(i / width)]!);
  }
  const data = allocStorage(t.dtype, v.length);
  encodeFromF32(t.dtype, v, data);
  return { dtype: t.dtype, shape: [...t.shape], data };
}

/** The INT4 group size the plan uses (config_groups' group_size), 128 when it has no INT4 quantizer. */
function int4Group(q: QuantizedModel): number {
  for (const x of q.quantizers) if (x.scheme !== null && x.scheme.kind === 'int4') return x.scheme.groupSize;
  return 128;
}
