// Oracle copy of the pre-speedup implementation (see README.md in this folder); do not edit.
// NVFP4 weights (formats.md "NVFP4", modelopt.md §2 "NVFP4 export of per-block scale"):
// - global s2 = amax / (6·448), fp32 (`weight_scale_2`);
// - per block of 16 along the input dim, in fp32: sb = block_amax / (6·s2); a zero sb becomes 1; then sb is
//   clamped to [2^-9, 448] and cast to e4m3 with RNE (`weight_scale`, float8_e4m3fn [out, in/16]);
//   the upper clamp is the recipe's min(·, 448), the lower one and the zero → 1 rule are the export's
//   guards against e4m3 underflow (this is the export path, not the fake-quant kernel that can flush a
//   block scale to 0);
// - codes = e2m1(x / (e4m3(sb) · s2)), the divisor computed in fp32 like torch; packed uint8 [out, in/2],
//   element 2k in the LOW nibble;
// - dequantize: e2m1 · (e4m3(sb) · s2).
// An all-zero tensor (amax 0) would make s2 = 0 and every quotient 0/0; mopt exports s2 = 1 there (all
// block scales then hit the zero → 1 rule and all codes are 0). A nonzero amax so small that amax/2688
// underflows float32 is a RangeError.

import { e2m1ToF32, e4m3ToF32, f32ToE2M1, f32ToE4M3, packNibbles, unpackNibbles } from './codecs.js';
import { absMax, amaxScale, checkMatrix, type Shape2 } from './common.js';

const BLOCK = 16;
const E4M3_MAX = 448;
const MIN_SCALE = 2 ** -9; // smallest e4m3 power of two (export clamp)

export interface Nvfp4Meta { format: 'nvfp4'; blockSize: 16; shape: [number, number] }
export interface Nvfp4Quantized {
  /** uint8 [out, in/2], element 2k in the low nibble */
  codes: Uint8Array;
  /** float8_e4m3fn bytes [out, in/16] (`weight_scale`) */
  scales: Uint8Array;
  /** fp32 global scale (`weight_scale_2`) */
  scale2: number;
  meta: Nvfp4Meta;
}

/**
 * `globalAmax`: the amax of the global scale instead of w's own (fused siblings share weight_scale_2);
 * `blockAmax`: static block amax values [out * in/16] instead of each block's own (GPTQ, MSE, AWQ clip).
 */
export function quantize(w: Float32Array, shape: Shape2, globalAmax?: number, blockAmax?: Float32Array): Nvfp4Quantized {
  checkMatrix('nvfp4.quantize', w, shape, BLOCK);
  if (globalAmax !== undefined && !(Number.isFinite(globalAmax) && globalAmax >= 0)) throw new RangeError(`nvfp4.quantize: globalAmax ${globalAmax} must be finite and >= 0`);
  const [rows, cols] = shape;
  const s2 = amaxScale('nvfp4.quantize', globalAmax ?? absMax(w, 0, w.length), 6 * E4M3_MAX);
  const denom = Math.fround(6 * s2); // torch: 6.0 * weights_scaling_factor_2, an fp32 tensor
  const nb = w.length / BLOCK;
  const scales = new Uint8Array(nb);
  const elems = new Uint8Array(w.length);
  for (let b = 0; b < nb; b++) {
    let sb = Math.fround((blockAmax?.[b] ?? absMax(w, b * BLOCK, (b + 1) * BLOCK)) / denom);
    if (sb === 0) sb = 1;
    sb = Math.min(Math.max(sb, MIN_SCALE), E4M3_MAX);
    scales[b] = f32ToE4M3(sb, true);
    const div = Math.fround(e4m3ToF32(scales[b]!) * s2); // fp8 block scale (as fp32) times s2, in fp32
    for (let i = b * BLOCK; i < (b + 1) * BLOCK; i++) elems[i] = f32ToE2M1(Math.fround(w[i]! / div));
  }
  return { codes: packNibbles(elems), scales, scale2: s2, meta: { format: 'nvfp4', blockSize: BLOCK, shape: [rows, cols] } };
}

export function dequantize(q: Nvfp4Quantized): Float32Array {
  const n = q.meta.shape[0] * q.meta.shape[1];
  const elems = unpackNibbles(q.codes, n);
  const out = new Float32Array(n);
  for (let b = 0; b < n / BLOCK; b++) {
    const mul = Math.fround(e4m3ToF32(q.scales[b]!) * q.scale2);
    for (let i = b * BLOCK; i < (b + 1) * BLOCK; i++) out[i] = e2m1ToF32(elems[i]!) * mul;
  }
  return out;
}

export function fakeQuantize(w: Float32Array, shape: Shape2, globalAmax?: number): Float32Array {
  return dequantize(quantize(w, shape, globalAmax));
}
