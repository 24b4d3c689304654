// Element types mopt stores and computes with. Half, bfloat16 and 8-bit floats live as bit patterns
// (Node 20 has no Float16Array); their codecs are in codecs.ts. Packed 4-bit data (e2m1, int4) is stored
// as uint8 tensors with two elements per byte (see codecs.ts pack/unpack helpers).

export const DTYPES = [
  'float64',
  'float32',
  'float16',
  'bfloat16',
  'float8_e4m3fn',
  'float8_e5m2',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint8',
  'bool',
] as const;

export type DType = (typeof DTYPES)[number];

/** The JS array type that holds a dtype's storage (bit patterns for the narrow floats). */
export type StorageArray =
  | Float64Array
  | Float32Array
  | Uint16Array
  | Uint8Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array;

interface DTypeInfo {
  /** bytes per element in memory and in safetensors */
  readonly bytes: number;
  /** safetensors header name */
  readonly safetensors: string;
  /** numpy descr used by .npy (little endian), or null when numpy has no such type */
  readonly npy: string | null;
  readonly isFloat: boolean;
  /** true when storage holds bit patterns that must be decoded before arithmetic */
  readonly encoded: boolean;
}

export const DTYPE_INFO: { readonly [K in DType]: DTypeInfo } = {
  float64: { bytes: 8, safetensors: 'F64', npy: '<f8', isFloat: true, encoded: false },
  float32: { bytes: 4, safetensors: 'F32', npy: '<f4', isFloat: true, encoded: false },
  float16: { bytes: 2, safetensors: 'F16', npy: '<f2', isFloat: true, encoded: true },
  bfloat16: { bytes: 2, safetensors: 'BF16', npy: null, isFloat: true, encoded: true },
  float8_e4m3fn: { bytes: 1, safetensors: 'F8_E4M3', npy: null, isFloat: true, encoded: true },
  float8_e5m2: { bytes: 1, safetensors: 'F8_E5M2', npy: null, isFloat: true, encoded: true },
  int64: { bytes: 8, safetensors: 'I64', npy: '<i8', isFloat: false, encoded: false },
  int32: { bytes: 4, safetensors: 'I32', npy: '<i4', isFloat: false, encoded: false },
  int16: { bytes: 2, safetensors: 'I16', npy: '<i2', isFloat: false, encoded: false },
  int8: { bytes: 1, safetensors: 'I8', npy: '|i1', isFloat: false, encoded: false },
  uint8: { bytes: 1, safetensors: 'U8', npy: '|u1', isFloat: false, encoded: false },
  bool: { bytes: 1, safetensors: 'BOOL', npy: '|b1', isFloat: false, encoded: false },
};

export function isDType(s: string): s is DType {
  return (DTYPES as readonly string[]).includes(s);
}

export function dtypeFromSafetensors(name: string): DType | undefined {
  for (const d of DTYPES) if (DTYPE_INFO[d].safetensors === name) return d;
  return undefined;
}

export function isFloatDType(d: DType): boolean {
  return DTYPE_INFO[d].isFloat;
}

/** Allocates zeroed storage for n elements of dtype d. */
export function allocStorage(d: DType, n: number): StorageArray {
  switch (d) {
    case 'float64': return new Float64Array(n);
    case 'float32': return new Float32Array(n);
    case 'float16':
    case 'bfloat16': return new Uint16Array(n);
    case 'float8_e4m3fn':
    case 'float8_e5m2':
    case 'uint8':
    case 'bool': return new Uint8Array(n);
    case 'int8': return new Int8Array(n);
    case 'int16': return new Int16Array(n);
    case 'int32': return new Int32Array(n);
    case 'int64': return new BigInt64Array(n);
  }
}

/** Views little-endian bytes as the storage array of dtype d (copies when the offset is misaligned). */
export function storageFromBytes(d: DType, bytes: Uint8Array): StorageArray {
  const size = DTYPE_INFO[d].bytes;
  if (bytes.byteLength % size !== 0) {
    throw new Error(`${bytes.byteLength} bytes is not a whole number of ${d} elements (${size} bytes each)`);
  }
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const n = aligned.byteLength / size;
  const buf = aligned.buffer;
  const off = aligned.byteOffset;
  switch (d) {
    case 'float64': return new Float64Array(buf, off, n);
    case 'float32': return new Float32Array(buf, off, n);
    case 'float16':
    case 'bfloat16': return new Uint16Array(buf, off, n);
    case 'float8_e4m3fn':
    case 'float8_e5m2':
    case 'uint8':
    case 'bool': return new Uint8Array(buf, off, n);
    case 'int8': return new Int8Array(buf, off, n);
    case 'int16': return new Int16Array(buf, off, n);
    case 'int32': return new Int32Array(buf, off, n);
    case 'int64': return new BigInt64Array(buf, off, n);
  }
}

/** The little-endian bytes of a storage array (a view, no copy). */
export function storageBytes(a: StorageArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
