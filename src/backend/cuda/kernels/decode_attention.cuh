// Phase B of the whole-step decode kernel (decode_step.cu): attention of the step's query over the KV cache,
// with the new key and value written into the cache on the way. While the context is short, one CTA per KV
// head holds all its keys and values in registers (attention_single); else the keys are split over CTAs and
// the splits merged through global memory (attention_phase).
#pragma once
#include "decode_step.cuh"
#include "weight_ring.cuh"

// Query heads per item of the register path (0 = all of a KV head's, one CTA per KV head): 1 spreads a layer's
// attention over H CTAs instead of KV (Llama-3.2-1B: 32 instead of 8), each with a quarter of the scores and
// weighted values, each loading its KV head's keys and values (from L2 after the first). H200, 2026-11-29:
// 736-738 -> 714-715 us a step at 16 tokens of context (attention 5.2 -> 3.5 us a layer), 783 -> 747 at 200.
#ifndef DS_ATTN_HEADS
#define DS_ATTN_HEADS 1
#endif

/** The rotated pair (j, j + half) of x at table row p, as pointwise.cu rope_append_body: float64, one rounding. */
template <class T>
MOPT_DEV void rope_pair(typename T::S x0, typename T::S x1, const typename T::S* cos, const typename T::S* sin, i64_t j,
                        typename T::S& o0, typename T::S& o1) {
  const double c = T::load(cos[j]), sn = T::load(sin[j]);
  const double a = T::load(x0), b = T::load(x1);
  o0 = T::store(a * c - b * sn);
  o1 = T::store(b * c + a * sn);
}

/**
 * Query heads h0 .. h0 + hn - 1 of KV head g's G, rotated at table rows cos / sin, into shared memory as float ([hn][HD]); with
 * kd != nullptr also the head's new key (rotated) and value into the cache rows kd / vd, and with knew !=
 * nullptr into shared memory (the key as stored, the value as float). One loop, every thread's loads issued before its math, so the phase
 * pays one L2 round trip for q, k and v (as two loops it paid two).
 */
template <class T>
MOPT_DEV void rope_qkv_shared(const XVec& qkv, int g, int h0, int hn, int H, int KV, int HD, const typename T::S* cosr, const typename T::S* sinr, float* qs,
                              typename T::S* kd, typename T::S* vd, typename T::S* knew, float* vnew) {
  typedef typename T::S S;
  const int half = HD / 2, G = H / KV;
  if (DS_ATTN_HEADS == 0) h0 = 0, hn = G;  // (the default build's code stays the all-heads code)
  const int nq = hn * half;
  ll_waiting(qkv);
  for (int e = threadIdx.x; e < nq + (kd != nullptr || knew != nullptr ? half : 0); e += DS_THREADS) {
    if (e < nq) {
      const int h = e / half, j = e % half;
      const i64_t x = (i64_t)(g * G + h0 + h) * HD;
      S o0, o1;
      const i64_t at[2] = {x + j, x + j + half};
      u32_t w[2] = {qkv.fetch(at[0]), qkv.fetch(at[1])};
      qkv.ready_all(w, at);
      rope_pair<T>((u16_t)(w[0] & 0xffffu), (u16_t)(w[1] & 0xffffu), cosr, sinr, j, o0, o1);
      qs[h * HD + j] = T::load(o0);
      qs[h * HD + j + half] = T::load(o1);
    } else {
      const int j = e - nq;
      const i64_t kx = (i64_t)H * HD + g * HD, vx = (i64_t)(H + KV) * HD + g * HD;
      const i64_t at[4] = {kx + j, kx + j + half, vx + j, vx + j + half};
      u32_t w[4] = {qkv.fetch(at[0]), qkv.fetch(at[1]), qkv.fetch(at[2]), qkv.fetch(at[3])};
      qkv.ready_all(w, at);
      const u16_t k0 = (u16_t)(w[0] & 0xffffu), k1 = (u16_t)(w[1] & 0xffffu), v0 = (u16_t)(w[2] & 0xffffu), v1 = (u16_t)(w[3] & 0xffffu);
      S o0, o1;
      rope_pair<T>(k0, k1, cosr, sinr, j, o0, o1);
      if (kd != nullptr) kd[j] = o0, kd[j + half] = o1, vd[j] = v0, vd[j + half] = v1;
      if (knew != nullptr) {
        knew[j] = o0, knew[j + half] = o1;
        vnew[j] = T::load(v0), vnew[j + half] = T::load(v1);
      }
    }
  }
}

/**
 * Softmax of G score rows of n (row h at sc + h * stride, warp h): exact maximum over the row, probabilities
 * rounded to T as attention.cu; m_s[h] / l_s[h] get the row's maximum and sum.
 */
template <class T>
MOPT_DEV void softmax_rows(float* sc, int stride, int n, int G, float* m_s, float* l_s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (warp >= G) return;
  float* row = sc + warp * stride;
  float m = -m_inf(0.f);
  for (int i = lane; i < n; i += 32) m = row[i] > m ? row[i] : m;
  m = group_max<32>(m);
  float l = 0.f;
  for (int i = lane; i < n; i += 32) {
    const float p = expf(row[i] - m);
    l += p;
    row[i] = round_to<T>(p);
  }
  l = warp_sum(l);
  if (lane == 0) m_s[warp] = m, l_s[warp] = l;
}

#define DS_KEYS 2     // keys a warp loads at once in the attention's scores
#define DS_VALUES 16  // values a thread loads at once in the attention's weighted sum
/** Phase B for one layer, split over the keys (see the top of the file). smem: [G][HD] rotated q, [G][chunk_max] scores. */
template <class T>
MOPT_DEV void attention_phase(const DsArgs& A, const DsLayer& Ly, int layer, int pos, float* smem, u32_t* ctl, const XVec& qkv, const XVec& out) {
  typedef typename T::S S;
  const float NEG_INF = -m_inf(0.f);
  __shared__ float m_s[DS_WARPS], l_s[DS_WARPS];
  __shared__ int last_s;
  const int HD = (int)A.HD, half = HD / 2, G = (int)A.H / (int)A.KV, splits = (int)A.splits, ctx = pos + 1, cap = (int)A.cap, cmax = (int)A.chunk_max;
  const int chunk = (ctx + splits - 1) / splits;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float scale = __int_as_float((int)A.scale);
  const S* cosr = reinterpret_cast<const S*>(A.cos) + pos * half;
  const S* sinr = reinterpret_cast<const S*>(A.sin) + pos * half;
  S* kc = reinterpret_cast<S*>(Ly.kc);
  S* vc = reinterpret_cast<S*>(Ly.vc);
  float* part = reinterpret_cast<float*>(A.part);
  float* qs = smem;
  float* sc = smem + G * HD;
  for (int item = blockIdx.x; item < (int)A.KV * splits; item += gridDim.x) {
    const int g = item / splits, s = item % splits;
    const int t0 = s * chunk, t1 = t0 + chunk < ctx ? t0 + chunk : ctx;
    // the new key (rotated) and value of this KV head go into the cache at pos by the item holding pos
    const bool has_pos = t0 <= pos && pos < t1;
    rope_qkv_shared<T>(qkv, g, 0, G, (int)A.H, (int)A.KV, HD, cosr, sinr, qs, has_pos ? kc + (i64_t)(g * cap + pos) * HD : nullptr,
                       vc + (i64_t)(g * cap + pos) * HD, nullptr, nullptr);
    csync();
    ll_waited(qkv);
    // scores: one warp per key, lanes over the head dim; a warp's next DS_KEYS keys are loaded before any is
    // used (each load is an L2 round trip of ~1 us while the weight stream runs)
    for (int tb = t0 + warp; tb < t1; tb += DS_WARPS * DS_KEYS) {
      float kv[DS_KEYS][4];
#pragma unroll
      for (int j = 0; j < DS_KEYS; j++) {
        const int t = tb + j * DS_WARPS;
        const S* kr = kc + (i64_t)(g * cap + (t < t1 ? t : t0)) * HD;
#pragma unroll
        for (int u = 0; u < 4; u++) kv[j][u] = lane + 32 * u < HD ? T::load(ld_cg_u16(kr + lane + 32 * u)) : 0.f;
      }
      // the batch's keys x 4 heads at a time: 8 independent warp reductions interleave (one after another
      // they cost ~180 cycles each)
#pragma unroll 1
      for (int h0 = 0; h0 < G; h0 += 4) {
        float d[DS_KEYS][4];
#pragma unroll
        for (int j = 0; j < DS_KEYS; j++)
#pragma unroll
          for (int hh = 0; hh < 4; hh++) {
            d[j][hh] = 0.f;
            if (h0 + hh < G) {
#pragma unroll
              for (int u = 0; u < 4; u++)
                if (lane + 32 * u < HD) d[j][hh] = fmaf(qs[(h0 + hh) * HD + lane + 32 * u], kv[j][u], d[j][hh]);
            }
          }
#pragma unroll
        for (int j = 0; j < DS_KEYS; j++)
#pragma unroll
          for (int hh = 0; hh < 4; hh++)
            if (h0 + hh < G) d[j][hh] = warp_sum(d[j][hh]);  // uniform over the warp
#pragma unroll
        for (int j = 0; j < DS_KEYS; j++) {
          const int t = tb + j * DS_WARPS;
#pragma unroll
          for (int hh = 0; hh < 4; hh++)
            if (lane == 0 && t < t1 && h0 + hh < G) sc[(h0 + hh) * cmax + (t - t0)] = d[j][hh] * scale;
        }
      }
    }
    csync();
    softmax_rows<T>(sc, cmax, t1 - t0, G, m_s, l_s);
    csync();
    for (int e = threadIdx.x; e < G * HD; e += DS_THREADS) {
      const int h = e / HD, c = e % HD;
      const float* p = sc + h * cmax;
      const S* vcol = vc + (i64_t)g * cap * HD + c;
      float o = 0.f;
      // loads in batches of DS_VALUES before their use: the cg loads are volatile asm, issued in program order
      for (int tb = t0; tb < t1; tb += DS_VALUES) {
        u16_t vv[DS_VALUES];
#pragma unroll
        for (int u = 0; u < DS_VALUES; u++) vv[u] = tb + u < t1 ? ld_cg_u16(vcol + (i64_t)(tb + u) * HD) : (u16_t)0;
#pragma unroll
        for (int u = 0; u < DS_VALUES; u++) {
          if (tb + u >= t1) break;
          o = fmaf(p[tb + u - t0], T::load(vv[u]), o);
        }
      }
      float* pr = part + ((g * G + h) * splits + s) * (HD + 2);
      pr[2 + c] = o;
      if (c == 0) pr[0] = t1 > t0 ? m_s[h] : NEG_INF, pr[1] = t1 > t0 ? l_s[h] : 0.f;
    }
    __threadfence();
    csync();
    // the counters run over the whole launch (the last CTA resets them at its end)
    if (threadIdx.x == 0) last_s = atomicAdd(ctl + DS_CTL_ATTN + g, 1u) == (u32_t)((layer + 1) * splits - 1);
    csync();
    if (last_s) {
      // every split of this KV head is written: merge them (attention.cu attn_combine_body)
      __threadfence();
      for (int e = threadIdx.x; e < G * HD; e += DS_THREADS) {
        const int h = e / HD, c = e % HD;
        const float* pr = part + (g * G + h) * splits * (HD + 2);
        float mm = NEG_INF, os = 0.f, ls = 0.f;
        // batches of 8 splits, every load of a batch issued before any is used
        for (int z0 = 0; z0 < splits; z0 += 8) {
          float mz[8], lz[8], oz[8];
#pragma unroll
          for (int u = 0; u < 8; u++) {
            const float* q = pr + (z0 + u < splits ? z0 + u : z0) * (HD + 2);
            mz[u] = ld_cg_f32(q), lz[u] = ld_cg_f32(q + 1), oz[u] = ld_cg_f32(q + 2 + c);
          }
#pragma unroll
          for (int u = 0; u < 8; u++) {
            if (z0 + u >= splits || mz[u] == NEG_INF) continue;
            // online merge: rescale what is summed so far when this split's maximum is larger
            if (mz[u] > mm) {
              const float f = mm == NEG_INF ? 0.f : expf(mm - mz[u]);
              os *= f, ls *= f, mm = mz[u];
            }
            const float f = expf(mz[u] - mm);
            os += oz[u] * f, ls += lz[u] * f;
          }
        }
        out.put((g * G + h) * HD + c, T::store(ls > 0.f ? os / ls : 0.f));
      }
    }
    csync();  // the shared buffers are reused by the next item
  }
}

// Keys (and values) a warp of attention_single holds in registers at head dim 64 (half at 128): the path
// covers contexts up to DS_WARPS times this (16: 240 keys). 32 covers 480 keys, past the 272 that
// bench/run.sh's decode reaches, but made a short-context step slower on the H200 (980 against 966 us; with
// one-head items 750 against 720, and as a second instantiation for 241-480 keys only, its spills cost every
// step 65 us while it saved 5 at 240-272 keys).
#ifndef DS_ATTN_KEYS
#define DS_ATTN_KEYS 16
#endif

/**
 * Phase B for KV head g's query heads h0 .. h0 + hn - 1 in one CTA, every key and value in registers. Scores: W lanes per key, lane l of
 * warp w holding key w + DS_WARPS * (l / W) whole (its head dims 64 (l % W) .. + 63), so a score is one lane's
 * FMA chain (plus one shuffle at W = 2), not a warp reduction per key and head: those ran one after another,
 * ~180 cycles each, 4 heads x 16 keys a warp at 240 keys. Weighted values: warp w takes keys w, w + DS_WARPS,
 * ... (KPW at most), lane l the head dims 2 (l + 32 i) and + 1 of them (W words). The item's query heads are
 * h0 .. h0 + hn - 1 of the KV head's G (DS_ATTN_HEADS; else all G). smem: [hn][HD] rotated q, then the new
 * value (float) and key (as stored) at pos ([HD] each); wide: [hn][ctx] scores, then [DS_WARPS][hn][HD] each
 * warp's weighted values. Scores and values sum in another order than the split path
 * (and attention.cu); the softmax takes the exact maximum.
 */
template <class T, int W>
MOPT_DEV void attention_single(const DsArgs& A, const DsLayer& Ly, int layer, int pos, int g, int h0, int hn, float* smem, float* wide, const XVec& qkv,
                                const XVec& out) {
  typedef typename T::S S;
  // GM: most query heads an item holds (one-head items need registers for one)
  constexpr int HD = 64 * W, half = HD / 2, KPW = DS_ATTN_KEYS / W, GM = DS_ATTN_HEADS == 1 ? 1 : 4 / W;
  static_assert(32 / W >= KPW, "the scoring lanes cover every key the values cover");
  __shared__ float m_s[DS_WARPS], l_s[DS_WARPS];
  const int G = (int)A.H / (int)A.KV, ctx = pos + 1, cap = (int)A.cap;
  if (DS_ATTN_HEADS == 0) h0 = 0, hn = G;  // (so the default build's code is the one-item-per-KV-head code)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float scale = __int_as_float((int)A.scale);
  const S* cosr = reinterpret_cast<const S*>(A.cos) + pos * half;
  const S* sinr = reinterpret_cast<const S*>(A.sin) + pos * half;
  S* kc = reinterpret_cast<S*>(Ly.kc) + (i64_t)g * cap * HD;
  S* vc = reinterpret_cast<S*>(Ly.vc) + (i64_t)g * cap * HD;
  float* qs = smem;
  float* vnew = smem + hn * HD;
  S* knew = reinterpret_cast<S*>(vnew + HD);
  // every load of the phase before any use: this lane's cached key and this warp's values, then q and the new
  // key / value
  const int kt = warp + DS_WARPS * (lane / W), kd0 = 64 * (lane % W);  // the key this lane scores, its first dim
  U4 kr[8];
#pragma unroll
  // through L1 (rows below pos are not written during this launch): load i + 1 then hits the 32-byte sector
  // load i brought (each lane reads its own row; through L2 alone every sector would come twice)
  for (int i = 0; i < 8; i++) kr[i] = kt < pos ? ld_global16_nc(kc + (i64_t)kt * HD + kd0 + 8 * i) : U4{};
  u32_t vw[KPW][W];
#pragma unroll
  for (int k = 0; k < KPW; k++) {
    const int t = warp + DS_WARPS * k;
#pragma unroll
    for (int w = 0; w < W; w++) vw[k][w] = t < pos ? ld_cg_u32(vc + (i64_t)t * HD + 2 * (lane + 32 * w)) : 0u;
  }
  // the new key and value go into the cache from the item holding the KV head's first query head
  rope_qkv_shared<T>(qkv, g, h0, hn, (int)A.H, (int)A.KV, HD, cosr, sinr, qs, h0 == 0 ? kc + (i64_t)pos * HD : nullptr, vc + (i64_t)pos * HD, knew, vnew);
  csync();
  ll_waited(qkv);
  mark(A, layer, 1);
  // scores (the lane holding key pos takes it from knew: it was not in the cache when the loads were issued)
  float* sc = wide;
  if (kt == pos) {
#pragma unroll
    for (int i = 0; i < 8; i++) kr[i] = ld_shared16(knew + kd0 + 8 * i);
  }
  float d[GM];
#pragma unroll
  for (int h = 0; h < GM; h++) d[h] = 0.f;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    float kf[8];
    widen8<T>(kr[i], kf);
#pragma unroll
    for (int h = 0; h < GM; h++) {
      if (h >= hn) break;
      const u32_t qa = smem_addr(qs + h * HD + kd0 + 8 * i);
      const U4 q0 = lds16(qa), q1 = lds16(qa + 16);
#pragma unroll
      for (int e = 0; e < 4; e++) d[h] = fmaf(__uint_as_float(q0.w[e]), kf[e], d[h]);
#pragma unroll
      for (int e = 0; e < 4; e++) d[h] = fmaf(__uint_as_float(q1.w[e]), kf[4 + e], d[h]);
    }
  }
#pragma unroll
  for (int h = 0; h < GM; h++) {
    if (h >= hn) break;
    if (W == 2) d[h] += __shfl_xor_sync(MOPT_FULL_MASK, d[h], 1);
    if (lane % W == 0 && kt < ctx) sc[h * ctx + kt] = d[h] * scale;
  }
  csync();
  mark(A, layer, 2);
  // the two values of word w of key k (t == pos: the new value)
  auto pair = [=](const u32_t (&words)[KPW][W], const float* fresh, int k, int w, int t, float& a, float& b) {
    const int c = 2 * (lane + 32 * w);
    if (t == pos) {
      a = fresh[c], b = fresh[c + 1];
    } else {
      a = T::load((u16_t)(words[k][w] & 0xffffu)), b = T::load((u16_t)(words[k][w] >> 16));
    }
  };
  softmax_rows<T>(sc, ctx, ctx, hn, m_s, l_s);
  csync();
  mark(A, layer, 3);
  // weighted values: each warp over its keys, into registers
  float o[GM][2 * W];
#pragma unroll
  for (int h = 0; h < GM; h++)
#pragma unroll
    for (int i = 0; i < 2 * W; i++) o[h][i] = 0.f;
#pragma unroll
  for (int k = 0; k < KPW; k++) {
    const int t = warp + DS_WARPS * k;
    if (t >= ctx) break;
#pragma unroll
    for (int w = 0; w < W; w++) {
      float a, b;
      pair(vw, vnew, k, w, t, a, b);
#pragma unroll
      for (int h = 0; h < GM; h++) {
        if (h >= hn) break;
        const float p = sc[h * ctx + t];
        o[h][2 * w] = fmaf(p, a, o[h][2 * w]);
        o[h][2 * w + 1] = fmaf(p, b, o[h][2 * w + 1]);
      }
    }
  }
  csync();  // the scores are read: their space takes the warps' sums
  float* opart = wide;
#pragma unroll
  for (int h = 0; h < GM; h++) {
    if (h >= hn) break;
#pragma unroll
    for (int w = 0; w < W; w++) {
      const int c = 2 * (lane + 32 * w);
      opart[(warp * hn + h) * HD + c] = o[h][2 * w];
      opart[(warp * hn + h) * HD + c + 1] = o[h][2 * w + 1];
    }
  }
  csync();
  for (int e = threadIdx.x; e < hn * HD; e += DS_THREADS) {
    const int h = e / HD, c = e % HD;
    float sum = 0.f;
    for (int w = 0; w < DS_WARPS; w++) sum += opart[(w * hn + h) * HD + c];
    out.put((g * G + h0 + h) * HD + c, T::store(l_s[h] > 0.f ? sum / l_s[h] : 0.f));
  }
  csync();  // the shared buffers are reused by the next KV head
  mark(A, layer, 4);
}

/**
 * Head dim / 64 when phase B takes the register path (attention_single) at this position, else 0: the context
 * and shapes allow it (on the H200 with Llama-3.2-1B it cut the step from 1,178 to 1,108 us: three global
 * round trips fewer than merging splits). wide_bytes: the activation vector's shared memory (free in phase B).
 */
MOPT_DEV int single_path_w(const DsArgs& A, int pos, i64_t wide_bytes) {
  const int G = (int)A.H / (int)A.KV, HD = (int)A.HD, ctx = pos + 1;
  const i64_t wide_floats = (i64_t)(ctx > DS_WARPS * HD ? ctx : DS_WARPS * HD) * G;  // scores, then the warps' sums
  if (G * HD > 256 || 4 * wide_floats > wide_bytes) return 0;
  if (HD == 64 && ctx <= DS_WARPS * DS_ATTN_KEYS) return 1;
  if (HD == 128 && ctx <= DS_WARPS * (DS_ATTN_KEYS / 2)) return 2;
  return 0;
}

/** Phase B: the register path while single_path_w allows it, else the split path. */
template <class T>
MOPT_DEV void attention_layer(const DsArgs& A, const DsLayer& Ly, int layer, int pos, float* smem, float* wide, i64_t wide_bytes, u32_t* ctl,
                              const XVec& qkv, const XVec& out) {
  const int w = single_path_w(A, pos, wide_bytes);
  if (w != 0) {
    // one call site per head dim (the step's code must stay small); items: (KV head, its query heads h0 .. + hn)
    const int G = (int)A.H / (int)A.KV, hn = DS_ATTN_HEADS > 0 && G % DS_ATTN_HEADS == 0 ? DS_ATTN_HEADS : G;
    const int per = DS_ATTN_HEADS == 0 ? 1 : G / hn;  // items per KV head
    for (int it = (int)blockIdx.x; it < (int)A.KV * per; it += (int)gridDim.x) {
      const int g = it / per, h0 = it % per * hn;
      if (w == 1)
        attention_single<T, 1>(A, Ly, layer, pos, g, h0, hn, smem, wide, qkv, out);
      else
        attention_single<T, 2>(A, Ly, layer, pos, g, h0, hn, smem, wide, qkv, out);
    }
    return;
  }
  attention_phase<T>(A, Ly, layer, pos, smem, ctl, qkv, out);
}
