// The plain (dtype, shape, bytes) triple that file formats read and write. Kept apart from the tensor class so
// the I/O layer has no dependency on it: loaders convert RawTensor into whatever the caller computes with.

import { readSync } from 'node:fs';
import { allocStorage, DTYPE_INFO, type DType, type StorageArray } from '../tensor/dtype.js';
import { UserError } from '../util/errors.js';

export interface RawTensor {
  dtype: DType;
  shape: number[];
  /** C-order elements; narrow floats hold bit patterns (see dtype.ts). */
  data: StorageArray;
}

/** Number of elements of a shape; 1 for a scalar (shape []). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** True when every dimension is a non-negative safe integer. */
export function isValidShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/**
 * Throws when a RawTensor handed to a writer is inconsistent. These are bugs in the calling code rather than
 * something a user can fix, so they are plain Errors.
 */
export function assertRawTensor(name: string, t: RawTensor): void {
  if (!(t.dtype in DTYPE_INFO)) throw new Error(`tensor "${name}": unknown dtype ${String(t.dtype)}`);
  if (!isValidShape(t.shape)) throw new Error(`tensor "${name}": invalid shape ${JSON.stringify(t.shape)}`);
  // Comparing constructors catches e.g. a Float32Array labelled float16, whose bytes would be written wrongly.
  const expected = allocStorage(t.dtype, 0).constructor;
  if (t.data.constructor !== expected) {
    throw new Error(`tensor "${name}": dtype ${t.dtype} needs a ${expected.name}, got ${t.data.constructor.name}`);
  }
  const n = numel(t.shape);
  if (t.data.length !== n) {
    throw new Error(`tensor "${name}": shape [${t.shape.join(', ')}] has ${n} elements but data has ${t.data.length}`);
  }
}

/**
 * Fills target with the file's bytes starting at position. readSync may return short counts and caps one call
 * at 2 GiB, so this loops in chunks; hitting end of file means the file shrank after its size was checked.
 */
export function readExactlyAt(fd: number, target: Uint8Array, position: number, path: string): void {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < target.byteLength) {
    const len = Math.min(CHUNK, target.byteLength - done);
    const got = readSync(fd, target, done, len, position + done);
    if (got === 0) {
      throw new UserError(
        `${path}: file ended ${target.byteLength - done} bytes early at byte ${position + done}; ` +
          'it was truncated or modified while being read — re-create or re-download it',
      );
    }
    done += got;
  }
}
