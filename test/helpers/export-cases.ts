// Shared by the exporter tests (test/export/*): a preset (+ KV cache, INT4 group size, algorithm) quantized and
// calibrated on stories260K the way mopt quantize does it, TinyStories windows for calibration and held-out
// scoring, logits of one window, and scratch directories.

import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/models/load.js';
import type { LogitsModel } from '../../src/models/logits-model.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { unfoldableSmoothing } from '../../src/export/compressed-tensors-fold.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import { QuantizedModel } from '../../src/quant/ptq.js';
import { applyGroupSize, presetRecipe, type Algorithm, type Recipe } from '../../src/quant/recipes/index.js';
import { calibrationSplit } from '../../src/quant/calib-data.js';
import { smoothQuant } from '../../src/quant/algorithms/smoothquant.js';
import { awqLite } from '../../src/quant/algorithms/awq.js';
import { awqClip } from '../../src/quant/algorithms/awq-clip.js';
import { weightMse } from '../../src/quant/algorithms/weight-mse.js';
import { gptq } from '../../src/quant/algorithms/gptq.js';
import * as T from '../../src/tensor/index.js';
import { SHARED_DATA, STORIES_HF } from './paths.js';

const CALIB = join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt');

export interface ExportCase {
  /** a preset name, or a label when `recipe` is given */
  preset: string;
  /** a custom recipe instead of the preset's (the preset name is then only a label) */
  recipe?: Recipe;
  kv?: string;
  group?: number;
  algorithm?: Algorithm;
  /** smooth only where the factors fold into the preceding op (as quantizing for compressed-tensors does) */
  foldable?: boolean;
}

/**
 * The case's preset on stories260K: its algorithm, then max calibration (not applied). `beforeCalibration` runs
 * between the two (a test that edits the smoothing factors the calibration must then see).
 */
export function quantized(c: ExportCase, calib: number[][], beforeCalibration?: (q: QuantizedModel) => void): QuantizedModel {
  let recipe = c.recipe ?? presetRecipe(c.preset, c.kv);
  if (c.group !== undefined) recipe = applyGroupSize(recipe, c.group);
  if (c.algorithm !== undefined) recipe = { ...recipe, algorithm: c.algorithm };
  const q = new QuantizedModel(loadModel(STORIES_HF), recipe);
  if (c.foldable) for (const l of unfoldableSmoothing(q)) q.noSmoothing.add(l);
  const a = recipe.algorithm;
  if (a === 'smoothquant') smoothQuant(q, calib, 1.0);
  if (a === 'awq_lite' || a === 'awq_full') awqLite(q, calib);
  if (a === 'awq_clip' || a === 'awq_full') awqClip(q, calib);
  if (a === 'mse') weightMse(q);
  if (a === 'gptq') gptq(q, calib);
  beforeCalibration?.(q);
  q.calibrate(calib, 'max');
  return q;
}

export function logits(m: LogitsModel, ids: number[]): Float32Array {
  return T.noGrad(() => T.tidy(() => m.forward(T.tensor(ids, [1, ids.length], { dtype: 'int32' })).toFloat32Array()));
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export const tmp = (): string => mkdtempSync(join(tmpdir(), 'mopt-export-'));

/** Calibration (and held-out) windows of 64 TinyStories tokens, tokenized with stories260K's tokenizer. */
export const windows = (calib: number, heldOut: number) => calibrationSplit(Tokenizer.fromModelDir(STORIES_HF), CALIB, calib, 64, heldOut);

/**
 * A copy of the single-file checkpoint `good` in `dir/name` with its tensors edited by `edit` and, when given,
 * one JSON file (e.g. config.json, hf_quant_config.json) edited by `json.edit`: a broken checkpoint for a test.
 */
export function brokenCopy<J>(good: string, dir: string, name: string, edit: (t: Map<string, RawTensor>) => void, json?: { file: string; edit: (c: J) => void }): string {
  const d = join(dir, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d);
  const f = SafetensorsFile.open(join(good, 'model.safetensors'));
  const tensors = new Map(f.names().map((n) => [n, f.read(n)]));
  f.close();
  edit(tensors);
  writeSafetensors(join(d, 'model.safetensors'), tensors);
  for (const file of readdirSync(good)) if (file !== 'model.safetensors') copyFileSync(join(good, file), join(d, file));
  if (json) {
    const c = JSON.parse(readFileSync(join(d, json.file), 'utf8')) as J;
    json.edit(c);
    writeFileSync(join(d, json.file), JSON.stringify(c));
  }
  return d;
}
