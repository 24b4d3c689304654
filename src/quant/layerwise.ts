// Layer-by-layer calibration (`mopt quantize --layerwise`; Model Optimizer's `layerwise` option, modelopt.md
// §1.2): the decoder runs one stage at a time, so the device holds one layer's parameters plus the
// calibration activations instead of the whole model.
//   1. the embeddings of every calibration window are computed (the embedding matrix is then freed);
//   2. for each decoder layer i: only its parameters are read from the checkpoint onto the device, a
//      QuantizedModel planned over that layer alone runs the recipe's algorithm (SmoothQuant, AWQ, GPTQ, MSE)
//      and the activation calibration with the same hooks as the whole-model path (its passes run the layer
//      over the stored hidden states: QuantizedModel.passRunner), the layer's outputs become the next layer's
//      inputs, and its parameters are freed;
//   3. the final norm + LM head are a last stage when the recipe quantizes the head (normally excluded).
// The result equals the whole-model path's exactly: each pass sees the inputs the whole-model pass sees.
// Calibration and the algorithms' search passes run the model as it is at that point of the whole-model run:
// the outputs of layers whose weights an algorithm already replaced (GPTQ, MSE, AWQ clip: Model Optimizer's
// get_qdq_activations_from_prev_layer) for calibration and GPTQ; the unquantized outputs for SmoothQuant and
// AWQ's searches. AWQ clip (awq_clip, awq_full) needs both, so it carries two streams of hidden states.
// Progress is saved after every stage (layerwise-progress.ts), so an interrupted run resumes.

import { resolve } from 'node:path';
import { DecoderLM, layerPrefix, parameterSpecs } from '../models/decoder.js';
import { ParamSource, type LoadOptions } from '../models/load.js';
import { keep, noGrad, tensor, tidy, type DType, type Tensor } from '../tensor/index.js';
import { forwardGroups, linearNames, QuantizedModel, smoothingUnits, type QuantizerRole } from './ptq.js';
import type { Recipe } from './recipes/types.js';
import { recipeToData } from './recipes/serialize.js';
import type { CalibratorName } from './calib/calibrators.js';
import { algorithmPasses, runAlgorithm, searchesBeforeQuantizing } from './algorithms/run.js';
import { checkpointStamp, LayerwiseProgress, sha256, type Fingerprint, type StageResult, type Streams } from './layerwise-progress.js';

export interface LayerwiseOptions {
  /** the Hugging Face checkpoint directory (read one layer at a time) */
  model: string;
  dtype: DType;
  device: string;
  recipe: Recipe;
  calibrator: CalibratorName;
  sqAlpha: number;
  /** calibration windows (token ids) */
  batches: readonly (readonly number[])[];
  /** rows per forward, as QuantizedModel.batchSize */
  batchSize?: number;
  /** Linears the algorithms leave unsmoothed (ExportFormat.restrictPlan), as QuantizedModel.noSmoothing */
  noSmoothing?: ReadonlySet<string>;
  /** where progress is saved after every stage (LayerwiseProgress); null: not resumable */
  progressDir: string | null;
  /** a progress display per stage (label, total calibration rows over its passes) */
  progress?: (label: string, total: number) => { tick(n: number): void; finish(): void };
  /** called when saved progress is resumed: `done` of `total` stages were finished by an earlier run */
  onResume?: (done: number, total: number) => void;
  /** called after stage s is finished (and saved): tests interrupt a run here */
  onStageDone?: (stage: number) => void;
}

/** Everything calibration contributes to the quantization state, over all stages. */
export type LayerwiseResult = StageResult;

/** A DecoderLM with no parameters resident: stages bring theirs in (DecoderLM's `streamed` mode). */
export function streamedModel(src: ParamSource): DecoderLM {
  return new DecoderLM(src.config, new Map(), { dtype: src.dtype, backend: src.backend });
}

/** The recipe's plan over a streamed model, parameters never read (for ExportFormat.restrictPlan before a layerwise run). */
export function planOnly(dir: string, recipe: Recipe, opts: LoadOptions): QuantizedModel {
  const src = ParamSource.open(dir, opts);
  try {
    return new QuantizedModel(streamedModel(src), recipe);
  } finally {
    src.close();
  }
}

interface Stage {
  label: string;
  /** the quantizers it plans */
  include: (role: QuantizerRole, module: string) => boolean;
  /** parameters it brings onto the device */
  params: string[];
  /** one forward of the stage on hidden states */
  run: (model: DecoderLM, h: Tensor) => Tensor;
}

/** The decoder layers, then the final norm + LM head when the recipe quantizes the head. */
function stages(model: DecoderLM, recipe: Recipe): Stage[] {
  const c = model.config;
  const specs = parameterSpecs(c).map((s) => s.name);
  const out: Stage[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `${layerPrefix(i)}.`;
    out.push({
      label: `layer ${i + 1}/${c.numLayers}`,
      include: (role, module) => (role === 'kv' ? module === String(i) : module.startsWith(p)),
      params: specs.filter((n) => n.startsWith(p)),
      run: (m, h) => m.layerForward(i, h),
    });
  }
  const head = linearNames(model).at(-1)!;
  const include = (role: QuantizerRole, module: string): boolean => role !== 'kv' && module === head;
  // a tied head is never quantized (it is the embedding matrix), and an excluded one has nothing to calibrate
  if (new QuantizedModel(model, recipe, { include }).quantizers.some((q) => q.scheme !== null)) {
    out.push({ label: 'lm_head', include, params: ['model.norm.weight', `${head}.weight`], run: (m, h) => m.headForward(h) });
  }
  return out;
}

/** What must be equal for saved progress to be resumed: the model files, the recipe, the windows, the options. */
function fingerprint(o: LayerwiseOptions): Fingerprint {
  return {
    model: resolve(o.model),
    'model files': checkpointStamp(o.model),
    recipe: sha256(JSON.stringify(recipeToData(o.recipe))),
    calibrator: o.calibrator,
    'SmoothQuant alpha': String(o.sqAlpha),
    'calibration windows': sha256(JSON.stringify(o.batches)),
    'batch size': String(o.batchSize ?? 1),
    dtype: o.dtype,
    device: o.device,
    'unsmoothed Linears': [...(o.noSmoothing ?? [])].sort().join(','),
  };
}

/**
 * Calibrates (algorithm + activation amax) one stage at a time; the result is installed into a whole-model
 * QuantizedModel with installLayerwise. Device memory: one stage's parameters plus the hidden states of every
 * calibration window (two sets, inputs and outputs; four for AWQ clip) plus one window's forward.
 */
export function calibrateLayerwise(o: LayerwiseOptions): LayerwiseResult {
  const src = ParamSource.open(o.model, { dtype: o.dtype, device: o.device });
  const model = streamedModel(src);
  const all = stages(model, o.recipe);
  const groups = forwardGroups(o.batches, o.batchSize ?? 1);
  const algorithm = o.recipe.algorithm;
  const twoStreams = searchesBeforeQuantizing(algorithm);
  const saved = o.progressDir === null ? null : LayerwiseProgress.open(o.progressDir, fingerprint(o));
  const result: LayerwiseResult = { amax: {}, smooth: new Map(), prequantized: new Map() };
  const merge = (r: StageResult): void => {
    Object.assign(result.amax, r.amax);
    for (const [k, v] of r.smooth) result.smooth.set(k, v);
    for (const [k, v] of r.prequantized) result.prequantized.set(k, v);
  };
  let streams: Streams = { quant: [], float: null };
  const drop = (s: Streams): void => {
    for (const t of s.quant) t.dispose();
    for (const t of s.float ?? []) t.dispose();
  };
  try {
    const start = Math.min(saved?.done ?? 0, all.length);
    for (let s = 0; s < start; s++) merge(saved!.readStage(s));
    if (start > 0) o.onResume?.(start, all.length);
    if (start === all.length) return result;
    if (start > 0) {
      streams = saved!.readHidden(start, model.backend);
    } else {
      // the inputs of layer 0: the embeddings of every window, as forward() computes them
      const embed = 'model.embed_tokens.weight';
      model.params.set(embed, src.read(embed));
      try {
        for (const rows of groups) {
          const ids = rows.flatMap((r) => [...r]);
          streams.quant.push(keep(noGrad(() => tidy(() => model.embed(tensor(ids, [rows.length, rows[0]!.length], { dtype: 'int32', device: model.backend }))))));
        }
      } finally {
        model.params.get(embed)!.dispose();
        model.params.delete(embed);
      }
      if (twoStreams) streams.float = streams.quant;
    }
    for (let s = start; s < all.length; s++) {
      const stage = all[s]!;
      const last = s === all.length - 1;
      for (const name of stage.params) model.params.set(name, src.read(name));
      let next: Streams = { quant: [], float: null };
      try {
        const r = runStage(model, stage, streams, o, groups, twoStreams, !last);
        next = r.next;
        merge(r.result);
        saved?.saveStage(s, r.result, last ? null : next);
      } catch (e) {
        drop(next);
        throw e;
      } finally {
        for (const name of stage.params) {
          model.params.get(name)?.dispose();
          model.params.delete(name);
        }
      }
      dropStreams(streams, next);
      streams = next;
      o.onStageDone?.(s);
    }
    return result;
  } finally {
    drop(streams);
    streams = { quant: [], float: null };
    src.close();
  }
}

/** Disposes the previous stage's inputs (the float stream may be the same tensors as the quant one). */
function dropStreams(prev: Streams, next: Streams): void {
  const keepSet = new Set([...next.quant, ...(next.float ?? [])]);
  for (const t of new Set([...prev.quant, ...(prev.float ?? [])])) if (!keepSet.has(t)) t.dispose();
}

/**
 * One stage: the algorithm, then calibration, on a QuantizedModel planned over the stage alone whose passes
 * run the stage over the stored hidden states. Returns its results and the next stage's inputs (when `wantNext`).
 */
function runStage(model: DecoderLM, stage: Stage, inputs: Streams, o: LayerwiseOptions, groups: readonly (readonly number[])[][], twoStreams: boolean, wantNext: boolean): { result: StageResult; next: Streams } {
  const q = new QuantizedModel(model, o.recipe, { include: stage.include });
  q.batchSize = o.batchSize ?? 1;
  for (const l of o.noSmoothing ?? []) q.noSmoothing.add(l);
  const algorithm = o.recipe.algorithm;
  const passes = algorithmPasses(q, algorithm) + 1;
  const bar = o.progress?.(stage.label, passes * o.batches.length);
  // which stored inputs the next pass reads, and whether its outputs are kept (as which stream)
  let source: Tensor[] = inputs.quant;
  let capture: 'quant' | 'float' | null = null;
  const next: Streams = { quant: [], float: null };
  q.passRunner = (batches, onBatch) => {
    if (batches.length !== o.batches.length) throw new Error('layerwise: a pass over other rows than the calibration windows');
    const out: Tensor[] = [];
    groups.forEach((rows, k) => {
      noGrad(() => tidy(() => {
        const y = stage.run(model, source[k]!);
        if (capture !== null) out.push(keep(y));
      }));
      for (let r = 0; r < rows.length; r++) onBatch?.();
      bar?.tick(rows.length);
    });
    if (capture !== null) next[capture] = out;
    capture = null;
  };
  try {
    // the algorithm's passes: GPTQ reads the outputs of the already-quantized layers (as the whole-model GPTQ
    // does stage by stage); SmoothQuant and AWQ search on the unquantized model. With two streams, the first
    // pass on the unquantized inputs (weights still original then) gives the next unquantized inputs.
    source = algorithm === 'gptq' ? inputs.quant : inputs.float ?? inputs.quant;
    capture = twoStreams && wantNext ? 'float' : null;
    runAlgorithm(q, algorithm, o.batches, { sqAlpha: o.sqAlpha });
    if (twoStreams && wantNext && next.float === null) throw new Error(`layerwise: ${algorithm} made no pass over ${stage.label}`);
    // calibration sees the model with the algorithm's weights, as the whole-model calibration does
    source = inputs.quant;
    capture = wantNext ? 'quant' : null;
    q.calibrate(o.batches, o.calibrator);
    // calibration makes no pass when nothing needs an amax: the outputs come from a pass with the same hooks
    if (wantNext && next.quant.length === 0) q.forEachInput(o.batches, () => undefined);
    bar?.finish();
  } catch (e) {
    for (const t of [...next.quant, ...(next.float ?? [])]) t.dispose();
    throw e;
  }
  if (!twoStreams) next.float = null;
  const prequantized = new Map(q.prequantizedLinears().map((lin) => {
    const scales = q.staticScalesOf(lin);
    return [lin, { original: q.prequantizedOriginal(lin)!, values: q.prequantizedValues(lin)!, ...(scales === undefined ? {} : { scales }) }];
  }));
  return { result: { amax: q.amaxValues(), smooth: new Map(q.smooth), prequantized }, next };
}

/**
 * Installs a layerwise calibration into a whole-model QuantizedModel (not applied): smoothing factors in the
 * order the whole-model algorithms set them (so the saved state is byte-identical), the algorithms' weights,
 * every amax.
 */
export function installLayerwise(q: QuantizedModel, r: LayerwiseResult): void {
  const smoothed = new Set(linearNames(q.model).filter((l) => r.smooth.has(l)));
  for (const unit of smoothingUnits(q.model, smoothed)) for (const lin of unit) q.smooth.set(lin, r.smooth.get(lin)!);
  for (const [lin, w] of r.prequantized) q.setPrequantized(lin, w.original, w.values, w.scales);
  q.setAmax(r.amax);
}
