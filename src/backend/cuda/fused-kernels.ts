// Names of the fused-routine kernels (kernels/rmsnorm.cu, pointwise.cu, cross_entropy.cu, attention.cu,
// attention_tc.cu, attention_bwd.cu, attention_tc_bwd.cu, gemv.cu, gemv_norm.cu, decode_step.cu), built here and nowhere else; the tables mirror the macro lists at the
// end of those files, and fusedKernelRefs() feeds kernels.ts allKernelRefs() so test/backend/cuda-sources.test.ts
// checks every name against the sources.
//
// Only types are imported from kernels.ts: kernels.ts imports this module, and a value import back
// would make the two modules a cycle.

import type { DType } from '../../tensor/dtype.js';
import type { IndexDType, KernelFile, KernelRef } from './kernels.js';

/** dtypes the fused kernels are stamped out for (fused.cuh MOPT_FUSED_DTYPES) */
export type FusedDType = 'float64' | 'float32' | 'float16' | 'bfloat16';
export const FUSED_DTYPES: readonly FusedDType[] = ['float64', 'float32', 'float16', 'bfloat16'];

/** dtypes and padded head dims of the flash attention kernels (attention.cuh MOPT_FLASH_ALL) */
export type FlashDType = Exclude<FusedDType, 'float64'>;
export const FLASH_DTYPES: readonly FlashDType[] = ['float32', 'float16', 'bfloat16'];
export const FLASH_DIMS = [32, 64, 128] as const;
export type FlashDim = (typeof FLASH_DIMS)[number];

/** dtypes and head dims of the tensor-core kernels (attention_tc.cuh MOPT_TC_ALL); head dim must equal it */
export type TcDType = 'float16' | 'bfloat16';
export const TC_DTYPES: readonly TcDType[] = ['float16', 'bfloat16'];
export const TC_DIMS = [64, 128] as const;
export type TcDim = (typeof TC_DIMS)[number];

// kernels.ts DTYPE_SUFFIX for the dtypes used here
const SFX: { readonly [K in FusedDType | IndexDType]: string } = {
  float64: 'f64', float32: 'f32', float16: 'f16', bfloat16: 'bf16', int32: 'i32', int64: 'i64',
};

export function isFusedDType(d: DType): d is FusedDType {
  return (FUSED_DTYPES as readonly DType[]).includes(d);
}
export function isFlashDType(d: DType): d is FlashDType {
  return (FLASH_DTYPES as readonly DType[]).includes(d);
}
export function isTcDType(d: DType): d is TcDType {
  return (TC_DTYPES as readonly DType[]).includes(d);
}
export function isTcDim(n: number): n is TcDim {
  return (TC_DIMS as readonly number[]).includes(n);
}

const ref = (file: KernelFile, name: string): KernelRef => ({ file, name });
/** kernels/gemv_norm.cu: the RMSNorm-prologue GEMVs exist for 1 and 2 rows (decoding); with more rows the norm runs first */
export const GEMV_NORM_MAX_ROWS = 2;

export const FK = {
  rmsNorm: (d: FusedDType): KernelRef => ref('rmsnorm', `rms_norm_${SFX[d]}`),
  rmsNormBwd: (d: FusedDType): KernelRef => ref('rmsnorm', `rms_norm_bwd_${SFX[d]}`),
  rmsNormGw: (d: FusedDType): KernelRef => ref('rmsnorm', `rms_norm_gw_${SFX[d]}`),
  rope: (x: FusedDType, table: FusedDType): KernelRef => ref('pointwise', `rope_${SFX[x]}_${SFX[table]}`),
  /** rotates 16 bytes of pairs per thread (pointwise.cu rope_body with V = 16 / element size) */
  ropeVec: (x: FusedDType, table: FusedDType): KernelRef => ref('pointwise', `rope_vec_${SFX[x]}_${SFX[table]}`),
  ropeAppend: (x: FusedDType, table: FusedDType): KernelRef => ref('pointwise', `rope_append_${SFX[x]}_${SFX[table]}`),
  swiglu: (d: FusedDType): KernelRef => ref('pointwise', `swiglu_${SFX[d]}`),
  swigluBwd: (d: FusedDType): KernelRef => ref('pointwise', `swiglu_bwd_${SFX[d]}`),
  adamw: (d: FusedDType): KernelRef => ref('pointwise', `adamw_${SFX[d]}`),
  crossEntropy: (d: FusedDType, idx: IndexDType): KernelRef => ref('cross_entropy', `cross_entropy_${SFX[d]}_${SFX[idx]}`),
  crossEntropyBwd: (d: FusedDType, idx: IndexDType): KernelRef => ref('cross_entropy', `cross_entropy_bwd_${SFX[d]}_${SFX[idx]}`),
  attnFwd: (d: FlashDType, dp: FlashDim): KernelRef => ref('attention', `attn_fwd_${SFX[d]}_d${dp}`),
  attnFwdTc: (d: TcDType, dim: TcDim): KernelRef => ref('attention_tc', `attn_fwd_tc_${SFX[d]}_d${dim}`),
  attnBwdDqTc: (d: TcDType, dim: TcDim): KernelRef => ref('attention_tc_bwd', `attn_bwd_dq_tc_${SFX[d]}_d${dim}`),
  attnBwdDkvTc: (d: TcDType, dim: TcDim): KernelRef => ref('attention_tc_bwd', `attn_bwd_dkv_tc_${SFX[d]}_d${dim}`),
  attnDecode: (d: FlashDType, dp: FlashDim): KernelRef => ref('attention', `attn_decode_${SFX[d]}_d${dp}`),
  attnCombine: (d: FusedDType): KernelRef => ref('attention', `attn_combine_${SFX[d]}`),
  attnFwdGeneric: (d: FusedDType): KernelRef => ref('attention', `attn_fwd_generic_${SFX[d]}`),
  attnBwdDelta: (d: FusedDType): KernelRef => ref('attention_bwd', `attn_bwd_delta_${SFX[d]}`),
  attnBwdDq: (d: FlashDType, dp: FlashDim): KernelRef => ref('attention_bwd', `attn_bwd_dq_${SFX[d]}_d${dp}`),
  attnBwdDkv: (d: FlashDType, dp: FlashDim): KernelRef => ref('attention_bwd', `attn_bwd_dkv_${SFX[d]}_d${dp}`),
  attnBwdDqGeneric: (d: FusedDType): KernelRef => ref('attention_bwd', `attn_bwd_dq_generic_${SFX[d]}`),
  attnBwdDkvGeneric: (d: FusedDType): KernelRef => ref('attention_bwd', `attn_bwd_dkv_generic_${SFX[d]}`),
  /** gemv.cu: `rows` (1..8) activation rows against a transposed weight */
  gemv: (d: TcDType, rows: number, norm = false): KernelRef => (norm ? ref('gemv_norm', `gemv_norm_${SFX[d]}_m${rows}`) : ref('gemv', `gemv_${SFX[d]}_m${rows}`)),
  /** gemv.cu: silu(x @ gate^T) * (x @ up^T); `norm` (gemv_norm.cu, 1 or 2 rows): the RMSNorm prologue, x is the raw input */
  gemvSwiglu: (d: TcDType, rows: number, norm = false): KernelRef => (norm ? ref('gemv_norm', `gemv_swiglu_norm_${SFX[d]}_m${rows}`) : ref('gemv', `gemv_swiglu_${SFX[d]}_m${rows}`)),
  /** decode_step.cu: a whole batch-1 greedy decode step of a Llama-style decoder (decode-step.ts) */
  decodeStep: (d: TcDType): KernelRef => ref('decode_step', `decode_step_${SFX[d]}`),
};

/** Every fused kernel the backend can launch (for the source cross-check test). */
export function fusedKernelRefs(): KernelRef[] {
  const out: KernelRef[] = [];
  for (const d of FUSED_DTYPES) {
    out.push(FK.rmsNorm(d), FK.rmsNormBwd(d), FK.rmsNormGw(d), FK.swiglu(d), FK.swigluBwd(d), FK.adamw(d));
    for (const t of FUSED_DTYPES) out.push(FK.rope(d, t), FK.ropeVec(d, t), FK.ropeAppend(d, t));
    for (const idx of ['int32', 'int64'] as const) out.push(FK.crossEntropy(d, idx), FK.crossEntropyBwd(d, idx));
    out.push(FK.attnCombine(d), FK.attnFwdGeneric(d), FK.attnBwdDelta(d), FK.attnBwdDqGeneric(d), FK.attnBwdDkvGeneric(d));
  }
  for (const d of FLASH_DTYPES) {
    for (const dp of FLASH_DIMS) out.push(FK.attnFwd(d, dp), FK.attnDecode(d, dp), FK.attnBwdDq(d, dp), FK.attnBwdDkv(d, dp));
  }
  for (const d of TC_DTYPES) for (const dim of TC_DIMS) out.push(FK.attnFwdTc(d, dim), FK.attnBwdDqTc(d, dim), FK.attnBwdDkvTc(d, dim));
  for (const d of TC_DTYPES) {
    for (let m = 1; m <= 8; m++) out.push(FK.gemv(d, m), FK.gemvSwiglu(d, m));
    for (let m = 1; m <= GEMV_NORM_MAX_ROWS; m++) out.push(FK.gemv(d, m, true), FK.gemvSwiglu(d, m, true));
    out.push(FK.decodeStep(d));
  }
  return out;
}
