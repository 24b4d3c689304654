// The training loop of `mopt train`: AdamW with linear warmup + cosine decay, gradient accumulation over
// micro-batches, global-norm clipping, periodic validation loss, and checkpoints every saveEvery steps that a
// later run resumes from (losing at most the steps since the last one). Batches depend only on (seed, step)
// (data.ts BatchSampler), so a resumed run continues exactly as the interrupted one would have.

import { join } from 'node:path';
import { readdirSync, rmSync } from 'node:fs';
import type { DecoderLM } from '../models/decoder.js';
import { crossEntropy } from '../nn/functional.js';
import { AdamW, clipGradNorm, warmupCosineLr } from '../nn/optim.js';
import { mul, noGrad, slice, tensor, tidy } from '../tensor/index.js';
import { UserError } from '../util/errors.js';
import { BatchSampler, type PackedData } from './data.js';
import { latestCheckpoint, restoreCheckpoint, saveCheckpoint, sweepStale, type LossPoint, type TrainerState } from './checkpoint.js';

export interface TrainOptions {
  steps: number;
  /** rows per micro-batch */
  batch: number;
  /** micro-batches per optimizer step */
  accum: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  clip: number;
  evalEvery: number;
  saveEvery: number;
  seed: number;
  /** float32 master weights and moments for bf16/f16 parameters (mixed precision) */
  masterWeights: boolean;
}

export interface TrainHooks {
  onStep?: (p: LossPoint) => void;
  onEval?: (p: LossPoint) => void;
  /** stop after this many optimizer steps of this run (tests: a run killed mid-way) */
  stopAfter?: number;
}

/** Checkpoints kept under <out>/checkpoints (older ones are removed once a newer one is complete). */
const KEEP = 2;

/** Mean next-token loss over rows (no gradients), in chunks of `batch` rows. */
export function meanLoss(model: DecoderLM, rows: readonly (readonly number[])[], batch: number): number {
  let sum = 0;
  let n = 0;
  noGrad(() => {
    for (let i = 0; i < rows.length; i += batch) {
      const chunk = rows.slice(i, i + batch);
      sum += tidy(() => lossOf(model, chunk).item()) * chunk.length;
      n += chunk.length;
    }
  });
  return sum / n;
}

function lossOf(model: DecoderLM, rows: readonly (readonly number[])[]) {
  const len = rows[0]!.length;
  const ids = tensor(rows.flat(), [rows.length, len], { dtype: 'int32', device: model.backend });
  return crossEntropy(model.forward(slice(ids, 1, 0, len - 1)), slice(ids, 1, 1, len));
}

/**
 * Trains `model` in place on `data`; checkpoints go to <out>/checkpoints/checkpoint-<step>. With `resume`, the
 * optimizer and trainer state come from that checkpoint (the model must have been loaded from it).
 */
export function train(
  model: DecoderLM, config: Record<string, unknown>, tokenizerDir: string | null, data: PackedData, out: string, o: TrainOptions,
  resume: string | null, hooks: TrainHooks = {},
): TrainerState {
  const params = model.parameters();
  for (const p of params) p.requireGrad();
  const opt = new AdamW(params, { lr: 0, weightDecay: o.weightDecay, masterWeights: o.masterWeights });
  const settings = {
    batch: o.batch, accum: o.accum, seed: o.seed, seqLen: data.train[0]!.length - 1, trainRows: data.train.length, masterWeights: o.masterWeights,
    lr: o.lr, minLr: o.minLr, warmup: o.warmup, weightDecay: o.weightDecay, clip: o.clip,
  };
  let state: TrainerState = { step: 0, train: [], val: [], settings };
  if (resume !== null) {
    state = restoreCheckpoint(resume, model, opt);
    const changed = Object.keys(settings).filter((k) => JSON.stringify(state.settings[k]) !== JSON.stringify(settings[k as keyof typeof settings]));
    if (changed.length > 0) throw new UserError(`--resume ${resume}: ${changed.join(', ')} differ from the interrupted run (${changed.map((k) => `${JSON.stringify(state.settings[k])} then`).join(', ')}); resume with the same data and batch settings`);
  }
  const sampler = new BatchSampler(data.train.length, o.seed);
  const root = join(out, 'checkpoints');
  sweepStale(root);
  if (resume === null && latestCheckpoint(root) !== null) {
    throw new UserError(`${root} holds checkpoints of an earlier run; pass --resume to continue it, or choose another --out`);
  }
  const tokensPerStep = o.batch * o.accum * settings.seqLen;
  let ran = 0;
  // the optimizer's state and the gradients are freed however the loop ends (a library caller may train again)
  try {
    for (let step = state.step; step < o.steps; step++) {
      const t0 = performance.now();
      opt.lr = warmupCosineLr(step, { peak: o.lr, warmupSteps: o.warmup, totalSteps: o.steps, minLr: o.minLr });
      let loss = 0;
      for (let micro = 0; micro < o.accum; micro++) {
        const rows = sampler.rows(step, micro, o.accum, o.batch).map((r) => data.train[r]!);
        loss += tidy(() => {
          const l = lossOf(model, rows);
          mul(l, 1 / o.accum).backward();
          return l.item();
        });
      }
      if (o.clip > 0) clipGradNorm(params, o.clip);
      opt.update();
      opt.zeroGrad();
      const point: LossPoint = { step: step + 1, loss: loss / o.accum, lr: opt.lr, tokensPerS: tokensPerStep / ((performance.now() - t0) / 1e3) };
      if (!Number.isFinite(point.loss)) throw new UserError(`training diverged: loss ${point.loss} at step ${step + 1}; lower --lr or raise --warmup`);
      state.train.push(point);
      hooks.onStep?.(point);
      const last = step + 1 === o.steps;
      if (data.val.length > 0 && ((step + 1) % o.evalEvery === 0 || last)) {
        const v = { step: step + 1, loss: meanLoss(model, data.val, o.batch) };
        state.val.push(v);
        hooks.onEval?.(v);
      }
      state.step = step + 1;
      if ((step + 1) % o.saveEvery === 0 || last) {
        saveCheckpoint(join(root, `checkpoint-${step + 1}`), model, config, tokenizerDir, opt, state);
        prune(root);
      }
      if (hooks.stopAfter !== undefined && ++ran >= hooks.stopAfter) break;
    }
  } finally {
    for (const p of params) {
      p.grad?.dispose();
      p.grad = null;
      p.requireGrad(false);
    }
    opt.dispose();
  }
  return state;
}

function prune(root: string): void {
  const steps = readdirSync(root).map((n) => /^checkpoint-(\d+)$/.exec(n)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1])).sort((a, b) => b - a);
  for (const s of steps.slice(KEEP)) rmSync(join(root, `checkpoint-${s}`), { recursive: true, force: true });
}
