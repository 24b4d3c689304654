// The element-wise fused routines: rotate-half RoPE, SwiGLU forward/backward and the AdamW step
// (src/backend/cpu/fused.ts ropeCpu, swigluCpu, swigluBackwardCpu, adamwCpu).
//
// They are memory bound, so they compute in float64 like the CPU reference and round once per output:
// results equal the CPU's bit for bit (SwiGLU up to the float64 exp, which may differ in its last bit).
// Operands are strided views walked with common.cuh for_each_strided (the host builds the launches with
// layout.ts stridedLaunches; output first).
#include "fused.cuh"

/**
 * RoPE over the half shape [..., S, D/2]: operands out_lo, out_hi, x_lo, x_hi, where *_hi are the same
 * views shifted by D/2 along the last dim. Element i of the launch has column j = i % half and position
 * p = (i / half) % seq; cos/sin [S, D/2] are read with their own strides. sign = -1 rotates back.
 */
template <class T, class U>
MOPT_DEV void rope_body(const Strided& L, typename T::S* out, const typename T::S* x, const typename U::S* cos,
                        const typename U::S* sin, i64_t half, i64_t seq, i64_t c_p, i64_t c_j, i64_t s_p, i64_t s_j,
                        double sign) {
  for_each_strided<4>(L, [&](u64_t i, const i64_t* o) {
    const u64_t row = div_index(i, (u64_t)half);
    const i64_t j = (i64_t)(i - row * (u64_t)half);
    const i64_t p = (i64_t)(row - div_index(row, (u64_t)seq) * (u64_t)seq);
    const double c = U::load(cos[p * c_p + j * c_j]), s = sign * (double)U::load(sin[p * s_p + j * s_j]);
    const double x1 = T::load(x[o[2]]), x2 = T::load(x[o[3]]);
    out[o[0]] = T::store(x1 * c - x2 * s);
    out[o[1]] = T::store(x2 * c + x1 * s);
  });
}

/** out = silu(gate) * up, silu rounded to the dtype first (two ops in transformers). */
template <class T>
MOPT_DEV void swiglu_body(const Strided& L, typename T::S* out, const typename T::S* gate, const typename T::S* up) {
  for_each_strided<3>(L, [&](u64_t, const i64_t* o) {
    const double g = T::load(gate[o[1]]);
    const double silu = round_to<T>(g * (1.0 / (1.0 + exp(-g))));
    out[o[0]] = T::store(silu * (double)T::load(up[o[2]]));
  });
}

/**
 * Operands gGate, gate, up, gOut; gUp is contiguous (a fresh output) and indexed by the logical index,
 * which keeps the operand count within common.cuh's four.
 */
template <class T>
MOPT_DEV void swiglu_bwd_body(const Strided& L, typename T::S* g_gate, const typename T::S* gate,
                              const typename T::S* up, const typename T::S* g_out, typename T::S* g_up) {
  for_each_strided<4>(L, [&](u64_t i, const i64_t* o) {
    const double g = T::load(gate[o[1]]), u = T::load(up[o[2]]), go = T::load(g_out[o[3]]);
    const double s = 1.0 / (1.0 + exp(-g));
    g_up[i] = T::store(go * g * s);
    g_gate[o[0]] = T::store(go * u * s * (1.0 + g * (1.0 - s)));
  });
}

/** One AdamW step in place on operands param, grad, m, v (decoupled weight decay, bias corrections bc1/bc2). */
template <class T>
MOPT_DEV void adamw_body(const Strided& L, typename T::S* param, const typename T::S* grad, typename T::S* m,
                         typename T::S* v, double lr, double beta1, double beta2, double eps, double wd, double bc1,
                         double bc2) {
  for_each_strided<4>(L, [&](u64_t, const i64_t* o) {
    const double g = T::load(grad[o[1]]);
    const double nm = beta1 * (double)T::load(m[o[2]]) + (1.0 - beta1) * g;
    const double nv = beta2 * (double)T::load(v[o[3]]) + (1.0 - beta2) * g * g;
    const double denom = sqrt(nv / bc2) + eps;
    const double p = T::load(param[o[0]]);
    param[o[0]] = T::store(p * (1.0 - lr * wd) - lr * (nm / bc1) / denom);
    m[o[2]] = T::store(nm);
    v[o[3]] = T::store(nv);
  });
}

// RoPE tables may have another float dtype than x (e.g. float32 tables for bfloat16 activations)
#define MOPT_ROPE_TABLES(X, T) X(T, f64) X(T, f32) X(T, f16) X(T, bf16)
#define MOPT_DEF_ROPE(T, U)                                                                                        \
  extern "C" __global__ void __launch_bounds__(256) rope_##T##_##U(Strided L, dt::T::S* out, const dt::T::S* x,   \
      const dt::U::S* cos, const dt::U::S* sin, i64_t half, i64_t seq, i64_t c_p, i64_t c_j, i64_t s_p, i64_t s_j, \
      double sign) {                                                                                               \
    rope_body<dt::T, dt::U>(L, out, x, cos, sin, half, seq, c_p, c_j, s_p, s_j, sign);                             \
  }
#define MOPT_DEF_ROPE_ALL(T) MOPT_ROPE_TABLES(MOPT_DEF_ROPE, T)
MOPT_FUSED_DTYPES(MOPT_DEF_ROPE_ALL)

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
