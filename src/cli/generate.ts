// mopt generate: text or token ids in, new tokens out (greedy or temperature/top-p sampling).

import type { Command } from 'commander';
import { generate, type GenerateOptions } from '../runtime/generate.js';
import { generateFullPrefix } from '../runtime/generate-full.js';
import { DecoderLM } from '../models/decoder.js';
import { UserError } from '../util/errors.js';
import { emit, openModel, parseFloatOption, parseIdList, parseIntOption, requireTokenizer, checkIdsInVocab, withRuntimeOptions } from './common.js';

interface GenerateCliOptions {
  model: string;
  prompt?: string;
  promptIds?: number[];
  maxNewTokens: number;
  greedy?: boolean;
  temperature?: number;
  topP: number;
  seed: number;
  device: string;
  dtype: 'float32' | 'bfloat16' | 'float16';
  ignoreEos?: boolean;
  json?: boolean;
}

export function registerGenerate(program: Command): void {
  withRuntimeOptions(program.command('generate'))
    .description('Generate text with a model: greedy decoding by default, or sampling with --temperature/--top-p.')
    .requiredOption('--model <dir>', 'Hugging Face model directory (config.json + safetensors)')
    .option('--prompt <text>', 'prompt text (tokenized with the model tokenizer, BOS added as its tokenizer.json says)')
    .option('--prompt-ids <ids>', 'prompt as comma-separated token ids (for models without a tokenizer)', parseIdList)
    .requiredOption('--max-new-tokens <n>', 'number of tokens to generate', parseIntOption('--max-new-tokens'))
    .option('--greedy', 'pick the most likely token at each step (the default unless --temperature is given)')
    .option('--temperature <t>', 'sampling temperature (> 0)', parseFloatOption('--temperature', 1e-6, 100))
    .option('--top-p <p>', 'nucleus sampling: keep the smallest set of tokens with this much probability', parseFloatOption('--top-p', 1e-6, 1), 1)
    .option('--seed <s>', 'random seed for sampling', parseIntOption('--seed', 0), 0)
    .option('--ignore-eos', 'keep going past the end-of-sequence token')
    .option('--json', 'print {"ids": [...new ids], "text": "..."} on stdout')
    .action((o: GenerateCliOptions) => {
      if ((o.prompt === undefined) === (o.promptIds === undefined)) throw new UserError('give exactly one of --prompt or --prompt-ids');
      if (o.greedy && o.temperature !== undefined) throw new UserError('--greedy and --temperature exclude each other');
      const { model, tokenizer, eosTokenIds } = openModel(o.model, o.dtype, o.device);
      const prompt = o.promptIds ?? requireTokenizer(tokenizer, o.model, 'pass --prompt-ids instead of --prompt').encode(o.prompt!);
      checkIdsInVocab([prompt], model.config.vocabSize, '--prompt-ids');
      const streaming = !o.json && tokenizer !== null;
      const soFar: number[] = [];
      let printed = '';
      const opts: GenerateOptions = {
        maxNewTokens: o.maxNewTokens,
        greedy: o.temperature === undefined,
        temperature: o.temperature ?? 1,
        topP: o.topP,
        seed: o.seed,
        eosTokenIds: o.ignoreEos ? [] : eosTokenIds,
        onToken: (id) => {
          if (!streaming) return;
          soFar.push(id);
          // re-decode the whole continuation: byte-fallback pieces only form characters together
          const text = tokenizer!.decode(soFar, { skipSpecialTokens: true });
          if (text.startsWith(printed) && !text.endsWith('\uFFFD')) {
            process.stdout.write(text.slice(printed.length));
            printed = text;
          }
        },
      };
      // a model without a KV cache (ONNX) recomputes the whole prefix for every new token
      const ids = model instanceof DecoderLM ? generate(model, prompt, opts) : generateFullPrefix(model, prompt, opts);
      const text = tokenizer?.decode(ids, { skipSpecialTokens: true });
      if (o.json) emit(true, text === undefined ? { ids } : { ids, text }, '');
      else if (streaming) process.stdout.write(text!.slice(printed.length) + '\n');
      else emit(false, null, ids.join(','));
    });
}
