// Tensor-core attention forward for float16/bfloat16 with head dim 64 or 128 (prefill: picked by
// src/backend/cuda/fused-attention.ts when rep * S > 16; decode, float32, other head dims and the
// backward stay on attention.cu / attention_bwd.cu). Same contract as attn_fwd in attention.cu: layout
// (attention.cuh AttnLayout), mask (causal, sliding window, past offset), GQA, strided K/V rows, lse in
// float32, rows with no visible key -> 0 and lse = -inf.
//
// One CTA of 4 warps per (64-query tile, head, batch); warp w owns query rows 16w..16w+15 of the tile.
// Q lives in registers as mma A fragments for the whole kernel. Per key tile of 64:
//   S = Q K^T  with mma.sync.m16n8k16 (A = Q row-major, B = K^T: column n of B is key row n of K, so a
//              B fragment is two adjacent halves of a K row in shared memory);
//   online softmax on the S accumulators in float32 (each row's 64 scores sit on the 4 lanes of a quad);
//   O += P V   with P rounded to T (unnormalised, as attn_fwd does) and re-packed from the S accumulator
//              layout straight into A fragments (the C layout of two n8 blocks is the A layout of one k16
//              block); V stays row-major and its B fragments come from ldmatrix.trans.
// K and V tiles are double-buffered: tile i + 1 is fetched with cp.async (16-byte copies, zero-filled past
// T) while tile i is computed. Views whose rows are not 16-byte aligned fall back to plain 2-byte loads.
// Fragment layouts and the mma helpers: attention_tc.cuh.
// Numerics as attn_fwd: float32 accumulation (the mma accumulates in float32), scores scaled in float32,
// probabilities rounded once to T before P.V, the row sum taken over the unrounded float32 probabilities;
// the softmax runs in base 2 (scores times scale * log2(e), exp2f), which differs from expf by float32
// rounding only. (Two m16 tiles per warp, so that each K/V fragment feeds two mma, measured slower on the
// H200 at head dim 64: 255 registers, a spill, and half the resident warps.)
// Requires sm_80 or newer (the host only picks it there).
#include "attention_tc.cuh"

template <class T, int D>
MOPT_DEV void attn_fwd_tc_body(const AttnLayout& L, float scale, u16_t* out, float* lse, const u16_t* q,
                               const u16_t* k, const u16_t* v) {
  constexpr int BQ = TcTile<D>::BQ, BK = TcTile<D>::BK, P = TcTile<D>::P, TILE = TcTile<D>::TILE;
  constexpr int KC = D / 16, NS = BK / 8, NO = D / 8;
  // two stages of {K [BK][P], V [BK][P]} (fused-attention.ts tcShared mirrors this)
  u16_t* const smem = reinterpret_cast<u16_t*>(fused_smem);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, c = lane & 3;
  const float NEG_INF = -m_inf(0.f);
  const float scale2 = scale * TC_LOG2E;  // scores in the log2 domain: exp2f is one MUFU op, expf a dozen
  // the last query tiles see the most keys under a causal mask: start them first
  const i64_t q0 = ((L.S + BQ - 1) / BQ - 1 - blockIdx.x) * BQ;
  const i64_t h = blockIdx.y, b = blockIdx.z, kvh = h / (L.H / L.KV);
  const i64_t rows = L.S - q0 < BQ ? L.S - q0 : BQ;
  const u16_t* kb = k + b * L.k_sb + kvh * L.k_sh;
  const u16_t* vb = v + b * L.v_sb + kvh * L.v_sh;
  const bool vec = ((reinterpret_cast<u64_t>(kb) | reinterpret_cast<u64_t>(vb)) & 15u) == 0 && (L.k_st & 7) == 0 &&
                   (L.v_st & 7) == 0;

  // this thread's rows of the tile: r0 = q0 + 16 warp + g and r0 + 8
  const i64_t r0 = q0 + 16 * warp + g;
  u32_t qa[KC][4];
  tc_rows_to_a<KC>(qa, q + b * L.q_sb + h * L.q_sh, r0, L.S, L.q_ss);

  float o[NO][4], m[2] = {NEG_INF, NEG_INF}, l[2] = {0.f, 0.f};
#pragma unroll
  for (int n = 0; n < NO; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;

  const i64_t p0 = L.past + r0;  // absolute positions of this thread's rows: p0, p0 + 8
  const i64_t lo = first_key(L, L.past + q0), hi = end_key(L, L.past + q0 + rows - 1);
  const i64_t first = lo - lo % BK;
  if (first < hi) tc_load_kv<D, BK>(smem, smem + TILE, kb, vb, L.k_st, L.v_st, first, L.T, vec);
  tc_cp_async_commit();
  int stage = 0;
#pragma unroll 1
  for (i64_t t0 = first; t0 < hi; t0 += BK, stage ^= 1) {
    const u16_t* Ks = smem + stage * 2 * TILE;
    const u16_t* Vs = Ks + TILE;
    __syncthreads();  // every warp is done reading the previous tile: its stage takes the next one
    if (t0 + BK < hi) tc_load_kv<D, BK>(smem + (stage ^ 1) * 2 * TILE, smem + (stage ^ 1) * 2 * TILE + TILE, kb, vb, L.k_st,
                                    L.v_st, t0 + BK, L.T, vec);
    tc_cp_async_commit();  // possibly empty: the wait below always leaves exactly the newest group in flight
    tc_cp_async_wait1();   // this thread's copies of tile t0 have landed
    __syncthreads();       // ... and everyone's

    float s[NS][4];
#pragma unroll
    for (int j = 0; j < NS; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < KC; kc++) tc_mma_abt<T, P, NS>(s, qa[kc], Ks, kc);

    // mask and scale; the mask test is skipped when every key of the tile is visible from every row
    const i64_t qlo = L.past + q0, qhi = L.past + q0 + BQ - 1;
    const bool full = t0 + BK <= L.T && (!L.causal || t0 + BK - 1 <= qlo) && (L.window < 0 || qhi - t0 < L.window);
    float mx[2] = {NEG_INF, NEG_INF};
#pragma unroll
    for (int j = 0; j < NS; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int hr = e >> 1;  // 0: row r0, 1: row r0 + 8
        const i64_t t = t0 + 8 * j + 2 * c + (e & 1);
        const bool ok = full || (t < L.T && visible(L, p0 + 8 * hr, t));
        s[j][e] = ok ? s[j][e] * scale2 : NEG_INF;
        mx[hr] = s[j][e] > mx[hr] ? s[j][e] : mx[hr];
      }
    float alpha[2];
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
      const float tm = group_max<4>(mx[hr]);  // a row's 4 lanes are consecutive (one quad)
      const float mn = m[hr] > tm ? m[hr] : tm;
      alpha[hr] = mn == NEG_INF ? 1.f : exp2f(m[hr] - mn);
      m[hr] = mn;
    }
    // probabilities, packed as A fragments of P (16 rows x 16 keys per kk)
    u32_t pa[NS / 2][4];
    float sum[2] = {0.f, 0.f};
#pragma unroll
    for (int j = 0; j < NS; j++) {
      float w[4];
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int hr = e >> 1;
        const float p = s[j][e] == NEG_INF ? 0.f : exp2f(s[j][e] - m[hr]);
        sum[hr] += p;
        w[e] = p;
      }
      tc_pack_c_to_a<T, NS / 2>(pa, j, w);
    }
#pragma unroll
    for (int hr = 0; hr < 2; hr++) l[hr] = l[hr] * alpha[hr] + sum[hr];  // per-lane partial; alpha is per row
#pragma unroll
    for (int n = 0; n < NO; n++) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }
    tc_mma_ab<T, P, NS / 2, NO>(o, pa, Vs);  // O += P V
  }

  const i64_t bh = b * L.H + h;
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const float tot = group_sum<4>(l[hr]);
    const i64_t row = r0 + 8 * hr;
    if (row >= L.S) continue;
    u16_t* orow = out + (bh * L.S + row) * D;
#pragma unroll
    for (int n = 0; n < NO; n++) {
      const int col = 8 * n + 2 * c;
      orow[col] = (u16_t)T::store(tot > 0.f ? o[n][2 * hr] / tot : 0.f);
      orow[col + 1] = (u16_t)T::store(tot > 0.f ? o[n][2 * hr + 1] / tot : 0.f);
    }
    if (c == 0) lse[bh * L.S + row] = tot > 0.f ? m[hr] * TC_LN2 + logf(tot) : NEG_INF;
  }
}

#define MOPT_DEF_ATTN_TC(T, D)                                                                                      \
  extern "C" __global__ void __launch_bounds__(MOPT_TC_THREADS) attn_fwd_tc_##T##_d##D(AttnLayout L, double scale, \
      dt::T::S* out, float* lse, const dt::T::S* q, const dt::T::S* k, const dt::T::S* v) {                        \
    attn_fwd_tc_body<dt::T, D>(L, (float)scale, out, lse, q, k, v);                                                 \
  }
// Must match src/backend/cuda/fused-kernels.ts TC_DTYPES x TC_DIMS.
MOPT_TC_ALL(MOPT_DEF_ATTN_TC)
