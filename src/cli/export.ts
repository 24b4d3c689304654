// mopt export: a saved quantization state (mopt quantize --out) to a deployable checkpoint.

import type { Command } from 'commander';
import { isQuantDir, restoreQuantized } from '../quant/state.js';
import { exportModelopt } from '../export/modelopt-export.js';
import { UserError } from '../util/errors.js';
import { emit, requireModelDir } from './common.js';

const FORMATS = ['modelopt'];

export function registerExport(program: Command): void {
  program
    .command('export')
    .description(
      "Write a quantized model (a directory from mopt quantize --out) as a deployable checkpoint. modelopt: NVIDIA Model Optimizer's " +
        'unified Hugging Face checkpoint (packed weights + weight_scale / weight_scale_2 / input_scale / pre_quant_scale / k_scale / v_scale, ' +
        'hf_quant_config.json, config.json quantization_config with quant_method "modelopt"), loadable by TensorRT-LLM and, for FP8 / NVFP4 / ' +
        'W4A16_NVFP4 / MXFP8, by vLLM. Exports the fp8, int8_sq, int4_awq, nvfp4, nvfp4_awq, w4a16_nvfp4 and mxfp8 presets with any ' +
        'calibration algorithm; the written directory is checked and appears only when complete.',
    )
    .requiredOption('--from <dir>', 'quantization state directory (mopt quantize --out)')
    .requiredOption('--out <dir>', 'output checkpoint directory')
    .option('--export-format <name>', `checkpoint format: ${FORMATS.join(', ')}`, 'modelopt')
    .option('--overwrite', 'replace a non-empty --out directory')
    .option('--json', 'print the summary as JSON')
    .action((o: { from: string; out: string; exportFormat: string; overwrite?: boolean; json?: boolean }) => {
      if (!FORMATS.includes(o.exportFormat)) throw new UserError(`--export-format ${o.exportFormat} is not available; formats: ${FORMATS.join(', ')}`);
      requireModelDir(o.from);
      if (!isQuantDir(o.from)) throw new UserError(`${o.from} is not a quantization state directory (no mopt-quant.json); create one with mopt quantize --out`);
      const { q, state } = restoreQuantized(o.from, { dtype: 'float32', device: 'cpu' });
      const s = exportModelopt(q, state.source, o.out, { preset: state.preset, kvCache: state.kvCache, overwrite: o.overwrite });
      emit(o.json ?? false, s, [
        `exported ${s.quantAlgo} (${s.quantizedLinears} quantized Linears) to ${s.dir}`,
        `left unquantized: ${s.excluded.length === 0 ? 'none' : s.excluded.join(', ')}`,
        ...s.files.map((f) => `  ${f}`),
      ].join('\n'));
    });
}
