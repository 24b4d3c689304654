// Shared by attention.cu (forward) and attention_bwd.cu (backward): the launch layout, the mask, and
// the tile building blocks of the FlashAttention-style kernels.
//
// Layout: q, out, gOut are [B, H, S, D], k, v are [B, KV, T, D] strided views whose last dim has stride 1
// (the host copies other views); kernels get pointers with the view offsets already applied, and the
// strides of the other three dims here. Query head h reads KV head h / (H / KV). Query s sits at
// absolute position past + s, keys at 0..T-1; key t is visible from position p when (!causal || t <= p)
// and (window < 0 || p - t < window), as src/backend/cpu/fused.ts visible().
//
// Tiles are staged in shared memory as float (converted once on load, zero-padded to the padded head dim
// DP and to the tile's rows), row-major with a row pitch LD = DP + 4: rows stay 16-byte aligned for
// 16-byte reads (F4), and the 4-float skew spreads the 8 rows a quarter-warp reads over all 32 banks.
#pragma once
#include "fused.cuh"

// Must match src/backend/cuda/fused-attention.ts ATTN_FIELDS (every field is an i64_t, in this order).
struct AttnLayout {
  i64_t B, H, KV, S, T, D;
  i64_t q_sb, q_sh, q_ss;  // q [B, H, S, D]
  i64_t k_sb, k_sh, k_st;  // k [B, KV, T, D]
  i64_t v_sb, v_sh, v_st;  // v [B, KV, T, D]
  i64_t o_sb, o_sh, o_ss;  // the forward output (read by the backward's delta)
  i64_t g_sb, g_sh, g_ss;  // gOut (backward)
  i64_t past, window, causal;  // window < 0: no sliding window
  i64_t key_lo, key_hi;  // decode: the keys any query row can see, [key_lo, key_hi)
  i64_t split_len;       // decode: keys per split (a multiple of 32)
  i64_t past_at;         // decode: address of a device int32 holding past (backend.ts pastAt), 0 for none
};

MOPT_DEV bool visible(const AttnLayout& L, i64_t qpos, i64_t t) {
  return (!L.causal || t <= qpos) && (L.window < 0 || qpos - t < L.window);
}
/** First key visible from any of the positions >= p (0 without a window). */
MOPT_DEV i64_t first_key(const AttnLayout& L, i64_t p) {
  const i64_t lo = L.window < 0 ? 0 : p - L.window + 1;
  return lo < 0 ? 0 : lo;
}
/** One past the last key visible from any of the positions <= p. */
MOPT_DEV i64_t end_key(const AttnLayout& L, i64_t p) {
  return L.causal && p + 1 < L.T ? (p + 1 < 0 ? 0 : p + 1) : L.T;
}

template <class T>
MOPT_DEV float load_f(const typename T::S* p) { return (float)T::load(*p); }

/**
 * Rows [r0, r0 + R) of a [n, d] matrix (row stride rs, unit column stride) into dst[R][LD] as float,
 * zero-filled beyond n rows and d columns. NT threads share the work; consecutive threads read
 * consecutive columns (coalesced).
 */
template <class T, int R, int DP, int NT>
MOPT_DEV void load_tile(float* dst, const typename T::S* src, i64_t rs, i64_t r0, i64_t n, int d) {
  constexpr int LD = DP + 4;
#pragma unroll 4
  for (int e = threadIdx.x; e < R * DP; e += NT) {
    const int r = e / DP, c = e % DP;
    const i64_t row = r0 + r;
    dst[r * LD + c] = row < n && c < d ? load_f<T>(src + row * rs + c) : 0.f;
  }
}

/** Four floats read with one 16-byte shared-memory load (own type: NVRTC compiles without CUDA headers). */
struct alignas(16) F4 { float x, y, z, w; };
MOPT_DEV F4 ld4(const float* p) { return *reinterpret_cast<const F4*>(p); }

/**
 * acc[i][j] += sum over c < K of A[a0 + i*TM][c] * B[b0 + j*TN][c]: both operands row-major over the
 * shared dim (S = Q K^T, dP = dO V^T). A thread's rows interleave with stride TM and its columns with
 * stride TN, so one warp reads distinct rows in distinct banks. Explicit fma (the kernels are compiled
 * with --fmad=false, which would otherwise split every a*b+c in two).
 */
template <int RM, int RN, int K, int TM, int TN>
MOPT_DEV void tile_nt(float (&acc)[RM][RN], const float* A, int lda, int a0, const float* B, int ldb, int b0) {
#pragma unroll 2
  for (int c = 0; c < K; c += 4) {
    F4 a[RM], b[RN];
#pragma unroll
    for (int i = 0; i < RM; i++) a[i] = ld4(A + (a0 + i * TM) * lda + c);
#pragma unroll
    for (int j = 0; j < RN; j++) b[j] = ld4(B + (b0 + j * TN) * ldb + c);
#pragma unroll
    for (int i = 0; i < RM; i++)
#pragma unroll
      for (int j = 0; j < RN; j++) {
        float s = acc[i][j];
        s = fmaf(a[i].x, b[j].x, s);
        s = fmaf(a[i].y, b[j].y, s);
        s = fmaf(a[i].z, b[j].z, s);
        s = fmaf(a[i].w, b[j].w, s);
        acc[i][j] = s;
      }
  }
}

/**
 * acc[i][4*g + e] += sum over k < K of A[a0 + i*TM][k] * B[k][4*tn + 4*TN*g + e]: A row-major over the
 * shared dim, B row-major over the output columns (O = P V, dQ = dS K, dV = P^T dO). A thread owns
 * RG groups of 4 adjacent output columns, so a quarter-warp's 16-byte reads of B cover 128 bytes.
 */
template <int RM, int RG, int K, int TM, int TN>
MOPT_DEV void tile_nn(float (&acc)[RM][4 * RG], const float* A, int lda, int a0, const float* B, int ldb, int tn) {
#pragma unroll 1
  for (int k = 0; k < K; k += 4) {
    F4 a[RM];
#pragma unroll
    for (int i = 0; i < RM; i++) a[i] = ld4(A + (a0 + i * TM) * lda + k);
#pragma unroll
    for (int u = 0; u < 4; u++) {
#pragma unroll
      for (int g = 0; g < RG; g++) {
        const F4 b = ld4(B + (k + u) * ldb + 4 * tn + 4 * TN * g);
#pragma unroll
        for (int i = 0; i < RM; i++) {
          const float p = u == 0 ? a[i].x : u == 1 ? a[i].y : u == 2 ? a[i].z : a[i].w;
          acc[i][4 * g + 0] = fmaf(p, b.x, acc[i][4 * g + 0]);
          acc[i][4 * g + 1] = fmaf(p, b.y, acc[i][4 * g + 1]);
          acc[i][4 * g + 2] = fmaf(p, b.z, acc[i][4 * g + 2]);
          acc[i][4 * g + 3] = fmaf(p, b.w, acc[i][4 * g + 3]);
        }
      }
    }
  }
}

// Flash kernels exist for the float dtypes with float32 accumulation and padded head dims 32, 64, 128
// (D <= DP); float64 and larger head dims use the generic kernels.
#define MOPT_FLASH_DTYPES(X, D) X(f32, D) X(f16, D) X(bf16, D)
#define MOPT_FLASH_ALL(X) MOPT_FLASH_DTYPES(X, 32) MOPT_FLASH_DTYPES(X, 64) MOPT_FLASH_DTYPES(X, 128)
