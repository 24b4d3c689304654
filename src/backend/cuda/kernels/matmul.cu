// Fallback batched matmul for the cases the cuBLASLt path (src/backend/cuda/cublaslt.ts) declines:
// out[z] = a[z] @ b[z] over strided operands with broadcast (stride-0) batch dims. A plain shared-memory
// tiled kernel: 64x64 output tiles, 16-deep k steps, 4x4 outputs per thread, accumulation in the compute
// type (float32 for float32/float16/bfloat16, float64 for float64 and integers) with explicit fma.
// Correct for any layout; fast only next to nothing else — GEMMs that matter go to cuBLASLt.
#include "common.cuh"

#define MOPT_BM 64
#define MOPT_BN 64
#define MOPT_BK 16

// Must match src/backend/cuda/layout.ts matmulLayout. Strides in elements.
struct MatmulLayout {
  i64_t batch, m, n, k;
  int brank;
  int pad_;
  i64_t bshape[MOPT_MAX_DIMS];
  i64_t a_bstride[MOPT_MAX_DIMS];
  i64_t b_bstride[MOPT_MAX_DIMS];
  i64_t o_bstride[MOPT_MAX_DIMS];
  i64_t a_sm, a_sk;  // a[i][p]
  i64_t b_sk, b_sn;  // b[p][j]
  i64_t o_sm, o_sn;  // out[i][j]
  i64_t a_off, b_off, o_off;
};

template <class T>
MOPT_DEV void matmul_body(const MatmulLayout& L, typename T::S* out, const typename T::S* a, const typename T::S* b) {
  typedef typename T::C C;
  __shared__ C As[MOPT_BK][MOPT_BM + 1];  // +1: the transposing stores below hit distinct banks
  __shared__ C Bs[MOPT_BK][MOPT_BN];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  for (u64_t z = blockIdx.z; z < (u64_t)L.batch; z += gridDim.z) {
    i64_t ao = L.a_off, bo = L.b_off, oo = L.o_off;
    u64_t rest = z;
    for (int d = L.brank - 1; d >= 0; d--) {
      const u64_t q = div_index(rest, (u64_t)L.bshape[d]);
      const i64_t r = (i64_t)(rest - q * (u64_t)L.bshape[d]);
      rest = q;
      ao += r * L.a_bstride[d];
      bo += r * L.b_bstride[d];
      oo += r * L.o_bstride[d];
    }
    for (i64_t m0 = (i64_t)blockIdx.y * MOPT_BM; m0 < L.m; m0 += (i64_t)gridDim.y * MOPT_BM) {
      for (i64_t n0 = (i64_t)blockIdx.x * MOPT_BN; n0 < L.n; n0 += (i64_t)gridDim.x * MOPT_BN) {
        C acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
          for (int j = 0; j < 4; j++) acc[i][j] = C(0);
        for (i64_t k0 = 0; k0 < L.k; k0 += MOPT_BK) {
#pragma unroll
          for (int q = 0; q < 4; q++) {
            const int e = tid + 256 * q;
            const int ar = e / MOPT_BK, ak = e % MOPT_BK;  // a tile: consecutive threads walk k
            const i64_t gi = m0 + ar, gk = k0 + ak;
            As[ak][ar] = gi < L.m && gk < L.k ? T::load(a[ao + gi * L.a_sm + gk * L.a_sk]) : C(0);
            const int bk = e / MOPT_BN, bc = e % MOPT_BN;  // b tile: consecutive threads walk n
            const i64_t hk = k0 + bk, gj = n0 + bc;
            Bs[bk][bc] = hk < L.k && gj < L.n ? T::load(b[bo + hk * L.b_sk + gj * L.b_sn]) : C(0);
          }
          __syncthreads();
#pragma unroll
          for (int kk = 0; kk < MOPT_BK; kk++) {
            C av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; i++) av[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
              for (int j = 0; j < 4; j++) acc[i][j] = m_fma(av[i], bv[j], acc[i][j]);
          }
          __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
          for (int j = 0; j < 4; j++) {
            const i64_t gi = m0 + ty + 16 * i, gj = n0 + tx + 16 * j;
            if (gi < L.m && gj < L.n) out[oo + gi * L.o_sm + gj * L.o_sn] = T::store(acc[i][j]);
          }
      }
    }
  }
}

#define MOPT_DEF_MATMUL(T)                                                          \
  MOPT_KERNEL matmul_##T(MatmulLayout L, dt::T::S* out, const dt::T::S* a,          \
                                                               const dt::T::S* b) { \
    matmul_body<dt::T>(L, out, a, b);                                               \
  }
MOPT_COMPUTE_DTYPES(MOPT_DEF_MATMUL)
