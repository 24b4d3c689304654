// The tensors of one quantized Linear `<m>` in a compressed-tensors checkpoint: names, dtypes, shapes and
// packing, from mopt's codes and scales (writing) and back to float weights (loading). Sources, in
// vllm-project/compressed-tensors:
//   compressors/quantized_compressors/pack_quantized.py  pack-quantized: `weight_packed` int32 [out, in/8],
//       pack_to_int32: value + 8 as unsigned, 8 per int32, element k of a word at bits 4k (LSB first, along
//       the input dim); `weight_shape` = torch.tensor(weight.shape) (int64 [2]); zero points not saved when
//       symmetric (quantized_compressors/base.py _skip_zp)
//   compressors/quantized_compressors/fp4_quantized.py  nvfp4-pack-quantized: `weight_packed` uint8 [out, in/2],
//       pack_fp4_to_uint8: element 2k in the low nibble, sign in bit 3; `weight_scale` cast to scale_dtype
//       (float8_e4m3fn) [out, in/16]; `weight_global_scale` float32 [1]
//   quantization/utils/helpers.py  generate_gparam: global_scale = 448 * 6 / amax, a DIVISOR: the block scale
//       is global_scale * block_amax / 6, and quantization/lifecycle/forward.py divides it back
//       (scale / global_scale), so compressed-tensors' global scale is the reciprocal of Model Optimizer's
//       weight_scale_2 / input_scale (amax / 2688); vLLM's compressed_tensors_w4a4_nvfp4.py takes
//       1 / weight_global_scale for its kernels
//   quantization/lifecycle/initialize.py  scale shapes: tensor (1,), channel (out, 1), group (out, in/group);
//       `input_scale` (1,) for static tensor inputs, `input_global_scale` (1,) for NVFP4 (dynamic "local")
// float-quantized / int-quantized keep `weight` (float8_e4m3fn / int8 [out, in]).
// Scales are written in float32: compressed-tensors writes the model dtype for the non-FP8 scales and vLLM
// casts whatever it reads to the parameter's dtype; float32 keeps the scales mopt quantized with, so the loaded
// model is the fake-quantized one.

import type { RawTensor } from '../io/raw-tensor.js';
import { dequantizeWeight, type ActScheme, type QuantizedWeight, type WeightScheme } from '../quant/scheme.js';
import type { Fp8Quantized } from '../quant/formats/fp8.js';
import type { Int8Quantized } from '../quant/formats/int8.js';
import { int4Values, type Int4Quantized } from '../quant/formats/int4.js';
import type { Nvfp4Quantized } from '../quant/formats/nvfp4.js';
import { UserError } from '../util/errors.js';

/** What a tensor must look like; `scale`: its values must be finite and positive. */
export interface TensorSpec {
  dtype: RawTensor['dtype'];
  shape: number[];
  scale: boolean;
}

const NVFP4_BOUND = 6 * 448;
/** calibrated amax -> input_scale (amax / bound) for static per-tensor inputs */
const INPUT_BOUND = { fp8: 448, int8: 127 } as const;
/** K/V scales are amax / 448 (compressed-tensors' static FP8 tensor scale: max / (range / 2)) */
export const KV_BOUND = 448;

/** The tensors a quantized Linear of this weight scheme needs, by suffix of `<m>.`. */
export function weightSpecs(s: WeightScheme, shape: readonly [number, number]): Record<string, TensorSpec> {
  const [out, inp] = shape;
  switch (s.kind) {
    case 'fp8':
      if (s.granularity !== 'tensor') break;
      return { weight: { dtype: 'float8_e4m3fn', shape: [out, inp], scale: false }, weight_scale: { dtype: 'float32', shape: [1], scale: true } };
    case 'int8':
      return { weight: { dtype: 'int8', shape: [out, inp], scale: false }, weight_scale: { dtype: 'float32', shape: [out, 1], scale: true } };
    case 'int4':
      return {
        weight_packed: { dtype: 'int32', shape: [out, Math.ceil(inp / 8)], scale: false },
        weight_scale: { dtype: 'float32', shape: [out, inp / s.groupSize], scale: true },
        weight_shape: { dtype: 'int64', shape: [2], scale: false },
      };
    case 'nvfp4':
      return {
        weight_packed: { dtype: 'uint8', shape: [out, inp / 2], scale: false },
        weight_scale: { dtype: 'float8_e4m3fn', shape: [out, inp / 16], scale: true },
        weight_global_scale: { dtype: 'float32', shape: [1], scale: true },
      };
    default:
      break;
  }
  throw new UserError(`compressed-tensors: ${s.kind} weights are not written or loaded (only the presets' fp8 per tensor, int8, int4, nvfp4)`);
}

/** The input-scale tensor of a static input quantizer, by suffix, or null for none. */
export function inputSpec(a: ActScheme): [string, TensorSpec] | null {
  if (a.kind === 'fp8' || a.kind === 'int8') return ['input_scale', { dtype: 'float32', shape: [1], scale: true }];
  if (a.kind === 'nvfp4') return ['input_global_scale', { dtype: 'float32', shape: [1], scale: true }];
  return null;
}

const f32 = (shape: number[], data: Float32Array): RawTensor => ({ dtype: 'float32', shape, data });

/** The reciprocal as float32: compressed-tensors' global scale of Model Optimizer's fp32 scale s2 (and back). */
export const reciprocal = (v: number): number => Math.fround(1 / v);

/**
 * The smallest fp32 amax' >= amax whose NVFP4 global scale s2 = fp32(amax' / 2688) comes back from the
 * global scale compressed-tensors stores, fp32(1 / s2): for about one s2 in nine no fp32 value maps back, and
 * the scale moves up by a few ulps (up, so no block scale passes e4m3's 448). 0 and non-finite values stay;
 * an amax whose 1 / s2 overflows float32 is a UserError naming `what`.
 */
export function reciprocalExactAmax(amax: number, what = 'NVFP4 global amax'): number {
  if (amax === 0 || !Number.isFinite(amax)) return amax; // 0 stays 0; the checker names a non-finite one
  if (!Number.isFinite(reciprocal(amaxScale(amax, NVFP4_BOUND)))) {
    // 1 / s2 overflows float32 below about 7.9e-36
    throw new UserError(`${what}: amax ${amax} is too small for compressed-tensors' global scale 1 / (amax / 2688) in float32; export with --export-format modelopt`);
  }
  const bits = new Float32Array(1);
  const word = new Uint32Array(bits.buffer);
  bits[0] = amax;
  if (bits[0] < amax) word[0]! += 1; // fp32 rounded down: the next fp32 up
  for (let i = 0; i < 1024; i++, word[0]! += 1) {
    const s2 = amaxScale(bits[0]!, NVFP4_BOUND);
    if (reciprocal(reciprocal(s2)) === s2) return bits[0]!;
  }
  throw new Error(`reciprocalExactAmax: no fp32 amax near ${amax} has a round-tripping NVFP4 global scale`);
}

/** `<m>.input_scale` (amax / bound) or `<m>.input_global_scale` (1 / (amax / 2688)) of a calibrated input. */
export function inputTensor(a: ActScheme, amax: number): [string, RawTensor] | null {
  if (a.kind === 'fp8' || a.kind === 'int8') return ['input_scale', f32([1], Float32Array.of(amaxScale(amax, INPUT_BOUND[a.kind])))];
  if (a.kind === 'nvfp4') return ['input_global_scale', f32([1], Float32Array.of(reciprocal(amaxScale(amax, NVFP4_BOUND))))];
  return null;
}

/** The calibrated amax an input tensor stands for: exactly the one whose fp32 scale it holds. */
export function inputAmax(a: ActScheme, t: RawTensor): number {
  const v = Number(t.data[0]);
  if (a.kind === 'fp8' || a.kind === 'int8') return v * INPUT_BOUND[a.kind];
  if (a.kind === 'nvfp4') return reciprocal(v) * NVFP4_BOUND;
  throw new Error(`inputAmax: ${a.kind} inputs have no stored scale`);
}

// as formats/common.ts amaxScale: fp32 amax / bound, 1 for an all-zero tensor
const amaxScale = (amax: number, bound: number): number => (amax === 0 ? 1 : Math.fround(amax / bound));

/**
 * pack_to_int32 (pack_quantized.py): signed `bits`-bit values [rows, cols] -> int32 [rows, ceil(cols / (32 / bits))],
 * each value offset by 2^(bits-1) to unsigned, element k of a word at bits k*bits (LSB first), rows padded with 0.
 */
export function packInt32(q: Int8Array, rows: number, cols: number, bits: number): Int32Array {
  const per = 32 / bits;
  const words = Math.ceil(cols / per);
  const offset = 1 << (bits - 1);
  const mask = (1 << bits) - 1;
  const out = new Int32Array(rows * words);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * words + Math.floor(c / per)]! |= ((q[r * cols + c]! + offset) & mask) << ((c % per) * bits);
  }
  return out;
}

/** unpack_from_int32: the inverse of packInt32. */
export function unpackInt32(p: Int32Array, rows: number, cols: number, bits: number): Int8Array {
  const per = 32 / bits;
  const words = Math.ceil(cols / per);
  const offset = 1 << (bits - 1);
  const mask = (1 << bits) - 1;
  const out = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = ((p[r * words + Math.floor(c / per)]! >>> ((c % per) * bits)) & mask) - offset;
  }
  return out;
}

/** scales [rows, perRow] with row r multiplied by rowScale[r] (fp32, one rounding), or the scales themselves. */
function scaleRows(scales: Float32Array, rows: number, rowScale: Float32Array | undefined): Float32Array {
  if (rowScale === undefined) return scales;
  const per = scales.length / rows;
  return Float32Array.from(scales, (s, i) => Math.fround(s * rowScale[Math.floor(i / per)]!));
}

/**
 * The tensors of a quantized weight by suffix. `rowScale` folds a factor per output row into the per-row scales
 * (the next Linear's smoothing, compressed-tensors-fold.ts); only formats with per-row scales accept one.
 */
export function weightTensors(w: QuantizedWeight, rowScale?: Float32Array): Record<string, RawTensor> {
  const [out, inp] = w.meta.shape;
  if (rowScale !== undefined && w.meta.format !== 'int8' && w.meta.format !== 'int4') throw new Error(`weightTensors: ${w.meta.format} scales cannot take a per-row factor`);
  switch (w.meta.format) {
    case 'fp8': {
      const x = w as Fp8Quantized;
      if (x.meta.granularity !== 'tensor') break;
      return { weight: { dtype: 'float8_e4m3fn', shape: [out, inp], data: x.codes }, weight_scale: f32([1], x.scales) };
    }
    case 'int8': {
      const x = w as Int8Quantized;
      return { weight: { dtype: 'int8', shape: [out, inp], data: x.codes }, weight_scale: f32([out, 1], scaleRows(x.scales, out, rowScale)) };
    }
    case 'int4': {
      const x = w as Int4Quantized;
      return {
        weight_packed: { dtype: 'int32', shape: [out, Math.ceil(inp / 8)], data: packInt32(int4Values(x), out, inp, 4) },
        weight_scale: f32([out, inp / x.meta.groupSize], scaleRows(x.scales, out, rowScale)),
        weight_shape: { dtype: 'int64', shape: [2], data: BigInt64Array.of(BigInt(out), BigInt(inp)) },
      };
    }
    case 'nvfp4': {
      const x = w as Nvfp4Quantized;
      return {
        weight_packed: { dtype: 'uint8', shape: [out, inp / 2], data: x.codes }, // the same nibble order as mopt's codes
        weight_scale: { dtype: 'float8_e4m3fn', shape: [out, inp / 16], data: x.scales },
        weight_global_scale: f32([1], Float32Array.of(reciprocal(x.scale2))),
      };
    }
    default:
      break;
  }
  throw new UserError(`compressed-tensors export of ${w.meta.format} weights is not supported`);
}

/**
 * The float weight [out, in] that tensors checked against weightSpecs stand for. NVFP4 dequantizes with
 * s2 = fp32(1 / weight_global_scale), the scale mopt's codes were made with whenever that reciprocal round-trips.
 */
export function weightValues(s: WeightScheme, shape: [number, number], t: Record<string, RawTensor>): Float32Array {
  const [out, inp] = shape;
  switch (s.kind) {
    case 'fp8':
      return dequantizeWeight({ codes: t.weight!.data as Uint8Array, scales: t.weight_scale!.data as Float32Array, meta: { format: 'fp8', granularity: 'tensor', arith: 'float32', shape } });
    case 'int8':
      return dequantizeWeight({ codes: t.weight!.data as Int8Array, scales: t.weight_scale!.data as Float32Array, meta: { format: 'int8', shape } });
    case 'int4': {
      const q = unpackInt32(t.weight_packed!.data as Int32Array, out, inp, 4);
      const scales = t.weight_scale!.data as Float32Array;
      const groups = inp / s.groupSize;
      const values = new Float32Array(out * inp);
      for (let i = 0; i < values.length; i++) values[i] = q[i]! * scales[Math.floor(i / inp) * groups + Math.floor((i % inp) / s.groupSize)]!;
      return values;
    }
    case 'nvfp4': {
      const scale2 = reciprocal(Number(t.weight_global_scale!.data[0]));
      return dequantizeWeight({ codes: t.weight_packed!.data as Uint8Array, scales: t.weight_scale!.data as Uint8Array, scale2, meta: { format: 'nvfp4', blockSize: 16, shape } });
    }
    default:
      throw new UserError(`compressed-tensors: loading ${s.kind} weights is not supported`);
  }
}
