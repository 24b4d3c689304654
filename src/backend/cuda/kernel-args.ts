// A kernel's parameter block built once per launch site (cuLaunchKernel copies it at launch): the native
// buffer laid out like the kernel's parameter list, with the two forms the driver takes it in (`extra` for
// cuLaunchKernel, `params` for cooperative cuLaunchKernelEx).

import koffi from 'koffi';
import type { DevicePtr } from './driver.js';

/** A native block of kernel arguments laid out like the kernel's parameter list. Built once per launch site. */
export class KernelArgs {
  private readonly buf: unknown;
  private readonly view: DataView;
  private readonly offsets: number[] = [];
  readonly size: number;
  /** the `extra` array for cuLaunchKernel: BUFFER_POINTER, &buf, BUFFER_SIZE, &size, END */
  readonly extra: unknown;
  private readonly sizeCell: unknown;
  /** the `kernelParams` array (one pointer per parameter into the block): cooperative launches take only this form */
  readonly params: unknown;

  /** `layout` lists each parameter's byte size (alignment = min(size, 8), or given as [size, align]). */
  constructor(layout: readonly (number | readonly [number, number])[]) {
    let off = 0;
    for (const item of layout) {
      const [size, align] = typeof item === 'number' ? [item, Math.min(item, 8)] : item;
      off = Math.ceil(off / align) * align;
      this.offsets.push(off);
      off += size;
    }
    // the driver wants the exact end of the last parameter: a size that includes tail padding is
    // rejected (CUDA_ERROR_INVALID_VALUE) for kernels whose last parameter is narrower than 8 bytes
    this.size = off;
    const capacity = Math.max(8, Math.ceil(off / 8) * 8);
    this.buf = koffi.alloc('uint8_t', capacity);
    this.view = new DataView(koffi.view(this.buf, capacity));
    this.sizeCell = koffi.alloc('uint64_t', 1);
    new DataView(koffi.view(this.sizeCell, 8)).setBigUint64(0, BigInt(this.size), true);
    this.extra = koffi.alloc('uint64_t', 5);
    const ex = new DataView(koffi.view(this.extra, 40));
    ex.setBigUint64(0, 1n, true); // CU_LAUNCH_PARAM_BUFFER_POINTER
    ex.setBigUint64(8, koffi.address(this.buf), true);
    ex.setBigUint64(16, 2n, true); // CU_LAUNCH_PARAM_BUFFER_SIZE
    ex.setBigUint64(24, koffi.address(this.sizeCell), true);
    ex.setBigUint64(32, 0n, true); // CU_LAUNCH_PARAM_END
    this.params = koffi.alloc('uint64_t', Math.max(1, this.offsets.length));
    const pv = new DataView(koffi.view(this.params, 8 * Math.max(1, this.offsets.length)));
    this.offsets.forEach((o, i) => pv.setBigUint64(8 * i, BigInt(koffi.address(this.buf)) + BigInt(o), true));
  }
  ptr(i: number, p: DevicePtr): this {
    this.view.setBigUint64(this.offsets[i], BigInt(p), true);
    return this;
  }
  i32(i: number, v: number): this {
    this.view.setInt32(this.offsets[i], v, true);
    return this;
  }
  u32(i: number, v: number): this {
    this.view.setUint32(this.offsets[i], v, true);
    return this;
  }
  i64(i: number, v: number): this {
    this.view.setBigInt64(this.offsets[i], BigInt(v), true);
    return this;
  }
  f32(i: number, v: number): this {
    this.view.setFloat32(this.offsets[i], v, true);
    return this;
  }
  f64(i: number, v: number): this {
    this.view.setFloat64(this.offsets[i], v, true);
    return this;
  }
  /** raw bytes for a by-value struct parameter */
  bytes(i: number, b: Uint8Array): this {
    for (let k = 0; k < b.length; k++) this.view.setUint8(this.offsets[i] + k, b[k]);
    return this;
  }
}

