// Reading and writing strided views of CPU storage as plain numbers. Every CPU kernel funnels its
// inputs through readNumbers (decoding half/bf16/fp8 bit patterns to float32) and its output through
// writeNumbers (encoding with round-to-nearest-even), so dtype handling lives in one place.

import type { View } from '../backend.js';
import type { StorageArray } from '../../tensor/dtype.js';
import { decodeToF32, encodeFromF32 } from '../../tensor/codecs.js';
import { DTYPE_INFO, allocStorage } from '../../tensor/dtype.js';
import { isContiguous, numel } from '../../tensor/shape.js';

/** The host array behind a CPU storage. */
export function arrayOf(v: View): StorageArray {
  const h = (v.storage as { array?: StorageArray }).array;
  if (h === undefined) throw new Error(`storage of backend ${v.storage.backend.name} is not CPU memory`);
  return h;
}

/** Element offsets of a view in logical (row-major) order. */
export function viewOffsets(v: View): Int32Array {
  const n = numel(v.shape);
  const out = new Int32Array(n);
  const rank = v.shape.length;
  if (rank === 0) {
    if (n === 1) out[0] = v.offset;
    return out;
  }
  const idx = new Array<number>(rank).fill(0);
  let off = v.offset;
  const last = rank - 1;
  const lastDim = v.shape[last];
  const lastStride = v.strides[last];
  for (let i = 0; i < n; ) {
    // inner dimension as a tight loop
    for (let j = 0; j < lastDim; j++) out[i++] = off + j * lastStride;
    // carry into outer dimensions
    let d = last - 1;
    for (; d >= 0; d--) {
      idx[d]++;
      off += v.strides[d];
      if (idx[d] < v.shape[d]) break;
      off -= v.strides[d] * v.shape[d];
      idx[d] = 0;
    }
    if (d < 0) break;
  }
  return out;
}

function contiguousRange(v: View): boolean {
  return isContiguous(v.shape, v.strides);
}

/** The view's elements in logical order as numbers (float32 for narrow floats, exact otherwise). */
export function readNumbers(v: View): Float32Array | Float64Array {
  const arr = arrayOf(v);
  const n = numel(v.shape);
  const dtype = v.storage.dtype;
  const contiguous = contiguousRange(v);
  if (dtype === 'float32' || dtype === 'float64') {
    const a = arr as Float32Array | Float64Array;
    if (contiguous) return a.subarray(v.offset, v.offset + n);
    const out = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
    const offs = viewOffsets(v);
    for (let i = 0; i < n; i++) out[i] = a[offs[i]];
    return out;
  }
  if (DTYPE_INFO[dtype].encoded) {
    const bits = (contiguous ? arr.subarray(v.offset, v.offset + n) : gatherRaw(arr, viewOffsets(v))) as StorageArray;
    const out = new Float32Array(n);
    decodeToF32(dtype, bits, out);
    return out;
  }
  const out = new Float64Array(n);
  if (dtype === 'int64') {
    const a = arr as BigInt64Array;
    if (contiguous) for (let i = 0; i < n; i++) out[i] = Number(a[v.offset + i]);
    else {
      const offs = viewOffsets(v);
      for (let i = 0; i < n; i++) out[i] = Number(a[offs[i]]);
    }
    return out;
  }
  const a = arr as Exclude<StorageArray, BigInt64Array>;
  if (contiguous) for (let i = 0; i < n; i++) out[i] = a[v.offset + i];
  else {
    const offs = viewOffsets(v);
    for (let i = 0; i < n; i++) out[i] = a[offs[i]];
  }
  return out;
}

/** Copies elements at the given offsets into a new array of the same type (bit patterns kept). */
export function gatherRaw(arr: StorageArray, offs: Int32Array): StorageArray {
  if (arr instanceof BigInt64Array) {
    const out = new BigInt64Array(offs.length);
    for (let i = 0; i < offs.length; i++) out[i] = arr[offs[i]];
    return out;
  }
  const Ctor = arr.constructor as new (n: number) => Exclude<StorageArray, BigInt64Array>;
  const out = new Ctor(offs.length);
  const a = arr as Exclude<StorageArray, BigInt64Array>;
  for (let i = 0; i < offs.length; i++) out[i] = a[offs[i]];
  return out;
}

/** Writes numbers (logical order) into a view of any dtype, rounding/encoding as the dtype requires. */
export function writeNumbers(out: View, vals: ArrayLike<number>): void {
  const arr = arrayOf(out);
  const n = numel(out.shape);
  const dtype = out.storage.dtype;
  const contiguous = contiguousRange(out);
  const src = vals instanceof Float32Array || vals instanceof Float64Array ? vals : Float64Array.from(vals);
  if (contiguous && (dtype === 'float32' || dtype === 'float64')) {
    (arr as Float32Array | Float64Array).set(src.subarray(0, n), out.offset);
    return;
  }
  // every other dtype goes through the codec: round-to-nearest-even for narrow floats; for integers
  // truncation toward zero with NaN -> 0 and clamping to the type's range (the CUDA kernels do the same)
  if (contiguous) {
    encodeFromF32(dtype, src.subarray(0, n), arr.subarray(out.offset, out.offset + n) as StorageArray);
    return;
  }
  const tmp = allocStorage(dtype, n);
  encodeFromF32(dtype, src.subarray(0, n), tmp);
  const offs = viewOffsets(out);
  if (arr instanceof BigInt64Array) for (let i = 0; i < n; i++) arr[offs[i]] = (tmp as BigInt64Array)[i];
  else {
    const a = arr as Exclude<StorageArray, BigInt64Array>;
    const t = tmp as Exclude<StorageArray, BigInt64Array>;
    for (let i = 0; i < n; i++) a[offs[i]] = t[i];
  }
}

/** Reads an index view as integers (int32 / int64 / other integer dtypes). */
export function readIndices(v: View): Int32Array {
  const nums = readNumbers(v);
  const out = new Int32Array(nums.length);
  for (let i = 0; i < nums.length; i++) out[i] = nums[i];
  return out;
}

/** The output's own float32/float64 array when kernels can write results straight into it. */
export function directOutput(out: View): Float32Array | Float64Array | null {
  const d = out.storage.dtype;
  if ((d !== 'float32' && d !== 'float64') || !contiguousRange(out)) return null;
  const n = numel(out.shape);
  return (arrayOf(out) as Float32Array | Float64Array).subarray(out.offset, out.offset + n);
}
