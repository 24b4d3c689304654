// Reading back the parts of a serialized ONNX ModelProto that loading an exported model needs: opsets,
// metadata_props, the graph's inputs / outputs and operators, and where each initializer's bytes are (inline
// raw_data, or data_location EXTERNAL with location / offset / length), without copying tensor data.
// Field numbers from onnx.proto, as in onnx-proto.ts (the writer) and onnx-tensor.ts (ProtoReader).

import { UserError } from '../util/errors.js';
import { ProtoReader, WIRE } from './onnx-tensor.js';
import type { ExternalRef, ValueInfoSpec } from './onnx-proto.js';

/** What loading a model back needs to know about one initializer; its bytes stay where they are. */
export interface InitializerInfo {
  name: string;
  dataType: number;
  dims: number[];
  /** raw_data when stored inline; null for external data or typed fields */
  raw: Uint8Array | null;
  external: ExternalRef | null;
}

export interface ModelSummary {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  metadata: Record<string, string>;
  inputs: ValueInfoSpec[];
  outputs: ValueInfoSpec[];
  /** op types of every node, '<domain>.<op>' for other domains */
  ops: string[];
  initializers: InitializerInfo[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const text = (r: ProtoReader): string => utf8.decode(r.bytes());

/**
 * Calls `read` for every field of the message in buf; `read` consumes the fields it knows and returns true,
 * the others are skipped by wire type.
 */
function eachField(buf: Uint8Array, read: (field: number, wire: number, r: ProtoReader) => boolean): void {
  const r = new ProtoReader(buf);
  while (!r.done) {
    const t = r.tag();
    if (!read(t.field, t.wire, r)) r.skip(t.wire);
  }
}

/** StringStringEntryProto */
function readKeyValue(buf: Uint8Array): [string, string] {
  const kv: [string, string] = ['', ''];
  eachField(buf, (f, _w, r) => {
    if (f !== 1 && f !== 2) return false;
    kv[f - 1] = text(r);
    return true;
  });
  return kv;
}

/** TensorShapeProto.Dimension: dim_value or dim_param ('?' when neither) */
function readDim(buf: Uint8Array): number | string {
  let d: number | string = '?';
  eachField(buf, (f, _w, r) => {
    if (f === 1) d = r.varint();
    else if (f === 2) d = text(r);
    else return false;
    return true;
  });
  return d;
}

/** TypeProto.Tensor into `out` */
function readTensorType(buf: Uint8Array, out: { elemType: number; shape: (number | string)[] }): void {
  eachField(buf, (f, _w, r) => {
    if (f === 1) out.elemType = r.varint();
    else if (f === 2) {
      // TensorShapeProto: repeated dim = 1
      eachField(r.bytes(), (sf, _sw, sr) => {
        if (sf !== 1) return false;
        out.shape.push(readDim(sr.bytes()));
        return true;
      });
    } else return false;
    return true;
  });
}

function readValueInfo(buf: Uint8Array): ValueInfoSpec {
  const out = { name: '', elemType: 0, shape: [] as (number | string)[] };
  eachField(buf, (f, _w, r) => {
    if (f === 1) out.name = text(r);
    else if (f === 2) {
      // TypeProto: tensor_type = 1
      eachField(r.bytes(), (tf, _tw, tr) => {
        if (tf !== 1) return false;
        readTensorType(tr.bytes(), out);
        return true;
      });
    } else return false;
    return true;
  });
  return out;
}

function readInitializer(buf: Uint8Array): InitializerInfo {
  const t: InitializerInfo = { name: '', dataType: 0, dims: [], raw: null, external: null };
  const ext: Record<string, string> = {};
  let location = 0;
  eachField(buf, (f, w, r) => {
    switch (f) {
      case 1: // dims, packed or not
        if (w === WIRE.LEN) {
          const p = new ProtoReader(r.bytes());
          while (!p.done) t.dims.push(Number(BigInt.asIntN(64, p.varintBig())));
        } else t.dims.push(Number(BigInt.asIntN(64, r.varintBig())));
        return true;
      case 2: t.dataType = r.varint(); return true;
      case 8: t.name = text(r); return true;
      case 9: t.raw = r.bytes(); return true;
      case 13: {
        const [k, v] = readKeyValue(r.bytes());
        ext[k] = v;
        return true;
      }
      case 14: location = r.varint(); return true;
      default: return false;
    }
  });
  if (location === 1) {
    // offset / length are decimal strings; anything else (NaN, negative, fractional) is a corrupt entry
    const count = (key: string, v: string): number => {
      const n = Number(v);
      if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new UserError(`initializer ${t.name}: external data ${key} "${v}" is not a byte count; the model file is corrupt, re-export it`);
      return n;
    };
    t.external = { location: ext.location ?? '', offset: ext.offset === undefined ? 0 : count('offset', ext.offset), length: ext.length === undefined ? -1 : count('length', ext.length) };
  }
  return t;
}

/** NodeProto as '<op>' (default domain) or '<domain>.<op>' */
function readNodeOp(buf: Uint8Array): string {
  let op = '';
  let domain = '';
  eachField(buf, (f, _w, r) => {
    if (f === 4) op = text(r);
    else if (f === 7) domain = text(r);
    else return false;
    return true;
  });
  return domain === '' ? op : `${domain}.${op}`;
}

function readGraph(buf: Uint8Array, m: ModelSummary): void {
  eachField(buf, (f, _w, r) => {
    switch (f) {
      case 1: m.ops.push(readNodeOp(r.bytes())); return true;
      case 5: m.initializers.push(readInitializer(r.bytes())); return true;
      case 11: m.inputs.push(readValueInfo(r.bytes())); return true;
      case 12: m.outputs.push(readValueInfo(r.bytes())); return true;
      default: return false;
    }
  });
}

/** Decodes the parts of a serialized ModelProto that loading needs (throws 'protobuf: ...' on damaged bytes). */
export function readModelSummary(buf: Uint8Array): ModelSummary {
  const m: ModelSummary = { irVersion: 0, opsets: [], metadata: {}, inputs: [], outputs: [], ops: [], initializers: [] };
  eachField(buf, (f, _w, r) => {
    switch (f) {
      case 1: m.irVersion = r.varint(); return true;
      case 7: readGraph(r.bytes(), m); return true;
      case 8: {
        const o = { domain: '', version: 0 };
        eachField(r.bytes(), (of, _ow, or) => {
          if (of === 1) o.domain = text(or);
          else if (of === 2) o.version = or.varint();
          else return false;
          return true;
        });
        m.opsets.push(o);
        return true;
      }
      case 14: {
        const [k, v] = readKeyValue(r.bytes());
        m.metadata[k] = v;
        return true;
      }
      default: return false;
    }
  });
  return m;
}
