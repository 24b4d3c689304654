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
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16", 16-bit types), g = lane >> 2,
// c = lane & 3; the lower 16 bits of a .b32 register hold the element with the smaller column/row index:
//   A 16x16: a0 = (g, 2c..2c+1), a1 = (g+8, 2c..), a2 = (g, 2c+8..), a3 = (g+8, 2c+8..)
//   B 16x8:  b0 = (k 2c..2c+1, n g), b1 = (k 2c+8..2c+9, n g)
//   C 16x8:  c0,c1 = (g, 2c), (g, 2c+1); c2,c3 = (g+8, 2c), (g+8, 2c+1)
// Numerics match attn_fwd: float32 accumulation (the mma accumulates in float32), scores scaled in float32,
// probabilities rounded once to T before P.V, the row sum taken over the unrounded float32 probabilities.
// Requires sm_80 or newer (the host only picks it there).
#include "attention.cuh"

#define MOPT_TC_THREADS 128

template <class T> struct TcMma;
template <> struct TcMma<dt::bf16> {
  MOPT_DEV void mma(float (&d)[4], const u32_t (&a)[4], u32_t b0, u32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};
template <> struct TcMma<dt::f16> {
  MOPT_DEV void mma(float (&d)[4], const u32_t (&a)[4], u32_t b0, u32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

MOPT_DEV u32_t tc_pack(u16_t lo, u16_t hi) { return (u32_t)lo | ((u32_t)hi << 16); }

/** Shared-memory pitch (in 16-bit elements) of the K and V tiles [BK][P]: rows 16-byte aligned, and the 8
 * rows one fragment load or ldmatrix phase touches start in distinct bank quads. */
template <int D> struct TcTile {
  enum { BQ = 64, BK = 64, P = D + 8, TILE = BK * P };
};

/** Shared-window address of a shared-memory pointer (for cp.async and ldmatrix). */
MOPT_DEV u32_t tc_smem_addr(const void* p) {
  u32_t a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  return a;
}
/** 16 bytes global -> shared, asynchronously; only the first `bytes` (0 or 16) are read, the rest zero-filled. */
MOPT_DEV void tc_cp_async16(void* dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(tc_smem_addr(dst)), "l"(src), "r"(bytes) : "memory");
}
MOPT_DEV void tc_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/** Waits until at most one committed group of this thread is still in flight. */
MOPT_DEV void tc_cp_async_wait1() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }
/**
 * ldmatrix.x4.trans: lane l names row l % 8 of 8x8 matrix l / 8 (8 contiguous halves at `row`); register m
 * gets matrix m transposed: halves (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4), low first.
 */
MOPT_DEV void tc_ldmatrix_x4_trans(u32_t (&r)[4], const u16_t* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(tc_smem_addr(row))
               : "memory");
}

/**
 * Starts staging keys [t0, t0 + BK) of K and V row-major into Ks, Vs as raw 16-bit words, rows beyond T
 * zero. `vec`: every row is 16-byte aligned (base and row stride), so cp.async moves 8 halves at a time;
 * otherwise plain 2-byte loads (synchronous). Either way the caller commits, waits and syncs.
 */
template <int D>
MOPT_DEV void tc_load_kv(u16_t* Ks, u16_t* Vs, const u16_t* kb, const u16_t* vb, i64_t k_st, i64_t v_st, i64_t t0,
                         i64_t T, bool vec) {
  constexpr int BK = TcTile<D>::BK, P = TcTile<D>::P, C8 = D / 8;
  if (vec) {
#pragma unroll
    for (int e = threadIdx.x; e < BK * C8; e += MOPT_TC_THREADS) {
      const int r = e / C8, c = (e % C8) * 8;
      const i64_t t = t0 + r;
      const bool ok = t < T;
      // a row past T reads nothing (src-size 0) but still needs a valid address: row 0 of the view
      tc_cp_async16(Ks + r * P + c, kb + (ok ? t : 0) * k_st + c, ok ? 16 : 0);
      tc_cp_async16(Vs + r * P + c, vb + (ok ? t : 0) * v_st + c, ok ? 16 : 0);
    }
  } else {
#pragma unroll 4
    for (int e = threadIdx.x; e < BK * D; e += MOPT_TC_THREADS) {
      const int r = e / D, c = e % D;
      const i64_t t = t0 + r;
      Ks[r * P + c] = t < T ? kb[t * k_st + c] : (u16_t)0;
      Vs[r * P + c] = t < T ? vb[t * v_st + c] : (u16_t)0;
    }
  }
}

template <class T, int D>
MOPT_DEV void attn_fwd_tc_body(const AttnLayout& L, float scale, u16_t* out, float* lse, const u16_t* q,
                               const u16_t* k, const u16_t* v) {
  constexpr int BQ = TcTile<D>::BQ, BK = TcTile<D>::BK, P = TcTile<D>::P, TILE = TcTile<D>::TILE;
  constexpr int KC = D / 16, NS = BK / 8, NO = D / 8;
  // two stages of {K [BK][P], V [BK][P]} (fused-attention.ts tcShared mirrors this)
  u16_t* const smem = reinterpret_cast<u16_t*>(fused_smem);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, c = lane & 3;
  const float NEG_INF = -m_inf(0.f);
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
  {
    const u16_t* qb = q + b * L.q_sb + h * L.q_sh;
    const bool ok0 = r0 < L.S, ok1 = r0 + 8 < L.S;
    const u16_t* q0p = qb + (ok0 ? r0 : 0) * L.q_ss;
    const u16_t* q1p = qb + (ok1 ? r0 + 8 : 0) * L.q_ss;
#pragma unroll
    for (int kc = 0; kc < KC; kc++) {
      const int col = 16 * kc + 2 * c;
      qa[kc][0] = ok0 ? tc_pack(q0p[col], q0p[col + 1]) : 0u;
      qa[kc][1] = ok1 ? tc_pack(q1p[col], q1p[col + 1]) : 0u;
      qa[kc][2] = ok0 ? tc_pack(q0p[col + 8], q0p[col + 9]) : 0u;
      qa[kc][3] = ok1 ? tc_pack(q1p[col + 8], q1p[col + 9]) : 0u;
    }
  }

  float o[NO][4], m[2] = {NEG_INF, NEG_INF}, l[2] = {0.f, 0.f};
#pragma unroll
  for (int n = 0; n < NO; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;

  const i64_t p0 = L.past + r0;  // absolute positions of this thread's rows: p0, p0 + 8
  const i64_t lo = first_key(L, L.past + q0), hi = end_key(L, L.past + q0 + rows - 1);
  const i64_t first = lo - lo % BK;
  if (first < hi) tc_load_kv<D>(smem, smem + TILE, kb, vb, L.k_st, L.v_st, first, L.T, vec);
  tc_cp_async_commit();
  int stage = 0;
#pragma unroll 1
  for (i64_t t0 = first; t0 < hi; t0 += BK, stage ^= 1) {
    const u16_t* Ks = smem + stage * 2 * TILE;
    const u16_t* Vs = Ks + TILE;
    __syncthreads();  // every warp is done reading the previous tile: its stage takes the next one
    if (t0 + BK < hi) tc_load_kv<D>(smem + (stage ^ 1) * 2 * TILE, smem + (stage ^ 1) * 2 * TILE + TILE, kb, vb, L.k_st,
                                    L.v_st, t0 + BK, L.T, vec);
    tc_cp_async_commit();  // possibly empty: the wait below always leaves exactly the newest group in flight
    tc_cp_async_wait1();   // this thread's copies of tile t0 have landed
    __syncthreads();       // ... and everyone's

    float s[NS][4];
#pragma unroll
    for (int j = 0; j < NS; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < KC; kc++)
#pragma unroll
      for (int j = 0; j < NS; j++) {
        const u16_t* kr = Ks + (8 * j + g) * P + 16 * kc + 2 * c;
        TcMma<T>::mma(s[j], qa[kc], *reinterpret_cast<const u32_t*>(kr), *reinterpret_cast<const u32_t*>(kr + 8));
      }

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
        s[j][e] = ok ? s[j][e] * scale : NEG_INF;
        mx[hr] = s[j][e] > mx[hr] ? s[j][e] : mx[hr];
      }
    float alpha[2];
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
      const float tm = group_max<4>(mx[hr]);  // a row's 4 lanes are consecutive (one quad)
      const float mn = m[hr] > tm ? m[hr] : tm;
      alpha[hr] = mn == NEG_INF ? 1.f : expf(m[hr] - mn);
      m[hr] = mn;
    }
    // probabilities, packed as A fragments of P (16 rows x 16 keys per kk)
    u32_t pa[NS / 2][4];
    float sum[2] = {0.f, 0.f};
#pragma unroll
    for (int j = 0; j < NS; j++) {
      u16_t w[4];
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int hr = e >> 1;
        const float p = s[j][e] == NEG_INF ? 0.f : expf(s[j][e] - m[hr]);
        sum[hr] += p;
        w[e] = (u16_t)T::store(p);
      }
      // S block j covers keys 8j..8j+7: the low (j even) or high (j odd) 8 keys of k16 block j/2
      pa[j / 2][(j & 1) * 2 + 0] = tc_pack(w[0], w[1]);  // row g
      pa[j / 2][(j & 1) * 2 + 1] = tc_pack(w[2], w[3]);  // row g + 8
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
    // B fragments of V (keys 16kk.., columns 8n.. and 8n + 8..): lane l names key 16kk + l % 16, column
    // 8n + 8 (l / 16); matrices 0, 1 are b0, b1 of block n and 2, 3 those of block n + 1
#pragma unroll
    for (int kk = 0; kk < NS / 2; kk++)
#pragma unroll
      for (int n = 0; n < NO; n += 2) {
        u32_t vf[4];
        tc_ldmatrix_x4_trans(vf, Vs + (16 * kk + (lane & 15)) * P + 8 * n + 8 * (lane >> 4));
        TcMma<T>::mma(o[n], pa[kk], vf[0], vf[1]);
        TcMma<T>::mma(o[n + 1], pa[kk], vf[2], vf[3]);
      }
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
    if (c == 0) lse[bh * L.S + row] = tot > 0.f ? m[hr] + logf(tot) : NEG_INF;
  }
}

#define MOPT_DEF_ATTN_TC(T, D)                                                                                      \
  extern "C" __global__ void __launch_bounds__(MOPT_TC_THREADS) attn_fwd_tc_##T##_d##D(AttnLayout L, double scale, \
      dt::T::S* out, float* lse, const dt::T::S* q, const dt::T::S* k, const dt::T::S* v) {                        \
    attn_fwd_tc_body<dt::T, D>(L, (float)scale, out, lse, q, k, v);                                                 \
  }
// Must match src/backend/cuda/fused-kernels.ts TC_DTYPES x TC_DIMS.
#define MOPT_TC_ALL(X) X(f16, 64) X(bf16, 64) X(f16, 128) X(bf16, 128)
MOPT_TC_ALL(MOPT_DEF_ATTN_TC)
