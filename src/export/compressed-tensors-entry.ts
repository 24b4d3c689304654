// llm-compressor's compressed-tensors checkpoint as an entry of the export registry.

import type { CheckpointReader, ExportFormat } from './registry.js';
import { prepareCompressedTensors, writeCompressedTensors } from './compressed-tensors-export.js';
import { isCompressedTensorsCheckpoint, loadCompressedTensors } from './compressed-tensors-load.js';
import { ctSchemeOf } from './compressed-tensors-scheme.js';
import { unfoldableSmoothing } from './compressed-tensors-fold.js';

export const compressedTensorsFormat: ExportFormat = {
  name: 'compressed-tensors',
  help:
    "llm-compressor's compressed-tensors checkpoint, what vLLM loads (config.json quantization_config with quant_method " +
    '"compressed-tensors"; FP8 float-quantized, W8A8 int-quantized, W4A16 pack-quantized, NVFP4 / NVFP4A16 nvfp4-pack-quantized, ' +
    'FP8 KV cache; smoothing folded into the preceding norm or Linear); presets fp8, int8_sq, int4_awq, nvfp4, w4a16_nvfp4.',
  check: (r) => void ctSchemeOf(r.preset, r.kvCache),
  // smoothing factors are folded into the preceding ops: the algorithms leave the Linears where that is not exact unsmoothed
  restrictPlan: (q) => unfoldableSmoothing(q).forEach((l) => q.noSmoothing.add(l)),
  prepare(q, source, r) {
    const p = prepareCompressedTensors(q, source, r);
    return { quantAlgo: `${p.scheme.label} ${p.scheme.format}`, write: (out, o) => writeCompressedTensors(p, out, o) };
  },
};

export const compressedTensorsReader: CheckpointReader = {
  name: 'compressed-tensors',
  detect: isCompressedTensorsCheckpoint,
  open: (dir, o) => ({ model: loadCompressedTensors(dir, o).model, metaDir: dir }),
};
