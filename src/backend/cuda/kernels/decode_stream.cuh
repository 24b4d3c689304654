// The weight stream of the whole-step decode kernel (decode_step.cu): which rows of which matrices each CTA
// streams, in the order its consumer warps take them (planned once per launch), and the producer thread that
// copies them into the shared-memory ring (weight_ring.cuh).
#pragma once
#include "decode_step.cuh"
#include "weight_ring.cuh"

/** One weight matrix of the step as streamed: rows of K elements (nw = 2: two matrices' same rows). */
struct DsSeg {
  i64_t w0, w1, rows, K;
  int nw;
};
/** The layer's matrices in stream order: q, k, v, o, gate|up, down. */
MOPT_DEV DsSeg layer_seg(const DsArgs& A, const DsLayer& L, int k) {
  const i64_t QD = A.H * A.HD, KVD = A.KV * A.HD;
  switch (k) {
    case 0: return DsSeg{L.wq, 0, QD, A.D, 1};
    case 1: return DsSeg{L.wk, 0, KVD, A.D, 1};
    case 2: return DsSeg{L.wv, 0, KVD, A.D, 1};
    case 3: return DsSeg{L.wo, 0, A.D, QD, 1};
    case 4: return DsSeg{L.wg, L.wu, A.I, A.D, 2};
    default: return DsSeg{L.wd, 0, A.D, A.I, 1};
  }
}
#define DS_LAYER_SEGS 6
MOPT_DEV DsSeg lm_seg(const DsArgs& A) { return DsSeg{A.lm_head, 0, A.V, A.D, 1}; }

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
// Llama-3.2-1B, ~2 us a stage); with fewer rows per stage more warps share the phase, at the cost of ring bytes
// held through the attention phase. H200: 4 -> 2 rows 886 -> 879 us a step (1 row: slower); since the streamed
// weights leave L2 first (weight_ring.cuh WR_EVICT_FIRST), 2 -> 3 rows 751.2 / 750.3 -> 740.5 / 741.4 us
// (2026-11-29, q/k/v 6.0 -> 5.3 us a layer).
#ifndef DS_QKVO_ROWS
#define DS_QKVO_ROWS 3
#endif
// o_proj's own limit: o_proj's stages wait in the ring through the attention phase, so more rows per stage leave
// more of the ring to the gate|up stages behind them, fewer rows let more warps share o_proj's dots. H200,
// 2026-11-29: with q/k/v at 2, o_proj 2 -> 4 rows 750.8 -> 757.2 us a step; with q/k/v at 3, o_proj 3 -> 2 rows
// 739.3 / 739.8 -> 737.0 / 736.0 us; q/k/v 4 and o_proj 3: 743.7 / 743.1.
#ifndef DS_O_ROWS
#define DS_O_ROWS 2
#endif

MOPT_DEV void plan_slices(const DsArgs& A, const WRing& R, DsSlice* out) {
  const int k = (int)threadIdx.x;
  if (k >= DS_SEGS) return;
  const DsSeg s = k < DS_LAYER_SEGS ? layer_seg(A, DsLayer{}, k) : lm_seg(A);
  const i64_t r0 = s.rows * blockIdx.x / gridDim.x, r1 = s.rows * (blockIdx.x + 1) / gridDim.x;
  i64_t per = (i64_t)R.stage / (s.nw * s.K * 2);
  const i64_t most = k < 3 ? DS_QKVO_ROWS : k == 3 ? DS_O_ROWS : 0;  // 0: as many as a stage holds
  if (most > 0 && per > most) per = most;
  const i64_t stages = (r1 - r0 + per - 1) / per;
  out[k] = DsSlice{(u32_t)r0, (u32_t)r1, (u32_t)per, (u32_t)stages, (u32_t)(stages % R.slots)};
}

/** With timing, CTA 0 records event k (0 issued, 1 landed, 2 freed) of ring stage g. */
MOPT_DEV void trace_stage(const DsArgs& A, u32_t g, int k) {
  if (A.timing != 0 && blockIdx.x == 0 && g < DS_TRACE_STAGES) reinterpret_cast<u64_t*>(A.timing)[stamps_of(A) + 3 * g + k] = global_ns();
}

// Copies one producer keeps in flight (issued, not landed). More buys no bandwidth (a few per SM cover HBM's
// latency) but queues every L2 access behind them: the grid barriers' and activation loads' round trips
// stretch to several microseconds with the whole ring (13 x 16 KB per SM, ~27 MB) in flight. With the
// barrier-time throttle, 4 beat 3 in every pairing on the H200 (2026-11-29: 854.7 / 854.3 against 860.8 / 861.4
// us a step, alternated in one session; 5: 854.0).
#ifndef DS_INFLIGHT
#define DS_INFLIGHT 4
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
/** A stage's source: `bytes` from p0 (and as many from p1, for nw = 2). */
struct StageSrc {
  const unsigned char *p0, *p1;
  u32_t bytes;
};
/** The walk's next stage; false past the step's end. */
MOPT_DEV bool walk_next(const DsArgs& A, const DsSlice* slices, StageWalk& w, StageSrc& src) {
  const DsLayer* layers = reinterpret_cast<const DsLayer*>(A.layers);
  while (!w.started || w.r >= w.sl.r1) {
    if (w.started && ++w.k == DS_LAYER_SEGS) w.k = 0, w.l++;
    if (w.l > A.nlayers || (w.l == A.nlayers && w.k > 0)) return false;
    w.started = true;
    w.s = w.l < A.nlayers ? layer_seg(A, layers[w.l], w.k) : lm_seg(A);
    w.sl = slices[w.l < A.nlayers ? w.k : DS_SEGS - 1];
    w.r = w.sl.r0;
  }
  const i64_t n = w.sl.r1 - w.r < w.sl.per ? w.sl.r1 - w.r : (i64_t)w.sl.per, row_bytes = w.s.K * 2;
  src.bytes = (u32_t)(n * row_bytes);
  src.p0 = reinterpret_cast<const unsigned char*>(w.s.w0) + w.r * row_bytes;
  src.p1 = w.s.nw == 2 ? reinterpret_cast<const unsigned char*>(w.s.w1) + w.r * row_bytes : nullptr;
  w.r += w.sl.per;
  return true;
}

/** The producer thread: every weight of the step into the ring, in the order the consumers take them. */
MOPT_DEV void produce_step(const DsArgs& A, const WRing& R, const DsSlice* slices) {
  StageWalk copy;
  StageSrc src;
  WSlot at, lag, prev;  // stage g's slot and use, stage g - DS_INFLIGHT's and g - 1's (no division per stage)
  for (u32_t g = 0; walk_next(A, slices, copy, src); prev = at, g++, at.next(R.slots)) {
    // with slots <= DS_INFLIGHT the ring itself bounds the copies in flight, and stage g - DS_INFLIGHT's slot
    // may already be two uses on (a parity wait would then never end)
    if (DS_INFLIGHT < R.slots && g >= DS_INFLIGHT) wring_landed(R, lag), lag.next(R.slots);
    // while this CTA waits at a grid barrier: one copy in flight (decode_step.cuh set_at_barrier)
    if (g > 0 && R.slots > 1 && at_barrier() != 0) wring_landed(R, prev);
    unsigned char* dst = wring_claim(R, at, src.bytes * (src.p1 != nullptr ? 2 : 1));
    bulk_copy_g2s(dst, src.p0, src.bytes, R.full + at.slot);
    if (src.p1 != nullptr) bulk_copy_g2s(dst + R.stage / 2, src.p1, src.bytes, R.full + at.slot);
    trace_stage(A, g, 0);
  }
}
