// Writing a model as an ONNX directory: model.onnx (opset 21; com.microsoft opset 1 when MatMulNBits is used)
// holding the decoder's full-sequence forward (onnx-decoder.ts) with the quantized Linears of onnx-quant.ts,
// model.onnx.data when the tensors are too large for one protobuf message (ONNX external data: initializers
// of 1 KiB or more, each at a 4 KiB-aligned offset, named by location / offset / length), config.json and the
// tokenizer / generation files of the source. What mopt wrote is recorded in the model's metadata_props.

import { copyFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DecoderLM } from '../models/decoder.js';
import { ropeTables } from '../models/rope.js';
import { getBackend } from '../backend/registry.js';
import { linearNames, type QuantizedModel } from '../quant/ptq.js';
import { noGrad, tidy } from '../tensor/index.js';
import { encodeModel, type ModelSpec, type TensorSpec } from '../io/onnx-proto.js';
import { atomicWriteFile } from '../io/json-file.js';
import { UserError } from '../util/errors.js';
import { checkExportOut, writeStaged } from './staging.js';
import { COPIED } from './hf-files.js';
import { MOPT_VERSION } from './modelopt-export.js';
import { emitDecoder, floatLinear, type ParamValues, type RopeTable } from './onnx-decoder.js';
import { MS_DOMAIN } from './onnx-graph.js';
import { quantEmitters, type Int4Mode } from './onnx-quant.js';
import type { ExportRequest, ExportSummary, WriteOptions } from './registry.js';

export const ONNX_FILE = 'model.onnx';
export const ONNX_DATA_FILE = 'model.onnx.data';
export const OPSET = 21;
/** IR version 10 goes with opset 21 (ONNX 1.16) */
export const IR_VERSION = 10;
/** protobuf cannot serialize a message of 2 GiB: above this many tensor bytes, initializers move to model.onnx.data */
export const EXTERNAL_DATA_ABOVE = 2 ** 31 - 2 ** 26;
/** initializers smaller than this stay inline even with external data (scales, shapes, norms) */
const INLINE_BELOW = 1024;
const EXTERNAL_ALIGN = 4096;

/** The presets ONNX's standard Q/DQ operators express, and Model Optimizer's name for each. */
const ONNX_ALGO: Readonly<Record<string, string>> = { fp8: 'FP8', int8_sq: 'W8A8_SQ_PER_CHANNEL', int4_awq: 'W4A16_AWQ' };
const ONNX_KV = ['fp8'];

export interface OnnxWriteOptions extends WriteOptions {
  /** tensor bytes above which initializers are written as external data (default EXTERNAL_DATA_ABOVE) */
  externalDataAbove?: number;
}

export interface PreparedOnnx {
  source: string;
  model: ModelSpec;
  quantAlgo: string;
  quantizedLinears: number;
  excluded: string[];
}

/** Throws a UserError when the preset / KV preset / INT4 form cannot be written as ONNX (before calibration). */
export function checkOnnxRequest(r: ExportRequest): void {
  const presets = Object.keys(ONNX_ALGO).join(', ');
  if (r.preset === null) throw new UserError(`ONNX export of a custom recipe is not supported; presets that export as ONNX: ${presets}`);
  if (ONNX_ALGO[r.preset] === undefined) {
    throw new UserError(`the ${r.preset} preset cannot be exported as ONNX: standard QuantizeLinear / DequantizeLinear express INT8, FP8 E4M3 and blocked INT4 only (no NVFP4, MX or two-stage W4A8); presets that export as ONNX: ${presets}`);
  }
  if (r.kvCache !== null && !ONNX_KV.includes(r.kvCache)) throw new UserError(`--kv-cache ${r.kvCache} cannot be exported as ONNX; ONNX exports an fp8 KV-cache quantizer or none`);
  if (r.onnxInt4 === 'matmulnbits' && r.preset !== 'int4_awq') throw new UserError(`--onnx-int4 matmulnbits applies to INT4 weights (the int4_awq preset), not ${r.preset}`);
}

const paramValues = (model: DecoderLM): ParamValues => (name) => {
  const t = model.params.get(name);
  return t === undefined ? undefined : { shape: t.shape, data: t.toFloat32Array() };
};

function ropeTable(model: DecoderLM): RopeTable {
  const rows = model.config.maxPositionEmbeddings;
  return noGrad(() =>
    tidy(() => {
      const t = ropeTables(model.rope, 0, rows, 'float32', getBackend('cpu'));
      return { cos: t.cos.toFloat32Array(), sin: t.sin.toFloat32Array(), rows };
    }),
  );
}

function modelSpec(model: DecoderLM, graph: ModelSpec['graph'], metadata: Record<string, string>): ModelSpec {
  const usesMs = graph.nodes.some((n) => n.domain === MS_DOMAIN);
  return {
    irVersion: IR_VERSION,
    opsets: [{ domain: '', version: OPSET }, ...(usesMs ? [{ domain: MS_DOMAIN, version: 1 }] : [])],
    producerName: 'mopt',
    producerVersion: MOPT_VERSION,
    graph,
    metadata: { 'mopt.graph': 'full-sequence forward without a KV cache: input_ids [batch, sequence] int64 -> logits [batch, sequence, vocab] float32', 'mopt.model_type': model.config.modelType, ...metadata },
  };
}

/** The unquantized model as ONNX (float32 weights). */
export function floatOnnxModel(model: DecoderLM): ModelSpec {
  const params = paramValues(model);
  const graph = emitDecoder(model.config, params, ropeTable(model), floatLinear(params, model.config.tieWordEmbeddings), null);
  return modelSpec(model, graph, { 'mopt.quant_algo': 'NONE' });
}

/** q planned and calibrated, not applied (its source weights are read); the request checked by checkOnnxRequest. */
export function prepareOnnx(q: QuantizedModel, source: string, r: ExportRequest): PreparedOnnx {
  checkOnnxRequest(r);
  const int4: Int4Mode = r.onnxInt4 ?? 'qdq';
  const params = paramValues(q.model);
  const e = quantEmitters(q, params, floatLinear(params, q.model.config.tieWordEmbeddings), int4);
  const graph = emitDecoder(q.model.config, params, ropeTable(q.model), e.linear, e.kv);
  const quantAlgo = ONNX_ALGO[r.preset!]!;
  const metadata: Record<string, string> = { 'mopt.quant_algo': quantAlgo, 'mopt.preset': r.preset!, 'mopt.kv_cache': r.kvCache ?? 'none', ...(r.preset === 'int4_awq' ? { 'mopt.int4': int4 } : {}) };
  const excluded = linearNames(q.model).filter((l) => !e.quantized.includes(l)).map((l) => (l === 'model.embed_tokens' ? 'lm_head' : l));
  return { source, model: modelSpec(q.model, graph, metadata), quantAlgo, quantizedLinears: e.quantized.length, excluded };
}

/**
 * Writes model.onnx (and model.onnx.data when the initializers exceed `externalAbove` bytes) into `dir`;
 * returns the paths written.
 */
export function writeOnnxFiles(dir: string, spec: ModelSpec, externalAbove = EXTERNAL_DATA_ABOVE): string[] {
  const total = spec.graph.initializers.reduce((s, t) => s + t.raw.byteLength, 0);
  const files = [join(dir, ONNX_FILE)];
  let initializers: readonly TensorSpec[] = spec.graph.initializers;
  if (total > externalAbove) {
    const chunks: Uint8Array[] = [];
    let offset = 0;
    initializers = spec.graph.initializers.map((t) => {
      if (t.raw.byteLength < INLINE_BELOW) return t;
      const pad = (EXTERNAL_ALIGN - (offset % EXTERNAL_ALIGN)) % EXTERNAL_ALIGN;
      if (pad > 0) chunks.push(new Uint8Array(pad));
      offset += pad;
      chunks.push(t.raw);
      const external = { location: ONNX_DATA_FILE, offset, length: t.raw.byteLength };
      offset += t.raw.byteLength;
      return { ...t, external };
    });
    atomicWriteFile(join(dir, ONNX_DATA_FILE), chunks);
    files.push(join(dir, ONNX_DATA_FILE));
  }
  atomicWriteFile(join(dir, ONNX_FILE), encodeModel({ ...spec, graph: { ...spec.graph, initializers } }).chunks());
  return files;
}

/** config.json and the tokenizer / generation files of the source, unchanged (the ONNX file describes its quantization itself). */
export function copyModelFiles(source: string, dir: string): void {
  for (const f of ['config.json', ...COPIED]) if (existsSync(join(source, f))) copyFileSync(join(source, f), join(dir, f));
}

/** Writes a prepared ONNX model to `out`: staged beside it, renamed into place when complete. */
export function writeOnnx(p: PreparedOnnx, out: string, o: OnnxWriteOptions): ExportSummary {
  return writeStaged(p.source, out, o.overwrite, (tmp) => {
    const written = writeOnnxFiles(tmp, p.model, o.externalDataAbove);
    copyModelFiles(p.source, tmp);
    o.alsoWrite?.(tmp);
    const outDir = resolve(out);
    return { dir: outDir, format: 'onnx', quantAlgo: p.quantAlgo, quantizedLinears: p.quantizedLinears, excluded: p.excluded, files: written.map((f) => join(outDir, f.slice(tmp.length + 1))) };
  });
}

/** Checks, prepares and writes in one call (q planned and calibrated, not applied). */
export function exportOnnx(q: QuantizedModel, source: string, out: string, r: ExportRequest & OnnxWriteOptions): ExportSummary {
  checkOnnxRequest(r);
  checkExportOut(source, out, r.overwrite);
  return writeOnnx(prepareOnnx(q, source, r), out, r);
}
