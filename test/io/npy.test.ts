// .npy reader/writer tests: round trips, the exact numpy.save layout (derived by hand from numpy.lib.format),
// hand-built files in the other header styles numpy has written over the years, and each error case.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DTYPE_INFO, DTYPES } from '../../src/tensor/dtype.js';
import { UserError } from '../../src/util/errors.js';
import { type RawTensor } from '../../src/io/raw-tensor.js';
import { readNpy, writeNpy } from '../../src/io/npy.js';
import { patterned } from '../helpers/patterned.js';

function withTmp(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'mopt-npy-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}


function values(t: RawTensor): Array<number | bigint> {
  return Array.from(t.data as ArrayLike<number | bigint>);
}

function assertUserError(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${String(e)}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(f)}`);
    assert.ok(!e.message.includes('\n'), `message is not one line: ${JSON.stringify(e.message)}`);
    return true;
  });
}

/** Builds a .npy file from a header dict text, padding the prefix to `align` bytes as numpy does. */
function craftNpy(path: string, dict: string, data: Uint8Array, version: [number, number] = [1, 0], align = 64): void {
  const lenBytes = version[0] === 1 ? 2 : 4;
  const hlen = dict.length + 1;
  const pad = align - ((8 + lenBytes + hlen) % align);
  const prefix = Buffer.alloc(8 + lenBytes);
  prefix.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version[0], version[1]]);
  if (lenBytes === 2) prefix.writeUInt16LE(hlen + pad, 8);
  else prefix.writeUInt32LE(hlen + pad, 8);
  writeFileSync(path, Buffer.concat([prefix, Buffer.from(dict + ' '.repeat(pad) + '\n', 'latin1'), data]));
}

const f32 = (vals: number[]): Uint8Array => new Uint8Array(Float32Array.from(vals).buffer);

test('round trip of every dtype numpy has, including scalars and empty arrays', () => {
  withTmp((dir) => {
    const npyTypes = DTYPES.filter((d) => DTYPE_INFO[d].npy !== null);
    assert.deepEqual(npyTypes, ['float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool']);
    for (const d of npyTypes) {
      for (const shape of [[2, 3, 4], [5], [], [0, 3]]) {
        const t = patterned(d, shape);
        const p = join(dir, `${d}.npy`);
        writeNpy(p, t);
        const back = readNpy(p);
        assert.equal(back.dtype, d);
        assert.deepEqual(back.shape, shape);
        assert.equal(back.data.constructor, t.data.constructor);
        assert.deepEqual(values(back), values(t), `${d} ${JSON.stringify(shape)}`);
      }
    }
    assert.equal(readdirSync(dir).filter((f) => f.includes('.tmp-')).length, 0, 'no temp files left behind');
  });
});

test('writer output matches numpy.save byte for byte', () => {
  withTmp((dir) => {
    // numpy.save(np.arange(6, dtype='<f4').reshape(2, 3)): sorted-key dict repr, then 21 - len('2') = 20 spare
    // spaces for the growth axis, then padding so magic(6)+version(2)+length(2)+header is a multiple of 64, '\n'.
    const p = join(dir, 'a.npy');
    writeNpy(p, { dtype: 'float32', shape: [2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5]) });
    const bytes = readFileSync(p);
    const dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    const header = dict + ' '.repeat(20) + ' '.repeat(128 - 10 - dict.length - 20 - 1) + '\n';
    const expected = Buffer.concat([Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 118, 0]), Buffer.from(header, 'latin1'), f32([0, 1, 2, 3, 4, 5])]);
    assert.deepEqual(bytes, expected);

    // 1-d shapes repr as (n,), scalars as () with no growth padding.
    writeNpy(p, { dtype: 'int8', shape: [3], data: Int8Array.from([-1, 0, 1]) });
    assert.ok(readFileSync(p).toString('latin1').includes("'descr': '|i1', 'fortran_order': False, 'shape': (3,), }"));
    writeNpy(p, { dtype: 'bool', shape: [], data: Uint8Array.from([1]) });
    const scalar = readFileSync(p);
    assert.equal(scalar.length, 128 + 1); // 55-byte dict + newline + 10-byte prefix > 64
    assert.ok(scalar.toString('latin1').includes("{'descr': '|b1', 'fortran_order': False, 'shape': (), }"));
  });
});

test('reads format 2.0, older 16-byte-aligned headers, equivalent byte orders and 1-d Fortran flags', () => {
  withTmp((dir) => {
    const p = join(dir, 'x.npy');
    craftNpy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", f32([1, 2, 3, 4]), [2, 0]);
    assert.deepEqual(values(readNpy(p)), [1, 2, 3, 4]);
    // Older numpy wrote no growth padding and aligned to 16 bytes; keys may come in any order.
    craftNpy(p, "{'shape': (3,), 'fortran_order': False, 'descr': '<f4'}", f32([5, 6, 7]), [1, 0], 16);
    assert.deepEqual(readNpy(p).shape, [3]);
    craftNpy(p, '{"descr": "=i2", "fortran_order": True, "shape": (2L,)}', new Uint8Array([1, 0, 255, 255]));
    const t = readNpy(p);
    assert.equal(t.dtype, 'int16');
    assert.deepEqual(values(t), [1, -1]);
    craftNpy(p, "{'descr': '<u1', 'fortran_order': False, 'shape': (2, 1), }", new Uint8Array([9, 10]));
    assert.equal(readNpy(p).dtype, 'uint8');
  });
});

// ---- errors: one line each, naming the file ----

test('error: .npy file missing', () => {
  withTmp((dir) => {
    const p = join(dir, 'missing.npy');
    assertUserError(() => readNpy(p), p, 'does not exist');
  });
});

test('error: not a .npy file (bad magic, too short)', () => {
  withTmp((dir) => {
    const p = join(dir, 'bad.npy');
    writeFileSync(p, 'PK\x03\x04 this is an npz (zip) archive');
    assertUserError(() => readNpy(p), p, 'magic');
    writeFileSync(p, '\x93NUMPY');
    assertUserError(() => readNpy(p), p, 'too short');
  });
});

test('error: unsupported format version', () => {
  withTmp((dir) => {
    const p = join(dir, 'v4.npy');
    craftNpy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", f32([1]), [4, 0]);
    assertUserError(() => readNpy(p), p, 'version 4.0');
  });
});

test('error: Fortran order', () => {
  withTmp((dir) => {
    const p = join(dir, 'f.npy');
    craftNpy(p, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", f32([1, 2, 3, 4]));
    assertUserError(() => readNpy(p), p, 'Fortran', 'ascontiguousarray');
  });
});

test('error: big-endian and unsupported dtypes', () => {
  withTmp((dir) => {
    const p = join(dir, 'be.npy');
    craftNpy(p, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", f32([1]));
    assertUserError(() => readNpy(p), p, "'>f4'", 'big-endian');
    craftNpy(p, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(8));
    assertUserError(() => readNpy(p), p, "'<c8'", '<f8, <f4, <f2, <i8, <i4, <i2, |i1, |u1, |b1');
    craftNpy(p, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", new Uint8Array(4));
    assertUserError(() => readNpy(p), p, 'structured');
  });
});

test('error: malformed header', () => {
  withTmp((dir) => {
    const p = join(dir, 'h.npy');
    craftNpy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,) ", f32([1]));
    assertUserError(() => readNpy(p), p, 'not a valid Python literal');
    craftNpy(p, "{'descr': '<f4', 'shape': (1,), }", f32([1]));
    assertUserError(() => readNpy(p), p, "'fortran_order'");
  });
});

test('error: truncated data', () => {
  withTmp((dir) => {
    const p = join(dir, 't.npy');
    craftNpy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f32([1, 2, 3]));
    assertUserError(() => readNpy(p), p, 'truncated: header says 24 bytes of data, file has 12');
  });
});

test('error: bfloat16 and fp8 have no .npy type', () => {
  withTmp((dir) => {
    for (const d of ['bfloat16', 'float8_e4m3fn', 'float8_e5m2'] as const) {
      const p = join(dir, `${d}.npy`);
      assertUserError(() => writeNpy(p, patterned(d, [2])), p, d, 'float32');
    }
    assert.deepEqual(readdirSync(dir), []);
  });
});
