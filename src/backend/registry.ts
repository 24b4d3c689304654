// Backends by device name. The CUDA backend registers itself here when it is loaded.

import { UserError } from '../util/errors.js';
import type { Backend } from './backend.js';
import { cpuBackend } from './cpu/cpu-backend.js';

export type DeviceName = 'cpu' | 'cuda';

const backends = new Map<string, Backend>([['cpu', cpuBackend]]);

export function registerBackend(name: DeviceName, b: Backend): void {
  backends.set(name, b);
}

export function getBackend(name: string = 'cpu'): Backend {
  const b = backends.get(name);
  if (b === undefined) {
    throw new UserError(`device "${name}" is not available in this build of mopt; use --device cpu`);
  }
  return b;
}
