// What of mopt's calibration a GGUF can carry, computed from a planned, calibrated QuantizedModel:
//   targets     each Linear's values to encode: the weight an algorithm quantized (GPTQ, AWQ clip: the state's
//               pre-quantized weights), else the AWQ-smoothed W / c, else the source weight;
//   hints       for an algorithm's weight, the INT4 grid step of each (row, group), amax/7 as the format code
//               rounds it, so a GGUF block can hold that grid (gguf-weighted.ts);
//   importance  E[x_j²] of each Linear's input channel over the calibration windows (times c_j² when the input
//               is smoothed: the deployed input is x * c);
//   folding     GGUF has no pre_quant_scale, so every smoothing factor moves into what produces the Linear's
//               input: q/k/v and gate/up factors into the RMSNorm weight before them (they share one factor,
//               AWQ searches them together), down_proj's into up_proj's rows (silu(gate) * up is linear in up),
//               o_proj's into v_proj's rows (attention mixes v rows per head; with grouped-query attention
//               the query heads sharing a KV head must share a factor, so it is their geometric mean, and an
//               o_proj whose own factors differ from it is re-smoothed from its source weight), lm_head's into
//               the final norm. The float model is unchanged by every fold.

import { amaxScale } from '../quant/formats/common.js';
import type { QuantizedModel } from '../quant/ptq.js';
import type { WeightScheme } from '../quant/scheme.js';
import { layerPrefix } from '../models/decoder.js';
import { linearNames } from '../quant/ptq.js';
import { UserError } from '../util/errors.js';
import type { GridHint } from './gguf-weighted.js';
import { normConsumers } from './gguf-llama.js';

export interface CarriedCalibration {
  /** Hugging Face name (`….weight`) -> values to encode (norms included, with their folded factors) */
  values: Map<string, Float32Array>;
  hints: Map<string, GridHint>;
  importance: Map<string, Float32Array>;
  notes: string[];
}

/** E[x_j²] of the input of every Linear in `linears`, over the calibration windows. */
export function inputEnergy(q: QuantizedModel, windows: readonly (readonly number[])[], linears: ReadonlySet<string>): Map<string, Float32Array> {
  const acc = new Map<string, { s: Float64Array; n: number }>();
  q.forEachInput(windows, (name, x) => {
    if (!linears.has(name)) return;
    const v = x.toFloat32Array();
    const cols = x.shape[x.shape.length - 1]!;
    const a = acc.get(name) ?? { s: new Float64Array(cols), n: 0 };
    for (let i = 0; i < v.length; i++) a.s[i % cols]! += v[i]! * v[i]!;
    a.n += v.length / cols;
    acc.set(name, a);
  });
  return new Map([...acc].map(([k, a]) => [k, Float32Array.from(a.s, (s) => s / a.n)]));
}

const same = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * The calibration carried into a GGUF: `source` holds the source weights (Hugging Face names, float32);
 * `energy` the input energies (or null without calibration windows). `source` is not modified.
 */
export function carryCalibration(q: QuantizedModel, source: ReadonlyMap<string, Float32Array>, energy: Map<string, Float32Array> | null): CarriedCalibration {
  const c = q.model.config;
  const values = new Map(source);
  const hints = new Map<string, GridHint>();
  const importance = new Map<string, Float32Array>();
  const notes: string[] = [];
  const shape = (lin: string): [number, number] => q.model.params.get(`${lin}.weight`)!.shape as [number, number];
  const schemes = new Map(q.quantizers.filter((x) => x.role === 'weight' && x.scheme !== null).map((x) => [x.module, x.scheme as WeightScheme]));
  for (const lin of linearNames(q.model)) {
    const key = `${lin}.weight`;
    const cols = shape(lin)[1];
    const smooth = q.smooth.get(lin);
    const pre = q.prequantizedValues(lin);
    const e = energy?.get(lin);
    if (e !== undefined) importance.set(lin, smooth ? Float32Array.from(e, (v, j) => v * smooth[j]! * smooth[j]!) : e);
    if (pre !== undefined) {
      values.set(key, pre);
      const scales = q.staticScalesOf(lin);
      const scheme = schemes.get(lin);
      if (scales !== undefined && scheme?.kind === 'int4') hints.set(lin, { group: scheme.groupSize, step: Float32Array.from(scales.blockAmax, (a) => amaxScale('int4', a, 7)) });
    } else if (smooth !== undefined) {
      const w = source.get(key)!;
      values.set(key, Float32Array.from(w, (v, i) => Math.fround(v / smooth[i % cols]!)));
    }
  }
  // smoothing into the RMSNorm before q/k/v, gate/up (and lm_head)
  for (const [norm, consumers] of normConsumers(c)) {
    const factors = consumers.map((l) => q.smooth.get(l));
    const first = factors.find((f) => f !== undefined);
    if (first === undefined) continue;
    consumers.forEach((lin, k) => {
      const own = factors[k];
      if (own !== undefined && same(own, first)) return;
      if (own !== undefined || q.prequantizedValues(lin) !== undefined) {
        throw new UserError(`${lin}: its smoothing factors differ from those of the other Linears reading ${norm}, so they cannot be folded into the norm for GGUF`);
      }
      // a consumer without factors of its own sees x * c too: its weight becomes W / c, exactly
      const w = source.get(`${lin}.weight`)!;
      const cols = shape(lin)[1];
      values.set(`${lin}.weight`, Float32Array.from(w, (v, i) => Math.fround(v / first[i % cols]!)));
      const e = importance.get(lin);
      if (e) importance.set(lin, Float32Array.from(e, (v, j) => v * first[j]! * first[j]!));
    });
    values.set(`${norm}.weight`, Float32Array.from(source.get(`${norm}.weight`)!, (g, j) => Math.fround(g * first[j]!)));
  }
  const scaleRows = (lin: string, factor: Float32Array): void => {
    const cols = shape(lin)[1];
    const w = values.get(`${lin}.weight`)!;
    values.set(`${lin}.weight`, Float32Array.from(w, (v, i) => Math.fround(v * factor[Math.floor(i / cols)]!)));
    const h = hints.get(lin);
    if (h) hints.set(lin, { group: h.group, step: Float32Array.from(h.step, (s, b) => Math.fround(s * factor[Math.floor(b / (cols / h.group))]!)) });
  };
  const averaged: string[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const p = layerPrefix(i);
    const down = q.smooth.get(`${p}.mlp.down_proj`);
    if (down !== undefined) scaleRows(`${p}.mlp.up_proj`, down);
    const o = q.smooth.get(`${p}.self_attn.o_proj`);
    if (o === undefined) continue;
    const group = c.numHeads / c.numKvHeads;
    const hd = c.headDim;
    const vFactor = new Float32Array(c.numKvHeads * hd);
    for (let kv = 0; kv < c.numKvHeads; kv++) {
      for (let d = 0; d < hd; d++) {
        let logSum = 0;
        for (let g = 0; g < group; g++) logSum += Math.log(o[(kv * group + g) * hd + d]!);
        vFactor[kv * hd + d] = Math.fround(Math.exp(logSum / group));
      }
    }
    const expanded = Float32Array.from(o, (_, j) => vFactor[Math.floor(j / (group * hd)) * hd + (j % hd)]!);
    if (!same(expanded, o)) {
      // the query heads of a KV head were smoothed differently: o_proj takes the shared factor instead
      const lin = `${p}.self_attn.o_proj`;
      const cols = shape(lin)[1];
      values.set(`${lin}.weight`, Float32Array.from(source.get(`${lin}.weight`)!, (v, k) => Math.fround(v / expanded[k % cols]!)));
      hints.delete(lin);
      const e = energy?.get(lin);
      if (e) importance.set(lin, Float32Array.from(e, (v, j) => v * expanded[j]! * expanded[j]!));
      averaged.push(`${i}${q.prequantizedValues(lin) ? ' (its algorithm-quantized weight re-encoded from the source)' : ''}`);
    }
    scaleRows(`${p}.self_attn.v_proj`, vFactor);
  }
  if (averaged.length > 0) {
    notes.push(`o_proj AWQ factors averaged over the ${c.numHeads / c.numKvHeads} query heads of each KV head (grouped-query attention) to fold into v_proj, layers ${averaged.join(', ')}`);
  }
  if (c.tieWordEmbeddings && q.smooth.has('model.embed_tokens')) throw new UserError('the tied LM head has smoothing factors, which cannot be folded into the embeddings it shares');
  return { values, hints, importance, notes };
}
