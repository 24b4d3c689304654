// The tensors of one quantized Linear in Model Optimizer's unified Hugging Face checkpoint (formats.md
// "Packing on export", docs/export.md): names by suffix, dtypes, shapes and packing, for writing
// (weightTensors), checking (weightSpecs) and reading back (weightFromTensors); and the bounds that turn a
// calibrated amax into input_scale / k_scale / v_scale. Writer and reader share these tables.

import type { RawTensor } from '../io/raw-tensor.js';
import type { QuantizedWeight, WeightScheme } from '../quant/scheme.js';
import type { Fp8Quantized } from '../quant/formats/fp8.js';
import type { Int8Quantized } from '../quant/formats/int8.js';
import type { Int4Quantized } from '../quant/formats/int4.js';
import type { W4a8Quantized } from '../quant/formats/w4a8.js';
import type { Nvfp4Quantized } from '../quant/formats/nvfp4.js';
import type { MxQuantized } from '../quant/formats/mx.js';
import { UserError } from '../util/errors.js';

/** Bound that turns a calibrated amax into the exported input_scale / k_scale / v_scale (scale = amax / bound). */
export const INPUT_BOUND = { fp8: 448, int8: 127, nvfp4: 6 * 448 } as const;
/** Model Optimizer exports K/V scales as amax / 448 for FP8 and NVFP4 caches alike. */
export const KV_BOUND = 448;

const f32 = (v: number): RawTensor => ({ dtype: 'float32', shape: [], data: Float32Array.of(v) });

/** `<m>.weight`, `<m>.weight_scale` and `<m>.weight_scale_2` of a quantized weight, by suffix. */
export function weightTensors(q: QuantizedWeight): Record<string, RawTensor> {
  const [out, inp] = q.meta.shape;
  switch (q.meta.format) {
    case 'fp8': {
      const w = q as Fp8Quantized;
      const scale: RawTensor = w.meta.granularity === 'tensor' ? f32(w.scales[0]!) : { dtype: 'float32', shape: [out], data: w.scales };
      return { weight: { dtype: 'float8_e4m3fn', shape: [out, inp], data: w.codes }, weight_scale: scale };
    }
    case 'int8': {
      const w = q as Int8Quantized;
      return { weight: { dtype: 'int8', shape: [out, inp], data: w.codes }, weight_scale: { dtype: 'float32', shape: [out], data: w.scales } };
    }
    case 'int4': {
      const w = q as Int4Quantized;
      return { weight: { dtype: 'uint8', shape: [out / 2, inp], data: w.codes }, weight_scale: { dtype: 'float32', shape: [out, inp / w.meta.groupSize], data: w.scales } };
    }
    case 'w4a8': {
      // W4A16's packing and group scales (not divided by weight_scale_2), plus the FP8 stage's scale
      const w = q as W4a8Quantized;
      return {
        weight: { dtype: 'uint8', shape: [out / 2, inp], data: w.codes },
        weight_scale: { dtype: 'float32', shape: [out, inp / w.meta.groupSize], data: w.scales },
        weight_scale_2: f32(w.scale2),
      };
    }
    case 'nvfp4': {
      const w = q as Nvfp4Quantized;
      return {
        weight: { dtype: 'uint8', shape: [out, inp / 2], data: w.codes },
        weight_scale: { dtype: 'float8_e4m3fn', shape: [out, inp / 16], data: w.scales },
        weight_scale_2: f32(w.scale2),
      };
    }
    case 'mxfp8': {
      const w = q as MxQuantized;
      return { weight: { dtype: 'float8_e4m3fn', shape: [out, inp], data: w.codes }, weight_scale: { dtype: 'uint8', shape: [out, inp / 32], data: w.scales } };
    }
    case 'mxfp4': {
      // e2m1 pairs along the input dim (element 2k in the low nibble), one E8M0 scale per 32 (Model Optimizer's MXFP4QTensor)
      const w = q as MxQuantized;
      return { weight: { dtype: 'uint8', shape: [out, inp / 2], data: w.codes }, weight_scale: { dtype: 'uint8', shape: [out, inp / 32], data: w.scales } };
    }
    default:
      throw new UserError(`export of ${q.meta.format} weights is not implemented yet`);
  }
}

/** What a tensor must look like: dtype and shape. */
export interface TensorSpec {
  dtype: RawTensor['dtype'];
  shape: number[];
}

/** The tensors a quantized Linear of this scheme must have in the checkpoint (besides input / pre-quant scales). */
export function weightSpecs(s: WeightScheme, shape: [number, number]): Record<string, TensorSpec> {
  const [out, inp] = shape;
  switch (s.kind) {
    case 'fp8':
      return { weight: { dtype: 'float8_e4m3fn', shape: [out, inp] }, weight_scale: { dtype: 'float32', shape: s.granularity === 'tensor' ? [] : [out] } };
    case 'int8':
      return { weight: { dtype: 'int8', shape: [out, inp] }, weight_scale: { dtype: 'float32', shape: [out] } };
    case 'int4':
      return { weight: { dtype: 'uint8', shape: [out / 2, inp] }, weight_scale: { dtype: 'float32', shape: [out, inp / s.groupSize] } };
    case 'w4a8':
      return { weight: { dtype: 'uint8', shape: [out / 2, inp] }, weight_scale: { dtype: 'float32', shape: [out, inp / s.groupSize] }, weight_scale_2: { dtype: 'float32', shape: [] } };
    case 'nvfp4':
      return { weight: { dtype: 'uint8', shape: [out, inp / 2] }, weight_scale: { dtype: 'float8_e4m3fn', shape: [out, inp / 16] }, weight_scale_2: { dtype: 'float32', shape: [] } };
    case 'mxfp8':
      return { weight: { dtype: 'float8_e4m3fn', shape: [out, inp] }, weight_scale: { dtype: 'uint8', shape: [out, inp / 32] } };
    case 'mxfp4':
      return { weight: { dtype: 'uint8', shape: [out, inp / 2] }, weight_scale: { dtype: 'uint8', shape: [out, inp / 32] } };
    default:
      throw new UserError(`loading ${s.kind} weights from a Model Optimizer checkpoint is not implemented yet`);
  }
}

/** The codes and scales of a weight read back from its tensors (checked against weightSpecs first). */
export function weightFromTensors(s: WeightScheme, shape: [number, number], t: Record<string, RawTensor>): QuantizedWeight {
  switch (s.kind) {
    case 'fp8':
      return { codes: t.weight!.data as Uint8Array, scales: t.weight_scale!.data as Float32Array, meta: { format: 'fp8', granularity: s.granularity, arith: 'float32', shape } };
    case 'int8':
      return { codes: t.weight!.data as Int8Array, scales: t.weight_scale!.data as Float32Array, meta: { format: 'int8', shape } };
    case 'int4':
      return { codes: t.weight!.data as Uint8Array, scales: t.weight_scale!.data as Float32Array, meta: { format: 'int4', groupSize: s.groupSize, shape } };
    case 'w4a8':
      return { codes: t.weight!.data as Uint8Array, scales: t.weight_scale!.data as Float32Array, scale2: (t.weight_scale_2!.data as Float32Array)[0]!, meta: { format: 'w4a8', groupSize: s.groupSize, shape } };
    case 'nvfp4':
      return { codes: t.weight!.data as Uint8Array, scales: t.weight_scale!.data as Uint8Array, scale2: (t.weight_scale_2!.data as Float32Array)[0]!, meta: { format: 'nvfp4', blockSize: 16, shape } };
    case 'mxfp8':
    case 'mxfp4':
      return { codes: t.weight!.data as Uint8Array, scales: t.weight_scale!.data as Uint8Array, meta: { format: s.kind, blockSize: 32, shape } };
    default:
      throw new UserError(`loading ${s.kind} weights from a Model Optimizer checkpoint is not implemented yet`);
  }
}
