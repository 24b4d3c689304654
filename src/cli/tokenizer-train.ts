// mopt tokenizer train: a byte-level BPE tokenizer trained on text files (src/train/bpe.ts), written as
// tokenizer.json + tokenizer_config.json + special_tokens_map.json into --out, ready for mopt train --tokenizer.

import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../io/json-file.js';
import { readDocuments } from '../quant/calib-data.js';
import { trainByteLevelBpe } from '../train/bpe.js';
import { UserError } from '../util/errors.js';
import { emit, parseIntOption } from './common.js';

export function registerTokenizerTrain(program: Command): void {
  program
    .command('tokenizer')
    .description('Tokenizer tools: `tokenizer train` makes a byte-level BPE tokenizer.json from text.')
    .command('train')
    .description('Train a byte-level BPE tokenizer (GPT-2 style: any text encodes, no unknown token) and write tokenizer.json, loadable by mopt and by the Hugging Face tokenizers library.')
    .requiredOption('--data <files...>', 'training text: .txt, .jsonl ({"text": ...} per line) or .json array')
    .requiredOption('--out <dir>', 'output directory')
    .option('--vocab-size <n>', 'vocabulary size including the special tokens and the 256 byte symbols', parseIntOption('--vocab-size', 2), 4096)
    .option('--special <tokens>', 'comma-separated special tokens, ids 0.. in order (BOS, EOS, PAD)', '<s>,</s>,<pad>')
    .option('--no-bos', 'do not prepend the first special token when encoding')
    .option('--min-frequency <n>', 'pairs seen fewer times are not merged', parseIntOption('--min-frequency', 1), 2)
    .option('--json', 'print the summary as JSON')
    .action((o: { data: string[]; out: string; vocabSize: number; special: string; bos: boolean; minFrequency: number; json?: boolean }) => {
      const specials = o.special.split(',').map((s) => s.trim()).filter((s) => s !== '');
      if (new Set(specials).size !== specials.length) throw new UserError(`--special ${o.special}: tokens repeat`);
      if (o.vocabSize < specials.length + 256) throw new UserError(`--vocab-size ${o.vocabSize} is below the ${specials.length} special tokens + 256 byte symbols`);
      const docs = o.data.flatMap((f) => readDocuments(f));
      const t = trainByteLevelBpe(docs, { vocabSize: o.vocabSize, specialTokens: specials, bos: o.bos, minFrequency: o.minFrequency });
      mkdirSync(o.out, { recursive: true });
      writeJsonAtomic(join(o.out, 'tokenizer.json'), t.tokenizer);
      writeJsonAtomic(join(o.out, 'tokenizer_config.json'), t.config);
      const [bos, eos, pad] = specials;
      writeJsonAtomic(join(o.out, 'special_tokens_map.json'), { ...(bos ? { bos_token: bos } : {}), ...(eos ? { eos_token: eos } : {}), ...(pad ? { pad_token: pad } : {}) });
      const vocab = specials.length + 256 + t.merges;
      const summary = { out: o.out, vocabSize: vocab, merges: t.merges, specialTokens: specials };
      emit(o.json === true, summary, `trained a byte-level BPE tokenizer: ${vocab} tokens (${t.merges} merges${vocab < o.vocabSize ? `; the text supports no more at --min-frequency ${o.minFrequency}` : ''}) in ${join(o.out, 'tokenizer.json')}`);
    });
}
