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

/** The whole CTA as the group a block_sum runs over (its default). */
struct CtaSync {
  __device__ __forceinline__ void operator()() const { __syncthreads(); }
  __device__ __forceinline__ int warps() const { return blockDim.x >> 5; }
};

/**
 * Sum over the block's threads (a multiple of 32; `sync` names the group: the whole CTA, or the first
 * sync.warps() warps behind a named barrier); every thread of it gets the result. `part` is 32 elements of
 * shared memory, free again when this returns (the trailing barrier orders its reuse).
 */
template <class C, class Sync = CtaSync>
MOPT_DEV C block_sum(C v, C* part, Sync sync = Sync()) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = sync.warps();
  if (lane == 0) part[warp] = v;
  sync();
  C w = lane < warps ? part[lane] : C(0);
  w = warp_sum(w);
  sync();
  return w;
}

/** 16 bytes as four words (own type: NVRTC compiles without the CUDA headers that define uint4). */
struct alignas(16) U4 { u32_t w[4]; };

/** One 16-byte global load (p 16-byte aligned). */
MOPT_DEV U4 ld_global16(const void* p) {
  U4 c;
  asm("ld.global.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(c.w[0]), "=r"(c.w[1]), "=r"(c.w[2]), "=r"(c.w[3]) : "l"(p));
  return c;
}
/** The same through the read-only path: for data no running kernel writes (weights). */
MOPT_DEV U4 ld_global16_nc(const void* p) {
  U4 c;
  asm("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(c.w[0]), "=r"(c.w[1]), "=r"(c.w[2]), "=r"(c.w[3]) : "l"(p));
  return c;
}

/** The 8 float values of 16 bytes of a 16-bit float dtype T. */
template <class T>
MOPT_DEV void widen8(const U4& c, float (&f)[8]) {
  const u16_t* h = reinterpret_cast<const u16_t*>(&c);
#pragma unroll
  for (int i = 0; i < 8; i++) f[i] = T::load(h[i]);
}
// bfloat16 is the top half of a float32: a shift, not the generic decode
template <>
__device__ __forceinline__ void widen8<dt::bf16>(const U4& c, float (&f)[8]) {
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = __uint_as_float(c.w[i] << 16);
    f[2 * i + 1] = __uint_as_float(c.w[i] & 0xffff0000u);
  }
}
// float16: the hardware conversion, exact for every finite value, infinity and subnormal, as decode_f16 (a NaN
// stays a NaN; the generic decode's branches and int-to-float conversion made the f16 decode step's code 2.7x
// the bf16 one's)
template <>
__device__ __forceinline__ void widen8<dt::f16>(const U4& c, float (&f)[8]) {
#pragma unroll
  for (int i = 0; i < 4; i++)
    asm("{\n\t.reg .f16 lo, hi;\n\tmov.b32 {lo, hi}, %2;\n\tcvt.f32.f16 %0, lo;\n\tcvt.f32.f16 %1, hi;\n\t}" : "=f"(f[2 * i]), "=f"(f[2 * i + 1]) : "r"(c.w[i]));
}

/** silu(gate) * up for one element (pointwise.cu swiglu, gemv.cu): silu rounded to T as its own op would be. */
template <class T>
MOPT_DEV typename Acc<T>::type swiglu_one(typename T::S gs, typename T::S us) {
  typedef typename Acc<T>::type C;
  const C g = (C)T::load(gs);
  const C silu = round_to<T>(g * (C(1) / (C(1) + m_exp(-g))));
  return silu * (C)T::load(us);
}

/**
 * RMSNorm's per-row pieces (rmsnorm.cu, and the GEMV prologue of gemv.cu that must give the same bits):
 * the sum of squares of a unit-stride, 16-byte aligned row as a block of `threads` threads forms it (thread
 * t takes vectors t, t + threads, ... in order; threads >= `threads` contribute 0, which leaves block_sum's
 * result unchanged), rstd from that sum, and one output element.
 */
template <class T>
MOPT_DEV typename Acc<T>::type rms_sumsq_vec(const typename T::S* xr, i64_t d, int threads) {
  typedef typename Acc<T>::type A;
  constexpr int N = VecN<typename T::S>::N;
  A ss = A(0);
  if ((int)threadIdx.x < threads)
    for (i64_t v = threadIdx.x; v < d / N; v += threads) {
      const Vec<typename T::S, N> xv = vec_load<N>(xr, v);
#pragma unroll
      for (int e = 0; e < N; e++) {
        const A a = T::load(xv.v[e]);
        ss += a * a;
      }
    }
  return ss;
}
/** 1/sqrt(mean + eps): the mean, mean + eps and 1/sqrt each rounded to A from float64 (as the CPU does). */
template <class A>
MOPT_DEV A rms_rstd(A sumsq, i64_t d, double eps) {
  const A mean = sumsq / (A)d;
  return (A)(1.0 / sqrt((double)(A)((double)mean + eps)));
}
/**
 * weight * round_T(x * rstd): the normalised value is rounded to T (transformers casts back before the
 * weight multiply); the product of two 16-bit values is exact in float32, so it rounds once.
 */
template <class T>
MOPT_DEV typename T::S rms_elem(typename T::S x, typename T::S w, typename Acc<T>::type rs) {
  typedef typename Acc<T>::type A;
  return T::store((A)T::load(w) * round_to<T>((A)T::load(x) * rs));
}

/** The dynamic shared memory of a fused kernel, 16-byte aligned (16-byte loads); one symbol per module. */
alignas(16) extern __shared__ unsigned char fused_smem[];
