// Model Optimizer's unified Hugging Face checkpoint as an entry of the export registry.

import type { CheckpointReader, ExportFormat } from './registry.js';
import { prepareModelopt, writeModelopt } from './modelopt-export.js';
import { isModeloptCheckpoint, loadModelopt } from './modelopt-load.js';
import { quantAlgoOf } from './modelopt-format.js';

export const modeloptFormat: ExportFormat = {
  name: 'modelopt',
  help:
    "NVIDIA Model Optimizer's unified Hugging Face checkpoint (packed weights + weight_scale / weight_scale_2 / input_scale / " +
    'pre_quant_scale / k_scale / v_scale, hf_quant_config.json, config.json quantization_config with quant_method "modelopt"), ' +
    'loadable by TensorRT-LLM and, for FP8 / NVFP4 / W4A16_NVFP4 / MXFP8, by vLLM; presets fp8, int8_sq, int4_awq, w4a8_awq, nvfp4, nvfp4_awq, ' +
    'w4a16_nvfp4, mxfp8, mxfp4 with any calibration algorithm, and custom recipes (one quant_algo, or MIXED_PRECISION with quantized_layers).',
  // a custom recipe is checked when its plan is known (prepare): it exports per layer, or as MIXED_PRECISION
  check: (r) => void (r.preset === null ? undefined : quantAlgoOf(r.preset, r.kvCache, null)),
  prepare(q, source, r) {
    const p = prepareModelopt(q, source, r);
    return { quantAlgo: p.algo.quantAlgo, write: (out, o) => writeModelopt(p, out, o) };
  },
};

export const modeloptReader: CheckpointReader = {
  name: 'modelopt',
  detect: isModeloptCheckpoint,
  open: (dir, o) => ({ model: loadModelopt(dir, o).model, metaDir: dir }),
};
