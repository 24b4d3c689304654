// What the fused routines (fused.ts, fused-attention.ts) need from the CUDA backend, and the launch
// plumbing they share: element addresses of views, launches with large dynamic shared memory, and
// temporaries (contiguous copies of views a kernel cannot read directly, scratch buffers) that are
// freed when the routine returns. All work runs on the driver's one stream, so freeing a temporary right
// after queueing the kernels that use it is safe: the caching allocator hands it out again only to work
// queued later.

import type { Storage, View } from '../backend.js';
import { DTYPE_INFO, type DType } from '../../tensor/dtype.js';
import { contiguousStrides, numel } from '../../tensor/shape.js';
import type { CachingAllocator, DeviceBlock } from './allocator.js';
import type { CudaDriver, DevicePtr, KernelArgs } from './driver.js';
import type { KernelLoader, KernelRef } from './kernels.js';
import { collapseDims } from './layout.js';

/** The parts of CudaBackend the fused routines use (CudaBackend satisfies it). */
export interface FusedHost {
  readonly driver: CudaDriver;
  readonly kernels: KernelLoader;
  readonly allocator: CachingAllocator;
  alloc(dtype: DType, length: number): Storage;
  free(storage: Storage): void;
  copy(src: View, out: View): void;
  fill(out: View, value: number): void;
}

/** Dynamic shared memory a kernel may use without opting in. */
const DEFAULT_SHARED = 48 * 1024;
/** threads of the element-wise launches (the pointwise kernels' __launch_bounds__) */
export const POINTWISE_BLOCK = 256;

/** A view seen as rows of its last dim: row r starts at r * rowStride, element j of it at j * colStride. */
export interface Rows {
  rows: number;
  len: number;
  rowStride: number;
  colStride: number;
}

/** The rows of v, or null when its leading dims do not collapse to a single stride. */
export function asRows(v: View): Rows | null {
  const r = v.shape.length;
  const len = r === 0 ? 1 : v.shape[r - 1];
  const colStride = r === 0 ? 1 : v.strides[r - 1];
  const lead = collapseDims(v.shape.slice(0, -1), [v.strides.slice(0, -1)]);
  if (lead.shape.length > 1) return null;
  return { rows: numel(v.shape.slice(0, -1)), len, rowStride: lead.shape.length === 1 ? lead.strides[0][0] : len, colStride };
}

export class FusedLauncher {
  readonly smCount: number;
  /** dynamic shared memory each kernel has been allowed so far (by name) */
  private readonly sharedAllowed = new Map<string, number>();

  constructor(
    readonly host: FusedHost,
    private readonly storagePtr: (v: View) => DevicePtr,
  ) {
    this.smCount = host.driver.info.smCount;
  }

  /** device address of the view's first element (its offset applied) */
  addr(v: View): DevicePtr {
    return this.storagePtr(v) + v.offset * DTYPE_INFO[v.storage.dtype].bytes;
  }
  /** device address of the view's storage (for kernels that take element offsets separately) */
  base(v: View): DevicePtr {
    return this.storagePtr(v);
  }

  /** Grid size of a grid-stride launch over n items of `per` items per block. */
  grid(n: number, per: number, wavesPerSm = 16): number {
    return Math.max(1, Math.min(Math.ceil(n / per), this.smCount * wavesPerSm));
  }

  /** `dependent`: see CudaDriver.launch (the kernel calls pdl_wait before touching its predecessor's data). */
  launch(k: KernelRef, grid: readonly [number, number, number], block: readonly [number, number, number], shared: number, args: KernelArgs, dependent = false): void {
    const fn = this.host.kernels.fn(k);
    if (shared > DEFAULT_SHARED && (this.sharedAllowed.get(k.name) ?? DEFAULT_SHARED) < shared) {
      const max = this.host.driver.info.maxSharedPerBlockOptin;
      if (shared > max) throw new RangeError(`cuda ${k.name}: needs ${shared} B of shared memory, the device allows ${max} B per block`);
      this.host.driver.setMaxDynamicShared(fn, shared);
      this.sharedAllowed.set(k.name, shared);
    }
    this.host.driver.launch(fn, grid, block, shared, args, k.name, dependent);
  }

  /** Runs fn with a scope of temporaries that are freed when it returns or throws. */
  withTemps<R>(fn: (t: Temps) => R): R {
    const t = new Temps(this.host);
    try {
      return fn(t);
    } finally {
      t.release();
    }
  }
}

/** Temporaries of one fused call. */
export class Temps {
  private readonly storages: Storage[] = [];
  private readonly blocks: DeviceBlock[] = [];
  constructor(private readonly host: FusedHost) {}

  /** A fresh contiguous view. */
  view(dtype: DType, shape: readonly number[]): View {
    const storage = this.host.alloc(dtype, numel(shape));
    this.storages.push(storage);
    return { storage, shape: [...shape], strides: contiguousStrides(shape), offset: 0 };
  }
  /** v itself when `usable`, otherwise a contiguous copy converted to `dtype` (v's own by default). */
  usable(v: View, usable: boolean, dtype: DType = v.storage.dtype): View {
    if (usable && dtype === v.storage.dtype) return v;
    const c = this.view(dtype, v.shape);
    this.host.copy(v, c);
    return c;
  }
  /** v as rows of its last dim, copied to a contiguous view when its leading dims do not collapse. */
  rows(v: View, dtype: DType = v.storage.dtype): { view: View; rows: Rows } {
    const r = dtype === v.storage.dtype ? asRows(v) : null;
    if (r !== null) return { view: v, rows: r };
    const c = this.usable(v, false, dtype);
    return { view: c, rows: asRows(c)! };
  }
  /** Device scratch of `bytes` bytes (uninitialised). */
  scratch(bytes: number): DevicePtr {
    const b = this.host.allocator.alloc(Math.max(1, bytes));
    this.blocks.push(b);
    return b.ptr;
  }
  release(): void {
    for (const s of this.storages.splice(0)) this.host.free(s);
    for (const b of this.blocks.splice(0)) this.host.allocator.free(b);
  }
}

/**
 * Threads per block of the row kernels (RMSNorm forward/backward: one block per row): about 8 elements per
 * thread, whole warps, at most the kernels' 256. gemv.ts's RMSNorm
 * prologue reproduces the forward's reduction for this block size, so it must stay the one place.
 */
export const rowThreads = (len: number): number => Math.min(256, Math.max(32, Math.ceil(len / 256) * 32));
