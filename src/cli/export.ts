// mopt export: a saved quantization state (mopt quantize --out) to a deployable checkpoint.

import type { Command } from 'commander';
import { isQuantDir, restoreQuantized } from '../quant/state.js';
import { EXPORT_FORMAT_NAMES, exportFormat, exportFormatsHelp } from '../export/registry.js';
import { checkExportOut } from '../export/staging.js';
import { UserError } from '../util/errors.js';
import { checkOnnxInt4, emit, ONNX_INT4_HELP, parseIntOption, parseOnnxInt4, requireModelDir, type OnnxInt4 } from './common.js';
import { GGUF_TYPES, parseGgufType } from '../export/gguf-export.js';
import { Tokenizer } from '../io/tokenizer.js';
import { calibrationSplit } from '../quant/calib-data.js';

export function registerExport(program: Command): void {
  program
    .command('export')
    .description(
      'Write a quantized model (a directory from mopt quantize --out) as a deployable checkpoint; the written directory is checked ' +
        `and appears only when complete. ${exportFormatsHelp()}`,
    )
    .requiredOption('--from <dir>', 'quantization state directory (mopt quantize --out)')
    .requiredOption('--out <dir>', 'output checkpoint directory')
    .option('--export-format <name>', `checkpoint format: ${EXPORT_FORMAT_NAMES.join(', ')}`, 'modelopt')
    .option('--onnx-int4 <form>', ONNX_INT4_HELP, parseOnnxInt4)
    .option('--gguf-type <type>', `with --export-format gguf: block type of the quantized Linears, ${GGUF_TYPES.join(', ')} (default q4_k)`, parseGgufType)
    .option('--calib-data <file>', 'with --export-format gguf: calibration text whose input energy weights the Q4_0 / Q4_K block scales (without it they round as llama.cpp does)')
    .option('--calib-samples <n>', 'calibration windows for --calib-data', parseIntOption('--calib-samples', 1), 64)
    .option('--seq-len <n>', 'tokens per calibration window', parseIntOption('--seq-len', 2), 512)
    .option('--overwrite', 'replace a non-empty --out directory')
    .option('--json', 'print the summary as JSON')
    .action((o: { from: string; out: string; exportFormat: string; onnxInt4?: OnnxInt4; ggufType?: string; calibData?: string; calibSamples: number; seqLen: number; overwrite?: boolean; json?: boolean }) => {
      const format = exportFormat(o.exportFormat);
      checkOnnxInt4(o.onnxInt4, o.exportFormat);
      if ((o.ggufType !== undefined || o.calibData !== undefined) && o.exportFormat !== 'gguf') throw new UserError('--gguf-type and --calib-data go with --export-format gguf');
      requireModelDir(o.from);
      if (!isQuantDir(o.from)) throw new UserError(`${o.from} is not a quantization state directory (no mopt-quant.json); create one with mopt quantize --out`);
      const { q, state } = restoreQuantized(o.from, { dtype: 'float32', device: 'cpu' });
      const request = { preset: state.preset, kvCache: state.kvCache, onnxInt4: o.onnxInt4, ggufType: o.ggufType };
      format.check(request);
      const calibration = o.calibData === undefined ? undefined : calibrationSplit(Tokenizer.fromModelDir(state.source), o.calibData, o.calibSamples, o.seqLen, 0).calib;
      checkExportOut(state.source, o.out, o.overwrite);
      const s = format.prepare(q, state.source, { ...request, calibration }).write(o.out, { overwrite: o.overwrite });
      emit(o.json ?? false, s, [
        `exported ${s.quantAlgo} as ${s.format} (${s.quantizedLinears} quantized Linears) to ${s.dir}`,
        `left unquantized: ${s.excluded.length === 0 ? 'none' : s.excluded.join(', ')}`,
        ...(s.notes ?? []),
        ...s.files.map((f) => `  ${f}`),
      ].join('\n'));
    });
}
