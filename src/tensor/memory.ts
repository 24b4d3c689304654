// Live tensor bytes per backend: every storage counts from its first tensor view until its last is disposed
// (or the storage is freed). The CUDA allocator has its own stats (blocks incl. workspace and cache); this
// counter is the same on every backend and counts what the model code holds, so tests can bound a phase's
// peak (layer-by-layer calibration: one layer plus activations) on the CPU and on CUDA alike. It does not
// see kernels' internal scratch (e.g. the CPU attention's key copy) or host-side typed arrays.

import type { Backend, Storage } from '../backend/backend.js';
import { DTYPE_INFO } from './dtype.js';

interface Counter {
  live: number;
  peak: number;
}

const counters = new WeakMap<Backend, Counter>();
/** storages being counted (so a storage freed twice, or freed by its backend directly, is subtracted once) */
const counted = new WeakSet<Storage>();

function counter(b: Backend): Counter {
  let c = counters.get(b);
  if (c === undefined) {
    c = { live: 0, peak: 0 };
    counters.set(b, c);
  }
  return c;
}

const bytesOf = (s: Storage): number => s.length * DTYPE_INFO[s.dtype].bytes;

/** Called when a storage gets its first tensor view. */
export function storageViewed(s: Storage): void {
  if (counted.has(s)) return;
  counted.add(s);
  const c = counter(s.backend);
  c.live += bytesOf(s);
  if (c.live > c.peak) c.peak = c.live;
}

/** Called when a storage's last view is disposed (right before it is freed). */
export function storageReleased(s: Storage): void {
  if (!counted.has(s)) return;
  counted.delete(s);
  counter(s.backend).live -= bytesOf(s);
}

/** Bytes of tensor storage alive on the backend now. */
export function liveTensorBytes(b: Backend): number {
  return counter(b).live;
}

/** The most bytes alive at once since the last resetPeakTensorBytes (or since start). */
export function peakTensorBytes(b: Backend): number {
  return counter(b).peak;
}

/** Starts a new peak measurement from the bytes alive now. */
export function resetPeakTensorBytes(b: Backend): void {
  const c = counter(b);
  c.peak = c.live;
}
