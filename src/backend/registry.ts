// Backends by device name. The CUDA backend is created on the first getBackend('cuda'); nothing on the CPU
// path calls into CUDA (importing the module only loads the FFI package, koffi).

import { UserError } from '../util/errors.js';
import type { Backend } from './backend.js';
import { cpuBackend } from './cpu/cpu-backend.js';
import { getCudaBackend } from './cuda/index.js';

export type DeviceName = 'cpu' | 'cuda';

const backends = new Map<string, Backend>([['cpu', cpuBackend]]);

export function registerBackend(name: DeviceName, b: Backend): void {
  backends.set(name, b);
}

export function getBackend(name: string = 'cpu'): Backend {
  let b = backends.get(name);
  if (b === undefined && name === 'cuda') {
    b = getCudaBackend(); // throws a UserError saying what is missing when CUDA is not usable
    backends.set(name, b);
  }
  if (b === undefined) {
    throw new UserError(`device "${name}" is not available in this build of mopt; use --device cpu`);
  }
  return b;
}
