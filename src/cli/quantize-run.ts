// The work of one `mopt quantize` run, shared by a single preset and by --format all (which calibrates and
// scores every preset on the same windows): calibration data and the original model's perplexity once
// (prepareRun), then per recipe the algorithm, calibration, fake quantization, the report and the outputs
// (quantizeOnce), and the comparison table of --format all.

import { mkdirSync } from 'node:fs';
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
import { gptq } from '../quant/algorithms/gptq.js';
import { weightMse } from '../quant/algorithms/weight-mse.js';
import { smoothQuant } from '../quant/algorithms/smoothquant.js';
import { awqLite, awqLitePasses } from '../quant/algorithms/awq.js';
import { awqClip } from '../quant/algorithms/awq-clip.js';
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
}

export interface RunContext {
  o: QuantizeOptions;
  split: CalibrationSplit;
  evalRows: number[][];
  evalTokens: number;
  base: DecoderLM;
  before: PerplexityResult | null;
}

/** Calibration and evaluation windows, the original model and its perplexity; `recipes` are checked first. */
export function prepareRun(o: QuantizeOptions, recipes: readonly Recipe[]): RunContext {
  const tok = requireTokenizer(Tokenizer.tryFromModelDir(o.model), o.model, 'calibration text needs the model tokenizer');
  const split = calibrationSplit(tok, o.calibData, o.calibSamples, o.seqLen, o.evalData === undefined ? o.evalWindows : 0);
  const evalRows = o.evalData === undefined ? split.heldOut : tokenWindows(tok, readDocuments(o.evalData), o.seqLen, o.evalWindows);

  const base = loadModel(o.model, { dtype: o.dtype, device: o.device });
  for (const recipe of recipes) {
    // the plan alone (it does not change the model) says whether the recipe can run, before any long work
    const needAmax = new QuantizedModel(base, recipe).calibrated();
    if (recipe.algorithm === 'none' && needAmax.length > 0) {
      throw new UserError(`algorithm none calibrates nothing, but ${needAmax[0]!.name} (${needAmax[0]!.scheme!.kind}) needs a calibrated amax; use --algorithm max (Model Optimizer uses none only for dynamic formats such as MX)`);
    }
  }
  const evalTokens = evalRows.reduce((s, r) => s + r.length - 1, 0);
  let before = null;
  if (evalRows.length > 0) {
    const bar = new Progress('ppl (original)', evalTokens, ' tok');
    before = perplexity(base, evalRows, (n) => bar.tick(n));
    bar.finish();
  }
  return { o, split, evalRows, evalTokens, base, before };
}

/** One recipe: algorithm, calibration, fake quantization, report; outputs in `out` (with a checkpoint when exportTo is set). */
export function quantizeOnce(ctx: RunContext, recipe: Recipe, preset: string | null, out: string, exportTo: { format: string; overwrite?: boolean } | null): { report: QuantReport; exported: string | null; exportNotes: string[] } {
  const { o, split, evalRows, evalTokens, base, before } = ctx;
  const load = () => loadModel(o.model, { dtype: o.dtype, device: o.device });
  const q = new QuantizedModel(load(), recipe);
  // the export target may rule out parts of the plan before the algorithms run (e.g. smoothing it cannot fold)
  if (exportTo !== null) exportFormat(exportTo.format).restrictPlan?.(q);
  const awqPasses = recipe.algorithm === 'awq_lite' || recipe.algorithm === 'awq_full' ? awqLitePasses(q) : 0;
  const passes = { smoothquant: 1, awq_lite: awqPasses, awq_clip: 1, awq_full: awqPasses + 1 }[recipe.algorithm as string];
  if (passes !== undefined) {
    const abar = new Progress(recipe.algorithm, passes * split.calib.length, ' windows');
    const tick = (): void => abar.tick(1);
    if (recipe.algorithm === 'smoothquant') smoothQuant(q, split.calib, o.sqAlpha, tick);
    if (recipe.algorithm === 'awq_lite' || recipe.algorithm === 'awq_full') awqLite(q, split.calib, tick);
    if (recipe.algorithm === 'awq_clip' || recipe.algorithm === 'awq_full') awqClip(q, split.calib, tick);
    abar.finish();
  }
  if (recipe.algorithm === 'mse') weightMse(q);
  if (recipe.algorithm === 'gptq') {
    const gbar = new Progress('gptq', q.quantizers.filter((p) => p.role === 'weight' && p.scheme !== null).length, ' Linears');
    let last = 0;
    gptq(q, split.calib, (done) => {
      gbar.tick(done - last);
      last = done;
    });
    gbar.finish();
  }
  const cbar = new Progress('calibrate', split.calib.length, ' windows');
  q.calibrate(split.calib, o.calibrator as CalibratorName, () => cbar.tick(1));
  cbar.finish();
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
    const scored = scoreAgainst(base, q.model, evalRows, (n) => bar.tick(n));
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
  const summary = exported === null ? null : exported.write(out, { overwrite: exportTo?.overwrite, alsoWrite: writeOutputs });
  return { report, exported: exported?.quantAlgo ?? null, exportNotes: summary?.notes ?? [] };
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
