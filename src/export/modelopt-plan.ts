// Between mopt's quantization plan and a Model Optimizer checkpoint's metadata, both ways:
// - checkpointAlgo: what a planned model exports as. A preset exports as its quant_algo. A custom recipe
//   gets each quantized Linear's quant_algo from its weight / input schemes (and, for NVFP4, whether it is
//   smoothed); one config for every Linear exports as that quant_algo with exclude_modules (what Model
//   Optimizer's get_quant_config does when it sees one format), several as MIXED_PRECISION with
//   quantized_layers. Either way the checkpoint must plan back to exactly the model's quantizers
//   (loadRecipe), else it is written as MIXED_PRECISION, or refused naming the quantizer it cannot express.
// - loadRecipe: the recipe a loader plans a checkpoint with: the preset's rules plus exclude_modules, or one
//   rule per Linear of quantized_layers, plus the K/V rules of kv_cache_quant_algo.
// The weight / input settings of a quant_algo come from its preset's rules (recipes/presets.ts), so a
// quant_algo means the same quantizers here as in `mopt quantize --format`.

import { layerPrefix } from '../models/decoder.js';
import { linearNames, QuantizedModel, type PlannedQuantizer } from '../quant/ptq.js';
import { applyGroupSize, compileGlob, DISABLED, presetRecipe, resolveQuantizer, type KvPresetName, type PresetName, type QuantizerSettings, type Recipe, type Resolved, type Rule } from '../quant/recipes/index.js';
import { actScheme, weightScheme } from '../quant/scheme.js';
import { UserError } from '../util/errors.js';
import {
  groupSizeOf, INT4_ALGOS, layerConfig, MIXED_PRECISION, PRESET_ALGO, presetOfAlgo, quantAlgoOf, type LayerConfig, type QuantAlgo,
} from './modelopt-format.js';

// quantizer names no preset exclusion matches, to read a preset's Linear and K/V settings
const PROBE = { weight: 'linear.weight_quantizer', input: 'linear.input_quantizer', kv: ['attn.k_bmm_quantizer', 'attn.v_bmm_quantizer'] } as const;

/** quant_algo values that carry a pre_quant_scale (AWQ / SmoothQuant smoothing) in Model Optimizer's format. */
const SMOOTHED_ALGOS = ['W8A8_SQ_PER_CHANNEL', 'W4A16_AWQ', 'W4A8_AWQ', 'NVFP4_AWQ'];

interface LayerSettings { weight: QuantizerSettings; input: QuantizerSettings | null }

/** The weight and input quantizer settings of a quant_algo (INT4 ones with the given group size). */
function algoSettings(algo: string, groupSize: number | null): LayerSettings {
  const recipe = presetRecipe(presetOfAlgo(algo)!);
  const weight = resolveQuantizer(recipe, PROBE.weight) as QuantizerSettings;
  const input = resolveQuantizer(recipe, PROBE.input);
  const g = INT4_ALGOS.includes(algo) ? groupSize ?? 128 : null;
  return { weight: g === null ? weight : { ...weight, blockSize: g }, input: input === DISABLED ? null : input };
}

const rule = (pattern: string, settings: Resolved): Rule => ({ pattern, settings, regex: compileGlob(pattern) });

/** The K/V rules of a KV preset (as `--kv-cache` adds them). */
function kvRules(kv: KvPresetName | null): Rule[] {
  if (kv === null) return [];
  const recipe = presetRecipe('fp8', kv);
  return PROBE.kv.map((n) => rule(`*${n.slice(n.indexOf('.'))}`, resolveQuantizer(recipe, n)));
}

/** What a loader plans a checkpoint's Linears with, besides its quant_algo / quantized_layers. */
export interface PlanContext {
  /** exclude_modules: module-name globs (Model Optimizer's prefix wildcards) */
  exclude: readonly string[];
  /** the model's Linear names */
  linears: readonly string[];
  /** whether the checkpoint has `<linear>.input_scale` */
  hasInputScale: (linear: string) => boolean;
}

/**
 * The recipe a loader plans a checkpoint with: its quant_algo's preset rules (INT4 group size applied) with
 * the Linears of exclude_modules left unquantized, or one rule per quantized_layers entry; then the K/V rules.
 * An excluded Linear keeps a quantized input where the checkpoint has its input_scale: mopt writes one for a
 * static FP8 input whose weight its format does not fit (W4A8 on a non-dividing in dim), which Model
 * Optimizer's checkpoints never have.
 */
export function loadRecipe(a: QuantAlgo, c: PlanContext): Recipe {
  if (a.layers === null) {
    const base = presetRecipe(a.preset!);
    const g = a.groupSize ?? 128;
    const { rules } = INT4_ALGOS.includes(a.quantAlgo) && g !== 128 ? applyGroupSize(base, g) : base;
    const globs = c.exclude.map((e) => compileGlob(e));
    const off = c.linears.filter((l) => globs.some((g) => g.test(l))).flatMap((l) => [
      rule(`${l}.weight_quantizer`, DISABLED), ...(c.hasInputScale(l) ? [] : [rule(`${l}.input_quantizer`, DISABLED)]),
    ]);
    return { algorithm: 'max', rules: [...rules, ...kvRules(a.kvPreset), ...off] };
  }
  const rules = [...a.layers].flatMap(([name, cfg]) => {
    const s = algoSettings(cfg.quant_algo, cfg.group_size ?? null);
    return [rule(`${name}.weight_quantizer`, s.weight), ...(s.input === null ? [] : [rule(`${name}.input_quantizer`, s.input)])];
  });
  return { algorithm: 'max', rules: [...rules, ...kvRules(a.kvPreset)] };
}

/** Every enabled quantizer of a plan and its scheme (what two plans must agree on). */
function planOf(q: QuantizedModel): Map<string, string> {
  return new Map(q.quantizers.filter((x) => x.scheme !== null).map((x) => [x.name, JSON.stringify(x.scheme)]));
}

/** The first quantizer two plans disagree on, or null. */
function planDiff(want: QuantizedModel, got: QuantizedModel): string | null {
  const a = planOf(want);
  const b = planOf(got);
  for (const name of new Set([...a.keys(), ...b.keys()])) if (a.get(name) !== b.get(name)) return name;
  return null;
}

/** The quant_algo of one quantized Linear of a custom recipe, from its schemes; a UserError when there is none. */
function linearAlgo(q: QuantizedModel, lin: string, w: PlannedQuantizer): LayerConfig {
  const input = q.quantizers.find((x) => x.name === `${lin}.input_quantizer` && x.scheme !== null) ?? null;
  const smoothed = q.smooth.has(lin);
  const want = JSON.stringify([w.scheme, input?.scheme ?? null]);
  const group = 'groupSize' in w.scheme! ? w.scheme.groupSize : null;
  const matches = [...new Set(Object.values(PRESET_ALGO))].filter((algo) => {
    const s = algoSettings(algo, group);
    return JSON.stringify([weightScheme(w.name, s.weight), s.input === null ? null : actScheme(`${lin}.input_quantizer`, s.input)]) === want;
  });
  // NVFP4 and NVFP4_AWQ plan the same quantizers: the pre_quant_scale tells them apart
  const algo = matches.find((a) => (a === 'NVFP4_AWQ' ? smoothed : true) && (a === 'NVFP4' ? !smoothed : true));
  if (algo === undefined) {
    const what = `weights ${JSON.stringify(w.scheme)}, inputs ${JSON.stringify(input?.scheme ?? null)}`;
    throw new UserError(`${lin}: ${what} is no Model Optimizer quant_algo (${Object.values(PRESET_ALGO).join(', ')}); change the recipe for that layer or leave it unquantized`);
  }
  if (smoothed && !SMOOTHED_ALGOS.includes(algo)) {
    throw new UserError(`${lin}: smoothed by the algorithm, but ${algo} has no pre_quant_scale in Model Optimizer's format (${SMOOTHED_ALGOS.join(', ')} do); leave that layer out of the smoothing`);
  }
  return layerConfig(algo, groupSizeOf(algo, group));
}

/** The K/V cache quant_algo of a plan (one format for every layer, or none), as a KV preset. */
function planKv(q: QuantizedModel): KvPresetName | null {
  const kinds = new Set(q.quantizers.filter((x) => x.role === 'kv' && x.scheme !== null).map((x) => x.scheme!.kind));
  if (kinds.size > 1) throw new UserError(`the recipe quantizes the KV cache as ${[...kinds].join(' and ')}; Model Optimizer's format has one kv_cache_quant_algo for the model`);
  return kinds.size === 0 ? null : ([...kinds][0] as KvPresetName);
}

/** How a planned model is being exported: its preset (null: a custom recipe), KV preset and checkpoint context. */
export interface ExportContext extends Omit<PlanContext, 'linears'> {
  preset: string | null;
  kvCache: string | null;
}

/**
 * What a planned model exports as: its preset's quant_algo, or for a custom recipe (preset null) the one
 * quant_algo all its quantized Linears share or MIXED_PRECISION, whichever plans back to the same quantizers.
 */
export function checkpointAlgo(q: QuantizedModel, o: ExportContext): QuantAlgo {
  if (o.preset !== null) return quantAlgoOf(o.preset, o.kvCache, int4Group(q));
  const layers = new Map<string, LayerConfig>();
  const linears = linearNames(q.model);
  for (const lin of linears) {
    const w = q.quantizers.find((x) => x.name === `${lin}.weight_quantizer` && x.scheme !== null);
    if (w !== undefined) layers.set(lin, linearAlgo(q, lin, w));
  }
  if (layers.size === 0) throw new UserError('the recipe quantizes no Linear weight; there is nothing to export as a Model Optimizer checkpoint');
  const kvPreset = planKv(q);
  const ctx: PlanContext = { exclude: o.exclude, linears, hasInputScale: o.hasInputScale };
  const configs = new Set([...layers.values()].map((c) => JSON.stringify(c)));
  if (configs.size === 1) {
    const only = layers.values().next().value!;
    const single: QuantAlgo = { preset: presetOfAlgo(only.quant_algo)! as PresetName, quantAlgo: only.quant_algo, groupSize: only.group_size ?? null, kvPreset, layers: null };
    if (planDiff(q, new QuantizedModel(q.model, loadRecipe(single, ctx))) === null) return single;
  }
  const mixed: QuantAlgo = { preset: null, quantAlgo: MIXED_PRECISION, groupSize: null, kvPreset, layers };
  const diff = planDiff(q, new QuantizedModel(q.model, loadRecipe(mixed, ctx)));
  if (diff !== null) {
    throw new UserError(`${diff}: the recipe's plan for it cannot be written in Model Optimizer's format (a quantized input without a quantized weight, or K/V quantized in some layers only); change the recipe there`);
  }
  return mixed;
}

/** The INT4 group size the plan uses (for group_size in the config), or null. */
function int4Group(q: QuantizedModel): number | null {
  for (const x of q.quantizers) if (x.scheme !== null && 'groupSize' in x.scheme) return x.scheme.groupSize;
  return null;
}

/** K/V scale tensor name of a layer (Model Optimizer puts them under k_proj / v_proj). */
export const kvScaleName = (layer: number, which: 'k' | 'v'): string => `${layerPrefix(layer)}.self_attn.${which}_proj.${which}_scale`;
