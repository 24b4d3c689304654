// mopt export: a saved quantization state (mopt quantize --out) to a deployable checkpoint.

import type { Command } from 'commander';
import { isQuantDir, restoreQuantized } from '../quant/state.js';
import { EXPORT_FORMAT_NAMES, exportFormat, exportFormatsHelp } from '../export/registry.js';
import { checkExportOut } from '../export/staging.js';
import { UserError } from '../util/errors.js';
import { emit, requireModelDir } from './common.js';

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
    .option('--overwrite', 'replace a non-empty --out directory')
    .option('--json', 'print the summary as JSON')
    .action((o: { from: string; out: string; exportFormat: string; overwrite?: boolean; json?: boolean }) => {
      const format = exportFormat(o.exportFormat);
      requireModelDir(o.from);
      if (!isQuantDir(o.from)) throw new UserError(`${o.from} is not a quantization state directory (no mopt-quant.json); create one with mopt quantize --out`);
      const { q, state } = restoreQuantized(o.from, { dtype: 'float32', device: 'cpu' });
      const request = { preset: state.preset, kvCache: state.kvCache };
      format.check(request);
      checkExportOut(state.source, o.out, o.overwrite);
      const s = format.prepare(q, state.source, request).write(o.out, { overwrite: o.overwrite });
      emit(o.json ?? false, s, [
        `exported ${s.quantAlgo} as ${s.format} (${s.quantizedLinears} quantized Linears) to ${s.dir}`,
        `left unquantized: ${s.excluded.length === 0 ? 'none' : s.excluded.join(', ')}`,
        ...s.files.map((f) => `  ${f}`),
      ].join('\n'));
    });
}
