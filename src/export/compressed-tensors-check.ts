// The checker both sides run on a compressed-tensors checkpoint's quantization tensors: the exporter before it
// writes, the loader before it builds a model. The plan (which Linears and K/V are quantized, from the
// preset's rules and the model's shapes) says what must be there: every required tensor with the right dtype
// and shape, finite positive scales, weight_shape equal to the Linear's shape, one NVFP4 global scale per
// fused group (vLLM fuses q/k/v and gate/up and keeps the max of their weight_global_scale,
// compressed_tensors_w4a4_nvfp4.py), and no quantization tensor the plan does not expect (a config that
// disagrees with the tensors). The first problem is one UserError naming the tensor.

import type { RawTensor } from '../io/raw-tensor.js';
import { layerPrefix } from '../models/decoder.js';
import { siblingGroups, type QuantizedModel } from '../quant/ptq.js';
import type { ActScheme, WeightScheme } from '../quant/scheme.js';
import { e4m3ToF32 } from '../tensor/codecs.js';
import { UserError } from '../util/errors.js';
import type { CtScheme } from './compressed-tensors-scheme.js';
import { inputSpec, weightSpecs, type TensorSpec } from './compressed-tensors-tensors.js';

/** tensor-name suffixes that only quantized modules carry (the compressors' compression_param_names and qparams) */
const QUANT_SUFFIXES = ['weight_packed', 'weight_scale', 'weight_shape', 'weight_global_scale', 'weight_zero_point', 'weight_g_idx', 'input_scale', 'input_global_scale', 'input_zero_point', 'output_scale', 'k_scale', 'v_scale'];

/** Every quantization tensor the plan needs, with its spec; also the Linears whose float `weight` it replaces. */
export function expectedTensors(q: QuantizedModel): { tensors: Map<string, TensorSpec>; packed: Set<string> } {
  const tensors = new Map<string, TensorSpec>();
  const packed = new Set<string>();
  for (const x of q.quantizers) {
    if (x.scheme === null) continue;
    if (x.role === 'weight') {
      const shape = q.model.params.get(`${x.module}.weight`)!.shape as [number, number];
      const specs = weightSpecs(x.scheme as WeightScheme, shape);
      for (const [suffix, spec] of Object.entries(specs)) tensors.set(`${x.module}.${suffix}`, spec);
      if (!('weight' in specs)) packed.add(x.module);
    } else if (x.role === 'input') {
      const s = inputSpec(x.scheme as ActScheme);
      if (s !== null) tensors.set(`${x.module}.${s[0]}`, s[1]);
    } else {
      const which = x.name.endsWith('k_bmm_quantizer') ? 'k' : 'v';
      tensors.set(`${layerPrefix(Number(x.module))}.self_attn.${which}_scale`, { dtype: 'float32', shape: [1], scale: true });
    }
  }
  return { tensors, packed };
}

/**
 * Throws a UserError for the first missing, misshapen or non-finite quantization tensor, or one the plan does not
 * expect. `get` returns a tensor by name; `names` lists every tensor present (for the unexpected check).
 */
export function checkCompressedTensors(q: QuantizedModel, scheme: CtScheme, get: (name: string) => RawTensor | undefined, where: string, names?: readonly string[]): void {
  const what = `${scheme.label} (${scheme.format})`;
  const { tensors, packed } = expectedTensors(q);
  for (const [name, spec] of tensors) {
    const t = get(name);
    if (t === undefined) throw new UserError(`${where}: ${name} is missing; ${what} needs it for that layer (a truncated checkpoint, or a config that disagrees with the tensors?)`);
    if (t.dtype !== spec.dtype || t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
      throw new UserError(`${where}: ${name} is ${t.dtype} [${t.shape.join(', ')}], ${what} needs ${spec.dtype} [${spec.shape.join(', ')}] (does the config match the tensors?)`);
    }
    if (spec.scale) {
      const i = badScale(t);
      if (i >= 0) throw new UserError(`${where}: ${name} holds ${scaleValue(t, i)} at element ${i}; scales must be finite and positive (re-export the checkpoint)`);
    }
    if (name.endsWith('.weight_shape')) {
      const lin = name.slice(0, -'.weight_shape'.length);
      const want = q.model.params.get(`${lin}.weight`)!.shape;
      const got = Array.from(t.data as BigInt64Array, Number);
      if (got[0] !== want[0] || got[1] !== want[1]) throw new UserError(`${where}: ${name} says [${got.join(', ')}] but the model's ${lin} is [${want.join(', ')}]`);
    }
  }
  for (const group of siblingGroups(q.model)) {
    const scales = group.filter((l) => tensors.has(`${l}.weight_global_scale`)).map((l) => [l, Number(get(`${l}.weight_global_scale`)!.data[0])] as const);
    const other = scales.find(([, s]) => s !== scales[0]![1]);
    if (other !== undefined) {
      throw new UserError(
        `${where}: ${other[0]}.weight_global_scale (${other[1]}) differs from ${scales[0]![0]}.weight_global_scale (${scales[0]![1]}); vLLM fuses these projections with one global scale, ` +
          'so fused Linears must share it (every mopt algorithm shares the NVFP4 global scale across q/k/v and gate/up; this checkpoint was not written that way)',
      );
    }
  }
  for (const name of names ?? []) {
    const dot = name.lastIndexOf('.');
    const suffix = name.slice(dot + 1);
    if (QUANT_SUFFIXES.includes(suffix) && !tensors.has(name)) {
      throw new UserError(`${where}: ${name} is in the checkpoint, but ${what} with this model's shapes has no such tensor for that layer: the config disagrees with the tensors`);
    }
    if (suffix === 'weight' && packed.has(name.slice(0, dot))) {
      throw new UserError(`${where}: ${name} is in the checkpoint, but ${what} stores that layer packed (weight_packed): the config disagrees with the tensors`);
    }
  }
}

function scaleValue(t: RawTensor, i: number): number {
  return t.dtype === 'float8_e4m3fn' ? e4m3ToF32(t.data[i] as number) : Number(t.data[i]);
}

function badScale(t: RawTensor): number {
  for (let i = 0; i < t.data.length; i++) {
    const v = scaleValue(t, i);
    if (!Number.isFinite(v) || !(v > 0)) return i;
  }
  return -1;
}
