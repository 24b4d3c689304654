// The checker both sides run on a Model Optimizer checkpoint's quantization tensors: the exporter before
// it writes, the loader before it builds a model. The plan (which Linears, K/V quantize, from the preset's
// rules and the model's shapes) says what must be there; every required tensor must exist with the right
// dtype and shape and hold finite scales, and no quantization tensor may exist that the plan does not
// expect (a config that disagrees with the tensors). The first problem is one UserError naming the tensor.

import type { RawTensor } from '../io/raw-tensor.js';
import type { QuantizedModel } from '../quant/ptq.js';
import type { ActScheme, WeightScheme } from '../quant/scheme.js';
import { UserError } from '../util/errors.js';
import type { QuantAlgo } from './modelopt-format.js';
import { INPUT_BOUND, weightSpecs, type TensorSpec } from './modelopt-tensors.js';
import { kvScaleName } from './modelopt-plan.js';

const E4M3_NAN = 0x7f;
const E8M0_NAN = 0xff;
const SCALE_SUFFIXES = ['weight_scale', 'weight_scale_2', 'input_scale', 'pre_quant_scale', 'k_scale', 'v_scale'];

/** What the checker expects of one tensor: its spec, its Linear (or layer index), whether it holds scales that must be finite and positive. */
export type Expected = TensorSpec & { module: string; scale: 'positive' | 'finite' | null };

/** Every tensor name the checker expects. */
export function expectedTensors(q: QuantizedModel): Map<string, Expected> {
  const out = new Map<string, Expected>();
  for (const x of q.quantizers) {
    if (x.scheme === null) continue;
    if (x.role === 'weight') {
      const shape = q.model.params.get(`${x.module}.weight`)!.shape as [number, number];
      for (const [suffix, spec] of Object.entries(weightSpecs(x.scheme as WeightScheme, shape))) {
        out.set(`${x.module}.${suffix}`, { ...spec, module: x.module, scale: suffix === 'weight' ? null : 'finite' });
      }
    } else if (x.role === 'input' && (x.scheme as ActScheme).kind in INPUT_BOUND) {
      out.set(`${x.module}.input_scale`, { dtype: 'float32', shape: [], module: x.module, scale: 'positive' });
    } else if (x.role === 'kv') {
      const which = x.name.endsWith('k_bmm_quantizer') ? 'k' : 'v';
      out.set(kvScaleName(Number(x.module), which), { dtype: 'float32', shape: [], module: x.module, scale: 'positive' });
    }
  }
  for (const [lin, c] of q.smooth) out.set(`${lin}.pre_quant_scale`, { dtype: 'float32', shape: [c.length], module: lin, scale: 'positive' });
  return out;
}

/**
 * Throws a UserError for the first missing, misshapen or non-finite quantization tensor, or one the plan does
 * not expect. `get` returns a tensor by name; `names` lists every tensor present (for the unexpected check).
 */
export function checkQuantizedTensors(q: QuantizedModel, algo: QuantAlgo, get: (name: string) => RawTensor | undefined, where: string, names?: readonly string[]): void {
  const expected = expectedTensors(q);
  // MIXED_PRECISION: name the layer's own quant_algo (K/V and unquantized smoothed Linears: the checkpoint's)
  const algoOf = (module: string): string => algo.layers?.get(module)?.quant_algo ?? algo.quantAlgo;
  for (const [name, spec] of expected) {
    const t = get(name);
    if (t === undefined) throw new UserError(`${where}: ${name} is missing; ${algoOf(spec.module)} needs it for that layer (a truncated or mismatched checkpoint?)`);
    if (t.dtype !== spec.dtype || t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
      throw new UserError(`${where}: ${name} is ${t.dtype} [${t.shape.join(', ')}], ${algoOf(spec.module)} needs ${spec.dtype} [${spec.shape.join(', ')}]`);
    }
    if (spec.scale !== null) {
      const bad = firstBadScale(t, spec.scale === 'positive');
      if (bad !== null) throw new UserError(`${where}: ${name} holds ${bad} at element ${badIndex(t, spec.scale === 'positive')}; scales must be finite${spec.scale === 'positive' ? ' and positive' : ''}`);
    }
  }
  for (const name of names ?? []) {
    const suffix = name.slice(name.lastIndexOf('.') + 1);
    if (SCALE_SUFFIXES.includes(suffix) && !expected.has(name)) {
      throw new UserError(`${where}: ${name} is in the checkpoint, but ${algo.layers !== null ? 'its quantized_layers and kv_cache_quant_algo do not quantize that layer' : `${algo.quantAlgo} with this model's shapes does not quantize that layer`}: the config disagrees with the tensors`);
    }
  }
}

function value(t: RawTensor, i: number): number {
  if (t.dtype === 'float8_e4m3fn') return ((t.data[i] as number) & 0x7f) === E4M3_NAN ? NaN : 1;
  if (t.dtype === 'uint8') return t.data[i] === E8M0_NAN ? NaN : 1; // MX block scales
  return Number(t.data[i]);
}

function firstBadScale(t: RawTensor, positive: boolean): string | null {
  const i = badIndex(t, positive);
  return i < 0 ? null : String(value(t, i));
}

function badIndex(t: RawTensor, positive: boolean): number {
  for (let i = 0; i < t.data.length; i++) {
    const v = value(t, i);
    if (!Number.isFinite(v) || (positive && !(v > 0))) return i;
  }
  return -1;
}
