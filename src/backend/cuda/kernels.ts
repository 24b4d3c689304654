// The CUDA kernels the backend launches: their names (built here and nowhere else), which .cu file holds
// each, which (op, dtype) pairs have a kernel of their own, and lazy loading: a .cu file is compiled by
// NVRTC for the device's arch the first time one of its kernels is needed, and functions are cached.
//
// Names are <family>_<op>_<dtype suffix> (e.g. unary_exp_bf16, copy_f32_to_bf16, reduce_sum_f32); the
// tables below mirror the macro lists in kernels/*.cu, and test/backend/cuda-sources.test.ts checks that
// every name allKernelRefs() lists is defined in the sources.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BINARY_OPS, COMPARE_OPS, REDUCE_OPS, UNARY_OPS, type BinaryOp, type CompareOp, type ReduceOp, type UnaryOp } from '../backend.js';
import { DTYPES, type DType } from '../../tensor/dtype.js';
import type { CudaDriver, Handle } from './driver.js';
import type { Nvrtc } from './nvrtc.js';
import { fusedKernelRefs } from './fused-kernels.js';

export const KERNEL_FILES = ['elementwise', 'reduce', 'softmax', 'index', 'random', 'matmul', 'rmsnorm', 'pointwise', 'cross_entropy', 'attention', 'attention_tc', 'attention_bwd', 'attention_tc_bwd', 'gemv', 'gemv_norm', 'decode_step'] as const;
export type KernelFile = (typeof KERNEL_FILES)[number];

export interface KernelRef {
  readonly file: KernelFile;
  readonly name: string;
}

/** The folder of the .cu sources: from dist/src/backend/cuda/ (compiled) up to the repository's src/. */
export const KERNEL_DIR = new URL('../../../../src/backend/cuda/kernels/', import.meta.url);

export const DTYPE_SUFFIX: { readonly [K in DType]: string } = {
  float64: 'f64', float32: 'f32', float16: 'f16', bfloat16: 'bf16', float8_e4m3fn: 'e4m3', float8_e5m2: 'e5m2',
  int64: 'i64', int32: 'i32', int16: 'i16', int8: 'i8', uint8: 'u8', bool: 'b8',
};

const WORD: { readonly [bytes: number]: string } = { 1: 'u8', 2: 'u16', 4: 'u32', 8: 'u64', 16: 'u128' };

/** dtypes with their own compute kernels (common.cuh MOPT_COMPUTE_DTYPES); others go through float64 */
export const COMPUTE_DTYPES: readonly DType[] = ['float64', 'float32', 'float16', 'bfloat16', 'int64', 'int32'];
const UNARY_FLOAT_DTYPES: readonly DType[] = ['float64', 'float32', 'float16', 'bfloat16'];
const UNARY_INT_DTYPES: readonly DType[] = ['int64', 'int32'];
const UNARY_INT_OPS: readonly UnaryOp[] = ['neg', 'abs', 'sign', 'square'];
const COMPARE_DTYPES: readonly DType[] = [...COMPUTE_DTYPES, 'bool'];

// elementwise.cu MOPT_CONVERT_PAIRS: every pair of the common dtypes, the rare ones to and from float64,
// fp8 to and from float32/float16/bfloat16
const COMMON: readonly DType[] = ['float64', 'float32', 'float16', 'bfloat16', 'int64', 'int32', 'bool'];
const RARE: readonly DType[] = ['float8_e4m3fn', 'float8_e5m2', 'int16', 'int8', 'uint8'];
const FP8: readonly DType[] = ['float8_e4m3fn', 'float8_e5m2'];
const CONVERT_PAIRS: ReadonlySet<string> = new Set([
  ...COMMON.flatMap((a) => COMMON.filter((b) => b !== a).map((b) => `${a}>${b}`)),
  ...RARE.flatMap((r) => [`${r}>float64`, `float64>${r}`]),
  ...FP8.flatMap((f) => (['float32', 'float16', 'bfloat16'] as const).flatMap((h) => [`${f}>${h}`, `${h}>${f}`])),
]);

/** scatter accumulators: index.cu MOPT_SCATTER_SRC_ACC */
export type AccDType = 'float32' | 'float64';
const SCATTER_F32_SRC: readonly DType[] = ['float32', 'float16', 'bfloat16'];

export type IndexDType = 'int32' | 'int64';
const INDEX_DTYPES: readonly IndexDType[] = ['int32', 'int64'];

const sfx = (d: DType): string => DTYPE_SUFFIX[d];
const ref = (file: KernelFile, name: string): KernelRef => ({ file, name });

/** Kernel name builders; null where the (op, dtype) has no kernel of its own (route through float64). */
export const K = {
  unary(op: UnaryOp, d: DType): KernelRef | null {
    const ok = UNARY_FLOAT_DTYPES.includes(d) || (UNARY_INT_DTYPES.includes(d) && UNARY_INT_OPS.includes(op));
    return ok ? ref('elementwise', `unary_${op}_${sfx(d)}`) : null;
  },
  binary(op: BinaryOp, d: DType): KernelRef | null {
    return COMPUTE_DTYPES.includes(d) ? ref('elementwise', `binary_${op}_${sfx(d)}`) : null;
  },
  compare(op: CompareOp, d: DType): KernelRef | null {
    return COMPARE_DTYPES.includes(d) ? ref('elementwise', `compare_${op}_${sfx(d)}`) : null;
  },
  where: (d: DType): KernelRef => ref('elementwise', `where_${sfx(d)}`),
  fill: (d: DType): KernelRef => ref('elementwise', `fill_${sfx(d)}`),
  convert(from: DType, to: DType): KernelRef | null {
    return CONVERT_PAIRS.has(`${from}>${to}`) ? ref('elementwise', `copy_${sfx(from)}_to_${sfx(to)}`) : null;
  },
  copyRaw: (bytes: number): KernelRef => ref('elementwise', `copy_raw_${WORD[bytes]}`),
  reduce(op: ReduceOp, d: DType, finish = false): KernelRef | null {
    return COMPUTE_DTYPES.includes(d) ? ref('reduce', `reduce_${op}_${sfx(d)}${finish ? '_finish' : ''}`) : null;
  },
  argmax(d: DType, finish = false): KernelRef | null {
    return COMPUTE_DTYPES.includes(d) ? ref('reduce', `argmax_${sfx(d)}${finish ? '_finish' : ''}`) : null;
  },
  softmax(d: DType, log: boolean): KernelRef | null {
    return COMPUTE_DTYPES.includes(d) ? ref('softmax', `${log ? 'log_softmax' : 'softmax'}_${sfx(d)}`) : null;
  },
  gather: (bytes: number, index: IndexDType): KernelRef => ref('index', `gather_${WORD[bytes]}_${sfx(index)}`),
  indexCheck: (index: IndexDType): KernelRef => ref('index', `index_check_${sfx(index)}`),
  scatter: (bytes: number, index: IndexDType): KernelRef => ref('index', `scatter_${WORD[bytes]}_${sfx(index)}`),
  scatterAdd(src: DType, index: IndexDType, acc: AccDType): KernelRef | null {
    const ok = acc === 'float64' ? COMPUTE_DTYPES.includes(src) : SCATTER_F32_SRC.includes(src);
    return ok ? ref('index', `scatter_add_${sfx(src)}_${sfx(index)}_${sfx(acc)}`) : null;
  },
  random: (kind: 'uniform' | 'normal', d: DType): KernelRef => ref('random', `random_${kind}_${sfx(d)}`),
  matmul(d: DType): KernelRef | null {
    return COMPUTE_DTYPES.includes(d) ? ref('matmul', `matmul_${sfx(d)}`) : null;
  },
};

/** Every kernel the backend can launch (for the source cross-check test). */
export function allKernelRefs(): KernelRef[] {
  const out: (KernelRef | null)[] = [];
  for (const d of DTYPES) {
    for (const op of UNARY_OPS) out.push(K.unary(op, d));
    for (const op of BINARY_OPS) out.push(K.binary(op, d));
    for (const op of COMPARE_OPS) out.push(K.compare(op, d));
    for (const to of DTYPES) out.push(K.convert(d, to));
    for (const op of REDUCE_OPS) out.push(K.reduce(op, d), K.reduce(op, d, true));
    for (const idx of INDEX_DTYPES) for (const acc of ['float32', 'float64'] as const) out.push(K.scatterAdd(d, idx, acc));
    out.push(K.where(d), K.fill(d), K.argmax(d), K.argmax(d, true), K.softmax(d, false), K.softmax(d, true));
    out.push(K.random('uniform', d), K.random('normal', d), K.matmul(d));
  }
  out.push(K.copyRaw(16));
  for (const bytes of [1, 2, 4, 8]) {
    out.push(K.copyRaw(bytes));
    for (const idx of INDEX_DTYPES) out.push(K.gather(bytes, idx), K.scatter(bytes, idx));
  }
  for (const idx of INDEX_DTYPES) out.push(K.indexCheck(idx));
  out.push(...fusedKernelRefs());
  return out.filter((r): r is KernelRef => r !== null);
}

/**
 * The source of kernels/<file>.cu with its local `#include "x.cuh"` lines replaced by the headers' text,
 * so NVRTC needs no include path for them and its disk cache (keyed by the source text) sees header edits.
 */
export function kernelSource(file: KernelFile): string {
  const seen = new Set<string>();
  const expand = (name: string): string => {
    const text = readFileSync(fileURLToPath(new URL(name, KERNEL_DIR)), 'utf8').replace(/^\s*#\s*pragma\s+once\s*$/gm, '');
    return text.replace(/^\s*#\s*include\s+"([^"]+)"\s*$/gm, (_line, inc: string) => {
      if (seen.has(inc)) return '';
      seen.add(inc);
      return expand(inc);
    });
  };
  return expand(`${file}.cu`);
}

/**
 * Extra `-D` macros for one kernel file from MOPT_NVRTC_DEFINES ("file:NAME=VALUE file:NAME2 ..."): a
 * developer's knob for timing variants a source compiles in under a macro (bench/decode-phases.ts); other
 * files keep their cached builds. Unset in normal use.
 */
export function experimentDefines(file: string): string[] {
  const mine = (process.env.MOPT_NVRTC_DEFINES ?? '').split(/\s+/).filter((d) => d.startsWith(`${file}:`));
  return mine.map((d) => `-D${d.slice(file.length + 1)}`);
}

/** Compiles kernel files on first use (for the device's own arch) and caches their functions. */
export class KernelLoader {
  private readonly modules = new Map<KernelFile, Handle>();
  private readonly functions = new Map<string, Handle>();
  /** NVRTC options: no fused multiply-add contraction, so elementwise results equal the CPU's */
  static readonly OPTIONS: readonly string[] = ['--fmad=false'];

  constructor(
    private readonly driver: CudaDriver,
    private readonly nvrtc: Nvrtc,
    readonly arch: string,
  ) {}

  fn(k: KernelRef): Handle {
    const cached = this.functions.get(k.name);
    if (cached !== undefined) return cached;
    let mod = this.modules.get(k.file);
    if (mod === undefined) {
      const cubin = this.nvrtc.compile(k.file, kernelSource(k.file), this.arch, [...KernelLoader.OPTIONS, ...experimentDefines(k.file)]);
      mod = this.driver.loadModule(cubin);
      this.modules.set(k.file, mod);
    }
    const f = this.driver.getFunction(mod, k.name);
    this.functions.set(k.name, f);
    return f;
  }
}
