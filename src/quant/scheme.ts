// From recipe settings to what a quantizer does: a resolved QuantizerSettings (recipes/types.ts) plus the
// quantizer's role (a Linear's weight or input, or the attention's K/V) picks one of the bit-exact format
// functions in src/quant/formats. Each scheme also says whether a tensor of a given shape fits its blocks:
// a layer that does not fit is left unquantized and reported (issue #4), never quantized wrongly.
//
// Settings -> scheme (Model Optimizer's quantizer attributes, modelopt.md §1.1):
//   weights  fp8 (axis 0: per channel, else per tensor) | fp8 + block_size: 2-D blocks | int8 axis 0 |
//            int4 block 32/64/128 (then fp8: W4A8) | nvfp4 block 16 | mxfp8 / mxfp4 block 32
//   inputs   fp8 static per tensor (dynamic: per token) | int8 static | nvfp4 (dynamic blocks, calibrated
//            global amax) | mxfp8 / mxfp4 dynamic
//   K / V    fp8 | nvfp4, per tensor from a calibrated amax

import { UserError } from '../util/errors.js';
import type { QuantizerSettings } from './recipes/types.js';
import { absMax, type Shape2 } from './formats/common.js';
import * as fp8 from './formats/fp8.js';
import * as fp8Block from './formats/fp8-block.js';
import * as int8 from './formats/int8.js';
import * as int4 from './formats/int4.js';
import * as w4a8 from './formats/w4a8.js';
import * as nvfp4 from './formats/nvfp4.js';
import * as mx from './formats/mx.js';
import { fakeQuantize as actFakeQuantize, type ActCalib } from './formats/activations.js';
import type { KvFormat } from './formats/kv-cache.js';

export type WeightScheme =
  | { kind: 'fp8'; granularity: fp8.Fp8Granularity }
  | { kind: 'fp8-block'; blockSize: number }
  | { kind: 'int8' }
  | { kind: 'int4'; groupSize: int4.Int4GroupSize }
  | { kind: 'w4a8'; groupSize: int4.Int4GroupSize }
  | { kind: 'nvfp4' }
  | { kind: 'mxfp8' | 'mxfp4' };

export type ActScheme =
  | { kind: 'fp8' | 'int8' | 'nvfp4'; calibrated: true }
  | { kind: 'fp8-per-token' | 'mxfp8' | 'mxfp4'; calibrated: false };

export interface KvScheme {
  kind: KvFormat;
}

function unsupported(name: string, s: QuantizerSettings, why: string): never {
  throw new UserError(`quantizer ${name}: ${JSON.stringify(s)} is not supported: ${why}`);
}

function int4Group(name: string, s: QuantizerSettings): int4.Int4GroupSize {
  const g = s.blockSize ?? 128;
  if (g !== 32 && g !== 64 && g !== 128) unsupported(name, s, 'INT4 groups are 32, 64 or 128');
  return g;
}

export function weightScheme(name: string, s: QuantizerSettings): WeightScheme {
  if (s.then !== undefined) {
    if (s.format === 'int4' && s.then.format === 'fp8' && s.then.then === undefined) return { kind: 'w4a8', groupSize: int4Group(name, s) };
    unsupported(name, s, 'the only two-stage weight format is int4 then fp8 (W4A8)');
  }
  switch (s.format) {
    case 'fp8':
      if (s.blockSize !== undefined) return { kind: 'fp8-block', blockSize: s.blockSize };
      return { kind: 'fp8', granularity: s.axis === 0 ? 'channel' : 'tensor' };
    case 'int8':
      if (s.axis !== 0) unsupported(name, s, 'INT8 weights are per output channel (axis: 0)');
      return { kind: 'int8' };
    case 'int4':
      return { kind: 'int4', groupSize: int4Group(name, s) };
    case 'nvfp4':
      if ((s.blockSize ?? 16) !== 16) unsupported(name, s, 'NVFP4 weights use blocks of 16');
      return { kind: 'nvfp4' };
    case 'mxfp8':
    case 'mxfp4':
      return { kind: s.format };
  }
}

export function actScheme(name: string, s: QuantizerSettings): ActScheme {
  if (s.then !== undefined) unsupported(name, s, 'activation quantizers have one stage');
  switch (s.format) {
    case 'fp8':
      if (s.blockSize !== undefined) unsupported(name, s, 'FP8 activations are per tensor or per token, not blocked');
      return s.dynamic === true ? { kind: 'fp8-per-token', calibrated: false } : { kind: 'fp8', calibrated: true };
    case 'int8':
      if (s.axis !== undefined || s.dynamic === true) unsupported(name, s, 'INT8 activations are static per tensor');
      return { kind: 'int8', calibrated: true };
    case 'nvfp4':
      if ((s.blockSize ?? 16) !== 16) unsupported(name, s, 'NVFP4 activations use blocks of 16');
      return { kind: 'nvfp4', calibrated: true };
    case 'mxfp8':
    case 'mxfp4':
      return { kind: s.format, calibrated: false };
    case 'int4':
      return unsupported(name, s, 'INT4 is a weight-only format');
  }
}

export function kvScheme(name: string, s: QuantizerSettings): KvScheme {
  if (s.format !== 'fp8' && s.format !== 'nvfp4') unsupported(name, s, 'the KV cache is quantized to fp8 or nvfp4');
  if (s.then !== undefined || s.axis !== undefined) unsupported(name, s, 'KV quantizers are per tensor');
  return { kind: s.format };
}

/** Why a weight [out, in] does not fit the scheme's blocks, or null when it fits. */
export function weightMisfit(w: WeightScheme, shape: Shape2): string | null {
  const [rows, cols] = shape;
  const need = (what: string, n: number, m: number): string | null => (n % m === 0 ? null : `${what} ${n} is not a multiple of ${m}`);
  switch (w.kind) {
    case 'fp8':
    case 'int8':
      return null;
    case 'fp8-block':
      return need('out dim', rows, w.blockSize) ?? need('in dim', cols, w.blockSize);
    case 'int4':
    case 'w4a8':
      // codes are packed two per byte along the output dim
      return need('in dim', cols, w.groupSize) ?? need('out dim', rows, 2);
    case 'nvfp4':
      return need('in dim', cols, 16);
    case 'mxfp8':
    case 'mxfp4':
      return need('in dim', cols, 32);
  }
}

/** Why activations with `hidden` columns do not fit the scheme's blocks, or null. */
export function actMisfit(a: ActScheme | KvScheme, hidden: number): string | null {
  const block = a.kind === 'nvfp4' ? 16 : a.kind === 'mxfp8' || a.kind === 'mxfp4' ? 32 : 1;
  return hidden % block === 0 ? null : `hidden size ${hidden} is not a multiple of ${block}`;
}

/**
 * The per-tensor amax that fused siblings (q/k/v, gate/up) share on export: NVFP4's global scale and W4A8's
 * FP8 stage take the max over the group, and the block scales follow from it (formats.md, Model Optimizer
 * `_fuse_shared_input_modules`). W4A8's is max |W| of the unquantized weight, as Model Optimizer calibrates
 * its second stage (formats/w4a8.ts). Null for every other scheme, FP8 per tensor included: the export keeps
 * each sibling's own FP8 weight_scale.
 */
export function tensorAmax(w: WeightScheme, x: Float32Array, shape: Shape2): number | null {
  return sharesTensorAmax(w) ? absMax(x, 0, x.length) : null;
}

/** Whether fused siblings share a per-tensor amax under this scheme (tensorAmax is not null). */
export function sharesTensorAmax(w: WeightScheme): boolean {
  return w.kind === 'nvfp4' || w.kind === 'w4a8';
}

/** A weight's codes and scales as the export writes them (one format module's quantize() result). */
export type QuantizedWeight =
  | fp8.Fp8Quantized | fp8Block.Fp8BlockQuantized | int8.Int8Quantized | int4.Int4Quantized | w4a8.W4a8Quantized | nvfp4.Nvfp4Quantized | mx.MxQuantized;

/**
 * Codes and scales of a weight [out, in]; `shared` is the per-tensor amax of a fused sibling group (tensorAmax)
 * or a static NVFP4 global amax, `blockAmax` static INT4 group / NVFP4 block amax values (algorithm-chosen).
 */
export function quantizeWeight(w: WeightScheme, x: Float32Array, shape: Shape2, shared?: number, blockAmax?: Float32Array): QuantizedWeight {
  switch (w.kind) {
    case 'fp8':
      return fp8.quantize(x, shape, { granularity: w.granularity, ...(shared === undefined || w.granularity !== 'tensor' ? {} : { tensorAmax: shared }) });
    case 'fp8-block':
      return fp8Block.quantize(x, shape, { blockSize: w.blockSize });
    case 'int8':
      return int8.quantize(x, shape);
    case 'int4':
      return int4.quantize(x, shape, { groupSize: w.groupSize, ...(blockAmax ? { blockAmax } : {}) });
    case 'w4a8':
      return w4a8.quantize(x, shape, { groupSize: w.groupSize }, shared);
    case 'nvfp4':
      return nvfp4.quantize(x, shape, shared, blockAmax);
    case 'mxfp8':
    case 'mxfp4':
      return mx.quantize(x, shape, { element: w.kind });
  }
}

/** The float32 values codes and scales stand for. */
export function dequantizeWeight(q: QuantizedWeight): Float32Array {
  switch (q.meta.format) {
    case 'fp8':
      return fp8.dequantize(q as fp8.Fp8Quantized);
    case 'fp8-block':
      return fp8Block.dequantize(q as fp8Block.Fp8BlockQuantized);
    case 'int8':
      return int8.dequantize(q as int8.Int8Quantized);
    case 'int4':
      return int4.dequantize(q as int4.Int4Quantized);
    case 'w4a8':
      return w4a8.dequantize(q as w4a8.W4a8Quantized);
    case 'nvfp4':
      return nvfp4.dequantize(q as nvfp4.Nvfp4Quantized);
    case 'mxfp8':
    case 'mxfp4':
      return mx.dequantize(q as mx.MxQuantized);
  }
}

/**
 * Quantize -> dequantize of a weight [out, in] (float32 values), bit-exact with the export path; `shared` is
 * the per-tensor amax of a fused sibling group (tensorAmax), else the weight's own is used. W4A8's dequantize
 * runs both stages (INT4 groups, then FP8 per tensor), so its export reproduces it too.
 */
export function fakeQuantWeight(w: WeightScheme, x: Float32Array, shape: Shape2, shared?: number): Float32Array {
  return dequantizeWeight(quantizeWeight(w, x, shape, shared));
}

/** Quantize -> dequantize of activations [tokens, hidden]; `amax` is the calibrated one (static formats). */
export function fakeQuantAct(a: ActScheme | KvScheme, x: Float32Array, shape: Shape2, amax: number | null): Float32Array {
  return actFakeQuantize(x, shape, actCalib(a, amax)).y;
}

function actCalib(a: ActScheme | KvScheme, amax: number | null): ActCalib {
  switch (a.kind) {
    case 'fp8':
    case 'int8':
    case 'nvfp4':
      if (amax === null) throw new Error(`${a.kind} activation quantizer used before calibration`);
      return { format: a.kind, amax };
    case 'fp8-per-token':
    case 'mxfp8':
    case 'mxfp4':
      return { format: a.kind };
  }
}

/** Bits stored per weight element, scales included (for the report's effective bits per weight). */
export function bitsPerWeight(w: WeightScheme, shape: Shape2): number {
  const [rows, cols] = shape;
  const n = rows * cols;
  switch (w.kind) {
    case 'fp8':
      return 8 + (w.granularity === 'channel' ? (32 * rows) / n : 32 / n);
    case 'fp8-block':
      return 8 + (32 * (rows / w.blockSize) * (cols / w.blockSize)) / n;
    case 'int8':
      return 8 + (32 * rows) / n;
    case 'int4':
      return 4 + 32 / w.groupSize; // float32 group scales, as formats/int4.ts exports them
    case 'w4a8':
      return 4 + 32 / w.groupSize + 32 / n;
    case 'nvfp4':
      return 4 + 8 / 16 + 32 / n; // e4m3 block scales + fp32 global scale
    case 'mxfp8':
      return 8 + 8 / 32;
    case 'mxfp4':
      return 4 + 8 / 32;
  }
}
