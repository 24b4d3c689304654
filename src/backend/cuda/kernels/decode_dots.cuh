// The consumer warps' dot products of the whole-step decode kernel (decode_step.cu): a ring stage's rows
// (in shared memory) with the activation vector (in shared memory), float32 accumulation. Each lane returns its
// partial sums; the caller reduces them over the warp.
#pragma once
#include "fused.cuh"
#include "weight_ring.cuh"

#define DS_ROWS 4  // rows a warp dots at once (independent accumulators)
/**
 * acc[j][q] += x . row q of matrix j over this lane's chunks (c = lane, lane + 32, ... < chunks), in
 * gemv.cuh gemv_dot's order; U rounds of every load are issued before their math. w0 / x0: shared-window
 * addresses of row 0 of matrix 0 and of x; rows past `rows` are not loaded (a stage of one row of K = 8192,
 * as down_proj's, would otherwise read shared memory four times over).
 */
template <class T, int NW, int RW, int U>
MOPT_DEV void dot_rows(float (&acc)[NW][RW], u32_t w0, u32_t x0, int rows, i64_t chunks, u32_t row_bytes, u32_t half_bytes, int lane) {
  for (i64_t c0 = lane; c0 < chunks; c0 += 32 * U) {
    U4 xc[U], wc[RW][NW][U];
#pragma unroll
    for (int u = 0; u < U; u++) {
      const u32_t c = (u32_t)(c0 + 32 * u < chunks ? c0 + 32 * u : c0);
      xc[u] = lds16(x0 + 16 * c);
#pragma unroll
      for (int q = 0; q < RW; q++)
#pragma unroll
        for (int j = 0; j < NW; j++) wc[q][j][u] = q < rows ? lds16(w0 + j * half_bytes + q * row_bytes + 16 * c) : U4{};
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      if (c0 + 32 * u >= chunks) break;
      float af[8];
      widen8<T>(xc[u], af);
#pragma unroll
      for (int q = 0; q < RW; q++) {
        if (q >= rows) break;
#pragma unroll
        for (int j = 0; j < NW; j++) {
          float wf[8];
          widen8<T>(wc[q][j][u], wf);
#pragma unroll
          for (int e = 0; e < 8; e++) acc[j][q] = fmaf(af[e], wf[e], acc[j][q]);
        }
      }
    }
  }
}

// A stage holding a single row (K >= 4,097 at 16 KB stages, as Llama-3.2-1B's down_proj) is dotted as four
// interleaved chains per lane, not one chain of K / 256 dependent FMAs (H200: down_proj 14.2 -> 10.7 us a layer).
// The sum's order then differs from gemv.cuh gemv_dot's (results within float32 rounding of the multi-kernel step).
/** One row's dot x . w over this lane's chunks c = lane + 32 i, chunk i into chain i % 4 (shared-window addresses). */
template <class T>
MOPT_DEV float dot_one_split(u32_t w0, u32_t x0, i64_t chunks, int lane) {
  float a[4] = {0.f, 0.f, 0.f, 0.f};
  for (i64_t c0 = lane; c0 < chunks; c0 += 32 * 4) {
    U4 xc[4], wc[4];
#pragma unroll
    for (int u = 0; u < 4; u++) {
      const u32_t c = (u32_t)(c0 + 32 * u < chunks ? c0 + 32 * u : c0);
      xc[u] = lds16(x0 + 16 * c);
      wc[u] = lds16(w0 + 16 * c);
    }
#pragma unroll
    for (int u = 0; u < 4; u++) {
      if (c0 + 32 * u >= chunks) break;
      float xf[8], wf[8];
      widen8<T>(xc[u], xf);
      widen8<T>(wc[u], wf);
#pragma unroll
      for (int e = 0; e < 8; e++) a[u] = fmaf(xf[e], wf[e], a[u]);
    }
  }
  return (a[0] + a[1]) + (a[2] + a[3]);
}

// Tensor-core dots (an experiment, 0 = off; rows of K a multiple of 256): a row's 128-element blocks are dotted
// by mma.sync m16n8k16 as 8 virtual rows of 16 (virtual row m of block b: elements 128 b + 8 m .. + 7 and
// 128 b + 64 + 8 m .. + 7, the same for x as A's row m and for the weights as B's column m), and the row's dot
// is the sum of the accumulator's diagonal. Only row m of D[m][m] is used (A's rows 8-15 are zero): 1/16 of
// the tensor cores' work, but ~5x fewer instructions than the FMA loop, whose issue rate and dependent chains
// set how long a warp takes for a stage (~2 us for 16 KB on the H200 with all 13 slots' warps busy). The sum's
// order differs from gemv.cuh gemv_dot's (results within float32 rounding of it).
#ifndef DS_TC
#define DS_TC 0
#endif

/** Four 8x8 16-bit matrices from shared memory (ldmatrix; lane 8 i + r gives the address of matrix i's row r). */
MOPT_DEV void ldsm_x4(u32_t addr, u32_t (&d)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];" : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3]) : "r"(addr));
}
/** c += A B for m16n8k16 with A's rows 8-15 zero: a0 / a2 are A's rows 0-7 at k 0-7 / 8-15, b0 / b1 B's k 0-7 / 8-15. */
template <class T>
MOPT_DEV void mma_top(float (&c)[4], u32_t a0, u32_t a2, u32_t b0, u32_t b1);
template <>
__device__ __forceinline__ void mma_top<dt::bf16>(float (&c)[4], u32_t a0, u32_t a2, u32_t b0, u32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_top<dt::f16>(float (&c)[4], u32_t a0, u32_t a2, u32_t b0, u32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1));
}

/**
 * dot_rows' contract on tensor cores, for K a multiple of 256: acc[j][q] += this lane's share of x . row q of
 * matrix j (rows < `rows`), the warp's shares summing to the dot. CH accumulators per row take the 256-element
 * steps in turn (independent mma chains for long rows).
 */
template <class T, int NW, int RW, int CH>
MOPT_DEV void dot_rows_tc(float (&acc)[NW][RW], u32_t w0, u32_t x0, int rows, i64_t K, u32_t row_bytes, u32_t half_bytes, int lane) {
  // lane 8 i + r addresses row r of matrix i: block i / 2 of the step, its k half i % 2, virtual row r
  const u32_t mi = (u32_t)lane >> 3, off = 2 * ((mi >> 1) * 128 + (mi & 1) * 64 + ((u32_t)lane & 7) * 8);
  float c[NW][RW][CH][4];
#pragma unroll
  for (int j = 0; j < NW; j++)
#pragma unroll
    for (int q = 0; q < RW; q++)
#pragma unroll
      for (int h = 0; h < CH; h++)
#pragma unroll
        for (int e = 0; e < 4; e++) c[j][q][h][e] = 0.f;
  const int steps = (int)(K / 256);
#pragma unroll 1
  for (int p0 = 0; p0 < steps; p0 += CH) {
    // every load of the round first (past the last step or row: a repeat of one in bounds, unused), then the mma
    u32_t a[CH][4], b[CH][RW][NW][4];
#pragma unroll
    for (int h = 0; h < CH; h++) {
      const u32_t o = (u32_t)(p0 + h < steps ? p0 + h : steps - 1) * 512 + off;
      ldsm_x4(x0 + o, a[h]);
#pragma unroll
      for (int q = 0; q < RW; q++)
#pragma unroll
        for (int j = 0; j < NW; j++) ldsm_x4(w0 + j * half_bytes + (q < rows ? q : 0) * row_bytes + o, b[h][q][j]);
    }
#pragma unroll
    for (int h = 0; h < CH; h++) {
      if (p0 + h >= steps) break;
#pragma unroll
      for (int q = 0; q < RW; q++) {
        if (q >= rows) break;
#pragma unroll
        for (int j = 0; j < NW; j++) {
          mma_top<T>(c[j][q][h], a[h][0], a[h][1], b[h][q][j][0], b[h][q][j][1]);
          mma_top<T>(c[j][q][h], a[h][2], a[h][3], b[h][q][j][2], b[h][q][j][3]);
        }
      }
    }
  }
  // D[m][m] (m < 8) is lane 4 m + m / 2's c[m % 2]
  const int g = lane >> 2;
  const bool diag = (lane & 3) == (g >> 1);
#pragma unroll
  for (int j = 0; j < NW; j++)
#pragma unroll
    for (int q = 0; q < RW; q++) {
      float v = 0.f;
#pragma unroll
      for (int h = 0; h < CH; h++) v += (g & 1) ? c[j][q][h][1] : c[j][q][h][0];
      acc[j][q] += diag ? v : 0.f;
    }
}
