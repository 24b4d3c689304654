// The element-wise fused routines: rotate-half RoPE, SwiGLU forward/backward and the AdamW step
// (src/backend/cpu/fused.ts ropeCpu, swigluCpu, swigluBackwardCpu, adamwCpu).
//
// RoPE computes in float64 like the CPU reference and rounds once per output: results equal the CPU's bit
// for bit; so does AdamW for float64/float32 parameters (16-bit ones step in float32, see AdamAcc). SwiGLU (forward and backward) computes in float32 for float32 and the 16-bit floats
// (float64 for float64), so that the float32 exp keeps it at memory speed: results are within a few
// float32 ulp of the CPU's float64 before the one rounding to the output dtype (test/tensor/fused.test.ts
// compares with tolerances). Operands are strided views walked with common.cuh for_each_strided (the host
// builds the launches with layout.ts stridedLaunches; output first); SwiGLU takes the contiguous fast path
// (common.cuh for_each_contiguous: 16-byte vector accesses) when every operand is contiguous and aligned.
#include "fused.cuh"

/**
 * RoPE over the half shape [..., S, D/2]: operands out_lo, out_hi, x_lo, x_hi, where *_hi are the same
 * views shifted by D/2 along the last dim. Each launch element rotates V adjacent pairs: columns
 * j = V (i % (half / V)) .. + V - 1 at position p = (i / (half / V)) % seq; with V > 1 (rope_vec_*) the host
 * guarantees unit-stride, 16-byte-aligned columns and passes the last dim's stride as V. cos/sin [S, D/2]
 * are read with their own strides. sign = -1 rotates back.
 */
template <class T, class U, int V>
MOPT_DEV void rope_body(const Strided& L, typename T::S* out, const typename T::S* x, const typename U::S* cos,
                        const typename U::S* sin, i64_t half, i64_t seq, i64_t c_p, i64_t c_j, i64_t s_p, i64_t s_j,
                        double sign) {
  typedef typename T::S S;
  const u64_t groups = (u64_t)half / V;
  for_each_strided<4>(L, [&](u64_t i, const i64_t* o) {
    const u64_t row = div_index(i, groups);
    const i64_t j0 = (i64_t)(i - row * groups) * V;
    const i64_t p = (i64_t)(row - div_index(row, (u64_t)seq) * (u64_t)seq);
    const Vec<S, V> x1 = *reinterpret_cast<const Vec<S, V>*>(x + o[2]), x2 = *reinterpret_cast<const Vec<S, V>*>(x + o[3]);
    Vec<S, V> lo, hi;
#pragma unroll
    for (int e = 0; e < V; e++) {
      const i64_t j = j0 + e;
      const double c = U::load(cos[p * c_p + j * c_j]), s = sign * (double)U::load(sin[p * s_p + j * s_j]);
      const double a = T::load(x1.v[e]), b = T::load(x2.v[e]);
      lo.v[e] = T::store(a * c - b * s);
      hi.v[e] = T::store(b * c + a * s);
    }
    *reinterpret_cast<Vec<S, V>*>(out + o[0]) = lo;
    *reinterpret_cast<Vec<S, V>*>(out + o[1]) = hi;
  });
}

/** out = silu(gate) * up. */
template <class T>
MOPT_DEV void swiglu_body(const Strided& L, typename T::S* out, const typename T::S* gate, const typename T::S* up) {
  typedef typename T::S S;
  map2(L, out, gate, up, [](S g, S u) { return T::store(swiglu_one<T>(g, u)); });
}

/** Gradients of swiglu at one element, in Acc<T>: gu = go * silu(g), gg = go * u * silu'(g). */
template <class T>
MOPT_DEV void swiglu_bwd_one(typename T::S gs, typename T::S us, typename T::S gos, typename T::S& gg, typename T::S& gu) {
  typedef typename Acc<T>::type C;
  const C g = (C)T::load(gs), u = (C)T::load(us), go = (C)T::load(gos);
  const C s = C(1) / (C(1) + m_exp(-g));
  gu = T::store(go * g * s);
  gg = T::store(go * u * s * (C(1) + g * (C(1) - s)));
}

/**
 * Operands gGate, gate, up, gOut; gUp is contiguous (a fresh output) and indexed by the logical index,
 * which keeps the operand count within common.cuh's four.
 */
template <class T>
MOPT_DEV void swiglu_bwd_body(const Strided& L, typename T::S* g_gate, const typename T::S* gate,
                              const typename T::S* up, const typename T::S* g_out, typename T::S* g_up) {
  typedef typename T::S S;
  constexpr int N = VecN<S>::N;
  if (L.rank == 0 && vec_aligned<N>(g_gate, L.offset[0]) && vec_aligned<N>(gate, L.offset[1]) &&
      vec_aligned<N>(up, L.offset[2]) && vec_aligned<N>(g_out, L.offset[3]) && vec_aligned<N>(g_up, (i64_t)L.base)) {
    S* pgg = g_gate + L.offset[0];
    const S* pg = gate + L.offset[1];
    const S* pu = up + L.offset[2];
    const S* pgo = g_out + L.offset[3];
    S* pgu = g_up + L.base;
    for_each_contiguous<N>((u64_t)L.n, [&](u64_t v) {
      const Vec<S, N> vg = vec_load<N>(pg, v), vu = vec_load<N>(pu, v), vgo = vec_load<N>(pgo, v);
      Vec<S, N> rgg, rgu;
#pragma unroll
      for (int j = 0; j < N; j++) swiglu_bwd_one<T>(vg.v[j], vu.v[j], vgo.v[j], rgg.v[j], rgu.v[j]);
      vec_store<N>(pgg, v, rgg);
      vec_store<N>(pgu, v, rgu);
    }, [&](u64_t i) { swiglu_bwd_one<T>(pg[i], pu[i], pgo[i], pgg[i], pgu[i]); });
    return;
  }
  for_each_strided<4>(L, [&](u64_t i, const i64_t* o) { swiglu_bwd_one<T>(gate[o[1]], up[o[2]], g_out[o[3]], g_gate[o[0]], g_up[i]); });
}

/**
 * The arithmetic type of the AdamW step: float64 for float64/float32 parameters (bit-equal to the CPU),
 * float32 for the 16-bit floats (float64 division and square root made the step compute-bound at a
 * third of HBM speed; float32 keeps it within one rounding of the 16-bit result, and torch itself does
 * this update in the parameter dtype).
 */
template <class T> struct AdamAcc { typedef double type; };
template <> struct AdamAcc<dt::f16> { typedef float type; };
template <> struct AdamAcc<dt::bf16> { typedef float type; };

/** One AdamW step on one element (decoupled weight decay, bias corrections bc1/bc2). */
template <class T>
MOPT_DEV void adamw_one(typename T::S& p, typename T::S gs, typename T::S& m, typename T::S& v, double lr, double beta1,
                        double beta2, double eps, double wd, double bc1, double bc2) {
  typedef typename AdamAcc<T>::type C;
  const C g = T::load(gs);
  const C nm = (C)beta1 * (C)T::load(m) + (C)(1.0 - beta1) * g;
  const C nv = (C)beta2 * (C)T::load(v) + (C)(1.0 - beta2) * g * g;
  const C denom = m_sqrt(nv / (C)bc2) + (C)eps;
  p = T::store((C)T::load(p) * (C)(1.0 - lr * wd) - (C)lr * (nm / (C)bc1) / denom);
  m = T::store(nm);
  v = T::store(nv);
}

/** One AdamW step in place on operands param, grad, m, v; 16-byte vector accesses when all are contiguous. */
template <class T>
MOPT_DEV void adamw_body(const Strided& L, typename T::S* param, const typename T::S* grad, typename T::S* m,
                         typename T::S* v, double lr, double beta1, double beta2, double eps, double wd, double bc1,
                         double bc2) {
  typedef typename T::S S;
  constexpr int N = VecN<S>::N;
  if (L.rank == 0 && vec_aligned<N>(param, L.offset[0]) && vec_aligned<N>(grad, L.offset[1]) &&
      vec_aligned<N>(m, L.offset[2]) && vec_aligned<N>(v, L.offset[3])) {
    S* pp = param + L.offset[0];
    const S* pg = grad + L.offset[1];
    S* pm = m + L.offset[2];
    S* pv = v + L.offset[3];
    for_each_contiguous<N>((u64_t)L.n, [&](u64_t i) {
      Vec<S, N> vp = vec_load<N>(pp, i), vm = vec_load<N>(pm, i), vv = vec_load<N>(pv, i);
      const Vec<S, N> vg = vec_load<N>(pg, i);
#pragma unroll
      for (int j = 0; j < N; j++) adamw_one<T>(vp.v[j], vg.v[j], vm.v[j], vv.v[j], lr, beta1, beta2, eps, wd, bc1, bc2);
      vec_store<N>(pp, i, vp);
      vec_store<N>(pm, i, vm);
      vec_store<N>(pv, i, vv);
    }, [&](u64_t i) { adamw_one<T>(pp[i], pg[i], pm[i], pv[i], lr, beta1, beta2, eps, wd, bc1, bc2); });
    return;
  }
  for_each_strided<4>(L, [&](u64_t, const i64_t* o) {
    adamw_one<T>(param[o[0]], grad[o[1]], m[o[2]], v[o[3]], lr, beta1, beta2, eps, wd, bc1, bc2);
  });
}

// RoPE tables may have another float dtype than x (e.g. float32 tables for bfloat16 activations)
#define MOPT_ROPE_TABLES(X, T) X(T, f64) X(T, f32) X(T, f16) X(T, bf16)
#define MOPT_DEF_ROPE(T, U)                                                                                        \
  extern "C" __global__ void __launch_bounds__(256) rope_##T##_##U(Strided L, dt::T::S* out, const dt::T::S* x,   \
      const dt::U::S* cos, const dt::U::S* sin, i64_t half, i64_t seq, i64_t c_p, i64_t c_j, i64_t s_p, i64_t s_j, \
      double sign) {                                                                                               \
    rope_body<dt::T, dt::U, 1>(L, out, x, cos, sin, half, seq, c_p, c_j, s_p, s_j, sign);                          \
  }                                                                                                                \
  extern "C" __global__ void __launch_bounds__(256) rope_vec_##T##_##U(Strided L, dt::T::S* out, const dt::T::S* x, \
      const dt::U::S* cos, const dt::U::S* sin, i64_t half, i64_t seq, i64_t c_p, i64_t c_j, i64_t s_p, i64_t s_j, \
      double sign) {                                                                                               \
    rope_body<dt::T, dt::U, VecN<dt::T::S>::N>(L, out, x, cos, sin, half, seq, c_p, c_j, s_p, s_j, sign);          \
  }
#define MOPT_DEF_ROPE_ALL(T) MOPT_ROPE_TABLES(MOPT_DEF_ROPE, T)
MOPT_FUSED_DTYPES(MOPT_DEF_ROPE_ALL)

// Must match src/backend/cuda/fused.ts ROPE_APPEND_FIELDS (every field an i64_t, in this order). Addresses
// are element 0 of each view; q, k, v, the tables and the caches have unit-stride last dims.
struct RopeAppendLayout {
  i64_t B, H, KV, S, D, cap;
  i64_t q, q_sb, q_sh, q_ss, k, k_sb, k_sh, k_ss, v, v_sb, v_sh, v_ss;  // [B, H|KV, S, D] views
  i64_t cos, c_s, sin, s_s;                                              // rows [S, D/2]
  i64_t pos;                                                             // int32 [S]
  i64_t qo;                                                              // [B, H, S, D] contiguous
  i64_t kc, vc, c_sb, c_sh, c_st;                                        // caches [B, KV, cap, D]
};

/**
 * A decode step's attention inputs in one pass (backend.ts ropeAppend): q rotated into qo, k rotated and v
 * copied into the caches at positions pos[s]. One element per (b, head of q|k|v, s, pair j): the rotation
 * is rope_body's, in float64 with one rounding, so results equal rope + scatter bit for bit. A position
 * outside the cache is skipped (the host checks the capacity).
 */
template <class T, class U>
MOPT_DEV void rope_append_body(const RopeAppendLayout& L) {
  typedef typename T::S S;
  typedef typename U::S C;
  pdl_wait();  // a programmatic dependent in a recorded decode step: the q/k/v GEMV's output must be complete
  pdl_trigger();
  const i64_t half = L.D / 2, heads = L.H + 2 * L.KV;
  const u64_t n = (u64_t)(L.B * heads * L.S * half);
  for (u64_t i = global_thread(); i < n; i += global_threads()) {
    const i64_t j = (i64_t)(i % (u64_t)half), r = (i64_t)(i / (u64_t)half);
    const i64_t s = r % L.S, hh = (r / L.S) % heads, b = r / (L.S * heads);
    const bool is_q = hh < L.H, is_k = !is_q && hh < L.H + L.KV;
    const i64_t h = is_q ? hh : is_k ? hh - L.H : hh - L.H - L.KV;
    const S* x = is_q ? reinterpret_cast<const S*>(L.q) + b * L.q_sb + h * L.q_sh + s * L.q_ss
               : is_k ? reinterpret_cast<const S*>(L.k) + b * L.k_sb + h * L.k_sh + s * L.k_ss
                      : reinterpret_cast<const S*>(L.v) + b * L.v_sb + h * L.v_sh + s * L.v_ss;
    S* out;
    if (is_q) {
      out = reinterpret_cast<S*>(L.qo) + ((b * L.H + h) * L.S + s) * L.D;
    } else {
      const i64_t p = reinterpret_cast<const int*>(L.pos)[s];
      if (p < 0 || p >= L.cap) continue;
      out = reinterpret_cast<S*>(is_k ? L.kc : L.vc) + b * L.c_sb + h * L.c_sh + p * L.c_st;
    }
    if (!is_q && !is_k) {
      out[j] = x[j];
      out[j + half] = x[j + half];
      continue;
    }
    const double c = U::load(reinterpret_cast<const C*>(L.cos)[s * L.c_s + j]), sn = (double)U::load(reinterpret_cast<const C*>(L.sin)[s * L.s_s + j]);
    const double a = T::load(x[j]), bb = T::load(x[j + half]);
    out[j] = T::store(a * c - bb * sn);
    out[j + half] = T::store(bb * c + a * sn);
  }
}
#define MOPT_DEF_ROPE_APPEND(T, U)                                                                               \
  extern "C" __global__ void __launch_bounds__(256) rope_append_##T##_##U(RopeAppendLayout L) {                 \
    rope_append_body<dt::T, dt::U>(L);                                                                           \
  }
#define MOPT_DEF_ROPE_APPEND_ALL(T) MOPT_ROPE_TABLES(MOPT_DEF_ROPE_APPEND, T)
MOPT_FUSED_DTYPES(MOPT_DEF_ROPE_APPEND_ALL)

#define MOPT_DEF_POINTWISE(T)                                                                                      \
  extern "C" __global__ void __launch_bounds__(256) swiglu_##T(Strided L, dt::T::S* out, const dt::T::S* gate,    \
      const dt::T::S* up) {                                                                                        \
    swiglu_body<dt::T>(L, out, gate, up);                                                                          \
  }                                                                                                                \
  extern "C" __global__ void __launch_bounds__(256) swiglu_bwd_##T(Strided L, dt::T::S* g_gate,                   \
      const dt::T::S* gate, const dt::T::S* up, const dt::T::S* g_out, dt::T::S* g_up) {                          \
    swiglu_bwd_body<dt::T>(L, g_gate, gate, up, g_out, g_up);                                                      \
  }                                                                                                                \
  extern "C" __global__ void __launch_bounds__(256) adamw_##T(Strided L, dt::T::S* param, const dt::T::S* grad,   \
      dt::T::S* m, dt::T::S* v, double lr, double beta1, double beta2, double eps, double wd, double bc1,          \
      double bc2) {                                                                                                \
    adamw_body<dt::T>(L, param, grad, m, v, lr, beta1, beta2, eps, wd, bc1, bc2);                                  \
  }
MOPT_FUSED_DTYPES(MOPT_DEF_POINTWISE)
