// Post-training quantization of a DecoderLM by fake quantization (quantize -> dequantize), the way Model
// Optimizer's quantizers simulate a deployed checkpoint:
//   plan      every Linear gets `<name>.weight_quantizer` and `<name>.input_quantizer`, every attention layer
//             `<attn>.k_bmm_quantizer` / `v_bmm_quantizer`; the recipe (last matching glob wins) says what each
//             does; a tensor whose shape does not fit its format's blocks is left unquantized and reported;
//   calibrate forward passes over calibration batches with hooks that feed each calibrated quantizer's
//             input to its calibrator (on the unquantized model, as Model Optimizer calibrates);
//   apply     weights are replaced by their fake-quantized values (bit-exact format code, once) and hooks
//             fake-quantize Linear inputs and K/V on every forward.
// FP8 (static or per token) / INT8 / NVFP4 / MXFP8 / MXFP4 activations and K/V are fake-quantized with tensor
// ops on the model's device (fake-quant-tensor.ts, bit-exact with the format code); shapes those ops do not
// tile (a last dim that is not a multiple of the block) go through the host-side format code (src/quant/formats).

import type { DecoderLM } from '../models/decoder.js';
import { layerPrefix, parameterSpecs } from '../models/decoder.js';
import { linear as linearFn } from '../nn/functional.js';
import { amax as absMax, keep, maximum, mul, noGrad, tensor, tidy, type Tensor } from '../tensor/index.js';
import { UserError } from '../util/errors.js';
import { linearNames, siblingGroups } from './linear-groups.js';
import { divideColumns, sqnr } from './weight-math.js';
import { DISABLED, type Recipe } from './recipes/types.js';
import { resolveQuantizer } from './recipes/resolve.js';
import {
  actMisfit, actScheme, bitsPerWeight, dequantizeWeight, fakeQuantAct, fakeQuantWeight, kvScheme, quantizeWeight, tensorAmax, weightMisfit, weightScheme,
  type ActScheme, type KvScheme, type QuantizedWeight, type WeightScheme,
} from './scheme.js';
import { fakeQuantOnDevice } from './fake-quant-tensor.js';
import { HistogramCalibrator, MaxCalibrator, type Calibrator, type CalibratorName } from './calib/calibrators.js';
import type { StaticScales } from './algorithms/block-quantizer.js';

export { linearNames, siblingGroups, smoothingUnits } from './linear-groups.js';

export type QuantizerRole = 'weight' | 'input' | 'kv';

/** One calibration pass over the batches with the model's hooks installed; onBatch once per batch row. */
export type PassRunner = (batches: readonly (readonly number[])[], onBatch?: () => void) => void;

/** One quantizer of the plan: enabled (with its scheme) or left out (with the reason). */
export interface PlannedQuantizer {
  name: string;
  role: QuantizerRole;
  /** the Linear (weight/input) or layer index (kv) it belongs to */
  module: string;
  scheme: WeightScheme | ActScheme | KvScheme | null;
  /** why a quantizer the recipe enables is left out (shape does not fit, tied weights) */
  skipped: string | null;
  amax: number | null;
}

/**
 * What an export changes in the model beyond fake quantization (ExportFormat.prepare sets it, before apply()):
 * compressed-tensors folds smoothing factors into the preceding RMSNorm or Linear rows, in the checkpoint's
 * dtype, so apply() makes the model hold the checkpoint's values and the loaded checkpoint computes the same.
 */
export interface FoldedExport {
  /** float tensors (folded norm weights, row-scaled or smoothed float Linears, biases) by parameter name */
  params: Map<string, Float32Array>;
  /**
   * dequantized weights as the checkpoint holds them where they differ from q's, by Linear: per-row scales
   * that took a folded factor, or an algorithm's NVFP4 weight whose s2 the checkpoint's encoding rounds
   * (made one at a time by apply() from the checkpoint's compact tensors)
   */
  weights: Map<string, () => Float32Array>;
  /** smoothed Linears whose factors live upstream now: their inputs are no longer multiplied by them */
  foldedInputs: Set<string>;
}

export interface WeightStats {
  name: string;
  sqnrDb: number;
  bitsPerWeight: number;
  elements: number;
}

const kvModule = (i: number): string => `${layerPrefix(i)}.self_attn`;

/** The rows each calibration forward runs together: up to batchSize consecutive rows of one length. */
export function forwardGroups<T extends readonly number[]>(batches: readonly T[], batchSize: number): T[][] {
  const groups: T[][] = [];
  for (let i = 0; i < batches.length; ) {
    let n = 1;
    while (n < batchSize && i + n < batches.length && batches[i + n]!.length === batches[i]!.length) n++;
    groups.push(batches.slice(i, i + n));
    i += n;
  }
  return groups;
}

const asMatrix = (shape: readonly number[]): [number, number] => [shape.slice(0, -1).reduce((a, b) => a * b, 1), shape[shape.length - 1]!];

export class QuantizedModel {
  readonly quantizers: PlannedQuantizer[] = [];
  readonly weightStats: WeightStats[] = [];
  private readonly byName = new Map<string, PlannedQuantizer>();
  /**
   * Per-input-channel smoothing factors c of a Linear (SmoothQuant, AWQ): its input becomes x * c (Model
   * Optimizer's pre_quant_scale) and its weight W / c (per input column), so the float product is unchanged
   * and the quantizers see the smoothed tensors.
   */
  readonly smooth = new Map<string, Float32Array>();
  /**
   * Linears the smoothing algorithms (SmoothQuant, AWQ) leave unsmoothed: an export without a pre_quant_scale
   * tensor (compressed-tensors) folds the factors into the preceding op and names the Linears where that
   * would not be exact (ExportFormat.restrictPlan), as llm-compressor skips those mappings.
   */
  readonly noSmoothing = new Set<string>();
  /** Linears whose weights an algorithm (GPTQ, MSE, AWQ clip) already quantized: their original values, for the report */
  private readonly prequantized = new Map<string, Float32Array>();
  /** the static scales of those weights (what the export needs to write their codes) */
  private readonly staticScales = new Map<string, StaticScales>();
  /** those weights' float32 values as the algorithm produced them (the parameter may be rounded to bf16/f16) */
  private readonly prequantValues = new Map<string, Float32Array>();
  private applied = false;
  /** set by an export whose checkpoint differs from plain fake quantization (FoldedExport); apply() adopts its values */
  foldedExport: FoldedExport | null = null;
  /**
   * A rule every NVFP4 weight's per-tensor amax passes through before its codes are made, set by an export
   * whose scale encoding cannot hold every fp32 s2 (compressed-tensors stores 1 / s2); null keeps the amax.
   */
  globalAmaxRule: ((amax: number, linear: string) => number) | null = null;
  /** calibration rows run together in one forward (same-length rows only) */
  batchSize = 1;
  /**
   * Runs one calibration pass (forEachInput, hooks installed): null runs the whole model over the token ids;
   * layer-by-layer calibration (layerwise.ts) runs one decoder layer over stored hidden states instead.
   */
  passRunner: PassRunner | null = null;

  /**
   * `opts.include` plans only the quantizers it accepts (by role and module: a Linear's name, or the layer
   * index of K/V): layer-by-layer calibration plans one layer at a time on a streamed model. The plan reads
   * the shapes config.json implies, so it needs no parameters resident.
   */
  constructor(readonly model: DecoderLM, readonly recipe: Recipe, opts: { include?: (role: QuantizerRole, module: string) => boolean } = {}) {
    const c = model.config;
    const include = opts.include ?? (() => true);
    const shapes = new Map(parameterSpecs(c).map((s) => [s.name, s.shape]));
    for (const lin of linearNames(model)) {
      if (!include('weight', lin)) continue;
      const [out, inp] = shapes.get(`${lin}.weight`) as [number, number];
      const tied = c.tieWordEmbeddings && lin === 'model.embed_tokens';
      this.plan(`${lin}.weight_quantizer`, 'weight', lin, (name, s) => {
        const sc = weightScheme(name, s);
        return [sc, tied ? 'the LM head is tied to the input embeddings' : weightMisfit(sc, [out, inp])];
      });
      this.plan(`${lin}.input_quantizer`, 'input', lin, (name, s) => {
        const sc = actScheme(name, s);
        return [sc, tied ? 'the LM head is tied to the input embeddings' : actMisfit(sc, inp)];
      });
    }
    for (let i = 0; i < c.numLayers; i++) {
      if (!include('kv', String(i))) continue;
      for (const which of ['k', 'v'] as const) {
        this.plan(`${kvModule(i)}.${which}_bmm_quantizer`, 'kv', String(i), (name, s) => {
          const sc = kvScheme(name, s);
          return [sc, actMisfit(sc, c.headDim)];
        });
      }
    }
  }

  private plan(name: string, role: QuantizerRole, module: string, build: (name: string, s: Exclude<ReturnType<typeof resolveQuantizer>, typeof DISABLED>) => [WeightScheme | ActScheme | KvScheme, string | null]): void {
    const s = resolveQuantizer(this.recipe, name);
    if (s === DISABLED) return;
    const [scheme, misfit] = build(name, s);
    const q: PlannedQuantizer = { name, role, module, scheme: misfit === null ? scheme : null, skipped: misfit, amax: null };
    this.quantizers.push(q);
    this.byName.set(name, q);
  }

  /** Enabled quantizers that need a calibrated amax. */
  calibrated(): PlannedQuantizer[] {
    return this.quantizers.filter((q) => q.scheme !== null && q.role !== 'weight' && ('calibrated' in q.scheme ? q.scheme.calibrated : true));
  }

  /**
   * Runs the unquantized model over the calibration batches (token-id rows) and sets every calibrated
   * quantizer's amax. `method` picks the activation calibrator (max, or a histogram method for 8-bit formats).
   */
  calibrate(batches: readonly (readonly number[])[], method: CalibratorName, onBatch?: () => void): void {
    if (this.applied) throw new Error('calibrate() after apply(): calibration runs on the unquantized model');
    if (batches.length === 0) throw new UserError('calibration: no calibration batches (the calibration data is empty or shorter than one --seq-len window)');
    const cals = new Map<string, Calibrator>();
    for (const q of this.calibrated()) cals.set(q.name, this.calibrator(q, method));
    if (cals.size === 0) return;
    // max calibration keeps a running max per quantizer on the device and reads it once at the end (no
    // per-Linear transfer); histogram calibrators need the values on the host
    const running = new Map<string, Tensor>();
    const feed = (name: string, x: Tensor): void => {
      const cal = cals.get(name);
      if (cal === undefined) return;
      if (!(cal instanceof MaxCalibrator)) {
        cal.collect(x.toFloat32Array());
        return;
      }
      const prev = running.get(name);
      const m = absMax(x);
      running.set(name, keep(prev === undefined ? m : maximum(prev, m)));
      prev?.dispose();
    };
    try {
      this.forEachInput(batches, (name, x) => feed(`${name}.input_quantizer`, this.smoothed(name, x)), (i, k, v) => {
        feed(`${kvModule(i)}.k_bmm_quantizer`, k);
        feed(`${kvModule(i)}.v_bmm_quantizer`, v);
      }, onBatch);
      for (const [name, m] of running) (cals.get(name) as MaxCalibrator).collectAmax(tidy(() => m.cast('float32').toFloat32Array()[0]!));
    } finally {
      for (const m of running.values()) m.dispose();
    }
    for (const [name, cal] of cals) {
      const amax = cal.amax();
      if (amax === null) throw new UserError(`calibration: ${name} saw no activations`);
      this.byName.get(name)!.amax = amax;
    }
  }

  /**
   * Runs the unquantized model over the batches (token-id rows); `linear` sees every Linear's input, `kv`
   * every layer's keys and values (inside the batch's memory scope: copy out what must outlive it).
   */
  forEachInput(batches: readonly (readonly number[])[], linear: (name: string, x: Tensor) => void, kv?: (layer: number, k: Tensor, v: Tensor) => void, onBatch?: () => void): void {
    if (this.applied) throw new Error('calibration runs on the unquantized model, before apply()');
    const saved = [this.model.linearHook, this.model.kvHook] as const;
    this.model.linearHook = (name, x, w, b) => {
      linear(name, x);
      // a pre-quantized weight that was smoothed holds W / c: its input must be x * c, as after apply()
      return this.prequantized.has(name) && this.smooth.has(name) ? linearFn(this.smoothed(name, x), w, b) : undefined;
    };
    this.model.kvHook = (i, k, v) => {
      kv?.(i, k, v);
      return [k, v];
    };
    try {
      if (this.passRunner !== null) {
        this.passRunner(batches, onBatch);
        return;
      }
      for (const rows of forwardGroups(batches, this.batchSize)) {
        const ids = rows.flatMap((r) => [...r]);
        noGrad(() => tidy(() => void this.model.forward(tensor(ids, [rows.length, rows[0]!.length], { dtype: 'int32', device: this.model.backend }))));
        for (let k = 0; k < rows.length; k++) onBatch?.();
      }
    } finally {
      [this.model.linearHook, this.model.kvHook] = saved;
    }
  }

  /** x times the Linear's smoothing factors (x itself when it has none). */
  smoothed(linear: string, x: Tensor): Tensor {
    const c = this.smooth.get(linear);
    return c === undefined ? x : mul(x, tensor(c, [c.length], { dtype: x.dtype === 'float64' ? 'float64' : 'float32', device: x.backend }).cast(x.dtype));
  }

  private calibrator(q: PlannedQuantizer, method: CalibratorName): Calibrator {
    if (method === 'max') return new MaxCalibrator(q.name);
    const kind = q.scheme!.kind;
    if (kind !== 'fp8' && kind !== 'int8') {
      throw new UserError(`calibration: the ${method} calibrator applies to fp8 and int8 activations; ${q.name} is ${kind} (use --calibrator max)`);
    }
    const scheme = q.scheme as ActScheme | KvScheme;
    // the entropy search merges bins into 127 levels per side, the INT8 grid (an approximation for FP8's grid)
    return new HistogramCalibrator(q.name, method, {
      quantLevels: 127,
      quantize: (centers, amax) => fakeQuantAct(scheme, centers, [1, centers.length], amax),
    });
  }

  /** Sets calibrated amax values (from a saved quantization state). */
  setAmax(values: Readonly<Record<string, number>>): void {
    for (const q of this.calibrated()) {
      const v = values[q.name];
      if (v === undefined) throw new UserError(`quantization state has no amax for ${q.name}`);
      q.amax = v;
    }
  }

  /**
   * Replaces weights by their fake-quantized values and installs the activation / KV hooks; `onWeight(done,
   * total)` follows the weights (the slow part on large models).
   */
  apply(onWeight?: (done: number, total: number) => void): void {
    if (this.applied) return;
    for (const q of this.calibrated()) if (q.amax === null) throw new Error(`${q.name} is not calibrated`);
    const weightQ = this.weightQuantizers();
    for (const lin of weightQ.keys()) {
      const pre = this.prequantized.get(lin);
      if (pre === undefined) continue;
      const q = weightQ.get(lin)!;
      const w = this.model.params.get(`${lin}.weight`)!;
      const shape = w.shape as [number, number];
      this.weightStats.push({ name: q.name, sqnrDb: sqnr(pre, w.toFloat32Array()), bitsPerWeight: bitsPerWeight(q.scheme as WeightScheme, shape), elements: pre.length });
    }
    let done = 0;
    const total = this.changingWeights(weightQ).size;
    for (const { lin, q, values: orig, shared } of this.preparedWeights(weightQ)) {
      const key = `${lin}.weight`;
      const w = this.model.params.get(key)!;
      const shape = w.shape as [number, number];
      let values = orig;
      if (q !== undefined) {
        values = fakeQuantWeight(q.scheme as WeightScheme, orig, shape, shared);
        // the quantization error, before a folded row factor (the next Linear's smoothing) scales the rows
        this.weightStats.push({ name: q.name, sqnrDb: sqnr(orig, values), bitsPerWeight: bitsPerWeight(q.scheme as WeightScheme, shape), elements: orig.length });
        values = this.foldedExport?.weights.get(lin)?.() ?? values;
      }
      const replaced = keep(tidy(() => tensor(values, shape, { dtype: 'float32', device: w.backend }).cast(w.dtype)));
      w.dispose();
      this.model.params.set(key, replaced);
      onWeight?.(++done, total);
    }
    // pre-quantized weights are not among preparedWeights(): those the checkpoint holds differently change here
    const foldedPrequant = [...this.foldedExport?.weights ?? []].filter(([lin]) => this.prequantized.has(lin)).map(([lin, v]) => [`${lin}.weight`, v] as const);
    for (const [key, value] of [...this.foldedExport?.params ?? [], ...foldedPrequant]) {
      const values = typeof value === 'function' ? value() : value;
      const w = this.model.params.get(key)!;
      const replaced = keep(tidy(() => tensor(values, [...w.shape], { dtype: 'float32', device: w.backend }).cast(w.dtype)));
      w.dispose();
      this.model.params.set(key, replaced);
    }
    this.installHooks();
    // the hooks keep the folded inputs; the adopted values are in the parameters now
    if (this.foldedExport !== null) this.foldedExport = { params: new Map(), weights: new Map(), foldedInputs: this.foldedExport.foldedInputs };
    this.applied = true;
  }

  /**
   * The codes and scales of every quantized weight, as a deployed checkpoint holds them (before apply(): from
   * the source weights, smoothed, with the fused siblings' shared per-tensor amax). Weights an algorithm
   * quantized itself (GPTQ, MSE, AWQ clip) are refused: the state keeps their values, not their scales.
   */
  weightCodes(): Map<string, { quantizer: PlannedQuantizer; codes: QuantizedWeight }> {
    if (this.applied) throw new Error('weightCodes() after apply(): the source weights are gone');
    const weightQ = this.weightQuantizers();
    const made = new Map<string, QuantizedWeight>();
    for (const { lin, q, values, shared } of this.preparedWeights(weightQ)) {
      if (q !== undefined) made.set(lin, quantizeWeight(q.scheme as WeightScheme, values, this.model.params.get(`${lin}.weight`)!.shape as [number, number], shared));
    }
    const out = new Map<string, { quantizer: PlannedQuantizer; codes: QuantizedWeight }>();
    for (const [lin, q] of weightQ) {
      const w = this.model.params.get(`${lin}.weight`)!;
      const shape = w.shape as [number, number];
      const scheme = q.scheme as WeightScheme;
      if (!this.prequantized.has(lin)) {
        out.set(lin, { quantizer: q, codes: made.get(lin)! });
        continue;
      }
      // an algorithm's weight: its codes follow from the values and the static scales it recorded
      const scales = this.staticScales.get(lin);
      if (scales === undefined) {
        throw new UserError(`${lin}: its weight was quantized by the algorithm, but the quantization state records no scales for it (a state written before scales were recorded); re-run mopt quantize`);
      }
      const values = this.prequantValues.get(lin)!;
      const codes = quantizeWeight(scheme, values, shape, scales.globalAmax ?? undefined, scales.blockAmax);
      const back = dequantizeWeight(codes);
      if (back.some((v, i) => !Object.is(v + 0, values[i]! + 0))) throw new Error(`${lin}: the recorded static scales do not reproduce the algorithm's weight`);
      out.set(lin, { quantizer: q, codes });
    }
    return out;
  }

  /** The enabled weight quantizers, by Linear, in plan order. */
  private weightQuantizers(): Map<string, PlannedQuantizer> {
    const weightQ = new Map<string, PlannedQuantizer>();
    for (const q of this.quantizers) if (q.role === 'weight' && q.scheme !== null) weightQ.set(q.module, q);
    return weightQ;
  }

  /** Linears whose weight apply() computes: quantized or smoothed, not already quantized by an algorithm. */
  private changingWeights(weightQ: Map<string, PlannedQuantizer>): Set<string> {
    return new Set([...weightQ.keys(), ...this.smooth.keys()].filter((l) => !this.prequantized.has(l)));
  }

  /**
   * Every changing Linear's smoothed (W / c) float32 weight with the per-tensor amax it shares with its fused
   * siblings (q/k/v, gate/up, when all use the same scheme, as the export writes them) or the global amax rule
   * gives it. One sibling group at a time, so that the host holds one group's float32 weights, not the model's.
   */
  private *preparedWeights(weightQ: Map<string, PlannedQuantizer>): Generator<{ lin: string; q: PlannedQuantizer | undefined; values: Float32Array; shared: number | undefined }> {
    const changing = this.changingWeights(weightQ);
    const groupOf = new Map<string, string[]>();
    for (const g of siblingGroups(this.model)) for (const l of g) groupOf.set(l, g);
    const done = new Set<string>();
    const shapeOf = (l: string): [number, number] => this.model.params.get(`${l}.weight`)!.shape as [number, number];
    for (const lin of changing) {
      if (done.has(lin)) continue;
      const unit = (groupOf.get(lin) ?? [lin]).filter((l) => changing.has(l));
      const values = unit.map((l) => divideColumns(this.model.params.get(`${l}.weight`)!.toFloat32Array(), shapeOf(l), this.smooth.get(l)));
      const group = groupOf.get(lin);
      const qs = group?.map((l) => weightQ.get(l));
      let shared: number | undefined;
      if (group !== undefined && qs!.every((q) => q !== undefined && !this.prequantized.has(q.module)) && new Set(qs!.map((q) => JSON.stringify(q!.scheme))).size === 1) {
        // every member quantizes, none was pre-quantized, so the unit is the whole group
        const amaxes = group.map((l, k) => tensorAmax(qs![k]!.scheme as WeightScheme, values[k]!, shapeOf(l)));
        if (amaxes.every((a) => a !== null)) shared = Math.max(...(amaxes as number[]));
      }
      for (let k = 0; k < unit.length; k++) {
        const l = unit[k]!;
        const q = weightQ.get(l);
        let own = shared;
        if (this.globalAmaxRule !== null && q !== undefined && q.scheme!.kind === 'nvfp4') {
          const a = own ?? tensorAmax(q.scheme as WeightScheme, values[k]!, shapeOf(l));
          if (a !== null) own = this.globalAmaxRule(a, l);
        }
        done.add(l);
        yield { lin: l, q, values: values[k]!, shared: own };
      }
    }
  }

  /** Hooks that fake-quantize (and smooth) Linear inputs and K/V on every forward. */
  private installHooks(): void {
    const input = new Map<string, PlannedQuantizer>();
    for (const q of this.quantizers) if (q.role === 'input' && q.scheme !== null) input.set(q.module, q);
    const kv = this.quantizers.filter((q) => q.role === 'kv' && q.scheme !== null);
    const folded = this.foldedExport?.foldedInputs ?? new Set<string>();
    const smoothedHere = (name: string): boolean => this.smooth.has(name) && !folded.has(name);
    this.model.linearHook = input.size === 0 && [...this.smooth.keys()].every((l) => folded.has(l)) ? null : (name, x, w, b) => {
      const q = input.get(name);
      if (q === undefined && !smoothedHere(name)) return undefined;
      const xs = smoothedHere(name) ? this.smoothed(name, x) : x;
      return linearFn(q === undefined ? xs : fakeQuantTensor(q, xs), w, b);
    };
    this.model.kvHook = kv.length === 0 ? null : (i, k, v) => {
      const kq = this.byName.get(`${kvModule(i)}.k_bmm_quantizer`);
      const vq = this.byName.get(`${kvModule(i)}.v_bmm_quantizer`);
      return [kq?.scheme ? fakeQuantTensor(kq, k) : k, vq?.scheme ? fakeQuantTensor(vq, v) : v];
    };
  }

  /**
   * Installs an algorithm's quantized weight for a Linear (dequantized values [out, in]) right away, so later
   * calibration passes see it; apply() keeps it instead of rounding the weight again.
   */
  setPrequantized(linear: string, original: Float32Array, quantized: Float32Array, scales?: StaticScales): void {
    if (this.applied) throw new Error('setPrequantized() after apply()');
    if (scales) this.staticScales.set(linear, scales);
    else this.staticScales.delete(linear);
    this.prequantValues.set(linear, quantized);
    const w = this.model.params.get(`${linear}.weight`)!;
    const replaced = keep(tidy(() => tensor(quantized, [...w.shape], { dtype: 'float32', device: w.backend }).cast(w.dtype)));
    w.dispose();
    this.model.params.set(`${linear}.weight`, replaced);
    this.prequantized.set(linear, original);
  }

  /** Linears with pre-quantized weights (saved with the quantization state: they cannot be recomputed). */
  prequantizedLinears(): string[] {
    return [...this.prequantized.keys()];
  }

  /** The weight a pre-quantized Linear had before the algorithm quantized it (smoothed, for AWQ clip). */
  prequantizedOriginal(linear: string): Float32Array | undefined {
    return this.prequantized.get(linear);
  }

  /** The static scales recorded with a pre-quantized weight, if any. */
  staticScalesOf(linear: string): StaticScales | undefined {
    return this.staticScales.get(linear);
  }

  /**
   * The per-tensor weight amax each fused sibling group shares (NVFP4's weight_scale_2), by Linear, from the
   * current (smoothed) weights: what an algorithm that quantizes weights itself must scale with so that the
   * export writes one global scale per group. With a globalAmaxRule set (an export prepared), also every other
   * NVFP4 weight's amax under the rule.
   */
  sharedWeightAmax(): Map<string, number> {
    const shared = new Map<string, number>();
    for (const { lin, shared: a } of this.preparedWeights(this.weightQuantizers())) if (a !== undefined) shared.set(lin, a);
    return shared;
  }

  /** A pre-quantized weight's float32 values as the algorithm produced them. */
  prequantizedValues(linear: string): Float32Array | undefined {
    return this.prequantValues.get(linear);
  }

  /** Smoothing factors by Linear, as plain arrays (for the saved state). */
  smoothValues(): Record<string, number[]> {
    return Object.fromEntries([...this.smooth].map(([k, v]) => [k, Array.from(v)]));
  }

  /** The calibrated amax of every calibrated quantizer, by name. */
  amaxValues(): Record<string, number> {
    return Object.fromEntries(this.calibrated().map((q) => [q.name, q.amax!]));
  }
}

/** Fake quantization of an activation tensor [..., hidden]: on its device when the scheme allows, else through the host-side format code. */
function fakeQuantTensor(q: PlannedQuantizer, x: Tensor): Tensor {
  const onDevice = fakeQuantOnDevice(q.scheme!.kind, x, q.amax);
  if (onDevice !== null) return onDevice;
  const shape = asMatrix(x.shape);
  const y = fakeQuantAct(q.scheme as ActScheme | KvScheme, x.toFloat32Array(), shape, q.amax);
  const f = tensor(y, [...x.shape], { dtype: 'float32', device: x.backend });
  return x.dtype === 'float32' ? f : f.cast(x.dtype);
}
