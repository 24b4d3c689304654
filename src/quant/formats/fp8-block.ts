// FP8 E4M3 2-D block weight-only quantization (formats.md "FP8 2-D block weight-only", Model Optimizer
// `fp8_2d_blockwise_weight_only` → `FP8_PB_WO`): the weight is tiled into blockSize×blockSize blocks
// (default 128×128); per block weight_scale = block amax/448 (fp32), q = e4m3(clamp(w/scale, ±448)).
// Export: weight float8_e4m3fn [out, in]; weight_scale fp32 [out/bs, in/bs] (Model Optimizer writes it as
// [out/bs, 1, in/bs, 1] and vLLM squeezes it; mopt keeps the squeezed 2-D layout, row-major).
// Both dims must divide by the block size: Model Optimizer's export pads nothing, so a layer that does not
// tile cannot be exported in this format and must be left unquantized (excluded) instead.

import { E4M3_F32 } from '../../tensor/codecs.js';
import { absMax, amaxScale, checkMatrix, type Shape2 } from './common.js';
import type { Fp8Arith } from './fp8.js';
import { e4m3Quotients, roundBf16, scaledDecode } from './kernels.js';

const E4M3_MAX = 448;

export interface Fp8BlockOptions {
  /** block edge (default 128); must divide both dims */
  blockSize?: number;
  /** as fp8.ts: 'float32' (export path, default) or 'bfloat16' (Model Optimizer FP8QTensor on bf16 weights) */
  arith?: Fp8Arith;
}
export interface Fp8BlockMeta { format: 'fp8-block'; blockSize: number; arith: Fp8Arith; shape: [number, number] }
export interface Fp8BlockQuantized {
  /** float8_e4m3fn bytes [out, in] row-major */
  codes: Uint8Array;
  /** weight_scale fp32 [out/bs, in/bs] row-major */
  scales: Float32Array;
  meta: Fp8BlockMeta;
}

export function quantize(w: Float32Array, shape: Shape2, opts: Fp8BlockOptions = {}): Fp8BlockQuantized {
  const bs = opts.blockSize ?? 128;
  const arith = opts.arith ?? 'float32';
  if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`fp8-block.quantize: bad blockSize ${bs}`);
  checkMatrix('fp8-block.quantize', w, shape);
  const [rows, cols] = shape;
  if (rows % bs !== 0 || cols % bs !== 0) {
    throw new RangeError(
      `fp8-block.quantize: shape [${rows}, ${cols}] does not tile into ${bs}x${bs} blocks; ` +
      'exclude this layer from FP8 block quantization (add it to exclude_modules) or use per-tensor FP8',
    );
  }
  const bf16 = arith === 'bfloat16';
  const br = rows / bs;
  const bc = cols / bs;
  const scales = new Float32Array(br * bc);
  const codes = new Uint8Array(w.length);
  for (let i = 0; i < br; i++) {
    for (let j = 0; j < bc; j++) {
      let amax = 0;
      for (let r = i * bs; r < (i + 1) * bs; r++) amax = Math.max(amax, absMax(w, r * cols + j * bs, r * cols + (j + 1) * bs));
      // bf16 mode rounds the double quotient once to bf16 (see fp8.ts for why not via fp32)
      const scale = arith === 'float32' ? amaxScale('fp8-block.quantize', amax, E4M3_MAX) : amax === 0 ? 1 : roundBf16(amax / E4M3_MAX);
      scales[i * bc + j] = scale;
      // quotient in working precision, then clamp + RNE cast, one block row segment at a time
      for (let r = i * bs; r < (i + 1) * bs; r++) e4m3Quotients(w, r * cols + j * bs, r * cols + (j + 1) * bs, scale, codes, bf16);
    }
  }
  return { codes, scales, meta: { format: 'fp8-block', blockSize: bs, arith, shape: [rows, cols] } };
}

export function dequantize(q: Fp8BlockQuantized): Float32Array {
  const [rows, cols] = q.meta.shape;
  const bs = q.meta.blockSize;
  const bc = cols / bs;
  const bf16 = q.meta.arith === 'bfloat16';
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const scaleRow = Math.floor(r / bs) * bc;
    for (let j = 0; j < bc; j++) scaledDecode(E4M3_F32, q.codes, r * cols + j * bs, r * cols + (j + 1) * bs, q.scales[scaleRow + j]!, out, bf16);
  }
  return out;
}

export function fakeQuantize(w: Float32Array, shape: Shape2, opts: Fp8BlockOptions = {}): Float32Array {
  return dequantize(quantize(w, shape, opts));
}
