// Shared by every kernel file: dtype traits (load to the compute type, store with one rounding), the
// bit-exact narrow-float codecs, integer stores, and strided index arithmetic.
//
// The semantics are those of the CPU reference backend (src/backend/cpu/strided.ts readNumbers /
// writeNumbers and src/tensor/codecs.ts), so that CUDA results equal the CPU's bit for bit:
// - narrow floats decode exactly to float32; NaN keeps its sign and becomes the quiet NaN 0x7fc00000
//   (bfloat16 keeps its payload, being the top half of a float32);
// - encoding rounds to nearest even from float32 or from float64 directly (never float64 -> float32 ->
//   narrow, which could round twice); fp8 saturates finite overflow and +-inf to the largest finite value;
// - integer stores truncate toward zero and clamp to the type's range, NaN -> 0 (codecs.ts
//   encodeFromF32); bool stores x != 0 (so NaN -> 1);
// - int64 values are read as float64 (round to nearest), as the CPU reads them with Number().
//
// Written for both NVRTC (-default-device) and nvcc: every function says __device__, and no header is
// included (NVRTC compiles with no host headers available).
#pragma once

#define MOPT_MAX_DIMS 8
#define MOPT_MAX_OPS 4
#define MOPT_DEV static __device__ __forceinline__
// Kernel entry points: extern "C" (plain names for cuModuleGetFunction) and bounded to the 256 threads
// per block their launches use, so the compiler never gives a thread more registers than such a block
// can have (float64 math otherwise may: CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES on sm_90).
#define MOPT_KERNEL extern "C" __global__ void __launch_bounds__(256)

// Programmatic dependent launch (sm_90+; no-ops elsewhere and for kernels launched without the attribute):
// pdl_wait() blocks until the grid this kernel programmatically depends on has finished and its writes are
// visible (it must come before reading anything that grid wrote, or writing anything it reads);
// pdl_trigger() lets the next grid, if launched as a programmatic dependent, start its CTAs (and its
// independent prologue, e.g. weight prefetch) while this one still runs.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define pdl_wait() asm volatile("griddepcontrol.wait;" ::: "memory")
#define pdl_trigger() asm volatile("griddepcontrol.launch_dependents;" ::: "memory")
#else
#define pdl_wait() ((void)0)
#define pdl_trigger() ((void)0)
#endif

typedef long long i64_t;
typedef unsigned long long u64_t;
typedef unsigned int u32_t;
typedef unsigned short u16_t;
typedef unsigned char u8_t;

// ---------------------------------------------------------------------------------------------------
// Math helpers overloaded on the compute type (float or double), so templates never depend on how a
// compiler resolves overloads of the C math library.

MOPT_DEV bool is_nan(float x) { return x != x; }
MOPT_DEV bool is_nan(double x) { return x != x; }
MOPT_DEV float quiet_nan(float) { return __uint_as_float(0x7fc00000u); }
MOPT_DEV double quiet_nan(double) { return __longlong_as_double(0x7ff8000000000000ll); }
MOPT_DEV float m_exp(float x) { return expf(x); }
MOPT_DEV double m_exp(double x) { return exp(x); }
MOPT_DEV float m_log(float x) { return logf(x); }
MOPT_DEV double m_log(double x) { return log(x); }
MOPT_DEV float m_sqrt(float x) { return sqrtf(x); }
MOPT_DEV double m_sqrt(double x) { return sqrt(x); }
MOPT_DEV float m_sin(float x) { return sinf(x); }
MOPT_DEV double m_sin(double x) { return sin(x); }
MOPT_DEV float m_cos(float x) { return cosf(x); }
MOPT_DEV double m_cos(double x) { return cos(x); }
MOPT_DEV float m_tanh(float x) { return tanhf(x); }
MOPT_DEV double m_tanh(double x) { return tanh(x); }
MOPT_DEV float m_abs(float x) { return fabsf(x); }
MOPT_DEV double m_abs(double x) { return fabs(x); }
MOPT_DEV float m_fma(float a, float b, float c) { return fmaf(a, b, c); }
MOPT_DEV double m_fma(double a, double b, double c) { return fma(a, b, c); }
MOPT_DEV float m_inf(float) { return __uint_as_float(0x7f800000u); }
MOPT_DEV double m_inf(double) { return __longlong_as_double(0x7ff0000000000000ll); }

// ---------------------------------------------------------------------------------------------------
// Exact decoders of the narrow floats (codecs.ts decode tables).

MOPT_DEV float decode_bf16(u16_t h) { return __uint_as_float((u32_t)h << 16); }

MOPT_DEV float decode_f16(u16_t h) {
  const u32_t sign = ((u32_t)h & 0x8000u) << 16;
  const u32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1fu) return __uint_as_float(sign | (m ? 0x7fc00000u : 0x7f800000u));
  if (e == 0u) return __uint_as_float(sign | __float_as_uint((float)m * 5.9604644775390625e-8f));  // m * 2^-24
  return __uint_as_float(sign | ((e + 112u) << 23) | (m << 13));
}

MOPT_DEV float decode_e4m3(u8_t c) {
  const u32_t sign = ((u32_t)c & 0x80u) << 24;
  const u32_t mag = c & 0x7fu, e = mag >> 3, m = mag & 7u;
  if (mag == 0x7fu) return __uint_as_float(sign | 0x7fc00000u);
  if (e == 0u) return __uint_as_float(sign | __float_as_uint((float)m * 0.001953125f));  // m * 2^-9
  return __uint_as_float(sign | ((e + 120u) << 23) | (m << 20));
}

MOPT_DEV float decode_e5m2(u8_t c) {
  const u32_t sign = ((u32_t)c & 0x80u) << 24;
  const u32_t mag = c & 0x7fu, e = mag >> 2, m = mag & 3u;
  if (mag >= 0x7cu) return __uint_as_float(sign | (mag == 0x7cu ? 0x7f800000u : 0x7fc00000u));
  if (e == 0u) return __uint_as_float(sign | __float_as_uint((float)m * 1.52587890625e-5f));  // m * 2^-16
  return __uint_as_float(sign | ((e + 112u) << 23) | (m << 21));
}

// ---------------------------------------------------------------------------------------------------
// Narrow float formats. MBITS mantissa bits, EMIN the minimum normal exponent, SIGN the sign bit of the
// code, NAN the code of a positive quiet NaN, MAX the code every overflow (and +-inf) lands on: +-inf
// for float16/bfloat16, the largest finite value for the saturating fp8 formats. [FAST_LO, FAST_HI) is
// the range of |x| (as float32 bits) whose rounded result is a normal, non-overflowing code, where
// rounding is a few integer operations on the float32 bit pattern (the same trick as codecs.ts).

struct FmtF16 {
  MOPT_DEV float decode(u16_t c) { return decode_f16(c); }
  enum { MBITS = 10, EMIN = -14 };
  static constexpr u32_t SIGN = 0x8000u, NAN_CODE = 0x7e00u, MAX = 0x7c00u;
  static constexpr u32_t FAST_LO = 0x38800000u, FAST_HI = 0x477ff000u;  // [2^-14, 65520)
};
struct FmtBF16 {
  MOPT_DEV float decode(u16_t c) { return decode_bf16(c); }
  enum { MBITS = 7, EMIN = -126 };
  static constexpr u32_t SIGN = 0x8000u, NAN_CODE = 0x7fc0u, MAX = 0x7f80u;
  // same exponent range as float32: every non-NaN value (zero, subnormals, inf) takes the fast path
  static constexpr u32_t FAST_LO = 0u, FAST_HI = 0x7f800001u;
};
struct FmtE4M3 {
  MOPT_DEV float decode(u8_t c) { return decode_e4m3(c); }
  enum { MBITS = 3, EMIN = -6 };
  static constexpr u32_t SIGN = 0x80u, NAN_CODE = 0x7fu, MAX = 0x7eu;
  static constexpr u32_t FAST_LO = 0x3c800000u, FAST_HI = 0x43e80001u;  // [2^-6, 464]; 464 ties to 448
};
struct FmtE5M2 {
  MOPT_DEV float decode(u8_t c) { return decode_e5m2(c); }
  enum { MBITS = 2, EMIN = -14 };
  static constexpr u32_t SIGN = 0x80u, NAN_CODE = 0x7eu, MAX = 0x7bu;
  static constexpr u32_t FAST_LO = 0x38800000u, FAST_HI = 0x47700000u;  // [2^-14, 61440)
};

/** Rounds a double once to the format (codecs.ts roundMagnitude on the exact value). */
template <class F>
MOPT_DEV u32_t encode_narrow(double x) {
  const u32_t s = __double_as_longlong(x) < 0 ? F::SIGN : 0u;
  if (is_nan(x)) return s | F::NAN_CODE;
  const double a = fabs(x);
  if (a == 0.0) return s;
  if (a > 1.7976931348623157e308) return s | F::MAX;  // +-inf
  int e = ilogb(a);
  if (e < F::EMIN) e = F::EMIN;
  const double r = rint(ldexp(a, F::MBITS - e));  // exact scaling by a power of two, then ties-to-even
  const i64_t code = (i64_t)(e - F::EMIN) * (1ll << F::MBITS) + (i64_t)r;
  return s | (code < (i64_t)F::MAX ? (u32_t)code : F::MAX);
}

/** Rounds a float once to the format; the common normal range uses integer rounding on the bits. */
template <class F>
MOPT_DEV u32_t encode_narrow(float x) {
  const u32_t b = __float_as_uint(x);
  const u32_t abs = b & 0x7fffffffu;
  const u32_t s = (b >> 31) ? F::SIGN : 0u;
  if (abs > 0x7f800000u) return s | F::NAN_CODE;
  if (abs - F::FAST_LO < F::FAST_HI - F::FAST_LO) {  // FAST_LO <= abs < FAST_HI, as one unsigned compare
    const int shift = 23 - F::MBITS;
    const u32_t rebias = (u32_t)(126 + F::EMIN) << 23;  // float32 bias 127 -> format bias 1 - EMIN
    // add half an ulp (minus one when the kept LSB is 0: ties to even) and truncate; a carry rolls into
    // the exponent field by plain addition
    return s | ((abs + ((1u << (shift - 1)) - 1u) + ((abs >> shift) & 1u) - rebias) >> shift);
  }
  if (abs == 0u) return s;
  return encode_narrow<F>((double)x);  // subnormal results, overflow, inf: exact slow path
}

// ---------------------------------------------------------------------------------------------------
// Integer stores, as codecs.ts encodeFromF32: truncate toward zero, clamp to the type's range, NaN -> 0
// (a bare C cast would leave out-of-range values undefined).

template <class T, long long LO, long long HI>
MOPT_DEV T clamp_int(double v) {
  if (v <= (double)LO) return (T)LO;
  if (v >= (double)HI) return (T)HI;
  return v != v ? (T)0 : (T)v;  // C conversion truncates toward zero
}

MOPT_DEV i64_t clamp_i64(double v) {
  if (v != v) return 0;
  if (v >= 9223372036854775808.0) return 0x7fffffffffffffffll;  // 2^63 is the first value beyond int64
  if (v < -9223372036854775808.0) return -0x7fffffffffffffffll - 1;
  return (i64_t)v;
}

// ---------------------------------------------------------------------------------------------------
// Dtype traits. S is the storage type, C the compute type: float for float32 and the narrow floats,
// double for float64 and every integer type (the CPU computes on integers as float64 numbers).
// store() is overloaded on float and double so each value is rounded once, from what was computed.
// BELOW_ONE is the largest value below 1 (uniform draws are capped there so they stay below 1 after
// rounding: src/backend/cpu/cpu-backend.ts BELOW_ONE).

namespace dt {

struct f64 {
  typedef double S; typedef double C;
  static constexpr float BELOW_ONE = 1.0f;
  MOPT_DEV C load(S s) { return s; }
  MOPT_DEV S store(double v) { return v; }
  MOPT_DEV S store(float v) { return (double)v; }
};
struct f32 {
  typedef float S; typedef float C;
  static constexpr float BELOW_ONE = 1.0f;
  MOPT_DEV C load(S s) { return s; }
  MOPT_DEV S store(float v) { return v; }
  MOPT_DEV S store(double v) { return (float)v; }
};
template <class F, class Word>
struct narrow_float {
  typedef Word S; typedef float C;
  MOPT_DEV C load(S s) { return F::decode(s); }
  MOPT_DEV S store(float v) { return (S)encode_narrow<F>(v); }
  MOPT_DEV S store(double v) { return (S)encode_narrow<F>(v); }
};
struct f16 : narrow_float<FmtF16, u16_t> { static constexpr float BELOW_ONE = 1.0f - 1.0f / 2048.0f; };
struct bf16 : narrow_float<FmtBF16, u16_t> { static constexpr float BELOW_ONE = 1.0f - 1.0f / 256.0f; };
struct e4m3 : narrow_float<FmtE4M3, u8_t> { static constexpr float BELOW_ONE = 1.0f - 1.0f / 16.0f; };
struct e5m2 : narrow_float<FmtE5M2, u8_t> { static constexpr float BELOW_ONE = 1.0f - 1.0f / 8.0f; };

struct i64 {
  typedef i64_t S; typedef double C;
  static constexpr float BELOW_ONE = 1.0f;
  MOPT_DEV C load(S s) { return (double)s; }
  MOPT_DEV S store(double v) { return clamp_i64(v); }
  MOPT_DEV S store(float v) { return clamp_i64((double)v); }
};
template <class T, long long LO, long long HI>
struct small_int {
  typedef T S; typedef double C;
  static constexpr float BELOW_ONE = 1.0f;
  MOPT_DEV C load(S s) { return (double)s; }
  MOPT_DEV S store(double v) { return clamp_int<T, LO, HI>(v); }
  MOPT_DEV S store(float v) { return clamp_int<T, LO, HI>((double)v); }
};
struct i32 : small_int<int, -2147483648ll, 2147483647ll> {};
struct i16 : small_int<short, -32768, 32767> {};
struct i8 : small_int<signed char, -128, 127> {};
struct u8 : small_int<unsigned char, 0, 255> {};
struct b8 {
  typedef u8_t S; typedef double C;
  static constexpr float BELOW_ONE = 1.0f;
  MOPT_DEV C load(S s) { return (double)s; }
  MOPT_DEV S store(double v) { return v != 0.0 ? 1 : 0; }
  MOPT_DEV S store(float v) { return v != 0.0f ? 1 : 0; }
};

}  // namespace dt

// Every dtype by its kernel-name suffix (src/backend/cuda/kernels.ts DTYPE_SUFFIX), and the dtypes that
// get their own compute kernels (the host routes the others through float64, exactly as the CPU computes).
#define MOPT_DTYPES(X) X(f64) X(f32) X(f16) X(bf16) X(e4m3) X(e5m2) X(i64) X(i32) X(i16) X(i8) X(u8) X(b8)
#define MOPT_COMPUTE_DTYPES(X) X(f64) X(f32) X(f16) X(bf16) X(i64) X(i32)

// Storage words by width, for kernels that move bit patterns without interpreting them.
#define MOPT_WORDS(X) X(u8, u8_t) X(u16, u16_t) X(u32, u32_t) X(u64, u64_t)

// ---------------------------------------------------------------------------------------------------
// Strided element-wise iteration. The host (src/backend/cuda/layout.ts) collapses the operands' shared
// shape to at most 8 dims; rank 0 means every operand is contiguous from its offset (the fast path).
// Operand strides and offsets are in elements. A strided launch covers fewer than 2^32 elements (the
// host splits bigger ones along the outer dims), so index arithmetic is 32-bit: a 64-bit division is a
// long instruction sequence that would dominate both run time and compile time. `base` is the logical
// index of the launch's first element (random draws are numbered by it). Must match layout.ts.

struct Strided {
  i64_t n;     // number of elements in this launch
  u64_t base;  // logical index of the first one
  int rank;
  int pad_;
  i64_t shape[MOPT_MAX_DIMS];
  i64_t offset[MOPT_MAX_OPS];
  i64_t stride[MOPT_MAX_OPS][MOPT_MAX_DIMS];
};

/** Element offsets of launch-local index i (< 2^32) for the first N operands. */
template <int N>
MOPT_DEV void strided_offsets(const Strided& L, u32_t i, i64_t* off) {
#pragma unroll
  for (int k = 0; k < N; k++) off[k] = L.offset[k];
  // the outermost dim needs no division
#pragma unroll 1
  for (int d = L.rank - 1; d > 0; d--) {
    const u32_t size = (u32_t)L.shape[d];
    const u32_t q = i / size;
    const i64_t r = (i64_t)(i - q * size);
    i = q;
#pragma unroll
    for (int k = 0; k < N; k++) off[k] += r * L.stride[k][d];
  }
#pragma unroll
  for (int k = 0; k < N; k++) off[k] += (i64_t)i * L.stride[k][0];
}

/** a / b, with a 32-bit division when both fit (the usual case). */
MOPT_DEV u64_t div_index(u64_t a, u64_t b) { return ((a | b) >> 32) == 0 ? (u64_t)((u32_t)a / (u32_t)b) : a / b; }

MOPT_DEV u64_t global_thread() { return (u64_t)blockIdx.x * blockDim.x + threadIdx.x; }
MOPT_DEV u64_t global_threads() { return (u64_t)gridDim.x * blockDim.x; }

/**
 * Calls f(i, off) for every element this thread owns (grid-stride loop): i is the element's logical
 * index (L.base + local index), off[k] operand k's element offset.
 */
template <int N, class Fn>
MOPT_DEV void for_each_strided(const Strided& L, Fn f) {
  i64_t off[N];
  const u64_t n = (u64_t)L.n, step = global_threads();
#pragma unroll 1
  for (u64_t i = global_thread(); i < n; i += step) {
    // one call site, so f is inlined once; the branch is uniform across the grid
    if (L.rank == 0) {
#pragma unroll
      for (int k = 0; k < N; k++) off[k] = L.offset[k] + (i64_t)i;
    } else {
      strided_offsets<N>(L, (u32_t)i, off);
    }
    f(L.base + i, off);
  }
}

// ---------------------------------------------------------------------------------------------------
// Contiguous fast path of the element-wise kernels. When every operand of a launch is contiguous
// (L.rank == 0, the common case) and each operand's first element is aligned to its vector, a thread
// moves N elements of every operand with one vector load or store (N = 16 bytes of the widest operand:
// 8 bf16/f16, 4 f32, 2 f64) in a grid-stride loop, and the last n % N elements go one by one. Values go
// through the same load / op / store as on the strided path, so both paths give identical results.

/** N elements of storage type S as one aligned access (ld/st.global.v2/v4 when sizeof(S) * N is 8 or 16). */
template <class S, int N>
struct alignas(sizeof(S) * N) Vec {
  S v[N];
};

/** Elements per vector access: 16 bytes of the widest of up to four storage types. */
template <class A, class B = A, class C = A, class D = A>
struct VecN {
  static constexpr int AB = sizeof(A) > sizeof(B) ? (int)sizeof(A) : (int)sizeof(B);
  static constexpr int CD = sizeof(C) > sizeof(D) ? (int)sizeof(C) : (int)sizeof(D);
  static constexpr int N = 16 / (AB > CD ? AB : CD);
};

/** p + offset is aligned for a Vec<S, N> access (offset in elements). */
template <int N, class S>
MOPT_DEV bool vec_aligned(const S* p, i64_t offset) {
  return ((u64_t)(p + offset) & (u64_t)(sizeof(S) * N - 1)) == 0;
}

/** Vector v (elements v*N .. v*N+N-1) of a contiguous operand starting at p. */
template <int N, class S>
MOPT_DEV Vec<S, N> vec_load(const S* p, u64_t v) { return reinterpret_cast<const Vec<S, N>*>(p)[v]; }
template <int N, class S>
MOPT_DEV void vec_store(S* p, u64_t v, const Vec<S, N>& x) { reinterpret_cast<Vec<S, N>*>(p)[v] = x; }

/** Grid-stride loop of the fast path: fv(v) for each whole vector, then f1(i) for each leftover element. */
template <int N, class VecFn, class OneFn>
MOPT_DEV void for_each_contiguous(u64_t n, VecFn fv, OneFn f1) {
  const u64_t nv = n / N, step = global_threads();
#pragma unroll 1
  for (u64_t v = global_thread(); v < nv; v += step) fv(v);
#pragma unroll 1
  for (u64_t i = nv * N + global_thread(); i < n; i += step) f1(i);
}

/**
 * out[i] = f(x[i]) over a layout of two operands (out, x): 16-byte vector accesses when both are contiguous
 * and aligned (the common case), the strided loop otherwise. Both paths compute the same f per element.
 */
template <class SO, class SX, class F>
MOPT_DEV void map1(const Strided& L, SO* out, const SX* x, F f) {
  constexpr int N = VecN<SO, SX>::N;
  if (L.rank == 0 && vec_aligned<N>(out, L.offset[0]) && vec_aligned<N>(x, L.offset[1])) {
    SO* o = out + L.offset[0];
    const SX* a = x + L.offset[1];
    for_each_contiguous<N>((u64_t)L.n, [&](u64_t v) {
      const Vec<SX, N> va = vec_load<N>(a, v);
      Vec<SO, N> r;
#pragma unroll
      for (int j = 0; j < N; j++) r.v[j] = f(va.v[j]);
      vec_store<N>(o, v, r);
    }, [&](u64_t i) { o[i] = f(a[i]); });
    return;
  }
  for_each_strided<2>(L, [&](u64_t, const i64_t* o) { out[o[0]] = f(x[o[1]]); });
}

/** out[i] = f(a[i], b[i]) over a layout of three operands (out, a, b); vectorised like map1. */
template <class SO, class SA, class SB, class F>
MOPT_DEV void map2(const Strided& L, SO* out, const SA* a, const SB* b, F f) {
  constexpr int N = VecN<SO, SA, SB>::N;
  if (L.rank == 0 && vec_aligned<N>(out, L.offset[0]) && vec_aligned<N>(a, L.offset[1]) && vec_aligned<N>(b, L.offset[2])) {
    SO* o = out + L.offset[0];
    const SA* pa = a + L.offset[1];
    const SB* pb = b + L.offset[2];
    for_each_contiguous<N>((u64_t)L.n, [&](u64_t v) {
      const Vec<SA, N> va = vec_load<N>(pa, v);
      const Vec<SB, N> vb = vec_load<N>(pb, v);
      Vec<SO, N> r;
#pragma unroll
      for (int j = 0; j < N; j++) r.v[j] = f(va.v[j], vb.v[j]);
      vec_store<N>(o, v, r);
    }, [&](u64_t i) { o[i] = f(pa[i], pb[i]); });
    return;
  }
  for_each_strided<3>(L, [&](u64_t, const i64_t* o) { out[o[0]] = f(a[o[1]], b[o[2]]); });
}

/** out[i] = f(a[i], b[i], c[i]) over a layout of four operands (out, a, b, c); vectorised like map1. */
template <class SO, class SA, class SB, class SC, class F>
MOPT_DEV void map3(const Strided& L, SO* out, const SA* a, const SB* b, const SC* c, F f) {
  constexpr int N = VecN<SO, SA, SB, SC>::N;
  if (L.rank == 0 && vec_aligned<N>(out, L.offset[0]) && vec_aligned<N>(a, L.offset[1]) && vec_aligned<N>(b, L.offset[2]) &&
      vec_aligned<N>(c, L.offset[3])) {
    SO* o = out + L.offset[0];
    const SA* pa = a + L.offset[1];
    const SB* pb = b + L.offset[2];
    const SC* pc = c + L.offset[3];
    for_each_contiguous<N>((u64_t)L.n, [&](u64_t v) {
      const Vec<SA, N> va = vec_load<N>(pa, v);
      const Vec<SB, N> vb = vec_load<N>(pb, v);
      const Vec<SC, N> vc = vec_load<N>(pc, v);
      Vec<SO, N> r;
#pragma unroll
      for (int j = 0; j < N; j++) r.v[j] = f(va.v[j], vb.v[j], vc.v[j]);
      vec_store<N>(o, v, r);
    }, [&](u64_t i) { o[i] = f(pa[i], pb[i], pc[i]); });
    return;
  }
  for_each_strided<4>(L, [&](u64_t, const i64_t* o) { out[o[0]] = f(a[o[1]], b[o[2]], c[o[3]]); });
}
