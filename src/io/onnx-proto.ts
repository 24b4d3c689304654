// Protobuf encoding of the ONNX messages an export writes (ModelProto, GraphProto, NodeProto, AttributeProto,
// TensorProto with raw_data or external data, ValueInfoProto), from the field numbers of onnx.proto, so mopt
// needs no protobuf dependency. Large payloads are never copied while encoding: a message is a list of
// chunks, written to the file one after another. onnx-model-summary.ts reads models back.

import { WIRE } from './onnx-tensor.js';

/** Builds one protobuf message as chunks (small fields buffered, large byte fields kept by reference). */
export class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private pending: number[] = [];
  /** encoded size in bytes so far */
  length = 0;

  private byte(b: number): void {
    this.pending.push(b);
    this.length++;
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    this.parts.push(Uint8Array.from(this.pending));
    this.pending = [];
  }

  /** A non-negative integer (< 2^53) or any int64 (negatives as 10-byte two's complement, as protobuf writes int64). */
  varint(v: number | bigint): void {
    if (typeof v === 'number' && v >= 0 && Number.isSafeInteger(v)) {
      let n = v;
      while (n >= 0x80) {
        this.byte((n % 0x80) | 0x80);
        n = Math.floor(n / 0x80);
      }
      this.byte(n);
      return;
    }
    let n = BigInt.asUintN(64, BigInt(v));
    while (n >= 0x80n) {
      this.byte(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    this.byte(Number(n));
  }

  private tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  int(field: number, v: number | bigint): void {
    this.tag(field, WIRE.VARINT);
    this.varint(v);
  }

  float(field: number, v: number): void {
    this.tag(field, WIRE.I32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    for (const x of b) this.byte(x);
  }

  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }

  /** A length-delimited field; `data` is referenced, not copied. */
  bytes(field: number, data: Uint8Array): void {
    this.tag(field, WIRE.LEN);
    this.varint(data.byteLength);
    this.flush();
    this.parts.push(data);
    this.length += data.byteLength;
  }

  message(field: number, m: ProtoWriter): void {
    this.tag(field, WIRE.LEN);
    this.varint(m.length);
    this.flush();
    this.parts.push(...m.chunks());
    this.length += m.length;
  }

  packedInts(field: number, values: readonly (number | bigint)[]): void {
    const w = new ProtoWriter();
    for (const v of values) w.varint(v);
    this.message(field, w);
  }

  chunks(): Uint8Array[] {
    this.flush();
    return this.parts;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks()) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  }
}

/** A node attribute: ONNX's AttributeProto union, one kind per value. */
export type AttrValue = { int: number } | { float: number } | { ints: readonly number[] } | { string: string };

export interface NodeSpec {
  op: string;
  /** '' for the default ONNX domain, 'com.microsoft' for ONNX Runtime's contrib operators */
  domain: string;
  name: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs: Readonly<Record<string, AttrValue>>;
}

export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

export interface TensorSpec {
  name: string;
  /** TensorProto.DataType (ONNX_DTYPE) */
  dataType: number;
  dims: readonly number[];
  /** little-endian element bytes as raw_data holds them (4-bit types two per byte, element 2k low) */
  raw: Uint8Array;
  /** set when the bytes live in an external file instead of raw_data */
  external?: ExternalRef;
}

export interface ValueInfoSpec {
  name: string;
  elemType: number;
  /** a number for a fixed dimension, a string for a named (dynamic) one */
  shape: readonly (number | string)[];
}

export interface GraphSpec {
  name: string;
  nodes: readonly NodeSpec[];
  initializers: readonly TensorSpec[];
  inputs: readonly ValueInfoSpec[];
  outputs: readonly ValueInfoSpec[];
}

export interface ModelSpec {
  irVersion: number;
  opsets: readonly { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  graph: GraphSpec;
  metadata: Readonly<Record<string, string>>;
}

// AttributeProto.AttributeType
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;

function encodeAttr(name: string, v: AttrValue): ProtoWriter {
  const w = new ProtoWriter();
  w.string(1, name);
  if ('int' in v) {
    w.int(20, ATTR.INT);
    w.int(3, v.int);
  } else if ('float' in v) {
    w.int(20, ATTR.FLOAT);
    w.float(2, v.float);
  } else if ('ints' in v) {
    w.int(20, ATTR.INTS);
    w.packedInts(8, v.ints);
  } else {
    w.int(20, ATTR.STRING);
    w.string(4, v.string);
  }
  return w;
}

function encodeNode(n: NodeSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs)) w.message(5, encodeAttr(k, v));
  if (n.domain !== '') w.string(7, n.domain);
  return w;
}

function keyValue(key: string, value: string): ProtoWriter {
  const w = new ProtoWriter();
  w.string(1, key);
  w.string(2, value);
  return w;
}

export function encodeTensor(t: TensorSpec): ProtoWriter {
  const w = new ProtoWriter();
  w.packedInts(1, t.dims);
  w.int(2, t.dataType);
  w.string(8, t.name);
  if (t.external === undefined) {
    w.bytes(9, t.raw);
  } else {
    const e = t.external;
    w.message(13, keyValue('location', e.location));
    w.message(13, keyValue('offset', String(e.offset)));
    w.message(13, keyValue('length', String(e.length)));
    w.int(14, 1); // DataLocation EXTERNAL
  }
  return w;
}

function encodeValueInfo(v: ValueInfoSpec): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter();
  tensorType.int(1, v.elemType);
  tensorType.message(2, shape);
  const type = new ProtoWriter();
  type.message(1, tensorType);
  const w = new ProtoWriter();
  w.string(1, v.name);
  w.message(2, type);
  return w;
}

export function encodeModel(m: ModelSpec): ProtoWriter {
  const g = new ProtoWriter();
  for (const n of m.graph.nodes) g.message(1, encodeNode(n));
  g.string(2, m.graph.name);
  for (const t of m.graph.initializers) g.message(5, encodeTensor(t));
  for (const i of m.graph.inputs) g.message(11, encodeValueInfo(i));
  for (const o of m.graph.outputs) g.message(12, encodeValueInfo(o));
  const w = new ProtoWriter();
  w.int(1, m.irVersion);
  w.string(2, m.producerName);
  w.string(3, m.producerVersion);
  w.message(7, g);
  for (const o of m.opsets) {
    const op = new ProtoWriter();
    if (o.domain !== '') op.string(1, o.domain);
    op.int(2, o.version);
    w.message(8, op);
  }
  for (const [k, v] of Object.entries(m.metadata)) w.message(14, keyValue(k, v));
  return w;
}
