// Pieces every subcommand shares: option parsing helpers, model opening, output in text or --json.

import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { loadModel } from '../models/load.js';
import type { DecoderLM } from '../models/decoder.js';
import type { LogitsModel } from '../models/logits-model.js';
import { readerFor, type ExportRequest } from '../export/registry.js';
import { Tokenizer } from '../io/tokenizer.js';
import { readJsonFile } from '../io/json-file.js';
import { readNpy } from '../io/npy.js';
import { isQuantDir, loadQuantized, readState } from '../quant/state.js';
import type { DType } from '../tensor/index.js';

export const COMPUTE_DTYPES = ['float32', 'bfloat16', 'float16'] as const;
export type ComputeDType = (typeof COMPUTE_DTYPES)[number];

export function parseDType(s: string): ComputeDType {
  if (!(COMPUTE_DTYPES as readonly string[]).includes(s)) {
    throw new UserError(`--dtype ${s} is not supported; use one of ${COMPUTE_DTYPES.join(', ')}`);
  }
  return s as ComputeDType;
}

export function parseDevice(s: string): string {
  if (s !== 'cpu' && s !== 'cuda') throw new UserError(`--device ${s} is not a device; use cpu or cuda`);
  return s;
}

/** Adds the options every model-running command shares: --device and --dtype. */
export function withRuntimeOptions(c: Command): Command {
  return c
    .option('--device <name>', 'cpu or cuda', parseDevice, 'cpu')
    .option('--dtype <type>', 'compute dtype: float32, bfloat16 or float16', parseDType, 'float32');
}

export type OnnxInt4 = NonNullable<ExportRequest['onnxInt4']>;

/** --onnx-int4: how an ONNX export writes INT4 weights */
export function parseOnnxInt4(s: string): OnnxInt4 {
  if (s !== 'qdq' && s !== 'matmulnbits') throw new UserError(`--onnx-int4 ${s}: use qdq (DequantizeLinear with block_size) or matmulnbits (com.microsoft MatMulNBits)`);
  return s;
}

export const ONNX_INT4_HELP = 'with --export-format onnx: INT4 weights as qdq (standard DequantizeLinear with block_size, default) or matmulnbits (ONNX Runtime\'s com.microsoft MatMulNBits)';

/** Throws when --onnx-int4 is given for another format than onnx. */
export function checkOnnxInt4(onnxInt4: OnnxInt4 | undefined, exportFormat: string | undefined): void {
  if (onnxInt4 !== undefined && exportFormat !== 'onnx') throw new UserError('--onnx-int4 goes with --export-format onnx');
}

export function parseIntOption(name: string, min = 1): (s: string) => number {
  return (s: string) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new UserError(`${name} must be an integer >= ${min}, got "${s}"`);
    return n;
  };
}

export function parseFloatOption(name: string, lo: number, hi: number): (s: string) => number {
  return (s: string) => {
    const n = Number(s);
    if (!Number.isFinite(n) || n < lo || n > hi) throw new UserError(`${name} must be a number in [${lo}, ${hi}], got "${s}"`);
    return n;
  };
}

/** "1, 2,3" -> [1, 2, 3] */
export function parseIdList(s: string): number[] {
  const parts = s.split(',').map((p) => p.trim()).filter((p) => p !== '');
  const ids = parts.map(Number);
  if (parts.length === 0 || ids.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new UserError(`token ids must be a comma-separated list of non-negative integers, got "${s}"`);
  }
  return ids;
}

export function requireModelDir(dir: string): string {
  if (!existsSync(dir)) throw new UserError(`model directory ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new UserError(`--model ${dir} is not a directory; point it at a Hugging Face model directory`);
  return dir;
}

export interface OpenedModel {
  /** a DecoderLM, except for exports that run elsewhere (ONNX in ONNX Runtime): those compute logits only */
  model: LogitsModel;
  tokenizer: Tokenizer | null;
  /** token ids that end generation (generation_config.json, else config.json) */
  eosTokenIds: number[];
}

/**
 * A Hugging Face model directory, a `mopt quantize` output directory (its source model with the saved
 * quantization applied; tokenizer and generation config come from the source), or any checkpoint mopt
 * exports (src/export/registry.ts), run from its packed weights.
 */
export function openModel(path: string, dtype: DType, device: string): OpenedModel {
  if (!existsSync(path)) throw new UserError(`model ${path} does not exist`);
  const reader = readerFor(path);
  if (reader !== null) {
    const c = reader.open(path, { dtype, device });
    const tokenizer = c.tokenizer ?? (c.metaDir === null ? null : Tokenizer.tryFromModelDir(c.metaDir));
    return { model: c.model, tokenizer, eosTokenIds: c.eosTokenIds ?? (c.metaDir === null ? c.model.config.eosTokenIds : eosIds(c.metaDir, c.model)) };
  }
  requireModelDir(path);
  let dir = path;
  let model: DecoderLM;
  if (isQuantDir(dir)) {
    model = loadQuantized(dir, { dtype, device }).model;
    dir = readState(dir).source;
  } else {
    model = loadModel(dir, { dtype, device });
  }
  return { model, tokenizer: Tokenizer.tryFromModelDir(dir), eosTokenIds: eosIds(dir, model) };
}

/** generation_config.json's eos_token_id, else config.json's */
function eosIds(dir: string, model: LogitsModel): number[] {
  const genPath = join(dir, 'generation_config.json');
  if (existsSync(genPath)) {
    const g = readJsonFile(genPath, 'generation config') as Record<string, unknown>;
    const e = g.eos_token_id;
    if (typeof e === 'number') return [e];
    if (Array.isArray(e) && e.every((x) => typeof x === 'number')) return e as number[];
  }
  return model.config.eosTokenIds;
}

export function requireTokenizer(t: Tokenizer | null, dir: string, alternative: string): Tokenizer {
  if (t === null) throw new UserError(`${dir} has no tokenizer.json; ${alternative}`);
  return t;
}

/** Token-id rows from .npy ([batch, seq] or [seq] integers) or .json (array or array of arrays). */
export function readIdRows(path: string): number[][] {
  if (!existsSync(path)) throw new UserError(`ids file ${path} does not exist`);
  if (path.endsWith('.npy')) {
    const t = readNpy(path);
    if (t.dtype !== 'int64' && t.dtype !== 'int32' && t.dtype !== 'int16' && t.dtype !== 'uint8' && t.dtype !== 'int8') {
      throw new UserError(`${path}: token ids must be an integer array, got ${t.dtype}`);
    }
    const flat = t.data instanceof BigInt64Array ? Array.from(t.data, Number) : Array.from(t.data as ArrayLike<number>);
    if (t.shape.length === 1) return [flat];
    if (t.shape.length !== 2) throw new UserError(`${path}: token ids must have shape [batch, seq] or [seq], got [${t.shape.join(', ')}]`);
    const [b, s] = t.shape;
    return Array.from({ length: b }, (_, i) => flat.slice(i * s, (i + 1) * s));
  }
  if (path.endsWith('.json')) {
    const j = readJsonFile(path, 'token ids');
    const rows = Array.isArray(j) && j.every((x) => typeof x === 'number') ? [j as number[]] : j;
    if (!Array.isArray(rows) || !rows.every((r) => Array.isArray(r) && r.every((x) => Number.isInteger(x) && x >= 0))) {
      throw new UserError(`${path}: expected a JSON array of token ids or an array of such arrays`);
    }
    return rows as number[][];
  }
  throw new UserError(`${path}: token ids must be a .npy or .json file`);
}

export function checkIdsInVocab(rows: number[][], vocab: number, source: string): void {
  for (const r of rows) {
    for (const id of r) {
      if (id >= vocab) throw new UserError(`${source}: token id ${id} is outside the model's vocabulary (vocab_size ${vocab})`);
    }
  }
}

/** Prints a result: JSON on stdout with --json, else the human text. */
export function emit(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(value) + '\n' : text.endsWith('\n') ? text : text + '\n');
}
