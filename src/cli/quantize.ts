// mopt quantize: post-training quantization with calibration, then a quality report. The output directory
// holds report.json, report.html and the quantization state (mopt-quant.json), which `mopt eval` / `generate` /
// `forward` accept as --model; writing deployable checkpoints is issue #5.

import type { Command } from 'commander';
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeJsonAtomic } from '../io/json-file.js';
import { checkOnnxInt4, emit, ONNX_INT4_HELP, parseFloatOption, parseIntOption, parseOnnxInt4, requireModelDir, withRuntimeOptions } from './common.js';
import { ALGORITHMS, PRESET_NAMES, KV_PRESET_NAMES, applyGroupSize, parseRecipe, presetRecipe, type Algorithm, type Recipe } from '../quant/recipes/index.js';
import { CALIBRATORS } from '../quant/calib/calibrators.js';
import { formatReport } from '../quant/report.js';
import { isQuantDir } from '../quant/state.js';
import { EXPORT_FORMAT_NAMES, exportFormat } from '../export/registry.js';
import { checkExportOut } from '../export/staging.js';
import { GGUF_TYPES, parseGgufType } from '../export/gguf-export.js';
import { comparison, formatComparison, prepareRun, quantizeOnce, type QuantizeOptions } from './quantize-run.js';
import { onlyProgress } from '../quant/layerwise-progress.js';
import { BUNDLED_MODEL_NAME, bundledCalibration, bundledHeldOut, bundledModelDir } from '../models/bundled.js';

/** The main job's defaults without --model: the bundled model, its bundled text, NVFP4, small windows (minutes on a laptop CPU). */
const BUNDLED_DEFAULTS = { calibSamples: 32, seqLen: 256, out: 'mopt-out' };

function buildRecipe(o: QuantizeOptions): Recipe {
  if ((o.format === undefined) === (o.recipe === undefined)) throw new UserError('give either --format (a preset) or --recipe (a JSON/YAML file), not both');
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
    .description(
      'Post-training quantization: calibrate on text, fake-quantize, and report the quality cost (perplexity, KL, SQNR, size). ' +
        `Without --model it quantizes the bundled ${BUNDLED_MODEL_NAME} (a 3M-parameter Llama trained by mopt) on its bundled calibration ` +
        `text, scores it on held-out text and writes to ./${BUNDLED_DEFAULTS.out}: try \`mopt quantize\` or \`mopt quantize --format all\`.`,
    )
    .option('--model <dir>', `Hugging Face model directory (not modified); default: the bundled ${BUNDLED_MODEL_NAME}`)
    .option('--format <preset>', `Model Optimizer preset: ${PRESET_NAMES.join(', ')} (default nvfp4); all: every preset, compared in OUT/summary.json`)
    .option('--recipe <file>', 'recipe file (JSON or YAML): ordered glob rules over quantizer names, last match wins')
    .option('--kv-cache <format>', `also quantize the KV cache: ${KV_PRESET_NAMES.join(', ')}`)
    .option('--algorithm <name>', `override the preset's algorithm: ${ALGORITHMS.join(', ')}`)
    .option('--calibrator <name>', `activation calibrator: ${CALIBRATORS.join(', ')} (histogram methods for fp8/int8)`, 'max')
    .option('--sq-alpha <a>', 'SmoothQuant migration strength in [0, 1] (Model Optimizer default 1.0; the paper uses 0.5)', parseFloatOption('--sq-alpha', 0, 1), 1)
    .option('--group-size <n>', 'INT4 group size: 32, 64 or 128 (default 128; 64 for the bundled model, whose width 192 is no multiple of 128)', parseIntOption('--group-size', 1))
    .option('--calib-data <file>', 'calibration text: .txt, .jsonl ({"text": ...} per line) or .json array (required with --model)')
    .option('--calib-samples <n>', `calibration windows (default 64; ${BUNDLED_DEFAULTS.calibSamples} for the bundled model)`, parseIntOption('--calib-samples', 1))
    .option('--seq-len <n>', `tokens per window (default 512; ${BUNDLED_DEFAULTS.seqLen} for the bundled model)`, parseIntOption('--seq-len', 2))
    .option('--eval-data <file>', 'held-out text for the report (default: the calibration file after the calibration windows; the bundled held-out text for the bundled model)')
    .option('--eval-windows <n>', 'held-out windows to score', parseIntOption('--eval-windows', 0), 16)
    .option('--out <dir>', `output directory: report.json and the quantization state (and the checkpoint with --export-format); required with --model, default ./${BUNDLED_DEFAULTS.out} for the bundled model`)
    .option('--export-format <name>', `also write --out as a deployable checkpoint: ${EXPORT_FORMAT_NAMES.join(', ')} (see mopt export)`)
    .option('--onnx-int4 <form>', ONNX_INT4_HELP, parseOnnxInt4)
    .option('--gguf-type <type>', `with --export-format gguf: block type of the quantized Linears, ${GGUF_TYPES.join(', ')} (default q4_k)`, parseGgufType)
    .option('--overwrite', 'with --export-format: replace a non-empty --out')
    .option(
      '--layerwise',
      'calibrate one decoder layer at a time (Model Optimizer\'s layerwise calibration): only that layer\'s weights are on the device, ' +
        'with the hidden states of every calibration window, so calibration and the algorithm (SmoothQuant, AWQ, GPTQ, MSE) need one layer ' +
        'plus activations instead of the whole model; same result as without it. Progress is saved after every layer in OUT/layerwise-progress: ' +
        're-running the same command after an interruption resumes there (another model, recipe or calibration set is refused). Applying the ' +
        'quantization, the held-out scoring and the export still load the whole model (skip scoring with --eval-windows 0)',
    )
    .option('--json', 'print the report as JSON')
    .action((given: Partial<QuantizeOptions> & Omit<QuantizeOptions, 'model' | 'calibData' | 'out' | 'calibSamples' | 'seqLen'>) => {
      const o = withDefaults(given);
      requireModelDir(o.model);
      if (isQuantDir(o.model)) throw new UserError(`--model ${o.model} is already a mopt quantization output; point --model at the original checkpoint`);
      if (resolve(o.out) === resolve(o.model)) throw new UserError(`--out ${o.out} is the model directory; mopt never writes into its input, choose another --out`);
      checkOnnxInt4(o.onnxInt4, o.exportFormat);
      if (o.ggufType !== undefined && o.exportFormat !== 'gguf') throw new UserError('--gguf-type goes with --export-format gguf');
      if (!(CALIBRATORS as readonly string[]).includes(o.calibrator)) throw new UserError(`--calibrator ${o.calibrator}: unknown (known: ${CALIBRATORS.join(', ')})`);
      if (o.format === 'all') {
        if (o.exportFormat !== undefined) throw new UserError('--format all compares the presets; export one of them with --format NAME --export-format modelopt');
        const recipes = PRESET_NAMES.map((p) => {
          const r = presetRecipe(p, o.kvCache);
          return o.groupSize !== undefined && p.includes('awq') && !p.includes('nvfp4') ? applyGroupSize(r, o.groupSize) : r;
        });
        const ctx = prepareRun(o, recipes);
        const rows = PRESET_NAMES.map((p, i) => {
          process.stderr.write(`== ${p} ==\n`);
          return { preset: p, report: quantizeOnce(ctx, recipes[i]!, p, join(o.out, p), null).report };
        });
        const summary = comparison(rows);
        mkdirSync(o.out, { recursive: true });
        writeJsonAtomic(join(o.out, 'summary.json'), summary);
        emit(o.json === true, summary, `${formatComparison(summary)}\nwrote ${join(o.out, 'summary.json')} and one directory per preset`);
        return;
      }
      const recipe = buildRecipe(o);
      if (o.exportFormat !== undefined) {
        exportFormat(o.exportFormat).check({ preset: o.format ?? null, kvCache: o.kvCache ?? null, onnxInt4: o.onnxInt4, ggufType: o.ggufType }); // an unexportable preset fails before the long work
        // a directory holding only an interrupted --layerwise run's progress is resumed, not refused
        checkExportOut(o.model, o.out, o.overwrite === true || (o.layerwise === true && onlyProgress(o.out)));
      }
      const { report, exported, exportNotes } = quantizeOnce(prepareRun(o, [recipe]), recipe, o.format ?? null, o.out, o.exportFormat === undefined ? null : { format: o.exportFormat, overwrite: o.overwrite });
      const also = exported === null ? '' : ` and a ${exported} checkpoint (${o.exportFormat})${exportNotes.map((n) => `\n  ${n}`).join('')}`;
      emit(o.json === true, report, `${formatReport(report)}\nwrote ${join(o.out, 'report.json')}, report.html and mopt-quant.json${also}`);
    });
}

/** --model, --calib-data and --out are required unless --model is left out: then the bundled model and its text. */
function withDefaults(given: Partial<QuantizeOptions> & Omit<QuantizeOptions, 'model' | 'calibData' | 'out' | 'calibSamples' | 'seqLen'>): QuantizeOptions {
  // NVFP4 unless a preset or a recipe is named
  const g = { ...given, format: given.format ?? (given.recipe === undefined ? 'nvfp4' : undefined) };
  if (g.model !== undefined) {
    if (g.calibData === undefined) throw new UserError('--calib-data is required with --model: a .txt / .jsonl / .json file of text like what the model will see');
    if (g.out === undefined) throw new UserError('--out is required with --model: the directory for report.json and the quantization state');
    return { ...g, model: g.model, calibData: g.calibData, out: g.out, calibSamples: g.calibSamples ?? 64, seqLen: g.seqLen ?? 512 };
  }
  return {
    ...g,
    model: bundledModelDir(),
    calibData: g.calibData ?? bundledCalibration(),
    evalData: g.evalData ?? (g.calibData === undefined ? bundledHeldOut() : undefined),
    out: g.out ?? BUNDLED_DEFAULTS.out,
    // mopt-tiny's hidden size (192) is not a multiple of INT4's default group of 128, which would leave most
    // of its Linears unquantized: its INT4 presets use groups of 64
    groupSize: g.groupSize ?? (g.format === 'all' || g.format === 'int4_awq' || g.format === 'w4a8_awq' ? 64 : undefined),
    calibSamples: g.calibSamples ?? BUNDLED_DEFAULTS.calibSamples,
    seqLen: g.seqLen ?? BUNDLED_DEFAULTS.seqLen,
  };
}
