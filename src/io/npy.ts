// NumPy .npy files (numpy.lib.format): magic "\x93NUMPY", version bytes, header length (uint16 LE for 1.0,
// uint32 LE for 2.0/3.0), a Python dict literal {'descr', 'fortran_order', 'shape'} padded with spaces and '\n'
// so the data starts 64-byte aligned, then the raw elements.

import { closeSync, fstatSync, openSync } from 'node:fs';
import { DTYPE_INFO, DTYPES, storageBytes, storageFromBytes, type DType } from '../tensor/dtype.js';
import { UserError } from '../util/errors.js';
import { atomicWriteFile } from './json-file.js';
import { assertRawTensor, numel, readExactlyAt, type RawTensor } from './raw-tensor.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ARRAY_ALIGN = 64;
// numpy leaves this much room after the dict so the growth axis can be rewritten in place when appending.
const GROWTH_AXIS_MAX_DIGITS = 21;
// Real headers are a few hundred bytes at most (numpy caps what it reads by default); a huge one means corruption.
const MAX_HEADER_BYTES = 1 << 20;

const NPY_DTYPES = DTYPES.filter((d) => DTYPE_INFO[d].npy !== null);
const SUPPORTED = NPY_DTYPES.map((d) => DTYPE_INFO[d].npy!).join(', ');

/** Reads a C-order little-endian .npy file (format 1.0, 2.0 or 3.0). */
export function readNpy(path: string): RawTensor {
  const fail = (msg: string): never => {
    throw new UserError(`${path}: ${msg}`);
  };
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
    if (code === 'ENOENT') throw new UserError(`.npy file ${path} does not exist; check the path`);
    if (typeof code === 'string') throw new UserError(`cannot open .npy file ${path}: ${code}`);
    throw e;
  }
  try {
    const size = fstatSync(fd).size;
    const notNpy = 'the file is truncated or not a .npy file — re-create it with numpy.save';
    if (size < 10) fail(`only ${size} bytes, too short for a .npy header; ${notNpy}`);
    const pre = new Uint8Array(Math.min(size, 12));
    readExactlyAt(fd, pre, 0, path);
    if (!MAGIC.every((b, i) => pre[i] === b)) fail(`does not start with the .npy magic "\\x93NUMPY"; ${notNpy}`);
    const [major, minor] = [pre[6]!, pre[7]!];
    const view = Buffer.from(pre.buffer, pre.byteOffset, pre.byteLength);
    let prefix: number;
    let headerLen: number;
    if (major === 1) {
      prefix = 10;
      headerLen = view.readUInt16LE(8);
    } else if ((major === 2 || major === 3) && size >= 12) {
      prefix = 12;
      headerLen = view.readUInt32LE(8);
    } else {
      return fail(`.npy format version ${major}.${minor} is not supported (mopt reads 1.0, 2.0 and 3.0); re-save with numpy.save`);
    }
    if (headerLen > MAX_HEADER_BYTES) fail(`header length ${headerLen} is implausibly large; ${notNpy}`);
    if (prefix + headerLen > size) fail(`truncated: header length ${headerLen} runs past the end of the ${size}-byte file; ${notNpy}`);
    const headerBytes = new Uint8Array(headerLen);
    readExactlyAt(fd, headerBytes, prefix, path);
    // Versions 1.0/2.0 store the header as latin-1; 3.0 switched to UTF-8 (for unicode field names).
    const headerText = Buffer.from(headerBytes).toString(major === 3 ? 'utf8' : 'latin1');
    const { dtype, fortranOrder, shape } = parseHeader(headerText, fail);
    // Fortran and C order coincide when at most one dimension exceeds 1 (numpy may still flag such arrays F).
    if (fortranOrder && shape.filter((d) => d > 1).length > 1) {
      fail(`array is stored in Fortran (column-major) order, which mopt does not read; re-save it with numpy.save(path, numpy.ascontiguousarray(a))`);
    }
    const want = numel(shape) * DTYPE_INFO[dtype].bytes;
    const have = size - prefix - headerLen;
    if (have < want) fail(`truncated: header says ${want} bytes of data, file has ${have}; re-create the file`);
    // Extra trailing bytes are ignored, as numpy.load does for files on disk.
    const bytes = new Uint8Array(want);
    readExactlyAt(fd, bytes, prefix + headerLen, path);
    return { dtype, shape, data: storageFromBytes(dtype, bytes) };
  } finally {
    closeSync(fd);
  }
}

function parseHeader(text: string, fail: (msg: string) => never): { dtype: DType; fortranOrder: boolean; shape: number[] } {
  let dict: PyValue;
  try {
    dict = parsePyLiteral(text);
  } catch (e) {
    if (e instanceof PyLiteralError) return fail(`header is not a valid Python literal (${e.message}): ${JSON.stringify(text.trim())}; re-create the file with numpy.save`);
    throw e;
  }
  if (!(dict instanceof Map)) return fail(`header is not a dict: ${JSON.stringify(text.trim())}`);
  for (const key of ['descr', 'fortran_order', 'shape']) {
    if (!dict.has(key)) fail(`header lacks the '${key}' key: ${JSON.stringify(text.trim())}`);
  }
  const descr = dict.get('descr');
  if (typeof descr !== 'string') {
    return fail(`structured dtype ${JSON.stringify(descr)} is not supported; save each field as its own plain array`);
  }
  const m = /^([<>|=])([a-zA-Z])(\d+)$/.exec(descr);
  if (m !== null && m[1] === '>' && m[3] !== '1') {
    fail(`dtype '${descr}' is big-endian, which mopt does not read; re-save with numpy.save(path, a.astype(a.dtype.newbyteorder('<')))`);
  }
  const key = m === null ? '' : `${m[2]}${m[3]}`;
  // '<', '|' and '=' are equivalent on little-endian hosts (and for 1-byte types every order is equivalent).
  const dtype = NPY_DTYPES.find((d) => DTYPE_INFO[d].npy!.slice(1) === key);
  if (dtype === undefined) {
    return fail(`dtype '${descr}' is not supported (supported: ${SUPPORTED}); convert the array with a.astype(...) and re-save`);
  }
  const fo = dict.get('fortran_order');
  if (typeof fo !== 'boolean') return fail(`header 'fortran_order' is ${JSON.stringify(fo)}, expected True or False`);
  const shape = dict.get('shape');
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    return fail(`header 'shape' is not a tuple of non-negative integers: ${JSON.stringify(text.trim())}`);
  }
  return { dtype, fortranOrder: fo, shape: shape as number[] };
}

/** Writes t as a format 1.0, C-order, little-endian .npy file (header laid out as numpy.save does), atomically. */
export function writeNpy(path: string, t: RawTensor): void {
  assertRawTensor(path, t);
  const descr = DTYPE_INFO[t.dtype].npy;
  if (descr === null) {
    throw new UserError(`${path}: dtype ${t.dtype} has no .npy equivalent (numpy has no such type); convert it to float32 first or save as safetensors`);
  }
  const shapeRepr = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeRepr}, }`;
  if (t.shape.length > 0) dict += ' '.repeat(GROWTH_AXIS_MAX_DIGITS - String(t.shape[0]).length);
  // The header ends in '\n' and the prefix (magic, version, length, header) is padded to 64 bytes; like numpy,
  // always add at least one space.
  const hlen = dict.length + 1;
  const padlen = ARRAY_ALIGN - ((MAGIC.length + 2 + 2 + hlen) % ARRAY_ALIGN);
  const total = hlen + padlen;
  if (total > 0xffff) throw new Error(`${path}: .npy 1.0 header of ${total} bytes does not fit in 16 bits`);
  const prefix = Buffer.alloc(10);
  prefix.set(MAGIC, 0);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(total, 8);
  const header = Buffer.from(dict + ' '.repeat(padlen) + '\n', 'latin1');
  atomicWriteFile(path, [prefix, header, storageBytes(t.data)]);
}

// ---- A parser for the Python literals .npy headers use (dict, str, int, bool, None, tuple, list). ----
// Headers are meant to be read with ast.literal_eval; a tiny parser is safer and simpler than eval tricks.

type PyValue = string | number | boolean | null | PyValue[] | Map<string, PyValue>;

class PyLiteralError extends Error {}

function parsePyLiteral(src: string): PyValue {
  let i = 0;
  const err = (what: string): never => {
    throw new PyLiteralError(`${what} at position ${i}`);
  };
  const ws = (): void => {
    while (i < src.length && /\s/.test(src[i]!)) i++;
  };
  // Parses items up to `close`, allowing a trailing comma as Python does.
  const seq = (close: string, item: () => void): void => {
    for (;;) {
      ws();
      if (src[i] === close) { i++; return; }
      item();
      ws();
      if (src[i] === ',') i++;
      else if (src[i] !== close) err(`expected ',' or '${close}'`);
    }
  };
  const value = (): PyValue => {
    ws();
    const c = src[i];
    if (c === '{') {
      i++;
      const map = new Map<string, PyValue>();
      seq('}', () => {
        const k = value();
        if (typeof k !== 'string') err('dict key is not a string');
        ws();
        if (src[i] !== ':') err("expected ':'");
        i++;
        map.set(k as string, value());
      });
      return map;
    }
    if (c === '(' || c === '[') {
      i++;
      const items: PyValue[] = [];
      seq(c === '(' ? ')' : ']', () => items.push(value()));
      return items;
    }
    if (c === "'" || c === '"') {
      let s = '';
      for (i++; src[i] !== c; i++) {
        if (i >= src.length) err('unterminated string');
        if (src[i] === '\\') i++;
        s += src[i];
      }
      i++;
      return s;
    }
    const word = /^(?:-?\d+L?|True|False|None)/.exec(src.slice(i, i + 32));
    if (word === null) return err(c === undefined ? 'unexpected end' : `unexpected ${JSON.stringify(c)}`);
    i += word[0].length;
    if (word[0] === 'True') return true;
    if (word[0] === 'False') return false;
    if (word[0] === 'None') return null;
    // Python 2 era headers may carry long-integer suffixes such as 3L.
    return Number(word[0].replace('L', ''));
  };
  const v = value();
  ws();
  if (i < src.length) err('unexpected text after the literal');
  return v;
}
