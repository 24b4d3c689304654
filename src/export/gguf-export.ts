// Writing a quantized model as a GGUF file for llama.cpp / node-llama-cpp: OUT/model.gguf (a directory, like
// every mopt export, so `mopt quantize --export-format gguf` can put its report and state beside it).
//   f16, q8_0   the source weights (a plain conversion, as convert_hf_to_gguf.py --outtype f16/q8_0 writes):
//               re-rounding a 4-bit state's values into 8 or 16 bits would only add error;
//   q4_0, q4_k  every Linear the preset quantizes, carrying the calibration (gguf-calibration.ts): AWQ
//               factors folded into norms / preceding rows, GPTQ / AWQ-clip weights with their INT4 grid as a
//               hint, block scales chosen against the calibration's input energy (gguf-weighted.ts). With no
//               calibration windows and no algorithm weight a tensor is rounded by ggml's own reference
//               quantizer, byte for byte what llama.cpp writes without an imatrix.
// A row length the type's blocks do not divide falls back (Q4_K -> Q4_0 -> F16; Q4_0, Q8_0 -> F16); llama.cpp's
// llama-quantize falls back from Q4_K to Q5_0, mopt stays at Q4_0's 4.5 bits so sizes compare. Embeddings, the
// LM head and Linears the preset leaves alone are F16, norms F32. The summary names every fallback.

import { basename, join, resolve } from 'node:path';
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import { decodeToF32 } from '../tensor/codecs.js';
import { GGML_TYPES, gguf, writeGguf, type GgmlTypeName, type GgufTensorData, type GgufValue } from '../io/gguf.js';
import { parameterSpecs } from '../models/decoder.js';
import { linearNames, type QuantizedModel } from '../quant/ptq.js';
import { UserError } from '../util/errors.js';
import { writeStaged } from './staging.js';
import type { ExportRequest, ExportSummary, WriteOptions } from './registry.js';
import { GGUF_ARCH, checkLlamaExportable, ggufTensorName, llamaMetadata, permutedHeads, toGgufRows } from './gguf-llama.js';
import { tokenizerMetadata } from './gguf-tokenizer.js';
import { carryCalibration, inputEnergy } from './gguf-calibration.js';
import { quantizeRef } from './gguf-quants.js';
import { quantizeQ4KWeighted, quantizeQ4_0Weighted, type GridHint } from './gguf-weighted.js';

export const GGUF_FILE = 'model.gguf';
export const GGUF_TYPES = ['f16', 'q8_0', 'q4_0', 'q4_k'] as const;
export type GgufType = (typeof GGUF_TYPES)[number];
const GGML_OF: Record<GgufType, GgmlTypeName> = { f16: 'F16', q8_0: 'Q8_0', q4_0: 'Q4_0', q4_k: 'Q4_K' };
/** general.file_type (llama.cpp's llama_ftype): MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_Q4_0, MOSTLY_Q4_K_S */
const FILE_TYPE: Record<GgufType, number> = { f16: 1, q8_0: 7, q4_0: 2, q4_k: 14 };
const MOPT_VERSION = '0.1.0';

export function parseGgufType(s: string): GgufType {
  if (!(GGUF_TYPES as readonly string[]).includes(s)) throw new UserError(`--gguf-type ${s} is not one mopt writes; use one of ${GGUF_TYPES.join(', ')}`);
  return s as GgufType;
}

/** The GGUF type a request asks for; throws when its quantization state cannot be written as GGUF. */
export function checkGgufRequest(r: ExportRequest): GgufType {
  if (r.kvCache !== null) throw new UserError(`--kv-cache ${r.kvCache}: GGUF holds weights only; llama.cpp picks its KV-cache type at run time (--cache-type-k/-v)`);
  if (r.preset === null) throw new UserError('GGUF export of a custom recipe is not implemented yet; use --format int4_awq');
  if (r.preset !== 'int4_awq') {
    throw new UserError(`--format ${r.preset} cannot be written as GGUF: GGUF blocks hold weight-only integer quantization and llama.cpp quantizes activations itself; use --format int4_awq (any --algorithm and --group-size)`);
  }
  return parseGgufType(r.ggufType ?? 'q4_k');
}

export interface PreparedGguf {
  source: string;
  type: GgufType;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorData[];
  quantizedLinears: number;
  /** Linears written in F16 (Hugging Face names) */
  excluded: string[];
  notes: string[];
}

/** The source checkpoint's tensors as float32, by Hugging Face name. */
function sourceWeights(source: string, names: readonly string[]): Map<string, Float32Array> {
  const ckpt = SafetensorsCheckpoint.open(source);
  try {
    return new Map(names.map((n) => {
      if (!ckpt.has(n)) throw new UserError(`${source} has no tensor ${n}`);
      const t = ckpt.read(n);
      if (t.data instanceof Float32Array) return [n, t.data];
      const out = new Float32Array(t.data.length);
      decodeToF32(t.dtype, t.data, out);
      return [n, out];
    }));
  } finally {
    ckpt.close();
  }
}

/** The block type a [rows, cols] Linear gets: the requested one if its blocks divide cols, else the fallback. */
function blockType(want: GgmlTypeName, cols: number): GgmlTypeName {
  const fits = (t: GgmlTypeName): boolean => cols % GGML_TYPES[t].blockSize === 0;
  if (fits(want)) return want;
  if (want === 'Q4_K' && fits('Q4_0')) return 'Q4_0';
  return 'F16';
}

/** The GGUF (metadata and encoded tensors) of q, planned and calibrated but not applied, built on `source`. */
export function prepareGguf(q: QuantizedModel, source: string, r: ExportRequest): PreparedGguf {
  const type = checkGgufRequest(r);
  const c = q.model.config;
  checkLlamaExportable(c, source);
  const specs = parameterSpecs(c);
  const src = sourceWeights(source, specs.map((s) => s.name));
  const linears = new Set(linearNames(q.model));
  const planned = new Set(q.quantizers.filter((x) => x.role === 'weight').map((x) => x.module));
  const carries = type === 'q4_0' || type === 'q4_k';
  const windows = r.calibration ?? [];
  const energy = carries && windows.length > 0 ? inputEnergy(q, windows, planned) : null;
  const carried = carries ? carryCalibration(q, src, energy) : null;
  const values = carried?.values ?? src;
  const notes = [...(carried?.notes ?? [])];
  const tensors: GgufTensorData[] = [];
  const excluded: string[] = [];
  let quantizedLinears = 0;
  const fallbacks = new Map<string, string[]>();
  for (const spec of specs) {
    const name = ggufTensorName(spec.name);
    if (name === null) throw new UserError(`${source}: tensor ${spec.name} has no llama.cpp name`);
    let x = values.get(spec.name)!;
    if (spec.shape.length === 1) {
      tensors.push({ name, type: 'F32', dims: [spec.shape[0]!], data: quantizeRef('F32', x, spec.shape[0]!) });
      continue;
    }
    const [rows, cols] = spec.shape as [number, number];
    const lin = spec.name.slice(0, -'.weight'.length);
    const isPlanned = planned.has(lin);
    const want = GGML_OF[type];
    const t: GgmlTypeName = isPlanned ? blockType(want, cols) : 'F16';
    if (isPlanned && t !== want) {
      const why = `${want} -> ${t} (row length ${cols} is not a multiple of ${GGML_TYPES[want].blockSize})`;
      fallbacks.set(why, [...(fallbacks.get(why) ?? []), name.replace(/\.weight$/, '')]);
    }
    let hint: GridHint | null = carried?.hints.get(lin) ?? null;
    const heads = permutedHeads(spec.name, c);
    if (heads !== null) {
      x = toGgufRows(x, rows, cols, heads);
      if (hint !== null) hint = { group: hint.group, step: toGgufRows(hint.step, rows, cols / hint.group, heads) };
    }
    const importance = carried?.importance.get(lin) ?? null;
    const weighted = (t === 'Q4_0' || t === 'Q4_K') && (importance !== null || hint !== null);
    const input = { x, rows, cols, importance, hint };
    const data = !weighted ? quantizeRef(t, x, cols) : t === 'Q4_0' ? quantizeQ4_0Weighted(input) : quantizeQ4KWeighted(input);
    tensors.push({ name, type: t, dims: [cols, rows], data });
    if (!linears.has(lin)) continue;
    if (t === 'F16') excluded.push(lin === 'model.embed_tokens' ? 'lm_head' : lin);
    else quantizedLinears++;
  }
  for (const [why, names] of fallbacks) notes.push(`${why}: ${names.join(', ')}`);
  if (carries) notes.push(energy !== null ? `block scales weighted by the input energy of ${windows.length} calibration windows` : 'no calibration windows: block scales as ggml rounds them (weighted only where an algorithm left an INT4 grid)');
  const metadata = new Map<string, GgufValue>([
    ['general.architecture', gguf.str(GGUF_ARCH)],
    ['general.name', gguf.str(basename(resolve(source)))],
    ['general.file_type', gguf.u32(FILE_TYPE[type])],
    ['general.alignment', gguf.u32(32)],
    ...(type !== 'f16' ? [['general.quantization_version', gguf.u32(2)] as [string, GgufValue]] : []),
    ...llamaMetadata(c),
    ...tokenizerMetadata(source, c.vocabSize),
    ['mopt.version', gguf.str(MOPT_VERSION)],
    ['mopt.gguf_type', gguf.str(type)],
    ['mopt.preset', gguf.str(r.preset ?? 'custom')],
    ['mopt.algorithm', gguf.str(q.recipe.algorithm)],
    ['mopt.calibration_windows', gguf.u32(energy !== null ? windows.length : 0)],
  ]);
  return { source, type, metadata, tensors, quantizedLinears, excluded, notes };
}

/** Writes a prepared GGUF to OUT/model.gguf: staged beside OUT, renamed into place when complete. */
export function writeGgufExport(p: PreparedGguf, out: string, o: WriteOptions): ExportSummary {
  return writeStaged(p.source, out, o.overwrite, (tmp) => {
    writeGguf(join(tmp, GGUF_FILE), p.metadata, p.tensors);
    o.alsoWrite?.(tmp);
    const dir = resolve(out);
    return { dir, format: 'gguf', quantAlgo: GGML_OF[p.type], quantizedLinears: p.quantizedLinears, excluded: p.excluded, files: [join(dir, GGUF_FILE)], notes: p.notes };
  });
}
