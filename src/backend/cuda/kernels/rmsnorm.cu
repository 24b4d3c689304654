// RMSNorm forward and backward (src/backend/cpu/fused.ts rmsNormCpu / rmsNormBackwardCpu).
//
// Forward, per row: rstd = 1/sqrt(mean(x^2) + eps) with float32 statistics (LlamaRMSNorm upcasts), the
// normalised value x * rstd rounded to x's dtype (transformers casts back before the weight multiply),
// then times the weight, rounded once. The mean, mean + eps and 1/sqrt are each rounded to float32 from
// float64 arithmetic, as the CPU does, so only the float32 sum of squares can differ from the CPU.
//
// Backward: gx = rstd * (g*w - xhat * mean(g*w*xhat)), xhat = x * rstd; gw = sum over rows of g * xhat.
// gw is reduced without atomics: each block keeps per-column partial sums in shared memory over the
// rows it owns, writes them to a scratch row of its own, and rms_norm_gw sums the scratch rows.
//
// Rows are the input's leading dims collapsed to one stride (the host copies views that do not collapse);
// outputs are contiguous. One block per row, grid-stride over rows.
#include "fused.cuh"

template <class T>
MOPT_DEV void rms_norm_body(typename T::S* out, float* rstd, const typename T::S* x, const typename T::S* w, i64_t rows,
                            i64_t d, i64_t x_row, i64_t x_col, i64_t w_col, double eps) {
  typedef typename Acc<T>::type A;
  typedef typename T::S S;
  constexpr int N = VecN<S>::N;
  __shared__ A part[32];
  // rows, weight and output unit-stride and 16-byte aligned: a thread moves N elements per access
  const bool vec = x_col == 1 && w_col == 1 && d % N == 0 && x_row % N == 0 && vec_aligned<N>(x, 0) &&
                   vec_aligned<N>(w, 0) && vec_aligned<N>(out, 0);
  for (i64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const S* xr = x + r * x_row;
    S* o = out + r * d;
    A ss = A(0);
    if (vec) {
      ss = rms_sumsq_vec<T>(xr, d, blockDim.x);
    } else {
      for (i64_t j = threadIdx.x; j < d; j += blockDim.x) {
        const A v = T::load(xr[j * x_col]);
        ss += v * v;
      }
    }
    const A rs = rms_rstd<A>(block_sum(ss, part), d, eps);
    if (threadIdx.x == 0) rstd[r] = (float)rs;
    if (vec) {
      for (i64_t v = threadIdx.x; v < d / N; v += blockDim.x) {
        const Vec<S, N> xv = vec_load<N>(xr, v), wv = vec_load<N>(w, v);
        Vec<S, N> ov;
#pragma unroll
        for (int e = 0; e < N; e++) ov.v[e] = rms_elem<T>(xv.v[e], wv.v[e], rs);
        vec_store<N>(o, v, ov);
      }
    } else {
      for (i64_t j = threadIdx.x; j < d; j += blockDim.x) o[j] = rms_elem<T>(xr[j * x_col], w[j * w_col], rs);
    }
  }
}

/** gw_part is [gridDim.x, d] scratch in the accumulation type; dynamic shared memory holds d of them. */
template <class T>
MOPT_DEV void rms_norm_bwd_body(typename T::S* gx, typename Acc<T>::type* gw_part, const typename T::S* x,
                                const typename T::S* w, const float* rstd, const typename T::S* g, i64_t rows, i64_t d,
                                i64_t x_row, i64_t x_col, i64_t g_row, i64_t g_col, i64_t w_col) {
  typedef typename Acc<T>::type A;
  __shared__ A part[32];
  A* colsum = reinterpret_cast<A*>(fused_smem);
  // each thread owns columns threadIdx.x + k * blockDim.x for every row: no races on colsum
  for (i64_t j = threadIdx.x; j < d; j += blockDim.x) colsum[j] = A(0);
  for (i64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const typename T::S* xr = x + r * x_row;
    const typename T::S* gr = g + r * g_row;
    const A rs = (A)rstd[r];
    A dot = A(0);
    for (i64_t j = threadIdx.x; j < d; j += blockDim.x) {
      const A xhat = (A)T::load(xr[j * x_col]) * rs;
      const A gv = T::load(gr[j * g_col]);
      dot += gv * (A)T::load(w[j * w_col]) * xhat;
      colsum[j] += gv * xhat;
    }
    const A mean = block_sum(dot, part) / (A)d;
    typename T::S* o = gx + r * d;
    for (i64_t j = threadIdx.x; j < d; j += blockDim.x) {
      const A xv = T::load(xr[j * x_col]);
      o[j] = T::store(rs * ((A)T::load(gr[j * g_col]) * (A)T::load(w[j * w_col]) - xv * rs * mean));
    }
  }
  A* mine = gw_part + (i64_t)blockIdx.x * d;
  for (i64_t j = threadIdx.x; j < d; j += blockDim.x) mine[j] = colsum[j];
}

/** gw[j] = sum of the `parts` scratch rows, one thread per column (reads coalesced across threads). */
template <class T>
MOPT_DEV void rms_norm_gw_body(typename T::S* gw, const typename Acc<T>::type* gw_part, i64_t parts, i64_t d) {
  typedef typename Acc<T>::type A;
  for (i64_t j = (i64_t)global_thread(); j < d; j += (i64_t)global_threads()) {
    A s = A(0);
    for (i64_t p = 0; p < parts; p++) s += gw_part[p * d + j];
    gw[j] = T::store(s);
  }
}

#define MOPT_DEF_RMS_NORM(T)                                                                                          \
  extern "C" __global__ void __launch_bounds__(256) rms_norm_##T(dt::T::S* out, float* rstd, const dt::T::S* x,     \
      const dt::T::S* w, i64_t rows, i64_t d, i64_t x_row, i64_t x_col, i64_t w_col, double eps) {                   \
    rms_norm_body<dt::T>(out, rstd, x, w, rows, d, x_row, x_col, w_col, eps);                                         \
  }                                                                                                                   \
  extern "C" __global__ void __launch_bounds__(256) rms_norm_bwd_##T(dt::T::S* gx, Acc<dt::T>::type* gw_part,        \
      const dt::T::S* x, const dt::T::S* w, const float* rstd, const dt::T::S* g, i64_t rows, i64_t d, i64_t x_row,   \
      i64_t x_col, i64_t g_row, i64_t g_col, i64_t w_col) {                                                          \
    rms_norm_bwd_body<dt::T>(gx, gw_part, x, w, rstd, g, rows, d, x_row, x_col, g_row, g_col, w_col);                 \
  }                                                                                                                   \
  extern "C" __global__ void __launch_bounds__(256) rms_norm_gw_##T(dt::T::S* gw, const Acc<dt::T>::type* gw_part,   \
      i64_t parts, i64_t d) {                                                                                         \
    rms_norm_gw_body<dt::T>(gw, gw_part, parts, d);                                                                   \
  }
MOPT_FUSED_DTYPES(MOPT_DEF_RMS_NORM)
