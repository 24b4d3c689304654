// Softmax and log-softmax along one axis of a strided view, computed in float32 (float64 for float64 and
// integers) with the CPU's formulas (src/backend/cpu/cpu-backend.ts rowwise):
//   m = max(row) (NaN if any NaN), m = 0 when the row is all -inf, lse = m + log(sum(exp(x - m))),
//   softmax = exp(x - lse), log-softmax = x - lse.
// So an all -inf row gives NaN for both, +inf or NaN anywhere in a row gives NaN, as on the CPU.
// One warp per row when rows are short (warp_rows), else one block per row; three passes over the row
// (max, sum, write), the later ones mostly hitting L2.
#include "common.cuh"

// Must match src/backend/cuda/layout.ts rowLayout. Rows are indexed over the collapsed non-axis dims.
struct RowLayout {
  i64_t rows;
  i64_t len;  // size of the softmax axis
  int rank;
  int warp_rows;  // 1: one warp per row, 0: one block per row
  i64_t shape[MOPT_MAX_DIMS];
  i64_t x_stride[MOPT_MAX_DIMS];
  i64_t o_stride[MOPT_MAX_DIMS];
  i64_t x_axis_stride;
  i64_t o_axis_stride;
  i64_t x_offset;
  i64_t o_offset;
};

template <class C>
MOPT_DEV C nan_max(C a, C b) { return is_nan(b) || b > a ? b : a; }  // NaN, once seen, stays

template <class C, bool MAX>
MOPT_DEV C warp_reduce(C v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const C w = __shfl_xor_sync(0xffffffffu, v, o);
    v = MAX ? nan_max(v, w) : v + w;
  }
  return v;
}

/** Reduces v over the row's workers: the warp (warp_rows) or the whole block. */
template <class C, bool MAX>
MOPT_DEV C row_reduce(C v, bool warp_rows) {
  v = warp_reduce<C, MAX>(v);
  if (warp_rows) return v;
  __shared__ C part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    C w = lane < warps ? part[lane] : (MAX ? -m_inf(v) : C(0));
    w = warp_reduce<C, MAX>(w);
    if (lane == 0) part[0] = w;
  }
  __syncthreads();
  v = part[0];
  __syncthreads();  // part is reused by the next reduction
  return v;
}

template <class T, bool LOG>
MOPT_DEV void softmax_body(const RowLayout& L, typename T::S* out, const typename T::S* x) {
  typedef typename T::C C;
  const bool wr = L.warp_rows != 0;
  const int warp = threadIdx.x >> 5;
  const u64_t rows_per_block = wr ? blockDim.x >> 5 : 1;
  const int worker = wr ? threadIdx.x & 31 : threadIdx.x, workers = wr ? 32 : blockDim.x;
  const i64_t len = L.len, xs = L.x_axis_stride, os = L.o_axis_stride;
  // the loop bound is uniform over the block, so block-wide reductions see every thread
  for (u64_t r0 = (u64_t)blockIdx.x * rows_per_block; r0 < (u64_t)L.rows; r0 += (u64_t)gridDim.x * rows_per_block) {
    u64_t row = r0 + (wr ? warp : 0);
    const bool active = row < (u64_t)L.rows;  // uniform within a warp
    i64_t xo = L.x_offset, oo = L.o_offset;
    if (active) {
#pragma unroll 1
      for (int d = L.rank - 1; d >= 0; d--) {
        const u64_t q = div_index(row, (u64_t)L.shape[d]);
        const i64_t r = (i64_t)(row - q * (u64_t)L.shape[d]);
        row = q;
        xo += r * L.x_stride[d];
        oo += r * L.o_stride[d];
      }
    }
    C m = -m_inf(C(0));
    if (active)
      for (i64_t j = worker; j < len; j += workers) m = nan_max(m, T::load(x[xo + j * xs]));
    m = row_reduce<C, true>(m, wr);
    if (m == -m_inf(C(0))) m = C(0);
    C s = C(0);
    if (active)
      for (i64_t j = worker; j < len; j += workers) s += m_exp(T::load(x[xo + j * xs]) - m);
    s = row_reduce<C, false>(s, wr);
    const C lse = m + m_log(s);
    if (active)
      for (i64_t j = worker; j < len; j += workers) {
        const C v = T::load(x[xo + j * xs]);
        out[oo + j * os] = T::store(LOG ? v - lse : m_exp(v - lse));
      }
  }
}

#define MOPT_DEF_SOFTMAX(T)                                                    \
  MOPT_KERNEL softmax_##T(RowLayout L, dt::T::S* out, const dt::T::S* x) {     \
    softmax_body<dt::T, false>(L, out, x);                                     \
  }                                                                            \
  MOPT_KERNEL log_softmax_##T(RowLayout L, dt::T::S* out, const dt::T::S* x) { \
    softmax_body<dt::T, true>(L, out, x);                                      \
  }
MOPT_COMPUTE_DTYPES(MOPT_DEF_SOFTMAX)
