// Attention backward (src/backend/cpu/fused.ts attentionBackwardCpu), FlashAttention-2 style: the
// probabilities are recomputed from the forward's lse, P = exp(q.k * scale - lse), and with
// delta = rowsum(dO * O):  dV = P^T dO,  dS = P * (dO V^T - delta) * scale,  dQ = dS K,  dK = dS^T Q.
//
// - attn_bwd_delta: delta per query row (one warp per row).
// - attn_bwd_dq: one CTA per (64-query tile, head, batch) walks the visible key tiles.
// - attn_bwd_dkv: one CTA per (key tile, KV head, batch) walks every query head of its group and the
//   query tiles that can see its keys, so grouped heads are summed in registers (no atomics, deterministic).
// - attn_bwd_dq_generic / attn_bwd_dkv_generic: one warp per query / key row, for float64 and head
//   dims > 128.
// float32 math (float64 for float64); outputs rounded once to the dtype, as the CPU does.
#include "attention.cuh"

#define MOPT_ATT_THREADS 128

template <class T>
MOPT_DEV void attn_bwd_delta_body(const AttnLayout& L, typename Acc<T>::type* delta, const typename T::S* out,
                                  const typename T::S* g) {
  typedef typename Acc<T>::type A;
  const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  const i64_t rows = L.B * L.H * L.S;
  for (i64_t row = (i64_t)blockIdx.x * warps + (threadIdx.x >> 5); row < rows; row += (i64_t)gridDim.x * warps) {
    const i64_t s = row % L.S, h = (row / L.S) % L.H, b = row / (L.S * L.H);
    const typename T::S* orow = out + b * L.o_sb + h * L.o_sh + s * L.o_ss;
    const typename T::S* grow = g + b * L.g_sb + h * L.g_sh + s * L.g_ss;
    A acc = A(0);
    for (i64_t c = lane; c < L.D; c += 32) acc += (A)T::load(grow[c]) * (A)T::load(orow[c]);
    acc = warp_sum(acc);
    if (lane == 0) delta[row] = acc;
  }
}

/** Tile sizes of attn_bwd_dq / attn_bwd_dkv by padded head dim (fused-attention.ts mirrors them). */
template <int DP> struct BwdTile { enum { BQ = 64, BK = DP == 128 ? 32 : 64, KQ = 32 }; };

template <class T, int DP>
MOPT_DEV void attn_bwd_dq_body(const AttnLayout& L, float scale, typename T::S* gq, const typename T::S* q,
                               const typename T::S* k, const typename T::S* v, const typename T::S* g,
                               const float* lse, const float* delta) {
  constexpr int BQ = BwdTile<DP>::BQ, BK = BwdTile<DP>::BK, TM = 16, TN = 8, NT = MOPT_ATT_THREADS;
  constexpr int RM = BQ / TM, RS = BK / TN, RG = DP / (4 * TN), LD = DP + 4, LP = BK + 4;
  float* Qs = reinterpret_cast<float*>(fused_smem);  // [BQ][LD]
  float* Gs = Qs + BQ * LD;                           // dO [BQ][LD]
  float* Ks = Gs + BQ * LD;                           // [BK][LD]
  float* Vs = Ks + BK * LD;                           // [BK][LD]
  float* Ds = Vs + BK * LD;                           // dS [BQ][LP]
  float* lse_s = Ds + BQ * LP;                        // [BQ]
  float* del_s = lse_s + BQ;                          // [BQ]
  const int tn = threadIdx.x % TN, tm = threadIdx.x / TN, d = (int)L.D;
  const i64_t q0 = ((L.S + BQ - 1) / BQ - 1 - blockIdx.x) * BQ;  // heaviest tiles first
  const i64_t h = blockIdx.y, b = blockIdx.z, kvh = h / (L.H / L.KV), bh = b * L.H + h;
  const i64_t rows = L.S - q0 < BQ ? L.S - q0 : BQ;
  const typename T::S* kb = k + b * L.k_sb + kvh * L.k_sh;
  const typename T::S* vb = v + b * L.v_sb + kvh * L.v_sh;
  load_tile<T, BQ, DP, NT>(Qs, q + b * L.q_sb + h * L.q_sh, L.q_ss, q0, L.S, d);
  load_tile<T, BQ, DP, NT>(Gs, g + b * L.g_sb + h * L.g_sh, L.g_ss, q0, L.S, d);
  for (int r = threadIdx.x; r < BQ; r += NT) {
    lse_s[r] = r < rows ? lse[bh * L.S + q0 + r] : 0.f;
    del_s[r] = r < rows ? delta[bh * L.S + q0 + r] : 0.f;
  }
  float acc[RM][4 * RG];
#pragma unroll
  for (int i = 0; i < RM; i++)
#pragma unroll
    for (int c = 0; c < 4 * RG; c++) acc[i][c] = 0.f;
  const i64_t lo = first_key(L, L.past + q0), hi = end_key(L, L.past + q0 + rows - 1);
  for (i64_t t0 = lo - lo % BK; t0 < hi; t0 += BK) {
    __syncthreads();  // readers of the previous tile are done with Ks, Vs, Ds
    load_tile<T, BK, DP, NT>(Ks, kb, L.k_st, t0, L.T, d);
    load_tile<T, BK, DP, NT>(Vs, vb, L.v_st, t0, L.T, d);
    __syncthreads();
    float s[RM][RS], dp[RM][RS];
#pragma unroll
    for (int i = 0; i < RM; i++)
#pragma unroll
      for (int j = 0; j < RS; j++) s[i][j] = 0.f, dp[i][j] = 0.f;
    tile_nt<RM, RS, DP, TM, TN>(s, Qs, LD, tm, Ks, LD, tn);
    tile_nt<RM, RS, DP, TM, TN>(dp, Gs, LD, tm, Vs, LD, tn);
#pragma unroll
    for (int i = 0; i < RM; i++) {
      const int r = tm + i * TM;
#pragma unroll
      for (int j = 0; j < RS; j++) {
        const i64_t t = t0 + tn + j * TN;
        const bool ok = r < rows && t < L.T && visible(L, L.past + q0 + r, t);
        const float p = ok ? expf(s[i][j] * scale - lse_s[r]) : 0.f;
        Ds[r * LP + tn + j * TN] = p * (dp[i][j] - del_s[r]) * scale;
      }
    }
    __syncthreads();
    tile_nn<RM, RG, BK, TM, TN>(acc, Ds, LP, tm, Ks, LD, tn);
  }
#pragma unroll
  for (int i = 0; i < RM; i++) {
    const int r = tm + i * TM;
    if (r >= rows) continue;
    typename T::S* orow = gq + (bh * L.S + q0 + r) * L.D;
#pragma unroll
    for (int gi = 0; gi < RG; gi++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int c = 4 * tn + 4 * TN * gi + e;
        if (c < d) orow[c] = T::store(acc[i][4 * gi + e]);
      }
  }
}

template <class T, int DP>
MOPT_DEV void attn_bwd_dkv_body(const AttnLayout& L, float scale, typename T::S* gk, typename T::S* gv,
                                const typename T::S* q, const typename T::S* k, const typename T::S* v,
                                const typename T::S* g, const float* lse, const float* delta) {
  constexpr int BK = BwdTile<DP>::BK, BQ = BwdTile<DP>::KQ, TM = 16, TN = 8, NT = MOPT_ATT_THREADS;
  constexpr int RM = BK / TM, RN = BQ / TN, RG = DP / (4 * TN), LD = DP + 4, LQ = BQ + 4;
  float* Ks = reinterpret_cast<float*>(fused_smem);  // [BK][LD]
  float* Vs = Ks + BK * LD;                           // [BK][LD]
  float* Qs = Vs + BK * LD;                           // [BQ][LD]
  float* Gs = Qs + BQ * LD;                           // dO [BQ][LD]
  float* Pt = Gs + BQ * LD;                           // P^T [BK][LQ]
  float* Dt = Pt + BK * LQ;                           // dS^T [BK][LQ]
  float* lse_s = Dt + BK * LQ;                        // [BQ]
  float* del_s = lse_s + BQ;                          // [BQ]
  const int tn = threadIdx.x % TN, tm = threadIdx.x / TN, d = (int)L.D;
  const i64_t k0 = (i64_t)blockIdx.x * BK, kvh = blockIdx.y, b = blockIdx.z, rep = L.H / L.KV;
  load_tile<T, BK, DP, NT>(Ks, k + b * L.k_sb + kvh * L.k_sh, L.k_st, k0, L.T, d);
  load_tile<T, BK, DP, NT>(Vs, v + b * L.v_sb + kvh * L.v_sh, L.v_st, k0, L.T, d);
  float dk[RM][4 * RG], dv[RM][4 * RG];
#pragma unroll
  for (int i = 0; i < RM; i++)
#pragma unroll
    for (int c = 0; c < 4 * RG; c++) dk[i][c] = 0.f, dv[i][c] = 0.f;
  // the query positions that can see a key in [k0, klast]: p >= k0 when causal, p < klast + window
  const i64_t klast = (k0 + BK < L.T ? k0 + BK : L.T) - 1;
  i64_t s_lo = (L.causal ? k0 : 0) - L.past, s_hi = L.window < 0 ? L.S : klast + L.window - L.past;
  s_lo = s_lo < 0 ? 0 : s_lo;
  s_hi = s_hi > L.S ? L.S : s_hi;
  for (i64_t hh = 0; hh < rep; hh++) {
    const i64_t h = kvh * rep + hh, bh = b * L.H + h;
    for (i64_t s0 = s_lo - s_lo % BQ; s0 < s_hi; s0 += BQ) {
      __syncthreads();  // readers of the previous query tile are done with Qs, Gs, Pt, Dt
      load_tile<T, BQ, DP, NT>(Qs, q + b * L.q_sb + h * L.q_sh, L.q_ss, s0, L.S, d);
      load_tile<T, BQ, DP, NT>(Gs, g + b * L.g_sb + h * L.g_sh, L.g_ss, s0, L.S, d);
      for (int r = threadIdx.x; r < BQ; r += NT) {
        lse_s[r] = s0 + r < L.S ? lse[bh * L.S + s0 + r] : 0.f;
        del_s[r] = s0 + r < L.S ? delta[bh * L.S + s0 + r] : 0.f;
      }
      __syncthreads();
      float st[RM][RN], dpt[RM][RN];
#pragma unroll
      for (int i = 0; i < RM; i++)
#pragma unroll
        for (int j = 0; j < RN; j++) st[i][j] = 0.f, dpt[i][j] = 0.f;
      tile_nt<RM, RN, DP, TM, TN>(st, Ks, LD, tm, Qs, LD, tn);
      tile_nt<RM, RN, DP, TM, TN>(dpt, Vs, LD, tm, Gs, LD, tn);
#pragma unroll
      for (int i = 0; i < RM; i++) {
        const int kr = tm + i * TM;
        const i64_t t = k0 + kr;
#pragma unroll
        for (int j = 0; j < RN; j++) {
          const int qr = tn + j * TN;
          const bool ok = s0 + qr < L.S && t < L.T && visible(L, L.past + s0 + qr, t);
          const float p = ok ? expf(st[i][j] * scale - lse_s[qr]) : 0.f;
          Pt[kr * LQ + qr] = p;
          Dt[kr * LQ + qr] = p * (dpt[i][j] - del_s[qr]) * scale;
        }
      }
      __syncthreads();
      tile_nn<RM, RG, BQ, TM, TN>(dv, Pt, LQ, tm, Gs, LD, tn);
      tile_nn<RM, RG, BQ, TM, TN>(dk, Dt, LQ, tm, Qs, LD, tn);
    }
  }
  const i64_t base = (b * L.KV + kvh) * L.T;
#pragma unroll
  for (int i = 0; i < RM; i++) {
    const i64_t t = k0 + tm + i * TM;
    if (t >= L.T) continue;
#pragma unroll
    for (int gi = 0; gi < RG; gi++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int c = 4 * tn + 4 * TN * gi + e;
        if (c < d) gk[(base + t) * L.D + c] = T::store(dk[i][4 * gi + e]), gv[(base + t) * L.D + c] = T::store(dv[i][4 * gi + e]);
      }
  }
}

/** One warp per query row; shared memory per warp: q, dO and dQ rows (3 * D of A). */
template <class T>
MOPT_DEV void attn_bwd_dq_generic_body(const AttnLayout& L, double scale, typename T::S* gq, const typename T::S* q,
                                       const typename T::S* k, const typename T::S* v, const typename T::S* g,
                                       const float* lse, const typename Acc<T>::type* delta) {
  typedef typename Acc<T>::type A;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const i64_t D = L.D, rows = L.B * L.H * L.S, rep = L.H / L.KV;
  A* qs = reinterpret_cast<A*>(fused_smem) + warp * 3 * D;
  A* gs = qs + D;
  A* dq = gs + D;  // lane c % 32 alone touches column c: no barriers needed
  for (i64_t row = (i64_t)blockIdx.x * warps + warp; row < rows; row += (i64_t)gridDim.x * warps) {
    const i64_t s = row % L.S, h = (row / L.S) % L.H, b = row / (L.S * L.H);
    const typename T::S* kb = k + b * L.k_sb + (h / rep) * L.k_sh;
    const typename T::S* vb = v + b * L.v_sb + (h / rep) * L.v_sh;
    for (i64_t c = lane; c < D; c += 32) {
      qs[c] = T::load(q[b * L.q_sb + h * L.q_sh + s * L.q_ss + c]);
      gs[c] = T::load(g[b * L.g_sb + h * L.g_sh + s * L.g_ss + c]);
      dq[c] = A(0);
    }
    const i64_t qpos = L.past + s;
    const A l = lse[row], del = delta[row];
    for (i64_t t = first_key(L, qpos); t < end_key(L, qpos); t++) {
      if (!visible(L, qpos, t)) continue;
      A dot = A(0), dp = A(0);
      for (i64_t c = lane; c < D; c += 32) {
        dot += qs[c] * (A)T::load(kb[t * L.k_st + c]);
        dp += gs[c] * (A)T::load(vb[t * L.v_st + c]);
      }
      const A p = m_exp(warp_sum(dot) * (A)scale - l);
      const A ds = p * (warp_sum(dp) - del) * (A)scale;
      for (i64_t c = lane; c < D; c += 32) dq[c] += ds * (A)T::load(kb[t * L.k_st + c]);
    }
    for (i64_t c = lane; c < D; c += 32) gq[row * D + c] = T::store(dq[c]);
  }
}

/** One warp per key row; shared memory per warp: k, v, dK and dV rows (4 * D of A). */
template <class T>
MOPT_DEV void attn_bwd_dkv_generic_body(const AttnLayout& L, double scale, typename T::S* gk, typename T::S* gv,
                                        const typename T::S* q, const typename T::S* k, const typename T::S* v,
                                        const typename T::S* g, const float* lse, const typename Acc<T>::type* delta) {
  typedef typename Acc<T>::type A;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const i64_t D = L.D, rows = L.B * L.KV * L.T, rep = L.H / L.KV;
  A* ks = reinterpret_cast<A*>(fused_smem) + warp * 4 * D;
  A* vs = ks + D;
  A* dk = vs + D;
  A* dv = dk + D;
  for (i64_t row = (i64_t)blockIdx.x * warps + warp; row < rows; row += (i64_t)gridDim.x * warps) {
    const i64_t t = row % L.T, kvh = (row / L.T) % L.KV, b = row / (L.T * L.KV);
    for (i64_t c = lane; c < D; c += 32) {
      ks[c] = T::load(k[b * L.k_sb + kvh * L.k_sh + t * L.k_st + c]);
      vs[c] = T::load(v[b * L.v_sb + kvh * L.v_sh + t * L.v_st + c]);
      dk[c] = A(0), dv[c] = A(0);
    }
    i64_t s_lo = (L.causal ? t : 0) - L.past, s_hi = L.window < 0 ? L.S : t + L.window - L.past;
    s_lo = s_lo < 0 ? 0 : s_lo;
    s_hi = s_hi > L.S ? L.S : s_hi;
    for (i64_t h = kvh * rep; h < (kvh + 1) * rep; h++) {
      const i64_t bh = b * L.H + h;
      for (i64_t s = s_lo; s < s_hi; s++) {
        if (!visible(L, L.past + s, t)) continue;
        const typename T::S* qr = q + b * L.q_sb + h * L.q_sh + s * L.q_ss;
        const typename T::S* gr = g + b * L.g_sb + h * L.g_sh + s * L.g_ss;
        A dot = A(0), dp = A(0);
#pragma unroll 1
        for (i64_t c = lane; c < D; c += 32) {
          dot += (A)T::load(qr[c]) * ks[c];
          dp += (A)T::load(gr[c]) * vs[c];
        }
        const A p = m_exp(warp_sum(dot) * (A)scale - (A)lse[bh * L.S + s]);
        const A ds = p * (warp_sum(dp) - delta[bh * L.S + s]) * (A)scale;
#pragma unroll 1
        for (i64_t c = lane; c < D; c += 32) {
          dv[c] += p * (A)T::load(gr[c]);
          dk[c] += ds * (A)T::load(qr[c]);
        }
      }
    }
    for (i64_t c = lane; c < D; c += 32) gk[row * D + c] = T::store(dk[c]), gv[row * D + c] = T::store(dv[c]);
  }
}

#define MOPT_DEF_ATTN_BWD_FLASH(T, D)                                                                                   \
  extern "C" __global__ void __launch_bounds__(MOPT_ATT_THREADS) attn_bwd_dq_##T##_d##D(AttnLayout L, double scale,    \
      dt::T::S* gq, const dt::T::S* q, const dt::T::S* k, const dt::T::S* v, const dt::T::S* g, const float* lse,      \
      const float* delta) {                                                                                             \
    attn_bwd_dq_body<dt::T, D>(L, (float)scale, gq, q, k, v, g, lse, delta);                                            \
  }                                                                                                                     \
  extern "C" __global__ void __launch_bounds__(MOPT_ATT_THREADS) attn_bwd_dkv_##T##_d##D(AttnLayout L, double scale,   \
      dt::T::S* gk, dt::T::S* gv, const dt::T::S* q, const dt::T::S* k, const dt::T::S* v, const dt::T::S* g,          \
      const float* lse, const float* delta) {                                                                           \
    attn_bwd_dkv_body<dt::T, D>(L, (float)scale, gk, gv, q, k, v, g, lse, delta);                                       \
  }
MOPT_FLASH_ALL(MOPT_DEF_ATTN_BWD_FLASH)

// No __launch_bounds__ on the generic dq/dkv kernels: with it ptxas (CUDA 13) chose to spill a few bytes
// at 72 registers; without it they use <= 66 and spill nothing. They run with at most 128 threads.
#define MOPT_DEF_ATTN_BWD_GENERIC(T)                                                                                    \
  extern "C" __global__ void __launch_bounds__(MOPT_ATT_THREADS) attn_bwd_delta_##T(AttnLayout L,                      \
      Acc<dt::T>::type* delta, const dt::T::S* out, const dt::T::S* g) {                                               \
    attn_bwd_delta_body<dt::T>(L, delta, out, g);                                                                       \
  }                                                                                                                     \
  extern "C" __global__ void attn_bwd_dq_generic_##T(AttnLayout L, double scale,   \
      dt::T::S* gq, const dt::T::S* q, const dt::T::S* k, const dt::T::S* v, const dt::T::S* g, const float* lse,      \
      const Acc<dt::T>::type* delta) {                                                                                  \
    attn_bwd_dq_generic_body<dt::T>(L, scale, gq, q, k, v, g, lse, delta);                                              \
  }                                                                                                                     \
  extern "C" __global__ void attn_bwd_dkv_generic_##T(AttnLayout L, double scale,  \
      dt::T::S* gk, dt::T::S* gv, const dt::T::S* q, const dt::T::S* k, const dt::T::S* v, const dt::T::S* g,          \
      const float* lse, const Acc<dt::T>::type* delta) {                                                                \
    attn_bwd_dkv_generic_body<dt::T>(L, scale, gk, gv, q, k, v, g, lse, delta);                                         \
  }
MOPT_FUSED_DTYPES(MOPT_DEF_ATTN_BWD_GENERIC)
