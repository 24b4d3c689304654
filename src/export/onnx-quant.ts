// A planned, calibrated QuantizedModel as ONNX: each Linear computes what mopt's fake-quantized model computes
// after apply() (src/quant/ptq.ts), with the codes and scales a deployed model holds:
//   x -> Mul(pre_quant_scale)                 smoothing (SmoothQuant / AWQ): the input becomes x * c
//     -> QuantizeLinear -> DequantizeLinear   static per-tensor INT8 or FP8 E4M3 input, scale = amax / 127 | 448
//     -> MatMul(DequantizeLinear(weight))     INT8 per channel (axis 1), FP8 per tensor or per channel,
//                                             INT4 blocks of `group` along the input axis (block_size, axis 0)
//   or MatMulNBits (com.microsoft, 4 bits)    instead of DequantizeLinear + MatMul for INT4
// Weights are stored transposed ([in, out], MatMul's B), codes from QuantizedModel.weightCodes() (the
// smoothed W / c, fused siblings' shared scales, algorithm-quantized weights included). FP8 KV-cache
// quantizers become a Q/DQ pair on the keys (after RoPE) and values of each layer.

import { layerPrefix } from '../models/decoder.js';
import { ONNX_DTYPE } from '../io/onnx-tensor.js';
import type { QuantizedModel, PlannedQuantizer } from '../quant/ptq.js';
import type { QuantizedWeight } from '../quant/scheme.js';
import type { Fp8Quantized } from '../quant/formats/fp8.js';
import type { Int8Quantized } from '../quant/formats/int8.js';
import { int4Values, type Int4Quantized } from '../quant/formats/int4.js';
import { amaxScale } from '../quant/formats/common.js';
import { UserError } from '../util/errors.js';
import { bytesOf, packInt4, transpose, MS_DOMAIN, type GraphBuilder } from './onnx-graph.js';
import type { EmitKv, EmitLinear, ParamValues } from './onnx-decoder.js';
import type { ExportRequest } from './registry.js';

/** How INT4 weights are written: standard DequantizeLinear with block_size, or ONNX Runtime's MatMulNBits. */
export type Int4Mode = NonNullable<ExportRequest['onnxInt4']>;
export const INT4_MODES: readonly Int4Mode[] = ['qdq', 'matmulnbits'];

/** Static activation formats ONNX's QuantizeLinear expresses, with the bound that turns amax into the scale. */
const ACT = { int8: { bound: 127, zeroType: ONNX_DTYPE.INT8 }, fp8: { bound: 448, zeroType: ONNX_DTYPE.FLOAT8E4M3FN } } as const;

/**
 * MatMulNBits' B: uint8 [N = out, K / block, block / 2]; within a block, element 2k in the low nibble, each
 * stored unsigned as q + 8 (the operator subtracts its default zero point 2^(bits-1) = 8 when none is given).
 */
export function packMatMulNBits(q: Int8Array, out: number, inp: number): Uint8Array {
  const b = new Uint8Array((out * inp) / 2);
  for (let i = 0; i < q.length; i++) b[i >> 1]! |= ((q[i]! + 8) & 0xf) << ((i & 1) * 4);
  return b;
}

export interface QuantEmitters {
  linear: EmitLinear;
  kv: EmitKv | null;
  /** Linears whose weights are stored quantized */
  quantized: string[];
}

export function quantEmitters(q: QuantizedModel, params: ParamValues, float: EmitLinear, int4: Int4Mode): QuantEmitters {
  const codes = q.weightCodes();
  const input = new Map<string, PlannedQuantizer>();
  for (const x of q.quantizers) if (x.role === 'input' && x.scheme !== null) input.set(x.module, x);
  for (const [lin, c] of codes) supportedWeight(lin, c.codes);
  for (const x of q.quantizers) if (x.role !== 'weight' && x.scheme !== null) actFormat(x);
  // one scalar zero point per element type, shared by every Q/DQ pair of the graph
  const zeros = new Map<number, string>();
  const zeroOf = (g: GraphBuilder, type: number): string => {
    const name = zeros.get(type) ?? g.tensor(`zero_point.${type === ONNX_DTYPE.INT8 ? 'int8' : 'float8e4m3fn'}`, type, [], Uint8Array.of(0));
    zeros.set(type, name);
    return name;
  };
  const qdq = (g: GraphBuilder, x: string, quantizer: PlannedQuantizer, scaleName: string): string => {
    const a = ACT[actFormat(quantizer)];
    const scale = g.f32(scaleName, [], Float32Array.of(amaxScale(quantizer.name, quantizer.amax!, a.bound)));
    const zp = zeroOf(g, a.zeroType);
    return g.op('DequantizeLinear', [g.op('QuantizeLinear', [x, scale, zp]), scale, zp]);
  };

  const linear: EmitLinear = (g, name, x0) => {
    const smooth = q.smooth.get(name);
    let x = smooth === undefined ? x0 : g.op('Mul', [x0, g.f32(`${name}.pre_quant_scale`, [smooth.length], smooth)]);
    const iq = input.get(name);
    if (iq !== undefined) x = qdq(g, x, iq, `${name}.input_scale`);
    const c = codes.get(name)?.codes;
    if (c === undefined) {
      // an unquantized weight still holds W / c when its input is smoothed
      if (smooth === undefined) return float(g, name, x);
      const w = params(`${name}.weight`)!;
      const [out, inp] = w.shape as [number, number];
      const scaled = w.data.map((v, i) => Math.fround(v / smooth[i % inp]!));
      return g.op('MatMul', [x, g.f32(`${name}.weight_t`, [inp, out], transpose(scaled, out, inp, (n) => new Float32Array(n)))]);
    }
    const [out, inp] = c.meta.shape;
    if (c.meta.format === 'int4' && int4 === 'matmulnbits') {
      const w = c as Int4Quantized;
      const group = w.meta.groupSize;
      const b = g.tensor(`${name}.qweight`, ONNX_DTYPE.UINT8, [out, inp / group, group / 2], packMatMulNBits(int4Values(w), out, inp));
      const s = g.f32(`${name}.weight_scale`, [out, inp / group], w.scales);
      return g.op('MatMulNBits', [x, b, s], { K: { int: inp }, N: { int: out }, bits: { int: 4 }, block_size: { int: group } }, MS_DOMAIN);
    }
    return g.op('MatMul', [x, dequantizedWeight(g, name, c)]);
  };

  const kvQ = (i: number, which: 'k' | 'v'): PlannedQuantizer | undefined =>
    q.quantizers.find((x) => x.role === 'kv' && x.scheme !== null && x.name === `${layerPrefix(i)}.self_attn.${which}_bmm_quantizer`);
  const anyKv = q.quantizers.some((x) => x.role === 'kv' && x.scheme !== null);
  const kv: EmitKv | null = !anyKv ? null : (g, i, k, v) => {
    const kq = kvQ(i, 'k');
    const vq = kvQ(i, 'v');
    return [kq ? qdq(g, k, kq, `${layerPrefix(i)}.self_attn.k_proj.k_scale`) : k, vq ? qdq(g, v, vq, `${layerPrefix(i)}.self_attn.v_proj.v_scale`) : v];
  };
  return { linear, kv, quantized: [...codes.keys()] };
}

/** DequantizeLinear of a weight stored transposed, [in, out]. */
function dequantizedWeight(g: GraphBuilder, name: string, c: QuantizedWeight): string {
  const [out, inp] = c.meta.shape;
  const qname = `${name}.qweight_t`;
  switch (c.meta.format) {
    case 'int8': {
      const w = c as Int8Quantized;
      const t = g.tensor(qname, ONNX_DTYPE.INT8, [inp, out], bytesOf(transpose(w.codes, out, inp, (n) => new Int8Array(n))));
      return g.op('DequantizeLinear', [t, g.f32(`${name}.weight_scale`, [out], w.scales)], { axis: { int: 1 } });
    }
    case 'fp8': {
      const w = c as Fp8Quantized;
      const t = g.tensor(qname, ONNX_DTYPE.FLOAT8E4M3FN, [inp, out], transpose(w.codes, out, inp, (n) => new Uint8Array(n)));
      const perTensor = w.meta.granularity === 'tensor';
      const s = g.f32(`${name}.weight_scale`, perTensor ? [] : [out], w.scales);
      return g.op('DequantizeLinear', [t, s], perTensor ? {} : { axis: { int: 1 } });
    }
    case 'int4': {
      const w = c as Int4Quantized;
      const group = w.meta.groupSize;
      const t = g.tensor(qname, ONNX_DTYPE.INT4, [inp, out], packInt4(transpose(int4Values(w), out, inp, (n) => new Int8Array(n))));
      const s = g.f32(`${name}.weight_scale`, [inp / group, out], transpose(w.scales, out, inp / group, (n) => new Float32Array(n)));
      return g.op('DequantizeLinear', [t, s], { axis: { int: 0 }, block_size: { int: group } });
    }
    default:
      throw new Error(`ONNX export: ${c.meta.format} weights`); // refused by supportedWeight before anything is built
  }
}

function supportedWeight(lin: string, c: QuantizedWeight): void {
  const f = c.meta.format;
  if (f !== 'int8' && f !== 'fp8' && f !== 'int4') {
    throw new UserError(`ONNX export: ${lin} has ${f} weights, which standard ONNX DequantizeLinear cannot express; ONNX exports INT8, FP8 (per tensor or channel) and INT4 weights`);
  }
  if (f === 'fp8' && (c as Fp8Quantized).meta.arith !== 'float32') throw new UserError(`ONNX export: ${lin} has FP8 weights computed in bfloat16 arithmetic; ONNX scales are float32`);
}

function actFormat(x: PlannedQuantizer): keyof typeof ACT {
  const kind = x.scheme!.kind;
  if (kind !== 'int8' && kind !== 'fp8') {
    throw new UserError(`ONNX export: ${x.name} quantizes ${kind} activations; ONNX QuantizeLinear expresses static per-tensor INT8 and FP8 only`);
  }
  return kind;
}
