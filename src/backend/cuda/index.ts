// Entry point of the CUDA backend: one backend per process on device 0, created on first use. Failing to
// find libcuda or NVRTC surfaces as find-libs' UserError (one sentence saying what to install); a driver
// that is present but unusable (no GPU, a driver/toolkit mismatch) as a UserError with the driver's words.
// The failure is remembered, so asking again does not rescan the disk.

import { UserError } from '../../util/errors.js';
import { CachingAllocator } from './allocator.js';
import { CudaBackend } from './cuda-backend.js';
import { CudaDriver, CudaError } from './driver.js';
import { Nvrtc, NvrtcError } from './nvrtc.js';

export { CudaBackend, CudaStorage, type Gemm } from './cuda-backend.js';
export { CachingAllocator, type AllocatorStats } from './allocator.js';

let backend: CudaBackend | null = null;
let failure: Error | null = null;

export function getCudaBackend(): CudaBackend {
  if (backend !== null) return backend;
  if (failure !== null) throw failure;
  try {
    const driver = CudaDriver.open();
    const nvrtc = new Nvrtc();
    // The cuBLASLt Gemm (cublaslt.ts) plugs in here as the fourth argument; without it matmul.cu runs.
    backend = new CudaBackend(driver, nvrtc, new CachingAllocator(driver));
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
