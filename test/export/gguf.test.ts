// GGUF export (src/io/gguf.ts, src/export/gguf-*.ts): the container round-trips every metadata type; the block
// codecs round exactly as ggml's reference quantizers (against hand-derived bytes and a second implementation,
// test/helpers/ggml-reference.ts; test/export/gguf-llama-cpp.test.ts also checks them against ggml itself); an
// export of stories260K loads back to exactly the model its bytes describe, with q/k rows in llama2.c's layout;
// mopt's calibrated GGUF has a lower perplexity than ggml's round-to-nearest GGUF of the same type and size;
// the embedded tokenizer (also rebuilt from the ggml keys alone) tokenizes like the original; broken files and
// unexportable states are refused by name; and the CLI runs a GGUF it wrote.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GgufFile, encodeGguf, gguf, writeGguf, type GgufTensorData, type GgufValue } from '../../src/io/gguf.js';
import { dequantize, packScalesK4, quantizeRef, scaleMinK4 } from '../../src/export/gguf-quants.js';
import { quantizeQ4KWeighted, quantizeQ4_0Weighted } from '../../src/export/gguf-weighted.js';
import { prepareGguf, writeGgufExport, type GgufType } from '../../src/export/gguf-export.js';
import { loadGguf } from '../../src/export/gguf-load.js';
import { rebuildTokenizerJson, tokenizerMetadata } from '../../src/export/gguf-tokenizer.js';
import { exportFormat, readerFor } from '../../src/export/registry.js';
import { DecoderLM } from '../../src/models/decoder.js';
import { loadModel } from '../../src/models/load.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { QuantizedModel } from '../../src/quant/ptq.js';
import { applyGroupSize, presetRecipe } from '../../src/quant/recipes/index.js';
import { perplexity } from '../../src/eval/perplexity.js';
import { readDocuments } from '../../src/quant/calib-data.js';
import * as T from '../../src/tensor/index.js';
import { refDequantize, refQ4_0, refQ4_K, refQ8_0 } from '../helpers/ggml-reference.js';
import { logits, maxAbsDiff, quantized, tmp, windows } from '../helpers/export-cases.js';
import { widenLlama } from '../helpers/widen-llama.js';
import { DATA_SKIP, SHARED_DATA, STORIES_HF } from '../helpers/paths.js';
import { runMopt } from '../helpers/cli.js';

const f = Math.fround;
/** a deterministic pseudo-random stream in [-0.5, 0.5) */
function noise(n: number, seed: number, spread = (i: number): number => 1 + (i % 5)): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, (_, i) => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return f((s / 2147483648 - 0.5) * spread(i));
  });
}

test('GGUF container: every metadata value type, nested arrays, alignment and tensor bytes round-trip', () => {
  const meta = new Map<string, GgufValue>([
    ['general.architecture', gguf.str('llama')],
    ['general.alignment', gguf.u32(64)],
    ['t.uint8', { type: 'uint8', value: 255 }], ['t.int8', { type: 'int8', value: -128 }],
    ['t.uint16', { type: 'uint16', value: 65535 }], ['t.int16', { type: 'int16', value: -32768 }],
    ['t.uint32', { type: 'uint32', value: 4294967295 }], ['t.int32', { type: 'int32', value: -2147483648 }],
    ['t.float32', { type: 'float32', value: f(3.14159) }], ['t.float64', { type: 'float64', value: Math.PI }],
    ['t.bool', { type: 'bool', value: true }], ['t.string', { type: 'string', value: 'héllo ▁ 世界 🙂' }],
    ['t.uint64', { type: 'uint64', value: 2n ** 64n - 1n }], ['t.int64', { type: 'int64', value: -(2n ** 63n) }],
    ['t.arr.f32', gguf.numbers('float32', [f(0.1), -0, f(1e-30)])], ['t.arr.i16', gguf.numbers('int16', [-1, 2, 3])],
    ['t.arr.str', gguf.strings(['a', '', '\u2581b'])], ['t.arr.bool', { type: 'array', value: { itemType: 'bool', items: [true, false] } }],
    ['t.arr.u64', { type: 'array', value: { itemType: 'uint64', items: [0n, 2n ** 63n] } }], ['t.arr.empty', gguf.numbers('uint8', [])],
    ['t.arr.nested', { type: 'array', value: { itemType: 'array', items: [{ itemType: 'int32', items: [1, -2] }, { itemType: 'string', items: ['x'] }, { itemType: 'float64', items: [] }] } }],
  ]);
  const tensors: GgufTensorData[] = [
    { name: 'a.f32', type: 'F32', dims: [3], data: quantizeRef('F32', noise(3, 1), 3) },
    { name: 'b.f16', type: 'F16', dims: [5, 2], data: quantizeRef('F16', noise(10, 2), 5) },
    { name: 'c.q8_0', type: 'Q8_0', dims: [64, 1], data: quantizeRef('Q8_0', noise(64, 3), 64) },
    { name: 'd.q4_0', type: 'Q4_0', dims: [32, 3], data: quantizeRef('Q4_0', noise(96, 4), 32) },
    { name: 'e.q4_k', type: 'Q4_K', dims: [256, 2, 1], data: quantizeRef('Q4_K', noise(512, 5), 256) },
  ];
  const dir = tmp();
  try {
    const path = join(dir, 'c.gguf');
    writeGguf(path, meta, tensors);
    const bytes = readFileSync(path);
    assert.equal(bytes.toString('latin1', 0, 4), 'GGUF');
    assert.equal(bytes.readUInt32LE(4), 3);
    assert.equal(bytes.readBigUInt64LE(8), 5n);
    assert.equal(bytes.readBigUInt64LE(16), BigInt(meta.size));
    const g = GgufFile.open(path);
    try {
      assert.deepEqual([...g.metadata], [...meta]);
      assert.equal(g.alignment, 64);
      assert.equal(g.dataStart % 64, 0);
      for (const t of tensors) {
        const info = g.tensors.get(t.name)!;
        assert.deepEqual([info.type, info.dims], [t.type, t.dims]);
        assert.equal(info.offset % 64, 0, `${t.name} offset`);
        assert.deepEqual(g.read(t.name), t.data);
      }
      assert.equal(g.number('t.uint32'), 4294967295);
      assert.throws(() => g.number('t.uint64'), /t\.uint64 = 18446744073709551615 is out of range/);
      assert.throws(() => g.string('t.bool'), /t\.bool must be a string, got bool/);
    } finally {
      g.close();
    }
    // the file is exactly the encoder's chunks (no trailing bytes), and a second write is byte-identical
    assert.ok(Buffer.concat(encodeGguf(meta, tensors)).equals(bytes));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('GGUF files that are not whole are refused: bad magic, other version, truncated, unknown tensor type', () => {
  const dir = tmp();
  try {
    const path = join(dir, 'x.gguf');
    const meta = new Map<string, GgufValue>([['general.architecture', gguf.str('llama')], ['k', gguf.strings(['a', 'b', 'c'])]]);
    writeGguf(path, meta, [{ name: 'token_embd.weight', type: 'Q8_0', dims: [32, 4], data: quantizeRef('Q8_0', noise(128, 9), 32) }]);
    const good = readFileSync(path);
    const variant = (edit: (b: Buffer) => Buffer): string => {
      const p = join(dir, `v${Math.random().toString(36).slice(2)}.gguf`);
      writeFileSync(p, edit(Buffer.from(good)));
      return p;
    };
    assert.throws(() => GgufFile.open(variant((b) => (b.write('GGML', 0, 'latin1'), b))), /is not a GGUF file/);
    assert.throws(() => GgufFile.open(variant((b) => (b.writeUInt32LE(1, 4), b))), /GGUF version 1 is not supported/);
    assert.throws(() => GgufFile.open(variant((b) => (b.writeUInt32BE(3, 4), b))), /big-endian/);
    assert.throws(() => GgufFile.open(variant((b) => b.subarray(0, 60))), /truncated GGUF/);
    assert.throws(() => GgufFile.open(variant((b) => b.subarray(0, b.length - 40))), /truncated GGUF: tensor token_embd\.weight ends at byte/);
    // the tensor info's type field: after the name, n_dims u32 and two u64 dims
    const typeAt = good.indexOf('token_embd.weight') + 'token_embd.weight'.length + 4 + 16;
    assert.throws(() => GgufFile.open(variant((b) => (b.writeUInt32LE(14, typeAt), b))), /tensor token_embd\.weight has ggml type 14 \(Q6_K\), which mopt does not read/);
    assert.throws(() => GgufFile.open(variant((b) => (b.writeUInt32LE(99, typeAt), b))), /ggml type 99,/);
    // an array length beyond the file: key "k" (u64 length 1), value type u32, item type u32, then the count
    const countAt = good.indexOf(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0x6b])) + 9 + 4 + 4;
    assert.equal(good.readBigUInt64LE(countAt), 3n);
    assert.throws(() => GgufFile.open(variant((b) => (b.writeBigUInt64LE(1n << 40n, countAt), b))), /truncated GGUF: array k claims 1099511627776 items/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('block codecs: bytes derived by hand from ggml-common.h / ggml-quants.c', () => {
  // Q8_0: amax 127 -> d = 1 (f16 0x3c00); roundf rounds halves away from zero
  const q8 = new Float32Array(32);
  q8.set([127, -63.5, 0.5, -0.5]);
  assert.deepEqual(Array.from(quantizeRef('Q8_0', q8, 32)), [0x00, 0x3c, 0x7f, 0xc0, 0x01, 0xff, ...new Array<number>(28).fill(0)]);
  // Q4_0: the largest |x| is -8 -> d = max / -8 = 1; level = trunc(x/d + 8.5) capped at 15; element j low nibble, j+16 high
  const q4 = new Float32Array(32);
  q4.set([-8, 7, 0.5, -0.5, 7.6]);
  q4[16] = 3;
  assert.deepEqual(Array.from(quantizeRef('Q4_0', q4, 32)), [0x00, 0x3c, 0xb0, 0x8f, 0x89, 0x88, 0x8f, ...new Array<number>(11).fill(0x88)]);
  // Q4_K's 6-bit scale packing: sub-blocks 0-3 in the low 6 bits, 4-7 as low nibbles in bytes 8-11 and top bits in 0-7
  const packed = new Uint8Array(12);
  packScalesK4([1, 2, 3, 4, 60, 61, 62, 63], [5, 6, 7, 8, 33, 34, 35, 36], packed, 0);
  assert.deepEqual(Array.from(packed), [0xc1, 0xc2, 0xc3, 0xc4, 0x85, 0x86, 0x87, 0x88, 0x1c, 0x2d, 0x3e, 0x4f]);
  assert.deepEqual([scaleMinK4(5, packed, 0), scaleMinK4(2, packed, 0)], [[61, 34], [3, 7]]);
  // Q4_K block whose sub-block j holds s_j * (i mod 16), s_j = 1, 1/2, 1/4, ...: exact levels, min 0, d = f16(1/63) = 0x2410,
  // 6-bit scales 63, 32 (31.5 rounds to even), 16; dmin 0; nibbles (i mod 16) * 0x11
  const s = [1, 0.5, 0.25, 1, 0.5, 0.25, 1, 0.5];
  const qk = Float32Array.from({ length: 256 }, (_, i) => s[i >> 5]! * (i % 16));
  const want = [0x10, 0x24, 0x00, 0x00, 0xbf, 0x60, 0xd0, 0xbf, 0, 0, 0, 0, 0x00, 0x00, 0x0f, 0x00];
  for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) want.push((l % 16) * 0x11);
  assert.deepEqual(Array.from(quantizeRef('Q4_K', qk, 256)), want);
  assert.deepEqual(Array.from(dequantize('Q4_K', new Uint8Array(want), 256)), Array.from(refDequantize('Q4_K', new Uint8Array(want), 256)));
});

test('block codecs: ggml round-to-nearest and decoding agree with a second implementation, on noise and on stories260K', { skip: DATA_SKIP }, () => {
  const embed = loadModel(STORIES_HF).param('model.embed_tokens.weight').toFloat32Array(); // 512 x 64 = 128 rows of 256
  const inputs: [string, Float32Array][] = [['noise', noise(64 * 512, 11, (i) => (i % 97 === 0 ? 9 : 1 + (i % 7)))], ['stories260K embeddings', embed]];
  inputs[0]![1].fill(0, 0, 256); // an all-zero block of every type
  for (const [what, x] of inputs) {
    for (const [type, ref] of [['Q8_0', refQ8_0], ['Q4_0', refQ4_0], ['Q4_K', refQ4_K]] as const) {
      const mine = quantizeRef(type, x, 256);
      assert.deepEqual(mine, ref(x), `${type} on ${what}`);
      assert.deepEqual(dequantize(type, mine, x.length), refDequantize(type, mine, x.length), `${type} decoding on ${what}`);
    }
    assert.deepEqual(dequantize('F16', quantizeRef('F16', x, 256), x.length), refDequantize('F16', quantizeRef('F16', x, 256), x.length));
  }
});

test('weighted Q4_0 / Q4_K: no more weighted error than ggml rounding, and an algorithm\'s INT4 grid kept exactly in Q4_0', () => {
  const rows = 16;
  const cols = 512;
  const x = noise(rows * cols, 21);
  const importance = Float32Array.from(noise(cols, 22), (v) => f(0.01 + (v + 0.5) ** 4));
  // the error the quantizers weigh: E[x_j²] (W_ij - Q_ij)²
  const weightedError = (q: Float32Array): number => {
    let e = 0;
    for (let i = 0; i < x.length; i++) e += importance[i % cols]! * (x[i]! - q[i]!) ** 2;
    return e;
  };
  for (const [type, weighted] of [['Q4_0', quantizeQ4_0Weighted], ['Q4_K', quantizeQ4KWeighted]] as const) {
    const rtn = weightedError(dequantize(type, quantizeRef(type, x, cols), x.length));
    const mine = weightedError(dequantize(type, weighted({ x, rows, cols, importance, hint: null }), x.length));
    assert.ok(mine < rtn, `${type}: weighted error ${mine} vs round-to-nearest ${rtn}`);
  }
  // values k * s on an INT4 grid (k in -7..7, groups of 32, s exact in f16): Q4_0 with the grid as hint holds them exactly
  const step = Float32Array.from({ length: (rows * cols) / 32 }, (_, b) => 2 ** -(3 + (b % 5)));
  const k = noise(rows * cols, 23, () => 1);
  const grid = Float32Array.from(k, (v, i) => Math.round(v * 14) * step[i >> 5]! + 0);
  const held = dequantize('Q4_0', quantizeQ4_0Weighted({ x: grid, rows, cols, importance, hint: { group: 32, step } }), grid.length);
  assert.deepEqual(Array.from(held, (v) => v + 0), Array.from(grid)); // a level 0 under a negative d decodes as -0
});

/** What the exported file says, decoded by the test's own code: config from config.json, q/k rows un-interleaved here. */
function decodeIndependently(file: string, numHeads: number, numKvHeads: number): DecoderLM {
  const base = loadModel(STORIES_HF);
  const c = base.config;
  const g = GgufFile.open(file);
  try {
    const params = new Map<string, T.Tensor>();
    const name = (hf: string): string => hf.replace('model.embed_tokens', 'token_embd').replace('model.norm', 'output_norm').replace(/^model\.layers\.(\d+)\./, 'blk.$1.')
      .replace('input_layernorm', 'attn_norm').replace('post_attention_layernorm', 'ffn_norm').replace(/self_attn\.([qkv])_proj/, 'attn_$1')
      .replace('self_attn.o_proj', 'attn_output').replace(/mlp\.(gate|up|down)_proj/, 'ffn_$1');
    for (const [hf, t] of base.params) {
      const info = g.tensors.get(name(hf))!;
      let v = refDequantize(info.type as 'F32' | 'F16' | 'Q8_0' | 'Q4_0' | 'Q4_K', g.read(name(hf)), t.shape.reduce((a, b) => a * b, 1));
      const heads = hf.includes('q_proj') ? numHeads : hf.includes('k_proj') ? numKvHeads : 0;
      if (heads > 0) {
        // GGUF row h*d + 2j + t is Hugging Face row h*d + t*d/2 + j
        const [rows, cols] = t.shape as [number, number];
        const d = rows / heads;
        const back = new Float32Array(v.length);
        for (let r = 0; r < rows; r++) back.set(v.subarray(r * cols, (r + 1) * cols), (Math.floor(r / d) * d + (r % 2) * (d / 2) + ((r % d) >> 1)) * cols);
        v = back;
      }
      params.set(hf, T.keep(T.tensor(v, [...t.shape])));
    }
    return new DecoderLM(c, params);
  } finally {
    g.close();
  }
}

function exportGguf(q: QuantizedModel, source: string, out: string, type: GgufType, calibration?: number[][]): ReturnType<typeof writeGgufExport> {
  return writeGgufExport(prepareGguf(q, source, { preset: 'int4_awq', kvCache: null, ggufType: type, calibration }), out, { overwrite: true });
}

/** int4_awq (groups of 32) with only max calibration: ggml's own rounding when exported without windows */
const plain = (source: string): QuantizedModel => new QuantizedModel(loadModel(source), { ...applyGroupSize(presetRecipe('int4_awq'), 32), algorithm: 'max' });

test('stories260K q4_0 with AWQ: load back = the file decoded independently; metadata, tensor types, fallbacks, tokenizer', { skip: DATA_SKIP }, () => {
  const split = windows(8, 2);
  const dir = tmp();
  try {
    const q = quantized({ preset: 'int4_awq', group: 32 }, split.calib);
    const out = join(dir, 'q4_0');
    const s = exportGguf(q, STORIES_HF, out, 'q4_0', split.calib);
    assert.equal(s.quantAlgo, 'Q4_0');
    assert.equal(s.quantizedLinears, 30);
    assert.deepEqual([...s.excluded].sort(), ['lm_head', ...[0, 1, 2, 3, 4].map((i) => `model.layers.${i}.mlp.down_proj`)]);
    assert.ok(s.notes!.some((n) => n.startsWith('Q4_0 -> F16 (row length 172 is not a multiple of 32): blk.0.ffn_down')), s.notes!.join('\n'));
    assert.ok(s.notes!.some((n) => /averaged over the 2 query heads/.test(n)));
    const file = join(out, 'model.gguf');
    const g = GgufFile.open(file);
    const types = Object.fromEntries([...g.tensors].map(([n, t]) => [n, t.type]));
    const keys = Object.fromEntries(['general.architecture', 'llama.block_count', 'llama.embedding_length', 'llama.attention.head_count_kv', 'tokenizer.ggml.model', 'tokenizer.ggml.bos_token_id', 'general.quantization_version'].map((k) => [k, g.metadata.get(k)?.value]));
    g.close();
    assert.deepEqual(keys, { 'general.architecture': 'llama', 'llama.block_count': 5, 'llama.embedding_length': 64, 'llama.attention.head_count_kv': 4, 'tokenizer.ggml.model': 'llama', 'tokenizer.ggml.bos_token_id': 1, 'general.quantization_version': 2 });
    assert.deepEqual([types['blk.0.attn_q.weight'], types['blk.4.ffn_up.weight'], types['blk.2.ffn_down.weight'], types['token_embd.weight'], types['output_norm.weight'], types['output.weight']], ['Q4_0', 'Q4_0', 'F16', 'F16', 'F32', undefined]);
    const loaded = loadGguf(file);
    const probe = split.heldOut[0]!;
    assert.deepEqual(logits(loaded.model, probe), logits(decodeIndependently(file, 8, 4), probe));
    assert.ok(readerFor(out) !== null && readerFor(file) !== null && readerFor(STORIES_HF) === null);
    const text = readDocuments(join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt')).slice(0, 1)[0]!.slice(0, 3000);
    assert.deepEqual(loaded.tokenizer!.encode(text), Tokenizer.fromModelDir(STORIES_HF).encode(text));
    assert.deepEqual(loaded.eosTokenIds, [2]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stories260K f16: q/k rows in llama2.c\'s interleaved layout (stories260K.bin), logits of the source model', { skip: DATA_SKIP }, () => {
  const dir = tmp();
  try {
    exportGguf(plain(STORIES_HF), STORIES_HF, join(dir, 'f16'), 'f16');
    const g = GgufFile.open(join(dir, 'f16', 'model.gguf'));
    const bin = readFileSync(join(SHARED_DATA, 'models', 'stories260K', 'stories260K.bin'));
    const [dim, , layers, heads, kvHeads, vocab] = Array.from({ length: 7 }, (_, i) => bin.readInt32LE(4 * i)) as number[];
    const floats = new Float32Array(bin.buffer.slice(bin.byteOffset + 28, bin.byteOffset + bin.length - ((bin.length - 28) % 4)));
    const kvDim = (dim! * kvHeads!) / heads!;
    const wqAt = vocab! * dim! + layers! * dim!;
    const wkAt = wqAt + layers! * dim! * dim!;
    for (let l = 0; l < layers!; l++) {
      const wq = floats.subarray(wqAt + l * dim! * dim!, wqAt + (l + 1) * dim! * dim!);
      const wk = floats.subarray(wkAt + l * dim! * kvDim, wkAt + (l + 1) * dim! * kvDim);
      assert.deepEqual(dequantize('F16', g.read(`blk.${l}.attn_q.weight`), wq.length), refDequantize('F16', quantizeRef('F16', wq, dim!), wq.length), `layer ${l} q`);
      assert.deepEqual(dequantize('F16', g.read(`blk.${l}.attn_k.weight`), wk.length), refDequantize('F16', quantizeRef('F16', wk, dim!), wk.length), `layer ${l} k`);
    }
    g.close();
    const probe = windows(1, 1).heldOut[0]!;
    const d = maxAbsDiff(logits(loadGguf(join(dir, 'f16')).model, probe), logits(loadModel(STORIES_HF), probe));
    assert.ok(d < 0.05, `f16 logits differ from the source by ${d}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('perplexity: mopt\'s calibrated GGUF beats ggml round-to-nearest at the same type and size (q4_0; q4_k on stories260K widened to 256)', { skip: DATA_SKIP }, (t) => {
  const dir = tmp();
  try {
    const split = windows(8, 16);
    const wide = join(dir, 'wide');
    widenLlama(STORIES_HF, wide, 256);
    const runs: [string, GgufType, () => QuantizedModel, number[][] | undefined][] = [
      ['stories260K q4_0 round to nearest', 'q4_0', () => plain(STORIES_HF), undefined],
      ['stories260K q4_0 mopt awq_lite + input energy', 'q4_0', () => quantized({ preset: 'int4_awq', group: 32 }, split.calib), split.calib],
      ['widened q4_k round to nearest', 'q4_k', () => plain(wide), undefined],
      ['widened q4_k mopt input energy', 'q4_k', () => plain(wide), split.calib],
    ];
    const ppl: number[] = [];
    const sizes: number[] = [];
    for (const [what, type, make, calib] of runs) {
      const out = join(dir, what.replace(/\W+/g, '-'));
      const s = exportGguf(make(), what.startsWith('widened') ? wide : STORIES_HF, out, type, calib);
      ppl.push(perplexity(loadGguf(out).model, split.heldOut).ppl);
      sizes.push(statSync(s.files[0]!).size);
      t.diagnostic(`${what}: ppl ${ppl[ppl.length - 1]!.toFixed(4)}, ${sizes[sizes.length - 1]} bytes`);
    }
    assert.ok(ppl[1]! < ppl[0]!, `q4_0: mopt ${ppl[1]} vs round to nearest ${ppl[0]}`);
    assert.ok(ppl[3]! < ppl[2]!, `q4_k: mopt ${ppl[3]} vs round to nearest ${ppl[2]}`);
    // same tensor types: the sizes differ only by metadata (the calibration window count and the algorithm name)
    assert.ok(Math.abs(sizes[1]! - sizes[0]!) < 64 && Math.abs(sizes[3]! - sizes[2]!) < 64, `sizes ${sizes}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tokenizers rebuilt from the ggml keys alone tokenize like the originals (stories260K, Llama-2-style phi-3, GPT-2-style phi-2)', { skip: DATA_SKIP }, () => {
  const dir = tmp();
  try {
    const stories = readDocuments(join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt')).slice(0, 1)[0]!.slice(0, 4000);
    const wiki = readFileSync(join(SHARED_DATA, 'corpora', 'wikitext-2_test.tokens.txt'), 'utf8').slice(0, 4000);
    for (const [name, src, texts] of [['stories260K', STORIES_HF, [stories]], ['phi-3-mini', join(SHARED_DATA, 'tokenizers', 'phi-3-mini'), [stories, wiki]], ['phi-2', join(SHARED_DATA, 'tokenizers', 'phi-2'), [stories, wiki]]] as const) {
      const original = Tokenizer.fromModelDir(src);
      const path = join(dir, `${name}.gguf`);
      const meta = tokenizerMetadata(src, original.vocabSize).filter(([k]) => k !== 'tokenizer.huggingface.json');
      writeGguf(path, new Map(meta), []);
      const g = GgufFile.open(path);
      const rebuilt = Tokenizer.fromJSON(rebuildTokenizerJson(g), {}, name);
      g.close();
      for (const text of texts) {
        const ids = original.encode(text, { addSpecialTokens: false });
        assert.deepEqual(rebuilt.encode(text, { addSpecialTokens: false }), ids, `${name}: encode`);
        assert.equal(rebuilt.decode(ids, { cleanUpTokenizationSpaces: false }), original.decode(ids, { cleanUpTokenizationSpaces: false }), `${name}: decode`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('GGUF refusals: states GGUF cannot hold, unknown --gguf-type, a missing tensor', { skip: DATA_SKIP }, () => {
  const gg = exportFormat('gguf');
  assert.throws(() => gg.check({ preset: 'fp8', kvCache: null }), /--format fp8 cannot be written as GGUF/);
  assert.throws(() => gg.check({ preset: 'int4_awq', kvCache: 'fp8' }), /GGUF holds weights only/);
  assert.throws(() => gg.check({ preset: null, kvCache: null }), /custom recipe is not implemented yet/);
  assert.throws(() => gg.check({ preset: 'int4_awq', kvCache: null, ggufType: 'q5_k' }), /--gguf-type q5_k is not one mopt writes/);
  const dir = tmp();
  try {
    const s = exportGguf(plain(STORIES_HF), STORIES_HF, join(dir, 'good'), 'q8_0');
    const g = GgufFile.open(s.files[0]!);
    const meta = new Map(g.metadata);
    const kept = [...g.tensors.values()].filter((t) => t.name !== 'blk.0.ffn_up.weight').map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: g.read(t.name) }));
    g.close();
    writeGguf(join(dir, 'missing.gguf'), meta, kept);
    assert.throws(() => loadGguf(join(dir, 'missing.gguf')), /tensor blk\.0\.ffn_up\.weight \(model\.layers\.0\.mlp\.up_proj\.weight\) is missing/);
    writeGguf(join(dir, 'extra.gguf'), meta, [...kept, { name: 'rope_freqs.weight', type: 'F32', dims: [4], data: new Uint8Array(16) }]);
    assert.throws(() => loadGguf(join(dir, 'extra.gguf')), /tensor rope_freqs\.weight is not part of a plain llama model/);
    const trunc = join(dir, 'trunc.gguf');
    writeFileSync(trunc, readFileSync(s.files[0]!));
    truncateSync(trunc, statSync(trunc).size - 1000);
    assert.throws(() => loadGguf(trunc), /truncated GGUF/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: quantize --export-format gguf --gguf-type q4_0, then eval and generate run the .gguf', { skip: DATA_SKIP }, () => {
  const cli = (...args: string[]) => runMopt(args);
  const dir = tmp();
  try {
    const out = join(dir, 'q');
    const corpus = join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt');
    const q = cli('quantize', '--model', STORIES_HF, '--format', 'int4_awq', '--group-size', '32', '--calib-data', corpus, '--calib-samples', '4', '--seq-len', '64',
      '--eval-windows', '1', '--out', out, '--export-format', 'gguf', '--gguf-type', 'q4_0');
    assert.equal(q.code, 0, q.stderr);
    assert.match(q.stdout, /Q4_0 -> F16 \(row length 172/);
    const e = cli('eval', 'ppl', '--model', join(out, 'model.gguf'), '--data', corpus, '--max-tokens', '256', '--json');
    assert.equal(e.code, 0, e.stderr);
    assert.ok((JSON.parse(e.stdout) as { ppl: number }).ppl < 8);
    const gen = cli('generate', '--model', out, '--prompt', 'Once upon a time', '--max-new-tokens', '6', '--greedy', '--json');
    assert.equal(gen.code, 0, gen.stderr);
    assert.equal((JSON.parse(gen.stdout) as { ids: number[] }).ids.length, 6);
    // mopt export from the saved state, with the same calibration windows, writes the same file
    const again = cli('export', '--from', out, '--out', join(dir, 'again'), '--export-format', 'gguf', '--gguf-type', 'q4_0', '--calib-data', corpus, '--calib-samples', '4', '--seq-len', '64');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /exported Q4_0 as gguf \(30 quantized Linears\)/);
    assert.ok(readFileSync(join(dir, 'again', 'model.gguf')).equals(readFileSync(join(out, 'model.gguf'))), 'mopt export and mopt quantize --export-format gguf wrote different files');
    const bad = cli('quantize', '--model', STORIES_HF, '--format', 'fp8', '--calib-data', corpus, '--out', join(dir, 'x'), '--export-format', 'gguf');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--format fp8 cannot be written as GGUF/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
