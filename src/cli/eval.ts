// mopt eval ppl: perplexity over token-id rows or a text file cut into windows.

import type { Command } from 'commander';
import { readFileSync, existsSync } from 'node:fs';
import { perplexity, windows } from '../eval/perplexity.js';
import { UserError } from '../util/errors.js';
import { Progress } from './progress.js';
import { meanKl } from '../quant/report.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { checkIdsInVocab, emit, openModel, parseIntOption, readIdRows, requireTokenizer, withRuntimeOptions } from './common.js';

interface PplOptions {
  model: string;
  idsFile?: string;
  data?: string;
  seqLen: number;
  maxTokens?: number;
  klBase?: string;
  device: string;
  dtype: 'float32' | 'bfloat16' | 'float16';
  json?: boolean;
}

export function registerEval(program: Command): void {
  const ev = program.command('eval').description('Evaluate a model (perplexity).');
  withRuntimeOptions(ev.command('ppl'))
    .description('Perplexity over all next-token predictions of every row (token ids) or of a text file cut into --seq-len windows.')
    .requiredOption('--model <dir>', 'Hugging Face model directory, or a mopt quantize output directory')
    .option('--ids-file <file>', 'token ids: .npy [batch, seq] integers or .json array(s); each row scored on its own')
    .option('--data <file>', 'UTF-8 text file, tokenized with the model tokenizer (BOS added as tokenizer.json says)')
    .option('--seq-len <n>', 'window length for --data', parseIntOption('--seq-len', 2), 512)
    .option('--max-tokens <n>', 'use only the first N tokens of --data', parseIntOption('--max-tokens', 2))
    .option('--kl-base <dir>', 'also report the mean KL divergence of --model\'s next-token distribution from this model\'s (e.g. the original of a quantized model)')
    .option('--json', 'print {"ppl", "nll", "tokens"} (and "kl" with --kl-base) on stdout')
    .action((o: PplOptions) => {
      if ((o.idsFile === undefined) === (o.data === undefined)) throw new UserError('give exactly one of --ids-file or --data');
      const { model, tokenizer } = openModel(o.model, o.dtype, o.device);
      let rows: number[][];
      if (o.idsFile !== undefined) {
        rows = readIdRows(o.idsFile);
      } else {
        if (!existsSync(o.data!)) throw new UserError(`--data ${o.data} does not exist`);
        const text = readFileSync(o.data!, 'utf8');
        if (text.trim() === '') throw new UserError(`--data ${o.data} is empty`);
        const tok = requireTokenizer(tokenizer, o.model, 'pass --ids-file with token ids instead of --data');
        const ids = encodePrefix(tok, text, o.maxTokens);
        rows = windows(ids, o.seqLen);
      }
      checkIdsInVocab(rows, model.config.vocabSize, o.idsFile ?? o.data!);
      const total = rows.reduce((s, r) => s + Math.max(0, r.length - 1), 0);
      if (total === 0) throw new UserError('nothing to score: every row has fewer than 2 tokens');
      const bar = new Progress('ppl', total, ' tok');
      const r = perplexity(model, rows, (n) => bar.tick(n));
      bar.finish();
      const text = `perplexity ${r.ppl.toFixed(4)}  (nll ${r.nll.toFixed(4)} nats/token over ${r.tokens} tokens)`;
      if (o.klBase === undefined) {
        emit(o.json === true, r, text);
        return;
      }
      const base = openModel(o.klBase, o.dtype, o.device).model;
      if (base.config.vocabSize !== model.config.vocabSize) throw new UserError(`--kl-base ${o.klBase} has a vocabulary of ${base.config.vocabSize}, --model ${model.config.vocabSize}; KL needs the same vocabulary`);
      const kbar = new Progress('KL', rows.reduce((s, row) => s + row.length, 0), ' tok');
      const kl = meanKl(base, model, rows, (n) => kbar.tick(n));
      kbar.finish();
      emit(o.json === true, { ...r, kl: kl.mean }, `${text}\nmean KL(${o.klBase} || ${o.model}) ${kl.mean.toFixed(6)} nats/token over ${kl.tokens} positions`);
    });
}

/**
 * Token ids of the text, or of its first maxTokens tokens. Encoding a large file only to keep its start
 * is slow, so a prefix of the text is encoded, doubling it until it yields enough tokens.
 */
function encodePrefix(tok: Tokenizer, text: string, maxTokens: number | undefined): number[] {
  if (maxTokens === undefined) return tok.encode(text);
  for (let chars = maxTokens * 8; ; chars *= 2) {
    // cut at a line break so no word is split at the boundary
    const cut = chars >= text.length ? text.length : text.lastIndexOf('\n', chars) > 0 ? text.lastIndexOf('\n', chars) : chars;
    const ids = tok.encode(text.slice(0, cut));
    if (ids.length > maxTokens || cut >= text.length) return ids.slice(0, maxTokens);
  }
}
