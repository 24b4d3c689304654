// mopt quantize: post-training quantization with calibration, then a quality report. The output directory
// holds report.json, report.html and the quantization state (mopt-quant.json), which `mopt eval` / `generate` /
// `forward` accept as --model; writing deployable checkpoints is issue #5.

import type { Command } from 'commander';
import { mkdirSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../util/errors.js';
import { atomicWriteFile, writeJsonAtomic } from '../io/json-file.js';
import { renderHtml } from '../quant/report-html.js';
import { loadModel } from '../models/load.js';
import { perplexity } from '../eval/perplexity.js';
import { Progress } from './progress.js';
import { emit, parseFloatOption, parseIntOption, requireModelDir, requireTokenizer, type ComputeDType, withRuntimeOptions } from './common.js';
import { Tokenizer } from '../io/tokenizer.js';
import { ALGORITHMS, PRESET_NAMES, KV_PRESET_NAMES, applyGroupSize, parseRecipe, presetRecipe, recipeToData, type Algorithm, type Recipe } from '../quant/recipes/index.js';
import { CALIBRATORS, type CalibratorName } from '../quant/calib/calibrators.js';
import { calibrationSplit, readDocuments, tokenWindows } from '../quant/calib-data.js';
import { QuantizedModel, linearNames } from '../quant/ptq.js';
import { formatReport, meanKl, quantizerRows, sizeSummary, type QuantReport } from '../quant/report.js';
import { isQuantDir, savePrequantized, saveState } from '../quant/state.js';
import { gptq } from '../quant/algorithms/gptq.js';
import { weightMse } from '../quant/algorithms/weight-mse.js';
import { smoothQuant } from '../quant/algorithms/smoothquant.js';
import { awqLite } from '../quant/algorithms/awq.js';
import { awqClip } from '../quant/algorithms/awq-clip.js';
import { prepareModelopt, writeModelopt } from '../export/modelopt-export.js';
import { quantAlgoOf } from '../export/modelopt-format.js';


interface QuantizeOptions {
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
  overwrite?: boolean;
  device: string;
  dtype: ComputeDType;
  json?: boolean;
}

const EXPORT_FORMATS = ['modelopt'];

function buildRecipe(o: QuantizeOptions): Recipe {
  if ((o.format === undefined) === (o.recipe === undefined)) throw new UserError('give exactly one of --format (a preset) or --recipe (a JSON/YAML file)');
  let recipe: Recipe;
  if (o.format !== undefined) {
    recipe = presetRecipe(o.format, o.kvCache);
  } else {
    if (o.kvCache !== undefined) throw new UserError('--kv-cache goes with --format; put the KV-cache rules (*[kv]_bmm_quantizer) in the recipe file instead');
    if (!existsSync(o.recipe!)) throw new UserError(`--recipe ${o.recipe} does not exist`);
    recipe = parseRecipe(readFileSync(o.recipe!, 'utf8'), o.recipe!);
  }
  if (o.groupSize !== undefined) recipe = applyGroupSize(recipe, o.groupSize);
  if (o.algorithm !== undefined) {
    if (!(ALGORITHMS as readonly string[]).includes(o.algorithm)) throw new UserError(`--algorithm ${o.algorithm}: unknown (known: ${ALGORITHMS.join(', ')})`);
    recipe = { ...recipe, algorithm: o.algorithm as Algorithm };
  }
  return recipe;
}

export function registerQuantize(program: Command): void {
  withRuntimeOptions(program.command('quantize'))
    .description('Post-training quantization: calibrate on text, fake-quantize, and report the quality cost (perplexity, KL, SQNR, size).')
    .requiredOption('--model <dir>', 'Hugging Face model directory (not modified)')
    .option('--format <preset>', `Model Optimizer preset: ${PRESET_NAMES.join(', ')}`)
    .option('--recipe <file>', 'recipe file (JSON or YAML): ordered glob rules over quantizer names, last match wins')
    .option('--kv-cache <format>', `also quantize the KV cache: ${KV_PRESET_NAMES.join(', ')}`)
    .option('--algorithm <name>', `override the preset's algorithm: ${ALGORITHMS.join(', ')}`)
    .option('--calibrator <name>', `activation calibrator: ${CALIBRATORS.join(', ')} (histogram methods for fp8/int8)`, 'max')
    .option('--sq-alpha <a>', 'SmoothQuant migration strength in [0, 1] (Model Optimizer default 1.0; the paper uses 0.5)', parseFloatOption('--sq-alpha', 0, 1), 1)
    .option('--group-size <n>', 'INT4 group size: 32, 64 or 128', parseIntOption('--group-size', 1))
    .requiredOption('--calib-data <file>', 'calibration text: .txt, .jsonl ({"text": ...} per line) or .json array')
    .option('--calib-samples <n>', 'calibration windows', parseIntOption('--calib-samples', 1), 64)
    .option('--seq-len <n>', 'tokens per window', parseIntOption('--seq-len', 2), 512)
    .option('--eval-data <file>', 'held-out text for the report (default: the calibration file after the calibration windows)')
    .option('--eval-windows <n>', 'held-out windows to score', parseIntOption('--eval-windows', 0), 16)
    .requiredOption('--out <dir>', 'output directory: report.json and the quantization state (and the checkpoint with --export-format)')
    .option('--export-format <name>', `also write --out as a deployable checkpoint: ${EXPORT_FORMATS.join(', ')} (see mopt export)`)
    .option('--overwrite', 'with --export-format: replace a non-empty --out')
    .option('--json', 'print the report as JSON')
    .action((o: QuantizeOptions) => {
      requireModelDir(o.model);
      if (isQuantDir(o.model)) throw new UserError(`--model ${o.model} is already a mopt quantization output; point --model at the original checkpoint`);
      if (resolve(o.out) === resolve(o.model)) throw new UserError(`--out ${o.out} is the model directory; mopt never writes into its input, choose another --out`);
      if (!(CALIBRATORS as readonly string[]).includes(o.calibrator)) throw new UserError(`--calibrator ${o.calibrator}: unknown (known: ${CALIBRATORS.join(', ')})`);
      const recipe = buildRecipe(o);
      if (o.exportFormat !== undefined) {
        if (!EXPORT_FORMATS.includes(o.exportFormat)) throw new UserError(`--export-format ${o.exportFormat} is not available; formats: ${EXPORT_FORMATS.join(', ')}`);
        quantAlgoOf(o.format ?? null, o.kvCache ?? null, null); // an unexportable preset fails before the long work
        if (existsSync(o.out) && readdirSync(o.out).length > 0 && !o.overwrite) throw new UserError(`--out ${o.out} exists and is not empty; pass --overwrite to replace it`);
      }
      const tok = requireTokenizer(Tokenizer.tryFromModelDir(o.model), o.model, 'calibration text needs the model tokenizer');
      const split = calibrationSplit(tok, o.calibData, o.calibSamples, o.seqLen, o.evalData === undefined ? o.evalWindows : 0);
      const evalRows = o.evalData === undefined ? split.heldOut : tokenWindows(tok, readDocuments(o.evalData), o.seqLen, o.evalWindows);

      const load = () => loadModel(o.model, { dtype: o.dtype, device: o.device });
      const base = load();
      const q = new QuantizedModel(load(), recipe);
      const needAmax = q.calibrated();
      if (recipe.algorithm === 'none' && needAmax.length > 0) {
        throw new UserError(`algorithm none calibrates nothing, but ${needAmax[0]!.name} (${needAmax[0]!.scheme!.kind}) needs a calibrated amax; use --algorithm max (Model Optimizer uses none only for dynamic formats such as MX)`);
      }
      const evalTokens = evalRows.reduce((s, r) => s + r.length - 1, 0);
      let before = null;
      if (evalRows.length > 0) {
        const bar = new Progress('ppl (original)', evalTokens, ' tok');
        before = perplexity(base, evalRows, (n) => bar.tick(n));
        bar.finish();
      }
      const passes = { smoothquant: 1, awq_lite: 2, awq_clip: 1, awq_full: 3 }[recipe.algorithm as string];
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
      const exported = o.exportFormat === undefined ? null : prepareModelopt(q, o.model, { preset: o.format ?? null, kvCache: o.kvCache ?? null });
      const wbar: { p: Progress | null } = { p: null }; // created once apply() knows how many weights change
      q.apply((_done, total) => {
        wbar.p ??= new Progress('quantize weights', total, ' weights');
        wbar.p.tick(1);
      });
      wbar.p?.finish();
      let after = null;
      let kl = null;
      if (evalRows.length > 0) {
        const bar = new Progress('ppl (quantized)', evalTokens, ' tok');
        after = perplexity(q.model, evalRows, (n) => bar.tick(n));
        bar.finish();
        const kbar = new Progress('KL', evalRows.length * o.seqLen, ' tok');
        kl = meanKl(base, q.model, evalRows, (n) => kbar.tick(n));
        kbar.finish();
      }
      const report: QuantReport = {
        recipe: { preset: o.format ?? null, algorithm: recipe.algorithm, calibrator: o.calibrator, kvCache: o.kvCache ?? null, ...(recipe.algorithm === 'smoothquant' ? { sqAlpha: o.sqAlpha } : {}) },
        calibration: { samples: split.calib.length, seqLen: o.seqLen, tokens: split.calib.length * o.seqLen },
        evaluation: { windows: evalRows.length, tokens: evalTokens, before, after, kl },
        size: sizeSummary(q, linearNames(q.model).map((n) => `${n}.weight`)),
        quantizers: quantizerRows(q),
        weights: q.weightStats,
      };
      const writeOutputs = (dir: string): void => {
        mkdirSync(dir, { recursive: true });
        writeJsonAtomic(join(dir, 'report.json'), report);
        atomicWriteFile(join(dir, 'report.html'), renderHtml(report));
        const weights = savePrequantized(dir, q);
        saveState(dir, { ...(weights ? { weights } : {}), source: o.model, preset: o.format ?? null, kvCache: o.kvCache ?? null, calibrator: o.calibrator, recipe: recipeToData(recipe), amax: q.amaxValues(), smooth: q.smoothValues() });
      };
      if (exported === null) writeOutputs(o.out);
      else writeModelopt(exported, o.out, { overwrite: o.overwrite, alsoWrite: writeOutputs });
      const also = exported === null ? '' : ` and a ${exported.algo.quantAlgo} Model Optimizer checkpoint`;
      emit(o.json === true, report, `${formatReport(report)}\nwrote ${join(o.out, 'report.json')}, report.html and mopt-quant.json${also}`);
    });
}
