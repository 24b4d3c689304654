// Entry point of the CUDA backend: one backend per process on device 0, created on first use. Failing to
// find libcuda or NVRTC surfaces as find-libs' UserError (one sentence saying what to install); a driver
// that is present but unusable (no GPU, a driver/toolkit mismatch) as a UserError with the driver's words.
// The failure is remembered, so asking again does not rescan the disk.

import { UserError } from '../../util/errors.js';
import type { View } from '../backend.js';
import { CachingAllocator } from './allocator.js';
import { CublasLt, FLOAT32_MATMUL_PRECISIONS, viewAddress, type Float32MatmulPrecision } from './cublaslt.js';
import { CudaBackend, CudaStorage, type Gemm } from './cuda-backend.js';
import { CudaDriver, CudaError } from './driver.js';
import { Nvrtc, NvrtcError } from './nvrtc.js';

export { CudaBackend, CudaStorage, type Gemm } from './cuda-backend.js';
export { CachingAllocator, type AllocatorStats } from './allocator.js';
export type { Float32MatmulPrecision } from './cublaslt.js';

/** cuBLASLt workspace: 32 MiB, NVIDIA's recommendation for Hopper */
const GEMM_WORKSPACE = 32 << 20;

let backend: CudaBackend | null = null;
let failure: Error | null = null;

export function getCudaBackend(): CudaBackend {
  if (backend !== null) return backend;
  if (failure !== null) throw failure;
  try {
    const driver = CudaDriver.open();
    const nvrtc = new Nvrtc();
    const allocator = new CachingAllocator(driver);
    const b = new CudaBackend(driver, nvrtc, allocator, makeGemm(driver, allocator));
    b.setFloat32MatmulPrecision(precisionFromEnv());
    backend = b;
    return backend;
  } catch (e) {
    failure =
      e instanceof CudaError || e instanceof NvrtcError
        ? new UserError(`CUDA is not usable: ${e.message}; check the NVIDIA driver and GPU (nvidia-smi) or run with --device cpu`)
        : e instanceof Error
          ? e
          : new Error(String(e));
    throw failure;
  }
}

/** MOPT_FLOAT32_MATMUL_PRECISION: highest (float32 arithmetic, the default) or high (TF32 tensor cores). */
function precisionFromEnv(): Float32MatmulPrecision {
  const v = process.env.MOPT_FLOAT32_MATMUL_PRECISION;
  if (v === undefined || v === '') return 'highest';
  const p = FLOAT32_MATMUL_PRECISIONS.find((x) => x === v);
  if (p === undefined) {
    throw new UserError(`MOPT_FLOAT32_MATMUL_PRECISION=${v}: expected ${FLOAT32_MATMUL_PRECISIONS.join(' or ')} (high: float32 matmuls on TF32 tensor cores)`);
  }
  return p;
}

/** cuBLASLt when its library is present; otherwise matmuls run on the (slow) matmul.cu fallback. */
function makeGemm(driver: CudaDriver, allocator: CachingAllocator): Gemm | null {
  const workspace = allocator.alloc(GEMM_WORKSPACE);
  const address = (v: View): number => viewAddress((v.storage as CudaStorage).ptr, v);
  try {
    return new CublasLt(driver, workspace.ptr, workspace.size, address);
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    allocator.free(workspace);
    process.stderr.write(`mopt: ${e.message}\nmopt: continuing with the slow fallback matmul kernel\n`);
    return null;
  }
}
