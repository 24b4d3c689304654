// Counter-based random fills: draw i of stream `seed` is a pure function of (seed, i), ported exactly
// from src/tensor/random.ts (mix32 = the "lowbias32" finalizer, uniformAt, normalAt), so the CUDA and
// CPU backends fill tensors with the same numbers: uniform draws are identical bit for bit, normal draws
// are computed in float64 like the CPU's and agree to float32 rounding.
#include "common.cuh"

MOPT_DEV u32_t mix32(u32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;  // Math.imul keeps the low 32 bits, as unsigned multiplication does
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

/** The 24 random bits of uniformAt(seed, i); i < 2^53 like a JS number index. */
MOPT_DEV u32_t draw24(u32_t seed, u64_t i) {
  // (i >>> 0) is the low word; Math.floor(i / 2^32), used in a bitwise xor, is the high word
  const u32_t h = mix32(mix32((u32_t)i ^ (seed * 0x9e3779b9u)) ^ (u32_t)(i >> 32) ^ 0x5bd1e995u);
  return h >> 8;
}

MOPT_DEV double uniform_at(u32_t seed, u64_t i) { return (double)draw24(seed, i) * (1.0 / 16777216.0); }

MOPT_DEV double normal_at(u32_t seed, u64_t i) {
  const double u1 = uniform_at(seed, 2 * i) + 1.0 / 33554432.0;  // exact in float64 (25 bits): avoids log(0)
  const double u2 = uniform_at(seed, 2 * i + 1);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);  // 2 * Math.PI
}

// `seed` is the CPU's `seed >>> 0` (the host passes it reduced to 32 bits, in a 64-bit parameter so the
// parameter list has no tail padding: cuLaunchKernel wants the exact, unpadded size of its buffer). A uniform draw is capped at
// the dtype's largest value below 1 so that rounding cannot produce 1 (cpu-backend.ts BELOW_ONE).
template <class T>
MOPT_DEV void uniform_body(const Strided& L, typename T::S* out, u32_t seed) {
  for_each_strided<1>(L, [&](u64_t i, const i64_t* o) { out[o[0]] = T::store(fmin(uniform_at(seed, i), (double)T::BELOW_ONE)); });
}

template <class T>
MOPT_DEV void normal_body(const Strided& L, typename T::S* out, u32_t seed) {
  for_each_strided<1>(L, [&](u64_t i, const i64_t* o) { out[o[0]] = T::store(normal_at(seed, i)); });
}

// (MOPT_KERNEL bounds the kernels to 256 threads: the float64 log/cos of the normal draw need many registers)
#define MOPT_DEF_RANDOM(T)                                                                                    \
  MOPT_KERNEL random_uniform_##T(Strided L, dt::T::S* out, u64_t seed) { uniform_body<dt::T>(L, out, (u32_t)seed); } \
  MOPT_KERNEL random_normal_##T(Strided L, dt::T::S* out, u64_t seed) { normal_body<dt::T>(L, out, (u32_t)seed); }
MOPT_DTYPES(MOPT_DEF_RANDOM)
