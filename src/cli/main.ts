#!/usr/bin/env node
// mopt command-line entry point. A UserError prints one line and exits 1; anything else is a bug
// and is printed with its stack.

import { Command, CommanderError } from 'commander';
import { UserError } from '../util/errors.js';
import { registerGenerate } from './generate.js';
import { registerEval } from './eval.js';
import { registerForward } from './forward.js';
import { registerTokenize } from './tokenize.js';
import { registerInspect } from './inspect.js';
import { registerQuantize } from './quantize.js';
import { registerExport } from './export.js';
import { registerTrain } from './train.js';
import { registerTokenizerTrain } from './tokenizer-train.js';
import { registerReport } from './report.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('mopt')
    .description(
      'mopt makes LLMs cheaper and faster to serve. It reads Hugging Face checkpoints (config.json + safetensors + ' +
        'tokenizer.json) and runs Llama, Mistral, Qwen2 and Qwen3 decoders in TypeScript, on the CPU or an NVIDIA GPU (--device cuda). ' +
        'It quantizes them (FP8, INT8, INT4, NVFP4, MXFP8/MXFP4 with Model Optimizer\'s presets), reports the quality cost, exports ' +
        'checkpoints for TensorRT-LLM / vLLM (Model Optimizer or compressed-tensors format), llama.cpp (GGUF) and ONNX Runtime, and ' +
        'trains models and BPE tokenizers. Start with `mopt quantize`: it quantizes the bundled mopt-tiny model and prints the report.',
    )
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  mopt inspect --model ./my-model',
        '  mopt generate --model ./my-model --prompt "Once upon a time" --max-new-tokens 50',
        '  mopt eval ppl --model ./my-model --data held-out.txt --seq-len 512 --json',
        '  mopt forward --model ./my-model --ids-file ids.npy --out logits.npy',
        '  mopt quantize --model ./my-model --format fp8 --calib-data calib.txt --out ./my-model-fp8',
        '  mopt quantize                      # the bundled mopt-tiny to NVFP4, report in ./mopt-out',
        '  mopt export --from ./my-model-fp8 --out ./my-model-fp8-hf',
        '  mopt export --from ./int4-state --out ./gguf --export-format gguf --gguf-type q4_k --calib-data calib.txt',
        '  mopt tokenizer train --data corpus.txt --vocab-size 4096 --out ./tok',
        '  mopt train --preset mopt-tiny --tokenizer ./tok --data corpus.txt --out ./run --steps 2000',
        '  mopt report ./run',
        '',
        'Every command takes --help and --json.',
      ].join('\n'),
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)');
  registerGenerate(program);
  registerEval(program);
  registerForward(program);
  registerTokenize(program);
  registerInspect(program);
  registerQuantize(program);
  registerExport(program);
  registerTrain(program);
  registerTokenizerTrain(program);
  registerReport(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  const override = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof UserError) {
      process.stderr.write(`mopt: error: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`mopt: internal error (please report): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 2;
  },
);
