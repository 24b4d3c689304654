// GGUF v3 files (llama.cpp / ggml; ggml-org/ggml docs/gguf.md): "GGUF", version u32, tensor count u64,
// metadata count u64, the typed metadata key-values (every value type, arrays of any type including arrays),
// tensor infos (name, dims with ne[0] = the contiguous row length first, ggml type, offset relative to the data
// section), zero padding to general.alignment (default 32), then each tensor's bytes at its aligned offset.
// This file only moves bytes: what a tensor type's blocks mean is src/export/gguf-quants.ts. The reader parses
// the header and metadata up front and reads tensor bytes on demand; a truncated or inconsistent file is a
// UserError naming the file and what is wrong.

import { closeSync, fstatSync, openSync } from 'node:fs';
import { readExactlyAt } from './raw-tensor.js';
import { atomicWriteFile } from './json-file.js';
import { UserError } from '../util/errors.js';

export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32

export type GgufNumberType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
export type GgufBigType = 'uint64' | 'int64';
export type GgufItemType = GgufNumberType | GgufBigType | 'bool' | 'string' | 'array';

export type GgufArray =
  | { itemType: GgufNumberType; items: number[] }
  | { itemType: GgufBigType; items: bigint[] }
  | { itemType: 'bool'; items: boolean[] }
  | { itemType: 'string'; items: string[] }
  | { itemType: 'array'; items: GgufArray[] };

export type GgufValue =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigType; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; value: GgufArray };

const VALUE_TYPE_IDS: Record<GgufItemType, number> = {
  uint8: 0, int8: 1, uint16: 2, int16: 3, uint32: 4, int32: 5, float32: 6, bool: 7, string: 8, array: 9, uint64: 10, int64: 11, float64: 12,
};
const SCALAR_BYTES: Record<Exclude<GgufItemType, 'string' | 'array'>, number> = {
  uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, float64: 8, uint64: 8, int64: 8, bool: 1,
};
const VALUE_TYPES = Object.fromEntries(Object.entries(VALUE_TYPE_IDS).map(([k, v]) => [v, k as GgufItemType])) as Record<number, GgufItemType>;

/** The ggml tensor types mopt reads and writes: elements per block and bytes per block. */
export const GGML_TYPES = {
  F32: { id: 0, blockSize: 1, typeSize: 4 },
  F16: { id: 1, blockSize: 1, typeSize: 2 },
  Q4_0: { id: 2, blockSize: 32, typeSize: 18 },
  Q8_0: { id: 8, blockSize: 32, typeSize: 34 },
  Q4_K: { id: 12, blockSize: 256, typeSize: 144 },
  BF16: { id: 30, blockSize: 1, typeSize: 2 },
} as const;
export type GgmlTypeName = keyof typeof GGML_TYPES;
const TYPE_BY_ID = new Map(Object.entries(GGML_TYPES).map(([name, t]) => [t.id as number, name as GgmlTypeName]));
// names of the other ggml types, for messages only (ggml.h enum ggml_type)
const OTHER_TYPE_NAMES: Record<number, string> = {
  3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS',
  18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64',
  29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};

/** Bytes of a tensor with `dims` (ne[0] first) of a type; throws when ne[0] is not a whole number of blocks. */
export function ggmlBytes(type: GgmlTypeName, dims: readonly number[], name = 'tensor'): number {
  const t = GGML_TYPES[type];
  const row = dims[0] ?? 1;
  if (row % t.blockSize !== 0) throw new UserError(`${name}: ${type} needs rows that are a multiple of ${t.blockSize} elements, got ${row}`);
  return (dims.reduce((a, b) => a * b, 1) / t.blockSize) * t.typeSize;
}

export interface GgufTensorInfo {
  name: string;
  type: GgmlTypeName;
  /** ne[0] (the contiguous row length) first, as ggml stores them */
  dims: number[];
  /** offset of the tensor's bytes from the start of the data section */
  offset: number;
  byteLength: number;
}

/** A tensor to write: its ggml type, dims (ne[0] first) and encoded bytes. */
export interface GgufTensorData {
  name: string;
  type: GgmlTypeName;
  dims: number[];
  data: Uint8Array;
}

// --------------------------------------------------------------------------------------------------------
// writing

class ByteWriter {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(next, 0, 0, this.length);
      this.buf = next;
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  u32 = (v: number): void => this.item('uint32', v);
  u64 = (v: number | bigint): void => this.item('uint64', BigInt(v));
  bytes(b: Uint8Array): void {
    const p = this.room(b.length);
    this.buf.set(b, p);
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.bytes(b);
  }
  item(type: GgufItemType, v: number | bigint | boolean | string | GgufArray): void {
    if (type === 'string') return this.string(v as string);
    if (type === 'array') {
      const a = v as GgufArray;
      this.u32(VALUE_TYPE_IDS[a.itemType]);
      this.u64(a.items.length);
      for (const x of a.items) this.item(a.itemType, x);
      return;
    }
    // reserve first: room() may replace this.buf
    const p = this.room(SCALAR_BYTES[type]);
    const b = this.buf;
    switch (type) {
      case 'uint8': return void b.writeUInt8(v as number, p);
      case 'int8': return void b.writeInt8(v as number, p);
      case 'uint16': return void b.writeUInt16LE(v as number, p);
      case 'int16': return void b.writeInt16LE(v as number, p);
      case 'uint32': return void b.writeUInt32LE(v as number, p);
      case 'int32': return void b.writeInt32LE(v as number, p);
      case 'float32': return void b.writeFloatLE(v as number, p);
      case 'float64': return void b.writeDoubleLE(v as number, p);
      case 'uint64': return void b.writeBigUInt64LE(v as bigint, p);
      case 'int64': return void b.writeBigInt64LE(v as bigint, p);
      case 'bool': return void b.writeUInt8(v ? 1 : 0, p);
    }
  }
  pad(alignment: number): void {
    this.room((alignment - (this.length % alignment)) % alignment); // Buffer.alloc is zero-filled
  }
  bytesView(): Uint8Array { return this.buf.subarray(0, this.length); }
}

/** The alignment a file with this metadata uses (general.alignment, default 32). */
function alignmentOf(metadata: ReadonlyMap<string, GgufValue>, where: string): number {
  const a = metadata.get('general.alignment');
  if (a === undefined) return GGUF_DEFAULT_ALIGNMENT;
  // llama.cpp (gguf.cpp) accepts only powers of two
  if (a.type !== 'uint32' || a.value < 8 || (a.value & (a.value - 1)) !== 0) throw new UserError(`${where}: general.alignment must be a uint32 power of two >= 8, got ${String(a.value)} (${a.type})`);
  return a.value;
}

/** The file as a list of byte chunks: header, metadata, tensor infos and padding, then each tensor's aligned bytes. */
export function encodeGguf(metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensorData[]): Uint8Array[] {
  const alignment = alignmentOf(metadata, 'GGUF writer');
  const w = new ByteWriter();
  w.u32(MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, v] of metadata) {
    if (!/^[\x20-\x7e]+$/.test(key) || key.length > 65535) throw new Error(`GGUF key ${JSON.stringify(key)} must be printable ASCII, at most 65535 bytes`);
    w.string(key);
    w.u32(VALUE_TYPE_IDS[v.type]);
    w.item(v.type, v.value);
  }
  const names = new Set<string>();
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`GGUF writer: tensor ${t.name} twice`);
    names.add(t.name);
    // llama.cpp keeps names in a 64-byte buffer with its terminating zero (GGML_MAX_NAME)
    if (Buffer.byteLength(t.name, 'utf8') >= 64) throw new Error(`GGUF tensor name ${t.name} is 64 bytes or longer (llama.cpp allows 63)`);
    if (t.dims.length < 1 || t.dims.length > 4) throw new Error(`GGUF tensor ${t.name}: 1 to 4 dims, got ${t.dims.length}`);
    const want = ggmlBytes(t.type, t.dims, t.name);
    if (t.data.length !== want) throw new Error(`GGUF tensor ${t.name}: ${t.type} [${t.dims.join(', ')}] is ${want} bytes, got ${t.data.length}`);
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(GGML_TYPES[t.type].id);
    w.u64(offset);
    offsets.push(offset);
    offset += want + ((alignment - (want % alignment)) % alignment);
  }
  w.pad(alignment);
  const chunks: Uint8Array[] = [w.bytesView()];
  for (const t of tensors) {
    chunks.push(t.data);
    const pad = (alignment - (t.data.length % alignment)) % alignment;
    if (pad > 0) chunks.push(new Uint8Array(pad));
  }
  return chunks;
}

/** Writes a GGUF file atomically (temp file beside it, renamed when complete). */
export function writeGguf(path: string, metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensorData[]): void {
  atomicWriteFile(path, encodeGguf(metadata, tensors));
}

// --------------------------------------------------------------------------------------------------------
// reading

/** Sequential reads through a window of the file, so a large vocabulary needs no whole-file buffer. */
class FileCursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;
  constructor(private readonly fd: number, readonly size: number, private readonly path: string) {}
  private view(n: number): number {
    if (this.pos + n > this.size) {
      throw new UserError(`${this.path}: truncated GGUF: ${n} bytes needed at byte ${this.pos}, the file has ${this.size}; re-create or re-download it`);
    }
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      this.buf = Buffer.alloc(Math.min(Math.max(n, 1 << 20), this.size - this.pos));
      readExactlyAt(this.fd, this.buf, this.pos, this.path);
      this.bufStart = this.pos;
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }
  // every read takes its position first: view() may replace this.buf
  u32(): number {
    const at = this.view(4);
    return this.buf.readUInt32LE(at);
  }
  /** a u64 count or offset, which must fit a JS number */
  count(what: string): number {
    const at = this.view(8);
    const v = this.buf.readBigUInt64LE(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new UserError(`${this.path}: ${what} ${v} is out of range; the file is corrupt`);
    return Number(v);
  }
  string(what: string): string {
    const n = this.count(`length of ${what}`);
    if (n > this.size - this.pos) throw new UserError(`${this.path}: truncated GGUF: ${what} claims ${n} bytes at byte ${this.pos}, the file has ${this.size}`);
    const at = this.view(n);
    return this.buf.toString('utf8', at, at + n);
  }
  item(type: GgufItemType, key: string): number | bigint | boolean | string | GgufArray {
    if (type === 'string') return this.string(`a string of ${key}`);
    if (type === 'array') {
      const itemType = this.valueType(key);
      const n = this.count(`length of array ${key}`);
      // every item takes at least one byte: a larger count is a corrupt length, not a reason to allocate
      if (n > this.size - this.pos) throw new UserError(`${this.path}: truncated GGUF: array ${key} claims ${n} items at byte ${this.pos}, the file has ${this.size}`);
      const items: unknown[] = new Array<unknown>(n);
      for (let i = 0; i < n; i++) items[i] = this.item(itemType, key);
      return { itemType, items } as GgufArray;
    }
    const at = this.view(SCALAR_BYTES[type]);
    const b = this.buf;
    switch (type) {
      case 'uint8': return b.readUInt8(at);
      case 'int8': return b.readInt8(at);
      case 'uint16': return b.readUInt16LE(at);
      case 'int16': return b.readInt16LE(at);
      case 'uint32': return b.readUInt32LE(at);
      case 'int32': return b.readInt32LE(at);
      case 'float32': return b.readFloatLE(at);
      case 'float64': return b.readDoubleLE(at);
      case 'uint64': return b.readBigUInt64LE(at);
      case 'int64': return b.readBigInt64LE(at);
      case 'bool': {
        const v = b.readUInt8(at);
        if (v > 1) throw new UserError(`${this.path}: metadata ${key} holds a bool byte ${v} (must be 0 or 1); the file is corrupt`);
        return v === 1;
      }
    }
  }
  valueType(key: string): GgufItemType {
    const id = this.u32();
    const t = VALUE_TYPES[id];
    if (t === undefined) throw new UserError(`${this.path}: metadata ${key} has value type ${id}, which is not a GGUF type (0-12); the file is corrupt`);
    return t;
  }
}

export class GgufFile {
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
    readonly version: number,
    readonly metadata: ReadonlyMap<string, GgufValue>,
    readonly tensors: ReadonlyMap<string, GgufTensorInfo>,
    readonly alignment: number,
    /** absolute file offset of the data section */
    readonly dataStart: number,
  ) {
    this.fd = fd;
  }

  static open(path: string): GgufFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      const code = e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
      throw new UserError(code === 'ENOENT' ? `GGUF file ${path} does not exist` : `cannot open GGUF file ${path}: ${code ?? String(e)}`);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new UserError(`${path} is not a file; pass the .gguf file or the export directory holding model.gguf`);
      const c = new FileCursor(fd, st.size, path);
      if (st.size < 4 || c.u32() !== MAGIC) throw new UserError(`${path} is not a GGUF file (it does not start with the bytes "GGUF")`);
      const version = c.u32();
      if (version !== 2 && version !== 3) {
        const hint = version > 0xffff ? ' (a big-endian file, which mopt does not read)' : '';
        throw new UserError(`${path}: GGUF version ${version}${hint} is not supported; mopt reads versions 2 and 3`);
      }
      const nTensors = c.count('tensor count');
      const nKv = c.count('metadata count');
      const metadata = new Map<string, GgufValue>();
      for (let i = 0; i < nKv; i++) {
        const key = c.string(`metadata key ${i}`);
        const type = c.valueType(key);
        if (metadata.has(key)) throw new UserError(`${path}: metadata key ${key} appears twice; the file is corrupt`);
        metadata.set(key, { type, value: c.item(type, key) } as GgufValue);
      }
      const alignment = alignmentOf(metadata, path);
      const infos: GgufTensorInfo[] = [];
      for (let i = 0; i < nTensors; i++) {
        const name = c.string(`tensor name ${i}`);
        const nDims = c.u32();
        if (nDims < 1 || nDims > 4) throw new UserError(`${path}: tensor ${name} has ${nDims} dims (GGUF allows 1 to 4); the file is corrupt`);
        const dims = Array.from({ length: nDims }, () => c.count(`a dim of ${name}`));
        const typeId = c.u32();
        const type = TYPE_BY_ID.get(typeId);
        if (type === undefined) {
          const known = OTHER_TYPE_NAMES[typeId];
          throw new UserError(`${path}: tensor ${name} has ggml type ${typeId}${known ? ` (${known})` : ''}, which mopt does not read; mopt reads ${Object.keys(GGML_TYPES).join(', ')}`);
        }
        const offset = c.count(`offset of ${name}`);
        if (offset % alignment !== 0) throw new UserError(`${path}: tensor ${name} starts at data offset ${offset}, not a multiple of the alignment ${alignment}; the file is corrupt`);
        infos.push({ name, type, dims, offset, byteLength: ggmlBytes(type, dims, `${path}: tensor ${name}`) });
      }
      const dataStart = c.pos + ((alignment - (c.pos % alignment)) % alignment);
      const tensors = new Map<string, GgufTensorInfo>();
      for (const t of infos) {
        if (tensors.has(t.name)) throw new UserError(`${path}: tensor ${t.name} appears twice; the file is corrupt`);
        const end = dataStart + t.offset + t.byteLength;
        if (end > st.size) throw new UserError(`${path}: truncated GGUF: tensor ${t.name} ends at byte ${end}, the file has ${st.size} bytes; re-create or re-download it`);
        tensors.set(t.name, t);
      }
      return new GgufFile(path, fd, version, metadata, tensors, alignment, dataStart);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** The bytes of a tensor (its blocks, as stored). */
  read(name: string): Uint8Array {
    const t = this.tensors.get(name);
    if (t === undefined) throw new UserError(`${this.path} has no tensor ${name}`);
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    const out = new Uint8Array(t.byteLength);
    readExactlyAt(this.fd, out, this.dataStart + t.offset, this.path);
    return out;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** A metadata value; throws naming the key when absent and not optional. */
  value(key: string): GgufValue {
    const v = this.metadata.get(key);
    if (v === undefined) throw new UserError(`${this.path}: metadata ${key} is missing`);
    return v;
  }

  /** An integer or float metadata value as a number (64-bit integers must fit). */
  number(key: string, fallback?: number): number {
    const v = this.metadata.get(key);
    if (v === undefined && fallback !== undefined) return fallback;
    const x = this.value(key);
    switch (x.type) {
      case 'uint64':
      case 'int64':
        if (x.value > BigInt(Number.MAX_SAFE_INTEGER) || x.value < -BigInt(Number.MAX_SAFE_INTEGER)) throw new UserError(`${this.path}: metadata ${key} = ${x.value} is out of range`);
        return Number(x.value);
      case 'string':
      case 'bool':
      case 'array':
        throw new UserError(`${this.path}: metadata ${key} must be a number, got a ${x.type}`);
      default:
        return x.value;
    }
  }

  string(key: string, fallback?: string): string {
    const v = this.metadata.get(key);
    if (v === undefined && fallback !== undefined) return fallback;
    const x = this.value(key);
    if (x.type !== 'string') throw new UserError(`${this.path}: metadata ${key} must be a string, got ${x.type}`);
    return x.value;
  }

  /** An array metadata value. */
  array(key: string): GgufArray {
    const x = this.value(key);
    if (x.type !== 'array') throw new UserError(`${this.path}: metadata ${key} must be an array, got ${x.type}`);
    return x.value;
  }
}

// --------------------------------------------------------------------------------------------------------
// building metadata values

export const gguf = {
  u32: (value: number): GgufValue => ({ type: 'uint32', value }),
  i32: (value: number): GgufValue => ({ type: 'int32', value }),
  f32: (value: number): GgufValue => ({ type: 'float32', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  str: (value: string): GgufValue => ({ type: 'string', value }),
  strings: (items: string[]): GgufValue => ({ type: 'array', value: { itemType: 'string', items } }),
  numbers: (itemType: GgufNumberType, items: number[]): GgufValue => ({ type: 'array', value: { itemType, items } }),
};
