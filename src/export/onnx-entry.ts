// ONNX (a QDQ graph of the full-sequence decoder forward, run by ONNX Runtime) as an entry of the export registry.

import { dirname } from 'node:path';
import type { CheckpointReader, ExportFormat } from './registry.js';
import { checkOnnxRequest, prepareOnnx, writeOnnx } from './onnx-export.js';
import { isOnnxModel, openOnnx } from './onnx-load.js';

export const onnxFormat: ExportFormat = {
  name: 'onnx',
  help:
    'ONNX model.onnx (opset 21; model.onnx.data external data above 2 GB) computing logits for input_ids over the whole sequence ' +
    '(no KV cache), with INT8 / FP8 QuantizeLinear-DequantizeLinear pairs, INT4 DequantizeLinear with block_size or com.microsoft ' +
    'MatMulNBits (--onnx-int4), runnable in ONNX Runtime and by mopt eval / forward / generate with onnxruntime-node installed; presets fp8, int8_sq, int4_awq.',
  check: checkOnnxRequest,
  prepare(q, source, r) {
    const p = prepareOnnx(q, source, r);
    return { quantAlgo: p.quantAlgo, write: (out, o) => writeOnnx(p, out, o) };
  },
};

export const onnxReader: CheckpointReader = {
  name: 'onnx',
  detect: isOnnxModel,
  open(path, o) {
    const model = openOnnx(path, o);
    return { model, metaDir: dirname(model.file) };
  },
};
