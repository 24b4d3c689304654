// A caching device allocator: cuMemAlloc/cuMemFree are slow and synchronizing, and a training step
// allocates and frees the same sizes thousands of times, so freed blocks are kept in free lists by size
// and handed out again. Sizes are rounded up (512 B steps below 1 MiB, 2 MiB steps above) so that
// nearby sizes share lists. All work runs on one stream, so reusing a block right after freeing it is
// ordered after the kernels that used it. Out of memory: release every cached block and retry once,
// then throw a UserError that says how much was needed and what is free.
//
// CUDA graphs: a captured graph replays with the device addresses of its recording, so every block the
// recorded work touched must stay out of other hands while the graph lives. Between beginPool and
// endPool, blocks are handed out from (and freed into) a GraphPool; blocks freed during the capture join
// that pool even when they were allocated before it. Pool blocks are reused only by the same capture and
// go back to the common cache when the graph is destroyed (releasePool).

import { UserError } from '../../util/errors.js';
import type { DevicePtr } from './driver.js';

/** What the allocator needs from the driver (CudaDriver has it; tests pass a fake). */
export interface AllocatorDevice {
  readonly info: { readonly name: string };
  tryMemAlloc(bytes: number): DevicePtr | null;
  memFree(p: DevicePtr): void;
  memGetInfo(): { free: number; total: number };
  synchronize(): void;
}

export interface DeviceBlock {
  readonly ptr: DevicePtr;
  /** rounded size actually reserved */
  readonly size: number;
}

export interface AllocatorStats {
  /** bytes in blocks handed out and not yet freed (rounded sizes) */
  allocatedBytes: number;
  /** bytes in freed blocks kept for reuse */
  cachedBytes: number;
  peakAllocatedBytes: number;
  /** cuMemAlloc calls that succeeded */
  deviceAllocs: number;
  /** allocations served from the cache */
  reuses: number;
}

const SMALL = 1 << 20;
const SMALL_STEP = 512;
const LARGE_STEP = 2 << 20;

/** The size a request of `bytes` reserves. */
export function roundSize(bytes: number): number {
  const b = Math.max(1, bytes);
  return b < SMALL ? Math.ceil(b / SMALL_STEP) * SMALL_STEP : Math.ceil(b / LARGE_STEP) * LARGE_STEP;
}

const mib = (b: number): string => (b / 2 ** 20).toFixed(1);

/** The device blocks one captured graph owns (see the file comment). */
export class GraphPool {
  /** every block the pool owns, live or free, with its rounded size */
  readonly sizes = new Map<DevicePtr, number>();
  readonly free = new Map<number, DevicePtr[]>();
  /**
   * blocks allocated before the capture and freed during it: recorded kernels may read what they held, so
   * nothing in the capture may reuse them; they wait for releasePool
   */
  readonly reserved: DevicePtr[] = [];
  get bytes(): number {
    let n = 0;
    for (const s of this.sizes.values()) n += s;
    return n;
  }
}

export class CachingAllocator {
  private readonly free_ = new Map<number, DevicePtr[]>();
  private readonly live = new Set<DevicePtr>();
  /** the pool of the capture in progress */
  private capture: GraphPool | null = null;
  /** pool of each pool-owned block */
  private readonly owner = new Map<DevicePtr, GraphPool>();
  private readonly s: AllocatorStats = { allocatedBytes: 0, cachedBytes: 0, peakAllocatedBytes: 0, deviceAllocs: 0, reuses: 0 };

  constructor(private readonly dev: AllocatorDevice) {}

  alloc(bytes: number): DeviceBlock {
    const size = roundSize(bytes);
    const pool = this.capture;
    const list = pool?.free.get(size)?.length ? pool.free.get(size) : this.free_.get(size);
    let ptr = list?.pop();
    if (ptr !== undefined) {
      this.s.cachedBytes -= size;
      this.s.reuses++;
    } else {
      ptr = this.deviceAlloc(size);
    }
    if (pool !== null && !this.owner.has(ptr)) this.adopt(pool, ptr, size);
    this.live.add(ptr);
    this.s.allocatedBytes += size;
    this.s.peakAllocatedBytes = Math.max(this.s.peakAllocatedBytes, this.s.allocatedBytes);
    return { ptr, size };
  }

  free(block: DeviceBlock): void {
    if (!this.live.delete(block.ptr)) throw new Error(`allocator: block 0x${block.ptr.toString(16)} freed twice or not allocated here`);
    this.s.allocatedBytes -= block.size;
    this.s.cachedBytes += block.size;
    let pool = this.owner.get(block.ptr);
    if (pool === undefined && this.capture !== null) {
      this.adopt(this.capture, block.ptr, block.size);
      this.capture.reserved.push(block.ptr);
      return;
    }
    const lists = pool?.free ?? this.free_;
    const list = lists.get(block.size);
    if (list === undefined) lists.set(block.size, [block.ptr]);
    else list.push(block.ptr);
  }

  /** From now until endPool, blocks come from and return to a new pool, which is returned. */
  beginPool(): GraphPool {
    if (this.capture !== null) throw new Error('allocator: a graph capture is already in progress');
    return (this.capture = new GraphPool());
  }
  endPool(): void {
    this.capture = null;
  }
  /** Returns the pool's blocks to the common cache; every one of them must have been freed. */
  releasePool(pool: GraphPool): void {
    if (pool === this.capture) throw new Error('allocator: cannot release the pool of the capture in progress');
    const idle = new Set([...pool.free.values()].flat().concat(pool.reserved));
    const busy = [...pool.sizes.keys()].filter((p) => !idle.has(p));
    if (busy.length > 0) throw new Error(`allocator: ${busy.length} block(s) of a graph pool are still in use; free the graph's tensors before destroying it`);
    for (const [ptr, size] of pool.sizes) {
      this.owner.delete(ptr);
      const list = this.free_.get(size);
      if (list === undefined) this.free_.set(size, [ptr]);
      else list.push(ptr);
    }
    pool.sizes.clear();
    pool.free.clear();
    pool.reserved.length = 0;
  }
  private adopt(pool: GraphPool, ptr: DevicePtr, size: number): void {
    pool.sizes.set(ptr, size);
    this.owner.set(ptr, pool);
  }

  /** Returns every cached block to the device. */
  emptyCache(): void {
    let bytes = 0;
    for (const [size, ptrs] of this.free_) bytes += size * ptrs.length;
    if (bytes === 0) return;
    this.dev.synchronize(); // blocks may have been freed while kernels that use them are still queued
    for (const ptrs of this.free_.values()) for (const p of ptrs) this.dev.memFree(p);
    this.free_.clear();
    this.s.cachedBytes -= bytes; // free blocks of graph pools stay reserved
  }

  stats(): AllocatorStats {
    return { ...this.s };
  }

  private deviceAlloc(size: number): DevicePtr {
    let p = this.dev.tryMemAlloc(size);
    if (p === null) {
      this.emptyCache();
      p = this.dev.tryMemAlloc(size);
    }
    if (p === null) {
      const { free, total } = this.dev.memGetInfo();
      throw new UserError(
        `out of GPU memory: needed ${mib(size)} MiB, ${mib(free)} MiB free of ${mib(total)} MiB on ${this.dev.info.name}; lower the batch size or sequence length`,
      );
    }
    this.s.deviceAllocs++;
    return p;
  }
}
