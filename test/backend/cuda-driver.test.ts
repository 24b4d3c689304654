// The CUDA driver layer on a real GPU: memory round trips, NVRTC compile + launch with a pre-built argument
// block, events, graph capture/replay. Runs when MOPT_TEST_CUDA=1 (the GPU machine); skipped elsewhere.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CudaDriver, KernelArgs } from '../../src/backend/cuda/driver.js';
import { Nvrtc } from '../../src/backend/cuda/nvrtc.js';
import { spawnSync } from 'node:child_process';
import { CLI } from '../helpers/cli.js';
import { DATA_SKIP, STORIES_HF } from '../helpers/paths.js';

const enabled = process.env.MOPT_TEST_CUDA === '1';

const SAXPY = `
#include <cuda_bf16.h>
extern "C" __global__ void saxpy(float a, const float* x, float* y, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
extern "C" __global__ void to_bf16(const float* x, __nv_bfloat16* y, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = __float2bfloat16_rn(x[i]);
}`;

test('CUDA driver: memory, NVRTC, launch, events, graphs', { skip: enabled ? false : 'set MOPT_TEST_CUDA=1 on a GPU machine' }, () => {
  const d = CudaDriver.open();
  process.stdout.write(`# device ${d.info.name} sm_${d.info.computeCapability.join('')} ${d.info.smCount} SMs\n`);
  const n = 1000;
  const x = Float32Array.from({ length: n }, (_, i) => i * 0.5);
  const y = Float32Array.from({ length: n }, (_, i) => 1 + i);
  const px = d.tryMemAlloc(n * 4)!;
  const py = d.tryMemAlloc(n * 4)!;
  const pb = d.tryMemAlloc(n * 2)!;
  d.htod(px, x);
  d.htod(py, y);
  const nvrtc = new Nvrtc();
  const arch = `${d.info.computeCapability[0]}${d.info.computeCapability[1]}`;
  const mod = d.loadModule(nvrtc.compile('smoke', SAXPY, arch));
  const saxpy = d.getFunction(mod, 'saxpy');
  const args = new KernelArgs([4, 8, 8, 8]).f32(0, 2).ptr(1, px).ptr(2, py).i64(3, n);
  const e0 = d.eventCreate();
  const e1 = d.eventCreate();
  d.eventRecord(e0);
  d.launch(saxpy, [Math.ceil(n / 256), 1, 1], [256, 1, 1], 0, args, 'saxpy');
  d.eventRecord(e1);
  assert.ok(d.eventElapsedMs(e0, e1) >= 0);
  const out = new Float32Array(n);
  d.dtoh(out, py);
  for (let i = 0; i < n; i++) assert.equal(out[i], Math.fround(2 * x[i] + y[i]));
  // graph: capture two launches, replay three times -> y += 6x
  d.beginCapture();
  d.launch(saxpy, [Math.ceil(n / 256), 1, 1], [256, 1, 1], 0, args, 'saxpy');
  const exec = d.endCapture();
  d.graphLaunch(exec);
  d.graphLaunch(exec);
  d.graphLaunch(exec);
  d.synchronize();
  d.dtoh(out, py);
  assert.equal(out[10], Math.fround(Math.fround(Math.fround(Math.fround(2 * x[10] + y[10]) + 2 * x[10]) + 2 * x[10]) + 2 * x[10]));
  d.graphDestroy(exec);
  // bf16 conversion on the device equals the TS codec
  const toBf16 = d.getFunction(mod, 'to_bf16');
  d.launch(toBf16, [Math.ceil(n / 256), 1, 1], [256, 1, 1], 0, new KernelArgs([8, 8, 8]).ptr(0, py).ptr(1, pb).i64(2, n), 'to_bf16');
  const bits = new Uint16Array(n);
  d.dtoh(bits, pb);
  const f32 = new Float32Array(out.buffer);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < n; i++) {
    const u = u32[i];
    const rne = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
    assert.equal(bits[i], rne);
  }
  const mem = d.memGetInfo();
  assert.ok(mem.total > 0 && mem.free <= mem.total);
  for (const p of [px, py, pb]) d.memFree(p);
  d.eventDestroy(e0);
  d.eventDestroy(e1);
});

test('cuBLASLt GEMM: row-major, transposed and batched operands match a float64 reference', { skip: enabled ? false : 'set MOPT_TEST_CUDA=1 on a GPU machine' }, async () => {
  const { CublasLt, viewAddress } = await import('../../src/backend/cuda/cublaslt.js');
  const { f32ToBf16Bits, bf16BitsToF32 } = await import('../../src/tensor/codecs.js');
  const d = CudaDriver.open();
  const wsBytes = 32 << 20;
  const ws = d.tryMemAlloc(wsBytes)!;
  type Fake = { storage: { ptr: number; dtype: 'float32' | 'bfloat16'; backend: never; length: number; refs: number; freed: boolean }; shape: number[]; strides: number[]; offset: number };
  const lt = new CublasLt(d, ws, wsBytes, (v) => viewAddress((v.storage as unknown as { ptr: number }).ptr, v));
  const upload = (vals: Float64Array, dtype: 'float32' | 'bfloat16'): number => {
    const p = d.tryMemAlloc(vals.length * 4)!;
    if (dtype === 'float32') d.htod(p, Float32Array.from(vals));
    else d.htod(p, Uint16Array.from(vals, (x) => f32ToBf16Bits(x)));
    return p;
  };
  const view = (ptr: number, dtype: 'float32' | 'bfloat16', shape: number[], strides: number[]): Fake =>
    ({ storage: { ptr, dtype, backend: undefined as never, length: 0, refs: 1, freed: false }, shape, strides, offset: 0 });
  for (const dtype of ['float32', 'bfloat16'] as const) {
    for (const [B, m, n, k, transA, transB, bcastB] of [
      [1, 5, 7, 3, false, false, false], [1, 64, 48, 32, false, true, false], [3, 17, 9, 40, true, false, false], [4, 8, 16, 24, false, true, true],
    ] as [number, number, number, number, boolean, boolean, boolean][]) {
      const rnd = (len: number): Float64Array => Float64Array.from({ length: len }, (_, i) => {
        const v = Math.sin(i * 12.9898 + m * 78.233) * 43758.5453;
        const x = (v - Math.floor(v)) * 2 - 1;
        return dtype === 'bfloat16' ? bf16BitsToF32(f32ToBf16Bits(x)) : Math.fround(x);
      });
      const A = rnd(B * m * k);
      const Bm = rnd((bcastB ? 1 : B) * k * n);
      // a[b,i,p] lives at transA ? b*m*k + p*m + i : b*m*k + i*k + p
      const aAt = (b: number, i: number, p: number): number => A[transA ? b * m * k + p * m + i : b * m * k + i * k + p];
      const bb = (b: number): number => (bcastB ? 0 : b);
      const bAt = (b: number, p: number, j: number): number => Bm[transB ? bb(b) * k * n + j * k + p : bb(b) * k * n + p * n + j];
      const pa = upload(A, dtype);
      const pb = upload(Bm, dtype);
      const po = d.tryMemAlloc(B * m * n * 4)!;
      const av = view(pa, dtype, [B, m, k], transA ? [m * k, 1, m] : [m * k, k, 1]);
      const bv = view(pb, dtype, [B, k, n], transB ? [bcastB ? 0 : k * n, 1, k] : [bcastB ? 0 : k * n, n, 1]);
      const ov = view(po, dtype, [B, m, n], [m * n, n, 1]);
      assert.ok(lt.matmul(av as never, bv as never, ov as never), `cuBLASLt took ${dtype} ${B}x${m}x${n}x${k}`);
      d.synchronize();
      const got = dtype === 'float32' ? new Float32Array(B * m * n) : new Uint16Array(B * m * n);
      d.dtoh(got, po);
      let num = 0;
      let den = 0;
      for (let b = 0; b < B; b++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += aAt(b, i, p) * bAt(b, p, j);
        const g = dtype === 'float32' ? got[(b * m + i) * n + j] : bf16BitsToF32(got[(b * m + i) * n + j]);
        num += (g - s) ** 2;
        den += s * s;
      }
      const rel = Math.sqrt(num / den);
      assert.ok(rel < (dtype === 'float32' ? 1e-6 : 1e-2), `${dtype} B${B} m${m} n${n} k${k} tA${transA} tB${transB}: rel ${rel}`);
      for (const p of [pa, pb, po]) d.memFree(p);
    }
  }
});

test('float32 matmul precision: TF32 tensor cores only when asked (high), float32 arithmetic by default and after', { skip: enabled ? false : 'set MOPT_TEST_CUDA=1 on a GPU machine' }, async () => {
  const { getCudaBackend } = await import('../../src/backend/cuda/index.js');
  const T = await import('../../src/tensor/index.js');
  const cuda = getCudaBackend();
  assert.equal(cuda.float32MatmulPrecision(), 'highest');
  const a = T.randn([128, 512], 1);
  const b = T.randn([512, 96], 2);
  const ref = T.matmul(a, b).toArray() as number[];
  const [ga, gb] = [a, b].map((t) => T.tensor(t.toArray() as number[], t.shape, { device: 'cuda' }));
  const relErr = (): number => {
    const got = T.matmul(ga!, gb!).toArray() as number[];
    let num = 0;
    let den = 0;
    got.forEach((g, i) => ((num += (g - ref[i]!) ** 2), (den += ref[i]! ** 2)));
    return Math.sqrt(num / den);
  };
  const strict = relErr();
  cuda.setFloat32MatmulPrecision('high');
  let tf32: number;
  try {
    tf32 = relErr();
  } finally {
    cuda.setFloat32MatmulPrecision('highest'); // the backend is the process's: later tests expect float32 matmuls
  }
  const again = relErr();
  // float32 sums over 512 products: ~1e-7; TF32 rounds each input to a 10-bit mantissa: ~1e-4..1e-3
  assert.ok(strict < 1e-6, `float32: ${strict}`);
  assert.ok(tf32 > 2e-5 && tf32 < 5e-3, `TF32: ${tf32}`);
  assert.ok(again < 1e-6, `float32 again: ${again}`);
});

test('MOPT_FLOAT32_MATMUL_PRECISION with an unknown value is one clear error', { skip: enabled ? DATA_SKIP : 'set MOPT_TEST_CUDA=1 on a GPU machine' }, () => {
  const r = spawnSync(process.execPath, [CLI, 'generate', '--model', STORIES_HF, '--prompt-ids', '1', '--max-new-tokens', '2', '--device', 'cuda', '--json'], {
    encoding: 'utf8', env: { ...process.env, MOPT_FLOAT32_MATMUL_PRECISION: 'medium' }, timeout: 120_000,
  });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /MOPT_FLOAT32_MATMUL_PRECISION=medium: expected highest or high/);
});
