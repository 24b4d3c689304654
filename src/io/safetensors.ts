// Reading and writing safetensors files and Hugging Face checkpoint directories (single or sharded).
// Format: 8-byte little-endian header length N, N bytes of JSON header, then the data region; each header entry
// gives dtype, shape and [begin, end) byte offsets into the data region. Readers parse only the header up front
// and read one tensor's bytes on demand, so a large model can be processed a layer at a time.

import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { DTYPE_INFO, DTYPES, dtypeFromSafetensors, storageBytes, storageFromBytes, type DType } from '../tensor/dtype.js';
import { UserError } from '../util/errors.js';
import { atomicWriteFile, jsonSyntaxError, readJsonFile, writeJsonAtomic } from './json-file.js';
import { assertRawTensor, isValidShape, numel, readExactlyAt, type RawTensor } from './raw-tensor.js';

export interface SafetensorsTensorInfo {
  dtype: DType;
  shape: number[];
  byteLength: number;
}

/** Tensors to write: an ordered list of (name, tensor) pairs or a Map. */
export type NamedTensors = ReadonlyArray<readonly [string, RawTensor]> | ReadonlyMap<string, RawTensor>;

interface Entry {
  dtype: DType;
  shape: number[];
  /** byte offsets relative to the start of the data region */
  begin: number;
  end: number;
}

const SUPPORTED = DTYPES.map((d) => DTYPE_INFO[d].safetensors).join(', ');
// The reference implementation refuses headers above 100 MB; a bigger one means a corrupt length field.
const MAX_HEADER_BYTES = 100_000_000;

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';
const SHARD_RE = /^model-\d{5}-of-\d{5}\.safetensors$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function errnoCode(e: unknown): string | undefined {
  const code = e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/** One open .safetensors file: header parsed and validated, tensor bytes read lazily. */
export class SafetensorsFile {
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
    private readonly dataStart: number,
    private readonly entries: ReadonlyMap<string, Entry>,
    /** the header's `__metadata__` string map ({} when absent) */
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    this.fd = fd;
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'ENOENT') throw new UserError(`safetensors file ${path} does not exist; check the path`);
      if (code !== undefined) throw new UserError(`cannot open safetensors file ${path}: ${code}`);
      throw e;
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) {
        throw new UserError(`${path} is not a file; pass a .safetensors file (a model directory is opened with SafetensorsCheckpoint)`);
      }
      const { dataStart, entries, metadata } = parseHeader(path, fd, st.size);
      return new SafetensorsFile(path, fd, dataStart, entries, metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Tensor names in data-offset order (for files from the reference writer: by dtype size, then by name). */
  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: [...e.shape], byteLength: e.end - e.begin };
  }

  /** Reads just this tensor's bytes from disk into freshly allocated (hence aligned) storage. */
  read(name: string): RawTensor {
    const e = this.entry(name);
    if (this.fd === undefined) throw new Error(`read("${name}") on closed safetensors file ${this.path}`);
    const bytes = new Uint8Array(e.end - e.begin);
    readExactlyAt(this.fd, bytes, this.dataStart + e.begin, this.path);
    return { dtype: e.dtype, shape: [...e.shape], data: storageFromBytes(e.dtype, bytes) };
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (e === undefined) throw notFound(this.path, name, this.names());
    return e;
  }
}

function parseHeader(
  path: string,
  fd: number,
  fileSize: number,
): { dataStart: number; entries: Map<string, Entry>; metadata: Record<string, string> } {
  const fail = (msg: string): never => {
    throw new UserError(`${path}: ${msg}`);
  };
  const corrupt = 'the file is corrupt or not safetensors — re-download or re-export it';
  if (fileSize < 8) {
    fail(`file has only ${fileSize} bytes, too short for the 8-byte header length; ${corrupt}`);
  }
  const lenBytes = new Uint8Array(8);
  readExactlyAt(fd, lenBytes, 0, path);
  const headerLen = Buffer.from(lenBytes.buffer).readBigUInt64LE(0);
  if (headerLen > BigInt(fileSize - 8)) {
    fail(`header length ${headerLen} (from the first 8 bytes) is larger than the file (${fileSize} bytes); the file is truncated or not safetensors — re-download or re-export it`);
  }
  const n = Number(headerLen);
  if (n > MAX_HEADER_BYTES) fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit; ${corrupt}`);
  const headerBytes = new Uint8Array(n);
  readExactlyAt(fd, headerBytes, 8, path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail(`header is not valid UTF-8; ${corrupt}`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch {
    return fail(`header is not valid JSON (${jsonSyntaxError(text)} of the header); ${corrupt}`);
  }
  if (!isRecord(header)) return fail(`header is not a JSON object; ${corrupt}`);

  const dataSize = fileSize - 8 - n;
  const entries: Array<[string, Entry]> = [];
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    const where = `tensor "${name}"`;
    if (name === '__metadata__') {
      if (!isRecord(raw) || !Object.values(raw).every((v) => typeof v === 'string')) {
        fail(`"__metadata__" must map strings to strings, got ${JSON.stringify(raw)}; ${corrupt}`);
      }
      metadata = { ...(raw as Record<string, string>) };
      continue;
    }
    if (!isRecord(raw)) return fail(`${where}: header entry is not an object; ${corrupt}`);
    const missing = ['dtype', 'shape', 'data_offsets'].filter((k) => !(k in raw));
    if (missing.length > 0) fail(`${where}: header entry lacks ${missing.map((k) => `"${k}"`).join(', ')}; ${corrupt}`);
    const dtypeName = raw['dtype'];
    const dtype = typeof dtypeName === 'string' ? dtypeFromSafetensors(dtypeName) : undefined;
    if (dtype === undefined) {
      return fail(`${where} has dtype ${JSON.stringify(dtypeName)}, which mopt does not support (supported: ${SUPPORTED}); convert the checkpoint to a supported dtype`);
    }
    const shape = raw['shape'];
    if (!isValidShape(shape)) return fail(`${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers; ${corrupt}`);
    const offs = raw['data_offsets'];
    if (
      !Array.isArray(offs) || offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || (offs[0] as number) > (offs[1] as number)
    ) {
      return fail(`${where}: data_offsets ${JSON.stringify(offs)} is not a [begin, end] pair with 0 <= begin <= end; ${corrupt}`);
    }
    const [begin, end] = offs as [number, number];
    const expected = numel(shape) * DTYPE_INFO[dtype].bytes;
    if (end - begin !== expected) {
      fail(`${where}: shape [${shape.join(', ')}] of ${dtypeName as string} needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}; ${corrupt}`);
    }
    entries.push([name, { dtype, shape, begin, end }]);
  }

  // Sorting by offset gives both the natural names() order and an O(n log n) overlap check.
  entries.sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  const last = entries.reduce<[string, Entry] | undefined>((m, e) => (m === undefined || e[1].end > m[1].end ? e : m), undefined);
  if (last !== undefined && last[1].end > dataSize) {
    fail(`truncated: header says ${last[1].end} bytes of data, file has ${dataSize} (tensor "${last[0]}" ends at byte ${last[1].end} of the data region); re-download or re-export the file`);
  }
  for (let i = 1; i < entries.length; i++) {
    const [pa, a] = entries[i - 1]!;
    const [pb, b] = entries[i]!;
    if (b.begin < a.end) {
      fail(`tensors "${pa}" [${a.begin}, ${a.end}) and "${pb}" [${b.begin}, ${b.end}) overlap in the data region; ${corrupt}`);
    }
  }
  // Gaps or trailing bytes after the last tensor are tolerated: the reference reader rejects them, but every
  // tensor's bytes are intact and we only read what the header points at.
  return { dataStart: 8 + n, entries: new Map(entries), metadata };
}

/** A "not found" error that suggests names the user may have meant (typos, a missing "model." prefix). */
function notFound(where: string, name: string, names: readonly string[]): UserError {
  const scored = names
    .map((c) => ({ c, d: c.endsWith(name) || name.endsWith(c) ? 0 : editDistance(name, c) }))
    .filter(({ c, d }) => d <= Math.max(2, Math.floor(Math.max(name.length, c.length) * 0.3)))
    .sort((a, b) => a.d - b.d || (a.c < b.c ? -1 : 1))
    .slice(0, 3)
    .map(({ c }) => `"${c}"`);
  const hint = scored.length > 0 ? ` (did you mean ${scored.join(', ')}?)` : '';
  return new UserError(`${where}: no tensor named "${name}"${hint}; it holds ${names.length} tensors — check the name`);
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * A Hugging Face checkpoint: a directory with model.safetensors, or with model.safetensors.index.json whose
 * weight_map sends each tensor name to a shard file. Shards are opened on first use and kept open until close().
 */
export class SafetensorsCheckpoint {
  private readonly opened = new Map<string, SafetensorsFile>();

  private constructor(
    readonly dir: string,
    /** the index file for a sharded checkpoint, null for a single file */
    readonly indexPath: string | null,
    /** tensor name -> path of the file holding it */
    private readonly location: ReadonlyMap<string, string>,
  ) {}

  /** dir may also be a .safetensors file or an index .json file itself. */
  static open(dir: string): SafetensorsCheckpoint {
    let isDir: boolean;
    try {
      isDir = statSync(dir).isDirectory();
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') throw new UserError(`checkpoint ${dir} does not exist; check the path`);
      throw e;
    }
    if (!isDir) {
      return dir.endsWith('.json')
        ? SafetensorsCheckpoint.openIndex(dir, dirname(dir))
        : SafetensorsCheckpoint.openSingle(dir, dirname(dir));
    }
    const single = join(dir, SINGLE_FILE_NAME);
    const index = join(dir, INDEX_FILE_NAME);
    // Like transformers, a single file wins over an index when both exist.
    if (isFile(single)) return SafetensorsCheckpoint.openSingle(single, dir);
    if (isFile(index)) return SafetensorsCheckpoint.openIndex(index, dir);
    const present = readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
    const also = present.length > 0 ? ` (it has ${present.slice(0, 3).join(', ')}${present.length > 3 ? ', …' : ''})` : '';
    throw new UserError(`${dir} has neither ${SINGLE_FILE_NAME} nor ${INDEX_FILE_NAME}${also}; point at a Hugging Face model directory or pass the .safetensors file`);
  }

  private static openSingle(path: string, dir: string): SafetensorsCheckpoint {
    const file = SafetensorsFile.open(path);
    const ckpt = new SafetensorsCheckpoint(dir, null, new Map(file.names().map((n) => [n, path])));
    ckpt.opened.set(path, file);
    return ckpt;
  }

  private static openIndex(indexPath: string, dir: string): SafetensorsCheckpoint {
    const index = readJsonFile(indexPath, 'safetensors index');
    const weightMap = isRecord(index) ? index['weight_map'] : undefined;
    if (!isRecord(weightMap)) {
      throw new UserError(`${indexPath}: no "weight_map" object mapping tensor names to shard files; re-download the index`);
    }
    const location = new Map<string, string>();
    const byShard = new Map<string, string[]>();
    for (const [name, shard] of Object.entries(weightMap)) {
      // Shards must sit inside the checkpoint directory; an absolute or ".." path is a broken or hostile index.
      if (typeof shard !== 'string' || shard === '' || isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
        throw new UserError(`${indexPath}: tensor "${name}" maps to ${JSON.stringify(shard)}, expected a shard file name in ${dir}; fix the index`);
      }
      location.set(name, join(dir, shard));
      byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
    }
    const missing = [...byShard.keys()].filter((s) => !isFile(join(dir, s)));
    if (missing.length > 0) {
      const first = missing[0]!;
      const names = byShard.get(first)!;
      const more = missing.length > 1 ? ` (and ${missing.length - 1} more missing shards)` : '';
      throw new UserError(`${indexPath}: shard "${first}" (holding ${names.length} tensors, e.g. "${names[0]}") is missing from ${dir}${more}; download every shard listed in the index`);
    }
    return new SafetensorsCheckpoint(dir, indexPath, location);
  }

  names(): string[] {
    return [...this.location.keys()];
  }

  has(name: string): boolean {
    return this.location.has(name);
  }

  /** Distinct files holding the tensors, in first-use order of the names. */
  files(): string[] {
    return [...new Set(this.location.values())];
  }

  info(name: string): SafetensorsTensorInfo {
    return this.fileFor(name).info(name);
  }

  read(name: string): RawTensor {
    return this.fileFor(name).read(name);
  }

  close(): void {
    for (const f of this.opened.values()) f.close();
    this.opened.clear();
  }

  private fileFor(name: string): SafetensorsFile {
    const path = this.location.get(name);
    // Name the file the user would inspect: the index, or the single .safetensors file.
    if (path === undefined) throw notFound(this.indexPath ?? this.files()[0] ?? this.dir, name, this.names());
    let file = this.opened.get(path);
    if (file === undefined) {
      file = SafetensorsFile.open(path);
      this.opened.set(path, file);
    }
    if (!file.has(name)) {
      throw new UserError(`${this.indexPath ?? this.dir}: the index puts tensor "${name}" in ${path}, which has no such tensor; the checkpoint is inconsistent — re-download it`);
    }
    return file;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function toEntries(tensors: NamedTensors): Array<readonly [string, RawTensor]> {
  return Array.isArray(tensors) ? [...(tensors as ReadonlyArray<readonly [string, RawTensor]>)] : [...(tensors as ReadonlyMap<string, RawTensor>).entries()];
}

// The reference library's Dtype enum order (increasing alignment). Its writer lays tensors out by this order,
// descending, then by name, so the largest-alignment tensors come first and every tensor stays aligned.
const ALIGN_ORDER = ['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'F16', 'BF16', 'I32', 'F32', 'F64', 'I64'];

/** Compares strings by UTF-8 bytes, as Rust's String ordering does (JS `<` compares UTF-16 units). */
function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Header bytes (padded) and tensors in data order, exactly as the Python/Rust safetensors library lays them out. */
function serialize(tensors: NamedTensors, metadata?: Readonly<Record<string, string>>): Uint8Array[] {
  const list = toEntries(tensors);
  const seen = new Set<string>();
  for (const [name, t] of list) {
    if (name === '__metadata__') throw new Error('"__metadata__" is reserved and cannot be a tensor name');
    if (seen.has(name)) throw new Error(`tensor "${name}" is given twice`);
    seen.add(name);
    assertRawTensor(name, t);
  }
  const rank = (t: RawTensor): number => ALIGN_ORDER.indexOf(DTYPE_INFO[t.dtype].safetensors);
  list.sort((a, b) => rank(b[1]) - rank(a[1]) || byteCompare(a[0], b[0]));
  const parts: string[] = [];
  if (metadata !== undefined) {
    // The reference writer keeps metadata in a hash map (arbitrary order); sorting keys makes ours reproducible.
    const keys = Object.keys(metadata).sort(byteCompare);
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const [name, t] of list) {
    const end = offset + t.data.byteLength;
    parts.push(`${JSON.stringify(name)}:{"dtype":"${DTYPE_INFO[t.dtype].safetensors}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = `{${parts.join(',')}}`;
  const len = Buffer.byteLength(json, 'utf8');
  // Padding to 8 bytes keeps the data region 8-aligned in a mmap, so readers can view it without copying.
  const header = Buffer.from(json + ' '.repeat((8 - (len % 8)) % 8), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.byteLength));
  return [prefix, header, ...list.map(([, t]) => storageBytes(t.data))];
}

/** Writes one .safetensors file atomically, byte-identical to the Python library's save_file. */
export function writeSafetensors(path: string, tensors: NamedTensors, metadata?: Readonly<Record<string, string>>): void {
  atomicWriteFile(path, serialize(tensors, metadata));
}

export interface ShardOptions {
  /** Data bytes per shard before a new shard starts (default 5e9, transformers' "5GB"). */
  maxShardBytes?: number;
  /** `__metadata__` written into every file, e.g. { format: 'pt' } as transformers writes. */
  metadata?: Readonly<Record<string, string>>;
}

/**
 * Writes a checkpoint directory the way transformers' save_pretrained does: model.safetensors when all tensors
 * fit in one shard, else model-0000i-of-0000N.safetensors plus model.safetensors.index.json. Tensors keep their
 * given order across shards (so a layer's tensors stay together); one larger than maxShardBytes gets its own.
 */
export function writeShardedCheckpoint(
  dir: string,
  tensors: NamedTensors,
  options: ShardOptions = {},
): { files: string[]; indexPath: string | null } {
  const maxShardBytes = options.maxShardBytes ?? 5e9;
  if (!(maxShardBytes > 0)) throw new Error(`maxShardBytes must be positive, got ${maxShardBytes}`);
  const list = toEntries(tensors);
  const shards: Array<Array<readonly [string, RawTensor]>> = [[]];
  let size = 0;
  let total = 0;
  for (const entry of list) {
    const bytes = entry[1].data.byteLength;
    if (size + bytes > maxShardBytes && shards[shards.length - 1]!.length > 0) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1]!.push(entry);
    size += bytes;
    total += bytes;
  }
  mkdirSync(dir, { recursive: true });
  let files: string[];
  let indexPath: string | null = null;
  if (shards.length === 1) {
    files = [join(dir, SINGLE_FILE_NAME)];
    writeSafetensors(files[0]!, list, options.metadata);
  } else {
    const pad = (i: number): string => String(i).padStart(5, '0');
    const shardNames = shards.map((_, i) => `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
    const weightMap: Record<string, string> = {};
    shards.forEach((shard, i) => {
      writeSafetensors(join(dir, shardNames[i]!), shard, options.metadata);
      for (const [name] of shard) weightMap[name] = shardNames[i]!;
    });
    const sortedMap = Object.fromEntries(Object.keys(weightMap).sort(byteCompare).map((k) => [k, weightMap[k]!]));
    indexPath = join(dir, INDEX_FILE_NAME);
    // The index goes last so a reader never sees an index that points at shards not yet written.
    writeJsonAtomic(indexPath, { metadata: { total_size: total }, weight_map: sortedMap });
    files = shardNames.map((s) => join(dir, s));
  }
  removeStale(dir, files, indexPath);
  return { files, indexPath };
}

/**
 * Removes files of an earlier save into the same directory that the new checkpoint does not use: a leftover
 * model.safetensors would shadow a new index (it wins in open()), and a leftover index or shards would mix
 * old weights into the model.
 */
function removeStale(dir: string, written: readonly string[], indexPath: string | null): void {
  const keep = new Set(written);
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    const stale =
      (f === SINGLE_FILE_NAME && !keep.has(p)) || (f === INDEX_FILE_NAME && indexPath === null) || (SHARD_RE.test(f) && !keep.has(p));
    if (stale) rmSync(p, { force: true });
  }
}
