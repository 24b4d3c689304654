// The contract every compute backend (CPU reference, CUDA) fulfils. The tensor front end
// (src/tensor) owns shapes, views and autograd; a backend owns memory and the kernels below.
// Kernels receive strided views and write into a freshly allocated contiguous output view unless
// stated otherwise. Adding a kernel name here makes every backend that lacks it fail to compile.

import type { DType, StorageArray } from '../tensor/dtype.js';

/** Device memory of one backend. `handle` is the backend's own buffer type. */
export interface Storage {
  readonly backend: Backend;
  readonly dtype: DType;
  readonly length: number;
  /** number of live tensors viewing this storage; freed when it drops to zero */
  refs: number;
  freed: boolean;
}

/** A strided window onto a Storage. */
export interface View {
  readonly storage: Storage;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

export const UNARY_OPS = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'silu', 'abs', 'reciprocal', 'relu', 'sign', 'square'] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow'] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

export const COMPARE_OPS = ['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
export type CompareOp = (typeof COMPARE_OPS)[number];

/**
 * Reductions. amax is max(|x|) in one pass (NaN propagates as in max). An empty reduction gives the op's
 * identity: sum 0, max -inf, min +inf, amax 0 (the smallest |x|).
 */
export const REDUCE_OPS = ['sum', 'max', 'min', 'amax'] as const;
export type ReduceOp = (typeof REDUCE_OPS)[number];

export interface Backend {
  readonly name: string;

  // memory
  alloc(dtype: DType, length: number): Storage;
  free(storage: Storage): void;
  /** storages allocated and not yet freed: leak tests watch this stay flat */
  liveStorages(): number;
  /** Uploads host data (storage array of the same dtype). */
  fromHost(dtype: DType, data: StorageArray): Storage;
  /** Downloads a view into a contiguous host array of its dtype. */
  toHost(view: View): StorageArray;

  // kernels; `out` views are contiguous and already allocated with the right shape and dtype
  /** strided copy with dtype conversion (round to nearest even for floats, saturating for fp8) */
  copy(src: View, out: View): void;
  fill(out: View, value: number): void;
  unary(op: UnaryOp, x: View, out: View): void;
  /** a and b are already broadcast to out's shape (stride-0 views) */
  binary(op: BinaryOp, a: View, b: View, out: View): void;
  compare(op: CompareOp, a: View, b: View, out: View): void;
  where(cond: View, a: View, b: View, out: View): void;
  /** reduces the listed axes (sorted); out has those axes kept with size 1 */
  reduce(op: ReduceOp, x: View, axes: readonly number[], out: View): void;
  /** index of the max along `axis` (first on ties); out is int32 with that axis of size 1 */
  argmax(x: View, axis: number, out: View): void;
  /** batched matmul: a [..., m, k] @ b [..., k, n] with batch dims already broadcast to out's */
  matmul(a: View, b: View, out: View): void;
  /** out[i][j][k] = x[index[i][j][k]][j][k] for axis 0 (torch.gather semantics); index int32/int64 */
  gather(x: View, axis: number, index: View, out: View): void;
  /** out (pre-filled) [index[i][j]][j] += src[i][j] for axis 0 (torch.scatter_add_ semantics), in place */
  scatterAdd(out: View, axis: number, index: View, src: View): void;
  /**
   * out [index[i][j]][j] = src[i][j] for axis 0 (torch.scatter_ semantics), in place; src has out's dtype and
   * bits are copied. Every index is checked before anything is written. Repeated indices: unspecified winner.
   */
  scatter(out: View, axis: number, index: View, src: View): void;
  softmax(x: View, axis: number, out: View): void;
  logSoftmax(x: View, axis: number, out: View): void;
  /** fills out with uniform [0,1) or standard normal draws from a seeded stream */
  random(kind: 'uniform' | 'normal', seed: number, out: View): void;
}

/** One weight of a grouped Linear: w [N, K] (torch.nn.Linear layout), out and residual [rows, N]. */
export interface LinearSegment {
  w: View;
  out: View;
  residual?: View;
}

/**
 * Optional: Linears with few input rows that share their input, in one launch, with the op that follows
 * folded in ('residual': out = residual + x @ w^T; 'swiglu': two segments gate, up -> out_0 = silu(x @
 * gate^T) * (x @ up^T)). Results equal the unfused ops. Returns false when it does not take the case; the
 * caller then runs the plain ops (src/nn/functional.ts).
 */
export interface GroupedLinear {
  /** `norm`: x is first RMS-normalised with this weight [K] and eps, equal to rmsNorm then the Linears. */
  linearGroup(x: View, segments: readonly LinearSegment[], epilogue: 'none' | 'residual' | 'swiglu', norm?: { weight: View; eps: number }): boolean;
}

export function hasGroupedLinear(b: Backend): b is Backend & GroupedLinear {
  return typeof (b as Partial<GroupedLinear>).linearGroup === 'function';
}

/** One decoder layer's parameters and KV-cache buffers for DecodeStepSpec (weights [out, in], caches [1, kvHeads, capacity, headDim]). */
export interface DecodeStepLayer {
  inputNorm: View;
  q: View;
  k: View;
  v: View;
  o: View;
  postNorm: View;
  gate: View;
  up: View;
  down: View;
  kCache: View;
  vCache: View;
}

/**
 * A batch-1 decode step of a Llama-style decoder (RMSNorm, rotate-half RoPE from tables, grouped-query
 * attention over a KV cache, SwiGLU MLP, no biases) with greedy selection: reads the token ids[0] at position
 * pos[0], writes the cache at pos, the argmax token to ids[0] and next[0] (and produced[pos] when given, the
 * float32 logits row when given) and advances pos[0]. All operands are contiguous, in the model dtype except
 * the int32 ids / next / produced / pos and the float32 logits.
 */
export interface DecodeStepSpec {
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  /** RMSNorm epsilon */
  eps: number;
  /** KV-cache positions (and rows of the cos/sin tables) */
  capacity: number;
  embed: View;
  finalNorm: View;
  lmHead: View;
  layers: readonly DecodeStepLayer[];
  /** RoPE tables [capacity, headDim / 2] */
  cos: View;
  sin: View;
  pos: View;
  ids: View;
  next: View;
  produced: View | null;
  logits: View | null;
  /** record when each phase of the step ends (DecodeStepKernel.phaseNs; a diagnostic for bench/decode-phases.ts) */
  timing?: boolean;
}

/** A prepared decode step: launch() queues one step (asynchronous); dispose() frees its device buffers. */
export interface DecodeStepKernel {
  launch(): void;
  dispose(): void;
  /**
   * With spec.timing: the last launch's phase boundaries in ns from its start (waits for it): embedding, then
   * per layer q/k/v, attention, o_proj, gate/up, down, then the LM head. null without timing.
   */
  phaseNs(): number[] | null;
  /**
   * With spec.timing, for the last launch (ns from its start; a diagnostic for bench/decode-phases.ts): when
   * CTA 0's weight stream issued, received and freed each stage, and when each CTA finished each phase
   * (ctaDone[phase][cta], phases as phaseNs), CTA 0's points inside each layer's phases (marks[layer][point],
   * kernels/decode_step.cuh DS_MARKS; null where never recorded, and a point the last launch did not pass keeps an
   * earlier launch's time) and CTA 0's SM clock over the step. null without timing.
   */
  traceNs(): { stages: [number, number, number][]; ctaDone: number[][]; marks: (number | null)[][]; smMHz: number } | null;
}

/** Backends that run a whole decode step as one kernel (CUDA: src/backend/cuda/decode-step.ts). */
export interface FusedDecode {
  /** null when the step's shapes, dtypes or layout are outside what the kernel handles (the caller runs the model's ops) */
  decodeStep(spec: DecodeStepSpec): DecodeStepKernel | null;
}

export function hasFusedDecode(b: Backend): b is Backend & FusedDecode {
  return typeof (b as Partial<FusedDecode>).decodeStep === 'function';
}

/** Device work recorded once and replayed with one launch (a CUDA graph). */
export interface RecordedGraph {
  /** queues one replay (asynchronous) */
  launch(): void;
  /** frees the graph and its memory; tensors it produced must be disposed first */
  dispose(): void;
}

/** Backends that can record the device work of a function and replay it (CUDA: src/backend/cuda/graph.ts). */
export interface GraphCapture {
  captureGraph(record: () => void): RecordedGraph;
}

export function canCaptureGraphs(b: Backend): b is Backend & GraphCapture {
  return typeof (b as Partial<GraphCapture>).captureGraph === 'function';
}

/** Masking and scaling of one attention call. */
export interface AttentionOptions {
  /** multiplies q·k (usually head_dim^-0.5) */
  scale: number;
  causal: boolean;
  /** absolute position of the first query (keys are positions 0..T-1) */
  past: number;
  /** sliding window: key t is visible from query position p only when p - t < window */
  window: number | null;
  /**
   * Device-side `past` (int32 scalar view), read when the kernel runs instead of `past`, so that one
   * recorded CUDA graph serves every decode position. k and v are then whole KV-cache buffers, of which
   * only keys 0 .. past + S - 1 are written: later keys are never visible, with or without a causal mask.
   * Forward only; on CUDA only the decode kernels (few query rows per KV head) take it.
   */
  pastAt?: View | null;
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** bias corrections 1 - beta^step */
  bc1: number;
  bc2: number;
}

/**
 * Fused routines where fusion matters for speed. Each has a reference in src/backend/cpu/fused.ts; side
 * outputs (rstd, lse) are float32 and feed the backward kernels.
 */
export interface FusedKernels {
  /** out = weight * (x * rstd) over the last dim, rstd = 1/sqrt(mean(x^2) + eps) */
  rmsNorm(x: View, weight: View, eps: number, out: View, rstd: View): void;
  rmsNormBackward(x: View, weight: View, rstd: View, gOut: View, gx: View, gw: View): void;
  /** rotate-half RoPE on [..., S, D] with cos/sin [S, D/2]; inverse = rotate back (for gradients) */
  rope(x: View, cos: View, sin: View, inverse: boolean, out: View): void;
  /**
   * A decode step's attention inputs in one pass (inference only): qOut = rope(q); rope(k) and v written
   * into the caches [B, KV, capacity, D] at device-side positions [S] (int32), as scatter would. q [B,H,S,D],
   * k/v [B,KV,S,D], cos/sin [S, D/2]. Equal to rope + scatter bit for bit.
   */
  ropeAppend(q: View, k: View, v: View, cos: View, sin: View, positions: View, qOut: View, kCache: View, vCache: View): void;
  /** out = silu(gate) * up */
  swiglu(gate: View, up: View, out: View): void;
  swigluBackward(gate: View, up: View, gOut: View, gGate: View, gUp: View): void;
  /** q [B,H,S,D], k/v [B,KV,T,D] -> out [B,H,S,D], lse [B,H,S] */
  attention(q: View, k: View, v: View, o: AttentionOptions, out: View, lse: View): void;
  attentionBackward(q: View, k: View, v: View, out: View, lse: View, gOut: View, o: AttentionOptions, gq: View, gk: View, gv: View): void;
  /** per-row loss and lse of logits [N, V] against int targets [N] */
  crossEntropy(logits: View, targets: View, ignoreIndex: number, losses: View, lse: View): void;
  crossEntropyBackward(logits: View, targets: View, lse: View, gLoss: View, ignoreIndex: number, gLogits: View): void;
  /** in place on param, m, v */
  adamw(param: View, grad: View, m: View, v: View, h: AdamWHyper): void;
  /**
   * out [M, N] = (a * scaleA) @ (b * scaleB) for float8_e4m3fn a [M, K] (row-major) and b [K, N] (the
   * transposed view of a row-major [N, K] weight), float32 scalar scales; out float32 or bfloat16.
   */
  scaledMatmul(a: View, b: View, scaleA: View, scaleB: View, out: View): void;
}
