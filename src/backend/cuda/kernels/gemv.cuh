// The GEMV kernel bodies, stamped out by gemv.cu (plain) and gemv_norm.cu (with the RMSNorm prologue).
//
// out[m, n] = sum_k a[m, k] * w[n, k] for a few rows of a (M <= 8: batch-1 decoding, small verification
// batches) against row-major weights w [N, K] (torch.nn.Linear layout; the matmul's b is its transposed
// view). At this size a GEMM is a stream over the weight: every weight byte is read once from HBM, so the
// kernel is built to keep many 16-byte loads in flight: one warp per output column n, each lane loading
// U independent 16-byte chunks of the weight row before using any (8 for one weight and up to two rows:
// a whole 2048-long row in one round trip; 4 otherwise, where registers run short), the M activation
// rows read alongside (they are small and stay in L1/L2). The chunk order per lane does not depend on U.
//
// One launch serves up to three weights that share the input (q/k/v projections: segments of the launch's
// columns), and an epilogue can replace the op that would follow (one kernel node fewer per use in a
// decode step, where each node costs a few microseconds):
//   GEMV_PLAIN     out_s = a @ w_s^T
//   GEMV_RESIDUAL  out_s = res_s + a @ w_s^T   (the decoder's residual adds)
//   gemv_swiglu    out_0 = silu(a @ w_0^T) * (a @ w_1^T)   (gate and up of the MLP, one column pair per warp)
// and a prologue can replace the RMSNorm before it (the *_norm kernels: a is the raw residual stream and
// the CTA first writes rmsnorm(a) * norm_w to shared memory, bit for bit what rmsnorm.cu writes: the same
// helpers and the same reduction, emulated for the thread count rmsnorm.cu would use; meanwhile each warp's
// first weight row is prefetched into L2, so the stream starts while the row statistics are formed).
//
// Every GEMV first prefetches its warp's first weight row into L2, then waits for the grid it depends on
// (pdl_wait: when launched as a programmatic dependent in a recorded decode step, it starts while the
// previous kernel still runs; weights are never written by a running kernel, activations are read only
// after the wait), then lets the next kernel start early (pdl_trigger).
//
// Numerics: float32 accumulation with fma, one rounding to the output dtype (as cuBLASLt's bf16/f16 GEMM
// with CUBLAS_COMPUTE_32F; only the summation order differs); the epilogues round the product first and
// then do exactly what binary add / swiglu do, so a fused call equals the unfused pair bit for bit. The
// host (gemv.ts) launches these only when K, the row strides and the base addresses are multiples of 8
// elements / 16 bytes.
#pragma once
#include "fused.cuh"

#define MOPT_GEMV_WARPS 8
#define MOPT_GEMV_SEGS 3

// Must match src/backend/cuda/gemv.ts GEMV_FIELDS (every field an i64_t, in this order).
struct GemvSeg {
  i64_t w, ldw;    // weight address, row stride
  i64_t out, ldo;  // output address, row stride (between the M rows)
  i64_t res, ldr;  // residual address and row stride (GEMV_RESIDUAL), else 0
  i64_t end;       // one past this segment's last column of the launch
};
struct GemvLayout {
  i64_t a, lda, K, M, mode, nseg;  // M: rows of a (informational: the kernel is stamped out per M)
  i64_t norm_w, norm_eps, norm_threads;  // *_norm kernels: RMSNorm weight, eps (float64 bits), rmsnorm.cu's block size
  GemvSeg seg[MOPT_GEMV_SEGS];
};
#define GEMV_PLAIN 0
#define GEMV_RESIDUAL 1

/** acc[m] += a[m, :] . w[:] over a warp's share of K (lane-strided 16-byte chunks), then summed over the warp. */
template <class T, int M, int NW, bool SHARED_A>
MOPT_DEV void gemv_dot(float (&acc)[NW][M], const typename T::S* a, i64_t lda, const typename T::S* const (&w)[NW], i64_t K, int lane) {
  constexpr int U = NW == 1 && M <= 2 ? 8 : 4, E = 8;
  const i64_t chunks = K / E;
  for (i64_t c0 = lane; c0 < chunks; c0 += 32 * U) {
    U4 wc[NW][U];
#pragma unroll
    for (int u = 0; u < U; u++) {
      const i64_t c = c0 + 32 * u;
#pragma unroll
      for (int j = 0; j < NW; j++)
        if (c < chunks) wc[j][u] = ld_global16_nc(reinterpret_cast<const U4*>(w[j]) + c);
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      const i64_t c = c0 + 32 * u;
      if (c >= chunks) break;
#pragma unroll
      for (int m = 0; m < M; m++) {
        float af[E];
        const U4* ar = reinterpret_cast<const U4*>(a + m * lda) + c;
        widen8<T>(SHARED_A ? *ar : ld_global16(ar), af);
#pragma unroll
        for (int j = 0; j < NW; j++) {
          float wf[E];
          widen8<T>(wc[j][u], wf);
#pragma unroll
          for (int e = 0; e < E; e++) acc[j][m] = fmaf(af[e], wf[e], acc[j][m]);
        }
      }
    }
  }
#pragma unroll
  for (int j = 0; j < NW; j++)
#pragma unroll
    for (int m = 0; m < M; m++) acc[j][m] = warp_sum(acc[j][m]);
}

/** Warms L2 with one weight row (K 16-bit elements): each lane touches every 32nd 128-byte line. */
MOPT_DEV void prefetch_row_l2(const void* row, i64_t K, int lane) {
  const char* p = reinterpret_cast<const char*>(row);
  for (i64_t off = (i64_t)lane * 128; off < 2 * K; off += 32 * 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(p + off));
}

/**
 * The *_norm prologue: rmsnorm(a_m) * norm_w for the M rows into shared memory [M][K] (lda becomes K).
 * Every thread of the CTA takes part (block_sum), so it runs before the per-warp column loop.
 */
template <class T, int M>
MOPT_DEV const typename T::S* gemv_norm_rows(const GemvLayout& L) {
  typedef typename T::S S;
  typedef typename Acc<T>::type A;
  constexpr int N = VecN<S>::N;
  __shared__ A part[32];
  S* sa = reinterpret_cast<S*>(fused_smem);
  const S* w = reinterpret_cast<const S*>(L.norm_w);
  const double eps = __longlong_as_double(L.norm_eps);
#pragma unroll 1
  for (int m = 0; m < M; m++) {
    const S* xr = reinterpret_cast<const S*>(L.a) + m * L.lda;
    const A rs = rms_rstd<A>(block_sum(rms_sumsq_vec<T>(xr, L.K, (int)L.norm_threads), part), L.K, eps);
    for (i64_t v = threadIdx.x; v < L.K / N; v += blockDim.x) {
      const Vec<S, N> xv = vec_load<N>(xr, v), wv = vec_load<N>(w, v);
      Vec<S, N> ov;
#pragma unroll
      for (int e = 0; e < N; e++) ov.v[e] = rms_elem<T>(xv.v[e], wv.v[e], rs);
      vec_store<N>(sa + m * L.K, v, ov);
    }
  }
  __syncthreads();
  return sa;
}

// Warps walk the launch's columns grid-stride: the host sizes the grid to what fits on the GPU at once,
// so no CTA waits for a second wave and none is launched for a few microseconds of work.
template <class T, int M, bool NORM>
MOPT_DEV void gemv_body(const GemvLayout& L) {
  typedef typename T::S S;
  const int lane = threadIdx.x & 31;
  const i64_t total = L.seg[L.nseg - 1].end;
  const S* a = reinterpret_cast<const S*>(L.a);
  i64_t lda = L.lda;
  {
    const i64_t col = (i64_t)blockIdx.x * MOPT_GEMV_WARPS + (threadIdx.x >> 5);
    if (col < total) {
      int s = 0;
      while (col >= L.seg[s].end) s++;
      const i64_t n = s > 0 ? col - L.seg[s - 1].end : col;
      prefetch_row_l2(reinterpret_cast<const S*>(L.seg[s].w) + n * L.seg[s].ldw, L.K, lane);
    }
  }
  pdl_wait();
  pdl_trigger();
  if constexpr (NORM) {
    a = gemv_norm_rows<T, M>(L);
    lda = L.K;
  }
  for (i64_t col = (i64_t)blockIdx.x * MOPT_GEMV_WARPS + (threadIdx.x >> 5); col < total; col += (i64_t)gridDim.x * MOPT_GEMV_WARPS) {
    int s = 0;
    while (col >= L.seg[s].end) s++;
    const GemvSeg& g = L.seg[s];
    const i64_t n = s > 0 ? col - L.seg[s - 1].end : col;
    const S* const w[1] = {reinterpret_cast<const S*>(g.w) + n * g.ldw};
    float acc[1][M];
#pragma unroll
    for (int m = 0; m < M; m++) acc[0][m] = 0.f;
    gemv_dot<T, M, 1, NORM>(acc, a, lda, w, L.K, lane);
    if (lane != 0) continue;
    S* out = reinterpret_cast<S*>(g.out);
#pragma unroll
    for (int m = 0; m < M; m++) {
      S y = T::store(acc[0][m]);
      if (L.mode == GEMV_RESIDUAL) y = T::store(T::load(reinterpret_cast<const S*>(g.res)[m * g.ldr + n]) + T::load(y));
      out[m * g.ldo + n] = y;
    }
  }
}

/** Segment 0 is the gate projection, segment 1 the up projection (same N); writes silu(gate) * up to out_0. */
template <class T, int M, bool NORM>
MOPT_DEV void gemv_swiglu_body(const GemvLayout& L) {
  typedef typename T::S S;
  const int lane = threadIdx.x & 31;
  const S* a = reinterpret_cast<const S*>(L.a);
  i64_t lda = L.lda;
  {
    const i64_t n = (i64_t)blockIdx.x * MOPT_GEMV_WARPS + (threadIdx.x >> 5);
    if (n < L.seg[0].end)
      for (int j = 0; j < 2; j++) prefetch_row_l2(reinterpret_cast<const S*>(L.seg[j].w) + n * L.seg[j].ldw, L.K, lane);
  }
  pdl_wait();
  pdl_trigger();
  if constexpr (NORM) {
    a = gemv_norm_rows<T, M>(L);
    lda = L.K;
  }
  for (i64_t n = (i64_t)blockIdx.x * MOPT_GEMV_WARPS + (threadIdx.x >> 5); n < L.seg[0].end; n += (i64_t)gridDim.x * MOPT_GEMV_WARPS) {
    const S* const w[2] = {reinterpret_cast<const S*>(L.seg[0].w) + n * L.seg[0].ldw, reinterpret_cast<const S*>(L.seg[1].w) + n * L.seg[1].ldw};
    float acc[2][M];
#pragma unroll
    for (int m = 0; m < M; m++) acc[0][m] = acc[1][m] = 0.f;
    gemv_dot<T, M, 2, NORM>(acc, a, lda, w, L.K, lane);
    if (lane != 0) continue;
    S* out = reinterpret_cast<S*>(L.seg[0].out);
#pragma unroll
    for (int m = 0; m < M; m++) out[m * L.seg[0].ldo + n] = T::store(swiglu_one<T>(T::store(acc[0][m]), T::store(acc[1][m])));
  }
}

// The entry points of one (dtype, rows) pair: gemv_<PFX><dtype>_m<rows> and gemv_swiglu_<PFX><dtype>_m<rows>,
// PFX empty (gemv.cu) or norm_ with the RMSNorm prologue (gemv_norm.cu).
#define MOPT_DEF_GEMV_KERNELS(T, M, PFX, NORM)                                                                   \
  extern "C" __global__ void __launch_bounds__(32 * MOPT_GEMV_WARPS) gemv_##PFX##T##_m##M(GemvLayout L) {       \
    gemv_body<dt::T, M, NORM>(L);                                                                                \
  }                                                                                                              \
  extern "C" __global__ void __launch_bounds__(32 * MOPT_GEMV_WARPS) gemv_swiglu_##PFX##T##_m##M(GemvLayout L) { \
    gemv_swiglu_body<dt::T, M, NORM>(L);                                                                         \
  }
