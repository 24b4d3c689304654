// A whole batch-1 decode step of a Llama-style decoder as one persistent kernel (src/backend/cuda/decode-step.ts).
//
// Why: a decode step reads every weight once (2.5 GB for Llama-3.2-1B), so its floor is the HBM stream time,
// but as ~160 separate kernels it also pays each launch's ramp-up and drain (a few microseconds apiece, 30-40%
// of the step on an H200). Here one CTA per SM runs the step's phases in order, separated by grid-wide
// barriers (~2 us each), one warp per weight row at a time (16-byte loads, 4 KB in flight per warp).
//
// Measured on the H200 (bench/decode-phases.ts, docs/benchmarks.md): preloading the next phase's first weight
// round into registers or L2 before each barrier, and warming L2 with the MLP rows during the attention phase,
// made the step slower (the prefetches compete with the phase they overlap); weight loads that skip L1 made
// it faster. Only o_proj, read right after the bandwidth-idle attention phase, is prefetched into L2.
//
// Per layer (barrier after each phase):
//   A  x = rmsnorm(h) * input_norm (every CTA forms it in shared memory); q|k|v = x @ [Wq; Wk; Wv]^T -> qkv
//   B  attention: one work item per (KV head, split of the keys 0..pos); the item holding pos rotates the new
//      key, writes it and the value into the cache; partial softmax states go to `part`, and the last item of
//      a KV head to finish (a counter) merges them into attn
//   C  h = h + attn @ Wo^T
//   D  x = rmsnorm(h) * post_norm; act = silu(x @ Wg^T) * (x @ Wu^T)
//   E  h = h + act @ Wd^T
// then x = rmsnorm(h) * final_norm and the LM head with the argmax folded in: the last CTA to finish writes
// the token to ids (the next step's input), next, produced[pos] (when given), advances *pos, and (when given)
// the float32 logits row is written on the way.
//
// Numerics follow the multi-kernel step (gemv.cuh, pointwise.cu rope_append, attention.cu decode): float32
// accumulation; every tensor the unfused step stores in the model dtype is rounded to it here too (q/k/v,
// rotated q/k, attention output, residual stream, SwiGLU output, logits); the RMSNorm reduction reproduces
// rmsnorm.cu's bit for bit. Only summation orders differ (the softmax takes each split's exact maximum
// instead of a running one), so results match the unfused step to within the dtype's rounding.
//
// Shared data written by other CTAs is read with ld.global.cg (L2; L1 is not coherent across SMs). The
// barrier is a counter and a generation word in `ctl`, self-resetting, so consecutive launches need no
// memset; a CTA that waits ~10 s for the others traps instead of hanging (the host launches cooperatively,
// so all CTAs are resident).
// prefetch_row_l2 comes from gemv.cuh
#include "fused.cuh"
#include "gemv.cuh"

#define DS_WARPS 16
#define DS_THREADS 512  // 32 * DS_WARPS (a literal: test/backend/cuda-sources.test.ts reads the launch bounds)
static_assert(DS_THREADS == 32 * DS_WARPS, "one warp per 32 threads");

// Must match src/backend/cuda/decode-step.ts LAYER_FIELDS (every field an i64_t, in this order).
struct DsLayer {
  i64_t in_norm, wq, wk, wv, wo, post_norm, wg, wu, wd, kc, vc;
};
// Must match src/backend/cuda/decode-step.ts STEP_FIELDS (every field an i64_t, in this order).
struct DsArgs {
  i64_t layers, nlayers, D, H, KV, HD, I, V, cap;
  i64_t embed, final_norm, lm_head, eps, norm_threads;  // eps: float64 bits; norm_threads: rmsnorm.cu's block size
  i64_t cos, sin, pos, ids, produced, next, logits;      // produced, logits: 0 for none
  i64_t h, qkv, attn, act, part, ctl;                   // device scratch (decode-step.ts sizes them)
  i64_t splits, chunk_max, scale;                       // scale: float32 bits
  i64_t timing;  // 0, or u64 [2 + 5 * nlayers + 1]: CTA 0's %globaltimer (ns) at the start and after each phase
};
// ctl words: [0] barrier count, [1] barrier generation, [2] CTAs done with the LM head, [4..5] argmax key
// (u64), [8 + g] attention splits done for KV head g.
#define DS_CTL_ARGMAX 4
#define DS_CTL_ATTN 8

MOPT_DEV u32_t ld_acquire_u32(const u32_t* p) {
  u32_t v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
/** 16 bytes from L2 (data other CTAs of this launch wrote). */
MOPT_DEV U4 ld_cg16(const void* p) {
  U4 c;
  asm volatile("ld.global.cg.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(c.w[0]), "=r"(c.w[1]), "=r"(c.w[2]), "=r"(c.w[3]) : "l"(p));
  return c;
}
MOPT_DEV u16_t ld_cg_u16(const void* p) {
  u16_t v;
  asm volatile("ld.global.cg.u16 %0, [%1];" : "=h"(v) : "l"(p));
  return v;
}
MOPT_DEV float ld_cg_f32(const float* p) {
  float v;
  asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p));
  return v;
}

/** Grid-wide barrier: every CTA's writes before it are visible to every CTA after it. */
MOPT_DEV void grid_sync(u32_t* ctl) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const u32_t gen = ld_acquire_u32(ctl + 1);  // read before arriving: it cannot move until this CTA arrives
    __threadfence();
    if (atomicAdd(ctl, 1u) == gridDim.x - 1) {
      atomicExch(ctl, 0u);
      __threadfence();
      atomicAdd(ctl + 1, 1u);
    } else {
      const long long t0 = clock64();
      while (ld_acquire_u32(ctl + 1) == gen)
        if (clock64() - t0 > (1ll << 34)) __trap();  // ~10 s: a CTA never arrived (not co-resident): fail, not hang
    }
    __threadfence();
  }
  __syncthreads();
}

/** n elements (a multiple of 8) of a vector other CTAs wrote, into shared memory. */
template <class S>
MOPT_DEV void load_shared(S* dst, const S* src, i64_t n) {
  for (i64_t v = threadIdx.x; v < n / 8; v += DS_THREADS) reinterpret_cast<U4*>(dst)[v] = ld_cg16(reinterpret_cast<const U4*>(src) + v);
  __syncthreads();
}

/** xs = rmsnorm(xs) * w in place (xs in shared memory, D elements), bit for bit as rmsnorm.cu. */
template <class T>
MOPT_DEV void norm_shared(typename T::S* xs, const typename T::S* w, const DsArgs& A, float* red) {
  typedef typename T::S S;
  constexpr int N = VecN<S>::N;
  const float rs = rms_rstd<float>(block_sum(rms_sumsq_vec<T>(xs, A.D, (int)A.norm_threads), red), A.D, __longlong_as_double(A.eps));
  for (i64_t v = threadIdx.x; v < A.D / N; v += DS_THREADS) {
    const Vec<S, N> xv = vec_load<N>(xs, v), wv = vec_load<N>(w, v);
    Vec<S, N> ov;
#pragma unroll
    for (int e = 0; e < N; e++) ov.v[e] = rms_elem<T>(xv.v[e], wv.v[e], rs);
    vec_store<N>(xs, v, ov);
  }
  __syncthreads();
}

MOPT_DEV i64_t first_row() { return (i64_t)blockIdx.x * DS_WARPS + (threadIdx.x >> 5); }
MOPT_DEV i64_t row_step() { return (i64_t)gridDim.x * DS_WARPS; }

/** Warms L2 with this warp's first row of a phase (rows of K elements, row r at w + r * K). */
template <class S>
MOPT_DEV void prefetch_first(const S* w, i64_t rows, i64_t K, i64_t upto) {
  const i64_t r = first_row();
  if (r < rows) prefetch_row_l2(w + r * K, K < upto ? K : upto, threadIdx.x & 31);
}

/** One round of a warp's row stream: U 16-byte chunks per lane of each of NW weight rows. */
template <int NW, int U>
struct WRound {
  U4 c[NW][U];
};

/** Issues round c0 (chunks c0, c0 + 32, ... of each row; K / 8 chunks in a row). */
/** A weight load that does not allocate in L1 (a streamed weight is read once; L1 keeps the spills and x). */
MOPT_DEV U4 ld_weight16(const void* p) {
  U4 c;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(c.w[0]), "=r"(c.w[1]), "=r"(c.w[2]), "=r"(c.w[3]) : "l"(p));
  return c;
}

template <int NW, int U, class S>
MOPT_DEV void load_round(WRound<NW, U>& wr, const S* const (&w)[NW], i64_t c0, i64_t chunks) {
#pragma unroll
  for (int u = 0; u < U; u++) {
    const i64_t c = c0 + 32 * u;
#pragma unroll
    for (int j = 0; j < NW; j++)
      if (c < chunks) wr.c[j][u] = ld_weight16(reinterpret_cast<const U4*>(w[j]) + c);
  }
}

/** acc[j] += x . w_j over round c0 (x in shared memory), in gemv.cuh gemv_dot's order. */
template <class T, int NW, int U>
MOPT_DEV void use_round(float (&acc)[NW], const WRound<NW, U>& wr, const typename T::S* xs, i64_t c0, i64_t chunks) {
#pragma unroll
  for (int u = 0; u < U; u++) {
    const i64_t c = c0 + 32 * u;
    if (c >= chunks) break;
    float af[8];
    widen8<T>(reinterpret_cast<const U4*>(xs)[c], af);
#pragma unroll
    for (int j = 0; j < NW; j++) {
      float wf[8];
      widen8<T>(wr.c[j][u], wf);
#pragma unroll
      for (int e = 0; e < 8; e++) acc[j] = fmaf(af[e], wf[e], acc[j]);
    }
  }
}

/**
 * out(r, acc, pre) for each row r < rows of x (shared, K elements) @ W^T, rows spread over every warp of the
 * grid (weights(r, w) sets the NW row pointers of row r); acc is complete on every lane. pre = before(r) is
 * issued before the row's stream, so a load it makes (the residual) is in flight with it.
 */
template <class T, int NW, int U, class W, class B, class F>
MOPT_DEV void gemv_phase(const typename T::S* xs, i64_t K, i64_t rows, W&& weights, B&& before, F&& out) {
  typedef typename T::S S;
  const int lane = threadIdx.x & 31;
  const i64_t chunks = K / 8;
  for (i64_t r = first_row(); r < rows; r += row_step()) {
    const auto pre = before(r);
    const S* w[NW];
    weights(r, w);
    float acc[NW];
#pragma unroll
    for (int j = 0; j < NW; j++) acc[j] = 0.f;
    WRound<NW, U> wr;
    for (i64_t c0 = lane; c0 < chunks; c0 += 32 * U) {
      load_round(wr, w, c0, chunks);
      use_round<T>(acc, wr, xs, c0, chunks);
    }
#pragma unroll
    for (int j = 0; j < NW; j++) acc[j] = warp_sum(acc[j]);
    out(r, acc, pre);
  }
}
MOPT_DEV int no_pre(i64_t) { return 0; }

/** The rotated pair (j, j + half) of x at table row p, as pointwise.cu rope_append_body: float64, one rounding. */
template <class T>
MOPT_DEV void rope_pair(typename T::S x0, typename T::S x1, const typename T::S* cos, const typename T::S* sin, i64_t j,
                        typename T::S& o0, typename T::S& o1) {
  const double c = T::load(cos[j]), sn = T::load(sin[j]);
  const double a = T::load(x0), b = T::load(x1);
  o0 = T::store(a * c - b * sn);
  o1 = T::store(b * c + a * sn);
}

/** Phase B for one layer (see the top of the file). smem: [G][HD] rotated q, then [G][chunk_max] scores. */
template <class T>
MOPT_DEV void attention_phase(const DsArgs& A, const DsLayer& Ly, int pos, float* smem, u32_t* ctl) {
  typedef typename T::S S;
  const float NEG_INF = -m_inf(0.f);
  __shared__ float m_s[DS_WARPS], l_s[DS_WARPS];
  __shared__ int last_s;
  const int HD = (int)A.HD, half = HD / 2, G = (int)(A.H / A.KV), splits = (int)A.splits, ctx = pos + 1, cap = (int)A.cap, cmax = (int)A.chunk_max;
  const int chunk = (ctx + splits - 1) / splits;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float scale = __int_as_float((int)A.scale);
  const S* qkv = reinterpret_cast<const S*>(A.qkv);
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
    for (int e = threadIdx.x; e < G * half; e += DS_THREADS) {
      const int h = e / half, j = e % half;
      const S* x = qkv + (g * G + h) * HD;
      S o0, o1;
      rope_pair<T>(ld_cg_u16(x + j), ld_cg_u16(x + j + half), cosr, sinr, j, o0, o1);
      qs[h * HD + j] = T::load(o0);
      qs[h * HD + j + half] = T::load(o1);
    }
    if (t0 <= pos && pos < t1) {
      // the new key (rotated) and value of this KV head, into the cache at pos
      const S* kx = qkv + (int)A.H * HD + g * HD;
      const S* vx = qkv + (int)(A.H + A.KV) * HD + g * HD;
      S* kd = kc + (i64_t)(g * cap + pos) * HD;
      S* vd = vc + (i64_t)(g * cap + pos) * HD;
      for (int j = threadIdx.x; j < half; j += DS_THREADS) {
        S o0, o1;
        rope_pair<T>(ld_cg_u16(kx + j), ld_cg_u16(kx + j + half), cosr, sinr, j, o0, o1);
        kd[j] = o0;
        kd[j + half] = o1;
        vd[j] = ld_cg_u16(vx + j);
        vd[j + half] = ld_cg_u16(vx + j + half);
      }
    }
    __syncthreads();
    // scores: one warp per key, lanes over the head dim
    for (int t = t0 + warp; t < t1; t += DS_WARPS) {
      const S* kr = kc + (i64_t)(g * cap + t) * HD;
      float kv[4];
#pragma unroll
      for (int u = 0; u < 4; u++) kv[u] = lane + 32 * u < HD ? T::load(ld_cg_u16(kr + lane + 32 * u)) : 0.f;
      for (int h = 0; h < G; h++) {
        float d = 0.f;
#pragma unroll
        for (int u = 0; u < 4; u++)
          if (lane + 32 * u < HD) d = fmaf(qs[h * HD + lane + 32 * u], kv[u], d);
        d = warp_sum(d);
        if (lane == 0) sc[h * cmax + (t - t0)] = d * scale;
      }
    }
    __syncthreads();
    // softmax per query head (warp h): exact max over the split, probabilities rounded to T as attention.cu
    if (warp < G) {
      float* row = sc + warp * cmax;
      float m = NEG_INF;
      for (int i = lane; i < t1 - t0; i += 32) m = row[i] > m ? row[i] : m;
      m = group_max<32>(m);
      float l = 0.f;
      for (int i = lane; i < t1 - t0; i += 32) {
        const float p = expf(row[i] - m);
        l += p;
        row[i] = round_to<T>(p);
      }
      l = warp_sum(l);
      if (lane == 0) m_s[warp] = m, l_s[warp] = l;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < G * HD; e += DS_THREADS) {
      const int h = e / HD, c = e % HD;
      const float* p = sc + h * cmax;
      const S* vcol = vc + (i64_t)g * cap * HD + c;
      float o = 0.f;
      int t = t0;
      // loads in batches of 8 before their use: the cg loads are volatile asm, issued in program order
      for (; t + 8 <= t1; t += 8) {
        u16_t vv[8];
#pragma unroll
        for (int u = 0; u < 8; u++) vv[u] = ld_cg_u16(vcol + (i64_t)(t + u) * HD);
#pragma unroll
        for (int u = 0; u < 8; u++) o = fmaf(p[t + u - t0], T::load(vv[u]), o);
      }
      for (; t < t1; t++) o = fmaf(p[t - t0], T::load(ld_cg_u16(vcol + (i64_t)t * HD)), o);
      float* pr = part + ((g * G + h) * splits + s) * (HD + 2);
      pr[2 + c] = o;
      if (c == 0) pr[0] = t1 > t0 ? m_s[h] : NEG_INF, pr[1] = t1 > t0 ? l_s[h] : 0.f;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last_s = atomicAdd(ctl + DS_CTL_ATTN + g, 1u) == (u32_t)(splits - 1);
    __syncthreads();
    if (last_s) {
      // every split of this KV head is written: merge them (attention.cu attn_combine_body)
      __threadfence();
      S* out = reinterpret_cast<S*>(A.attn);
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
        out[(g * G + h) * HD + c] = T::store(ls > 0.f ? os / ls : 0.f);
      }
      if (threadIdx.x == 0) ctl[DS_CTL_ATTN + g] = 0;  // all splits arrived: ready for the next layer
    }
    __syncthreads();  // the shared buffers are reused by the next item
  }
}

/** Orderable key of a logit at row r: larger value wins, then the lower row (argmax's first-on-ties); NaN wins. */
MOPT_DEV u64_t argmax_key(float v, i64_t r) {
  const u32_t b = v == 0.f ? 0u : __float_as_uint(v);  // -0 ties with +0 (first index wins), as reduce.cu ExtremeR
  const u32_t ob = v != v ? 0xffffffffu : (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return ((u64_t)ob << 32) | (u64_t)(0xffffffffu - (u32_t)r);
}

MOPT_DEV void stamp(const DsArgs& A, int k) {
  if (A.timing != 0 && blockIdx.x == 0 && threadIdx.x == 0) {
    u64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    reinterpret_cast<u64_t*>(A.timing)[k] = t;
  }
}

template <class T>
MOPT_DEV void decode_step_body(const DsArgs& A) {
  typedef typename T::S S;
  __shared__ float red[32];
  __shared__ u64_t best_s[DS_WARPS];
  __shared__ int last_s;
  S* xs = reinterpret_cast<S*>(fused_smem);
  u32_t* ctl = reinterpret_cast<u32_t*>(A.ctl);
  const DsLayer* layers = reinterpret_cast<const DsLayer*>(A.layers);
  S* h = reinterpret_cast<S*>(A.h);
  S* qkv = reinterpret_cast<S*>(A.qkv);
  S* act = reinterpret_cast<S*>(A.act);
  const i64_t D = A.D, HD = A.HD, QD = A.H * HD, NQKV = QD + 2 * A.KV * HD;
  const i64_t pos = *reinterpret_cast<const int*>(A.pos);
  const i64_t id = *reinterpret_cast<const int*>(A.ids);
  // the host checks both before queueing a step; a bad value (a caller writing the device buffers itself)
  // fails the launch instead of reading or writing out of bounds
  if (pos < 0 || pos >= A.cap || id < 0 || id >= A.V) __trap();
  const int lane = threadIdx.x & 31;
  stamp(A, 0);

  // lambdas capture by value: a by-reference capture would force the captured locals into local memory
  auto residual = [=](i64_t r) { return ld_cg_u16(h + r); };
  auto add_residual = [=](i64_t r, float (&acc)[1], u16_t res) {
    if (lane == 0) h[r] = T::store(T::load(res) + T::load(T::store(acc[0])));
  };

  // h = embed[id]
  {
    const U4* src = reinterpret_cast<const U4*>(reinterpret_cast<const S*>(A.embed) + id * D);
    for (i64_t v = global_thread(); v < D / 8; v += (i64_t)gridDim.x * DS_THREADS) reinterpret_cast<U4*>(h)[v] = src[v];
  }
  grid_sync(ctl);
  stamp(A, 1);

  for (i64_t l = 0; l < A.nlayers; l++) {
    const S* wq = reinterpret_cast<const S*>(layers[l].wq);
    const S* wk = reinterpret_cast<const S*>(layers[l].wk);
    const S* wv = reinterpret_cast<const S*>(layers[l].wv);
    const S* wo = reinterpret_cast<const S*>(layers[l].wo);
    const S* wg = reinterpret_cast<const S*>(layers[l].wg);
    const S* wu = reinterpret_cast<const S*>(layers[l].wu);
    const S* wd = reinterpret_cast<const S*>(layers[l].wd);
    const i64_t KVD = A.KV * HD, I = A.I;
    // A: q | k | v of rmsnorm(h)
    load_shared(xs, h, D);
    norm_shared<T>(xs, reinterpret_cast<const S*>(layers[l].in_norm), A, red);
    gemv_phase<T, 1, 8>(
        xs, D, NQKV, [=](i64_t r, const S* (&w)[1]) { w[0] = r < QD ? wq + r * D : r < QD + KVD ? wk + (r - QD) * D : wv + (r - QD - KVD) * D; },
        no_pre, [=](i64_t r, float (&acc)[1], int) { if (lane == 0) qkv[r] = T::store(acc[0]); });
    prefetch_first(wo, D, QD, QD);  // o_proj is read after the attention, which leaves HBM idle: L2 holds it by then
    grid_sync(ctl);
    stamp(A, 2 + 5 * (int)l + 0);
    // B: attention
    attention_phase<T>(A, layers[l], (int)pos, reinterpret_cast<float*>(fused_smem), ctl);
    grid_sync(ctl);
    stamp(A, 2 + 5 * (int)l + 1);
    // C: h += attn @ Wo^T
    load_shared(xs, reinterpret_cast<const S*>(A.attn), QD);
    gemv_phase<T, 1, 8>(xs, QD, D, [=](i64_t r, const S* (&w)[1]) { w[0] = wo + r * QD; }, residual, add_residual);
    grid_sync(ctl);
    stamp(A, 2 + 5 * (int)l + 2);
    // D: act = silu(x @ Wg^T) * (x @ Wu^T), x = rmsnorm(h)
    load_shared(xs, h, D);
    norm_shared<T>(xs, reinterpret_cast<const S*>(layers[l].post_norm), A, red);
    gemv_phase<T, 2, 4>(
        xs, D, I, [=](i64_t r, const S* (&w)[2]) { w[0] = wg + r * D, w[1] = wu + r * D; }, no_pre,
        [=](i64_t r, float (&acc)[2], int) { if (lane == 0) act[r] = T::store(swiglu_one<T>(T::store(acc[0]), T::store(acc[1]))); });
    grid_sync(ctl);
    stamp(A, 2 + 5 * (int)l + 3);
    // E: h += act @ Wd^T
    load_shared(xs, act, I);
    gemv_phase<T, 1, 8>(xs, I, D, [=](i64_t r, const S* (&w)[1]) { w[0] = wd + r * I; }, residual, add_residual);
    grid_sync(ctl);
    stamp(A, 2 + 5 * (int)l + 4);
  }

  // LM head of rmsnorm(h), argmax folded in
  load_shared(xs, h, D);
  norm_shared<T>(xs, reinterpret_cast<const S*>(A.final_norm), A, red);
  const S* wl = reinterpret_cast<const S*>(A.lm_head);
  float* logits = reinterpret_cast<float*>(A.logits);
  u64_t best = 0;
  gemv_phase<T, 1, 8>(xs, D, A.V, [=](i64_t r, const S* (&w)[1]) { w[0] = wl + r * D; }, no_pre, [=, &best](i64_t r, float (&acc)[1], int) {
    const float v = T::load(T::store(acc[0]));
    const u64_t key = argmax_key(v, r);
    best = key > best ? key : best;
    if (logits != nullptr && lane == 0) logits[r] = v;
  });
  if (lane == 0) best_s[threadIdx.x >> 5] = best;
  __syncthreads();
  stamp(A, 2 + 5 * (int)A.nlayers);
  if (threadIdx.x == 0) {
    for (int w = 1; w < DS_WARPS; w++) best = best_s[w] > best ? best_s[w] : best;  // thread 0's own is best_s[0]
    atomicMax(reinterpret_cast<unsigned long long*>(ctl + DS_CTL_ARGMAX), (unsigned long long)best);
    __threadfence();
    last_s = atomicAdd(ctl + 2, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (last_s && threadIdx.x == 0) {
    // every CTA has offered its best: publish the token, reset the shared words for the next launch
    __threadfence();
    const u64_t key = atomicExch(reinterpret_cast<unsigned long long*>(ctl + DS_CTL_ARGMAX), 0ull);
    const int tok = (int)(0xffffffffu - (u32_t)(key & 0xffffffffu));
    ctl[2] = 0;
    reinterpret_cast<int*>(A.ids)[0] = tok;
    reinterpret_cast<int*>(A.next)[0] = tok;
    if (A.produced != 0) reinterpret_cast<int*>(A.produced)[pos] = tok;
    reinterpret_cast<int*>(A.pos)[0] = (int)(pos + 1);
  }
}

#define MOPT_DEF_DECODE_STEP(T) \
  extern "C" __global__ void __launch_bounds__(DS_THREADS, 1) decode_step_##T(DsArgs A) { decode_step_body<dt::T>(A); }
MOPT_DEF_DECODE_STEP(bf16)
MOPT_DEF_DECODE_STEP(f16)
