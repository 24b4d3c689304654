// Oracle copy of the pre-speedup implementation (see README.md in this folder); do not edit.
// Bit-exact codecs between JS numbers / float32 and the narrow number formats mopt stores or exports.
//
// Scalar encoders take a JS number (a double) and round its exact value once, round-to-nearest-even
// (rounding to float32 first could round twice). Bulk encoders take Float32Array/Float64Array and work on
// whole tensors; for float32 input they use integer tricks on the float32 bit pattern, which is exact
// because the input already is a float32. Decoders are exact: every value of these formats is a float32.
//
// NaN handling: encoders and decoders produce the format's canonical quiet NaN (payload dropped) with the
// sign of the input NaN, like ml_dtypes' decoders; only bfloat16 decoding keeps the payload, since a
// bfloat16 is just the top half of a float32. Bulk decoders write float32 bit patterns through Uint32Array
// views, so the NaN sign reaches the output exactly.

import type { DType, StorageArray } from '../../../src/tensor/dtype.js';

// ---------------------------------------------------------------------------------------------------
// Bit access to doubles and floats (typed arrays use platform byte order, so find the high word).

const f64 = new Float64Array(1);
const f64w = new Uint32Array(f64.buffer);
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0; // index of the sign/exponent word

/** true when the sign bit of x is set (also for -0 and NaNs with the sign bit). */
function signBit(x: number): boolean {
  f64[0] = x;
  return f64w[HI]! >>> 31 === 1;
}

/** 2^n as an exact double, for n in [-1022, 1023] (built from bits: Math.pow need not be exact). */
function pow2(n: number): number {
  f64w[HI] = (n + 1023) << 20;
  f64w[1 - HI] = 0;
  return f64[0]!;
}

/** floor(log2(a)) for finite a > 0; double subnormals report -1023 (callers clamp to a larger minimum). */
function exponentOf(a: number): number {
  f64[0] = a;
  return ((f64w[HI]! >>> 20) & 0x7ff) - 1023;
}

function roundHalfEven(s: number): number {
  const fl = Math.floor(s);
  const d = s - fl; // exact: s has far fewer than 53 significant bits above the binary point
  return d > 0.5 || (d === 0.5 && (fl & 1) === 1) ? fl + 1 : fl;
}

/**
 * Magnitude code of finite a > 0 in a binary format with `mbits` mantissa bits and minimum normal
 * exponent `emin`, rounded to nearest even. The result may exceed the format's largest finite code; the
 * caller decides what overflow means. The code layout (exponent field above mantissa field, subnormals
 * with exponent field 0) makes a mantissa carry roll into the exponent by plain addition.
 */
function roundMagnitude(a: number, mbits: number, emin: number): number {
  const e = Math.max(exponentOf(a), emin);
  const r = roundHalfEven(a / pow2(e - mbits)); // exact division by a power of two
  return (e - emin) * (1 << mbits) + r;
}

function decodeMagnitude(code: number, mbits: number, emin: number): number {
  const ef = code >>> mbits;
  const m = code & ((1 << mbits) - 1);
  if (ef === 0) return m * pow2(emin - mbits);
  return ((1 << mbits) + m) * pow2(ef - 1 + emin - mbits);
}

// ---------------------------------------------------------------------------------------------------
// float16 / bfloat16 (IEEE: overflow and ±inf → ±inf)

export function f32ToF16Bits(x: number): number {
  const s = signBit(x) ? 0x8000 : 0;
  if (Number.isNaN(x)) return s | 0x7e00;
  const a = Math.abs(x);
  if (a === 0) return s;
  if (a === Infinity) return s | 0x7c00;
  return s | Math.min(roundMagnitude(a, 10, -14), 0x7c00);
}

export function f16BitsToF32(bits: number): number {
  return f16Table().f32[bits & 0xffff]!;
}

export function f32ToBf16Bits(x: number): number {
  const s = signBit(x) ? 0x8000 : 0;
  if (Number.isNaN(x)) return s | 0x7fc0;
  const a = Math.abs(x);
  if (a === 0) return s;
  if (a === Infinity) return s | 0x7f80;
  return s | Math.min(roundMagnitude(a, 7, -126), 0x7f80);
}

const bfScratch = new Uint32Array(1);
const bfScratchF = new Float32Array(bfScratch.buffer);

export function bf16BitsToF32(bits: number): number {
  bfScratch[0] = (bits & 0xffff) << 16;
  return bfScratchF[0]!;
}

// ---------------------------------------------------------------------------------------------------
// float8_e4m3fn: bias 7, max 448 (0x7e), no inf, NaN = S.1111.111.
// Ties round to even, so 464 (midpoint of 448 and the missing 480) rounds to 448; only values above 464
// overflow. ml_dtypes' tables agree. saturate=true (ONNX saturate=1) clamps overflow and ±inf to ±448;
// saturate=false makes them NaN.

export function f32ToE4M3(x: number, saturate: boolean): number {
  const s = signBit(x) ? 0x80 : 0;
  if (Number.isNaN(x)) return s | 0x7f;
  const a = Math.abs(x);
  if (a === 0) return s;
  if (a === Infinity) return s | (saturate ? 0x7e : 0x7f);
  const m = roundMagnitude(a, 3, -6);
  return s | (m <= 0x7e ? m : saturate ? 0x7e : 0x7f);
}

export function e4m3ToF32(code: number): number {
  return fp8Table('float8_e4m3fn').f32[code & 0xff]!;
}

// float8_e5m2: bias 15, max 57344 (0x7b), ±inf = 0x7c/0xfc, quiet NaN 0x7e.
// saturate=true (ONNX) maps overflow and ±inf to ±57344; saturate=false maps overflow to ±inf.

export function f32ToE5M2(x: number, saturate: boolean): number {
  const s = signBit(x) ? 0x80 : 0;
  if (Number.isNaN(x)) return s | 0x7e;
  const a = Math.abs(x);
  if (a === 0) return s;
  if (a === Infinity) return s | (saturate ? 0x7b : 0x7c);
  const m = roundMagnitude(a, 2, -14);
  return s | (m <= 0x7b ? m : saturate ? 0x7b : 0x7c);
}

export function e5m2ToF32(code: number): number {
  return fp8Table('float8_e5m2').f32[code & 0xff]!;
}

// ---------------------------------------------------------------------------------------------------
// float4_e2m1fn: 4-bit codes, sign = bit 3, magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6}; always saturates
// (±inf and overflow → ±6). The format has no NaN. NaN follows ml_dtypes and the ONNX Cast vectors:
// +NaN → 0x8 (-0) and -NaN → 0x0 (+0) (ml_dtypes' tables give exactly this for every NaN payload; it looks
// like a -0 stand-in for NaN that a negative NaN negates). Callers that quantize should not feed NaN.

export function f32ToE2M1(x: number): number {
  const neg = signBit(x);
  if (Number.isNaN(x)) return neg ? 0x0 : 0x8;
  const s = neg ? 0x8 : 0;
  const a = Math.abs(x);
  if (a === 0) return s;
  if (a === Infinity) return s | 0x7;
  return s | Math.min(roundMagnitude(a, 1, 0), 0x7);
}

export function e2m1ToF32(code: number): number {
  const v = decodeMagnitude(code & 0x7, 1, 0);
  return code & 0x8 ? -v : v;
}

// ---------------------------------------------------------------------------------------------------
// float8_e8m0fnu (MX scales): code c means 2^(c-127), c in [0, 254]; 255 is NaN; no sign, no zero.
//
// Both references round the float32 *bit pattern* (exponent field + mantissa), and mopt matches them:
// - 'up' (ONNX Cast round_mode="up", its default): the next power of two at or above x.
// - 'nearest-even' (ml_dtypes' conversion): to the nearer power of two, where the tie 1.5·2^e rounds UP
//   for every normal float32 input — the "even" in ml_dtypes' round-to-nearest-even refers to the
//   dropped mantissa of a format with no mantissa bits, whose implicit leading 1 is odd. This equals
//   ONNX round_mode="nearest" ("ties round up").
// - float32-subnormal inputs (0 < x < 2^-126) are rounded as bit patterns, i.e. linearly between code 0
//   (bits 0) and code 1 (bits 2^23): 'up' gives 1 for any of them, 'nearest-even' gives 1 above 2^-127
//   and 0 otherwise. This is what both references do (not the nearest power of two).
// - NaN and ±inf → 255 whatever `saturate` (both references).
// - x ≤ 0 (incl. -0): 0 with saturate, else NaN (ml_dtypes; ONNX's reference reads only the exponent
//   bits and so treats -x like x, which no ONNX test vector exercises).
// - Overflow (result above 2^127): 254 with saturate, else NaN.

export type E8M0Rounding = 'nearest-even' | 'up';

export function f32ToE8M0(x: number, rounding: E8M0Rounding, saturate = true): number {
  if (Number.isNaN(x) || x === Infinity || x === -Infinity) return 0xff;
  if (x <= 0) return saturate ? 0 : 0xff;
  let code: number;
  if (x < pow2(-126)) {
    code = rounding === 'up' || x > pow2(-127) ? 1 : 0;
  } else {
    const e = exponentOf(x);
    const frac = x / pow2(e); // in [1, 2)
    code = e + 127 + (rounding === 'up' ? (frac > 1 ? 1 : 0) : frac >= 1.5 ? 1 : 0);
  }
  return code <= 0xfe ? code : saturate ? 0xfe : 0xff;
}

export function e8m0ToF32(code: number): number {
  const c = code & 0xff;
  if (c === 0xff) return NaN;
  return c === 0 ? pow2(-126) / 2 : pow2(c - 127); // 2^-127 is below pow2's normal range
}

// ---------------------------------------------------------------------------------------------------
// Decode tables, built on first use. They hold float32 bit patterns (u32) plus a float32 view (f32) of
// the same memory: bulk decoding copies bits, scalar decoding reads the float view.

interface DecodeTable {
  readonly u32: Uint32Array;
  readonly f32: Float32Array;
}

function makeTable(n: number, fill: (code: number, u32: Uint32Array, f32: Float32Array) => void): DecodeTable {
  const u32 = new Uint32Array(n);
  const f32 = new Float32Array(u32.buffer);
  for (let c = 0; c < n; c++) fill(c, u32, f32);
  return { u32, f32 };
}

let f16Cache: DecodeTable | undefined;
function f16Table(): DecodeTable {
  return (f16Cache ??= makeTable(65536, (c, u32, f32) => {
    const ef = (c >>> 10) & 0x1f;
    const sign = (c & 0x8000) << 16;
    if (ef === 0x1f) u32[c] = (sign | ((c & 0x3ff) === 0 ? 0x7f800000 : 0x7fc00000)) >>> 0;
    else f32[c] = (c & 0x8000 ? -1 : 1) * decodeMagnitude(c & 0x7fff, 10, -14);
  }));
}

type Fp8 = 'float8_e4m3fn' | 'float8_e5m2';
const fp8Cache: { [K in Fp8]?: DecodeTable } = {};
function fp8Table(d: Fp8): DecodeTable {
  return (fp8Cache[d] ??= makeTable(256, (c, u32, f32) => {
    const sign = (c & 0x80) << 24;
    const mag = c & 0x7f;
    if (d === 'float8_e4m3fn') {
      if (mag === 0x7f) u32[c] = (sign | 0x7fc00000) >>> 0;
      else f32[c] = (c & 0x80 ? -1 : 1) * decodeMagnitude(mag, 3, -6);
    } else if (mag >= 0x7c) {
      u32[c] = (sign | (mag === 0x7c ? 0x7f800000 : 0x7fc00000)) >>> 0;
    } else {
      f32[c] = (c & 0x80 ? -1 : 1) * decodeMagnitude(mag, 2, -14);
    }
  }));
}

// ---------------------------------------------------------------------------------------------------
// Bulk conversion of whole tensors.

function u32View(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

type StorageCtor = new (n: number) => StorageArray;

const STORAGE_CTOR: { readonly [K in DType]: StorageCtor } = {
  float64: Float64Array, float32: Float32Array, float16: Uint16Array, bfloat16: Uint16Array,
  float8_e4m3fn: Uint8Array, float8_e5m2: Uint8Array, int64: BigInt64Array, int32: Int32Array,
  int16: Int16Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array,
};

// The bulk loops below rely on the array kind (bit patterns vs values, clamping ranges), so a mismatch
// is an error rather than a silent reinterpretation.
function expectKind(dtype: DType, a: StorageArray, fn: string): void {
  const ctor = STORAGE_CTOR[dtype];
  if (!(a instanceof ctor)) throw new TypeError(`${fn}: ${dtype} storage must be a ${ctor.name}, got ${a.constructor.name}`);
}

/** Exact bigint → float32 value (Number(v) would round to double first and could round twice). */
function bigintToF32(v: bigint): number {
  const n = Number(v);
  if (Math.abs(n) <= 2 ** 53) return n; // exact as a double; the Float32Array store rounds once
  const neg = v < 0n;
  const a = neg ? -v : v;
  const shift = BigInt(a.toString(2).length - 24);
  let m = a >> shift;
  const rem = a - (m << shift);
  const half = 1n << (shift - 1n);
  if (rem > half || (rem === half && (m & 1n) === 1n)) m += 1n;
  const r = Number(m) * 2 ** Number(shift); // m ≤ 2^24, times a power of two: exact
  return neg ? -r : r;
}

/** Decodes n = src.length elements of `dtype` storage into float32 (dst.length must equal src.length). */
export function decodeToF32(dtype: DType, src: StorageArray, dst: Float32Array): void {
  if (dst.length !== src.length) throw new RangeError(`decodeToF32: ${src.length} elements into ${dst.length}`);
  expectKind(dtype, src, 'decodeToF32');
  const n = src.length;
  switch (dtype) {
    case 'float16':
    case 'bfloat16': {
      const s = src as Uint16Array;
      const out = u32View(dst);
      if (dtype === 'bfloat16') {
        for (let i = 0; i < n; i++) out[i] = s[i]! << 16; // bfloat16 is the top half of a float32
      } else {
        const t = f16Table().u32;
        for (let i = 0; i < n; i++) out[i] = t[s[i]!]!;
      }
      return;
    }
    case 'float8_e4m3fn':
    case 'float8_e5m2': {
      const s = src as Uint8Array;
      const t = fp8Table(dtype).u32;
      const out = u32View(dst);
      for (let i = 0; i < n; i++) out[i] = t[s[i]!]!;
      return;
    }
    case 'int64': {
      const s = src as BigInt64Array;
      for (let i = 0; i < n; i++) dst[i] = bigintToF32(s[i]!);
      return;
    }
    default:
      // set() converts element by element: float64 rounds to nearest even, int32 rounds once, the
      // narrower integers and bool are exact.
      dst.set(src as Exclude<StorageArray, BigInt64Array>);
  }
}

const INT_RANGE = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int16: [-(2 ** 15), 2 ** 15 - 1],
  int8: [-128, 127],
  uint8: [0, 255],
} as const;

/**
 * Encodes float values into `dtype` storage (dst.length must equal src.length).
 * - float16/bfloat16: IEEE round-to-nearest-even, overflow → ±inf (`saturate` does not apply).
 * - float8: round-to-nearest-even; `saturate` as in f32ToE4M3 / f32ToE5M2 (default true, like ONNX).
 * - float32/float64: plain conversion (float64 → float32 rounds to nearest even).
 * - integer types: truncate toward zero like a C cast; NaN → 0 and out-of-range values clamp to the
 *   type's range (a C cast leaves those undefined). bool: x !== 0 (so NaN → true, as in C and numpy).
 *   Quantizers that need round-half-even must round before calling this.
 */
export function encodeFromF32(
  dtype: DType,
  src: Float32Array | Float64Array,
  dst: StorageArray,
  saturate = true,
): void {
  if (dst.length !== src.length) throw new RangeError(`encodeFromF32: ${src.length} elements into ${dst.length}`);
  expectKind(dtype, dst, 'encodeFromF32');
  const n = src.length;
  const bits = src instanceof Float32Array ? u32View(src) : null;
  switch (dtype) {
    case 'bfloat16': {
      if (bits === null) { for (let i = 0; i < n; i++) dst[i] = f32ToBf16Bits(src[i]!); return; }
      for (let i = 0; i < n; i++) {
        const b = bits[i]!;
        // NaN → quiet NaN with its sign; otherwise add half an ulp (minus one when the kept LSB is 0, so
        // ties go to even) and truncate. Carries roll into the exponent; overflow lands on ±inf.
        dst[i] = (b & 0x7fffffff) > 0x7f800000
          ? ((b >>> 16) & 0x8000) | 0x7fc0
          : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
      return;
    }
    case 'float16': {
      if (bits === null) { for (let i = 0; i < n; i++) dst[i] = f32ToF16Bits(src[i]!); return; }
      for (let i = 0; i < n; i++) {
        const b = bits[i]!;
        const abs = b & 0x7fffffff;
        if (abs >= 0x38800000 && abs < 0x477ff000) {
          // Normal float16 result (2^-14 ≤ |x| < 65520): round at bit 13, rebias exponent 127 → 15.
          dst[i] = ((b >>> 16) & 0x8000) | ((abs + 0xfff + ((abs >>> 13) & 1) - 0x38000000) >>> 13);
        } else {
          dst[i] = f32ToF16Bits(src[i]!); // subnormals, zero, overflow, inf, NaN: rare, exact path
        }
      }
      return;
    }
    case 'float8_e4m3fn':
    case 'float8_e5m2': {
      const enc = dtype === 'float8_e4m3fn' ? f32ToE4M3 : f32ToE5M2;
      if (bits === null) { for (let i = 0; i < n; i++) dst[i] = enc(src[i]!, saturate); return; }
      // Same trick as float16 for results in the normal range: [2^-6, 464] for e4m3fn (464 rounds to 448),
      // [2^-14, 61440) for e5m2. Exponent rebias: (127 - 7) << 23 and (127 - 15) << 23.
      const [lo, hi, shift, rebias] = dtype === 'float8_e4m3fn'
        ? [0x3c800000, 0x43e80001, 20, 0x3c000000]
        : [0x38800000, 0x47700000, 21, 0x38000000];
      const half = (1 << (shift - 1)) - 1;
      for (let i = 0; i < n; i++) {
        const b = bits[i]!;
        const abs = b & 0x7fffffff;
        dst[i] = abs >= lo && abs < hi
          ? ((b >>> 24) & 0x80) | ((abs + half + ((abs >>> shift) & 1) - rebias) >>> shift)
          : enc(src[i]!, saturate);
      }
      return;
    }
    case 'float32':
    case 'float64':
      for (let i = 0; i < n; i++) dst[i] = src[i]!;
      return;
    case 'bool':
      for (let i = 0; i < n; i++) dst[i] = src[i] !== 0 ? 1 : 0;
      return;
    case 'int64': {
      const d = dst as BigInt64Array;
      for (let i = 0; i < n; i++) {
        const v = src[i]!;
        // 2^63 is the first value beyond int64; -2^63 itself fits.
        d[i] = Number.isNaN(v) ? 0n : v >= 2 ** 63 ? 0x7fffffffffffffffn : v < -(2 ** 63) ? -0x8000000000000000n
          : BigInt(Math.trunc(v));
      }
      return;
    }
    default: {
      const [lo, hi] = INT_RANGE[dtype];
      for (let i = 0; i < n; i++) {
        const v = src[i]!;
        // Math.trunc(NaN) is NaN, which the typed-array store turns into 0.
        dst[i] = v <= lo ? lo : v >= hi ? hi : Math.trunc(v);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Packed 4-bit data (float4_e2m1 codes, int4/uint4): element 2k in the low nibble of byte k, element
// 2k+1 in the high nibble; an odd count leaves the last high nibble 0. Same layout as ONNX and
// compressed-tensors' pack_to_int32 byte order.

export function packNibbles(codes: Uint8Array): Uint8Array {
  const n = codes.length;
  const out = new Uint8Array((n + 1) >>> 1);
  for (let i = 0; i < n; i++) {
    const c = codes[i]!;
    if (c > 15) throw new RangeError(`packNibbles: code ${c} at ${i} does not fit in 4 bits`);
    out[i >>> 1]! |= (i & 1) === 0 ? c : c << 4;
  }
  return out;
}

export function unpackNibbles(bytes: Uint8Array, n: number): Uint8Array {
  if (bytes.length !== (n + 1) >>> 1) {
    throw new RangeError(`unpackNibbles: ${n} elements need ${(n + 1) >>> 1} bytes, got ${bytes.length}`);
  }
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (bytes[i >>> 1]! >>> ((i & 1) << 2)) & 0xf;
  return out;
}

/** Two's-complement nibble of v in [-8, 7]. */
export function int4ToNibble(v: number): number {
  if (!Number.isInteger(v) || v < -8 || v > 7) throw new RangeError(`int4ToNibble: ${v} is not an integer in [-8, 7]`);
  return v & 0xf;
}

/** Signed value of a nibble in [0, 15]. */
export function nibbleToInt4(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 15) throw new RangeError(`nibbleToInt4: ${n} is not a nibble`);
  return ((n ^ 8) - 8);
}
