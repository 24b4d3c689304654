// Tensor-core attention backward for float16/bfloat16 with head dim 64 or 128 (picked by
// src/backend/cuda/fused-attention.ts on sm_80+; other dtypes and head dims stay on attention_bwd.cu).
// Same contract and formulas as attention_bwd.cu: with P = exp(q.k * scale - lse) recomputed from the
// forward's lse and delta = rowsum(dO * O) (attn_bwd_delta),
//   dV = P^T dO,   dS = P * (dO V^T - delta) * scale,   dQ = dS K,   dK = dS^T Q.
// Two kernels, so that no output needs atomics (deterministic, like attention_bwd.cu):
// - attn_bwd_dq_tc: one CTA of 4 warps per (64-query tile, head, batch); warp w owns query rows
//   16w..16w+15, with Q and dO in registers as A fragments. Per key tile: S = Q K^T and dP = dO V^T
//   (B fragments straight from the K and V rows), dS in float32 on the accumulators, rounded to T and
//   re-packed as A fragments, dQ += dS K (K's B fragments from ldmatrix.trans). K/V tiles double-buffered.
// - attn_bwd_dkv_tc: one CTA per (64-key tile, KV head, batch); warp w owns keys 16w..16w+15. It walks
//   every query head of the KV head's group and the query tiles that can see its keys (grouped heads
//   summed in registers). Per query tile: S^T = K Q^T, dP^T = V dO^T (K, V A fragments from shared
//   memory), P^T and dS^T on the accumulators, dV += P^T dO and dK += dS^T Q. Q/dO tiles (with their lse
//   and delta) double-buffered.
// Numerics: float32 accumulation and float32 softmax/dS math (P = exp2(s * scale * log2(e) - lse * log2(e)):
// one MUFU op); P and dS are rounded once to T as mma operands (the float32 kernels keep them in
// float32), outputs rounded once to T.
#include "attention_tc.cuh"

#define MOPT_TCB_THREADS 128

/** Tile sizes (fused-attention.ts tcBwdShared mirrors them); smaller steps for head dim 128 keep the
 * accumulators in registers. */
template <int D> struct TcBwdTile {
  enum { P = D + 8, DQ_BQ = 64, DQ_BK = D == 128 ? 32 : 64, KV_BK = 64, KV_BQ = D == 128 ? 32 : 64 };
};

template <class T, int D>
MOPT_DEV void attn_bwd_dq_tc_body(const AttnLayout& L, float scale, u16_t* gq, const u16_t* q, const u16_t* k,
                                  const u16_t* v, const u16_t* go, const float* lse, const float* delta) {
  constexpr int BQ = TcBwdTile<D>::DQ_BQ, BK = TcBwdTile<D>::DQ_BK, P = TcBwdTile<D>::P, TILE = BK * P;
  constexpr int KC = D / 16, NS = BK / 8, NO = D / 8;
  u16_t* const smem = reinterpret_cast<u16_t*>(fused_smem);  // two stages of {K [BK][P], V [BK][P]}
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, c = lane & 3;
  const i64_t q0 = ((L.S + BQ - 1) / BQ - 1 - blockIdx.x) * BQ;  // heaviest tiles first
  const i64_t h = blockIdx.y, b = blockIdx.z, kvh = h / (L.H / L.KV), bh = b * L.H + h;
  const float scale2 = scale * TC_LOG2E;
  const i64_t rows = L.S - q0 < BQ ? L.S - q0 : BQ;
  const u16_t* kb = k + b * L.k_sb + kvh * L.k_sh;
  const u16_t* vb = v + b * L.v_sb + kvh * L.v_sh;
  const bool vec = ((reinterpret_cast<u64_t>(kb) | reinterpret_cast<u64_t>(vb)) & 15u) == 0 && (L.k_st & 7) == 0 &&
                   (L.v_st & 7) == 0;

  const i64_t r0 = q0 + 16 * warp + g;  // this thread's rows: r0 and r0 + 8
  u32_t qa[KC][4], ga[KC][4];
  tc_rows_to_a<KC>(qa, q + b * L.q_sb + h * L.q_sh, r0, L.S, L.q_ss);
  tc_rows_to_a<KC>(ga, go + b * L.g_sb + h * L.g_sh, r0, L.S, L.g_ss);
  float lr[2], dr[2];
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const i64_t row = r0 + 8 * hr;
    lr[hr] = row < L.S ? lse[bh * L.S + row] * TC_LOG2E : 0.f;  // base 2, as the scores below
    dr[hr] = row < L.S ? delta[bh * L.S + row] : 0.f;
  }
  float acc[NO][4];
#pragma unroll
  for (int n = 0; n < NO; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  const i64_t p0 = L.past + r0;
  const i64_t lo = first_key(L, L.past + q0), hi = end_key(L, L.past + q0 + rows - 1);
  const i64_t first = lo - lo % BK;
  if (first < hi) tc_load_kv<D, BK>(smem, smem + TILE, kb, vb, L.k_st, L.v_st, first, L.T, vec);
  tc_cp_async_commit();
  int stage = 0;
#pragma unroll 1
  for (i64_t t0 = first; t0 < hi; t0 += BK, stage ^= 1) {
    const u16_t* Ks = smem + stage * 2 * TILE;
    const u16_t* Vs = Ks + TILE;
    __syncthreads();  // every warp is done with the previous tile: its stage takes the next one
    if (t0 + BK < hi) tc_load_kv<D, BK>(smem + (stage ^ 1) * 2 * TILE, smem + (stage ^ 1) * 2 * TILE + TILE, kb, vb,
                                        L.k_st, L.v_st, t0 + BK, L.T, vec);
    tc_cp_async_commit();
    tc_cp_async_wait1();
    __syncthreads();

    float s[NS][4], dp[NS][4];
#pragma unroll
    for (int j = 0; j < NS; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = dp[j][0] = dp[j][1] = dp[j][2] = dp[j][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < KC; kc++) {
      tc_mma_abt<T, P, NS>(s, qa[kc], Ks, kc);   // S = Q K^T
      tc_mma_abt<T, P, NS>(dp, ga[kc], Vs, kc);  // dP = dO V^T
    }
    const i64_t qlo = L.past + q0, qhi = L.past + q0 + BQ - 1;
    const bool full = t0 + BK <= L.T && (!L.causal || t0 + BK - 1 <= qlo) && (L.window < 0 || qhi - t0 < L.window);
    u32_t da[NS / 2][4];
#pragma unroll
    for (int j = 0; j < NS; j++) {
      float w[4];
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int hr = e >> 1;
        const i64_t t = t0 + 8 * j + 2 * c + (e & 1);
        const bool ok = full || (t < L.T && visible(L, p0 + 8 * hr, t));
        const float p = ok ? exp2f(fmaf(s[j][e], scale2, -lr[hr])) : 0.f;
        w[e] = p * (dp[j][e] - dr[hr]) * scale;
      }
      tc_pack_c_to_a<T, NS / 2>(da, j, w);
    }
    tc_mma_ab<T, P, NS / 2, NO>(acc, da, Ks);  // dQ += dS K
  }

#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const i64_t row = r0 + 8 * hr;
    if (row >= L.S) continue;
    u16_t* orow = gq + (bh * L.S + row) * D;
#pragma unroll
    for (int n = 0; n < NO; n++) {
      const int col = 8 * n + 2 * c;
      orow[col] = (u16_t)T::store(acc[n][2 * hr]);
      orow[col + 1] = (u16_t)T::store(acc[n][2 * hr + 1]);
    }
  }
}

/**
 * Stages query tile i of the dkv walk (head hh = i / nq of the group, rows s0 = first + (i % nq) BQ):
 * Q and dO rows into Qs, Gs (cp.async when `vec`), lse and delta into ls, dl (plain loads, zero past S).
 */
template <int D, int BQ>
MOPT_DEV void tc_bwd_stage_queries(const AttnLayout& L, u16_t* Qs, u16_t* Gs, float* ls, float* dl, const u16_t* qb,
                                   const u16_t* gb, const float* lse, const float* delta, i64_t h, i64_t b, i64_t s0,
                                   bool vec) {
  tc_load_kv<D, BQ>(Qs, Gs, qb + h * L.q_sh, gb + h * L.g_sh, L.q_ss, L.g_ss, s0, L.S, vec);
  const i64_t bh = b * L.H + h;
  for (int r = threadIdx.x; r < BQ; r += MOPT_TCB_THREADS) {
    const bool ok = s0 + r < L.S;
    ls[r] = ok ? lse[bh * L.S + s0 + r] * TC_LOG2E : 0.f;  // base 2, as the scores
    dl[r] = ok ? delta[bh * L.S + s0 + r] : 0.f;
  }
}

template <class T, int D>
MOPT_DEV void attn_bwd_dkv_tc_body(const AttnLayout& L, float scale, u16_t* gk, u16_t* gv, const u16_t* q,
                                   const u16_t* k, const u16_t* v, const u16_t* go, const float* lse,
                                   const float* delta) {
  constexpr int BK = TcBwdTile<D>::KV_BK, BQ = TcBwdTile<D>::KV_BQ, P = TcBwdTile<D>::P;
  constexpr int KC = D / 16, NQ = BQ / 8, NO = D / 8, KT = BK * P, QT = BQ * P;
  // K [BK][P], V [BK][P]; two stages of {Q [BQ][P], dO [BQ][P]}; two stages of {lse [BQ], delta [BQ]}
  u16_t* const Ks = reinterpret_cast<u16_t*>(fused_smem);
  u16_t* const Vs = Ks + KT;
  u16_t* const qstage = Vs + KT;
  float* const fstage = reinterpret_cast<float*>(qstage + 4 * QT);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, c = lane & 3;
  const i64_t k0 = (i64_t)blockIdx.x * BK, kvh = blockIdx.y, b = blockIdx.z, rep = L.H / L.KV;
  const float scale2 = scale * TC_LOG2E;
  const u16_t* kb = k + b * L.k_sb + kvh * L.k_sh;
  const u16_t* vb = v + b * L.v_sb + kvh * L.v_sh;
  const u16_t* qb = q + b * L.q_sb;
  const u16_t* gb = go + b * L.g_sb;
  const bool vec_kv = ((reinterpret_cast<u64_t>(kb) | reinterpret_cast<u64_t>(vb)) & 15u) == 0 &&
                      (L.k_st & 7) == 0 && (L.v_st & 7) == 0;
  const bool vec_q = ((reinterpret_cast<u64_t>(qb) | reinterpret_cast<u64_t>(gb)) & 15u) == 0 && (L.q_ss & 7) == 0 &&
                     (L.g_ss & 7) == 0 && (L.q_sh & 7) == 0 && (L.g_sh & 7) == 0;

  // the query rows that can see a key in [k0, klast]: position >= k0 when causal, < klast + window
  const i64_t klast = (k0 + BK < L.T ? k0 + BK : L.T) - 1;
  i64_t s_lo = (L.causal ? k0 : 0) - L.past, s_hi = L.window < 0 ? L.S : klast + L.window - L.past;
  s_lo = s_lo < 0 ? 0 : s_lo;
  s_hi = s_hi > L.S ? L.S : s_hi;
  const i64_t first = s_lo - s_lo % BQ;
  const i64_t nq = s_hi > first ? (s_hi - first + BQ - 1) / BQ : 0, ntiles = rep * nq;

  if (ntiles > 0) {
    tc_load_kv<D, BK>(Ks, Vs, kb, vb, L.k_st, L.v_st, k0, L.T, vec_kv);
    tc_bwd_stage_queries<D, BQ>(L, qstage, qstage + QT, fstage, fstage + BQ, qb, gb, lse, delta, kvh * rep, b, first,
                                vec_q);
  }
  tc_cp_async_commit();

  float dk[NO][4], dv[NO][4];
#pragma unroll
  for (int n = 0; n < NO; n++) dk[n][0] = dk[n][1] = dk[n][2] = dk[n][3] = dv[n][0] = dv[n][1] = dv[n][2] = dv[n][3] = 0.f;
  const i64_t tr = k0 + 16 * warp + g;  // this thread's keys: tr and tr + 8
  int stage = 0;
#pragma unroll 1
  for (i64_t i = 0; i < ntiles; i++, stage ^= 1) {
    const i64_t s0 = first + (i % nq) * BQ;
    __syncthreads();  // every warp is done with the previous query tile: its stage takes the next one
    if (i + 1 < ntiles) {
      const int nx = stage ^ 1;
      tc_bwd_stage_queries<D, BQ>(L, qstage + nx * 2 * QT, qstage + nx * 2 * QT + QT, fstage + nx * 2 * BQ,
                                  fstage + nx * 2 * BQ + BQ, qb, gb, lse, delta, kvh * rep + (i + 1) / nq, b,
                                  first + ((i + 1) % nq) * BQ, vec_q);
    }
    tc_cp_async_commit();
    tc_cp_async_wait1();
    __syncthreads();
    const u16_t* Qs = qstage + stage * 2 * QT;
    const u16_t* Gs = Qs + QT;
    const float* ls = fstage + stage * 2 * BQ;
    const float* dl = ls + BQ;

    float st[NQ][4], dpt[NQ][4];
#pragma unroll
    for (int j = 0; j < NQ; j++) st[j][0] = st[j][1] = st[j][2] = st[j][3] = dpt[j][0] = dpt[j][1] = dpt[j][2] = dpt[j][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < KC; kc++) {
      u32_t a[4];
      tc_load_a<P>(a, Ks, 16 * warp, kc);
      tc_mma_abt<T, P, NQ>(st, a, Qs, kc);  // S^T = K Q^T
      tc_load_a<P>(a, Vs, 16 * warp, kc);
      tc_mma_abt<T, P, NQ>(dpt, a, Gs, kc);  // dP^T = V dO^T
    }
    const bool full = s0 + BQ <= L.S && k0 + BK <= L.T && (!L.causal || k0 + BK - 1 <= L.past + s0) &&
                      (L.window < 0 || L.past + s0 + BQ - 1 - k0 < L.window);
    u32_t pa[NQ / 2][4], da[NQ / 2][4];
#pragma unroll
    for (int j = 0; j < NQ; j++) {
      float wp[4], wd[4];
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int qc = 8 * j + 2 * c + (e & 1);
        const i64_t t = tr + 8 * (e >> 1), s = s0 + qc;
        const bool ok = full || (s < L.S && t < L.T && visible(L, L.past + s, t));
        const float p = ok ? exp2f(fmaf(st[j][e], scale2, -ls[qc])) : 0.f;
        wp[e] = p;
        wd[e] = p * (dpt[j][e] - dl[qc]) * scale;
      }
      tc_pack_c_to_a<T, NQ / 2>(pa, j, wp);
      tc_pack_c_to_a<T, NQ / 2>(da, j, wd);
    }
    tc_mma_ab<T, P, NQ / 2, NO>(dv, pa, Gs);  // dV += P^T dO
    tc_mma_ab<T, P, NQ / 2, NO>(dk, da, Qs);  // dK += dS^T Q
  }

  const i64_t base = (b * L.KV + kvh) * L.T;
#pragma unroll
  for (int kr = 0; kr < 2; kr++) {
    const i64_t t = tr + 8 * kr;
    if (t >= L.T) continue;
#pragma unroll
    for (int n = 0; n < NO; n++) {
      const int col = 8 * n + 2 * c;
      gk[(base + t) * D + col] = (u16_t)T::store(dk[n][2 * kr]);
      gk[(base + t) * D + col + 1] = (u16_t)T::store(dk[n][2 * kr + 1]);
      gv[(base + t) * D + col] = (u16_t)T::store(dv[n][2 * kr]);
      gv[(base + t) * D + col + 1] = (u16_t)T::store(dv[n][2 * kr + 1]);
    }
  }
}

#define MOPT_DEF_ATTN_TC_BWD(T, D)                                                                                    \
  extern "C" __global__ void __launch_bounds__(MOPT_TCB_THREADS) attn_bwd_dq_tc_##T##_d##D(AttnLayout L,            \
      double scale, dt::T::S* gq, const dt::T::S* q, const dt::T::S* k, const dt::T::S* v, const dt::T::S* g,      \
      const float* lse, const float* delta) {                                                                       \
    attn_bwd_dq_tc_body<dt::T, D>(L, (float)scale, gq, q, k, v, g, lse, delta);                                     \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(MOPT_TCB_THREADS) attn_bwd_dkv_tc_##T##_d##D(AttnLayout L,           \
      double scale, dt::T::S* gk, dt::T::S* gv, const dt::T::S* q, const dt::T::S* k, const dt::T::S* v,           \
      const dt::T::S* g, const float* lse, const float* delta) {                                                    \
    attn_bwd_dkv_tc_body<dt::T, D>(L, (float)scale, gk, gv, q, k, v, g, lse, delta);                                \
  }
// Must match src/backend/cuda/fused-kernels.ts TC_DTYPES x TC_DIMS.
MOPT_TC_ALL(MOPT_DEF_ATTN_TC_BWD)
