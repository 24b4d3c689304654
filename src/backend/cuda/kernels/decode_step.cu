// A whole batch-1 decode step of a Llama-style decoder as one persistent kernel (src/backend/cuda/decode-step.ts).
//
// Why: a decode step reads every weight once (2.5 GB for Llama-3.2-1B), so its floor is the HBM stream time,
// but as ~160 separate kernels it also pays each launch's ramp-up and drain (a few microseconds apiece, 30-40%
// of the step on an H200). Here one CTA per SM runs the step's phases in order; each phase's output vector
// carries its phase's tag in every word, and the next phase's readers poll it until the tags are current
// (DS_LL, decode_step.cuh: the data's arrival is the barrier), or, with DS_LL=0 or shapes it does not fit,
// grid-wide barriers separate the phases (~2 us each).
//
// The weights do not depend on the activations, so they need not wait for the barriers: one producer thread
// per CTA streams this CTA's slice of every weight matrix of the whole step, in the order the phases use
// them, into a ring of shared-memory stages with bulk copies (weight_ring.cuh), while DS_WARPS consumer warps
// run the phases: each waits for a stage, dots it with the activation vector (in shared memory) and frees it.
// The stream stalls only when the ring is full, so a barrier, the attention phase or an RMSNorm costs HBM
// time only beyond the ring's depth (~200 KB per SM, ~6.5 us of this SM's HBM share). On the H200 with
// Llama-3.2-1B (bench/decode-phases.ts, docs/benchmarks.md): ~790 us a step = 1,265 tok/s, a layer 40 us
// against ~28 us of HBM time. Latency, not bandwidth, is what is left: every dependent L2 round trip (the
// next phase's input vector, a barrier's arrival and poll) queues behind the grid's weight stream, so the producer
// keeps a single copy in flight while its CTA waits at a barrier. Lessons kept in the code: the step's code
// must stay small (one call site per kind of dot, no unrolled per-head loops: it was 408 KB), nothing on a
// phase's path may divide 64-bit integers (the slices are planned once per launch), and no dot may be one
// long FMA chain (a one-row stage is split four ways).
// Tried and slower (docs/benchmarks.md): L2 prefetch ahead of the ring or during attention, hoisting the
// attention's cache loads above q's, pipelined barrier polls, all of a vector's loads issued before its stores
// to shared memory (856 against 843 us), ring stages dotted on tensor cores (mma.sync, ~5x fewer instructions:
// 887 against 872 us, the SM clock fell to ~1,830 MHz), o_proj folded into the attention phase (every CTA
// attending for its KV head group, o_proj's partial sums added as gate/up loads h: one barrier fewer, but 986
// us).
//
// Per layer (an exchange or a grid barrier after each phase):
//   A  x = rmsnorm(h) * input_norm (every CTA forms it in shared memory); q|k|v = x @ [Wq; Wk; Wv]^T -> qkv
//   B  attention (decode_attention.cuh): while the context is short, one CTA per KV head with every key and
//      value in registers; else one work item per (KV head, split of the keys 0..pos), partial softmax states
//      in `part`, and the last item of a KV head to finish (a counter) merges them into attn. The CTA holding
//      pos rotates the new key and writes it and the value into the cache
//   C  h = h + attn @ Wo^T
//   D  x = rmsnorm(h) * post_norm; act = silu(x @ Wg^T) * (x @ Wu^T)
//   E  h = h + act @ Wd^T
// then x = rmsnorm(h) * final_norm and the LM head with the argmax folded in: the last CTA to finish writes
// the token to ids (the next step's input), next, produced[pos] (when given), advances *pos, and (when given)
// the float32 logits row is written on the way.
//
// A weight matrix's rows are split evenly over the CTAs; a CTA's rows are contiguous, so its slice streams
// as stages of whole rows (gate and up: the same rows of both, side by side). Stage g of the stream uses
// slot g % slots and belongs to consumer warp g % slots (slots <= DS_WARPS): each slot has one owner warp, so
// its uses are waited for in order. (With a slot shared by two warps, one could wait for use u while use
// u - 1 is still in flight, and a parity wait cannot tell u from u - 2: it would read the stale stage.)
//
// Numerics follow the multi-kernel step (gemv.cuh, pointwise.cu rope_append, attention.cu decode): float32
// accumulation, each row's dot in gemv.cuh gemv_dot's order; every tensor the unfused step stores in the
// model dtype is rounded to it here too (q/k/v, rotated q/k, attention output, residual stream, SwiGLU
// output, logits); the RMSNorm reduction reproduces rmsnorm.cu's bit for bit. Only the attention's summation
// order differs (the softmax takes each split's exact maximum instead of a running one), so results match
// the unfused step to within the dtype's rounding.
//
// Shared data written by other CTAs is read with ld.global.cg (L2; L1 is not coherent across SMs). The
// grid barrier is an arrival counter in `ctl` that the last CTA to finish resets, so consecutive launches
// need no memset; a CTA that waits ~10 s for the others traps instead of hanging (the host launches cooperatively,
// so all CTAs are resident).
#include "decode_step.cuh"
#include "decode_attention.cuh"
#include "weight_ring.cuh"
#include "decode_dots.cuh"
#include "decode_stream.cuh"

/** DS_LL: whether all 8 words of a chunk carry the tag. */
MOPT_DEV bool chunk_ready(const U4& a, const U4& b, u32_t tag) {
  bool ok = true;
#pragma unroll
  for (int i = 0; i < 4; i++) ok = ok && (a.w[i] >> 16) == tag && (b.w[i] >> 16) == tag;
  return ok;
}
/**
 * DS_LL: n elements of a tagged vector into shared memory as they arrive. A thread keeps two chunks (8
 * elements each) in flight: each is polled, stored once its tags are current and its registers take the
 * thread's next chunk, so no chunk waits for another's round trip (the SwiGLU output is 2-3 chunks a thread).
 */
MOPT_DEV void load_tagged(u16_t* dst, const u32_t* words, u32_t tag, i64_t n) {
  const i64_t chunks = n / 8;
  i64_t v[2] = {(i64_t)threadIdx.x, (i64_t)threadIdx.x + DS_THREADS};
  U4 a[2], b[2];
#pragma unroll
  for (int s = 0; s < 2; s++)
    if (v[s] < chunks) a[s] = ld_relaxed16(words + 8 * v[s]), b[s] = ld_relaxed16(words + 8 * v[s] + 4);
  const long long t0 = clock64();
  while (v[0] < chunks || v[1] < chunks) {
    bool stored = false;
#pragma unroll
    for (int s = 0; s < 2; s++) {
      if (v[s] >= chunks || !chunk_ready(a[s], b[s], tag)) continue;
      U4 c;
#pragma unroll
      for (int i = 0; i < 2; i++) {
        c.w[i] = (a[s].w[2 * i] & 0xffffu) | (a[s].w[2 * i + 1] << 16);
        c.w[2 + i] = (b[s].w[2 * i] & 0xffffu) | (b[s].w[2 * i + 1] << 16);
      }
      reinterpret_cast<U4*>(dst)[v[s]] = c;
      v[s] += 2 * DS_THREADS;
      if (v[s] < chunks) a[s] = ld_relaxed16(words + 8 * v[s]), b[s] = ld_relaxed16(words + 8 * v[s] + 4);
      stored = true;
    }
    if (stored) continue;
    // nothing current yet: back off, then reload the chunks still waiting
    __nanosleep(DS_LL_SLEEP);
    ll_timeout(t0);
#pragma unroll
    for (int s = 0; s < 2; s++)
      if (v[s] < chunks) a[s] = ld_relaxed16(words + 8 * v[s]), b[s] = ld_relaxed16(words + 8 * v[s] + 4);
  }
}

/** n elements (a multiple of 8) of a vector other CTAs wrote, into shared memory (DS_LL: as they arrive). */
template <class S>
MOPT_DEV void load_shared(S* dst, const XVec& src, i64_t n) {
  if (!DS_LL || src.tagged == nullptr) {
    const U4* from = reinterpret_cast<const U4*>(src.plain);
    for (i64_t v = threadIdx.x; v < n / 8; v += DS_THREADS) reinterpret_cast<U4*>(dst)[v] = ld_cg16(from + v);
    csync();
    return;
  }
  ll_waiting(src);
  load_tagged(reinterpret_cast<u16_t*>(dst), src.tagged, src.tag, n);
  csync();
  ll_waited(src);
}

/** xs = rmsnorm(xs) * w in place (D elements in shared memory), bit for bit as rmsnorm.cu. */
template <class T>
MOPT_DEV void norm_shared(typename T::S* xs, const typename T::S* w, const DsArgs& A, float* red) {
  typedef typename T::S S;
  constexpr int N = VecN<S>::N;
  const float rs = rms_rstd<float>(block_sum(rms_sumsq_vec<T>(xs, A.D, (int)A.norm_threads), red, ConsumerSync()), A.D, __longlong_as_double(A.eps));
  for (i64_t v = threadIdx.x; v < A.D / N; v += DS_THREADS) {
    const Vec<S, N> xv = vec_load<N>(xs, v), wv = vec_load<N>(w, v);
    Vec<S, N> ov;
#pragma unroll
    for (int e = 0; e < N; e++) ov.v[e] = rms_elem<T>(xv.v[e], wv.v[e], rs);
    vec_store<N>(xs, v, ov);
  }
  csync();
}
/** The norm weight w into L1 (each thread the chunks norm_shared scales), so its L2 round trip overlaps the vector's. */
template <class S>
MOPT_DEV void prefetch_norm(const S* w, const DsArgs& A) {
  for (i64_t v = threadIdx.x; v < A.D / 8; v += DS_THREADS) asm volatile("prefetch.global.L1 [%0];" ::"l"(w + v * 8));
}
/**
 * xs = rmsnorm(src) * w (D elements into shared memory), bit for bit as rmsnorm.cu. The norm weight is
 * prefetched into L1 alongside src's load, so its L2 round trip is not a second one after the reduction.
 */
template <class T>
MOPT_DEV void load_norm_shared(typename T::S* xs, const XVec& src, const typename T::S* w, const DsArgs& A, float* red) {
  static_assert(VecN<typename T::S>::N == 8, "16-byte chunks of 16-bit values, as load_shared's");
  prefetch_norm(w, A);
  load_shared(xs, src, A.D);
  norm_shared<T>(xs, w, A, red);
}
/** A consumer warp's place in the stream: the stage counter, it mod the ring's slots, and the uses so far of its slot. */
struct DsCursor {
  u32_t g, gmod, uses;
};

/** The first stage of slice sl this warp will take (consume_seg's order), or sl.stages when it takes none. */
MOPT_DEV u32_t first_stage(const DsSlice& sl, const DsCursor& cur, const WRing& R) {
  const u32_t warp = threadIdx.x >> 5, slots = R.slots;
  if (warp >= slots) return sl.stages;
  const u32_t j = warp >= cur.gmod ? warp - cur.gmod : warp + slots - cur.gmod;
  return j < sl.stages ? j : sl.stages;
}
/** consume_seg's pre for its first stage (one-matrix slices), issued ahead: lane i's before(row i of the stage). */
template <class B>
MOPT_DEV u32_t early_pre(const DsSlice& sl, const DsCursor& cur, const WRing& R, B&& before) {
  const int lane = threadIdx.x & 31;
  const u32_t j = first_stage(sl, cur, R);
  if (j >= sl.stages) return 0u;
  const i64_t r = (i64_t)sl.r0 + (i64_t)j * sl.per, n = sl.r1 - r < sl.per ? sl.r1 - r : (i64_t)sl.per;
  return lane < DS_ROWS && lane < n ? (u32_t)before(r + lane) : 0u;
}

/**
 * Consumers: out(r, acc, pre) for each row r of this CTA's slice sl of x @ W^T (x in shared memory, K
 * elements; acc[j] is row r of matrix j, complete on every lane). Warp w takes the slice's stages of slot w
 * (stage g uses slot g % slots), its uses of the slot in order, so the parity to wait for is its use count's;
 * pre = before(r), issued by lane i for the i-th row of a group before the dots, so a load it makes (the
 * residual) is in flight with them; with has_early, the first stage's first group takes `early` instead
 * (early_pre's, issued before). Advances the cursor past the slice's stages.
 */
template <class T, int NW, class B, class F>
MOPT_DEV void consume_seg(const DsArgs& A, const DsSeg& s, const DsSlice& sl, DsCursor& cur, const WRing& R, const typename T::S* xs, B&& before, F&& out,
                          u32_t early = 0u, bool has_early = false) {
  typedef typename T::S S;
  constexpr int RW = NW == 2 ? 2 : DS_ROWS;  // rows of each matrix at once (registers: RW * NW accumulators)
  const int lane = threadIdx.x & 31;
  const u32_t warp = threadIdx.x >> 5, slots = R.slots;
  const i64_t chunks = s.K / 8;
  if (warp < slots) {
    for (u32_t j = first_stage(sl, cur, R); j < sl.stages; j += slots, has_early = false) {
      const u32_t st = cur.g + j;
      const i64_t r = (i64_t)sl.r0 + (i64_t)j * sl.per;
      const int n = (int)(sl.r1 - r < sl.per ? sl.r1 - r : (i64_t)sl.per);
      const S* w = reinterpret_cast<const S*>(wring_acquire_slot(R, warp, cur.uses & 1));
      cur.uses++;
      if (lane == 0) trace_stage(A, st, 1);
      if (NW == 1 && n == 1) {
        const u32_t pre = has_early ? early : lane == 0 ? (u32_t)before(r) : 0u;
        float a[NW] = {DS_ABLATE_DOT ? 0.f : warp_sum(dot_one_split<T>(smem_addr(w), smem_addr(xs), (u32_t)chunks, lane))};
        out(r, a, __shfl_sync(MOPT_FULL_MASK, pre, 0));
      } else {
        for (int i = 0; i < n; i += RW) {
          const u32_t pre = has_early && i == 0 ? early : lane < RW && i + lane < n ? (u32_t)before(r + i + lane) : 0u;
          float acc[NW][RW];
#pragma unroll
          for (int jj = 0; jj < NW; jj++)
#pragma unroll
            for (int q = 0; q < RW; q++) acc[jj][q] = 0.f;
          const u32_t w0 = smem_addr(w) + (u32_t)(i * s.K * 2);
          if (!DS_ABLATE_DOT) dot_rows<T, NW, RW, 2>(acc, w0, smem_addr(xs), n - i, chunks, (u32_t)(s.K * 2), (u32_t)R.stage / 2, lane);
          if (DS_SUM4) warp_sum_rows<NW, RW>(acc);  // all the group's sums before the first row's out()
#pragma unroll
          for (int q = 0; q < RW; q++) {
            float a[NW];
#pragma unroll
            for (int jj = 0; jj < NW; jj++) a[jj] = DS_SUM4 ? acc[jj][q] : warp_sum(acc[jj][q]);
            const u32_t p = __shfl_sync(MOPT_FULL_MASK, pre, q);
            if (i + q < n) out(r + i + q, a, p);
          }
        }
      }
      __syncwarp();
      if (lane == 0) wring_release_slot(R, warp), trace_stage(A, st, 2);
    }
  }
  cur.g += sl.stages;
  cur.gmod += sl.smod;
  if (cur.gmod >= slots) cur.gmod -= slots;
}
MOPT_DEV u32_t no_pre(i64_t) { return 0; }

/** Orderable key of a logit at row r: larger value wins, then the lower row (argmax's first-on-ties); NaN wins. */
MOPT_DEV u64_t argmax_key(float v, i64_t r) {
  const u32_t b = v == 0.f ? 0u : __float_as_uint(v);  // -0 ties with +0 (first index wins), as reduce.cu ExtremeR
  const u32_t ob = v != v ? 0xffffffffu : (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return ((u64_t)ob << 32) | (u64_t)(0xffffffffu - (u32_t)r);
}

MOPT_DEV void stamp(const DsArgs& A, int k) {
  if (A.timing != 0 && blockIdx.x == 0 && threadIdx.x == 0) {
    u64_t* t = reinterpret_cast<u64_t*>(A.timing);
    t[k] = global_ns();
    const i64_t S = stamps_of(A), clocks = S + 3 * DS_TRACE_STAGES + S * gridDim.x;
    if (k == 0) t[clocks] = clock64();
    if (k == S - 1) t[clocks + 1] = clock64();
  }
}

/** The consumer warps' part of the step (see the top of the file). */
template <class T>
MOPT_DEV void consume_step(const DsArgs& A, const WRing& R, const DsSlice* slices) {
  typedef typename T::S S;
  __shared__ float red[32];
  __shared__ u64_t best_s[DS_WARPS];
  __shared__ int last_s;
  S* xs = reinterpret_cast<S*>(fused_smem + A.vec_off);
  float* attn_smem = reinterpret_cast<float*>(fused_smem + A.attn_off);
  u32_t* ctl = reinterpret_cast<u32_t*>(A.ctl);
  const DsLayer* layers = reinterpret_cast<const DsLayer*>(A.layers);
  const i64_t D = A.D, QD = A.H * A.HD, KVD = A.KV * A.HD;
  const i64_t pos = *reinterpret_cast<const int*>(A.pos);
  const i64_t id = *reinterpret_cast<const int*>(A.ids);
  const int lane = threadIdx.x & 31;
  stamp(A, 0);

  // the vectors the phases exchange (h is the residual stream). DS_LL: phase k's output carries tag(k), and h
  // alternates between two buffers (the layer's input in 0, o_proj's output in 1). LL needs every CTA to write
  // part of each exchanged vector (rows of q, o_proj, gate/up and down), so that a reader holding a whole vector
  // knows every CTA is past reading the buffer that reader overwrites next; else the grid barriers run.
  // (not with the attention ablated: nothing would write the attention output's tags)
  const bool ll = DS_LL && !DS_ABLATE_ATTN && A.D >= gridDim.x && A.I >= gridDim.x && QD >= gridDim.x;
  // this launch's tag base, < 65535 (the previous launch's last CTA advanced it by the phase count); the host
  // keeps the phase count below 65535, so a word left from the previous launch never carries a current tag
  const u32_t base = DS_LL ? ld_cg_u32(ctl + 1) : 0u;
  auto tag = [=](i64_t k) { return 1u + (base + (u32_t)k) % 65535u; };
  u32_t* tw = reinterpret_cast<u32_t*>(A.tagged);
  auto xvec = [=](i64_t plain, i64_t words, i64_t k) { return XVec{reinterpret_cast<u16_t*>(plain), ll ? tw + words : nullptr, tag(k)}; };
  // word offsets of the tagged vectors: h (two buffers), q|k|v, the attention output, the SwiGLU output
  const i64_t t_h1 = D, t_qkv = 2 * D, t_attn = t_qkv + QD + 2 * KVD, t_act = t_attn + QD;
  u32_t passed = 0;  // grid_sync's arrival target
  auto end_phase = [&](int k) {
    if (ll) {
      csync();  // the next phase overwrites the shared vector
      if (threadIdx.x == 0) cta_done(A, k);
    } else {
      grid_sync(ctl, A, k, passed);
    }
    stamp(A, k);
  };
  // lambdas capture by value: a by-reference capture would force the captured locals into local memory
  auto residual = [=](const XVec& in) { return [=](i64_t r) { return (u32_t)in.get(r); }; };
  auto add_residual = [=](const XVec& out) {
    return [=](i64_t r, float (&acc)[1], u32_t res) {
      if (lane == 0) out.put(r, T::store(T::load((u16_t)res) + T::load(T::store(acc[0]))));
    };
  };
  // row r's dot into out[off + r]
  auto store_at = [=](const XVec& out, i64_t off) {
    return [=](i64_t r, float (&acc)[1], u32_t) {
      if (lane == 0) out.put(off + r, T::store(acc[0]));
    };
  };

  // h = embed[id]
  {
    const XVec h0 = xvec(A.h, 0, 1);
    const U4* src = reinterpret_cast<const U4*>(reinterpret_cast<const S*>(A.embed) + id * D);
    for (i64_t v = (i64_t)blockIdx.x * DS_THREADS + threadIdx.x; v < D / 8; v += (i64_t)gridDim.x * DS_THREADS) {
      const U4 c = src[v];
      if (!ll) {
        reinterpret_cast<U4*>(h0.plain)[v] = c;
      } else {
#pragma unroll
        for (int i = 0; i < 8; i++) h0.put(8 * v + i, (u16_t)(c.w[i / 2] >> (16 * (i % 2))));
      }
    }
  }
  end_phase(1);

  DsCursor cur{0, 0, 0};  // advanced exactly as produce_step advances its stage counter
  for (i64_t l = 0; l < A.nlayers; l++) {
    const DsLayer& Ly = layers[l];
    const int k0 = 2 + 5 * (int)l;  // phase A's index; the layer's input h is phase k0 - 1's output
    const XVec h_in = xvec(A.h, 0, k0 - 1), qkv = xvec(A.qkv, t_qkv, k0), attn = xvec(A.attn, t_attn, k0 + 1);
    const XVec h_mid = xvec(A.h, t_h1, k0 + 2), act = xvec(A.act, t_act, k0 + 3), h_out = xvec(A.h, 0, k0 + 4);
    // A: q | k | v of rmsnorm(h)
    if (!DS_ABLATE_NORM) load_norm_shared<T>(xs, h_in, reinterpret_cast<const S*>(Ly.in_norm), A, red);
    mark(A, l, 0);
#pragma unroll 1
    for (int k = 0; k < 3; k++) consume_seg<T, 1>(A, layer_seg(A, Ly, k), slices[k], cur, R, xs, no_pre, store_at(qkv, k == 0 ? 0 : k == 1 ? QD : QD + KVD));
    end_phase(k0);
    // B: attention
    if (!DS_ABLATE_ATTN) attention_layer<T>(A, Ly, (int)l, (int)pos, attn_smem, reinterpret_cast<float*>(xs), A.attn_off - A.vec_off, ctl, qkv, attn);
    end_phase(k0 + 1);
    // C (m = 0): h += attn @ Wo^T; D: act = silu(x @ Wg^T) * (x @ Wu^T), x = rmsnorm(h); E (m = 1): h += act @ Wd^T.
    // C and E share one call site (one copy of the dot loop: the step's code must stay in the instruction cache)
#pragma unroll 1
    for (int m = 0; m < 2; m++) {
      if (m == 1) {
        // x = rmsnorm(h)
        if (!DS_ABLATE_NORM) load_norm_shared<T>(xs, h_mid, reinterpret_cast<const S*>(Ly.post_norm), A, red);
        mark(A, l, 6);
        consume_seg<T, 2>(A, layer_seg(A, Ly, 4), slices[4], cur, R, xs, no_pre, [=](i64_t r, float (&acc)[2], u32_t) {
          if (lane == 0) act.put(r, T::store(swiglu_one<T>(T::store(acc[0]), T::store(acc[1]))));
        });
        end_phase(k0 + 3);
      }
      // the residual of this warp's first row goes out before the input vector's load: the two L2 round trips
      // overlap instead of following each other (H200: 872 -> 866 us a step, within the spread)
      const XVec res = pick(m == 0, h_in, h_mid);
      const u32_t early = early_pre(slices[m == 0 ? 3 : 5], cur, R, residual(res));
      load_shared(xs, pick(m == 0, attn, act), m == 0 ? QD : A.I);
      mark(A, l, m == 0 ? 5 : 7);
      consume_seg<T, 1>(A, layer_seg(A, Ly, m == 0 ? 3 : 5), slices[m == 0 ? 3 : 5], cur, R, xs, residual(res), add_residual(pick(m == 0, h_mid, h_out)), early, true);
      end_phase(k0 + 2 + 2 * m);
    }
  }

  // LM head of rmsnorm(h), argmax folded in
  load_norm_shared<T>(xs, xvec(A.h, 0, 1 + 5 * A.nlayers), reinterpret_cast<const S*>(A.final_norm), A, red);
  float* logits = reinterpret_cast<float*>(A.logits);
  u64_t best = 0;
  consume_seg<T, 1>(A, lm_seg(A), slices[DS_SEGS - 1], cur, R, xs, no_pre, [=, &best](i64_t r, float (&acc)[1], u32_t) {
    const float v = T::load(T::store(acc[0]));
    const u64_t key = argmax_key(v, r);
    best = key > best ? key : best;
    if (logits != nullptr && lane == 0) logits[r] = v;
  });
  if (lane == 0) best_s[threadIdx.x >> 5] = best;
  csync();
  stamp(A, 2 + 5 * (int)A.nlayers);
  if (threadIdx.x == 0) {
    cta_done(A, 2 + 5 * (int)A.nlayers);
    for (int w = 1; w < DS_WARPS; w++) best = best_s[w] > best ? best_s[w] : best;  // thread 0's own is best_s[0]
    atomicMax(reinterpret_cast<unsigned long long*>(ctl + DS_CTL_ARGMAX), (unsigned long long)best);
    __threadfence();
    last_s = atomicAdd(ctl + 2, 1u) == gridDim.x - 1;
  }
  csync();
  if (last_s && threadIdx.x == 0) {
    // every CTA has offered its best: publish the token, reset the shared words for the next launch
    __threadfence();
    const u64_t key = atomicExch(reinterpret_cast<unsigned long long*>(ctl + DS_CTL_ARGMAX), 0ull);
    const int tok = (int)(0xffffffffu - (u32_t)(key & 0xffffffffu));
    ctl[0] = 0;  // every CTA is past its last grid barrier and attention phase (it has reached the LM head's end)
    if (DS_LL) ctl[1] = (base + (u32_t)stamps_of(A)) % 65535u;
    ctl[2] = 0;
    for (i64_t kv = 0; kv < A.KV; kv++) ctl[DS_CTL_ATTN + kv] = 0;
    reinterpret_cast<int*>(A.ids)[0] = tok;
    reinterpret_cast<int*>(A.next)[0] = tok;
    if (A.produced != 0) reinterpret_cast<int*>(A.produced)[pos] = tok;
    reinterpret_cast<int*>(A.pos)[0] = (int)(pos + 1);
  }
}

template <class T>
MOPT_DEV void decode_step_body(const DsArgs& A) {
#if __CUDA_ARCH__ >= 900
  __shared__ u64_t full_b[DS_WARPS], empty_b[DS_WARPS];
  __shared__ DsSlice slices[DS_SEGS];
  const i64_t pos = *reinterpret_cast<const int*>(A.pos);
  const i64_t id = *reinterpret_cast<const int*>(A.ids);
  // the host checks these before queueing a step; a bad value (a caller writing the device buffers itself,
  // or a ring that does not fit) fails the launch instead of reading or writing out of bounds
  if (pos < 0 || pos >= A.cap || id < 0 || id >= A.V || A.slots < 1 || A.slots > DS_WARPS || blockDim.x != DS_BLOCK) __trap();
  const WRing R{fused_smem, full_b, empty_b, (u32_t)A.slots, (u32_t)A.stage};
  if (threadIdx.x == 0) {
    ds_at_barrier = 0;
    for (u32_t s = 0; s < R.slots; s++) mbar_init(R.full + s, 1), mbar_init(R.empty + s, 1);
    mbar_init_fence();
  }
  // the same for every CTA and thread of the launch (it decides the stream's order)
  plan_slices(A, R, slices);
  __syncthreads();  // the last barrier of the whole CTA: from here the producer and the consumers run apart
  if (threadIdx.x >= DS_THREADS) {
    if (threadIdx.x == DS_THREADS) produce_step(A, R, slices);
    return;
  }
  consume_step<T>(A, R, slices);
#else
  __trap();  // bulk copies and mbarrier transaction counts need sm_90 (decode-step.ts does not launch it below)
#endif
}

#define MOPT_DEF_DECODE_STEP(T) \
  extern "C" __global__ void __launch_bounds__(DS_BLOCK, 1) decode_step_##T(DsArgs A) { decode_step_body<dt::T>(A); }
MOPT_DEF_DECODE_STEP(bf16)
MOPT_DEF_DECODE_STEP(f16)
