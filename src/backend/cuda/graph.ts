// Capturing work as a CUDA graph and replaying it: one cuGraphLaunch instead of hundreds of kernel
// launches, which is what batch-1 decoding needs (each decode step is ~300 small kernels, and the host
// needs ~10 us to queue each). The recorded work must not depend on host values that change between
// replays: the caller keeps such values (token id, position) in device buffers it writes before each
// launch. Device memory the recording touched is owned by the graph (allocator.ts GraphPool) until
// dispose(); host transfers and synchronization inside the recording throw (driver.ts).

import type { CachingAllocator, GraphPool } from './allocator.js';
import type { CudaDriver, Handle } from './driver.js';

export class CapturedGraph {
  private exec: Handle | null;
  constructor(
    private readonly driver: CudaDriver,
    private readonly allocator: CachingAllocator,
    exec: Handle,
    private readonly pool: GraphPool,
  ) {
    this.exec = exec;
  }

  /** bytes of device memory the graph holds for its intermediates and outputs */
  get poolBytes(): number {
    return this.pool.bytes;
  }

  /** Queues one replay on the stream (asynchronous, like a kernel launch). */
  launch(): void {
    if (this.exec === null) throw new Error('cuda graph: launched after dispose()');
    this.driver.graphLaunch(this.exec);
  }

  /** Destroys the graph and returns its memory; the tensors it produced must have been disposed first. */
  dispose(): void {
    if (this.exec === null) return;
    this.driver.synchronize(); // a replay may still be running
    this.driver.graphDestroy(this.exec);
    this.exec = null;
    this.allocator.releasePool(this.pool);
  }
}

/** Records what `record` queues on the stream (nothing runs) into a replayable graph. */
export function captureGraph(driver: CudaDriver, allocator: CachingAllocator, record: () => void): CapturedGraph {
  if (driver.capturing) throw new Error('cuda graph: captures cannot nest');
  const pool = allocator.beginPool();
  let exec: Handle;
  try {
    driver.beginCapture();
    record();
    exec = driver.endCapture();
  } catch (e) {
    driver.abortCapture();
    allocator.endPool();
    // the recording's tensors are freed by now (tidy scopes unwound), so the pool can go back
    try {
      allocator.releasePool(pool);
    } catch {
      // a tensor of the failed recording is still referenced: its blocks stay reserved rather than reused under it
    }
    throw e;
  }
  allocator.endPool();
  return new CapturedGraph(driver, allocator, exec, pool);
}
