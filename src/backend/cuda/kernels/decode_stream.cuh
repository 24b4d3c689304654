// The weight stream of the whole-step decode kernel (decode_step.cu): which rows of which matrices each CTA
// streams, in the order its consumer warps take them (planned once per launch), and the producer thread that
// copies them into the shared-memory ring (weight_ring.cuh).
#pragma once
#include "decode_step.cuh"
#include "weight_ring.cuh"

/**
 * One weight matrix of the step as streamed: rows of K elements ld apart (nw = 2: two matrices' same rows).
 * ld > K: each row is a piece of a wider matrix row (o_proj under DS_OFOLD).
 */
struct DsSeg {
  i64_t w0, w1, rows, K, ld;
  int nw;
};
// o_proj folded into the attention phase (an experiment, 0 = off; only where the register attention path runs):
// every CTA computes its KV head group's attention (KV head blockIdx % KV) and then, for its share of o_proj's
// rows, the dot with that group's G * HD columns only, into float32 partial sums (A.part, [KV][D]); gate/up's
// phase sums the KV partials in order while it loads h. One grid barrier and o_proj's phase fewer per layer.
#ifndef DS_OFOLD
#define DS_OFOLD 0
#endif
/** The layer's matrices in stream order: q, k, v, o, gate|up, down (o: this CTA's KV head group's columns when folded). */
MOPT_DEV DsSeg layer_seg(const DsArgs& A, const DsLayer& L, int k, bool fold) {
  const i64_t QD = A.H * A.HD, KVD = A.KV * A.HD;
  switch (k) {
    case 0: return DsSeg{L.wq, 0, QD, A.D, A.D, 1};
    case 1: return DsSeg{L.wk, 0, KVD, A.D, A.D, 1};
    case 2: return DsSeg{L.wv, 0, KVD, A.D, A.D, 1};
    case 3: {
      if (!fold) return DsSeg{L.wo, 0, A.D, QD, QD, 1};
      const i64_t GHD = (i64_t)((u32_t)A.H / (u32_t)A.KV) * A.HD;  // 32-bit divisions: nothing 64-bit on a phase's path
      return DsSeg{L.wo + 2 * GHD * (i64_t)((u32_t)blockIdx.x % (u32_t)A.KV), 0, A.D, GHD, QD, 1};
    }
    case 4: return DsSeg{L.wg, L.wu, A.I, A.D, A.D, 2};
    default: return DsSeg{L.wd, 0, A.D, A.I, A.I, 1};
  }
}
#define DS_LAYER_SEGS 6
MOPT_DEV DsSeg lm_seg(const DsArgs& A) { return DsSeg{A.lm_head, 0, A.V, A.D, A.D, 1}; }

#define DS_SEGS 7  // the slices: q, k, v, o, gate|up, down (the same in every layer), then the LM head's

/**
 * This CTA's rows [r0, r1) of a matrix, the rows one stage holds (of each matrix, for nw = 2), the slice's
 * stage count and that count mod the ring's slots. (The host keeps every row count below 2^31.)
 */
struct DsSlice {
  u32_t r0, r1, per, stages, smod;
};
/**
 * The step's DS_SEGS slices into shared memory, once per launch, by threads 0 .. DS_SEGS - 1 (the caller then
 * syncs the CTA). Recomputed in every phase, their 64-bit divisions held each consumer warp ~0.8 us per matrix
 * before it could take its first stage (decode-phases traces: the v stage's warp started 2.4 us after q's).
 */
// Most rows per stage of q, k, v and o_proj (0 = as many as a stage holds): their stages are in the ring before
// their phase starts, so a phase takes as long as one warp needs for its stages (4 rows of 2,048 in
// Llama-3.2-1B, ~2 us a stage); with 2 rows per stage more warps share the phase, at the cost of ring bytes held
// through the attention phase (H200: 886 -> 879 us a step; 1 row per stage: slower).
#ifndef DS_QKVO_ROWS
#define DS_QKVO_ROWS 2
#endif

MOPT_DEV void plan_slices(const DsArgs& A, const WRing& R, DsSlice* out, bool fold) {
  const int k = (int)threadIdx.x;
  if (k >= DS_SEGS) return;
  const DsSeg s = k < DS_LAYER_SEGS ? layer_seg(A, DsLayer{}, k, fold) : lm_seg(A);
  // the rows split over the grid; a folded o_proj's over the CTAs of this KV head group (blockIdx % KV)
  const i64_t members = fold && k == 3 ? (gridDim.x - blockIdx.x % A.KV + A.KV - 1) / A.KV : gridDim.x;
  const i64_t me = fold && k == 3 ? blockIdx.x / A.KV : blockIdx.x;
  const i64_t r0 = s.rows * me / members, r1 = s.rows * (me + 1) / members;
  i64_t per = (i64_t)R.stage / (s.nw * s.K * 2);
  if (DS_QKVO_ROWS > 0 && k < 4 && !(fold && k == 3) && per > DS_QKVO_ROWS) per = DS_QKVO_ROWS;
  const i64_t stages = (r1 - r0 + per - 1) / per;
  out[k] = DsSlice{(u32_t)r0, (u32_t)r1, (u32_t)per, (u32_t)stages, (u32_t)(stages % R.slots)};
}

/** With timing, CTA 0 records event k (0 issued, 1 landed, 2 freed) of ring stage g. */
MOPT_DEV void trace_stage(const DsArgs& A, u32_t g, int k) {
  if (A.timing != 0 && blockIdx.x == 0 && g < DS_TRACE_STAGES) reinterpret_cast<u64_t*>(A.timing)[stamps_of(A) + 3 * g + k] = global_ns();
}

// Copies one producer keeps in flight (issued, not landed). More buys no bandwidth (a few per SM cover HBM's
// latency) but queues every L2 access behind them: the grid barriers' and activation loads' round trips
// stretch to several microseconds with the whole ring (13 x 16 KB per SM, ~27 MB) in flight. (With the
// barrier-time throttle, 4 and 5 timed 862 us a step against 874 at 3, once each: within the run-to-run spread.)
#ifndef DS_INFLIGHT
#define DS_INFLIGHT 3
#endif

/**
 * A walk over this CTA's stream, one stage at a time, in the order the consumers take them: layer l's
 * matrices (k = 0 .. DS_LAYER_SEGS - 1), then the LM head (l == nlayers), each matrix's rows from
 * plan_slices' table.
 */
struct StageWalk {
  i64_t l = 0, r = 0;
  int k = 0;
  DsSeg s{};
  DsSlice sl{0, 0, 1, 0, 0};
  bool started = false;
};
/** A stage's source: n rows of row_bytes, pitch bytes apart, from p0 (and p1, for nw = 2). */
struct StageSrc {
  const unsigned char *p0, *p1;
  u32_t n, row_bytes;
  i64_t pitch;
};
/** The walk's next stage; false past the step's end. */
MOPT_DEV bool walk_next(const DsArgs& A, const DsSlice* slices, bool fold, StageWalk& w, StageSrc& src) {
  const DsLayer* layers = reinterpret_cast<const DsLayer*>(A.layers);
  while (!w.started || w.r >= w.sl.r1) {
    if (w.started && ++w.k == DS_LAYER_SEGS) w.k = 0, w.l++;
    if (w.l > A.nlayers || (w.l == A.nlayers && w.k > 0)) return false;
    w.started = true;
    w.s = w.l < A.nlayers ? layer_seg(A, layers[w.l], w.k, fold) : lm_seg(A);
    w.sl = slices[w.l < A.nlayers ? w.k : DS_SEGS - 1];
    w.r = w.sl.r0;
  }
  src.n = (u32_t)(w.sl.r1 - w.r < w.sl.per ? w.sl.r1 - w.r : (i64_t)w.sl.per);
  src.row_bytes = (u32_t)(w.s.K * 2);
  src.pitch = w.s.ld * 2;
  src.p0 = reinterpret_cast<const unsigned char*>(w.s.w0) + w.r * src.pitch;
  src.p1 = w.s.nw == 2 ? reinterpret_cast<const unsigned char*>(w.s.w1) + w.r * src.pitch : nullptr;
  w.r += w.sl.per;
  return true;
}

/** The producer thread: every weight of the step into the ring, in the order the consumers take them. */
MOPT_DEV void produce_step(const DsArgs& A, const WRing& R, const DsSlice* slices, bool fold) {
  StageWalk copy;
  StageSrc src;
  WSlot at, lag, prev;  // stage g's slot and use, stage g - DS_INFLIGHT's and g - 1's (no division per stage)
  for (u32_t g = 0; walk_next(A, slices, fold, copy, src); prev = at, g++, at.next(R.slots)) {
    // with slots <= DS_INFLIGHT the ring itself bounds the copies in flight, and stage g - DS_INFLIGHT's slot
    // may already be two uses on (a parity wait would then never end)
    if (DS_INFLIGHT < R.slots && g >= DS_INFLIGHT) wring_landed(R, lag), lag.next(R.slots);
    // while this CTA waits at a grid barrier: one copy in flight (decode_step.cuh set_at_barrier)
    if (g > 0 && R.slots > 1 && at_barrier() != 0) wring_landed(R, prev);
    const u32_t bytes = src.n * src.row_bytes;
    unsigned char* dst = wring_claim(R, at, bytes * (src.p1 != nullptr ? 2 : 1));
    if (src.pitch == src.row_bytes) {
      bulk_copy_g2s(dst, src.p0, bytes, R.full + at.slot);
      if (src.p1 != nullptr) bulk_copy_g2s(dst + R.stage / 2, src.p1, bytes, R.full + at.slot);
    } else {
      for (u32_t i = 0; i < src.n; i++) {
        bulk_copy_g2s(dst + i * src.row_bytes, src.p0 + i * src.pitch, src.row_bytes, R.full + at.slot);
        if (src.p1 != nullptr) bulk_copy_g2s(dst + R.stage / 2 + i * src.row_bytes, src.p1 + i * src.pitch, src.row_bytes, R.full + at.slot);
      }
    }
    trace_stage(A, g, 0);
  }
}
