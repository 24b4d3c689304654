// Minimal protobuf decoder for ONNX TensorProto files (the .pb files of ONNX node tests, or a tensor saved
// with onnx.save_tensor). Written from the field numbers in onnx.proto so mopt needs no protobuf
// dependency. Only what a tensor needs is decoded; unknown fields (segment, doc_string, external_data,
// metadata_props) are skipped by wire type, as protobuf requires.

/** onnx.proto TensorProto.DataType values. */
export const ONNX_DTYPE = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
  UINT2: 25,
  INT2: 26,
} as const;

export type OnnxDTypeName = keyof typeof ONNX_DTYPE;

export function onnxDTypeName(code: number): OnnxDTypeName | undefined {
  for (const k of Object.keys(ONNX_DTYPE) as OnnxDTypeName[]) if (ONNX_DTYPE[k] === code) return k;
  return undefined;
}

/** Bits per element as stored in raw_data; 0 for STRING and UNDEFINED. */
export function onnxElementBits(code: number): number {
  switch (code) {
    case ONNX_DTYPE.UINT2: case ONNX_DTYPE.INT2: return 2;
    case ONNX_DTYPE.UINT4: case ONNX_DTYPE.INT4: case ONNX_DTYPE.FLOAT4E2M1: return 4;
    case ONNX_DTYPE.UINT8: case ONNX_DTYPE.INT8: case ONNX_DTYPE.BOOL: case ONNX_DTYPE.FLOAT8E4M3FN:
    case ONNX_DTYPE.FLOAT8E4M3FNUZ: case ONNX_DTYPE.FLOAT8E5M2: case ONNX_DTYPE.FLOAT8E5M2FNUZ:
    case ONNX_DTYPE.FLOAT8E8M0: return 8;
    case ONNX_DTYPE.UINT16: case ONNX_DTYPE.INT16: case ONNX_DTYPE.FLOAT16: case ONNX_DTYPE.BFLOAT16: return 16;
    case ONNX_DTYPE.FLOAT: case ONNX_DTYPE.INT32: case ONNX_DTYPE.UINT32: return 32;
    case ONNX_DTYPE.INT64: case ONNX_DTYPE.UINT64: case ONNX_DTYPE.DOUBLE: case ONNX_DTYPE.COMPLEX64: return 64;
    case ONNX_DTYPE.COMPLEX128: return 128;
    default: return 0;
  }
}

/** Protobuf wire types (3 and 4, groups, are deprecated and never used by onnx.proto). */
export const WIRE = { VARINT: 0, I64: 1, LEN: 2, I32: 5 } as const;

/**
 * Sequential reader over one protobuf message. Exported so callers can walk other ONNX messages
 * (e.g. a test reading Cast attributes from model.onnx) without a protobuf library.
 */
export class ProtoReader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  /** Reads the next tag; field number and wire type. */
  tag(): { field: number; wire: number } {
    const t = this.varint();
    return { field: Math.floor(t / 8), wire: t % 8 };
  }

  /**
   * Reads a varint as a JS number. Exact up to 2^53; larger values (only negative int32/int64, which
   * protobuf writes as 10-byte two's complement) lose low bits, so use varintBig or int32 for those.
   */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('protobuf: truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
      if (mul >= 2 ** 70) throw new Error('protobuf: varint longer than 10 bytes');
    }
  }

  /** Reads a varint as an unsigned 64-bit bigint (wrap with BigInt.asIntN(64, …) for int64). */
  varintBig(): bigint {
    const start = this.pos;
    let b: number;
    do {
      if (this.pos >= this.buf.length) throw new Error('protobuf: truncated varint');
      if (this.pos - start >= 10) throw new Error('protobuf: varint longer than 10 bytes');
      b = this.buf[this.pos++]!;
    } while (b >= 0x80);
    const n = this.pos - start;
    // Up to 7 bytes (49 bits) fit a double exactly, which avoids BigInt arithmetic for common values.
    if (n <= 7) {
      let v = 0;
      for (let i = n - 1; i >= 0; i--) v = v * 128 + (this.buf[start + i]! & 0x7f);
      return BigInt(v);
    }
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 7n) | BigInt(this.buf[start + i]! & 0x7f);
    return BigInt.asUintN(64, v);
  }

  /** Reads an int32 varint: protobuf sign-extends negatives to 64 bits, the low 32 bits are the value. */
  int32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('protobuf: truncated varint');
      const b = this.buf[this.pos++]!;
      if (shift < 32) result |= (b & 0x7f) << shift;
      if (b < 0x80) return result | 0;
      shift += 7;
      if (shift > 63) throw new Error('protobuf: varint longer than 10 bytes');
    }
  }

  /** Reads a length-delimited payload (a view, not a copy). */
  bytes(): Uint8Array {
    const n = this.varint();
    const end = this.pos + n;
    if (end > this.buf.length) throw new Error('protobuf: length-delimited field runs past the end');
    const out = this.buf.subarray(this.pos, end);
    this.pos = end;
    return out;
  }

  fixed(n: 4 | 8): Uint8Array {
    const end = this.pos + n;
    if (end > this.buf.length) throw new Error('protobuf: truncated fixed-width field');
    const out = this.buf.subarray(this.pos, end);
    this.pos = end;
    return out;
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE.VARINT: this.varint(); return;
      case WIRE.I64: this.fixed(8); return;
      case WIRE.LEN: this.bytes(); return;
      case WIRE.I32: this.fixed(4); return;
      default: throw new Error(`protobuf: unsupported wire type ${wire}`);
    }
  }
}

/** A decoded TensorProto. Repeated fields that were absent are empty. */
export interface OnnxTensor {
  name: string;
  dims: number[];
  /** TensorProto.DataType code (see ONNX_DTYPE) */
  dataType: number;
  /** 0 = DEFAULT, 1 = EXTERNAL (data lives in another file; not supported by onnxTensorBytes) */
  dataLocation: number;
  rawData: Uint8Array | null;
  floatData: number[];
  int32Data: number[];
  stringData: Uint8Array[];
  int64Data: bigint[];
  doubleData: number[];
  uint64Data: bigint[];
}

// Repeated numeric fields may arrive packed (one LEN record) or unpacked (one record per element);
// parsers must accept both whatever the .proto says, so each reader below handles either wire type.
function readRepeated(r: ProtoReader, wire: number, elemWire: number, one: (sub: ProtoReader) => void): void {
  if (wire === WIRE.LEN) {
    const sub = new ProtoReader(r.bytes());
    while (!sub.done) one(sub);
  } else if (wire === elemWire) {
    one(r);
  } else {
    throw new Error(`protobuf: wire type ${wire} for a repeated field of wire type ${elemWire}`);
  }
}

const scratch = new DataView(new ArrayBuffer(8));

function f32At(r: ProtoReader): number {
  const b = r.fixed(4);
  for (let i = 0; i < 4; i++) scratch.setUint8(i, b[i]!);
  return scratch.getFloat32(0, true);
}

function f64At(r: ProtoReader): number {
  const b = r.fixed(8);
  for (let i = 0; i < 8; i++) scratch.setUint8(i, b[i]!);
  return scratch.getFloat64(0, true);
}

const utf8 = new TextDecoder('utf-8');

/** Decodes a serialized TensorProto. */
export function parseOnnxTensor(buf: Uint8Array): OnnxTensor {
  const t: OnnxTensor = {
    name: '', dims: [], dataType: 0, dataLocation: 0, rawData: null,
    floatData: [], int32Data: [], stringData: [], int64Data: [], doubleData: [], uint64Data: [],
  };
  const r = new ProtoReader(buf);
  while (!r.done) {
    const { field, wire } = r.tag();
    switch (field) {
      case 1: // dims: repeated int64
        readRepeated(r, wire, WIRE.VARINT, (s) => t.dims.push(Number(BigInt.asIntN(64, s.varintBig()))));
        break;
      case 2: t.dataType = r.varint(); break;
      case 4: readRepeated(r, wire, WIRE.I32, (s) => t.floatData.push(f32At(s))); break;
      case 5: readRepeated(r, wire, WIRE.VARINT, (s) => t.int32Data.push(s.int32())); break;
      case 6: t.stringData.push(new Uint8Array(r.bytes())); break; // copies, see raw_data
      case 7: readRepeated(r, wire, WIRE.VARINT, (s) => t.int64Data.push(BigInt.asIntN(64, s.varintBig()))); break;
      case 8: t.name = utf8.decode(r.bytes()); break;
      // Copied (new Uint8Array(view) always copies; Buffer#slice would not) so the result is aligned at offset 0
      // and does not pin the whole file buffer.
      case 9: t.rawData = new Uint8Array(r.bytes()); break;
      case 10: readRepeated(r, wire, WIRE.I64, (s) => t.doubleData.push(f64At(s))); break;
      case 11: readRepeated(r, wire, WIRE.VARINT, (s) => t.uint64Data.push(s.varintBig())); break;
      case 14: t.dataLocation = r.varint(); break;
      default: r.skip(wire);
    }
  }
  return t;
}

export function onnxElementCount(t: OnnxTensor): number {
  return t.dims.reduce((a, b) => a * b, 1);
}

/**
 * The tensor's elements as little-endian bytes, the layout raw_data uses: narrow floats as bit patterns,
 * 4-bit types two per byte (element 2k in the low nibble), 2-bit types four per byte (element 4k lowest).
 * Typed fields are converted following onnx.proto: int32_data holds one element per entry for 8/16-bit
 * types (float16/bfloat16/float8 as their bit patterns) and one packed byte per entry for 2/4-bit types.
 */
export function onnxTensorBytes(t: OnnxTensor): Uint8Array {
  if (t.dataLocation === 1) throw new Error(`ONNX tensor '${t.name}' uses external data, which is not supported`);
  const bits = onnxElementBits(t.dataType);
  if (bits === 0) throw new Error(`ONNX data type ${t.dataType} has no fixed-width byte layout`);
  const n = onnxElementCount(t);
  const nbytes = Math.ceil((n * bits) / 8);
  if (t.rawData !== null) {
    if (t.rawData.length !== nbytes) {
      throw new Error(`ONNX tensor '${t.name}': raw_data has ${t.rawData.length} bytes, expected ${nbytes}`);
    }
    return t.rawData;
  }
  const out = new Uint8Array(nbytes);
  const dv = new DataView(out.buffer);
  const check = (len: number, field: string): void => {
    if (len !== n) throw new Error(`ONNX tensor '${t.name}': ${field} has ${len} values, expected ${n}`);
  };
  switch (t.dataType) {
    case ONNX_DTYPE.FLOAT:
      check(t.floatData.length, 'float_data');
      t.floatData.forEach((v, i) => dv.setFloat32(i * 4, v, true));
      break;
    case ONNX_DTYPE.COMPLEX64: // float_data holds interleaved real/imaginary parts
      check(t.floatData.length / 2, 'float_data');
      t.floatData.forEach((v, i) => dv.setFloat32(i * 4, v, true));
      break;
    case ONNX_DTYPE.DOUBLE:
      check(t.doubleData.length, 'double_data');
      t.doubleData.forEach((v, i) => dv.setFloat64(i * 8, v, true));
      break;
    case ONNX_DTYPE.COMPLEX128:
      check(t.doubleData.length / 2, 'double_data');
      t.doubleData.forEach((v, i) => dv.setFloat64(i * 8, v, true));
      break;
    case ONNX_DTYPE.INT64:
      check(t.int64Data.length, 'int64_data');
      t.int64Data.forEach((v, i) => dv.setBigInt64(i * 8, v, true));
      break;
    case ONNX_DTYPE.UINT32:
      check(t.uint64Data.length, 'uint64_data');
      t.uint64Data.forEach((v, i) => dv.setUint32(i * 4, Number(BigInt.asUintN(32, v)), true));
      break;
    case ONNX_DTYPE.UINT64:
      check(t.uint64Data.length, 'uint64_data');
      t.uint64Data.forEach((v, i) => dv.setBigUint64(i * 8, v, true));
      break;
    default: {
      // Everything else is carried by int32_data.
      if (bits >= 8) {
        check(t.int32Data.length, 'int32_data');
        const bytesPer = bits / 8;
        t.int32Data.forEach((v, i) => {
          for (let k = 0; k < bytesPer; k++) out[i * bytesPer + k] = (v >>> (8 * k)) & 0xff;
        });
      } else {
        if (t.int32Data.length !== nbytes) {
          throw new Error(`ONNX tensor '${t.name}': int32_data has ${t.int32Data.length} packed bytes, expected ${nbytes}`);
        }
        t.int32Data.forEach((v, i) => { out[i] = v & 0xff; });
      }
    }
  }
  return out;
}
