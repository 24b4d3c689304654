// Helpers shared by the fused kernels (rmsnorm.cu, cross_entropy.cu, attention*.cu): the accumulation
// type of each dtype, rounding through a storage format, and warp/block reductions.
//
// Reductions accumulate in float32 for float32 and the 16-bit floats (as the PyTorch modules they mirror
// upcast to float32) and in float64 for float64. Results differ from the CPU reference (which sums in
// float64) only by float32 summation order.
#pragma once
#include "common.cuh"

#define MOPT_FULL_MASK 0xffffffffu

// The float dtypes the fused kernels are stamped out for (src/backend/cuda/fused-kernels.ts FUSED_DTYPES).
#define MOPT_FUSED_DTYPES(X) X(f64) X(f32) X(f16) X(bf16)

template <class T> struct Acc { typedef float type; };
template <> struct Acc<dt::f64> { typedef double type; };

/** v rounded to T's storage format and read back: what a kernel boundary between two ops would give. */
template <class T, class C>
MOPT_DEV C round_to(C v) { return (C)T::load(T::store(v)); }

template <class C>
MOPT_DEV C warp_sum(C v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(MOPT_FULL_MASK, v, o);
  return v;
}

/** Sum over groups of W consecutive lanes (W a power of two <= 32); every lane of a group gets it. */
template <int W, class C>
MOPT_DEV C group_sum(C v) {
#pragma unroll
  for (int o = W / 2; o > 0; o >>= 1) v += __shfl_xor_sync(MOPT_FULL_MASK, v, o);
  return v;
}

/** Max over groups of W consecutive lanes (callers handle NaN themselves). */
template <int W, class C>
MOPT_DEV C group_max(C v) {
#pragma unroll
  for (int o = W / 2; o > 0; o >>= 1) {
    const C w = __shfl_xor_sync(MOPT_FULL_MASK, v, o);
    v = w > v ? w : v;
  }
  return v;
}

/**
 * Sum over the whole block (blockDim.x a multiple of 32); every thread gets the result. `part` is 32
 * elements of shared memory, free again when this returns (the trailing barrier orders its reuse).
 */
template <class C>
MOPT_DEV C block_sum(C v, C* part) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  C w = lane < warps ? part[lane] : C(0);
  w = warp_sum(w);
  __syncthreads();
  return w;
}

/** The dynamic shared memory of a fused kernel, 16-byte aligned (16-byte loads); one symbol per module. */
alignas(16) extern __shared__ unsigned char fused_smem[];
