// KV-cache quantization (formats.md "KV cache FP8 / NVFP4", modelopt.md §2 "KV cache"): K and V are each
// quantized per tensor from a calibrated amax (max over the cached K / V). Exported k_scale / v_scale =
// amax/448 for BOTH FP8 and NVFP4 (Model Optimizer unified_export_hf: "kv cache scale as amax / 448"),
// on `<layer>.self_attn.k_proj.k_scale` / `v_proj.v_scale`.
// - FP8: q = e4m3(clamp(x / (amax/448))), dequantized with the same scale.
// - NVFP4: block 16 along head_dim with the NVFP4 activation rule: global s2 = amax/2688, e4m3 block
//   scales per call (activations.ts nvfp4Blocks); the exported scale is still amax/448.
// Tensors are passed as [rows, headDim] (tokens·heads flattened), blocks along the last dim.
// Not modelled: the legacy / Megatron export's floor max(amax/448, 1) for FP8 (mopt writes the unified
// HF export's plain amax/448).

import { amaxScale, type Shape2 } from './common.js';
import { checkAmax, fakeQuantize as actFakeQuantize } from './activations.js';

export type KvFormat = 'fp8' | 'nvfp4';
export interface KvCalib { kAmax: number; vAmax: number }
export interface KvQuantized {
  k: Float32Array;
  v: Float32Array;
  /** exported k_scale / v_scale, fp32 amax/448 */
  kScale: number;
  vScale: number;
}

function one(fmt: KvFormat, which: 'k' | 'v', x: Float32Array, shape: Shape2, amax: number): { y: Float32Array; scale: number } {
  const fn = `kv-cache.${fmt}.${which}`;
  checkAmax(fn, amax);
  const y = actFakeQuantize(x, shape, { format: fmt, amax }).y;
  return { y, scale: amaxScale(fn, amax, 448) };
}

export function fakeQuantize(fmt: KvFormat, k: Float32Array, v: Float32Array, shape: Shape2, calib: KvCalib): KvQuantized {
  const kr = one(fmt, 'k', k, shape, calib.kAmax);
  const vr = one(fmt, 'v', v, shape, calib.vAmax);
  return { k: kr.y, v: vr.y, kScale: kr.scale, vScale: vr.scale };
}
