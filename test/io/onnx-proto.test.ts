// The protobuf writer for ONNX (src/io/onnx-proto.ts) against the readers: varints at their edges (int64
// negatives as ten bytes), a TensorProto read back by the conformance-vector reader (onnx-tensor.ts), and a
// ModelProto with inline and external initializers read back by onnx-model-summary.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtoWriter, encodeModel, encodeTensor } from '../../src/io/onnx-proto.js';
import { readModelSummary } from '../../src/io/onnx-model-summary.js';
import { ONNX_DTYPE, ProtoReader, onnxTensorBytes, parseOnnxTensor } from '../../src/io/onnx-tensor.js';

test('ProtoWriter varints: 7 bits per byte, int64 negatives as ten-byte two\'s complement', () => {
  const bytes = (v: number | bigint): number[] => {
    const w = new ProtoWriter();
    w.varint(v);
    return Array.from(w.finish());
  };
  assert.deepEqual(bytes(0), [0]);
  assert.deepEqual(bytes(127), [0x7f]);
  assert.deepEqual(bytes(128), [0x80, 0x01]);
  assert.deepEqual(bytes(300), [0xac, 0x02]);
  assert.deepEqual(bytes(-1), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  for (const v of [0, 1, 2 ** 31, 2 ** 53 - 1]) assert.equal(new ProtoReader(Uint8Array.from(bytes(v))).varint(), v);
  assert.equal(BigInt.asIntN(64, new ProtoReader(Uint8Array.from(bytes(-12345))).varintBig()), -12345n);
});

test('an encoded TensorProto reads back through the conformance-vector reader', () => {
  const raw = Uint8Array.from([1, 2, 3, 250]);
  const t = parseOnnxTensor(encodeTensor({ name: 'w', dataType: ONNX_DTYPE.INT4, dims: [2, 4], raw }).finish());
  assert.equal(t.name, 'w');
  assert.deepEqual(t.dims, [2, 4]);
  assert.equal(t.dataType, ONNX_DTYPE.INT4);
  assert.deepEqual(onnxTensorBytes(t), raw);
});

test('an encoded ModelProto reads back: opsets, metadata, inputs / outputs, ops, inline and external initializers', () => {
  const f32 = new Uint8Array(new Float32Array([1.5, -2]).buffer);
  const w = encodeModel({
    irVersion: 10,
    opsets: [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }],
    producerName: 'test',
    producerVersion: '1',
    metadata: { 'mopt.quant_algo': 'FP8' },
    graph: {
      name: 'g',
      nodes: [
        { op: 'Softmax', domain: '', name: 'n0', inputs: ['x'], outputs: ['s'], attrs: { axis: { int: -1 } } },
        { op: 'MatMulNBits', domain: 'com.microsoft', name: 'n1', inputs: ['s', 'b', 'c'], outputs: ['y'], attrs: { K: { int: 16 }, alpha: { float: 0.5 }, perm: { ints: [1, 0] }, mode: { string: 'x' } } },
      ],
      initializers: [
        { name: 'c', dataType: ONNX_DTYPE.FLOAT, dims: [2], raw: f32 },
        { name: 'b', dataType: ONNX_DTYPE.UINT8, dims: [2, 1, 8], raw: new Uint8Array(16), external: { location: 'model.onnx.data', offset: 4096, length: 16 } },
      ],
      inputs: [{ name: 'x', elemType: ONNX_DTYPE.FLOAT, shape: ['batch', 16] }],
      outputs: [{ name: 'y', elemType: ONNX_DTYPE.FLOAT, shape: ['batch', 2] }],
    },
  });
  const m = readModelSummary(w.finish());
  assert.equal(m.irVersion, 10);
  assert.deepEqual(m.opsets, [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }]);
  assert.deepEqual(m.metadata, { 'mopt.quant_algo': 'FP8' });
  assert.deepEqual(m.ops, ['Softmax', 'com.microsoft.MatMulNBits']);
  assert.deepEqual(m.inputs, [{ name: 'x', elemType: ONNX_DTYPE.FLOAT, shape: ['batch', 16] }]);
  assert.deepEqual(m.outputs, [{ name: 'y', elemType: ONNX_DTYPE.FLOAT, shape: ['batch', 2] }]);
  const [c, b] = m.initializers;
  assert.deepEqual([c!.name, c!.dims, c!.external, Array.from(c!.raw!)], ['c', [2], null, Array.from(f32)]);
  assert.deepEqual([b!.name, b!.raw, b!.external], ['b', null, { location: 'model.onnx.data', offset: 4096, length: 16 }]);
  // a truncated message is an error, not a shorter model
  assert.throws(() => readModelSummary(w.finish().subarray(0, 60)), /protobuf: /);
});
