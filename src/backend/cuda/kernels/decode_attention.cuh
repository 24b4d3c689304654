// Phase B of the whole-step decode kernel (decode_step.cu): attention of the step's query over the KV cache,
// with the new key and value written into the cache on the way. While the context is short, one CTA per KV
// head holds all its keys and values in registers (attention_single); else the keys are split over CTAs and
// the splits merged through global memory (attention_phase).
#pragma once
#include "decode_step.cuh"

/** The rotated pair (j, j + half) of x at table row p, as pointwise.cu rope_append_body: float64, one rounding. */
template <class T>
MOPT_DEV void rope_pair(typename T::S x0, typename T::S x1, const typename T::S* cos, const typename T::S* sin, i64_t j,
                        typename T::S& o0, typename T::S& o1) {
  const double c = T::load(cos[j]), sn = T::load(sin[j]);
  const double a = T::load(x0), b = T::load(x1);
  o0 = T::store(a * c - b * sn);
  o1 = T::store(b * c + a * sn);
}

/** The G query heads of KV head g, rotated at table rows cos / sin, into shared memory as float ([G][HD]). */
template <class T>
MOPT_DEV void rope_q_shared(const XVec& qkv, int g, int G, int HD, const typename T::S* cosr, const typename T::S* sinr, float* qs) {
  typedef typename T::S S;
  const int half = HD / 2;
  for (int e = threadIdx.x; e < G * half; e += DS_THREADS) {
    const int h = e / half, j = e % half;
    const i64_t x = (g * G + h) * HD;
    S o0, o1;
    rope_pair<T>(qkv.get(x + j), qkv.get(x + j + half), cosr, sinr, j, o0, o1);
    qs[h * HD + j] = T::load(o0);
    qs[h * HD + j + half] = T::load(o1);
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
    rope_q_shared<T>(qkv, g, G, HD, cosr, sinr, qs);
    if (t0 <= pos && pos < t1) {
      // the new key (rotated) and value of this KV head, into the cache at pos
      const i64_t kx = (int)A.H * HD + g * HD, vx = (int)(A.H + A.KV) * HD + g * HD;
      S* kd = kc + (i64_t)(g * cap + pos) * HD;
      S* vd = vc + (i64_t)(g * cap + pos) * HD;
      for (int j = threadIdx.x; j < half; j += DS_THREADS) {
        S o0, o1;
        rope_pair<T>(qkv.get(kx + j), qkv.get(kx + j + half), cosr, sinr, j, o0, o1);
        kd[j] = o0;
        kd[j + half] = o1;
        const u16_t v0 = qkv.get(vx + j), v1 = qkv.get(vx + j + half);
        vd[j] = v0;
        vd[j + half] = v1;
      }
    }
    csync();
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
#pragma unroll
      for (int j = 0; j < DS_KEYS; j++) {
        const int t = tb + j * DS_WARPS;
        if (t >= t1) break;
#pragma unroll 1
        for (int h = 0; h < G; h++) {
          float d = 0.f;
#pragma unroll
          for (int u = 0; u < 4; u++)
            if (lane + 32 * u < HD) d = fmaf(qs[h * HD + lane + 32 * u], kv[j][u], d);
          d = warp_sum(d);
          if (lane == 0) sc[h * cmax + (t - t0)] = d * scale;
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
// bench/run.sh's decode reaches, but made a short-context step slower on the H200 (980 against 966 us).
#ifndef DS_ATTN_KEYS
#define DS_ATTN_KEYS 16
#endif

/**
 * Phase B for KV head g in one CTA, every key in registers: warp w takes keys w, w + DS_WARPS, ... (KPW at
 * most), lane l the head dims 2 (l + 32 i) and + 1 of them (W words). smem: [G][HD] rotated q, then the new
 * key and value at pos ([HD] each); wide: [G][ctx] scores, then [DS_WARPS][G][HD] each warp's weighted values.
 * Scores and values sum in another order than the split path (and attention.cu); the softmax takes the exact
 * maximum.
 */
template <class T, int W>
MOPT_DEV void attention_single(const DsArgs& A, const DsLayer& Ly, int pos, int g, float* smem, float* wide, const XVec& qkv, const XVec& out) {
  typedef typename T::S S;
  constexpr int HD = 64 * W, half = HD / 2, KPW = DS_ATTN_KEYS / W, GM = 4 / W;  // GM: most query heads per KV head
  __shared__ float m_s[DS_WARPS], l_s[DS_WARPS];
  const int G = (int)A.H / (int)A.KV, ctx = pos + 1, cap = (int)A.cap;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float scale = __int_as_float((int)A.scale);
  const S* cosr = reinterpret_cast<const S*>(A.cos) + pos * half;
  const S* sinr = reinterpret_cast<const S*>(A.sin) + pos * half;
  S* kc = reinterpret_cast<S*>(Ly.kc) + (i64_t)g * cap * HD;
  S* vc = reinterpret_cast<S*>(Ly.vc) + (i64_t)g * cap * HD;
  float* qs = smem;
  float* knew = smem + G * HD;
  float* vnew = knew + HD;
  // every load of the phase before any use: this warp's cached keys and values, then q and the new key / value
  u32_t kw[KPW][W], vw[KPW][W];
#pragma unroll
  for (int k = 0; k < KPW; k++) {
    const int t = warp + DS_WARPS * k;
#pragma unroll
    for (int w = 0; w < W; w++) {
      kw[k][w] = t < pos ? ld_cg_u32(kc + (i64_t)t * HD + 2 * (lane + 32 * w)) : 0u;
      vw[k][w] = t < pos ? ld_cg_u32(vc + (i64_t)t * HD + 2 * (lane + 32 * w)) : 0u;
    }
  }
  rope_q_shared<T>(qkv, g, G, HD, cosr, sinr, qs);
  for (int j = threadIdx.x; j < half; j += DS_THREADS) {
    const i64_t kx = (int)A.H * HD + g * HD, vx = (int)(A.H + A.KV) * HD + g * HD;
    S o0, o1;
    rope_pair<T>(qkv.get(kx + j), qkv.get(kx + j + half), cosr, sinr, j, o0, o1);
    const u16_t v0 = qkv.get(vx + j), v1 = qkv.get(vx + j + half);
    kc[(i64_t)pos * HD + j] = o0, kc[(i64_t)pos * HD + j + half] = o1;
    vc[(i64_t)pos * HD + j] = v0, vc[(i64_t)pos * HD + j + half] = v1;
    knew[j] = T::load(o0), knew[j + half] = T::load(o1);
    vnew[j] = T::load(v0), vnew[j + half] = T::load(v1);
  }
  csync();
  // the two values of word w of key k (t == pos: the new key / value)
  auto pair = [=](const u32_t (&words)[KPW][W], const float* fresh, int k, int w, int t, float& a, float& b) {
    const int d = 2 * (lane + 32 * w);
    if (t == pos) {
      a = fresh[d], b = fresh[d + 1];
    } else {
      a = T::load((u16_t)(words[k][w] & 0xffffu)), b = T::load((u16_t)(words[k][w] >> 16));
    }
  };
  // scores
  float* sc = wide;
#pragma unroll
  for (int k = 0; k < KPW; k++) {
    const int t = warp + DS_WARPS * k;
    if (t >= ctx) break;
#pragma unroll 1  // unrolled (16 keys x 4 heads) it was 128 KB of code, past the instruction cache
    for (int h = 0; h < G; h++) {
      float d = 0.f;
#pragma unroll
      for (int w = 0; w < W; w++) {
        float a, b;
        pair(kw, knew, k, w, t, a, b);
        const int c = 2 * (lane + 32 * w);
        d = fmaf(qs[h * HD + c], a, d);
        d = fmaf(qs[h * HD + c + 1], b, d);
      }
      d = warp_sum(d);
      if (lane == 0) sc[h * ctx + t] = d * scale;
    }
  }
  csync();
  softmax_rows<T>(sc, ctx, ctx, G, m_s, l_s);
  csync();
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
        if (h >= G) break;
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
    if (h >= G) break;
#pragma unroll
    for (int w = 0; w < W; w++) {
      const int c = 2 * (lane + 32 * w);
      opart[(warp * G + h) * HD + c] = o[h][2 * w];
      opart[(warp * G + h) * HD + c + 1] = o[h][2 * w + 1];
    }
  }
  csync();
  for (int e = threadIdx.x; e < G * HD; e += DS_THREADS) {
    const int h = e / HD, c = e % HD;
    float sum = 0.f;
    for (int w = 0; w < DS_WARPS; w++) sum += opart[(w * G + h) * HD + c];
    out.put((g * G + h) * HD + c, T::store(l_s[h] > 0.f ? sum / l_s[h] : 0.f));
  }
  csync();  // the shared buffers are reused by the next KV head
}

/**
 * Phase B: the register path (attention_single) while the context and shapes allow it (on the H200 with
 * Llama-3.2-1B it cut the step from 1,178 to 1,108 us: three global round trips fewer than merging splits),
 * else the split path. wide: the activation vector's shared memory (free during this phase), wide_bytes long.
 */
template <class T>
MOPT_DEV void attention_layer(const DsArgs& A, const DsLayer& Ly, int layer, int pos, float* smem, float* wide, i64_t wide_bytes, u32_t* ctl,
                              const XVec& qkv, const XVec& out) {
  const int G = (int)A.H / (int)A.KV, HD = (int)A.HD, ctx = pos + 1;
  const i64_t wide_floats = (i64_t)(ctx > DS_WARPS * HD ? ctx : DS_WARPS * HD) * G;  // scores, then the warps' sums
  if (G * HD <= 256 && 4 * wide_floats <= wide_bytes) {
    if (HD == 64 && ctx <= DS_WARPS * DS_ATTN_KEYS) {
      for (int g = blockIdx.x; g < (int)A.KV; g += gridDim.x) attention_single<T, 1>(A, Ly, pos, g, smem, wide, qkv, out);
      return;
    }
    if (HD == 128 && ctx <= DS_WARPS * (DS_ATTN_KEYS / 2)) {
      for (int g = blockIdx.x; g < (int)A.KV; g += gridDim.x) attention_single<T, 2>(A, Ly, pos, g, smem, wide, qkv, out);
      return;
    }
  }
  attention_phase<T>(A, Ly, layer, pos, smem, ctl, qkv, out);
}
