// Softmax cross-entropy per row of logits [N, V] against integer targets (src/backend/cpu/fused.ts
// crossEntropyCpu / crossEntropyBackwardCpu): loss = lse - x[target], 0 for ignore_index rows;
// gLogits = gLoss * (softmax - onehot), zero rows for ignored targets.
//
// One block per row (grid-stride over rows), float32 math (float64 for float64 logits, whose losses and
// lse are float64 too). The forward reads each logit once with an online max/sum per thread, merged
// across the block. Special values follow the CPU's formulas: a NaN or +inf logit makes lse NaN, -inf
// logits contribute nothing, a row of only -inf gives NaN. A target outside [0, V) that is not
// ignore_index makes the CPU throw; a kernel cannot, so that row's loss (and gradient) is NaN instead.
#include "fused.cuh"

/** Running (max, sum of exp(x - max)) of the finite logits seen so far; `bad` counts NaN / +inf. */
template <class A>
struct LseAcc {
  A m, s;
  int bad;
  __device__ __forceinline__ void add(A v) {
    if (!(v < m_inf(v))) {
      bad = 1;  // NaN or +inf: the CPU's sum becomes NaN
    } else if (v > m) {
      s = s * m_exp(m - v) + A(1);  // m = -inf at first: exp(-inf) = 0
      m = v;
    } else if (v > -m_inf(v)) {
      s += m_exp(v - m);
    }
  }
  __device__ __forceinline__ void merge(A m2, A s2, int bad2) {
    bad |= bad2;
    const A mm = m2 > m ? m2 : m;
    if (mm == -m_inf(mm)) return;  // both empty
    s = s * m_exp(m - mm) + s2 * m_exp(m2 - mm);
    m = mm;
  }
  __device__ __forceinline__ A lse() const { return bad || m == -m_inf(m) ? quiet_nan(m) : m + m_log(s); }
};

/** Merges every thread's accumulator; the whole block gets the row's lse. */
template <class A>
MOPT_DEV A block_lse(LseAcc<A> a) {
  __shared__ A pm[32], ps[32];
  __shared__ int pb[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const A m2 = __shfl_xor_sync(MOPT_FULL_MASK, a.m, o), s2 = __shfl_xor_sync(MOPT_FULL_MASK, a.s, o);
    a.merge(m2, s2, __shfl_xor_sync(MOPT_FULL_MASK, a.bad, o));
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) pm[warp] = a.m, ps[warp] = a.s, pb[warp] = a.bad;
  __syncthreads();
  LseAcc<A> t = {-m_inf(A(0)), A(0), 0};
  for (int w = 0; w < warps; w++) t.merge(pm[w], ps[w], pb[w]);
  __syncthreads();  // pm/ps/pb are reused by the next row
  return t.lse();
}

template <class T, class I>
MOPT_DEV void cross_entropy_body(typename Acc<T>::type* loss, typename Acc<T>::type* lse, const typename T::S* x,
                                 const I* target, i64_t rows, i64_t v, i64_t x_row, i64_t x_col, i64_t t_stride,
                                 i64_t ignore) {
  typedef typename Acc<T>::type A;
  for (i64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const typename T::S* xr = x + r * x_row;
    LseAcc<A> acc = {-m_inf(A(0)), A(0), 0};
    for (i64_t j = threadIdx.x; j < v; j += blockDim.x) acc.add(T::load(xr[j * x_col]));
    const A l = block_lse(acc);
    if (threadIdx.x == 0) {
      const i64_t t = (i64_t)target[r * t_stride];
      lse[r] = l;
      loss[r] = t == ignore ? A(0) : (t < 0 || t >= v ? quiet_nan(l) : l - (A)T::load(xr[t * x_col]));
    }
  }
}

template <class T, class I>
MOPT_DEV void cross_entropy_bwd_body(typename T::S* gx, const typename T::S* x, const I* target,
                                     const typename Acc<T>::type* lse, const typename Acc<T>::type* g_loss, i64_t rows,
                                     i64_t v, i64_t x_row, i64_t x_col, i64_t t_stride, i64_t lse_stride,
                                     i64_t g_stride, i64_t ignore) {
  typedef typename Acc<T>::type A;
  for (i64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const typename T::S* xr = x + r * x_row;
    typename T::S* o = gx + r * v;
    const i64_t t = (i64_t)target[r * t_stride];
    const A l = lse[r * lse_stride], g = g_loss[r * g_stride];
    const bool skip = t == ignore, bad = t < 0 || t >= v;
    for (i64_t j = threadIdx.x; j < v; j += blockDim.x) {
      A val = A(0);
      if (!skip) val = bad ? quiet_nan(l) : g * (m_exp((A)T::load(xr[j * x_col]) - l) - (j == t ? A(1) : A(0)));
      o[j] = T::store(val);
    }
  }
}

// Targets by index dtype: int32 and int64 (the host converts other integer dtypes to int32).
#define MOPT_CE_INDEX(X, T) X(T, i32) X(T, i64)
#define MOPT_DEF_CE(T, I)                                                                                            \
  extern "C" __global__ void __launch_bounds__(256) cross_entropy_##T##_##I(Acc<dt::T>::type* loss,                 \
      Acc<dt::T>::type* lse, const dt::T::S* x, const dt::I::S* target, i64_t rows, i64_t v, i64_t x_row,            \
      i64_t x_col, i64_t t_stride, i64_t ignore) {                                                                   \
    cross_entropy_body<dt::T, dt::I::S>(loss, lse, x, target, rows, v, x_row, x_col, t_stride, ignore);              \
  }                                                                                                                  \
  extern "C" __global__ void __launch_bounds__(256) cross_entropy_bwd_##T##_##I(dt::T::S* gx, const dt::T::S* x,    \
      const dt::I::S* target, const Acc<dt::T>::type* lse, const Acc<dt::T>::type* g_loss, i64_t rows, i64_t v,     \
      i64_t x_row, i64_t x_col, i64_t t_stride, i64_t lse_stride, i64_t g_stride, i64_t ignore) {                    \
    cross_entropy_bwd_body<dt::T, dt::I::S>(gx, x, target, lse, g_loss, rows, v, x_row, x_col, t_stride, lse_stride, \
                                            g_stride, ignore);                                                       \
  }
#define MOPT_DEF_CE_ALL(T) MOPT_CE_INDEX(MOPT_DEF_CE, T)
MOPT_FUSED_DTYPES(MOPT_DEF_CE_ALL)
