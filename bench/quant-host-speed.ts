// Host-side weight quantization speed: quantize and dequantize of one 8192 x 2048 weight (a Llama-3.2-1B MLP
// projection, 16.8M elements) in every weight format export and load use, plus the packing helpers the
// exporters call, for the current code ("new") and the pre-speedup copy kept as the bit-identity oracle in
// test/helpers/slow-reference ("old"). These run on the CPU even with --device cuda (src/quant/ptq.ts apply,
// src/export/*), so for a 1B model they are most of an export round trip's wall time.
//
//   npx tsc -p . && node --expose-gc dist/bench/quant-host-speed.js [--rows 8192] [--cols 2048] [--reps 3] [--only nvfp4,int4]
//
// Each number is the best of --reps runs (ms). Every call returns fresh output arrays, and the first write to
// a fresh 67 MB Float32Array costs page faults that depend on the machine and allocator, not on the code (on
// a Firecracker VM ~250 ms; the "first touch" rows measure it). Under --expose-gc the bench collects garbage
// before each run; with MALLOC_MMAP_THRESHOLD_=2147483647 MALLOC_TRIM_THRESHOLD_=4294967295 glibc then hands
// back the freed pages and the numbers are the compute alone. Weights are N(0, 0.02) from a seeded generator
// with a few outliers, like a trained layer.

import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as fp8 from '../src/quant/formats/fp8.js';
import * as fp8Block from '../src/quant/formats/fp8-block.js';
import * as int8 from '../src/quant/formats/int8.js';
import * as int4 from '../src/quant/formats/int4.js';
import * as w4a8 from '../src/quant/formats/w4a8.js';
import * as nvfp4 from '../src/quant/formats/nvfp4.js';
import * as mx from '../src/quant/formats/mx.js';
import * as codecs from '../src/tensor/codecs.js';
import * as oFp8 from '../test/helpers/slow-reference/fp8.js';
import * as oFp8Block from '../test/helpers/slow-reference/fp8-block.js';
import * as oInt8 from '../test/helpers/slow-reference/int8.js';
import * as oInt4 from '../test/helpers/slow-reference/int4.js';
import * as oW4a8 from '../test/helpers/slow-reference/w4a8.js';
import * as oNvfp4 from '../test/helpers/slow-reference/nvfp4.js';
import * as oMx from '../test/helpers/slow-reference/mx.js';
import * as oCodecs from '../test/helpers/slow-reference/codecs.js';
import type { Shape2 } from '../src/quant/formats/common.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '8192' },
    cols: { type: 'string', default: '2048' },
    reps: { type: 'string', default: '3' },
    only: { type: 'string' },
  },
});
const rows = Number(values.rows);
const cols = Number(values.cols);
const reps = Number(values.reps);
const only = values.only?.split(',') ?? null;
const shape: Shape2 = [rows, cols];
const n = rows * cols;
const gc = (globalThis as { gc?: () => void }).gc;

function weights(): Float32Array {
  let s = 12345;
  const uni = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) + 0.5) / 2 ** 32;
  const w = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    // Box-Muller: two normals per pair of uniforms
    const r = Math.sqrt(-2 * Math.log(uni())) * 0.02;
    const t = 2 * Math.PI * uni();
    w[i] = r * Math.cos(t);
    if (i + 1 < n) w[i + 1] = r * Math.sin(t);
  }
  for (let i = 0; i < n; i += 9973) w[i] = (w[i]! < 0 ? -1 : 1) * 0.5; // outliers
  return w;
}

function best(fn: () => unknown): number {
  let t = Infinity;
  for (let r = 0; r < reps; r++) {
    gc?.();
    const t0 = performance.now();
    fn();
    t = Math.min(t, performance.now() - t0);
  }
  return t;
}

/** One op pair (quantize, then dequantize of its result) in one implementation. */
interface Impl<Q> { quantize: () => Q; dequantize: (q: Q) => unknown }
interface Case { name: string; run: (which: 'old' | 'new') => [number, number | null] }
function pair<Q, P>(name: string, fresh: Impl<Q>, old: Impl<P>): Case {
  return {
    name,
    run: (which) => {
      const timeOf = <T>(impl: Impl<T>): [number, number] => {
        const q = impl.quantize();
        return [best(impl.quantize), best(() => impl.dequantize(q))];
      };
      return which === 'new' ? timeOf(fresh) : timeOf(old);
    },
  };
}

const w = weights();
const cases: Case[] = [
  pair('fp8 per-tensor', { quantize: () => fp8.quantize(w, shape), dequantize: fp8.dequantize }, { quantize: () => oFp8.quantize(w, shape), dequantize: oFp8.dequantize }),
  pair('fp8 per-channel', { quantize: () => fp8.quantize(w, shape, { granularity: 'channel' }), dequantize: fp8.dequantize },
    { quantize: () => oFp8.quantize(w, shape, { granularity: 'channel' }), dequantize: oFp8.dequantize }),
  pair('fp8 block 128x128', { quantize: () => fp8Block.quantize(w, shape), dequantize: fp8Block.dequantize }, { quantize: () => oFp8Block.quantize(w, shape), dequantize: oFp8Block.dequantize }),
  pair('int8 per-channel', { quantize: () => int8.quantize(w, shape), dequantize: int8.dequantize }, { quantize: () => oInt8.quantize(w, shape), dequantize: oInt8.dequantize }),
  pair('int4 g128', { quantize: () => int4.quantize(w, shape), dequantize: int4.dequantize }, { quantize: () => oInt4.quantize(w, shape), dequantize: oInt4.dequantize }),
  pair('w4a8 g128 (both stages)', { quantize: () => w4a8.quantize(w, shape), dequantize: w4a8.dequantize }, { quantize: () => oW4a8.quantize(w, shape), dequantize: oW4a8.dequantize }),
  pair('nvfp4', { quantize: () => nvfp4.quantize(w, shape), dequantize: nvfp4.dequantize }, { quantize: () => oNvfp4.quantize(w, shape), dequantize: oNvfp4.dequantize }),
  pair('mxfp8', { quantize: () => mx.quantize(w, shape, { element: 'mxfp8' }), dequantize: mx.dequantize },
    { quantize: () => oMx.quantize(w, shape, { element: 'mxfp8' }), dequantize: oMx.dequantize }),
  pair('mxfp4', { quantize: () => mx.quantize(w, shape, { element: 'mxfp4' }), dequantize: mx.dequantize },
    { quantize: () => oMx.quantize(w, shape, { element: 'mxfp4' }), dequantize: oMx.dequantize }),
];

// Exporter / loader helpers: "quantize" = pack / encode, "dequantize" = unpack / decode.
const nibbles = new Uint8Array(n);
for (let i = 0; i < n; i++) nibbles[i] = (i * 7 + (i >>> 5)) & 0xf;
const packed = codecs.packNibbles(nibbles);
const e4 = new Uint8Array(n);
const back = new Float32Array(n);
const q4 = int4.quantize(w, shape);
cases.push(
  pair('packNibbles / unpackNibbles', { quantize: () => codecs.packNibbles(nibbles), dequantize: () => codecs.unpackNibbles(packed, n) },
    { quantize: () => oCodecs.packNibbles(nibbles), dequantize: () => oCodecs.unpackNibbles(packed, n) }),
  pair('encodeFromF32 / decodeToF32 e4m3', { quantize: () => codecs.encodeFromF32('float8_e4m3fn', w, e4), dequantize: () => codecs.decodeToF32('float8_e4m3fn', e4, back) },
    { quantize: () => oCodecs.encodeFromF32('float8_e4m3fn', w, e4), dequantize: () => oCodecs.decodeToF32('float8_e4m3fn', e4, back) }),
  pair('int4Values (exporters)', { quantize: () => int4.int4Values(q4), dequantize: () => null }, { quantize: () => oInt4.int4Values(q4), dequantize: () => null }),
);

const fmt = (x: number): string => x.toFixed(0);
const ratio = (a: number, b: number): string => (b > 0.5 ? `${(a / b).toFixed(1)}x` : '-');
const lines = [
  `| ${rows} x ${cols} | quantize old ms | new ms | speedup | dequantize old ms | new ms | speedup | q + dq speedup |`,
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
];
for (const c of cases) {
  if (only && !only.some((o) => c.name.startsWith(o))) continue;
  const [qn, dn] = c.run('new');
  const [qo, dOld] = c.run('old');
  const dq = c.name.startsWith('int4Values') ? ['-', '-', '-'] : [fmt(dOld!), fmt(dn!), ratio(dOld!, dn!)];
  const line = `| ${c.name} | ${fmt(qo)} | ${fmt(qn)} | ${ratio(qo, qn)} | ${dq.join(' | ')} | ${ratio(qo + (dOld ?? 0), qn + (dn ?? 0))} |`;
  lines.push(line);
  console.log(line);
}
// The machine's floor: first writes to fresh output arrays of the sizes the formats return.
const touch = <T extends Float32Array | Uint8Array>(make: () => T): number => best(() => make().fill(1));
lines.push(`| first touch: new Float32Array(n) / Uint8Array(n) | - | ${fmt(touch(() => new Uint8Array(n)))} | - | - | ${fmt(touch(() => new Float32Array(n)))} | - | - |`);
console.log(`\n${lines.join('\n')}`);
