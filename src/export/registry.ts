// The export formats and checkpoint readers mopt knows, by name. An export format turns a planned,
// calibrated QuantizedModel into a checkpoint directory; a reader recognizes a checkpoint on disk and opens
// it as a runnable model (so eval / generate / forward accept every exported format). Each format lives in
// its own files; this table is the only place that lists them.

import type { QuantizedModel } from '../quant/ptq.js';
import type { LogitsModel } from '../models/logits-model.js';
import type { LoadOptions } from '../models/load.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { UserError } from '../util/errors.js';
import { modeloptFormat, modeloptReader } from './modelopt-entry.js';
import { onnxFormat, onnxReader } from './onnx-entry.js';
import { compressedTensorsFormat, compressedTensorsReader } from './compressed-tensors-entry.js';
import { ggufFormat, ggufReader } from './gguf-entry.js';

export interface ExportSummary {
  dir: string;
  format: string;
  /** the format's own name for the quantization (e.g. Model Optimizer's quant_algo) */
  quantAlgo: string;
  quantizedLinears: number;
  excluded: string[];
  files: string[];
  /** format-specific lines for the summary (e.g. GGUF tensors that fell back to another block type) */
  notes?: string[];
}

/** What the quantization state says about the model being exported. */
export interface ExportRequest {
  preset: string | null;
  kvCache: string | null;
  /** ONNX only: INT4 weights as DequantizeLinear with block_size (default) or com.microsoft MatMulNBits */
  onnxInt4?: 'qdq' | 'matmulnbits';
  /** GGUF only: the block type of the quantized Linears (f16, q8_0, q4_0, q4_k) */
  ggufType?: string;
  /** the calibration token windows, for formats that weight their rounding by activation statistics (GGUF) */
  calibration?: readonly (readonly number[])[];
}

export interface WriteOptions {
  /** replace a non-empty output directory */
  overwrite?: boolean;
  maxShardBytes?: number;
  /** writes more files (a report, the quantization state) into the staged directory before it is renamed into place */
  alsoWrite?: (dir: string) => void;
}

/** A checkpoint computed and checked in memory, ready to be written. */
export interface PreparedCheckpoint {
  quantAlgo: string;
  write(out: string, o: WriteOptions): ExportSummary;
}

export interface ExportFormat {
  name: string;
  /** one sentence for --help: what it writes and who loads it */
  help: string;
  /** throws a UserError when this preset cannot be written in this format (checked before calibration) */
  check(r: ExportRequest): void;
  /** called on a fresh plan before the algorithms run, when quantizing for this format (e.g. q.noSmoothing) */
  restrictPlan?(q: QuantizedModel): void;
  /** q is planned and calibrated but not applied: exporters read the source weights through it */
  prepare(q: QuantizedModel, source: string, r: ExportRequest): PreparedCheckpoint;
}

export interface OpenedCheckpoint {
  /** a DecoderLM, or a model that only computes logits (an ONNX graph in ONNX Runtime) */
  model: LogitsModel;
  /** directory with tokenizer.json / generation_config.json, when the checkpoint keeps them as files */
  metaDir: string | null;
  /** a tokenizer carried inside the checkpoint itself (e.g. GGUF metadata) */
  tokenizer?: Tokenizer;
  eosTokenIds?: number[];
}

export interface CheckpointReader {
  name: string;
  /** true when `path` is a checkpoint of this format (cheap: file names, a header) */
  detect(path: string): boolean;
  open(path: string, o: LoadOptions): OpenedCheckpoint;
}

const FORMATS: readonly ExportFormat[] = [modeloptFormat, onnxFormat, compressedTensorsFormat, ggufFormat];
const READERS: readonly CheckpointReader[] = [modeloptReader, onnxReader, compressedTensorsReader, ggufReader];

export const EXPORT_FORMAT_NAMES: readonly string[] = FORMATS.map((f) => f.name);

export function exportFormat(name: string): ExportFormat {
  const f = FORMATS.find((x) => x.name === name);
  if (f === undefined) throw new UserError(`--export-format ${name} is not available; formats: ${EXPORT_FORMAT_NAMES.join(', ')}`);
  return f;
}

export function exportFormatsHelp(): string {
  return FORMATS.map((f) => `${f.name}: ${f.help}`).join(' ');
}

/** The reader for the checkpoint at `path`, or null when it is none of the exported formats. */
export function readerFor(path: string): CheckpointReader | null {
  return READERS.find((r) => r.detect(path)) ?? null;
}
