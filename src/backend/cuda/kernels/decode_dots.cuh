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
// Whole rounds (4 chunks for every lane) run with 32-bit indices and no bound checks, the partial one after
// them: the 64-bit compares and carries per chunk were a fifth of the loop (down_proj 9.9 -> 8.5 us a layer).
// (The same change in dot_rows made the step slower, 808 against 785 us, so it keeps its per-chunk checks.)
/** One chunk of x and w into the chain a. */
template <class T>
MOPT_DEV void dot_one_chunk(float& a, const U4& xc, const U4& wc) {
  float xf[8], wf[8];
  widen8<T>(xc, xf);
  widen8<T>(wc, wf);
#pragma unroll
  for (int e = 0; e < 8; e++) a = fmaf(xf[e], wf[e], a);
}
/** One row's dot x . w over this lane's chunks c = lane + 32 i, chunk i into chain i % 4 (shared-window addresses). */
template <class T>
MOPT_DEV float dot_one_split(u32_t w0, u32_t x0, u32_t chunks, int lane) {
  float a[4] = {0.f, 0.f, 0.f, 0.f};
  const u32_t whole = chunks - chunks % 128u;
  u32_t c0 = (u32_t)lane;
  for (; c0 < whole; c0 += 128u) {
    U4 xc[4], wc[4];
#pragma unroll
    for (int u = 0; u < 4; u++) xc[u] = lds16(x0 + 16u * (c0 + 32u * u)), wc[u] = lds16(w0 + 16u * (c0 + 32u * u));
#pragma unroll
    for (int u = 0; u < 4; u++) dot_one_chunk<T>(a[u], xc[u], wc[u]);
  }
  // the last, partial round: chunk c0 + 32 u into chain u, as a whole round would
#pragma unroll
  for (int u = 0; u < 4; u++)
    if (c0 + 32u * u < chunks) dot_one_chunk<T>(a[u], lds16(x0 + 16u * (c0 + 32u * u)), lds16(w0 + 16u * (c0 + 32u * u)));
  return (a[0] + a[1]) + (a[2] + a[3]);
}

// How consume_seg sums a stage group's NW x RW per-lane partial dots over the warp. 0 = one warp_sum per value
// (the sums follow each other, a row's out() between them: 4 values are 20 dependent shuffles). 1 (the default):
// with 4 values, a butterfly that halves the values a lane carries at the first two steps (xor 16, xor 8) sums
// all four in 6 dependent shuffles, then broadcasts them. Every value's additions are warp_sum's (own +
// partner's at xor 16, 8, 4, 2, 1), so the sums are the same bits. Every call site has NW * RW == 4 (NW 1 x
// DS_ROWS 4, NW 2 x 2); other shapes take the per-value sums. Measured (H200, 2026-11-29, 64 steps after a
// 16-token prompt, 3 interleaved rounds): 711.0 / 711.2 / 711.0 us a step against 720.5 / 719.9 / 719.3 with 0.
#ifndef DS_SUM4
#define DS_SUM4 1
#endif
/** acc[j][q] summed over the warp, complete on every lane (bit for bit warp_sum's). */
template <int NW, int RW>
MOPT_DEV void warp_sum_rows(float (&acc)[NW][RW]) {
  if (DS_SUM4 && NW * RW == 4) {
    const int lane = threadIdx.x & 31;
    const bool hi16 = (lane & 16) != 0, hi8 = (lane & 8) != 0;
    float v[4];
#pragma unroll
    for (int i = 0; i < 4; i++) v[i] = acc[i / RW][i % RW];
    // xor 16: lanes below 16 keep values 0, 1 and hand over 2, 3; the others the reverse
    const float s0 = hi16 ? v[0] : v[2], s1 = hi16 ? v[1] : v[3];
    const float r0 = __shfl_xor_sync(MOPT_FULL_MASK, s0, 16), r1 = __shfl_xor_sync(MOPT_FULL_MASK, s1, 16);
    const float w0 = (hi16 ? v[2] : v[0]) + r0, w1 = (hi16 ? v[3] : v[1]) + r1;
    // xor 8: keep one of the two; lane l now carries value l >> 3
    float u = (hi8 ? w1 : w0) + __shfl_xor_sync(MOPT_FULL_MASK, hi8 ? w0 : w1, 8);
#pragma unroll
    for (int o = 4; o > 0; o >>= 1) u += __shfl_xor_sync(MOPT_FULL_MASK, u, o);
#pragma unroll
    for (int i = 0; i < 4; i++) acc[i / RW][i % RW] = __shfl_sync(MOPT_FULL_MASK, u, 8 * i);
    return;
  }
#pragma unroll
  for (int j = 0; j < NW; j++)
#pragma unroll
    for (int q = 0; q < RW; q++) acc[j][q] = warp_sum(acc[j][q]);
}
