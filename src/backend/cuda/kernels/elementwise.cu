// Element-wise kernels: unary, binary, compare, where, fill and strided copy with dtype conversion.
// One generic body per op family; the entry points (extern "C", named <family>_<op>_<dtype>) are
// stamped out by the macros at the end. Scalar definitions mirror src/backend/cpu/elementwise.ts.
//
// Values are computed in the dtype's compute type (float32 for float32 and the narrow floats, float64
// for float64 and integers) and rounded once to the output dtype. For +, -, *, /, sqrt on float
// inputs this equals the CPU's float64 computation exactly (a float64 result rounded to float32 or
// narrower is the correctly rounded result: 53 >= 2*24+2). rsqrt and pow are computed in float64 for
// the same reason; exp/log/sin/cos/tanh/sigmoid/silu use the float32 library and may differ from the
// CPU by a few float32 ulp. Compile with --fmad=false so no a*b+c is fused behind our back.
#include "common.cuh"

// ---------------------------------------------------------------------------------------------------
// Scalar ops. f(x) takes the compute type and returns the type it was computed in (store() rounds once).

#define MOPT_UNARY_OPS_WITH(X, a)                                                                   \
  X(a, neg) X(a, exp) X(a, log) X(a, sqrt) X(a, rsqrt) X(a, sin) X(a, cos) X(a, tanh) X(a, sigmoid) \
  X(a, silu) X(a, abs) X(a, reciprocal) X(a, relu) X(a, sign) X(a, square)
#define MOPT_BINARY_OPS_WITH(X, a) X(a, add) X(a, sub) X(a, mul) X(a, div) X(a, maximum) X(a, minimum) X(a, pow)
#define MOPT_COMPARE_OPS_WITH(X, a) X(a, eq) X(a, ne) X(a, lt) X(a, le) X(a, gt) X(a, ge)

namespace op {

struct neg { template <class C> MOPT_DEV C f(C x) { return -x; } };
struct exp { template <class C> MOPT_DEV C f(C x) { return m_exp(x); } };
struct log { template <class C> MOPT_DEV C f(C x) { return m_log(x); } };
struct sqrt { template <class C> MOPT_DEV C f(C x) { return m_sqrt(x); } };
// 1 / sqrt(x) as the CPU computes it (two float64 roundings), so the result rounds to the same value
struct rsqrt { template <class C> MOPT_DEV double f(C x) { return 1.0 / ::sqrt((double)x); } };
struct sin { template <class C> MOPT_DEV C f(C x) { return m_sin(x); } };
struct cos { template <class C> MOPT_DEV C f(C x) { return m_cos(x); } };
struct tanh { template <class C> MOPT_DEV C f(C x) { return m_tanh(x); } };
// both branches avoid exp overflow; the same split as the CPU so NaN and +-inf behave alike
struct sigmoid {
  template <class C> MOPT_DEV C f(C x) {
    if (x >= C(0)) return C(1) / (C(1) + m_exp(-x));
    const C e = m_exp(x);
    return e / (C(1) + e);
  }
};
struct silu {
  template <class C> MOPT_DEV C f(C x) {
    if (x >= C(0)) return x / (C(1) + m_exp(-x));
    const C e = m_exp(x);
    return (x * e) / (C(1) + e);
  }
};
struct abs { template <class C> MOPT_DEV C f(C x) { return m_abs(x); } };
struct reciprocal { template <class C> MOPT_DEV C f(C x) { return C(1) / x; } };
// relu(-0) = +0 and relu(NaN) = NaN, as on the CPU
struct relu { template <class C> MOPT_DEV C f(C x) { return x > C(0) ? x : (is_nan(x) ? x : C(0)); } };
struct sign { template <class C> MOPT_DEV C f(C x) { return x > C(0) ? C(1) : (x < C(0) ? C(-1) : x); } };
struct square { template <class C> MOPT_DEV C f(C x) { return x * x; } };

struct add { template <class C> MOPT_DEV C f(C a, C b) { return a + b; } };
struct sub { template <class C> MOPT_DEV C f(C a, C b) { return a - b; } };
struct mul { template <class C> MOPT_DEV C f(C a, C b) { return a * b; } };
struct div { template <class C> MOPT_DEV C f(C a, C b) { return a / b; } };
// NaN propagates like torch.maximum / torch.minimum; otherwise the CPU's a > b ? a : b (so max(0, -0) = -0)
struct maximum { template <class C> MOPT_DEV C f(C a, C b) { return is_nan(a) || is_nan(b) ? quiet_nan(a) : (a > b ? a : b); } };
struct minimum { template <class C> MOPT_DEV C f(C a, C b) { return is_nan(a) || is_nan(b) ? quiet_nan(a) : (a < b ? a : b); } };
// float64 like Math.pow, including where JavaScript differs from C: pow(x, NaN) is NaN even for x = 1,
// and pow(+-1, +-inf) is NaN
struct pow {
  template <class C> MOPT_DEV double f(C a, C b) {
    const double x = (double)a, y = (double)b;
    if (is_nan(y) || (fabs(x) == 1.0 && fabs(y) == m_inf(y))) return quiet_nan(y);
    return ::pow(x, y);
  }
};

struct eq { template <class C> MOPT_DEV bool f(C a, C b) { return a == b; } };
struct ne { template <class C> MOPT_DEV bool f(C a, C b) { return a != b; } };
struct lt { template <class C> MOPT_DEV bool f(C a, C b) { return a < b; } };
struct le { template <class C> MOPT_DEV bool f(C a, C b) { return a <= b; } };
struct gt { template <class C> MOPT_DEV bool f(C a, C b) { return a > b; } };
struct ge { template <class C> MOPT_DEV bool f(C a, C b) { return a >= b; } };

}  // namespace op

// ---------------------------------------------------------------------------------------------------
// Generic bodies. Operand 0 of the layout is always the output. Each first tries the contiguous fast path
// (common.cuh for_each_contiguous: 16-byte vector loads and stores when every operand is contiguous and
// aligned), which computes exactly what the strided loop would.

template <class Op, class T>
MOPT_DEV void unary_body(const Strided& L, typename T::S* out, const typename T::S* x) {
  typedef typename T::S S;
  map1(L, out, x, [](S v) { return T::store(Op::f(T::load(v))); });
}

template <class Op, class T>
MOPT_DEV void binary_body(const Strided& L, typename T::S* out, const typename T::S* a, const typename T::S* b) {
  typedef typename T::S S;
  map2(L, out, a, b, [](S va, S vb) { return T::store(Op::f(T::load(va), T::load(vb))); });
}

template <class Op, class T>
MOPT_DEV void compare_body(const Strided& L, u8_t* out, const typename T::S* a, const typename T::S* b) {
  typedef typename T::S S;
  map2(L, out, a, b, [](S va, S vb) -> u8_t { return Op::f(T::load(va), T::load(vb)) ? 1 : 0; });
}

// cond is one byte per element (bool, uint8 or int8: nonzero byte <=> nonzero value); the host converts
// other condition dtypes to bool first. Values go through load/store like every CPU kernel does.
template <class T>
MOPT_DEV void where_body(const Strided& L, typename T::S* out, const u8_t* cond, const typename T::S* a, const typename T::S* b) {
  typedef typename T::S S;
  map3(L, out, cond, a, b, [](u8_t c, S va, S vb) { return T::store(c != 0 ? T::load(va) : T::load(vb)); });
}

template <class T>
MOPT_DEV void fill_body(const Strided& L, typename T::S* out, double value) {
  typedef typename T::S S;
  constexpr int N = VecN<S>::N;
  const S v = T::store(value);
  if (L.rank == 0 && vec_aligned<N>(out, L.offset[0])) {
    S* o = out + L.offset[0];
    Vec<S, N> r;
#pragma unroll
    for (int j = 0; j < N; j++) r.v[j] = v;
    for_each_contiguous<N>((u64_t)L.n, [&](u64_t k) { vec_store<N>(o, k, r); }, [&](u64_t i) { o[i] = v; });
    return;
  }
  for_each_strided<1>(L, [&](u64_t, const i64_t* o) { out[o[0]] = v; });
}

// dtype conversion: the source is read as its compute type, exactly what CPU readNumbers yields
template <class From, class To>
MOPT_DEV void convert_body(const Strided& L, typename To::S* out, const typename From::S* x) {
  typedef typename From::S SF;
  map1(L, out, x, [](SF v) { return To::store(From::load(v)); });
}

// same-dtype copy moves bit patterns (NaN payloads and int64 beyond 2^53 survive), as the CPU does
template <class W>
MOPT_DEV void copy_raw_body(const Strided& L, W* out, const W* x) {
  for_each_strided<2>(L, [&](u64_t, const i64_t* o) { out[o[0]] = x[o[1]]; });
}

// ---------------------------------------------------------------------------------------------------
// Entry points. Only the dtypes models compute in get their own kernels; the host runs every other
// (op, dtype) through float64 (convert in, compute, convert out), which is exactly the CPU's float64
// arithmetic with one rounding, so coverage stays complete while NVRTC compiles a few hundred kernels
// instead of a thousand. The host's table of what exists is src/backend/cuda/kernels.ts.

// dtypes with native unary/binary/compare kernels
#define MOPT_UNARY_FLOAT_DTYPES(X) X(f64) X(f32) X(f16) X(bf16)
#define MOPT_UNARY_INT_DTYPES(X) X(i64) X(i32)
#define MOPT_COMPARE_DTYPES(X) X(f64) X(f32) X(f16) X(bf16) X(i64) X(i32) X(b8)
// dtype conversions with their own kernel: every pair of the common dtypes, the rare dtypes to and from
// float64 (the route for all other pairs), and fp8 to and from the float types it is quantized from
#define MOPT_CONVERT_PAIRS(X)                                                     \
  X(f64, f32) X(f64, f16) X(f64, bf16) X(f64, i64) X(f64, i32) X(f64, b8)         \
  X(f32, f64) X(f32, f16) X(f32, bf16) X(f32, i64) X(f32, i32) X(f32, b8)         \
  X(f16, f64) X(f16, f32) X(f16, bf16) X(f16, i64) X(f16, i32) X(f16, b8)         \
  X(bf16, f64) X(bf16, f32) X(bf16, f16) X(bf16, i64) X(bf16, i32) X(bf16, b8)    \
  X(i64, f64) X(i64, f32) X(i64, f16) X(i64, bf16) X(i64, i32) X(i64, b8)         \
  X(i32, f64) X(i32, f32) X(i32, f16) X(i32, bf16) X(i32, i64) X(i32, b8)         \
  X(b8, f64) X(b8, f32) X(b8, f16) X(b8, bf16) X(b8, i64) X(b8, i32)              \
  X(e4m3, f64) X(e5m2, f64) X(i16, f64) X(i8, f64) X(u8, f64)                     \
  X(f64, e4m3) X(f64, e5m2) X(f64, i16) X(f64, i8) X(f64, u8)                     \
  X(e4m3, f32) X(e4m3, f16) X(e4m3, bf16) X(e5m2, f32) X(e5m2, f16) X(e5m2, bf16) \
  X(f32, e4m3) X(f16, e4m3) X(bf16, e4m3) X(f32, e5m2) X(f16, e5m2) X(bf16, e5m2)

#define MOPT_DEF_UNARY(T, name)                                                 \
  MOPT_KERNEL unary_##name##_##T(Strided L, dt::T::S* out, const dt::T::S* x) { \
    unary_body<op::name, dt::T>(L, out, x);                                     \
  }
#define MOPT_UNARY_ALL(T) MOPT_UNARY_OPS_WITH(MOPT_DEF_UNARY, T)
// on integers only the ops the tensor front end allows (src/tensor/ops/elementwise.ts unary)
#define MOPT_UNARY_INT(T) MOPT_DEF_UNARY(T, neg) MOPT_DEF_UNARY(T, abs) MOPT_DEF_UNARY(T, sign) MOPT_DEF_UNARY(T, square)
MOPT_UNARY_FLOAT_DTYPES(MOPT_UNARY_ALL)
MOPT_UNARY_INT_DTYPES(MOPT_UNARY_INT)

#define MOPT_DEF_BINARY(T, name)                                                                    \
  MOPT_KERNEL binary_##name##_##T(Strided L, dt::T::S* out, const dt::T::S* a, const dt::T::S* b) { \
    binary_body<op::name, dt::T>(L, out, a, b);                                                     \
  }
#define MOPT_BINARY_FOR(T) MOPT_BINARY_OPS_WITH(MOPT_DEF_BINARY, T)
MOPT_COMPUTE_DTYPES(MOPT_BINARY_FOR)

#define MOPT_DEF_COMPARE(T, name)                                                                \
  MOPT_KERNEL compare_##name##_##T(Strided L, u8_t* out, const dt::T::S* a, const dt::T::S* b) { \
    compare_body<op::name, dt::T>(L, out, a, b);                                                 \
  }
#define MOPT_COMPARE_FOR(T) MOPT_COMPARE_OPS_WITH(MOPT_DEF_COMPARE, T)
MOPT_COMPARE_DTYPES(MOPT_COMPARE_FOR)

#define MOPT_DEF_WHERE(T)                                                                                   \
  MOPT_KERNEL where_##T(Strided L, dt::T::S* out, const u8_t* cond, const dt::T::S* a, const dt::T::S* b) { \
    where_body<dt::T>(L, out, cond, a, b);                                                                  \
  }
MOPT_DTYPES(MOPT_DEF_WHERE)

#define MOPT_DEF_FILL(T)                                                                            \
  MOPT_KERNEL fill_##T(Strided L, dt::T::S* out, double value) { fill_body<dt::T>(L, out, value); }
MOPT_DTYPES(MOPT_DEF_FILL)

#define MOPT_DEF_CONVERT(From, To)                                                     \
  MOPT_KERNEL copy_##From##_to_##To(Strided L, dt::To::S* out, const dt::From::S* x) { \
    convert_body<dt::From, dt::To>(L, out, x);                                         \
  }
MOPT_CONVERT_PAIRS(MOPT_DEF_CONVERT)

/** 16 bytes moved as one access: the host widens copies of rows with unit-stride, aligned runs to it. */
struct alignas(16) u128_t {
  u64_t lo, hi;
};
#define MOPT_DEF_COPY_RAW(name, W)                                                            \
  MOPT_KERNEL copy_raw_##name(Strided L, W* out, const W* x) { copy_raw_body<W>(L, out, x); }
MOPT_WORDS(MOPT_DEF_COPY_RAW)
MOPT_DEF_COPY_RAW(u128, u128_t)
