// Opening an exported ONNX directory as a runnable model: model.onnx is checked first (a readable ModelProto
// with the default-domain opset, input_ids [batch, sequence] int64 in and logits [batch, sequence, vocab]
// float32 out, every external-data reference inside model.onnx's directory and within its file), config.json
// gives the model's description, and the graph runs in ONNX Runtime (onnx-runtime.ts) behind LogitsModel, so
// mopt eval / forward / generate take it like any other model.

import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import { readModelSummary, type ModelSummary } from '../io/onnx-model-summary.js';
import { ONNX_DTYPE, onnxElementBits } from '../io/onnx-tensor.js';
import type { DecoderConfig } from '../models/config.js';
import { readModelConfig, type LoadOptions } from '../models/load.js';
import type { LogitsModel } from '../models/logits-model.js';
import { getBackend } from '../backend/registry.js';
import type { Backend } from '../backend/backend.js';
import { fromStorage, type Tensor } from '../tensor/index.js';
import { UserError } from '../util/errors.js';
import { INPUT_IDS, LOGITS } from './onnx-decoder.js';
import { ONNX_FILE } from './onnx-export.js';
import { OrtSession } from './onnx-runtime.js';

/** The model.onnx a path names: the file itself, or model.onnx inside a directory; null when there is none. */
function modelFile(path: string): string | null {
  if (path.endsWith('.onnx') && existsSync(path) && statSync(path).isFile()) return path;
  const inside = join(path, ONNX_FILE);
  return existsSync(path) && statSync(path).isDirectory() && existsSync(inside) ? inside : null;
}

export function isOnnxModel(path: string): boolean {
  return modelFile(path) !== null;
}

/** Reads model.onnx's structure and checks everything ONNX Runtime would otherwise report less clearly. */
export function checkOnnxModel(file: string): ModelSummary {
  let m: ModelSummary;
  try {
    m = readModelSummary(readFileSync(file));
  } catch (e) {
    throw new UserError(`${file}: not a readable ONNX model (${e instanceof Error ? e.message : String(e)}); the file is truncated or damaged, re-export it`);
  }
  if (!m.opsets.some((o) => o.domain === '' || o.domain === 'ai.onnx')) throw new UserError(`${file}: the model has no opset_import for the default ONNX domain (a truncated file?); re-export it`);
  const input = m.inputs.find((i) => i.name === INPUT_IDS);
  if (m.inputs.length !== 1 || input === undefined || input.elemType !== ONNX_DTYPE.INT64 || input.shape.length !== 2) {
    throw new UserError(`${file}: mopt runs graphs with one input, ${INPUT_IDS} int64 [batch, sequence]; this one takes ${m.inputs.map((i) => i.name).join(', ') || 'nothing'} (a KV-cache graph from another exporter?)`);
  }
  const out = m.outputs.find((o) => o.name === LOGITS);
  if (out === undefined || out.elemType !== ONNX_DTYPE.FLOAT || out.shape.length !== 3) throw new UserError(`${file}: the graph has no output ${LOGITS} float32 [batch, sequence, vocab]`);
  const dir = dirname(file);
  const sizes = new Map<string, number>();
  for (const t of m.initializers) {
    const n = t.dims.reduce((a, b) => a * b, 1);
    const bytes = Math.ceil((n * onnxElementBits(t.dataType)) / 8);
    if (t.external === null) {
      if (t.raw !== null && t.raw.byteLength !== bytes) throw new UserError(`${file}: initializer ${t.name} holds ${t.raw.byteLength} bytes, its shape [${t.dims.join(', ')}] needs ${bytes}`);
      continue;
    }
    const loc = t.external.location;
    if (loc === '' || isAbsolute(loc) || normalize(loc).startsWith('..')) throw new UserError(`${file}: initializer ${t.name} points at external data "${loc}" outside the model's directory`);
    const path = join(dir, loc);
    if (!sizes.has(path)) sizes.set(path, existsSync(path) ? statSync(path).size : -1);
    const size = sizes.get(path)!;
    if (size < 0) throw new UserError(`${file}: initializer ${t.name} is stored in ${loc}, which is missing beside ${basename(file)}`);
    const length = t.external.length < 0 ? bytes : t.external.length;
    if (length !== bytes) throw new UserError(`${file}: initializer ${t.name} has external length ${length}, its shape [${t.dims.join(', ')}] needs ${bytes} bytes`);
    if (t.external.offset + length > size) {
      throw new UserError(`${path}: ${size} bytes, but initializer ${t.name} needs bytes ${t.external.offset}..${t.external.offset + length}; the file is truncated, re-export the model`);
    }
  }
  return m;
}

/** One initializer's type, shape and raw_data-layout bytes, read from model.onnx or its external data file. */
export function readInitializer(file: string, name: string): { dataType: number; dims: number[]; bytes: Uint8Array } {
  const t = checkOnnxModel(file).initializers.find((x) => x.name === name);
  if (t === undefined) throw new UserError(`${file}: no initializer ${name}`);
  if (t.external === null) {
    if (t.raw === null) throw new UserError(`${file}: initializer ${name} keeps its values in typed fields, not raw_data`);
    return { dataType: t.dataType, dims: t.dims, bytes: new Uint8Array(t.raw) };
  }
  // only this tensor's bytes: the external data file is over 2 GB by construction (readFileSync refuses those)
  const path = join(dirname(file), t.external.location);
  const fd = openSync(path, 'r');
  try {
    const length = t.external.length < 0 ? fstatSync(fd).size - t.external.offset : t.external.length;
    const bytes = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      const n = readSync(fd, bytes, done, length - done, t.external.offset + done);
      if (n === 0) throw new UserError(`${path}: ends before initializer ${name}'s ${length} bytes at offset ${t.external.offset}; the file is truncated, re-export the model`);
      done += n;
    }
    return { dataType: t.dataType, dims: t.dims, bytes };
  } finally {
    closeSync(fd);
  }
}

/** An ONNX graph in ONNX Runtime as a LogitsModel (float32 on the CPU execution provider). */
export class OnnxLM implements LogitsModel {
  readonly backend: Backend = getBackend('cpu');

  constructor(readonly config: DecoderConfig, readonly file: string, private readonly session: OrtSession) {}

  get runtimeVersion(): string {
    return this.session.version;
  }

  forward(ids: Tensor): Tensor {
    if (ids.ndim !== 2) throw new RangeError(`forward: ids must be [batch, seq], got [${ids.shape.join(', ')}]`);
    const [batch, seq] = ids.shape as [number, number];
    // the graph's RoPE tables have max_position_embeddings rows; a longer sequence would fail inside ONNX Runtime
    if (seq > this.config.maxPositionEmbeddings) throw new UserError(`${this.file}: ${seq} tokens, but the graph's RoPE tables cover max_position_embeddings = ${this.config.maxPositionEmbeddings} positions`);
    const out = this.session.run(BigInt64Array.from(ids.toFloat64Array(), (v) => BigInt(v)), batch, seq);
    return fromStorage(out.data, [batch, seq, this.config.vocabSize], 'float32', { device: this.backend });
  }

  /** Ends the ONNX Runtime worker (a CLI run need not: the worker does not keep the process alive). */
  close(): void {
    this.session.close();
  }
}

/**
 * The ONNX Runtime 1.30 session settings under which the CPU provider computes what the graph says:
 * - its QDQ fusion turns DequantizeLinear(INT4, block_size) -> MatMul into MatMulNBits with accuracy level 4,
 *   which quantizes the activations to INT8 (a W4A8 computation of a W4A16 model); level 1 keeps them float32;
 * - it fuses FP8 DequantizeLinear -> MatMul into MatMulIntegerToFloat, which has no float8 kernel, and then
 *   refuses to load the model: graphs with FP8 tensors run with the QDQ fusions off;
 * - it fuses INT8 Q/DQ -> MatMul into integer matmuls whose x86 kernel, on CPUs without VNNI (AVX2 only), adds
 *   pairs of u8 x s8 products in saturating 16-bit sums (VPMADDUBSW): on such a machine (2026-11-29) none of the
 *   int8_sq export's logit positions matched the fake-quantized model to 1e-4, against 97-100% with VNNI. Graphs
 *   with INT8 tensors run with the QDQ fusions off too, so every CPU computes the graph's own arithmetic.
 */
export function sessionConfig(m: ModelSummary): Record<string, string> {
  const unfused = m.initializers.some((t) => t.dataType === ONNX_DTYPE.FLOAT8E4M3FN || t.dataType === ONNX_DTYPE.INT8);
  return { qdq_matmulnbits_accuracy_level: '1', ...(unfused ? { disable_quant_qdq: '1' } : {}) };
}

export function openOnnx(path: string, o: LoadOptions = {}): OnnxLM {
  const file = modelFile(path);
  if (file === null) throw new UserError(`${path} has no ${ONNX_FILE}`);
  if ((o.dtype ?? 'float32') !== 'float32') throw new UserError(`${path} is an ONNX model: its graph computes in float32; drop --dtype ${o.dtype}`);
  if ((o.device ?? 'cpu') !== 'cpu') throw new UserError(`${path} is an ONNX model: it runs on ONNX Runtime's CPU execution provider; drop --device ${o.device}`);
  const m = checkOnnxModel(file);
  const config = readModelConfig(dirname(file));
  const vocab = m.outputs.find((x) => x.name === LOGITS)!.shape[2];
  if (typeof vocab === 'number' && vocab !== config.vocabSize) throw new UserError(`${file}: logits have ${vocab} entries per position, but config.json says vocab_size ${config.vocabSize}; the files do not belong together`);
  return new OnnxLM(config, file, OrtSession.open(file, sessionConfig(m)));
}
