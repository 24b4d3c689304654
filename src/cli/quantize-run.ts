// The work of one `mopt quantize` run, shared by a single preset and by --format all (which calibrates and
// scores every preset on the same windows): calibration data and the original model's perplexity once
// (prepareRun), then per recipe the algorithm, calibration, fake quantization, the report and the outputs
// (quantizeOnce), and the comparison table of --format all.

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWriteFile, writeJsonAtomic } from '../io/json-file.js';
import { renderHtml } from '../quant/report-html.js';
import { loadModel } from '../models/load.js';
import type { DecoderLM } from '../models/decoder.js';
import { perplexity, type PerplexityResult } from '../eval/perplexity.js';
import { Progress } from './progress.js';
import { requireTokenizer, type ComputeDType, type OnnxInt4 } from './common.js';
import { Tokenizer } from '../io/tokenizer.js';
import { recipeToData, type Recipe } from '../quant/recipes/index.js';
import type { CalibratorName } from '../quant/calib/calibrators.js';
import { calibrationSplit, readDocuments, tokenWindows, type CalibrationSplit } from '../quant/calib-data.js';
import { QuantizedModel, linearNames } from '../quant/ptq.js';
import { quantizerRows, scoreAgainst, sizeSummary, type QuantReport } from '../quant/report.js';
import { savePrequantized, saveState } from '../quant/state.js';
import { algorithmPasses, runAlgorithm } from '../quant/algorithms/run.js';
import { calibrateLayerwise, installLayerwise, planOnly } from '../quant/layerwise.js';
import { onlyProgress, progressDir } from '../quant/layerwise-progress.js';
import { exportFormat } from '../export/registry.js';
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import { DTYPE_INFO } from '../tensor/dtype.js';
import { UserError } from '../util/errors.js';

export interface QuantizeOptions {
  model: string;
  format?: string;
  recipe?: string;
  kvCache?: string;
  algorithm?: string;
  calibrator: string;
  sqAlpha: number;
  groupSize?: number;
  calibData: string;
  calibSamples: number;
  seqLen: number;
  evalData?: string;
  evalWindows: number;
  out: string;
  exportFormat?: string;
  onnxInt4?: OnnxInt4;
  ggufType?: string;
  overwrite?: boolean;
  device: string;
  dtype: ComputeDType;
  json?: boolean;
  /** calibrate one decoder layer at a time (src/quant/layerwise.ts), resumable from OUT/layerwise-progress */
  layerwise?: boolean;
}

export interface RunContext {
  o: QuantizeOptions;
  split: CalibrationSplit;
  evalRows: number[][];
  evalTokens: number;
  /** the original model, kept for scoring; null with --layerwise (loaded only while scoring) */
  base: DecoderLM | null;
  before: PerplexityResult | null;
}

/** Frees a model's parameters (device memory is never left to the garbage collector). */
function disposeModel(m: DecoderLM): void {
  for (const t of m.params.values()) t.dispose();
}

/** Calibration and evaluation windows, the original model and its perplexity; `recipes` are checked first. */
export function prepareRun(o: QuantizeOptions, recipes: readonly Recipe[]): RunContext {
  const tok = requireTokenizer(Tokenizer.tryFromModelDir(o.model), o.model, 'calibration text needs the model tokenizer');
  const split = calibrationSplit(tok, o.calibData, o.calibSamples, o.seqLen, o.evalData === undefined ? o.evalWindows : 0);
  const evalRows = o.evalData === undefined ? split.heldOut : tokenWindows(tok, readDocuments(o.evalData), o.seqLen, o.evalWindows);

  // with --layerwise the whole model is on the device only while the held-out text is scored
  const load = () => loadModel(o.model, { dtype: o.dtype, device: o.device });
  const base = o.layerwise === true ? null : load();
  for (const recipe of recipes) {
    // the plan alone (it does not change the model) says whether the recipe can run, before any long work
    const needAmax = (base === null ? planOnly(o.model, recipe, { dtype: o.dtype, device: o.device }) : new QuantizedModel(base, recipe)).calibrated();
    if (recipe.algorithm === 'none' && needAmax.length > 0) {
      throw new UserError(`algorithm none calibrates nothing, but ${needAmax[0]!.name} (${needAmax[0]!.scheme!.kind}) needs a calibrated amax; use --algorithm max (Model Optimizer uses none only for dynamic formats such as MX)`);
    }
  }
  const evalTokens = evalRows.reduce((s, r) => s + r.length - 1, 0);
  let before = null;
  if (evalRows.length > 0) {
    const bar = new Progress('ppl (original)', evalTokens, ' tok');
    const m = base ?? load();
    before = perplexity(m, evalRows, (n) => bar.tick(n));
    if (base === null) disposeModel(m);
    bar.finish();
  }
  return { o, split, evalRows, evalTokens, base, before };
}

/** One recipe: algorithm, calibration, fake quantization, report; outputs in `out` (with a checkpoint when exportTo is set). */
export function quantizeOnce(ctx: RunContext, recipe: Recipe, preset: string | null, out: string, exportTo: { format: string; overwrite?: boolean } | null): { report: QuantReport; exported: string | null; exportNotes: string[] } {
  const { o, split, evalRows, evalTokens, base, before } = ctx;
  const load = () => loadModel(o.model, { dtype: o.dtype, device: o.device });
  const restrict = (p: QuantizedModel): void => {
    // the export target may rule out parts of the plan before the algorithms run (e.g. smoothing it cannot fold)
    if (exportTo !== null) exportFormat(exportTo.format).restrictPlan?.(p);
  };
  const layerwiseDir = o.layerwise === true ? progressDir(out) : null;
  let q: QuantizedModel;
  if (layerwiseDir !== null) {
    // calibration one layer at a time; the whole model is loaded only afterwards, to apply and score
    const plan = planOnly(o.model, recipe, { dtype: o.dtype, device: o.device });
    restrict(plan);
    const result = calibrateLayerwise({
      model: o.model, dtype: o.dtype, device: o.device, recipe, calibrator: o.calibrator as CalibratorName, sqAlpha: o.sqAlpha,
      batches: split.calib, noSmoothing: plan.noSmoothing, progressDir: layerwiseDir,
      progress: (label, total) => new Progress(`calibrate ${label}`, total, ' windows'),
      onResume: (done, total) => process.stderr.write(`resuming layer-by-layer calibration from ${layerwiseDir}: ${done} of ${total} stages already done\n`),
    });
    q = new QuantizedModel(load(), recipe);
    restrict(q);
    installLayerwise(q, result);
  } else {
    q = new QuantizedModel(load(), recipe);
    restrict(q);
    wholeModelCalibration(q, recipe, split.calib, o);
  }
  // the checkpoint's codes come from the source weights, before apply() replaces them
  const exported = exportTo === null ? null : exportFormat(exportTo.format).prepare(q, o.model, { preset, kvCache: o.kvCache ?? null, onnxInt4: o.onnxInt4, ggufType: o.ggufType, calibration: split.calib });
  const wbar: { p: Progress | null } = { p: null }; // created once apply() knows how many weights change
  q.apply((_done, total) => {
    wbar.p ??= new Progress('quantize weights', total, ' weights');
    wbar.p.tick(1);
  });
  wbar.p?.finish();
  let after = null;
  let kl = null;
  if (evalRows.length > 0) {
    // perplexity and KL from one pass over the held-out windows (both models once per window)
    const bar = new Progress('ppl + KL (quantized)', evalRows.reduce((t, r) => t + r.length, 0), ' tok');
    const reference = base ?? load();
    const scored = scoreAgainst(reference, q.model, evalRows, (n) => bar.tick(n));
    if (base === null) disposeModel(reference);
    bar.finish();
    after = scored.ppl;
    kl = scored.kl;
  }
  const report: QuantReport = {
    recipe: { preset, algorithm: recipe.algorithm, calibrator: o.calibrator, kvCache: o.kvCache ?? null, ...(recipe.algorithm === 'smoothquant' ? { sqAlpha: o.sqAlpha } : {}) },
    calibration: { samples: split.calib.length, seqLen: o.seqLen, tokens: split.calib.length * o.seqLen },
    evaluation: { windows: evalRows.length, tokens: evalTokens, before, after, kl },
    size: sizeSummary(q, linearNames(q.model).map((n) => `${n}.weight`), storedBits(o.model)),
    quantizers: quantizerRows(q),
    weights: q.weightStats,
  };
  const writeOutputs = (dir: string): void => {
    mkdirSync(dir, { recursive: true });
    writeJsonAtomic(join(dir, 'report.json'), report);
    atomicWriteFile(join(dir, 'report.html'), renderHtml(report));
    const weights = savePrequantized(dir, q);
    saveState(dir, { ...(weights ? { weights } : {}), source: o.model, preset, kvCache: o.kvCache ?? null, calibrator: o.calibrator, recipe: recipeToData(recipe), amax: q.amaxValues(), smooth: q.smoothValues() });
  };
  if (exported === null) writeOutputs(out);
  // an export replaces --out as a whole: a directory holding only this run's layerwise progress is no user data
  const overwrite = exportTo?.overwrite === true || (layerwiseDir !== null && onlyProgress(out));
  const summary = exported === null ? null : exported.write(out, { overwrite, alsoWrite: writeOutputs });
  // the outputs are complete: the progress of a layerwise run is no longer needed
  if (layerwiseDir !== null) rmSync(layerwiseDir, { recursive: true, force: true });
  return { report, exported: exported?.quantAlgo ?? null, exportNotes: summary?.notes ?? [] };
}

/** The whole-model path: the recipe's algorithm over the whole model, then activation calibration. */
function wholeModelCalibration(q: QuantizedModel, recipe: Recipe, calib: readonly (readonly number[])[], o: QuantizeOptions): void {
  const passes = algorithmPasses(q, recipe.algorithm);
  if (recipe.algorithm === 'gptq') {
    const gbar = new Progress('gptq', q.quantizers.filter((p) => p.role === 'weight' && p.scheme !== null).length, ' Linears');
    let last = 0;
    runAlgorithm(q, recipe.algorithm, calib, { sqAlpha: o.sqAlpha, onLinears: (done) => {
      gbar.tick(done - last);
      last = done;
    } });
    gbar.finish();
  } else if (passes > 0) {
    const abar = new Progress(recipe.algorithm, passes * calib.length, ' windows');
    runAlgorithm(q, recipe.algorithm, calib, { sqAlpha: o.sqAlpha, onBatch: () => abar.tick(1) });
    abar.finish();
  } else {
    runAlgorithm(q, recipe.algorithm, calib, { sqAlpha: o.sqAlpha });
  }
  const cbar = new Progress('calibrate', calib.length, ' windows');
  q.calibrate(calib, o.calibrator as CalibratorName, () => cbar.tick(1));
  cbar.finish();
}

export interface ComparisonRow {
  preset: string;
  algorithm: string;
  ppl: number | null;
  pplChangePercent: number | null;
  kl: number | null;
  bitsPerWeight: number;
  bytes: number;
  unquantized: number;
}
export interface Comparison {
  pplBefore: number | null;
  sourceBytes: number;
  rows: ComparisonRow[];
}

/** The --format all table: every preset's quality cost and size on the same windows. */
export function comparison(runs: readonly { preset: string; report: QuantReport }[]): Comparison {
  const first = runs[0]?.report;
  const before = first?.evaluation.before?.ppl ?? null;
  return {
    pplBefore: before,
    sourceBytes: first?.size.sourceBytes ?? 0,
    rows: runs.map(({ preset, report: r }) => {
      const ppl = r.evaluation.after?.ppl ?? null;
      return {
        preset, algorithm: r.recipe.algorithm, ppl, pplChangePercent: ppl !== null && before !== null ? (100 * (ppl - before)) / before : null,
        kl: r.evaluation.kl?.mean ?? null, bitsPerWeight: r.size.linearBitsPerWeight, bytes: r.size.quantizedBytes,
        unquantized: r.quantizers.filter((q) => q.role === 'weight' && q.scheme === null).length,
      };
    }),
  };
}

export function formatComparison(c: Comparison): string {
  const f = (x: number | null, d: number): string => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(d));
  const lines = [`perplexity before quantization: ${f(c.pplBefore, 4)}; source ${(c.sourceBytes / 1e6).toFixed(2)} MB`, '', 'preset        algorithm    ppl        change    KL        bits/w   size MB  unquantized'];
  for (const r of c.rows) {
    lines.push(`${r.preset.padEnd(14)}${r.algorithm.padEnd(13)}${f(r.ppl, 4).padEnd(11)}${(r.pplChangePercent === null ? '-' : `${r.pplChangePercent >= 0 ? '+' : ''}${r.pplChangePercent.toFixed(2)}%`).padEnd(10)}${f(r.kl, 5).padEnd(10)}${r.bitsPerWeight.toFixed(2).padEnd(9)}${(r.bytes / 1e6).toFixed(2).padEnd(9)}${r.unquantized}`);
  }
  return lines.join('\n');
}

/** Bits per element of each tensor as the checkpoint in `dir` stores it (sizes are reported for the stored model). */
function storedBits(dir: string): (name: string) => number {
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    const bits = new Map(ckpt.names().map((n) => [n, 8 * DTYPE_INFO[ckpt.info(n).dtype].bytes]));
    return (name) => bits.get(name) ?? 32;
  } finally {
    ckpt.close();
  }
}
