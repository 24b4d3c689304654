// safetensors reader/writer tests: round trips for every dtype, files written by the Python library (the
// swift-transformers fixtures and the stories260K checkpoint; see shared/data/README.md), byte equality of our
// writer with the reference layout, sharded checkpoints, and one test per malformed-input error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DTYPES, type DType } from '../../src/tensor/dtype.js';
import { UserError } from '../../src/util/errors.js';
import { type RawTensor } from '../../src/io/raw-tensor.js';
import { readJsonFile, writeJsonAtomic } from '../../src/io/json-file.js';
import {
  SafetensorsCheckpoint,
  SafetensorsFile,
  writeSafetensors,
  writeShardedCheckpoint,
} from '../../src/io/safetensors.js';
import { SHARED_DATA, DATA_SKIP } from '../helpers/paths.js';
import { patterned } from '../helpers/patterned.js';

const DATA = SHARED_DATA;
const skip = DATA_SKIP;
const FIXTURES = join(DATA, 'numerics/safetensors-fixtures');
const STORIES = join(DATA, 'models/stories260K-hf');

function withTmp(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'mopt-st-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}


function assertSameTensor(actual: RawTensor, expected: RawTensor, what: string): void {
  assert.equal(actual.dtype, expected.dtype, `${what} dtype`);
  assert.deepEqual(actual.shape, expected.shape, `${what} shape`);
  assert.equal(actual.data.constructor, expected.data.constructor, `${what} storage type`);
  assert.deepEqual(Array.from(actual.data as ArrayLike<number | bigint>), Array.from(expected.data as ArrayLike<number | bigint>), `${what} data`);
}

/** Asserts fn throws a one-line UserError mentioning every given fragment (file path, tensor name, ...). */
function assertUserError(fn: () => unknown, ...fragments: string[]): string {
  let message = '';
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${String(e)}`);
    message = e.message;
    for (const f of fragments) assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(f)}`);
    assert.ok(!e.message.includes('\n'), `message is not one line: ${JSON.stringify(e.message)}`);
    return true;
  });
  return message;
}

/** Builds a safetensors file from a raw header (object or verbatim string) and data bytes. */
function craft(path: string, header: unknown, data: Uint8Array | number = 0): void {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, typeof data === 'number' ? Buffer.alloc(data) : data]));
}

test('round trip of every dtype, plus scalars, empty tensors and metadata', () => {
  withTmp((dir) => {
    const tensors = new Map<string, RawTensor>();
    DTYPES.forEach((d, i) => tensors.set(`t.${d}`, patterned(d, [2, 3, i + 1], i + 1)));
    tensors.set('scalar', patterned('float32', [], 5));
    tensors.set('empty', patterned('int64', [0, 4], 6));
    const path = join(dir, 'all.safetensors');
    writeSafetensors(path, tensors, { format: 'pt', note: 'ünïcode' });
    assert.deepEqual(readdirSync(dir), ['all.safetensors'], 'no temp file left behind');
    const f = SafetensorsFile.open(path);
    try {
      assert.deepEqual([...f.names()].sort(), [...tensors.keys()].sort());
      assert.deepEqual(f.metadata, { format: 'pt', note: 'ünïcode' });
      for (const [name, t] of tensors) {
        assert.ok(f.has(name));
        assert.deepEqual(f.info(name), { dtype: t.dtype, shape: t.shape, byteLength: t.data.byteLength });
        assertSameTensor(f.read(name), t, name);
      }
      assert.equal(f.has('nope'), false);
    } finally {
      f.close();
    }
  });
});

test('reads the reference fixtures written by the Python library', { skip }, () => {
  // Each fixture holds one tensor "embedding" whose rows are runs of three consecutive integers.
  const cases: Array<[string, DType, number[], number[]]> = [
    ['tensor-1d-int32', 'int32', [3], [1, 2, 3]],
    ['tensor-2d-float64', 'float64', [2, 3], [1, 2, 3, 24, 25, 26]],
    ['tensor-3d-float32', 'float32', [2, 2, 3], [22, 23, 24, 11, 12, 13, 2, 3, 4, 1, 2, 3]],
    ['tensor-4d-float32', 'float32', [2, 3, 1, 3], [11, 12, 13, 1, 2, 3, 4, 5, 6, 22, 23, 24, 15, 16, 17, 17, 18, 19]],
  ];
  for (const [file, dtype, shape, values] of cases) {
    const path = join(FIXTURES, `${file}.safetensors`);
    const f = SafetensorsFile.open(path);
    try {
      assert.deepEqual(f.names(), ['embedding'], file);
      assert.deepEqual(f.metadata, {});
      const t = f.read('embedding');
      assert.equal(t.dtype, dtype, file);
      assert.deepEqual(t.shape, shape, file);
      assert.deepEqual(Array.from(t.data as ArrayLike<number>), values, file);
      // Our writer must reproduce the library's bytes exactly.
      withTmp((dir) => {
        const out = join(dir, 'x.safetensors');
        writeSafetensors(out, [['embedding', t]]);
        assert.deepEqual(readFileSync(out), readFileSync(path), `${file} rewritten byte-identically`);
      });
    } finally {
      f.close();
    }
  }
});

test('reads the stories260K checkpoint and rewrites it byte-identically', { skip }, () => {
  const ckpt = SafetensorsCheckpoint.open(STORIES);
  try {
    assert.equal(ckpt.indexPath, null);
    const names = ckpt.names();
    assert.equal(names.length, 1 + 5 * 9 + 1);
    assert.deepEqual(ckpt.info('model.embed_tokens.weight'), { dtype: 'float32', shape: [512, 64], byteLength: 512 * 64 * 4 });
    for (let l = 0; l < 5; l++) {
      const p = `model.layers.${l}.`;
      assert.deepEqual(ckpt.info(p + 'self_attn.q_proj.weight').shape, [64, 64]);
      assert.deepEqual(ckpt.info(p + 'self_attn.k_proj.weight').shape, [32, 64]);
      assert.deepEqual(ckpt.info(p + 'self_attn.v_proj.weight').shape, [32, 64]);
      assert.deepEqual(ckpt.info(p + 'mlp.gate_proj.weight').shape, [172, 64]);
      assert.deepEqual(ckpt.info(p + 'mlp.down_proj.weight').shape, [64, 172]);
      assert.deepEqual(ckpt.info(p + 'input_layernorm.weight').shape, [64]);
    }
    assert.equal(ckpt.has('lm_head.weight'), false, 'embeddings are tied');
    const norm = ckpt.read('model.norm.weight');
    assert.ok(Array.from(norm.data as Float32Array).every((v) => Number.isFinite(v) && v !== 0));

    const file = SafetensorsFile.open(join(STORIES, 'model.safetensors'));
    try {
      assert.deepEqual(file.metadata, { format: 'pt' });
      withTmp((dir) => {
        const out = join(dir, 'model.safetensors');
        writeSafetensors(out, names.map((n) => [n, file.read(n)] as const), file.metadata);
        assert.deepEqual(readFileSync(out), readFileSync(join(STORIES, 'model.safetensors')));
      });
    } finally {
      file.close();
    }
  } finally {
    ckpt.close();
  }
});

test('read() fetches one tensor from disk at call time, not at open', () => {
  withTmp((dir) => {
    const p = join(dir, 'lazy.safetensors');
    writeSafetensors(p, [['a', { dtype: 'uint8', shape: [2], data: Uint8Array.from([1, 2]) }], ['b', { dtype: 'uint8', shape: [2], data: Uint8Array.from([3, 4]) }]]);
    const f = SafetensorsFile.open(p);
    try {
      // Overwrite b's bytes in place after open: a read of b must see them, a read of a is unaffected.
      const size = readFileSync(p).length;
      const fd = openSync(p, 'r+');
      writeSync(fd, Uint8Array.from([30, 40]), 0, 2, size - 2);
      closeSync(fd);
      assert.deepEqual(Array.from(f.read('a').data as Uint8Array), [1, 2]);
      assert.deepEqual(Array.from(f.read('b').data as Uint8Array), [30, 40]);
    } finally {
      f.close();
    }
    assert.throws(() => f.read('a'), /closed/);
  });
});

test('JSON files: atomic pretty write, one-line errors with positions', () => {
  withTmp((dir) => {
    const p = join(dir, 'config.json');
    writeJsonAtomic(p, { a: [1, 2], b: { c: 'd' } });
    assert.equal(readFileSync(p, 'utf8'), '{\n  "a": [\n    1,\n    2\n  ],\n  "b": {\n    "c": "d"\n  }\n}\n');
    assert.deepEqual(readJsonFile(p, 'model config'), { a: [1, 2], b: { c: 'd' } });
    assert.deepEqual(readdirSync(dir), ['config.json']);
    assertUserError(() => readJsonFile(join(dir, 'nope.json'), 'model config'), 'model config', join(dir, 'nope.json'), 'does not exist');
    // V8 reports this one without a position and quotes the (multi-line) input; ours stays on one line.
    writeFileSync(p, '{\n  "a": tru\n}');
    assertUserError(() => readJsonFile(p, 'model config'), p, 'not valid JSON', 'invalid literal (expected true) at line 2 column 8 (position 9)');
    writeFileSync(p, '{"a": 1');
    assertUserError(() => readJsonFile(p, 'model config'), p, 'unexpected end of input at line 1 column 8');
  });
});

test('writer bytes equal the reference layout derived from the spec', () => {
  withTmp((dir) => {
    const bytesOf = (tensors: Array<[string, RawTensor]>, metadata?: Record<string, string>): Buffer => {
      const p = join(dir, 'w.safetensors');
      writeSafetensors(p, tensors, metadata);
      return readFileSync(p);
    };
    const expected = (header: string, data: number[]): Buffer => {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      return Buffer.concat([len, Buffer.from(header, 'utf8'), Buffer.from(data)]);
    };
    const f32 = (shape: number[], values: number[]): RawTensor => ({ dtype: 'float32', shape, data: Float32Array.from(values) });
    const f32Bytes = (values: number[]): number[] => Array.from(new Uint8Array(Float32Array.from(values).buffer));

    // 54 bytes of compact JSON, padded with 2 spaces to 56.
    const h1 = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' + '  ';
    assert.equal(h1.length, 56);
    assert.deepEqual(bytesOf([['a', f32([2], [1, 2])]]), expected(h1, [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]));

    // The library's own published vectors: a 64-byte header needs no padding, a 65-byte one gets 7 spaces.
    const h2 = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    assert.equal(h2.length, 64);
    assert.deepEqual(bytesOf([['attn.0', f32([1, 2, 3], [0, 1, 2, 3, 4, 5])]]), expected(h2, f32Bytes([0, 1, 2, 3, 4, 5])));
    const h3 = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}' + ' '.repeat(7);
    assert.equal(h3.length, 72);
    assert.deepEqual(bytesOf([['attn0', f32([1, 1, 2, 3], [0, 1, 2, 3, 4, 5])]]), expected(h3, f32Bytes([0, 1, 2, 3, 4, 5])));
    assert.deepEqual(bytesOf([]), expected('{}      ', []));
    assert.deepEqual(bytesOf([], { framework: 'pt' }), expected('{"__metadata__":{"framework":"pt"}}' + ' '.repeat(5), []));

    // Data is laid out by descending dtype alignment (I64 > F32 > U8), then by name; header keys follow suit.
    const mixed: Array<[string, RawTensor]> = [
      ['u', { dtype: 'uint8', shape: [3], data: Uint8Array.from([7, 8, 9]) }],
      ['b', f32([1], [1])],
      ['a', f32([1], [2])],
      ['z', { dtype: 'int64', shape: [1], data: BigInt64Array.from([-1n]) }],
    ];
    const h4 =
      '{"z":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},' +
      '"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},"u":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}}' +
      ' '.repeat(7); // 217 bytes of JSON -> 224
    assert.equal(h4.length, 224);
    assert.deepEqual(bytesOf(mixed), expected(h4, [...Array(8).fill(0xff), ...f32Bytes([2]), ...f32Bytes([1]), 7, 8, 9]));
  });
});

test('sharded checkpoint: write, index, lazy read back, and cleanup of a previous save', () => {
  withTmp((dir) => {
    const tensors: Array<[string, RawTensor]> = [];
    for (let l = 0; l < 3; l++) {
      tensors.push([`layers.${l}.w`, patterned('float32', [8, 8], l)]); // 256 bytes
      tensors.push([`layers.${l}.b`, patterned('bfloat16', [8], l)]); // 16 bytes
    }
    tensors.push(['big', patterned('int8', [600], 9)]); // larger than a shard: gets its own
    const { files, indexPath } = writeShardedCheckpoint(dir, tensors, { maxShardBytes: 300, metadata: { format: 'pt' } });
    assert.deepEqual(files.map((f) => f.slice(dir.length + 1)), [1, 2, 3, 4].map((i) => `model-0000${i}-of-00004.safetensors`));
    assert.equal(indexPath, join(dir, 'model.safetensors.index.json'));
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    assert.equal(index.metadata.total_size, 3 * (256 + 16) + 600);
    assert.deepEqual(Object.keys(index.weight_map), tensors.map(([n]) => n).sort());
    assert.equal(index.weight_map['layers.1.b'], 'model-00002-of-00004.safetensors');
    assert.ok(readFileSync(indexPath, 'utf8').endsWith('}\n'));

    const ckpt = SafetensorsCheckpoint.open(dir);
    try {
      assert.equal(ckpt.indexPath, indexPath);
      assert.deepEqual([...ckpt.names()].sort(), tensors.map(([n]) => n).sort());
      assert.equal(ckpt.files().length, 4);
      for (const [name, t] of tensors) {
        assert.ok(ckpt.has(name));
        assertSameTensor(ckpt.read(name), t, name);
      }
    } finally {
      ckpt.close();
    }

    // Saving a small model into the same directory leaves only model.safetensors: stale shards would mix weights.
    writeShardedCheckpoint(dir, tensors.slice(0, 2), { maxShardBytes: 300 });
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
    const single = SafetensorsCheckpoint.open(dir);
    try {
      assert.deepEqual([...single.names()].sort(), ['layers.0.b', 'layers.0.w']);
      assertSameTensor(single.read('layers.0.w'), tensors[0]![1], 'layers.0.w');
    } finally {
      single.close();
    }
  });
});

test('writer rejects inconsistent tensors and leaves no file behind', () => {
  withTmp((dir) => {
    const p = join(dir, 'bad.safetensors');
    assert.throws(() => writeSafetensors(p, [['x', { dtype: 'float16', shape: [2], data: new Float32Array(2) }]]), /Uint16Array/);
    assert.throws(() => writeSafetensors(p, [['x', { dtype: 'float32', shape: [3], data: new Float32Array(2) }]]), /3 elements/);
    const t = patterned('float32', [1]);
    assert.throws(() => writeSafetensors(p, [['x', t], ['x', t]]), /twice/);
    assertUserError(() => writeSafetensors(join(dir, 'no/such/dir/x.safetensors'), [['x', t]]), 'no/such/dir', 'does not exist');
    assert.deepEqual(readdirSync(dir), []);
  });
});

// ---- malformed inputs: one test each; every message names the file (and tensor) on one line ----

test('error: file missing', () => {
  withTmp((dir) => {
    const p = join(dir, 'missing.safetensors');
    assertUserError(() => SafetensorsFile.open(p), p, 'does not exist');
  });
});

test('error: file shorter than 8 bytes', () => {
  withTmp((dir) => {
    const p = join(dir, 'tiny.safetensors');
    writeFileSync(p, Buffer.from([1, 2, 3]));
    assertUserError(() => SafetensorsFile.open(p), p, 'only 3 bytes');
  });
});

test('error: header length larger than the file', () => {
  withTmp((dir) => {
    const p = join(dir, 'hlen.safetensors');
    const b = Buffer.alloc(20);
    b.writeBigUInt64LE(1000n);
    writeFileSync(p, b);
    assertUserError(() => SafetensorsFile.open(p), p, 'header length 1000', '20 bytes');
  });
});

test('error: header is not valid JSON (with position)', () => {
  withTmp((dir) => {
    const p = join(dir, 'json.safetensors');
    craft(p, '{"a":{"dtype":"F32",}}');
    assertUserError(() => SafetensorsFile.open(p), p, 'not valid JSON', 'position 20');
  });
});

test('error: header entry missing keys', () => {
  withTmp((dir) => {
    const p = join(dir, 'keys.safetensors');
    craft(p, { 'w.weight': { dtype: 'F32', shape: [1] } }, 4);
    assertUserError(() => SafetensorsFile.open(p), p, 'w.weight', '"data_offsets"');
  });
});

test('error: unknown dtype lists the supported ones', () => {
  withTmp((dir) => {
    const p = join(dir, 'dtype.safetensors');
    craft(p, { 'w.weight': { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, 8);
    assertUserError(() => SafetensorsFile.open(p), p, 'w.weight', '"C64"', 'F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL');
  });
});

test('error: truncated file (offsets beyond the data)', () => {
  withTmp((dir) => {
    const p = join(dir, 'trunc.safetensors');
    craft(p, { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, 10);
    assertUserError(() => SafetensorsFile.open(p), p, 'truncated: header says 24 bytes of data, file has 10', '"b"');
  });
});

test('error: shape and byte length disagree', () => {
  withTmp((dir) => {
    const p = join(dir, 'shape.safetensors');
    craft(p, { 'w.weight': { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, 20);
    assertUserError(() => SafetensorsFile.open(p), p, 'w.weight', 'needs 24 bytes', 'span 20');
  });
});

test('error: overlapping tensors', () => {
  withTmp((dir) => {
    const p = join(dir, 'overlap.safetensors');
    craft(p, { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12);
    assertUserError(() => SafetensorsFile.open(p), p, '"a"', '"b"', 'overlap');
  });
});

test('error: __metadata__ that is not a string map', () => {
  withTmp((dir) => {
    const p = join(dir, 'meta.safetensors');
    craft(p, { __metadata__: { step: 3 } });
    assertUserError(() => SafetensorsFile.open(p), p, '__metadata__');
  });
});

test('error: tensor not found suggests close matches', () => {
  withTmp((dir) => {
    const p = join(dir, 'nf.safetensors');
    writeSafetensors(p, [
      ['model.layers.0.mlp.up_proj.weight', patterned('float32', [2])],
      ['model.layers.0.mlp.down_proj.weight', patterned('float32', [2])],
    ]);
    const f = SafetensorsFile.open(p);
    try {
      assertUserError(() => f.read('layers.0.mlp.up_proj.weight'), p, 'layers.0.mlp.up_proj.weight', 'did you mean "model.layers.0.mlp.up_proj.weight"');
      const msg = assertUserError(() => f.info('zzz'), p, '"zzz"');
      assert.ok(!msg.includes('did you mean'));
    } finally {
      f.close();
    }
    const ckpt = SafetensorsCheckpoint.open(p);
    try {
      assertUserError(() => ckpt.read('model.layers.0.mlp.up_proj.weigth'), 'up_proj.weigth', 'did you mean "model.layers.0.mlp.up_proj.weight"');
    } finally {
      ckpt.close();
    }
  });
});

test('error: shard listed in the index is missing', () => {
  withTmp((dir) => {
    writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), [['a', patterned('float32', [2])]]);
    const index = join(dir, 'model.safetensors.index.json');
    writeFileSync(index, JSON.stringify({ metadata: {}, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }));
    assertUserError(() => SafetensorsCheckpoint.open(dir), index, 'model-00002-of-00002.safetensors', '"b"');
  });
});

test('error: index maps a tensor to a shard that lacks it, and bad index JSON', () => {
  withTmp((dir) => {
    writeSafetensors(join(dir, 'model-00001-of-00001.safetensors'), [['a', patterned('float32', [2])]]);
    const index = join(dir, 'model.safetensors.index.json');
    writeFileSync(index, JSON.stringify({ weight_map: { a: 'model-00001-of-00001.safetensors', ghost: 'model-00001-of-00001.safetensors' } }));
    const ckpt = SafetensorsCheckpoint.open(dir);
    try {
      assert.deepEqual(ckpt.read('a').shape, [2]);
      assertUserError(() => ckpt.read('ghost'), index, '"ghost"', 'no such tensor');
    } finally {
      ckpt.close();
    }
    writeFileSync(index, '{"weight_map": {\n  "a": "x",\n}}');
    assertUserError(() => SafetensorsCheckpoint.open(dir), index, 'not valid JSON', 'line 3 column 1');
    writeFileSync(index, JSON.stringify({ weight_map: { a: '../elsewhere.safetensors' } }));
    assertUserError(() => SafetensorsCheckpoint.open(dir), index, '"a"', '../elsewhere.safetensors');
  });
});

test('error: checkpoint directory missing or without safetensors files', () => {
  withTmp((dir) => {
    assertUserError(() => SafetensorsCheckpoint.open(join(dir, 'nope')), join(dir, 'nope'), 'does not exist');
    mkdirSync(join(dir, 'empty'));
    writeFileSync(join(dir, 'empty', 'adapter_model.safetensors'), '');
    assertUserError(() => SafetensorsCheckpoint.open(join(dir, 'empty')), join(dir, 'empty'), 'model.safetensors.index.json', 'adapter_model.safetensors');
  });
});
