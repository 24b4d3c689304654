// Definitions the whole-step decode kernel (decode_step.cu) and its attention phase (decode_attention.cuh)
// share: the CTA's roles, the argument structs the host fills (decode-step.ts), the consumer warps' barriers
// (CTA and grid-wide), loads of data other CTAs wrote, and the timing records.
#pragma once
#include "fused.cuh"

#define DS_WARPS 15    // consumer warps; warp DS_WARPS is the producer
#define DS_THREADS 480 // consumer threads, 32 * DS_WARPS
#define DS_BLOCK 512   // the CTA (a literal: test/backend/cuda-sources.test.ts reads the launch bounds)
static_assert(DS_THREADS == 32 * DS_WARPS && DS_BLOCK == DS_THREADS + 32, "15 consumer warps and one producer warp");

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
  // DS_LL's tagged copies of the exchanged vectors, zeroed by the host: u32 words [2][D] h, [H*HD + 2*KV*HD]
  // q|k|v, [H*HD] the attention output, [I] the SwiGLU output
  i64_t tagged;
  i64_t splits, chunk_max, scale;                       // scale: float32 bits
  // dynamic shared memory (bytes): the weight ring (slots stages of `stage` bytes) at 0, the activation
  // vector at vec_off, the attention's scratch at attn_off
  i64_t stage, slots, vec_off, attn_off;
  // 0, or u64 [S + 3 * DS_TRACE_STAGES + S * grid + 2 + DS_MARKS * nlayers], S = 2 + 5 * nlayers + 1:
  // %globaltimer (ns) of CTA 0 at the start and after each phase, then of each of CTA 0's first DS_TRACE_STAGES
  // ring stages when it was issued, landed and freed, then of each CTA when it finished each phase (before the
  // barrier), then CTA 0's clock64 at the start and the end (the SM clock rate), then CTA 0's points inside
  // each layer's phases (mark())
  i64_t timing;
};
#define DS_TRACE_STAGES 4096
// Ablations for bench/decode-phases.ts (MOPT_NVRTC_DEFINES): 1 skips that part of the work (results are
// garbage) to time what is left. Always 0 in use.
#ifndef DS_ABLATE_ATTN
#define DS_ABLATE_ATTN 0
#endif
#ifndef DS_ABLATE_NORM
#define DS_ABLATE_NORM 0
#endif
#ifndef DS_ABLATE_DOT  // consumers free each stage without dotting it: how much the dots' time sets the pace
#define DS_ABLATE_DOT 0
#endif
// ctl words: [0] grid barrier arrivals this launch, [1] launches so far (DS_LL's tags), [2] CTAs done with the
// LM head, [4..5] argmax key (u64), [8 + g] attention splits done for KV head g.
#define DS_CTL_ARGMAX 4
#define DS_CTL_ATTN 8

/** Barrier of the consumer warps only (the producer thread never waits for them). */
MOPT_DEV void csync() { asm volatile("bar.sync 1, %0;" ::"n"(DS_THREADS) : "memory"); }
struct ConsumerSync {
  __device__ __forceinline__ void operator()() const { csync(); }
  __device__ __forceinline__ int warps() const { return DS_WARPS; }
};

// While thread 0 waits at a grid barrier, the producer keeps one copy in flight instead of DS_INFLIGHT: the
// barrier's L2 round trips queue behind the whole grid's weight stream, and every CTA waits at about the same
// time, so the queue shortens for all of them (H200, 2026-11-29: 920 -> 886 us a step). Slower: no copies at
// all while waiting (934 us), and one in flight through the whole q/k/v, attention and o_proj phases (down_proj
// lost more than they gained); polling with several relaxed loads in flight and one fence (974 us).
__shared__ u32_t ds_at_barrier;  // 1 while thread 0 waits at a grid barrier
MOPT_DEV void set_at_barrier(u32_t v) {
  asm volatile("st.volatile.shared.u32 [%0], %1;" ::"r"((u32_t)__cvta_generic_to_shared(&ds_at_barrier)), "r"(v) : "memory");
}
MOPT_DEV u32_t at_barrier() {
  u32_t v;
  asm volatile("ld.volatile.shared.u32 %0, [%1];" : "=r"(v) : "r"((u32_t)__cvta_generic_to_shared(&ds_at_barrier)) : "memory");
  return v;
}

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
MOPT_DEV u32_t ld_cg_u32(const void* p) {
  u32_t v;
  asm volatile("ld.global.cg.u32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}
MOPT_DEV float ld_cg_f32(const float* p) {
  float v;
  asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p));
  return v;
}

MOPT_DEV u64_t global_ns() {
  u64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
MOPT_DEV i64_t stamps_of(const DsArgs& A) { return 3 + 5 * A.nlayers; }
// Points inside a layer's phases CTA 0 records with timing: 0 q/k/v's input normed; the attention of KV head 0 on
// the register path: 1 q/k/v arrived, 2 scores, 3 softmax, 4 output stored; 5 o_proj's input arrived; 6
// gate/up's input normed; 7 down's input arrived.
// They are compiled in only with DS_MARK=1 (bench/decode-step-variants.sh "DS_MARK=1"): the step's code must stay
// small, and the default build is the one timed.
#define DS_MARKS 8
#ifndef DS_MARK
#define DS_MARK 0
#endif
/** With timing, CTA 0's thread 0 records point m of layer l (after a CTA barrier: the whole CTA is there). */
MOPT_DEV void mark(const DsArgs& A, i64_t l, int m) {
  if (DS_MARK && A.timing != 0 && blockIdx.x == 0 && threadIdx.x == 0) {
    const i64_t S = stamps_of(A);
    reinterpret_cast<u64_t*>(A.timing)[S + 3 * DS_TRACE_STAGES + S * gridDim.x + 2 + DS_MARKS * l + m] = global_ns();
  }
}
/** With timing, records when this CTA finished phase k (thread 0, after the CTA's own barrier). */
MOPT_DEV void cta_done(const DsArgs& A, int k) {
  if (A.timing != 0) reinterpret_cast<u64_t*>(A.timing)[stamps_of(A) + 3 * DS_TRACE_STAGES + (i64_t)k * gridDim.x + blockIdx.x] = global_ns();
}

/**
 * Grid-wide barrier of the consumer warps after phase k: their writes before it are visible to all of them
 * after it. ctl[0] counts arrivals over the whole launch (reset by the last CTA at its end), so a CTA's n-th
 * barrier is complete once it reads n * grid: arriving is one release-add that nobody waits for, and the last
 * arriver has nothing more to do (a reset-and-flip barrier costs it three more dependent L2 round trips, each
 * ~1 us while the weight stream loads the memory system). `passed` is thread 0's count of barriers times grid.
 */
MOPT_DEV void grid_sync(u32_t* ctl, const DsArgs& A, int k, u32_t& passed) {
  csync();
  if (threadIdx.x == 0) {
    cta_done(A, k);
    passed += gridDim.x;
    set_at_barrier(1u);
    asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(ctl), "r"(1u) : "memory");
    const long long t0 = clock64();
    while ((int)(ld_acquire_u32(ctl) - passed) < 0)
      if (clock64() - t0 > (1ll << 34)) __trap();  // ~10 s: a CTA never arrived (not co-resident): fail, not hang
    set_at_barrier(0u);
  }
  csync();
}

// Low-latency exchange (the default; 0 = grid barriers): the vectors one phase writes and the next reads (h,
// q|k|v, the attention output, the SwiGLU output) travel as 32-bit words holding the 16-bit value and a 16-bit
// tag of the phase that wrote it, as in NCCL's LL protocol (a 32-bit store is seen whole or not at all):
// readers poll the data until every tag is current, so the data's arrival is the barrier. A grid barrier costs
// a release fence (the CTA's stores acknowledged), the arrival, a poll and then the load of the data, ~4 L2
// round trips behind the weight stream; here a store and a poll. Readers back off DS_LL_SLEEP ns between polls
// and throttle their CTA's weight stream while they wait (set_at_barrier), as at a grid barrier. H200,
// Llama-3.2-1B, 2026-11-29: 790.2 / 791.0 / 790.7 us a step against 843.4 with grid barriers (DS_LL_SLEEP 32:
// 800; 512: 805). (Tried once before the throttle existed, every thread spinning without backoff: slower,
// 1,219 against 1,178 us.)
#ifndef DS_LL
#define DS_LL 1
#endif
#ifndef DS_LL_SLEEP
#define DS_LL_SLEEP 128
#endif
/** ~10 s of polling without the writer's data: fail, not hang. */
MOPT_DEV void ll_timeout(long long t0) {
  if (clock64() - t0 > (1ll << 34)) __trap();
}
// the tagged words are written and polled by different CTAs at once: relaxed (gpu scope) or volatile accesses
MOPT_DEV void st_relaxed_u32(u32_t* p, u32_t v) { asm volatile("st.relaxed.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory"); }
MOPT_DEV u32_t ld_relaxed_u32(const u32_t* p) {
  u32_t v;
  asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
MOPT_DEV U4 ld_relaxed16(const void* p) {
  U4 c;
  asm volatile("ld.relaxed.gpu.global.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(c.w[0]), "=r"(c.w[1]), "=r"(c.w[2]), "=r"(c.w[3]) : "l"(p) : "memory");
  return c;
}

/** A vector one phase writes and the next reads: 16-bit values (behind a grid barrier) or (DS_LL) tagged words. */
struct XVec {
  u16_t* plain;
  u32_t* tagged;  // DS_LL: the tagged words (nullptr on the barrier path)
  u32_t tag;      // DS_LL: the writing phase's tag (never 0: the host zeroes the words)
  __device__ __forceinline__ void put(i64_t i, u16_t v) const {
    if (DS_LL && tagged != nullptr)
      st_relaxed_u32(tagged + i, (u32_t)v | (tag << 16));
    else
      plain[i] = v;
  }
  /** Element i's raw word, load issued (finish it with ready(); loads of several elements overlap). */
  __device__ __forceinline__ u32_t fetch(i64_t i) const { return DS_LL && tagged != nullptr ? ld_relaxed_u32(tagged + i) : (u32_t)ld_cg_u16(plain + i); }
  /** The value of element i from fetch()'s word w, polling until its writer's tag is there. */
  __device__ __forceinline__ u16_t ready(u32_t w, i64_t i) const {
    if (DS_LL && tagged != nullptr && (w >> 16) != tag) {
      const long long t0 = clock64();
      do {
        __nanosleep(DS_LL_SLEEP);
        w = ld_relaxed_u32(tagged + i);
        ll_timeout(t0);
      } while ((w >> 16) != tag);
    }
    return (u16_t)(w & 0xffffu);
  }
  __device__ __forceinline__ u16_t get(i64_t i) const { return ready(fetch(i), i); }
  /**
   * ready() for N words fetched together: polls until all are current, reloading only the stale ones (one at
   * a time would pay a round trip per word after the last write).
   */
  template <int N>
  __device__ __forceinline__ void ready_all(u32_t (&w)[N], const i64_t (&idx)[N]) const {
    if (!DS_LL || tagged == nullptr) return;
    const long long t0 = clock64();
    for (;;) {
      bool ok = true;
#pragma unroll
      for (int j = 0; j < N; j++) ok = ok && (w[j] >> 16) == tag;
      if (ok) return;
      __nanosleep(DS_LL_SLEEP);
      ll_timeout(t0);
#pragma unroll
      for (int j = 0; j < N; j++)
        if ((w[j] >> 16) != tag) w[j] = ld_relaxed_u32(tagged + idx[j]);
    }
  }
};
// Whether a CTA's weight stream throttles (one copy in flight) while its threads poll for a tagged input
// vector, as at a grid barrier (1, the default; 0 = the stream runs on at DS_INFLIGHT: H200, 2026-11-29,
// 815.2 / 816.1 against 790.0 / 790.0 us a step: the polls' round trips queue behind the copies).
#ifndef DS_LL_THROTTLE
#define DS_LL_THROTTLE 1
#endif
/** DS_LL: the CTA's weight stream throttles while its threads poll for the tagged vector v... */
MOPT_DEV void ll_waiting(const XVec& v) {
  if (DS_LL && DS_LL_THROTTLE && v.tagged != nullptr && threadIdx.x == 0) set_at_barrier(1u);
}
/** ...and runs again once they are past it (after the CTA barrier that follows). */
MOPT_DEV void ll_waited(const XVec& v) {
  if (DS_LL && DS_LL_THROTTLE && v.tagged != nullptr && threadIdx.x == 0) set_at_barrier(0u);
}
/** c ? a : b, field by field (a whole-struct select put both in local memory). */
MOPT_DEV XVec pick(bool c, const XVec& a, const XVec& b) { return XVec{c ? a.plain : b.plain, c ? a.tagged : b.tagged, c ? a.tag : b.tag}; }
