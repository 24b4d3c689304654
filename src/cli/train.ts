// mopt train: pre-train a Llama-family model from a size preset or a config.json, or fine-tune a Hugging Face
// checkpoint, on text / JSONL files. Output: <out>/model (the trained model, a Hugging Face directory),
// <out>/checkpoints/checkpoint-<step> (resumable), <out>/train-log.json (loss curves).

import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJsonFile, writeJsonAtomic } from '../io/json-file.js';
import { Tokenizer } from '../io/tokenizer.js';
import { parseDecoderConfig } from '../models/config.js';
import { initModel, loadModel } from '../models/load.js';
import { readDocuments } from '../quant/calib-data.js';
import { packDocuments } from '../train/data.js';
import { latestCheckpoint, saveModelDir } from '../train/checkpoint.js';
import { meanLoss, train } from '../train/trainer.js';
import { UserError } from '../util/errors.js';
import { Progress } from './progress.js';
import { emit, parseFloatOption, parseIntOption, withRuntimeOptions, type ComputeDType } from './common.js';

const PRESETS_FILE = join(dirname(fileURLToPath(import.meta.url)), '../../../src/train/presets.json');

interface TrainCliOptions {
  model?: string;
  preset?: string;
  config?: string;
  tokenizer?: string;
  data: string[];
  out: string;
  steps: number;
  batchSize: number;
  gradAccum: number;
  seqLen: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  clip: number;
  valFraction: number;
  valRows: number;
  evalEvery: number;
  saveEvery: number;
  seed: number;
  resume?: boolean;
  device: string;
  dtype: ComputeDType;
  json?: boolean;
}

function presets(): Record<string, Record<string, unknown>> {
  const all = readJsonFile(PRESETS_FILE, 'mopt train presets') as Record<string, Record<string, unknown>>;
  return Object.fromEntries(Object.entries(all).filter(([k]) => !k.startsWith('_')));
}

/** The HF config.json object of the model to train, and the directory its tokenizer comes from. */
function modelSource(o: TrainCliOptions): { raw: Record<string, unknown>; tokenizerDir: string; fromScratch: boolean } {
  const given = [o.model, o.preset, o.config].filter((x) => x !== undefined).length;
  if (given !== 1) throw new UserError('give exactly one of --model (fine-tune a checkpoint), --preset (a size preset) or --config (a config.json) to train from scratch');
  if (o.model !== undefined) return { raw: readJsonFile(join(o.model, 'config.json'), 'model config') as Record<string, unknown>, tokenizerDir: o.tokenizer ?? o.model, fromScratch: false };
  if (o.tokenizer === undefined) throw new UserError('training from scratch needs --tokenizer DIR (a directory with tokenizer.json)');
  let raw: Record<string, unknown>;
  if (o.preset !== undefined) {
    const p = presets()[o.preset];
    if (p === undefined) throw new UserError(`--preset ${o.preset}: unknown (known: ${Object.keys(presets()).join(', ')})`);
    raw = { ...p };
  } else {
    raw = readJsonFile(o.config!, 'model config') as Record<string, unknown>;
  }
  return { raw, tokenizerDir: o.tokenizer, fromScratch: true };
}

export function registerTrain(program: Command): void {
  withRuntimeOptions(program.command('train'))
    .description(
      'Train a Llama-family model: from scratch (--preset mopt-tiny|mopt-small or --config config.json, with --tokenizer) or by ' +
        'fine-tuning a Hugging Face checkpoint (--model). Text is packed into rows of --seq-len tokens; AdamW with warmup + cosine ' +
        'decay, gradient accumulation and clipping; validation loss every --eval-every steps; resumable checkpoints every --save-every ' +
        'steps (--resume continues the newest under --out). With --dtype bfloat16 or float16 the optimizer keeps float32 master weights.',
    )
    .option('--model <dir>', 'Hugging Face checkpoint to fine-tune')
    .option('--preset <name>', 'size preset to train from scratch (src/train/presets.json): mopt-tiny, mopt-small')
    .option('--config <file>', 'config.json to train from scratch')
    .option('--tokenizer <dir>', 'directory with tokenizer.json (default: --model)')
    .requiredOption('--data <files...>', 'training text: .txt, .jsonl ({"text": ...} per line) or .json array')
    .requiredOption('--out <dir>', 'output: <out>/model, <out>/checkpoints, <out>/train-log.json')
    .option('--steps <n>', 'optimizer steps', parseIntOption('--steps', 1), 1000)
    .option('--batch-size <n>', 'rows per micro-batch', parseIntOption('--batch-size', 1), 8)
    .option('--grad-accum <n>', 'micro-batches per optimizer step', parseIntOption('--grad-accum', 1), 1)
    .option('--seq-len <n>', 'tokens per row', parseIntOption('--seq-len', 2), 256)
    .option('--lr <x>', 'peak learning rate', parseFloatOption('--lr', 0, 10), 1e-3)
    .option('--min-lr <x>', 'learning rate at the end of the cosine decay', parseFloatOption('--min-lr', 0, 10), 1e-4)
    .option('--warmup <n>', 'linear warmup steps', parseIntOption('--warmup', 0), 100)
    .option('--weight-decay <x>', 'AdamW decoupled weight decay', parseFloatOption('--weight-decay', 0, 10), 0.1)
    .option('--clip <x>', 'global gradient-norm clip (0: off)', parseFloatOption('--clip', 0, 1e9), 1)
    .option('--val-fraction <x>', 'share of the packed rows held out for validation', parseFloatOption('--val-fraction', 0, 0.5), 0.05)
    .option('--val-rows <n>', 'at most this many held-out rows per validation loss', parseIntOption('--val-rows', 1), 64)
    .option('--eval-every <n>', 'steps between validation losses', parseIntOption('--eval-every', 1), 100)
    .option('--save-every <n>', 'steps between checkpoints', parseIntOption('--save-every', 1), 200)
    .option('--seed <n>', 'initialisation and batch-order seed', parseIntOption('--seed', 0), 0)
    .option('--resume', 'continue from the newest checkpoint under --out')
    .option('--json', 'print the summary as JSON')
    .action((o: TrainCliOptions) => {
      if (!(o.lr > 0)) throw new UserError('--lr must be greater than 0');
      if (o.minLr > o.lr) throw new UserError(`--min-lr ${o.minLr} is above --lr ${o.lr}`);
      const { raw, tokenizerDir, fromScratch } = modelSource(o);
      if (!existsSync(join(tokenizerDir, 'tokenizer.json'))) throw new UserError(`${tokenizerDir} has no tokenizer.json`);
      const tok = Tokenizer.fromModelDir(tokenizerDir);
      const tokCfg = existsSync(join(tokenizerDir, 'config.json')) ? (JSON.parse(readFileSync(join(tokenizerDir, 'config.json'), 'utf8')) as Record<string, unknown>) : {};
      if (fromScratch) {
        raw.vocab_size ??= tok.vocabSize;
        raw.bos_token_id ??= tokCfg.bos_token_id ?? tok.bosId;
        raw.eos_token_id ??= tokCfg.eos_token_id ?? tok.eosId;
      }
      const config = parseDecoderConfig(raw, o.model ? join(o.model, 'config.json') : o.config ?? `preset ${o.preset}`);
      if (config.vocabSize < tok.vocabSize) throw new UserError(`the tokenizer has ${tok.vocabSize} tokens but the model's vocab_size is ${config.vocabSize}`);
      const docs = o.data.flatMap((f) => readDocuments(f));
      const eos = config.eosTokenIds[0] ?? null;
      const packed = packDocuments(tok, docs, o.seqLen, o.valFraction, eos, o.data.join(', '));
      const data = { ...packed, val: packed.val.slice(0, o.valRows) };
      const resume = o.resume ? latestCheckpoint(join(o.out, 'checkpoints')) : null;
      if (o.resume && resume === null) throw new UserError(`--resume: no checkpoint under ${join(o.out, 'checkpoints')}`);
      const load = { dtype: o.dtype, device: o.device };
      const model = resume !== null ? loadModel(resume, load) : fromScratch ? initModel(config, o.seed, load) : loadModel(o.model!, load);
      const bar = new Progress('train', o.steps, ' steps');
      bar.tick(resume === null ? 0 : Number(/checkpoint-(\d+)$/.exec(resume)![1]));
      const state = train(model, raw, tokenizerDir, data, o.out, {
        steps: o.steps, batch: o.batchSize, accum: o.gradAccum, lr: o.lr, minLr: o.minLr, warmup: o.warmup, weightDecay: o.weightDecay,
        clip: o.clip, evalEvery: o.evalEvery, saveEvery: o.saveEvery, seed: o.seed, masterWeights: o.dtype !== 'float32',
      }, resume, {
        onStep: (p) => bar.tick(1, `loss ${p.loss.toFixed(3)} ${Math.round(p.tokensPerS ?? 0)} tok/s`),
      });
      bar.finish();
      saveModelDir(join(o.out, 'model'), model, raw, tokenizerDir);
      const val = data.val.length > 0 ? meanLoss(model, data.val, o.batchSize) : null;
      const summary = {
        out: join(o.out, 'model'), steps: state.step, trainRows: data.train.length, valRows: data.val.length, tokens: data.tokens,
        parameters: model.parameters().reduce((s, p) => s + p.size, 0), finalTrainLoss: state.train.at(-1)?.loss ?? null, valLoss: val,
        valPerplexity: val === null ? null : Math.exp(val),
      };
      writeJsonAtomic(join(o.out, 'train-log.json'), { summary, train: state.train, val: state.val });
      emit(o.json === true, summary, [
        `trained ${summary.parameters.toLocaleString()} parameters for ${state.step} steps on ${data.train.length} rows of ${o.seqLen} tokens`,
        `final train loss ${summary.finalTrainLoss?.toFixed(4)}; validation loss ${val?.toFixed(4) ?? '-'} (perplexity ${summary.valPerplexity?.toFixed(2) ?? '-'})`,
        `model in ${summary.out}; loss curves in ${join(o.out, 'train-log.json')}`,
      ].join('\n'));
    });
}
