// Host-side logic of the CUDA backend that needs no GPU: the caching allocator (against a fake device)
// and the launch layouts of layout.ts, decoded and replayed with the kernels' index arithmetic
// (kernels/common.cuh strided_offsets) against plain row-major offsets of the views.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CachingAllocator, roundSize, type AllocatorDevice } from '../../src/backend/cuda/allocator.js';
import { STRIDED, collapseDims, stridedLaunches, widenCopy, type Operand } from '../../src/backend/cuda/layout.js';
import { UserError } from '../../src/util/errors.js';
import { UploadRing } from '../../src/backend/cuda/driver.js';

class FakeDevice implements AllocatorDevice {
  readonly info = { name: 'Fake GPU' };
  next = 0x1000;
  capacity: number;
  used = new Map<number, number>();
  frees = 0;
  syncs = 0;
  constructor(capacity: number) {
    this.capacity = capacity;
  }
  tryMemAlloc(bytes: number): number | null {
    const inUse = [...this.used.values()].reduce((a, b) => a + b, 0);
    if (inUse + bytes > this.capacity) return null;
    const p = this.next;
    this.next += bytes;
    this.used.set(p, bytes);
    return p;
  }
  memFree(p: number): void {
    this.used.delete(p);
    this.frees++;
  }
  memGetInfo(): { free: number; total: number } {
    return { free: this.capacity - [...this.used.values()].reduce((a, b) => a + b, 0), total: this.capacity };
  }
  synchronize(): void {
    this.syncs++;
  }
}

test('allocator: size rounding, reuse, stats, emptyCache', () => {
  assert.equal(roundSize(0), 512);
  assert.equal(roundSize(513), 1024);
  assert.equal(roundSize((1 << 20) - 1), 1 << 20);
  assert.equal(roundSize((1 << 20) + 1), 2 << 20);
  assert.equal(roundSize((3 << 20) + 1), 4 << 20);
  const dev = new FakeDevice(1 << 30);
  const a = new CachingAllocator(dev);
  const b1 = a.alloc(1000);
  a.free(b1);
  const b2 = a.alloc(900); // same rounded size: the cached block comes back
  assert.equal(b2.ptr, b1.ptr);
  const b3 = a.alloc(5 << 20);
  assert.deepEqual(a.stats(), { allocatedBytes: 1024 + (6 << 20), cachedBytes: 0, peakAllocatedBytes: 1024 + (6 << 20), deviceAllocs: 2, reuses: 1 });
  a.free(b3);
  assert.equal(a.stats().cachedBytes, 6 << 20);
  assert.throws(() => a.free(b3), /freed twice/);
  a.emptyCache();
  assert.equal(dev.frees, 1);
  assert.ok(dev.syncs >= 1, 'queued kernels may still use cached blocks: synchronize before cuMemFree');
  assert.equal(a.stats().cachedBytes, 0);
});

test('allocator: a graph pool keeps the blocks a capture touched out of other hands until released', () => {
  const a = new CachingAllocator(new FakeDevice(1 << 30));
  const before = a.alloc(1000); // allocated before the capture, freed during it: the graph may read it
  const cached = a.alloc(2000);
  a.free(cached); // in the common cache: a capture may take it, and then it is the graph's
  const pool = a.beginPool();
  assert.throws(() => a.beginPool(), /already in progress/);
  const t1 = a.alloc(2000);
  assert.equal(t1.ptr, cached.ptr);
  a.free(t1);
  const t2 = a.alloc(2000); // reuse inside the same capture is fine: the recording is in stream order
  assert.equal(t2.ptr, t1.ptr);
  a.free(before);
  const inCapture = a.alloc(1000);
  assert.notEqual(inCapture.ptr, before.ptr, 'a block from before the capture is not reused inside it: recorded kernels may read it');
  a.free(inCapture);
  const kept = a.alloc(3000); // a graph output, alive after the capture
  a.free(t2);
  a.endPool();
  assert.equal(pool.bytes, 1024 + 1024 + 2048 + 3072);
  // outside the capture, the pool's free blocks are not handed out
  const other = [a.alloc(1000), a.alloc(2000)];
  assert.ok(other.every((b) => b.ptr !== before.ptr && b.ptr !== t1.ptr), 'a graph-owned block was reused');
  assert.throws(() => a.releasePool(pool), /still in use/);
  a.free(kept); // returns to the pool, not to the cache
  assert.notEqual(a.alloc(3000).ptr, kept.ptr);
  a.releasePool(pool);
  assert.equal(pool.bytes, 0);
  assert.ok([before.ptr, inCapture.ptr].includes(a.alloc(1000).ptr), 'released blocks are back in the common cache');
});

test('allocator: out of memory releases the cache, retries, then throws a UserError', () => {
  const dev = new FakeDevice(8 << 20);
  const a = new CachingAllocator(dev);
  a.free(a.alloc(6 << 20)); // cached, still held on the device
  const big = a.alloc(4 << 20); // does not fit beside the cached block: cache released, retry succeeds
  assert.equal(dev.frees, 1);
  assert.throws(
    () => a.alloc(6 << 20),
    (e: unknown) => e instanceof UserError && e.message === 'out of GPU memory: needed 6.0 MiB, 4.0 MiB free of 8.0 MiB on Fake GPU; lower the batch size or sequence length',
  );
  a.free(big);
});

/** Replays the kernels' offset arithmetic on a decoded Strided struct. */
function decode(bytes: Uint8Array): { n: number; base: number; rank: number; shape: number[]; offset: number[]; stride: number[][] } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const i64 = (o: number): number => v.getUint32(o, true) + v.getInt32(o + 4, true) * 2 ** 32;
  const rank = v.getInt32(STRIDED.rank, true);
  const dims = (o: number): number[] => Array.from({ length: rank }, (_, d) => i64(o + 8 * d));
  return {
    n: i64(STRIDED.n), base: i64(STRIDED.base), rank, shape: dims(STRIDED.shape),
    offset: [0, 1, 2, 3].map((k) => i64(STRIDED.offset + 8 * k)), stride: [0, 1, 2, 3].map((k) => dims(STRIDED.stride + 64 * k)),
  };
}

function kernelOffset(L: ReturnType<typeof decode>, i: number, k: number): number {
  if (L.rank === 0) return L.offset[k] + i;
  let off = L.offset[k];
  for (let d = L.rank - 1; d > 0; d--) {
    off += (i % L.shape[d]) * L.stride[k][d];
    i = Math.floor(i / L.shape[d]);
  }
  return off + i * L.stride[k][0];
}

function viewOffset(shape: readonly number[], op: Operand, i: number): number {
  let off = op.offset;
  for (let d = shape.length - 1; d >= 0; d--) {
    off += (i % shape[d]) * op.strides[d];
    i = Math.floor(i / shape[d]);
  }
  return off;
}

function checkLaunches(shape: number[], ops: Operand[], expectRanks: number[]): void {
  const launches = stridedLaunches(shape, ops).map((l) => decode(l.bytes));
  assert.deepEqual([...new Set(launches.map((l) => l.rank))], expectRanks, `ranks for ${shape}`);
  let covered = 0;
  for (const L of launches) {
    assert.equal(L.base, covered, 'launches cover the elements in order');
    if (L.rank > 0) assert.ok(L.n < 2 ** 32, 'strided launches index with 32 bits');
    for (const i of new Set([0, 1, Math.floor(L.n / 3), L.n - 1])) {
      for (let k = 0; k < ops.length; k++) assert.equal(kernelOffset(L, i, k), viewOffset(shape, ops[k], L.base + i), `operand ${k} at ${L.base + i}`);
    }
    covered += L.n;
  }
  assert.equal(covered, shape.reduce((a, b) => a * b, 1));
}

test('launch layouts: dims collapse, contiguous fast path, 2^32 splits', () => {
  assert.deepEqual(collapseDims([2, 1, 3, 4], [[12, 12, 4, 1], [0, 0, 0, 1]]), { shape: [6, 4], strides: [[4, 1], [0, 1]] });
  assert.deepEqual(stridedLaunches([0, 5], [{ strides: [5, 1], offset: 0 }]), []);
  checkLaunches([4, 5, 6], [{ strides: [30, 6, 1], offset: 3 }, { strides: [30, 6, 1], offset: 0 }], [0]);
  checkLaunches([3, 4, 5], [{ strides: [20, 5, 1], offset: 0 }, { strides: [1, 3, 12], offset: 0 }, { strides: [0, 1, 0], offset: 2 }], [3]);
  checkLaunches([3, 2 ** 31 + 5], [{ strides: [1, 3], offset: 7 }, { strides: [2 ** 31 + 5, 1], offset: 0 }], [2]);
  checkLaunches([5, 7, 2 ** 32 + 3], [{ strides: [1, 5, 35], offset: 0 }, { strides: [7 * (2 ** 32 + 3), 2 ** 32 + 3, 1], offset: 2 }], [1]);
  checkLaunches([2 ** 34], [{ strides: [1], offset: 0 }, { strides: [1], offset: 4 }], [0]);
});

test('widenCopy: bit copies of aligned unit-stride rows move 16-, 8- or 4-byte words, same bytes', () => {
  // [B, H, S, D] bf16 view of [B, S, H, D] memory -> contiguous: 64 halves per row = 8 words of 16 bytes
  const src: Operand = { strides: [2 * 3 * 64, 64, 2 * 64, 1], offset: 0 };
  const dst: Operand = { strides: [2 * 3 * 64, 3 * 64, 64, 1], offset: 0 };
  const w = widenCopy([2, 2, 3, 64], [dst, src], 2);
  assert.equal(w.word, 16);
  assert.deepEqual(w.shape, [2, 2, 3, 8]);
  assert.deepEqual(w.operands, [{ strides: [48, 24, 8, 1], offset: 0 }, { strides: [48, 8, 16, 1], offset: 0 }]);
  // every word of the widened copy covers the same bytes as the elements it replaces
  for (let i = 0; i < 2 * 2 * 3 * 8; i++) {
    for (let k = 0; k < 2; k++) {
      const wordByte: number = viewOffset(w.shape, w.operands[k], i) * 16;
      const elem = viewOffset([2, 2, 3, 64], [dst, src][k], Math.floor(i / 8) * 64 + (i % 8) * 8) * 2;
      assert.equal(wordByte, elem);
    }
  }
  // an odd offset only allows 4-byte words of bf16 pairs when it is even; otherwise nothing wider fits
  assert.equal(widenCopy([4, 8], [{ strides: [8, 1], offset: 2 }, { strides: [16, 1], offset: 6 }], 2).word, 4);
  assert.equal(widenCopy([4, 8], [{ strides: [8, 1], offset: 1 }, { strides: [16, 1], offset: 0 }], 2).word, 2);
  // a non-unit last stride, a ragged row length or a misaligned row stride keeps the element width
  assert.equal(widenCopy([4, 8], [{ strides: [1, 4], offset: 0 }, { strides: [8, 1], offset: 0 }], 2).word, 2);
  assert.equal(widenCopy([4, 6], [{ strides: [6, 1], offset: 0 }, { strides: [6, 1], offset: 0 }], 4).word, 8);
  assert.equal(widenCopy([4, 5], [{ strides: [5, 1], offset: 0 }, { strides: [5, 1], offset: 0 }], 4).word, 4);
  // size-1 dims may have any stride; 16-byte elements are never widened
  assert.equal(widenCopy([1, 8], [{ strides: [3, 1], offset: 0 }, { strides: [8, 1], offset: 0 }], 2).word, 16);
  assert.equal(widenCopy([4], [{ strides: [1], offset: 0 }, { strides: [1], offset: 0 }], 16).word, 16);
});

test('UploadRing: staged copies hold the data, never overlap within a lap, and drain before reuse', () => {
  const mem = new Uint8Array(1024);
  let drains = 0;
  const ring = new UploadRing(mem, () => drains++);
  const a = ring.stage(new Uint8Array([1, 2, 3]));
  const b = ring.stage(new Uint8Array(300).fill(7));
  assert.deepEqual([...a], [1, 2, 3]);
  assert.equal(b.byteOffset, 256, 'regions start on 256-byte boundaries');
  assert.ok(b.every((x) => x === 7));
  assert.equal(drains, 0);
  // 256 + 512 used; a 300-byte upload does not fit in the 256 left: the ring drains and starts over
  const c = ring.stage(new Uint8Array(300).fill(9));
  assert.equal(drains, 1);
  assert.equal(c.byteOffset, 0);
  assert.throws(() => ring.stage(new Uint8Array(2000)), /exceeds the 1024 B staging ring/);
});
