// A ring of shared-memory stages that one producer thread fills with bulk copies from global memory
// (cp.async.bulk, the Hopper TMA engine) while consumer warps read them: the streamed bytes arrive without
// any consumer register holding them in flight, and the producer runs ahead of the consumers (across their
// barriers) by as many stages as the ring holds. decode_step.cu streams a whole step's weights this way.
//
// Each stage has a "full" mbarrier (the producer arms it with the byte count; the copy engine completes it)
// and an "empty" one (its consumer arrives when done reading). Stage g of the stream uses slot g % slots for
// the (g / slots)-th time, so the waits alternate parity. A parity wait only tells the barrier's current phase
// from the one before, so each slot's consumer must take its uses in order (one owner warp per slot).
// sm_90 or later (the host checks before launching).
#pragma once
#include "fused.cuh"

/** The 32-bit shared-window address of a shared-memory pointer (what the mbarrier and bulk-copy PTX take). */
MOPT_DEV u32_t smem_addr(const void* p) {
  u64_t a;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"(p));
  return (u32_t)a;
}

MOPT_DEV void mbar_init(u64_t* b, u32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(b)), "r"(count) : "memory");
}
/** Makes the inits visible to the copy engine (then a CTA barrier makes them visible to the threads). */
MOPT_DEV void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }

MOPT_DEV void mbar_arrive(u64_t* b) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(b)) : "memory");
}
/** Arrives and tells the barrier to also wait for `bytes` of copies to land. */
MOPT_DEV void mbar_arrive_expect_tx(u64_t* b, u32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(b)), "r"(bytes) : "memory");
}
// try_wait with a suspend-time hint (10 ms, as CUTLASS's ClusterBarrier::wait): a waiting warp sleeps until the
// phase completes instead of spinning on issue slots the warps doing math need.
MOPT_DEV bool mbar_try_wait(u64_t* b, u32_t parity) {
  u32_t ok;
  asm volatile(
      "{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2, %3;\n\tselp.u32 %0, 1, 0, p;\n\t}"
      : "=r"(ok)
      : "r"(smem_addr(b)), "r"(parity), "r"(10000000u)
      : "memory");
  return ok != 0;
}
/** Waits for the barrier's phase of this parity to complete; ~10 s without progress traps instead of hanging. */
MOPT_DEV void mbar_wait(u64_t* b, u32_t parity) {
  if (mbar_try_wait(b, parity)) return;
  const long long t0 = clock64();
  while (!mbar_try_wait(b, parity))
    if (clock64() - t0 > (1ll << 34)) __trap();
}

/**
 * 16 bytes of shared memory (at shared-window address a, or at p) as one vector load. (Read through a U4
 * reference instead, the compiler may split it into four 32-bit loads, which for lanes 16 bytes apart are
 * 4-way bank conflicts: 16x the wavefronts.)
 * Volatile: it stays after the barrier wait that made the bytes valid.
 */
MOPT_DEV U4 lds16(u32_t a) {
  U4 c;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(c.w[0]), "=r"(c.w[1]), "=r"(c.w[2]), "=r"(c.w[3]) : "r"(a));
  return c;
}
MOPT_DEV U4 ld_shared16(const void* p) { return lds16(smem_addr(p)); }

// Streamed weights marked first to leave L2: each is read once a step, and the rest of L2 then holds what the
// step rereads (the KV cache, the exchanged vectors). H200, Llama-3.2-1B decode step, 2026-11-29: 755.6 / 755.1
// against 787.7 / 784.0 us unmarked (attention 5.2 against 6.2 us a layer). (Tried with it, slower: the next
// stages prefetched into L2 ahead of their copies, all the time (858-1,060 us) or during the attention phase
// (782-798); the step's first 8 or 16 stages kept in L2 across steps: no change.)
#ifndef WR_EVICT_FIRST
#define WR_EVICT_FIRST 1
#endif

/** bytes (a multiple of 16; both addresses 16-byte aligned) from global src to shared dst, completing on bar. */
MOPT_DEV void bulk_copy_g2s(void* dst, const void* src, u32_t bytes, u64_t* bar) {
  if (WR_EVICT_FIRST) {
    u64_t policy;
    asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;"
        ::"r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar)), "l"(policy)
        : "memory");
    return;
  }
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
               ::"r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar))
               : "memory");
}

/** The ring's stages (slots * stage bytes of dynamic shared memory) and their barriers. */
struct WRing {
  unsigned char* base;
  u64_t* full;
  u64_t* empty;
  u32_t slots;
  u32_t stage;  // bytes, a multiple of 32
};

/** A stage's place in the ring: its slot (g % slots) and that slot's use count (g / slots), kept without dividing. */
struct WSlot {
  u32_t slot = 0, use = 0;
  __device__ __forceinline__ void next(u32_t slots) {
    if (++slot == slots) slot = 0, use++;
  }
};
/** Producer side: waits until stage s's slot is free, then arms its full barrier for `bytes` of copies. */
MOPT_DEV unsigned char* wring_claim(const WRing& R, const WSlot& s, u32_t bytes) {
  if (s.use > 0) mbar_wait(R.empty + s.slot, (s.use - 1) & 1);
  mbar_arrive_expect_tx(R.full + s.slot, bytes);
  return R.base + (u64_t)s.slot * R.stage;
}
/** Producer side: waits until stage s (issued, and not yet reissued) has landed. */
MOPT_DEV void wring_landed(const WRing& R, const WSlot& s) { mbar_wait(R.full + s.slot, s.use & 1); }
/** Consumer side, the owner of a slot: waits for the slot's use of this parity to land and returns it. */
MOPT_DEV const unsigned char* wring_acquire_slot(const WRing& R, u32_t slot, u32_t parity) {
  mbar_wait(R.full + slot, parity);
  return R.base + (u64_t)slot * R.stage;
}
/** Consumer side, one lane after the warp is done reading its slot's stage: the slot may be refilled. */
MOPT_DEV void wring_release_slot(const WRing& R, u32_t slot) { mbar_arrive(R.empty + slot); }
