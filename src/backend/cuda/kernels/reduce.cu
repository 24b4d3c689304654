// Reductions over an arbitrary set of axes (sum, max, min, amax = max |x|) and argmax along one axis.
//
// The host (src/backend/cuda/cuda-backend.ts reduce) splits the input's dims into kept dims (one output
// element per index) and reduced dims, each collapsed, and picks the thread layout: with r_fast the
// threads of a warp walk the reduction (rows contiguous in memory: a sum over the hidden size), else
// they walk neighbouring outputs and each loops over its reduction (a sum over the batch axis). When
// there are too few outputs to fill the GPU, gridDim.y splits each reduction into chunks whose partial
// accumulators go to a workspace, and the _finish kernel combines them (deterministic, no atomics).
//
// Semantics follow the CPU (src/backend/cpu/cpu-backend.ts reduce / argmax): sum accumulates in float32
// for the narrow floats and in float64 otherwise (the CPU accumulates in float64); max/min/amax return
// NaN when any element is NaN; an empty amax is 0 (its identity, as max's is -inf); argmax returns the
// first NaN if there is one, else the first maximum, and 0 for a row of -inf or an empty row.
#include "common.cuh"

#define MOPT_BLOCK 256

// Must match src/backend/cuda/layout.ts reduceLayout.
struct ReduceLayout {
  i64_t n_out;   // output elements
  i64_t n_red;   // elements reduced into each
  i64_t chunk;   // reduction elements per gridDim.y split
  int out_rank;  // collapsed kept dims
  int red_rank;  // collapsed reduced dims
  int r_fast;    // 1: threadIdx.x walks the reduction; 0: threadIdx.x walks the outputs
  int pad_;
  i64_t out_shape[MOPT_MAX_DIMS];
  i64_t x_out_stride[MOPT_MAX_DIMS];  // x strides of the kept dims
  i64_t o_stride[MOPT_MAX_DIMS];      // out strides of the kept dims
  i64_t red_shape[MOPT_MAX_DIMS];
  i64_t x_red_stride[MOPT_MAX_DIMS];
  i64_t x_offset;
  i64_t o_offset;
};

/** x and out offsets of output index o. */
MOPT_DEV void out_offsets(const ReduceLayout& L, u64_t o, i64_t& xo, i64_t& oo) {
  xo = L.x_offset;
  oo = L.o_offset;
#pragma unroll 1
  for (int d = L.out_rank - 1; d > 0; d--) {
    const u64_t q = div_index(o, (u64_t)L.out_shape[d]);
    const i64_t r = (i64_t)(o - q * (u64_t)L.out_shape[d]);
    o = q;
    xo += r * L.x_out_stride[d];
    oo += r * L.o_stride[d];
  }
  if (L.out_rank > 0) {
    xo += (i64_t)o * L.x_out_stride[0];
    oo += (i64_t)o * L.o_stride[0];
  }
}

/** x offset (relative to the output's) of reduction index r. */
MOPT_DEV i64_t red_offset(const ReduceLayout& L, u64_t r) {
  i64_t off = 0;
#pragma unroll 1
  for (int d = L.red_rank - 1; d > 0; d--) {
    const u64_t q = div_index(r, (u64_t)L.red_shape[d]);
    off += (i64_t)(r - q * (u64_t)L.red_shape[d]) * L.x_red_stride[d];
    r = q;
  }
  return L.red_rank > 0 ? off + (i64_t)r * L.x_red_stride[0] : off;
}

// ---------------------------------------------------------------------------------------------------
// Reducers: Acc is the accumulator, Out the output element type. add() folds one element (r is its index
// along the reduction), merge() two accumulators (any order: results do not depend on it except for
// float rounding of sums).

template <class T> struct SumAcc { typedef double type; };
template <> struct SumAcc<dt::f16> { typedef float type; };
template <> struct SumAcc<dt::bf16> { typedef float type; };

template <class T>
struct SumR {
  typedef typename SumAcc<T>::type Acc;
  typedef typename T::S Out;
  MOPT_DEV Acc identity() { return Acc(0); }
  MOPT_DEV Acc add(Acc a, typename T::C v, i64_t) { return a + (Acc)v; }
  MOPT_DEV Acc merge(Acc a, Acc b) { return a + b; }
  MOPT_DEV Out finish(Acc a) { return T::store(a); }
};

// max, min and argmax keep the index of their candidate, so that ties resolve to the first element in
// any merge order: for argmax that is the answer, for max/min it decides which of +0 and -0 is returned
// (the CPU keeps the first it meets). NaN: max/min return NaN; argmax treats NaN as the maximum.
template <class C>
struct ArgAcc {
  C v;
  i64_t i;
};

template <class T, bool ARG> struct ExtremeOut { typedef typename T::S type; };
template <class T> struct ExtremeOut<T, true> { typedef int type; };

template <class T, bool MAX, bool ARG>
struct ExtremeR {
  typedef typename T::C C;
  typedef ArgAcc<C> Acc;
  typedef typename ExtremeOut<T, ARG>::type Out;
  static constexpr i64_t NONE = 0x7fffffffffffffffll;  // loses every tie: an all -inf argmax row gives 0
  MOPT_DEV Acc identity() { return Acc{MAX ? -m_inf(C(0)) : m_inf(C(0)), NONE}; }
  MOPT_DEV Acc merge(Acc a, Acc b) {
    const bool an = is_nan(a.v), bn = is_nan(b.v);
    if (an || bn) {
      if (!ARG) return Acc{quiet_nan(C(0)), 0};
      if (an != bn) return an ? a : b;  // NaN counts as the maximum
    } else if (a.v != b.v) {
      return (MAX ? a.v > b.v : a.v < b.v) ? a : b;
    }
    return a.i <= b.i ? a : b;  // equal (or both NaN): the first
  }
  MOPT_DEV Acc add(Acc a, C v, i64_t r) { return merge(a, Acc{v, r}); }
  MOPT_DEV Out finish(Acc a) {
    if (ARG) return (Out)(a.i == NONE ? 0 : a.i);
    return (Out)T::store(a.v);
  }
};
template <class T> struct MaxR : ExtremeR<T, true, false> {};
template <class T> struct MinR : ExtremeR<T, false, false> {};
template <class T> struct ArgmaxR : ExtremeR<T, true, true> {};
// max(|x|) in one pass: max over |x| from the identity 0 (an empty reduction gives 0, as on the CPU);
// NaN propagates as in max. No index is kept: |x| has no signed zeros to tell apart, and a bare value
// keeps the calibration reduction (a whole activation per Linear) at memory speed.
template <class T>
struct AmaxR {
  typedef typename T::C C;
  typedef C Acc;
  typedef typename T::S Out;
  MOPT_DEV Acc identity() { return C(0); }
  /** the larger of a and b, NaN once either is NaN */
  MOPT_DEV Acc merge(Acc a, Acc b) { return (b > a || is_nan(b)) && !is_nan(a) ? b : a; }
  MOPT_DEV Acc add(Acc a, C v, i64_t) { return merge(a, m_abs(v)); }
  MOPT_DEV Out finish(Acc a) { return T::store(a); }
};

// ---------------------------------------------------------------------------------------------------

/**
 * acc folded over x[r] for this lane's r in [r0, r1) (lanes stride `lanes`), x contiguous along the
 * reduction: 16-byte vector loads for the aligned middle (a memory-bound amax or sum over a whole
 * activation runs at HBM speed instead of one 2-byte load per thread), the unaligned ends one by one.
 */
template <class R, class T>
MOPT_DEV typename R::Acc fold_contiguous(typename R::Acc acc, const typename T::S* x, u64_t r0, u64_t r1, int lane,
                                         int lanes) {
  typedef typename T::S S;
  constexpr int N = 16 / sizeof(S);
  const u64_t mis = ((u64_t)(x + r0) & 15u) / sizeof(S);  // elements past the last 16-byte boundary
  u64_t a = r0 + (mis == 0 ? 0 : N - mis);
  a = a < r1 ? a : r1;
  const u64_t nv = (r1 - a) / N, tail = a + nv * N;
  for (u64_t r = r0 + lane; r < a; r += lanes) acc = R::add(acc, T::load(x[r]), (i64_t)r);
#pragma unroll 4
  for (u64_t i = lane; i < nv; i += lanes) {
    const Vec<S, N> w = vec_load<N>(x + a, i);
#pragma unroll
    for (int e = 0; e < N; e++) acc = R::add(acc, T::load(w.v[e]), (i64_t)(a + i * N + e));
  }
  for (u64_t r = tail + lane; r < r1; r += lanes) acc = R::add(acc, T::load(x[r]), (i64_t)r);
  return acc;
}

template <class R, class T>
MOPT_DEV void reduce_body(const ReduceLayout& L, typename R::Out* out, const typename T::S* x, typename R::Acc* partial) {
  typedef typename R::Acc Acc;
  __shared__ Acc sh[MOPT_BLOCK];
  const bool rf = L.r_fast != 0;
  const int lane = rf ? threadIdx.x : threadIdx.y, lanes = rf ? blockDim.x : blockDim.y;
  const int slot = rf ? threadIdx.y : threadIdx.x, slots = rf ? blockDim.y : blockDim.x;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  const int step = rf ? 1 : blockDim.x;  // distance in sh between lanes of one slot
  const u64_t r_begin = (u64_t)blockIdx.y * (u64_t)L.chunk;
  const u64_t r_stop = r_begin + (u64_t)L.chunk;
  const u64_t r_end = r_stop < (u64_t)L.n_red ? r_stop : (u64_t)L.n_red;
  const u64_t n_out = (u64_t)L.n_out;
  const bool contiguous = rf && (L.red_rank == 0 || (L.red_rank == 1 && L.x_red_stride[0] == 1));
  // the loop bound is the same for the whole block, so every thread reaches each __syncthreads
  for (u64_t o0 = (u64_t)blockIdx.x * slots; o0 < n_out; o0 += (u64_t)gridDim.x * slots) {
    const u64_t o = o0 + slot;
    Acc acc = R::identity();
    i64_t xo = 0, oo = 0;
    if (o < n_out) {
      out_offsets(L, o, xo, oo);
      if (contiguous) acc = fold_contiguous<R, T>(acc, x + xo, r_begin, r_end, lane, lanes);
      else
        for (u64_t r = r_begin + lane; r < r_end; r += lanes) acc = R::add(acc, T::load(x[xo + red_offset(L, r)]), (i64_t)r);
    }
    sh[tid] = acc;
    __syncthreads();
    for (int s = lanes / 2; s > 0; s >>= 1) {
      if (lane < s) sh[tid] = R::merge(sh[tid], sh[tid + s * step]);
      __syncthreads();
    }
    if (lane == 0 && o < n_out) {
      if (gridDim.y == 1) out[oo] = R::finish(sh[tid]);
      else partial[o * gridDim.y + blockIdx.y] = sh[tid];
    }
    __syncthreads();
  }
}

/**
 * Combines the `splits` partial accumulators of each output: one block per output (grid-stride), its
 * threads striding over the partials and merging in shared memory (a serial loop over hundreds of
 * partials in one thread took longer than the reduction itself).
 */
template <class R>
MOPT_DEV void finish_body(const ReduceLayout& L, typename R::Out* out, const typename R::Acc* partial, int splits) {
  typedef typename R::Acc Acc;
  __shared__ Acc sh[MOPT_BLOCK];
  for (u64_t o = blockIdx.x; o < (u64_t)L.n_out; o += gridDim.x) {
    Acc acc = R::identity();
    for (int s = threadIdx.x; s < splits; s += blockDim.x) acc = R::merge(acc, partial[o * splits + s]);
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
      if ((int)threadIdx.x < w) sh[threadIdx.x] = R::merge(sh[threadIdx.x], sh[threadIdx.x + w]);
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      i64_t xo, oo;
      out_offsets(L, o, xo, oo);
      out[oo] = R::finish(sh[0]);
    }
    __syncthreads();
  }
}

#define MOPT_DEF_REDUCE(name, R, T)                                                                      \
  MOPT_KERNEL name##_##T(ReduceLayout L, R<dt::T>::Out* out, const dt::T::S* x, void* partial) {         \
    reduce_body<R<dt::T>, dt::T>(L, out, x, (R<dt::T>::Acc*)partial);                                    \
  }                                                                                                      \
  MOPT_KERNEL name##_##T##_finish(ReduceLayout L, R<dt::T>::Out* out, const void* partial, i64_t splits) { \
    finish_body<R<dt::T>>(L, out, (const R<dt::T>::Acc*)partial, (int)splits);                                \
  }
#define MOPT_REDUCE_FOR(T)               \
  MOPT_DEF_REDUCE(reduce_sum, SumR, T)   \
  MOPT_DEF_REDUCE(reduce_max, MaxR, T)   \
  MOPT_DEF_REDUCE(reduce_min, MinR, T)   \
  MOPT_DEF_REDUCE(reduce_amax, AmaxR, T) \
  MOPT_DEF_REDUCE(argmax, ArgmaxR, T)
MOPT_COMPUTE_DTYPES(MOPT_REDUCE_FOR)
