// Checks the CUDA kernel sources against the TypeScript that launches them, without a GPU or a compiler:
// every kernel name the backend can launch (src/backend/cuda/kernels.ts allKernelRefs) must be defined
// as an extern "C" __global__ function in its .cu file, and the byte layout of the by-value argument
// structs must equal the offsets src/backend/cuda/layout.ts writes. Kernel names are stamped out by
// macros, so the sources are run through a small C preprocessor (function-like macros, ## pasting,
// rescanning) first. A typo here would otherwise only show as CUDA_ERROR_NOT_FOUND on the GPU machine.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KERNEL_FILES, allKernelRefs, experimentDefines, kernelSource, type KernelFile } from '../../src/backend/cuda/kernels.js';
import { MATMUL, REDUCE, ROW, STRIDED } from '../../src/backend/cuda/layout.js';

// ---- a small C preprocessor: enough for the X-macro lists in kernels/*.cu --------------------------

interface Macro {
  params: string[] | null; // null: object-like
  body: string;
}

function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, '');
}

/** Collects #define lines (continuations joined) and returns the text without preprocessor lines. */
function parseDefines(src: string): { macros: Map<string, Macro>; text: string } {
  const macros = new Map<string, Macro>();
  const lines: string[] = [];
  for (const line of stripComments(src).replace(/\\\r?\n/g, ' ').split('\n')) {
    const m = /^\s*#\s*define\s+([A-Za-z_]\w*)(\(([^)]*)\))?\s*(.*)$/.exec(line);
    if (m) macros.set(m[1], { params: m[2] === undefined ? null : m[3].split(',').map((p) => p.trim()).filter((p) => p !== ''), body: m[4] });
    else if (!/^\s*#/.test(line)) lines.push(line);
  }
  return { macros, text: lines.join('\n') };
}

/** Splits the parenthesised argument list starting at text[open] === '('. */
function parseArgs(text: string, open: number): { args: string[]; end: number } {
  const args: string[] = [];
  let depth = 0;
  let cur = '';
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '(' && depth++ === 0) continue;
    if (c === ')' && --depth === 0) {
      args.push(cur.trim());
      return { args, end: i + 1 };
    }
    if (c === ',' && depth === 1) {
      args.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  throw new Error(`unbalanced macro arguments at ${text.slice(open, open + 60)}`);
}

/** Substitutes arguments into a function-like macro's body: raw next to ##, macro-expanded elsewhere. */
function substitute(m: Macro, args: string[], macros: Map<string, Macro>, hide: ReadonlySet<string>): string {
  const params = m.params ?? [];
  const tokens = m.body.split(/([A-Za-z_]\w*|##)/);
  const pasted = (i: number, dir: -1 | 1): boolean => {
    for (let j = i + dir; j >= 0 && j < tokens.length; j += dir) {
      if (tokens[j].trim() === '') continue;
      return tokens[j] === '##';
    }
    return false;
  };
  const out = tokens.map((tok, i) => {
    const p = params.indexOf(tok);
    if (p < 0) return tok;
    return pasted(i, -1) || pasted(i, 1) ? args[p] : expand(args[p], macros, hide);
  });
  return out.join('').replace(/\s*##\s*/g, '');
}

function expand(text: string, macros: Map<string, Macro>, hide: ReadonlySet<string>): string {
  let out = '';
  let i = 0;
  const ident = /[A-Za-z_]\w*/y;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      const close = text.indexOf('"', i + 1);
      out += text.slice(i, close + 1);
      i = close + 1;
      continue;
    }
    if (!/[A-Za-z_]/.test(c) || (i > 0 && /\w/.test(text[i - 1]))) {
      out += c;
      i++;
      continue;
    }
    ident.lastIndex = i;
    const id = ident.exec(text)![0];
    const m = macros.get(id);
    if (m === undefined || hide.has(id)) {
      out += id;
      i += id.length;
      continue;
    }
    const inner = new Set([...hide, id]);
    if (m.params === null) {
      out += expand(m.body, macros, inner);
      i += id.length;
      continue;
    }
    let j = i + id.length;
    while (j < text.length && /\s/.test(text[j])) j++;
    if (text[j] !== '(') {
      out += id; // a function-like macro's name without arguments is just a name (e.g. passed as X)
      i += id.length;
      continue;
    }
    const { args, end } = parseArgs(text, j);
    out += expand(substitute(m, args, macros, hide), macros, inner);
    i = end;
  }
  return out;
}

function preprocess(src: string): string {
  const { macros, text } = parseDefines(src);
  return expand(text, macros, new Set());
}

// ---- the checks -----------------------------------------------------------------------------------

const expanded = new Map<KernelFile, string>(KERNEL_FILES.map((f) => [f, preprocess(kernelSource(f))]));

function kernelsIn(text: string): string[] {
  const re = /extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?([A-Za-z_]\w*)\s*\(/g;
  return [...text.matchAll(re)].map((m) => m[1]);
}

test('the preprocessor used by this test expands X-macro lists', () => {
  const src = '#define L(X, a) X(a, f32) X(a, bf16)\n#define K(a, t) extern "C" __global__ void k_##a##_##t(t##_s x) {}\n#define ALL(a) L(K, a)\nALL(exp) ALL(log)';
  assert.deepEqual(kernelsIn(preprocess(src)), ['k_exp_f32', 'k_exp_bf16', 'k_log_f32', 'k_log_bf16']);
});

test('every kernel the CUDA backend launches is defined in its .cu source', () => {
  const defined = new Map<KernelFile, Set<string>>();
  for (const [file, text] of expanded) {
    const names = kernelsIn(text);
    assert.ok(names.length > 0, `${file}.cu defines no kernels`);
    const set = new Set(names);
    assert.equal(set.size, names.length, `${file}.cu defines a kernel twice`);
    defined.set(file, set);
  }
  const missing = allKernelRefs().filter((r) => !defined.get(r.file)!.has(r.name)).map((r) => `${r.file}.cu: ${r.name}`);
  assert.deepEqual(missing, [], `kernels launched by the TypeScript side but not defined in the sources:\n${missing.join('\n')}`);
});

// Struct layout: fields of type i64_t / u64_t / long long (8 bytes), int / u32_t (4), arrays thereof.
function structLayout(text: string, name: string): Record<string, number> {
  const m = new RegExp(`struct\\s+${name}\\s*\\{([^}]*)\\}`).exec(text);
  assert.ok(m, `struct ${name} not found`);
  const sizes: Record<string, number> = { i64_t: 8, u64_t: 8, 'long long': 8, int: 4, u32_t: 4 };
  const fields: Record<string, number> = {};
  let off = 0;
  for (const decl of m[1].split(';').map((d) => d.trim()).filter((d) => d !== '')) {
    const t = /^(long long|\w+)\s+(.*)$/.exec(decl);
    assert.ok(t && sizes[t[1]] !== undefined, `struct ${name}: cannot size "${decl}"`);
    const size = sizes[t[1]];
    for (const v of t[2].split(',')) {
      const [, field, dims] = /^\s*(\w+)((?:\s*\[\s*\d+\s*\])*)\s*$/.exec(v)!;
      const count = [...dims.matchAll(/\d+/g)].reduce((a, d) => a * Number(d[0]), 1);
      off = Math.ceil(off / size) * size;
      fields[field] = off;
      off += size * count;
    }
  }
  fields.SIZE = Math.ceil(off / 8) * 8;
  return fields;
}

test('kernel argument structs have the byte layout layout.ts writes', () => {
  const cases: [KernelFile, string, Record<string, number>][] = [
    ['elementwise', 'Strided', STRIDED],
    ['reduce', 'ReduceLayout', REDUCE],
    ['softmax', 'RowLayout', ROW],
    ['matmul', 'MatmulLayout', MATMUL],
  ];
  for (const [file, name, ts] of cases) assert.deepEqual(structLayout(expanded.get(file)!, name), { ...ts }, `${file}.cu struct ${name}`);
});

test('every kernel source has its local headers inlined for NVRTC (no #include left)', () => {
  for (const f of KERNEL_FILES) assert.doesNotMatch(kernelSource(f), /#\s*include/, `${f}.cu: an #include the loader did not inline (a trailing comment on the line?)`);
});

test('MOPT_NVRTC_DEFINES adds -D macros to the named kernel file only', () => {
  const saved = process.env.MOPT_NVRTC_DEFINES;
  try {
    process.env.MOPT_NVRTC_DEFINES = ' decode_step:DS_INFLIGHT=2  gemv:X decode_step:DS_ABLATE_ATTN=1 ';
    assert.deepEqual(experimentDefines('decode_step'), ['-DDS_INFLIGHT=2', '-DDS_ABLATE_ATTN=1']);
    assert.deepEqual(experimentDefines('gemv'), ['-DX']);
    assert.deepEqual(experimentDefines('attention'), []);
    delete process.env.MOPT_NVRTC_DEFINES;
    assert.deepEqual(experimentDefines('decode_step'), []);
  } finally {
    if (saved === undefined) delete process.env.MOPT_NVRTC_DEFINES;
    else process.env.MOPT_NVRTC_DEFINES = saved;
  }
});
