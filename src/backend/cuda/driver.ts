// The CUDA driver API through koffi: one context (the device's primary context), one stream, device
// memory, modules, kernel launches with pre-built argument blocks, events and graphs. Every call is
// checked; a failure throws with the call's name and the driver's own error name and message.

import koffi, { type LibraryHandle } from 'koffi';
import { loadCudaLibrary } from './find-libs.js';
import type { KernelArgs } from './kernel-args.js';

export { KernelArgs } from './kernel-args.js';

export type DevicePtr = number;
/** An opaque driver handle (CUcontext, CUmodule, CUfunction, CUstream, CUevent, CUgraphExec). */
export type Handle = unknown;

type Fn = (...args: unknown[]) => number;

const CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
const CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

/**
 * CUlaunchConfig for cuLaunchKernelEx (cuda.h): grid, block, dynamic shared bytes, stream, attributes.
 * koffi lays it out with C alignment (the stream at offset 32, 56 bytes in all).
 */
koffi.struct('mopt_CUlaunchConfig', { gridDimX: 'uint32', gridDimY: 'uint32', gridDimZ: 'uint32', blockDimX: 'uint32', blockDimY: 'uint32',
  blockDimZ: 'uint32', sharedMemBytes: 'uint32', hStream: 'void *', attrs: 'void *', numAttrs: 'uint32' });
/** CUlaunchAttribute: id (uint32), 4 bytes of padding, a 64-byte value union: 72 bytes. */
const LAUNCH_ATTRIBUTE_BYTES = 72;
const CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6;
const CU_LAUNCH_ATTRIBUTE_COOPERATIVE = 2;

export class CudaError extends Error {
  constructor(readonly call: string, readonly code: number, detail: string) {
    super(`${call} failed: ${detail} (CUresult ${code})`);
    this.name = 'CudaError';
  }
}

function toPtr(v: unknown): DevicePtr {
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`device address ${v} exceeds 2^53`);
    return Number(v);
  }
  return v as number;
}

export interface DeviceInfo {
  name: string;
  computeCapability: [number, number];
  smCount: number;
  maxSharedPerBlockOptin: number;
  totalMemory: number;
}

/** Largest upload staged through the pinned ring (CudaDriver.htod), and the ring's size. */
const UPLOAD_MAX = 1 << 20;
const UPLOAD_RING_BYTES = 16 << 20;

/**
 * A pinned host buffer handed out front to back for asynchronous uploads. Regions of one lap never
 * overlap; before a lap starts over at the front, `drain` waits for every queued copy (once per 16 MiB of
 * uploads), so no region is rewritten while a copy may still read it.
 */
export class UploadRing {
  private head = 0;
  constructor(
    private readonly mem: Uint8Array,
    private readonly drain: () => void,
  ) {}

  /** A region of the ring holding a copy of src (src.byteLength <= the ring's size). */
  stage(src: Uint8Array): Uint8Array {
    const n = Math.ceil(src.byteLength / 256) * 256;
    if (n > this.mem.byteLength) throw new RangeError(`upload of ${src.byteLength} B exceeds the ${this.mem.byteLength} B staging ring`);
    if (this.head + n > this.mem.byteLength) {
      this.drain();
      this.head = 0;
    }
    const region = this.mem.subarray(this.head, this.head + src.byteLength);
    region.set(src);
    this.head += n;
    return region;
  }
}

/** Per-kernel device time when profiling (MOPT_CUDA_PROFILE=1): event pairs around every launch. */
interface ProfileEntry {
  name: string;
  start: Handle;
  end: Handle;
}

export class CudaDriver {
  readonly info: DeviceInfo;
  readonly stream: Handle;
  private readonly f: Record<string, Fn> = {};
  private profiling = process.env.MOPT_CUDA_PROFILE === '1';
  /**
   * Whether launches marked dependent are recorded as programmatic dependents (sm_90+, MOPT_CUDA_PDL=1):
   * they may start while the previous kernel runs and wait for it in the kernel (pdl_wait in common.cuh).
   * Only inside graph captures, where the attribute costs nothing per replay.
   */
  readonly pdl: boolean;
  /** one CUlaunchAttribute: programmatic stream serialization allowed */
  private readonly pdlAttr: unknown;
  /** one CUlaunchAttribute: cooperative (every CTA resident at once, or the launch fails) */
  private readonly coopAttr: unknown;
  private readonly pending: ProfileEntry[] = [];
  private readonly eventPool: Handle[] = [];
  private readonly totals = new Map<string, { ms: number; calls: number }>();

  private constructor(private readonly lib: LibraryHandle, ordinal: number) {
    this.bind();
    this.check('cuInit', this.f.cuInit(0));
    const count = [0];
    this.check('cuDeviceGetCount', this.f.cuDeviceGetCount(count));
    if (count[0] <= ordinal) throw new CudaError('cuDeviceGet', 100, `no CUDA device ${ordinal} (found ${count[0]})`);
    const dev = [0];
    this.check('cuDeviceGet', this.f.cuDeviceGet(dev, ordinal));
    const ctx: unknown[] = [null];
    this.check('cuDevicePrimaryCtxRetain', this.f.cuDevicePrimaryCtxRetain(ctx, dev[0]));
    this.check('cuCtxSetCurrent', this.f.cuCtxSetCurrent(ctx[0]));
    const nameBuf = new Uint8Array(256);
    this.check('cuDeviceGetName', this.f.cuDeviceGetName(nameBuf, 256, dev[0]));
    const attr = (a: number): number => {
      const v = [0];
      this.check('cuDeviceGetAttribute', this.f.cuDeviceGetAttribute(v, a, dev[0]));
      return v[0];
    };
    const total = [0];
    this.check('cuDeviceTotalMem', this.f.cuDeviceTotalMem_v2(total, dev[0]));
    this.info = {
      name: new TextDecoder().decode(nameBuf.subarray(0, nameBuf.indexOf(0))),
      computeCapability: [attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR), attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)],
      smCount: attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
      maxSharedPerBlockOptin: attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
      totalMemory: Number(total[0]),
    };
    const s: unknown[] = [null];
    this.check('cuStreamCreate', this.f.cuStreamCreate(s, 1 /* CU_STREAM_NON_BLOCKING */));
    this.stream = s[0];
    this.pdl = process.env.MOPT_CUDA_PDL === '1' && this.info.computeCapability[0] >= 9 && this.f.cuLaunchKernelEx !== undefined;
    this.pdlAttr = koffi.alloc('uint8_t', LAUNCH_ATTRIBUTE_BYTES);
    const la = new DataView(koffi.view(this.pdlAttr, LAUNCH_ATTRIBUTE_BYTES));
    for (let i = 0; i < LAUNCH_ATTRIBUTE_BYTES; i++) la.setUint8(i, 0);
    la.setUint32(0, CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, true);
    la.setInt32(8, 1, true); // programmaticStreamSerializationAllowed
    this.coopAttr = koffi.alloc('uint8_t', LAUNCH_ATTRIBUTE_BYTES);
    const ca = new DataView(koffi.view(this.coopAttr, LAUNCH_ATTRIBUTE_BYTES));
    for (let i = 0; i < LAUNCH_ATTRIBUTE_BYTES; i++) ca.setUint8(i, 0);
    ca.setUint32(0, CU_LAUNCH_ATTRIBUTE_COOPERATIVE, true);
    ca.setInt32(8, 1, true); // cooperative
  }

  static open(ordinal = 0): CudaDriver {
    const lib = loadCudaLibrary('the NVIDIA driver library libcuda.so', ['libcuda.so'], 'install the NVIDIA GPU driver (it provides libcuda.so.1) or run with --device cpu');
    return new CudaDriver(lib, ordinal);
  }

  private bind(): void {
    const decls: Record<string, string> = {
      cuInit: 'int cuInit(unsigned int flags)',
      cuGetErrorName: 'int cuGetErrorName(int err, _Out_ const char **name)',
      cuGetErrorString: 'int cuGetErrorString(int err, _Out_ const char **str)',
      cuDeviceGetCount: 'int cuDeviceGetCount(_Out_ int *count)',
      cuDeviceGet: 'int cuDeviceGet(_Out_ int *dev, int ordinal)',
      cuDeviceGetName: 'int cuDeviceGetName(_Out_ uint8_t *name, int len, int dev)',
      cuDeviceGetAttribute: 'int cuDeviceGetAttribute(_Out_ int *v, int attrib, int dev)',
      cuDeviceTotalMem_v2: 'int cuDeviceTotalMem_v2(_Out_ uint64_t *bytes, int dev)',
      cuDevicePrimaryCtxRetain: 'int cuDevicePrimaryCtxRetain(_Out_ void **ctx, int dev)',
      cuCtxSetCurrent: 'int cuCtxSetCurrent(void *ctx)',
      cuCtxSynchronize: 'int cuCtxSynchronize()',
      cuMemGetInfo_v2: 'int cuMemGetInfo_v2(_Out_ uint64_t *free, _Out_ uint64_t *total)',
      cuMemAlloc_v2: 'int cuMemAlloc_v2(_Out_ uint64_t *dptr, uint64_t bytes)',
      cuMemFree_v2: 'int cuMemFree_v2(uint64_t dptr)',
      cuMemcpyHtoDAsync_v2: 'int cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, uint64_t bytes, void *stream)',
      cuMemHostAlloc: 'int cuMemHostAlloc(_Out_ void **pp, uint64_t bytes, unsigned int flags)',
      cuMemcpyDtoHAsync_v2: 'int cuMemcpyDtoHAsync_v2(_Inout_ void *dst, uint64_t src, uint64_t bytes, void *stream)',
      cuMemcpyDtoDAsync_v2: 'int cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, uint64_t bytes, void *stream)',
      cuMemsetD8Async: 'int cuMemsetD8Async(uint64_t dst, uint8_t value, uint64_t n, void *stream)',
      cuModuleLoadData: 'int cuModuleLoadData(_Out_ void **module, const void *image)',
      cuModuleGetFunction: 'int cuModuleGetFunction(_Out_ void **fn, void *module, const char *name)',
      cuFuncSetAttribute: 'int cuFuncSetAttribute(void *fn, int attrib, int value)',
      cuFuncGetAttribute: 'int cuFuncGetAttribute(_Out_ int *value, int attrib, void *fn)',
      cuLaunchKernel:
        'int cuLaunchKernel(void *f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem, void *stream, void *params, void *extra)',
      cuStreamCreate: 'int cuStreamCreate(_Out_ void **stream, unsigned int flags)',
      cuStreamSynchronize: 'int cuStreamSynchronize(void *stream)',
      cuEventCreate: 'int cuEventCreate(_Out_ void **event, unsigned int flags)',
      cuEventRecord: 'int cuEventRecord(void *event, void *stream)',
      cuEventSynchronize: 'int cuEventSynchronize(void *event)',
      cuEventDestroy_v2: 'int cuEventDestroy_v2(void *event)',
      cuStreamBeginCapture_v2: 'int cuStreamBeginCapture_v2(void *stream, int mode)',
      cuStreamEndCapture: 'int cuStreamEndCapture(void *stream, _Out_ void **graph)',
      cuGraphInstantiateWithFlags: 'int cuGraphInstantiateWithFlags(_Out_ void **exec, void *graph, uint64_t flags)',
      cuGraphLaunch: 'int cuGraphLaunch(void *exec, void *stream)',
      cuGraphExecDestroy: 'int cuGraphExecDestroy(void *exec)',
      cuGraphDestroy: 'int cuGraphDestroy(void *graph)',
    };
    for (const [name, decl] of Object.entries(decls)) this.f[name] = this.lib.func(decl) as Fn;
    // CUDA 12.0+: launches with attributes (programmatic dependent launch); older drivers lack it
    try {
      this.f.cuLaunchKernelEx = this.lib.func('int cuLaunchKernelEx(const mopt_CUlaunchConfig *config, void *f, void *params, void *extra)') as Fn;
    } catch {
      // no programmatic dependent launch: dependent launches fall back to cuLaunchKernel
    }
    // CUDA 12.8 added cuEventElapsedTime_v2; older drivers only have the original
    for (const name of ['cuEventElapsedTime_v2', 'cuEventElapsedTime']) {
      try {
        this.f.cuEventElapsedTime = this.lib.func(`int ${name}(_Out_ float *ms, void *start, void *end)`) as Fn;
        break;
      } catch {
        // try the next name
      }
    }
  }

  check(call: string, code: number): void {
    if (code === 0) return;
    const name: unknown[] = [null];
    const str: unknown[] = [null];
    this.f.cuGetErrorName(code, name);
    this.f.cuGetErrorString(code, str);
    throw new CudaError(call, code, `${String(name[0] ?? 'CUDA_ERROR')}: ${String(str[0] ?? 'unknown error')}`);
  }

  memGetInfo(): { free: number; total: number } {
    const free = [0];
    const total = [0];
    this.check('cuMemGetInfo', this.f.cuMemGetInfo_v2(free, total));
    return { free: Number(free[0]), total: Number(total[0]) };
  }
  /** Raw device allocation; returns null when the device is out of memory (the allocator decides what then). */
  tryMemAlloc(bytes: number): DevicePtr | null {
    const p = [0];
    const code = this.f.cuMemAlloc_v2(p, Math.max(1, bytes));
    if (code === 2 /* CUDA_ERROR_OUT_OF_MEMORY */) return null;
    this.check('cuMemAlloc', code);
    return toPtr(p[0]);
  }
  memFree(p: DevicePtr): void {
    this.check('cuMemFree', this.f.cuMemFree_v2(p));
  }
  /**
   * Host -> device. Uploads up to UPLOAD_MAX bytes (token ids, RoPE tables, scalars) are staged in a pinned
   * ring and copied asynchronously, so they do not stall the host until the device has drained its queue
   * (a copy from pageable memory may synchronize the stream); larger ones (weights) copy from the caller's
   * buffer and synchronize, which keeps that buffer's contents out of the copy's way once this returns.
   */
  htod(dst: DevicePtr, src: ArrayBufferView): void {
    if (src.byteLength === 0) return;
    this.assertNotCapturing('an upload from the host');
    const bytes = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    if (bytes.byteLength <= UPLOAD_MAX) {
      const staged = this.uploadRing().stage(bytes);
      this.check('cuMemcpyHtoDAsync', this.f.cuMemcpyHtoDAsync_v2(dst, staged, staged.byteLength, this.stream));
      return;
    }
    this.check('cuMemcpyHtoDAsync', this.f.cuMemcpyHtoDAsync_v2(dst, bytes, src.byteLength, this.stream));
    this.synchronize();
  }

  private uploads: UploadRing | null = null;
  private uploadRing(): UploadRing {
    if (this.uploads === null) {
      const p: unknown[] = [null];
      this.check('cuMemHostAlloc', this.f.cuMemHostAlloc(p, UPLOAD_RING_BYTES, 0));
      this.uploads = new UploadRing(new Uint8Array(koffi.view(p[0], UPLOAD_RING_BYTES)), () => this.synchronize());
    }
    return this.uploads;
  }
  dtoh(dst: ArrayBufferView, src: DevicePtr): void {
    if (dst.byteLength === 0) return;
    this.assertNotCapturing('a download to the host');
    const bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
    this.check('cuMemcpyDtoHAsync', this.f.cuMemcpyDtoHAsync_v2(bytes, src, dst.byteLength, this.stream));
    this.synchronize();
  }
  dtod(dst: DevicePtr, src: DevicePtr, bytes: number): void {
    if (bytes > 0) this.check('cuMemcpyDtoDAsync', this.f.cuMemcpyDtoDAsync_v2(dst, src, bytes, this.stream));
  }
  memsetD8(dst: DevicePtr, value: number, bytes: number): void {
    if (bytes > 0) this.check('cuMemsetD8Async', this.f.cuMemsetD8Async(dst, value, bytes, this.stream));
  }
  loadModule(image: Uint8Array): Handle {
    const m: unknown[] = [null];
    this.check('cuModuleLoadData', this.f.cuModuleLoadData(m, image));
    return m[0];
  }
  getFunction(module: Handle, name: string): Handle {
    const fn: unknown[] = [null];
    this.check(`cuModuleGetFunction(${name})`, this.f.cuModuleGetFunction(fn, module, name));
    return fn[0];
  }
  setMaxDynamicShared(fn: Handle, bytes: number): void {
    this.check('cuFuncSetAttribute', this.f.cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes));
  }
  /** A kernel's compiled resource use (explains CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES). */
  functionResources(fn: Handle): { maxThreadsPerBlock: number; registers: number; localBytes: number; staticSharedBytes: number } {
    const get = (attr: number): number => {
      const v = [0];
      this.check('cuFuncGetAttribute', this.f.cuFuncGetAttribute(v, attr, fn));
      return v[0];
    };
    return { maxThreadsPerBlock: get(0), staticSharedBytes: get(1), localBytes: get(3), registers: get(4) };
  }
  /** Runs `work` (which enqueues device work) between two profiling events when profiling is on. */
  profiled(name: string, work: () => void): void {
    if (!this.profiling || this.capturing) {
      work();
      return;
    }
    const start = this.eventPool.pop() ?? this.eventCreate();
    const end = this.eventPool.pop() ?? this.eventCreate();
    this.eventRecord(start);
    work();
    this.eventRecord(end);
    this.pending.push({ name, start, end });
    if (this.pending.length >= 4096) this.collectProfile();
  }

  private collectProfile(): void {
    for (const e of this.pending) {
      const ms = this.eventElapsedMs(e.start, e.end);
      const t = this.totals.get(e.name) ?? { ms: 0, calls: 0 };
      t.ms += ms;
      t.calls++;
      this.totals.set(e.name, t);
      this.eventPool.push(e.start, e.end);
    }
    this.pending.length = 0;
  }

  /** Device time per kernel name since the last reset, largest first (empty unless MOPT_CUDA_PROFILE=1). */
  profileReport(reset = true): { name: string; ms: number; calls: number }[] {
    this.collectProfile();
    const rows = [...this.totals.entries()].map(([name, t]) => ({ name, ...t })).sort((a, b) => b.ms - a.ms);
    if (reset) this.totals.clear();
    return rows;
  }

  setProfiling(on: boolean): void {
    this.collectProfile();
    this.profiling = on;
  }

  /**
   * `dependent`: the kernel waits for its predecessor itself (pdl_wait before touching its data), so inside
   * a capture it is recorded as a programmatic dependent when PDL is on (see `pdl`).
   */
  launch(fn: Handle, grid: readonly [number, number, number], block: readonly [number, number, number], sharedBytes: number, args: KernelArgs, name = 'kernel', dependent = false): void {
    this.profiled(name, () => this.launchNow(fn, grid, block, sharedBytes, args, name, dependent && this.pdl && this.capturing ? this.pdlAttr : null));
  }

  /**
   * A cooperative launch (kernels with grid-wide barriers): the driver refuses a grid whose CTAs cannot all
   * be resident at once (CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE) instead of letting it deadlock.
   */
  launchCooperative(fn: Handle, grid: readonly [number, number, number], block: readonly [number, number, number], sharedBytes: number, args: KernelArgs, name = 'kernel'): void {
    if (this.f.cuLaunchKernelEx === undefined) throw new CudaError(`cuLaunchKernelEx(${name})`, 801, 'this CUDA driver has no cuLaunchKernelEx (CUDA 12.0+ needed for cooperative launches)');
    this.profiled(name, () => this.launchNow(fn, grid, block, sharedBytes, args, name, this.coopAttr));
  }

  /** `attr`: one CUlaunchAttribute for cuLaunchKernelEx (PDL, cooperative), or null for a plain cuLaunchKernel. */
  private launchNow(fn: Handle, grid: readonly [number, number, number], block: readonly [number, number, number], sharedBytes: number, args: KernelArgs, name: string, attr: unknown): void {
    const config = {
      gridDimX: grid[0], gridDimY: grid[1], gridDimZ: grid[2], blockDimX: block[0], blockDimY: block[1], blockDimZ: block[2],
      sharedMemBytes: sharedBytes, hStream: this.stream, attrs: attr, numAttrs: 1,
    };
    // cooperative launches take only the kernelParams form of the arguments
    const code =
      attr === null
        ? this.f.cuLaunchKernel(fn, grid[0], grid[1], grid[2], block[0], block[1], block[2], sharedBytes, this.stream, null, args.extra)
        : attr === this.coopAttr
          ? this.f.cuLaunchKernelEx(config, fn, args.params, null)
          : this.f.cuLaunchKernelEx(config, fn, null, args.extra);
    const call = `${attr === null ? 'cuLaunchKernel' : 'cuLaunchKernelEx'}(${name})`;
    if (code === 701 /* CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES */) {
      const r = this.functionResources(fn);
      const err = (() => {
        try {
          this.check(call, code);
        } catch (e) {
          return e as CudaError;
        }
        return null;
      })();
      throw new CudaError(
        call,
        code,
        `${err?.message ?? 'out of resources'}; block ${block.join('x')}, grid ${grid.join('x')}, dynamic shared ${sharedBytes} B, args ${args.size} B; kernel uses ${r.registers} registers, ${r.localBytes} B local, ${r.staticSharedBytes} B static shared, max ${r.maxThreadsPerBlock} threads/block`,
      );
    }
    this.check(call, code);
  }
  synchronize(): void {
    this.assertNotCapturing('a stream synchronization');
    this.check('cuStreamSynchronize', this.f.cuStreamSynchronize(this.stream));
  }

  // events, for timing
  eventCreate(): Handle {
    const e: unknown[] = [null];
    this.check('cuEventCreate', this.f.cuEventCreate(e, 0));
    return e[0];
  }
  eventRecord(e: Handle): void {
    this.check('cuEventRecord', this.f.cuEventRecord(e, this.stream));
  }
  eventElapsedMs(start: Handle, end: Handle): number {
    this.check('cuEventSynchronize', this.f.cuEventSynchronize(end));
    const ms = [0];
    this.check('cuEventElapsedTime', this.f.cuEventElapsedTime(ms, start, end));
    return ms[0];
  }
  eventDestroy(e: Handle): void {
    this.check('cuEventDestroy', this.f.cuEventDestroy_v2(e));
  }

  // graphs: capture the stream's work once, replay it with one launch
  /** true between beginCapture and endCapture / abortCapture: work is recorded, not run */
  capturing = false;
  beginCapture(): void {
    this.check('cuStreamBeginCapture', this.f.cuStreamBeginCapture_v2(this.stream, 2 /* relaxed */));
    this.capturing = true;
  }
  endCapture(): Handle {
    const g: unknown[] = [null];
    this.capturing = false;
    this.check('cuStreamEndCapture', this.f.cuStreamEndCapture(this.stream, g));
    const exec: unknown[] = [null];
    this.check('cuGraphInstantiate', this.f.cuGraphInstantiateWithFlags(exec, g[0], 0));
    this.check('cuGraphDestroy', this.f.cuGraphDestroy(g[0]));
    return exec[0];
  }
  /** Ends a capture that failed part way, discarding what it recorded. */
  abortCapture(): void {
    if (!this.capturing) return;
    this.capturing = false;
    const g: unknown[] = [null];
    if (this.f.cuStreamEndCapture(this.stream, g) === 0 && g[0] !== null) this.f.cuGraphDestroy(g[0]);
  }
  /**
   * A captured graph replays the recorded copies with the addresses and host memory of the recording, so
   * host transfers and synchronization inside a capture are bugs in the caller: refuse them by name.
   */
  private assertNotCapturing(what: string): void {
    if (this.capturing) throw new Error(`cuda: ${what} was requested while a CUDA graph is being captured; work inside a capture must stay on the device`);
  }
  graphLaunch(exec: Handle): void {
    this.check('cuGraphLaunch', this.f.cuGraphLaunch(exec, this.stream));
  }
  graphDestroy(exec: Handle): void {
    this.check('cuGraphExecDestroy', this.f.cuGraphExecDestroy(exec));
  }
}
