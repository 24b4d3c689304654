// Smoothing factors (SmoothQuant, AWQ: QuantizedModel.smooth, Model Optimizer's pre_quant_scale) have no
// tensor in compressed-tensors: llm-compressor multiplies them into the op that produces the smoothed Linear's
// input (llm-compressor modifiers/awq/mappings.py: input_layernorm -> q/k/v, v_proj -> o_proj,
// post_attention_layernorm -> gate/up, up_proj -> down_proj). This plans the same folding for a calibrated
// model, only where it is exact in real arithmetic:
//   q/k/v, gate/up   x * c = rmsnorm(h) * (g * c): the RMSNorm weight g takes c, when every Linear reading
//                    that norm has the same factors (a fused group smoothed as one unit);
//   o_proj           its input is attention over v_proj's output rows, so row r of v_proj takes c of the
//                    o_proj columns it feeds; under grouped-query attention one v_proj row feeds one column
//                    per query head of its group, so those columns must share c (llm-compressor skips this
//                    mapping when the shapes differ, awq/base.py _check_layers_are_compatible);
//   down_proj        its input is act(gate) * up, so row r of up_proj takes c[r];
// a row factor goes into v_proj / up_proj's float weight, or into their per-row scales when they are INT8
// (per channel) or INT4 (groups along the row): q * (s * c) = (q * s) * c. FP8 per tensor and NVFP4 (a
// global scale shared by the tensor, e4m3 block scales) cannot take a per-row factor exactly, and an FP8 KV
// cache would quantize the scaled V; those, and factors that differ where they must agree, are a UserError
// naming the layer.

import { layerPrefix } from '../models/decoder.js';
import { linearNames, type QuantizedModel } from '../quant/ptq.js';
import { UserError } from '../util/errors.js';

export interface Folding {
  /** per-channel factors multiplied into an RMSNorm weight, by the norm's weight name */
  norms: Map<string, Float32Array>;
  /** per-output-row factors multiplied into a Linear (weight or per-row scales, and bias), by Linear name */
  rows: Map<string, Float32Array>;
}

const FIX = 'compressed-tensors has no pre_quant_scale tensor; quantize with `mopt quantize ... --export-format compressed-tensors` (it leaves the Linears whose factors cannot fold unsmoothed), export with --export-format modelopt (it writes pre_quant_scale), or quantize without smoothing (--algorithm max)';

function refuse(layer: string, why: string): never {
  throw new UserError(`compressed-tensors export: ${layer}: ${why}; ${FIX}`);
}

const same = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

/** How every smoothing factor of q folds into the preceding op; a UserError for the first that cannot. */
export function planFolding(q: QuantizedModel): Folding {
  const folding: Folding = { norms: new Map(), rows: new Map() };
  if (q.smooth.size === 0) return folding;
  const c = q.model.config;
  const covered = new Set<string>();
  for (let i = 0; i < c.numLayers; i++) {
    const p = layerPrefix(i);
    const normFed: [string, string[]][] = [
      [`${p}.input_layernorm`, ['q_proj', 'k_proj', 'v_proj'].map((n) => `${p}.self_attn.${n}`)],
      [`${p}.post_attention_layernorm`, ['gate_proj', 'up_proj'].map((n) => `${p}.mlp.${n}`)],
    ];
    for (const [norm, group] of normFed) {
      const factors = group.map((l) => q.smooth.get(l));
      const first = factors.find((f) => f !== undefined);
      if (first === undefined) continue;
      const owner = group[factors.indexOf(first)]!;
      group.forEach((l, k) => {
        const f = factors[k];
        if (f === undefined) refuse(l, `it has no smoothing factors but ${owner} has, and both read ${norm}'s output, which can take only one set`);
        if (!same(f, first)) refuse(l, `its smoothing factors differ from those of ${owner}, and both read ${norm}'s output, which can take only one set`);
        covered.add(l);
      });
      folding.norms.set(`${norm}.weight`, first);
    }
    const o = `${p}.self_attn.o_proj`;
    const co = q.smooth.get(o);
    if (co !== undefined) {
      const v = `${p}.self_attn.v_proj`;
      checkRowTarget(q, o, v);
      if (q.quantizers.some((x) => x.name === `${p}.self_attn.v_bmm_quantizer` && x.scheme !== null)) {
        refuse(o, `its smoothing factors would scale ${v}'s output, which is the V the quantized KV cache stores with one per-tensor scale`);
      }
      folding.rows.set(v, gqaRows(o, co, c.numHeads, c.numKvHeads, c.headDim));
      covered.add(o);
    }
    const down = `${p}.mlp.down_proj`;
    const cd = q.smooth.get(down);
    if (cd !== undefined) {
      const up = `${p}.mlp.up_proj`;
      checkRowTarget(q, down, up);
      folding.rows.set(up, cd);
      covered.add(down);
    }
  }
  for (const l of linearNames(q.model)) if (q.smooth.has(l) && !covered.has(l)) refuse(l, 'no preceding op of this Linear can take its smoothing factors');
  return folding;
}

/** Throws unless `target`'s output rows can take a factor each: a float weight, or INT8 / INT4 per-row scales. */
function checkRowTarget(q: QuantizedModel, smoothed: string, target: string): void {
  const w = rowTargetScheme(q, target);
  if (w !== null) {
    refuse(smoothed, `its smoothing factors would fold into ${target}'s output rows, but ${target} is ${w}-quantized, whose per-tensor (global) scale cannot take a factor per row exactly`);
  }
}

/** The weight format of `target` when it cannot take a factor per output row, else null. */
function rowTargetScheme(q: QuantizedModel, target: string): string | null {
  const w = q.quantizers.find((x) => x.name === `${target}.weight_quantizer`)?.scheme ?? null;
  return w !== null && w.kind !== 'int8' && w.kind !== 'int4' ? w.kind : null;
}

/**
 * The Linears whose smoothing factors planFolding would refuse under q's plan, whatever their values: o_proj
 * with grouped-query attention (per-channel factors differ across the query heads of a KV head), with a v_proj
 * that cannot take row factors or a quantized V; down_proj with an up_proj that cannot. Quantizing for
 * compressed-tensors leaves them unsmoothed (as llm-compressor's mappings skip them).
 */
export function unfoldableSmoothing(q: QuantizedModel): string[] {
  const c = q.model.config;
  const out: string[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const p = layerPrefix(i);
    const vQuantized = q.quantizers.some((x) => x.name === `${p}.self_attn.v_bmm_quantizer` && x.scheme !== null);
    if (c.numKvHeads < c.numHeads || vQuantized || rowTargetScheme(q, `${p}.self_attn.v_proj`) !== null) out.push(`${p}.self_attn.o_proj`);
    if (rowTargetScheme(q, `${p}.mlp.up_proj`) !== null) out.push(`${p}.mlp.down_proj`);
  }
  return out;
}

/**
 * v_proj's row factors from o_proj's column factors: query head h reads KV head floor(h / (heads / kvHeads))
 * (transformers' repeat_kv), so column h*headDim + d reads v_proj row kv*headDim + d.
 */
function gqaRows(o: string, co: Float32Array, heads: number, kvHeads: number, headDim: number): Float32Array {
  const group = heads / kvHeads;
  const rows = new Float32Array(kvHeads * headDim);
  for (let kv = 0; kv < kvHeads; kv++) {
    for (let d = 0; d < headDim; d++) {
      const v = co[kv * group * headDim + d]!;
      for (let g = 1; g < group; g++) {
        if (co[(kv * group + g) * headDim + d] !== v) {
          refuse(o, `its smoothing factors differ between query heads ${kv * group} and ${kv * group + g}, which share KV head ${kv} (grouped-query attention), so they cannot be folded into v_proj's output rows`);
        }
      }
      rows[kv * headDim + d] = v;
    }
  }
  return rows;
}
