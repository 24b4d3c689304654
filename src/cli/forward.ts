// mopt forward: float32 logits for token ids, to compare with other frameworks.

import type { Command } from 'commander';
import { writeNpy } from '../io/npy.js';
import { tensor, tidy, noGrad } from '../tensor/index.js';
import { UserError } from '../util/errors.js';
import { checkIdsInVocab, emit, openModel, readIdRows, withRuntimeOptions } from './common.js';

interface ForwardOptions {
  model: string;
  idsFile: string;
  out: string;
  device: string;
  dtype: 'float32' | 'bfloat16' | 'float16';
  json?: boolean;
}

export function registerForward(program: Command): void {
  withRuntimeOptions(program.command('forward'))
    .description('Run the model on token ids and write float32 logits [batch, seq, vocab] to a .npy file.')
    .requiredOption('--model <dir>', 'Hugging Face model directory')
    .requiredOption('--ids-file <file>', 'token ids: .npy [batch, seq] integers or .json array(s) of equal length')
    .requiredOption('--out <file.npy>', 'where to write the logits')
    .option('--json', 'print {"out", "shape"} on stdout')
    .action((o: ForwardOptions) => {
      if (!o.out.endsWith('.npy')) throw new UserError(`--out ${o.out} must end in .npy`);
      const { model } = openModel(o.model, o.dtype, o.device);
      const rows = readIdRows(o.idsFile);
      const seq = rows[0]?.length ?? 0;
      if (seq === 0 || rows.some((r) => r.length !== seq)) throw new UserError(`${o.idsFile}: rows must be non-empty and of equal length`);
      checkIdsInVocab(rows, model.config.vocabSize, o.idsFile);
      const logits = noGrad(() =>
        tidy(() => model.forward(tensor(rows.flat(), [rows.length, seq], { dtype: 'int32', device: model.backend })).toFloat32Array()),
      );
      const shape = [rows.length, seq, model.config.vocabSize];
      writeNpy(o.out, { dtype: 'float32', shape, data: logits });
      emit(o.json === true, { out: o.out, shape }, `wrote logits [${shape.join(', ')}] to ${o.out}`);
    });
}
