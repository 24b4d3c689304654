// ONNX TensorProto decoder tests, and the ONNX Cast / DequantizeLinear node-test vectors (onnx/onnx at
// 6be0677, see shared/data/README.md "numerics") decoded with it and recomputed with mopt's codecs.
//
// The Cast vectors store every tensor in raw_data; the DequantizeLinear vectors store float8, float4,
// int4 and int2 inputs in int32_data, so together they cover both storage forms. Hand-built messages
// cover what no vector file uses: unpacked repeated fields, negative varints, the other typed fields.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ONNX_DTYPE, ProtoReader, WIRE, onnxDTypeName, onnxTensorBytes, parseOnnxTensor, type OnnxDTypeName, type OnnxTensor,
} from '../../src/io/onnx-tensor.js';
import {
  bf16BitsToF32, decodeToF32, e2m1ToF32, e8m0ToF32, encodeFromF32, f16BitsToF32, f32ToBf16Bits, f32ToE2M1,
  f32ToE4M3, f32ToE5M2, f32ToE8M0, f32ToF16Bits, int4ToNibble, nibbleToInt4, packNibbles, unpackNibbles,
  type E8M0Rounding,
} from '../../src/tensor/codecs.js';
import { SHARED_DATA, DATA_SKIP } from '../helpers/paths.js';

const DATA = SHARED_DATA;
const skip = DATA_SKIP;
const NODE_TESTS = join(DATA, 'numerics/onnx-node-tests');

// ---------------------------------------------------------------------------------------------------
// A tiny protobuf writer, only to build test messages.

function varint(v: number | bigint): number[] {
  let x = BigInt.asUintN(64, BigInt(v)); // negatives become 10-byte two's complement, as protobuf writes them
  const out: number[] = [];
  do {
    const b = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x > 0n ? b | 0x80 : b);
  } while (x > 0n);
  return out;
}
const tag = (field: number, wire: number): number[] => varint(field * 8 + wire);
const lenField = (field: number, bytes: ArrayLike<number>): number[] => [...tag(field, WIRE.LEN), ...varint(bytes.length), ...Array.from(bytes)];
const f32le = (x: number): number[] => [...new Uint8Array(Float32Array.of(x).buffer)];
const f64le = (x: number): number[] => [...new Uint8Array(Float64Array.of(x).buffer)];
const utf8 = (s: string): number[] => [...new TextEncoder().encode(s)];

test('TensorProto: packed and unpacked repeated fields, negative varints, unknown fields skipped', () => {
  const msg = Uint8Array.from([
    ...lenField(8, utf8('w')),
    ...tag(1, WIRE.VARINT), ...varint(2), // dims unpacked ...
    ...lenField(1, varint(3)), // ... and packed, in one message: both append
    ...tag(2, WIRE.VARINT), ...varint(ONNX_DTYPE.FLOAT),
    ...lenField(4, [...f32le(1.5), ...f32le(-2)]), // packed float_data
    ...tag(4, WIRE.I32), ...f32le(0.25), // unpacked float_data
    ...tag(4, WIRE.I32), ...f32le(NaN),
    ...tag(4, WIRE.I32), ...f32le(1e-45),
    ...tag(4, WIRE.I32), ...f32le(-0),
    ...tag(99, WIRE.I64), ...f64le(1), // unknown fields of every wire type
    ...tag(98, WIRE.VARINT), ...varint(-1),
    ...lenField(3, [8, 1, 16, 2]), // segment (a message): skipped
    ...tag(97, WIRE.I32), 1, 2, 3, 4,
  ]);
  const t = parseOnnxTensor(msg);
  assert.equal(t.name, 'w');
  assert.deepEqual(t.dims, [2, 3]);
  assert.equal(onnxDTypeName(t.dataType), 'FLOAT');
  assert.deepEqual(t.floatData, [1.5, -2, 0.25, NaN, Math.fround(1e-45), -0]);
  const bytes = onnxTensorBytes(t);
  assert.deepEqual([...new Float32Array(bytes.buffer, bytes.byteOffset, 6)], [1.5, -2, 0.25, NaN, Math.fround(1e-45), -0]);

  const ints = parseOnnxTensor(Uint8Array.from([
    ...lenField(1, [...varint(2), ...varint(2)]),
    ...tag(2, WIRE.VARINT), ...varint(ONNX_DTYPE.INT16),
    ...lenField(5, [...varint(-1), ...varint(-32768)]),
    ...tag(5, WIRE.VARINT), ...varint(32767),
    ...tag(5, WIRE.VARINT), ...varint(300),
  ]));
  assert.deepEqual(ints.int32Data, [-1, -32768, 32767, 300]);
  const i16 = onnxTensorBytes(ints);
  assert.deepEqual([...new Int16Array(i16.buffer, i16.byteOffset, 4)], [-1, -32768, 32767, 300]);

  const i64 = parseOnnxTensor(Uint8Array.from([
    ...lenField(1, varint(3)), ...tag(2, WIRE.VARINT), ...varint(ONNX_DTYPE.INT64),
    ...lenField(7, [...varint(-1n), ...varint(-(2n ** 63n))]), ...tag(7, WIRE.VARINT), ...varint(2n ** 62n + 1n),
  ]));
  assert.deepEqual(i64.int64Data, [-1n, -(2n ** 63n), 2n ** 62n + 1n]);
  const b64 = onnxTensorBytes(i64);
  assert.deepEqual([...new BigInt64Array(b64.buffer, b64.byteOffset, 3)], i64.int64Data);

  const u64 = parseOnnxTensor(Uint8Array.from([
    ...lenField(1, varint(2)), ...tag(2, WIRE.VARINT), ...varint(ONNX_DTYPE.UINT64),
    ...lenField(11, [...varint(2n ** 64n - 1n), ...varint(5)]),
  ]));
  assert.deepEqual(u64.uint64Data, [2n ** 64n - 1n, 5n]);

  const dbl = parseOnnxTensor(Uint8Array.from([
    ...tag(2, WIRE.VARINT), ...varint(ONNX_DTYPE.DOUBLE), // no dims: a scalar
    ...tag(10, WIRE.I64), ...f64le(Math.PI),
  ]));
  assert.deepEqual(dbl.dims, []);
  assert.deepEqual([...new Float64Array(onnxTensorBytes(dbl).buffer)], [Math.PI]);

  const str = parseOnnxTensor(Uint8Array.from([
    ...lenField(1, varint(2)), ...tag(2, WIRE.VARINT), ...varint(ONNX_DTYPE.STRING),
    ...lenField(6, utf8('ab')), ...lenField(6, []),
  ]));
  assert.deepEqual(str.stringData.map((s) => new TextDecoder().decode(s)), ['ab', '']);
  assert.throws(() => onnxTensorBytes(str), /no fixed-width/);

  // bfloat16 bit patterns in int32_data, one per entry; a 4-bit type packs two per entry
  const bf = parseOnnxTensor(Uint8Array.from([
    ...lenField(1, varint(2)), ...tag(2, WIRE.VARINT), ...varint(ONNX_DTYPE.BFLOAT16),
    ...lenField(5, [...varint(0x3fc0), ...varint(0xffc0)]),
  ]));
  assert.deepEqual([...onnxTensorBytes(bf)], [0xc0, 0x3f, 0xc0, 0xff]);
  const i4 = parseOnnxTensor(Uint8Array.from([
    ...lenField(1, varint(3)), ...tag(2, WIRE.VARINT), ...varint(ONNX_DTYPE.INT4), ...lenField(5, [...varint(0x21), ...varint(0x0f)]),
  ]));
  assert.deepEqual([...onnxTensorBytes(i4)], [0x21, 0x0f]);
});

test('TensorProto: malformed and unsupported input is rejected', () => {
  const raw = (n: number, dims: number[]): Uint8Array => Uint8Array.from([
    ...lenField(1, dims.flatMap((d) => varint(d))), ...tag(2, WIRE.VARINT), ...varint(ONNX_DTYPE.FLOAT), ...lenField(9, new Array<number>(n).fill(0)),
  ]);
  assert.equal(onnxTensorBytes(parseOnnxTensor(raw(24, [2, 3]))).length, 24);
  assert.throws(() => onnxTensorBytes(parseOnnxTensor(raw(20, [2, 3]))), /raw_data has 20 bytes, expected 24/);
  assert.throws(() => parseOnnxTensor(raw(24, [2, 3]).subarray(0, 20)), /runs past the end/);
  assert.throws(() => parseOnnxTensor(Uint8Array.from([0x08, 0x80])), /truncated varint/);
  assert.throws(() => parseOnnxTensor(Uint8Array.from([0x0b])), /wire type 3/); // field 1, group start
  const long = [...new Array<number>(10).fill(0x80), 0x01]; // an 11-byte varint
  for (const field of [1, 2, 5]) { // read by varintBig, varint and int32 respectively
    assert.throws(() => parseOnnxTensor(Uint8Array.from([...tag(field, WIRE.VARINT), ...long])), /longer than 10 bytes/);
  }
  assert.throws(() => parseOnnxTensor(Uint8Array.from([...tag(4, WIRE.VARINT), 1])), /wire type 0/);
  const ext = parseOnnxTensor(Uint8Array.from([...tag(2, WIRE.VARINT), 1, ...tag(14, WIRE.VARINT), 1]));
  assert.throws(() => onnxTensorBytes(ext), /external data/);
  const short = parseOnnxTensor(Uint8Array.from([...lenField(1, varint(3)), ...tag(2, WIRE.VARINT), ...varint(ONNX_DTYPE.FLOAT), ...tag(4, WIRE.I32), ...f32le(1)]));
  assert.throws(() => onnxTensorBytes(short), /float_data has 1 values, expected 3/);
  // the decoded tensor owns its bytes (a Node Buffer's slice() would alias the file buffer)
  const buf = Buffer.from(raw(8, [2]));
  const t = parseOnnxTensor(buf);
  buf.fill(0xff);
  assert.deepEqual([...t.rawData!], new Array<number>(8).fill(0));
});

// ---------------------------------------------------------------------------------------------------
// ONNX node-test vectors

function load(dir: string, file: string): OnnxTensor {
  return parseOnnxTensor(readFileSync(join(NODE_TESTS, dir, 'test_data_set_0', file)));
}

function subMessages(buf: Uint8Array, field: number): Uint8Array[] {
  const r = new ProtoReader(buf);
  const out: Uint8Array[] = [];
  while (!r.done) {
    const t = r.tag();
    if (t.field === field && t.wire === WIRE.LEN) out.push(r.bytes());
    else r.skip(t.wire);
  }
  return out;
}

/** Int and string attributes of the single node in model.onnx (ModelProto.graph=7, GraphProto.node=1,
 *  NodeProto.attribute=5, AttributeProto name=1, i=3, s=4). */
function nodeAttributes(dir: string): Map<string, number | string> {
  const model = readFileSync(join(NODE_TESTS, dir, 'model.onnx'));
  const [graph] = subMessages(model, 7);
  const nodes = subMessages(graph!, 1);
  assert.equal(nodes.length, 1, `${dir}: one node`);
  const attrs = new Map<string, number | string>();
  for (const a of subMessages(nodes[0]!, 5)) {
    const r = new ProtoReader(a);
    let name = '';
    let value: number | string = 0;
    while (!r.done) {
      const t = r.tag();
      if (t.field === 1) name = new TextDecoder().decode(r.bytes());
      else if (t.field === 3) value = Number(BigInt.asIntN(64, r.varintBig()));
      else if (t.field === 4) value = new TextDecoder().decode(r.bytes());
      else r.skip(t.wire);
    }
    attrs.set(name, value);
  }
  return attrs;
}

/** Element values of a tensor as JS numbers, decoded with mopt's codecs. */
function values(t: OnnxTensor): number[] {
  const bytes = onnxTensorBytes(t);
  const n = t.dims.reduce((a, b) => a * b, 1);
  const type = onnxDTypeName(t.dataType);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (type) {
    case 'FLOAT': return Array.from({ length: n }, (_, i) => dv.getFloat32(4 * i, true));
    case 'FLOAT16':
    case 'BFLOAT16': {
      const bits = Uint16Array.from({ length: n }, (_, i) => dv.getUint16(2 * i, true));
      decodeToF32(type === 'FLOAT16' ? 'float16' : 'bfloat16', bits, out);
      const scalar = Array.from(bits, type === 'FLOAT16' ? f16BitsToF32 : bf16BitsToF32);
      scalar.forEach((v, i) => assert.ok(Object.is(v, out[i]) || (Number.isNaN(v) && Number.isNaN(out[i]))));
      return scalar;
    }
    case 'FLOAT8E4M3FN':
    case 'FLOAT8E5M2':
      decodeToF32(type === 'FLOAT8E4M3FN' ? 'float8_e4m3fn' : 'float8_e5m2', bytes, out);
      return [...out];
    case 'FLOAT8E8M0': return Array.from(bytes, e8m0ToF32);
    case 'FLOAT4E2M1': return Array.from(unpackNibbles(bytes, n), e2m1ToF32);
    case 'INT4': return Array.from(unpackNibbles(bytes, n), nibbleToInt4);
    case 'UINT4': return Array.from(unpackNibbles(bytes, n));
    case 'INT2':
    case 'UINT2': // no mopt codec: four per byte, element 4k in the lowest bits
      return Array.from({ length: n }, (_, i) => {
        const v = (bytes[i >> 2]! >> (2 * (i & 3))) & 3;
        return type === 'INT2' && v >= 2 ? v - 4 : v;
      });
    case 'INT8': return [...new Int8Array(bytes.buffer, bytes.byteOffset, n)];
    case 'UINT8': return [...bytes];
    default: throw new Error(`no decoder for ${type}`);
  }
}

// FNUZ types (float8_e4m3fnuz, float8_e5m2fnuz) are skipped: mopt has no such dtype.
const castDirs = existsSync(NODE_TESTS) ? readdirSync(NODE_TESTS).filter((d) => d.startsWith('test_cast_') && !d.includes('FNUZ')) : [];

test('ONNX Cast vectors: mopt codecs reproduce every output bit-exactly', { skip }, () => {
  assert.equal(castDirs.length, 34); // 46 test_cast_* dirs minus 12 FNUZ ones
  for (const dir of castDirs) {
    const attrs = nodeAttributes(dir);
    const sat = attrs.get('saturate') !== 0; // ONNX default saturate=1
    const roundMode = (attrs.get('round_mode') ?? 'up') as string;
    const input = load(dir, 'input_0.pb'), output = load(dir, 'output_0.pb');
    const to = onnxDTypeName(output.dataType)!;
    assert.equal(ONNX_DTYPE[to], attrs.get('to'), dir);
    const xs = values(input);
    const outBytes = onnxTensorBytes(output);
    const ctx = (i: number): string => `${dir}[${i}] input ${xs[i]}`;
    const codes = (enc: (x: number) => number): number[] => xs.map(enc);
    const u16 = (): number[] => Array.from({ length: xs.length }, (_, i) => outBytes[2 * i]! | (outBytes[2 * i + 1]! << 8));
    switch (to) {
      case 'FLOAT': {
        const want = values(output);
        xs.forEach((x, i) => assert.ok(Object.is(Math.fround(x), want[i]) || (Number.isNaN(x) && Number.isNaN(want[i])), ctx(i)));
        break;
      }
      case 'FLOAT16':
      case 'BFLOAT16': {
        const enc = to === 'FLOAT16' ? f32ToF16Bits : f32ToBf16Bits;
        assert.deepEqual(codes(enc), u16(), dir);
        if (onnxDTypeName(input.dataType) === 'FLOAT') {
          const bulk = new Uint16Array(xs.length);
          encodeFromF32(to === 'FLOAT16' ? 'float16' : 'bfloat16', Float32Array.from(xs), bulk);
          assert.deepEqual([...bulk], u16(), `${dir} bulk`);
        }
        break;
      }
      case 'FLOAT8E4M3FN':
      case 'FLOAT8E5M2': {
        const enc = to === 'FLOAT8E4M3FN' ? f32ToE4M3 : f32ToE5M2;
        assert.deepEqual(codes((x) => enc(x, sat)), [...outBytes], dir);
        const bulk = new Uint8Array(xs.length);
        encodeFromF32(to === 'FLOAT8E4M3FN' ? 'float8_e4m3fn' : 'float8_e5m2', Float32Array.from(xs), bulk, sat);
        assert.deepEqual([...bulk], [...outBytes], `${dir} bulk`);
        break;
      }
      case 'FLOAT4E2M1':
        // also checks the packing: element 2k in the low nibble, a zero high nibble after an odd count
        assert.deepEqual([...packNibbles(Uint8Array.from(codes(f32ToE2M1)))], [...outBytes], dir);
        break;
      case 'FLOAT8E8M0':
        assert.equal(roundMode, 'up');
        assert.deepEqual(codes((x) => f32ToE8M0(x, roundMode as E8M0Rounding, sat)), [...outBytes], dir);
        break;
      case 'INT4':
      case 'UINT4': {
        // ONNX casts to 4-bit integers wrap out-of-range values (-9 → 7, 15 → -1 for INT4); mopt's
        // int4ToNibble rejects them instead, so only in-range elements go through it.
        const want = unpackNibbles(outBytes, xs.length);
        xs.forEach((x, i) => {
          assert.equal(want[i], x & 0xf, `${ctx(i)}: ONNX wraps modulo 16`);
          const inRange = to === 'INT4' ? x >= -8 && x <= 7 : x >= 0 && x <= 15;
          if (to === 'INT4' && inRange) assert.equal(int4ToNibble(x), want[i], ctx(i));
          if (to === 'INT4' && !inRange) assert.throws(() => int4ToNibble(x), RangeError);
        });
        assert.deepEqual([...packNibbles(want)], [...outBytes], `${dir} packing`);
        assert.ok(xs.some((x) => x < -8 || x > 15), `${dir} exercises wrapping`);
        break;
      }
      case 'INT8':
      case 'UINT8':
        assert.deepEqual(values(output), xs, dir);
        break;
      default:
        assert.fail(`${dir}: unexpected output type ${to}`);
    }
  }
});

test('ONNX DequantizeLinear vectors with int32_data storage decode to the expected floats', { skip }, () => {
  const dirs = ['e4m3fn', 'e4m3fn_zero_point', 'e5m2', 'float4e2m1', 'int4', 'uint4', 'int2', 'uint2'].map((s) => `test_dequantizelinear_${s}`);
  const storage = new Set<OnnxDTypeName | undefined>();
  for (const dir of dirs) {
    const x = load(dir, 'input_0.pb');
    assert.equal(x.rawData, null, `${dir} stores its input in int32_data`);
    storage.add(onnxDTypeName(x.dataType));
    const scale = values(load(dir, 'input_1.pb'));
    assert.equal(scale.length, 1);
    const zpFile = join(NODE_TESTS, dir, 'test_data_set_0', 'input_2.pb');
    const zp = existsSync(zpFile) ? values(load(dir, 'input_2.pb'))[0]! : 0;
    const want = values(load(dir, 'output_0.pb'));
    // y = (x - zero_point) * scale, in float32 like the ONNX reference
    const got = values(x).map((v) => Math.fround(Math.fround(v - zp) * scale[0]!));
    assert.deepEqual(got, want, dir);
  }
  assert.equal(storage.size, 7);
});
