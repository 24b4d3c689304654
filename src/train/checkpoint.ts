// Training checkpoints: a directory that is both a Hugging Face model (config.json, model.safetensors, the
// tokenizer files), so every mopt command loads it, and a resumable training state (optimizer.safetensors:
// AdamW moments and float32 master weights by parameter name; trainer_state.json: step and loss history).
// Written beside their final name and renamed when complete, so a run killed mid-save leaves the previous
// checkpoint intact.

import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { readJsonFile, writeJsonAtomic } from '../io/json-file.js';
import type { DecoderLM } from '../models/decoder.js';
import type { AdamW } from '../nn/optim.js';
import { fromStorage, keep, tidy, type Tensor } from '../tensor/index.js';
import { UserError } from '../util/errors.js';

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

export interface LossPoint {
  step: number;
  loss: number;
  lr?: number;
  tokensPerS?: number;
}

export interface TrainerState {
  /** optimizer steps done */
  step: number;
  train: LossPoint[];
  val: LossPoint[];
  /** the run's settings that must not change on resume */
  settings: Record<string, unknown>;
}

const raw = (t: Tensor): RawTensor => ({ dtype: t.dtype, shape: [...t.shape], data: t.toStorageArray() });

/** Writes the model (+ tokenizer files from tokenizerDir) as a Hugging Face directory, atomically. */
export function saveModelDir(dir: string, model: DecoderLM, config: Record<string, unknown>, tokenizerDir: string | null, extra?: (tmp: string) => void): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    writeSafetensors(join(tmp, 'model.safetensors'), new Map([...model.params].map(([n, t]) => [n, raw(t)])), { format: 'pt' });
    // torch_dtype names the dtype the weights are stored in (transformers loads them as that by default)
    writeJsonAtomic(join(tmp, 'config.json'), { ...config, torch_dtype: model.dtype });
    if (tokenizerDir !== null) for (const f of TOKENIZER_FILES) if (existsSync(join(tokenizerDir, f))) copyFileSync(join(tokenizerDir, f), join(tmp, f));
    extra?.(tmp);
    // the old directory moves aside before the new one takes its name, so a crash leaves one of them whole
    const old = `${dir}.old-${process.pid}`;
    if (existsSync(dir)) renameSync(dir, old);
    renameSync(tmp, dir);
    rmSync(old, { recursive: true, force: true });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** A checkpoint: the model directory plus the optimizer and trainer state. */
export function saveCheckpoint(dir: string, model: DecoderLM, config: Record<string, unknown>, tokenizerDir: string | null, opt: AdamW, state: TrainerState): void {
  saveModelDir(dir, model, config, tokenizerDir, (tmp) => {
    const s = opt.state();
    const names = [...model.params.keys()];
    const tensors = new Map<string, RawTensor>();
    names.forEach((n, i) => {
      for (const [kind, list] of [['m', s.m], ['v', s.v], ['master', s.master]] as const) {
        const t = list[i];
        if (t) tensors.set(`${kind}.${n}`, raw(t));
      }
    });
    writeSafetensors(join(tmp, 'optimizer.safetensors'), tensors);
    writeJsonAtomic(join(tmp, 'trainer_state.json'), { ...state, optimizerStep: s.step });
  });
}

/** Removes what killed runs left under `root`: staged (.tmp-PID) and set-aside (.old-PID) directories. */
export function sweepStale(root: string): void {
  if (!existsSync(root)) return;
  for (const n of readdirSync(root)) if (/\.(tmp|old)-\d+$/.test(n)) rmSync(join(root, n), { recursive: true, force: true });
}

/** The newest complete checkpoint under `root` (checkpoint-<step>), or null. */
export function latestCheckpoint(root: string): string | null {
  if (!existsSync(root)) return null;
  const steps = readdirSync(root).map((n) => /^checkpoint-(\d+)$/.exec(n)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1]));
  if (steps.length === 0) return null;
  return join(root, `checkpoint-${Math.max(...steps)}`);
}

/** Loads a checkpoint's optimizer and trainer state into `opt` (the model was loaded from the same directory). */
export function restoreCheckpoint(dir: string, model: DecoderLM, opt: AdamW): TrainerState {
  const state = readJsonFile(join(dir, 'trainer_state.json'), 'trainer state') as TrainerState & { optimizerStep?: number };
  if (typeof state.step !== 'number' || !Array.isArray(state.train)) throw new UserError(`${dir}/trainer_state.json is incomplete; resume from an earlier checkpoint`);
  const f = SafetensorsFile.open(join(dir, 'optimizer.safetensors'));
  try {
    const names = [...model.params.keys()];
    const load = (key: string): Tensor | null => {
      if (!f.has(key)) return null;
      const r = f.read(key);
      return tidy(() => keep(fromStorage(r.data, r.shape, r.dtype, { device: model.backend })));
    };
    opt.restore({
      step: state.optimizerStep ?? state.step,
      m: names.map((n) => load(`m.${n}`)),
      v: names.map((n) => load(`v.${n}`)),
      master: names.map((n) => load(`master.${n}`)),
    });
  } finally {
    f.close();
  }
  return state;
}
