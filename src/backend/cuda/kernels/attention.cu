// Attention forward (src/backend/cpu/fused.ts attentionCpu): out = softmax(q k^T * scale + mask) v with
// grouped KV heads, and lse (float32) per query row. Three paths, picked by src/backend/cuda/fused-attention.ts:
//
// - attn_fwd (prefill / training): FlashAttention-2 style. One CTA of 128 threads per (64-query tile,
//   head, batch); key tiles are staged in shared memory as float and the softmax runs online, so memory
//   is linear in the sequence. Each thread owns 4 query rows x (BK/8 keys | DP/8 output columns).
// - attn_decode + attn_combine (few query rows, e.g. S = 1 against a KV cache): one CTA per
//   (KV head, batch, group of 8 query rows sharing that KV head, key split); its 4 warps take 32-key
//   blocks in turn (one key per lane for q.k, 32 output columns per lane-stride for p.v), merge their
//   online-softmax states in shared memory and write per-split partials that attn_combine merges.
// - attn_fwd_generic (float64, head dim > 128): one warp per query row, exact but slow.
//
// Numerics: float32 accumulation (float64 for float64). The CPU rounds the normalised probabilities to
// q's dtype before P.V; a single-pass kernel does not know the normaliser yet, so it rounds the
// unnormalised exp(s - running max) instead (as FlashAttention does) and divides by the float32 sum at
// the end. For float32 and float64 nothing changes; for 16-bit dtypes each probability can differ from
// the CPU's by one rounding of that dtype. Rows with no visible key give 0 and lse = -inf, as on the CPU.
#include "attention.cuh"

#define MOPT_ATT_THREADS 128

/** Tile sizes of attn_fwd by padded head dim (fused-attention.ts fwdShared mirrors them). */
template <int DP> struct FwdTile { enum { BQ = 64, BK = DP == 128 ? 32 : 64 }; };

template <class T, int DP>
MOPT_DEV void attn_fwd_body(const AttnLayout& L, float scale, typename T::S* out, float* lse, const typename T::S* q,
                            const typename T::S* k, const typename T::S* v) {
  constexpr int BQ = FwdTile<DP>::BQ, BK = FwdTile<DP>::BK, TM = 16, TN = 8, NT = MOPT_ATT_THREADS;
  constexpr int RM = BQ / TM, RS = BK / TN, RG = DP / (4 * TN), LD = DP + 4, LP = BK + 4;
  float* Qs = reinterpret_cast<float*>(fused_smem);  // [BQ][LD]
  float* Ks = Qs + BQ * LD;                           // [BK][LD]
  float* Vs = Ks + BK * LD;                           // [BK][LD]
  float* Ps = Vs + BK * LD;                           // [BQ][LP]
  const int tn = threadIdx.x % TN, tm = threadIdx.x / TN, d = (int)L.D;
  const float NEG_INF = -m_inf(0.f);
  // the last query tiles see the most keys under a causal mask: start them first
  const i64_t q0 = ((L.S + BQ - 1) / BQ - 1 - blockIdx.x) * BQ;
  const i64_t h = blockIdx.y, b = blockIdx.z, kvh = h / (L.H / L.KV);
  const i64_t rows = L.S - q0 < BQ ? L.S - q0 : BQ;
  const typename T::S* kb = k + b * L.k_sb + kvh * L.k_sh;
  const typename T::S* vb = v + b * L.v_sb + kvh * L.v_sh;
  load_tile<T, BQ, DP, NT>(Qs, q + b * L.q_sb + h * L.q_sh, L.q_ss, q0, L.S, d);

  float o[RM][4 * RG], m[RM], l[RM];
#pragma unroll
  for (int i = 0; i < RM; i++) {
    m[i] = NEG_INF;
    l[i] = 0.f;
#pragma unroll
    for (int c = 0; c < 4 * RG; c++) o[i][c] = 0.f;
  }
  const i64_t lo = first_key(L, L.past + q0), hi = end_key(L, L.past + q0 + rows - 1);
  for (i64_t t0 = lo - lo % BK; t0 < hi; t0 += BK) {
    __syncthreads();  // readers of the previous tile are done with Ks, Vs, Ps
    load_tile<T, BK, DP, NT>(Ks, kb, L.k_st, t0, L.T, d);
    load_tile<T, BK, DP, NT>(Vs, vb, L.v_st, t0, L.T, d);
    __syncthreads();
    float s[RM][RS];
#pragma unroll
    for (int i = 0; i < RM; i++)
#pragma unroll
      for (int j = 0; j < RS; j++) s[i][j] = 0.f;
    tile_nt<RM, RS, DP, TM, TN>(s, Qs, LD, tm, Ks, LD, tn);
#pragma unroll
    for (int i = 0; i < RM; i++) {
      const i64_t qpos = L.past + q0 + tm + i * TM;
      float mx = NEG_INF;
#pragma unroll
      for (int j = 0; j < RS; j++) {
        const i64_t t = t0 + tn + j * TN;
        s[i][j] = t < L.T && visible(L, qpos, t) ? s[i][j] * scale : NEG_INF;
        mx = s[i][j] > mx ? s[i][j] : mx;
      }
      mx = group_max<TN>(mx);  // the 8 lanes of a row are consecutive
      const float mn = m[i] > mx ? m[i] : mx;
      const float alpha = mn == NEG_INF ? 1.f : expf(m[i] - mn);
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < RS; j++) {
        const float p = s[i][j] == NEG_INF ? 0.f : expf(s[i][j] - mn);
        sum += p;
        Ps[(tm + i * TM) * LP + tn + j * TN] = round_to<T>(p);
      }
      l[i] = l[i] * alpha + sum;  // a per-thread partial; alpha is the same on the row's 8 lanes
      m[i] = mn;
#pragma unroll
      for (int c = 0; c < 4 * RG; c++) o[i][c] *= alpha;
    }
    __syncthreads();
    tile_nn<RM, RG, BK, TM, TN>(o, Ps, LP, tm, Vs, LD, tn);
  }

  const i64_t bh = b * L.H + h;
#pragma unroll
  for (int i = 0; i < RM; i++) {
    const float sum = group_sum<TN>(l[i]);
    const i64_t row = q0 + tm + i * TM;
    if (row >= L.S) continue;
    typename T::S* orow = out + (bh * L.S + row) * L.D;
#pragma unroll
    for (int g = 0; g < RG; g++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int c = 4 * tn + 4 * TN * g + e;
        if (c < d) orow[c] = T::store(sum > 0.f ? o[i][4 * g + e] / sum : 0.f);
      }
    if (tn == 0) lse[bh * L.S + row] = sum > 0.f ? m[i] + logf(sum) : NEG_INF;
  }
}

/**
 * Keys (or values) t0 .. t0 + 31 of a [T, d] matrix (row stride st) into dst[32][DP + 4] as float, zero
 * beyond t_end and d: one warp. A decode step is latency-bound, so for 16-bit dtypes with whole aligned
 * rows every lane issues all its 16-byte loads (DP / 8 of them) before converting any.
 */
template <class T, int DP>
MOPT_DEV void decode_load_block(float* dst, const typename T::S* src, i64_t st, i64_t t0, i64_t t_end, int d, int lane) {
  constexpr int LD = DP + 4, CPR = DP / 8;  // 16-byte chunks per row = chunks per lane
  if (sizeof(typename T::S) == 2 && d == DP && st % 8 == 0 && ((u64_t)src & 15) == 0) {
    U4 raw[CPR];
#pragma unroll
    for (int j = 0; j < CPR; j++) {
      const int e = lane + 32 * j, r = e / CPR, c = (e % CPR) * 8;
      if (t0 + r < t_end) raw[j] = ld_global16(src + (t0 + r) * st + c);
      else raw[j].w[0] = raw[j].w[1] = raw[j].w[2] = raw[j].w[3] = 0u;
    }
#pragma unroll
    for (int j = 0; j < CPR; j++) {
      const int e = lane + 32 * j, r = e / CPR, c = (e % CPR) * 8;
      float f[8];
      widen8<T>(raw[j], f);
      *reinterpret_cast<F4*>(dst + r * LD + c) = F4{f[0], f[1], f[2], f[3]};
      *reinterpret_cast<F4*>(dst + r * LD + c + 4) = F4{f[4], f[5], f[6], f[7]};
    }
    return;
  }
  for (int e = lane; e < 32 * DP; e += 32) {
    const int kr = e / DP, c = e % DP;
    dst[kr * LD + c] = t0 + kr < t_end && c < d ? load_f<T>(src + (t0 + kr) * st + c) : 0.f;
  }
}

/**
 * Decode: rows of one KV head are (query head, position) pairs, i = (h - kvh*rep) * S + s; this CTA
 * takes rows [8*blockIdx.z, +8) and keys [key_lo + split*split_len, +split_len) ∩ [key_lo, key_hi).
 * part[(row * splits + split) * (D + 2) + {0: max, 1: sum of exp, 2 + c: unnormalised output c}].
 */
template <class T, int DP>
MOPT_DEV void attn_decode_body(const AttnLayout& L, float scale, float* part, const typename T::S* q,
                               const typename T::S* k, const typename T::S* v) {
  constexpr int R = 8, W = MOPT_ATT_THREADS / 32, LD = DP + 4, CG = DP / 32;
  pdl_wait();  // a programmatic dependent in a recorded decode step: q and the KV-cache write must be complete
  pdl_trigger();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, d = (int)L.D;
  const float NEG_INF = -m_inf(0.f);
  float* Qs = reinterpret_cast<float*>(fused_smem);  // [R][LD]
  float* Kw = Qs + R * LD + warp * (32 * LD + R * 32);  // this warp's K (then V) block [32][LD]
  float* Pw = Kw + 32 * LD;                             // this warp's probabilities [R][32]
  const i64_t split = blockIdx.x, b = blockIdx.y / L.KV, kvh = blockIdx.y % L.KV, rep = L.H / L.KV;
  const i64_t nrows = rep * L.S, row0 = (i64_t)blockIdx.z * R;
  for (int e = threadIdx.x; e < R * DP; e += MOPT_ATT_THREADS) {
    const int r = e / DP, c = e % DP;
    const i64_t i = row0 + r;
    float val = 0.f;
    if (i < nrows && c < d) val = load_f<T>(q + b * L.q_sb + (kvh * rep + i / L.S) * L.q_sh + (i % L.S) * L.q_ss + c);
    Qs[r * LD + c] = val;
  }
  const typename T::S* kb = k + b * L.k_sb + kvh * L.k_sh;
  const typename T::S* vb = v + b * L.v_sb + kvh * L.v_sh;
  // splits cover [key_lo, key_hi) as the host saw it; with a device-side past (pastAt) that is the whole
  // cache, and the keys any row can see are narrowed here: unwritten slots past + S .. and the window
  i64_t past = L.past, lo = L.key_lo, hi = L.key_hi;
  if (L.past_at != 0) {
    past = *reinterpret_cast<const int*>(L.past_at);
    hi = past + L.S < hi ? past + L.S : hi;
    if (L.window >= 0 && past - L.window + 1 > lo) lo = past - L.window + 1;
  }
  const i64_t split_begin = L.key_lo + split * L.split_len;
  const i64_t k_begin = split_begin > lo ? split_begin : lo;
  const i64_t k_end = split_begin + L.split_len < hi ? split_begin + L.split_len : hi;
  float o[R][CG], m[R], l[R];
#pragma unroll
  for (int r = 0; r < R; r++) {
    m[r] = NEG_INF;
    l[r] = 0.f;
#pragma unroll
    for (int c = 0; c < CG; c++) o[r][c] = 0.f;
  }
  __syncthreads();
  for (i64_t t0 = k_begin + warp * 32; t0 < k_end; t0 += W * 32) {
    decode_load_block<T, DP>(Kw, kb, L.k_st, t0, k_end, d, lane);
    __syncwarp();
    float s[R];
#pragma unroll
    for (int r = 0; r < R; r++) s[r] = 0.f;
#pragma unroll 4
    for (int c = 0; c < DP; c += 4) {
      const F4 kk = ld4(Kw + lane * LD + c);
#pragma unroll
      for (int r = 0; r < R; r++) {
        const F4 qq = ld4(Qs + r * LD + c);
        s[r] = fmaf(qq.x, kk.x, fmaf(qq.y, kk.y, fmaf(qq.z, kk.z, fmaf(qq.w, kk.w, s[r]))));
      }
    }
    const i64_t t = t0 + lane;
#pragma unroll
    for (int r = 0; r < R; r++) {
      const i64_t i = row0 + r;
      const bool ok = i < nrows && t < k_end && visible(L, past + i % L.S, t);
      const float sc = ok ? s[r] * scale : NEG_INF;
      const float mx = group_max<32>(sc);
      const float mn = m[r] > mx ? m[r] : mx;
      const float alpha = mn == NEG_INF ? 1.f : expf(m[r] - mn);
      const float p = sc == NEG_INF ? 0.f : expf(sc - mn);
      l[r] = l[r] * alpha + p;
      m[r] = mn;
      Pw[r * 32 + lane] = round_to<T>(p);
#pragma unroll
      for (int c = 0; c < CG; c++) o[r][c] *= alpha;
    }
    __syncwarp();  // every lane is done reading K: the block now takes V
    decode_load_block<T, DP>(Kw, vb, L.v_st, t0, k_end, d, lane);
    __syncwarp();
#pragma unroll 2
    for (int kk = 0; kk < 32; kk += 4) {
#pragma unroll
      for (int r = 0; r < R; r++) {
        const F4 p = ld4(Pw + r * 32 + kk);
#pragma unroll
        for (int c = 0; c < CG; c++) {
          const float* vc = Kw + kk * LD + lane + 32 * c;
          o[r][c] = fmaf(p.x, vc[0], fmaf(p.y, vc[LD], fmaf(p.z, vc[2 * LD], fmaf(p.w, vc[3 * LD], o[r][c]))));
        }
      }
    }
    __syncwarp();  // before the next block overwrites Kw and Pw
  }
#pragma unroll
  for (int r = 0; r < R; r++) l[r] = warp_sum(l[r]);
  __syncthreads();  // every warp is done with its block: the merge buffers below reuse that memory
  float* Ow = Qs + R * LD;   // [W][R][DP]
  float* Mw = Ow + W * R * DP;  // [W][R]
  float* Lw = Mw + W * R;       // [W][R]
#pragma unroll
  for (int r = 0; r < R; r++) {
#pragma unroll
    for (int c = 0; c < CG; c++) Ow[(warp * R + r) * DP + lane + 32 * c] = o[r][c];
    if (lane == 0) Mw[warp * R + r] = m[r], Lw[warp * R + r] = l[r];
  }
  __syncthreads();
  const i64_t splits = gridDim.x;
  for (int e = threadIdx.x; e < R * DP; e += MOPT_ATT_THREADS) {
    const int r = e / DP, c = e % DP;
    const i64_t i = row0 + r;
    if (i >= nrows || c >= d) continue;
    float mm = NEG_INF;
    for (int w = 0; w < W; w++) mm = Mw[w * R + r] > mm ? Mw[w * R + r] : mm;
    float os = 0.f, ls = 0.f;
    if (mm != NEG_INF)
      for (int w = 0; w < W; w++) {
        const float f = expf(Mw[w * R + r] - mm);
        os += Ow[(w * R + r) * DP + c] * f;
        ls += Lw[w * R + r] * f;
      }
    const i64_t row = (b * L.H + kvh * rep + i / L.S) * L.S + i % L.S;
    float* pr = part + (row * splits + split) * (L.D + 2);
    pr[2 + c] = os;
    if (c == 0) pr[0] = mm, pr[1] = ls;
  }
}

/** Merges the decode splits of every row: out = sum o_z e^(m_z - M) / sum l_z e^(m_z - M), lse = M + log(l). */
template <class T>
MOPT_DEV void attn_combine_body(const AttnLayout& L, typename T::S* out, float* lse, const float* part, i64_t splits) {
  pdl_trigger();  // the decode step's o_proj GEMV may start prefetching its weights
  pdl_wait();     // every split's partial state must be written
  const float NEG_INF = -m_inf(0.f);
  const u64_t d = (u64_t)L.D, n = (u64_t)(L.B * L.H * L.S) * d, w = d + 2;
  for (u64_t e = global_thread(); e < n; e += global_threads()) {
    const u64_t row = div_index(e, d), c = e - row * d;
    const float* pr = part + row * splits * w;
    float mm = NEG_INF;
    for (i64_t z = 0; z < splits; z++) mm = pr[z * w] > mm ? pr[z * w] : mm;
    float os = 0.f, ls = 0.f;
    if (mm != NEG_INF)
      for (i64_t z = 0; z < splits; z++) {
        const float f = expf(pr[z * w] - mm);
        os += pr[z * w + 2 + c] * f;
        ls += pr[z * w + 1] * f;
      }
    out[e] = T::store(ls > 0.f ? os / ls : 0.f);
    if (c == 0) lse[row] = ls > 0.f ? mm + logf(ls) : NEG_INF;
  }
}

/** One warp per query row; dynamic shared memory holds each warp's q row and output row (2 * D of A). */
template <class T>
MOPT_DEV void attn_fwd_generic_body(const AttnLayout& L, double scale, typename T::S* out, float* lse,
                                    const typename T::S* q, const typename T::S* k, const typename T::S* v) {
  typedef typename Acc<T>::type A;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const i64_t D = L.D, rows = L.B * L.H * L.S, rep = L.H / L.KV;
  A* qs = reinterpret_cast<A*>(fused_smem) + warp * 2 * D;
  A* os = qs + D;  // lane c % 32 alone touches column c of qs and os: no barriers needed
  for (i64_t row = (i64_t)blockIdx.x * warps + warp; row < rows; row += (i64_t)gridDim.x * warps) {
    const i64_t s = row % L.S, h = (row / L.S) % L.H, b = row / (L.S * L.H);
    const typename T::S* qr = q + b * L.q_sb + h * L.q_sh + s * L.q_ss;
    const typename T::S* kb = k + b * L.k_sb + (h / rep) * L.k_sh;
    const typename T::S* vb = v + b * L.v_sb + (h / rep) * L.v_sh;
    for (i64_t c = lane; c < D; c += 32) qs[c] = T::load(qr[c]), os[c] = A(0);
    const i64_t qpos = L.past + s;
    A mm = -m_inf(A(0)), l = A(0);
    for (i64_t t = first_key(L, qpos); t < end_key(L, qpos); t++) {
      if (!visible(L, qpos, t)) continue;
      A dot = A(0);
      for (i64_t c = lane; c < D; c += 32) dot += qs[c] * (A)T::load(kb[t * L.k_st + c]);
      const A sc = warp_sum(dot) * (A)scale;
      const A mn = sc > mm ? sc : mm;
      const A alpha = m_exp(mm - mn), p = m_exp(sc - mn);
      l = l * alpha + p;
      mm = mn;
      const A pr = round_to<T>(p);
      for (i64_t c = lane; c < D; c += 32) os[c] = os[c] * alpha + pr * (A)T::load(vb[t * L.v_st + c]);
    }
    for (i64_t c = lane; c < D; c += 32) out[row * D + c] = T::store(l > A(0) ? os[c] / l : A(0));
    if (lane == 0) lse[row] = l > A(0) ? (float)(mm + m_log(l)) : -m_inf(0.f);
  }
}

#define MOPT_DEF_ATTN_FLASH(T, D)                                                                                   \
  extern "C" __global__ void __launch_bounds__(MOPT_ATT_THREADS) attn_fwd_##T##_d##D(AttnLayout L, double scale,   \
      dt::T::S* out, float* lse, const dt::T::S* q, const dt::T::S* k, const dt::T::S* v) {                        \
    attn_fwd_body<dt::T, D>(L, (float)scale, out, lse, q, k, v);                                                    \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(MOPT_ATT_THREADS) attn_decode_##T##_d##D(AttnLayout L,              \
      double scale, float* part, const dt::T::S* q, const dt::T::S* k, const dt::T::S* v) {                        \
    attn_decode_body<dt::T, D>(L, (float)scale, part, q, k, v);                                                     \
  }
MOPT_FLASH_ALL(MOPT_DEF_ATTN_FLASH)

#define MOPT_DEF_ATTN_GENERIC(T)                                                                                    \
  extern "C" __global__ void __launch_bounds__(MOPT_ATT_THREADS) attn_combine_##T(AttnLayout L, dt::T::S* out,     \
      float* lse, const float* part, i64_t splits) {                                                                \
    attn_combine_body<dt::T>(L, out, lse, part, splits);                                                            \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(MOPT_ATT_THREADS) attn_fwd_generic_##T(AttnLayout L, double scale,  \
      dt::T::S* out, float* lse, const dt::T::S* q, const dt::T::S* k, const dt::T::S* v) {                        \
    attn_fwd_generic_body<dt::T>(L, scale, out, lse, q, k, v);                                                      \
  }
MOPT_FUSED_DTYPES(MOPT_DEF_ATTN_GENERIC)
