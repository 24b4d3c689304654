// mopt tokenize / detokenize with a model's tokenizer.json (or a tokenizer file given directly).

import type { Command } from 'commander';
import { Tokenizer } from '../io/tokenizer.js';
import { UserError } from '../util/errors.js';
import { emit, parseIdList, requireModelDir } from './common.js';

interface TokOptions {
  model?: string;
  tokenizer?: string;
  json?: boolean;
}

function openTokenizer(o: TokOptions): Tokenizer {
  if ((o.model === undefined) === (o.tokenizer === undefined)) throw new UserError('give exactly one of --model or --tokenizer');
  if (o.tokenizer !== undefined) return Tokenizer.fromFile(o.tokenizer);
  const dir = requireModelDir(o.model!);
  const t = Tokenizer.tryFromModelDir(dir);
  if (t === null) throw new UserError(`${dir} has no tokenizer.json; pass --tokenizer FILE`);
  return t;
}

export function registerTokenize(program: Command): void {
  program
    .command('tokenize')
    .description('Text to token ids with a tokenizer.json.')
    .option('--model <dir>', 'model directory holding tokenizer.json')
    .option('--tokenizer <file>', 'a tokenizer.json file')
    .requiredOption('--text <text>', 'text to encode')
    .option('--no-special', 'do not add special tokens such as BOS')
    .option('--json', 'print {"ids": [...]} on stdout')
    .action((o: TokOptions & { text: string; special: boolean }) => {
      const ids = openTokenizer(o).encode(o.text, { addSpecialTokens: o.special });
      emit(o.json === true, { ids }, ids.join(','));
    });
  program
    .command('detokenize')
    .description('Token ids to text with a tokenizer.json.')
    .option('--model <dir>', 'model directory holding tokenizer.json')
    .option('--tokenizer <file>', 'a tokenizer.json file')
    .requiredOption('--ids <ids>', 'comma-separated token ids', parseIdList)
    .option('--skip-special', 'drop special tokens such as BOS/EOS from the text')
    .option('--json', 'print {"text": "..."} on stdout')
    .action((o: TokOptions & { ids: number[]; skipSpecial?: boolean }) => {
      const tok = openTokenizer(o);
      const bad = o.ids.find((id) => id >= tok.vocabSize);
      if (bad !== undefined) throw new UserError(`token id ${bad} is outside the tokenizer's vocabulary (size ${tok.vocabSize})`);
      const text = tok.decode(o.ids, { skipSpecialTokens: o.skipSpecial === true });
      emit(o.json === true, { text }, text);
    });
}
