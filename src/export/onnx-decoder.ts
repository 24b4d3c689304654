// The decoder's forward as an ONNX graph of standard operators: input_ids [batch, seq] (int64) -> logits
// [batch, seq, vocab] (float32), the whole sequence at once with no KV cache, computed as mopt's decoder
// (src/models/decoder.ts) computes it:
//   embedding Gather; per layer RMSNorm (x * 1/sqrt(mean(x^2) + eps) * w, the statistics in float32),
//   q/k/v projections, optional q/k RMSNorm per head, rotate-half RoPE with cos/sin rows 0..seq-1 of tables
//   computed by src/models/rope.ts (so every rope_type and yarn's attention factor come out identical),
//   grouped-query attention with each KV head repeated for its H / KV query heads (transformers' repeat_kv),
//   scores * 1/sqrt(head_dim) plus a causal (and sliding-window) mask of -inf, Softmax, o_proj and the
//   residual; SwiGLU MLP silu(gate) * up -> down_proj and the residual; the final RMSNorm and the LM head
//   (tied: the embedding matrix transposed in the graph, so the file holds it once).
// Every Linear goes through `linear(name, x)`, which the quantized export replaces with its Q/DQ or
// MatMulNBits form; `kv` sees keys (after RoPE) and values before attention, where a KV-cache quantizer acts.

import type { DecoderConfig } from '../models/config.js';
import { layerPrefix } from '../models/decoder.js';
import { ONNX_DTYPE } from '../io/onnx-tensor.js';
import type { GraphSpec } from '../io/onnx-proto.js';
import { GraphBuilder, transpose } from './onnx-graph.js';

export const INPUT_IDS = 'input_ids';
export const LOGITS = 'logits';

/** The float32 values of a parameter, by Hugging Face name. */
export type ParamValues = (name: string) => { shape: readonly number[]; data: Float32Array } | undefined;
/** Emits y = x W^T for the Linear `name` (weight [out, in]); returns y's name. Biases are added by the decoder. */
export type EmitLinear = (g: GraphBuilder, name: string, x: string) => string;
/** Emits what happens to layer i's keys and values [batch, kvHeads, seq, headDim] before attention. */
export type EmitKv = (g: GraphBuilder, layer: number, k: string, v: string) => [string, string];

export interface RopeTable {
  /** [rows, headDim / 2] for positions 0..rows-1 */
  cos: Float32Array;
  sin: Float32Array;
  rows: number;
}

/**
 * The unquantized Linear: MatMul with the weight stored transposed ([in, out], ONNX MatMul's B layout) as
 * `<name>.weight_t`; a tied LM head multiplies by the transposed embedding matrix instead.
 */
export function floatLinear(params: ParamValues, tiedHead: boolean): EmitLinear {
  return (g, name, x) => {
    if (tiedHead && name === 'model.embed_tokens') return g.op('MatMul', [x, g.op('Transpose', ['model.embed_tokens.weight'], { perm: { ints: [1, 0] } })]);
    const w = params(`${name}.weight`)!;
    const [out, inp] = w.shape as [number, number];
    const t = g.f32(`${name}.weight_t`, [inp, out], transpose(w.data, out, inp, (n) => new Float32Array(n)));
    return g.op('MatMul', [x, t]);
  };
}

export function emitDecoder(c: DecoderConfig, params: ParamValues, rope: RopeTable, linear: EmitLinear, kv: EmitKv | null): GraphSpec {
  const g = new GraphBuilder();
  const need = (name: string): { shape: readonly number[]; data: Float32Array } => {
    const p = params(name);
    if (p === undefined) throw new Error(`ONNX export: parameter ${name} missing`);
    return p;
  };
  const param = (name: string): string => {
    const p = need(name);
    return g.f32(name, p.shape, p.data);
  };
  const lin = (name: string, x: string): string => (params(`${name}.bias`) === undefined ? linear(g, name, x) : g.op('Add', [linear(g, name, x), param(`${name}.bias`)]));
  const eps = g.constF32(c.rmsNormEps);
  const lastAxis = g.constI64([-1]);
  const rmsNorm = (x: string, weight: string): string => {
    const ms = g.op('ReduceMean', [g.op('Mul', [x, x]), lastAxis], { keepdims: { int: 1 } });
    const r = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, eps])])]);
    return g.op('Mul', [g.op('Mul', [x, r]), weight]);
  };

  // sequence length, positions and the attention mask, shared by every layer
  g.scope = 'positions';
  const seqLen = g.op('Shape', [INPUT_IDS], { start: { int: 1 }, end: { int: 2 } }); // int64 [1]
  const seq = g.op('Squeeze', [seqLen, g.constI64([0])]);
  const pos = g.op('Range', [g.constI64([0], true), seq, g.constI64([1], true)]); // [S]
  const half = c.headDim / 2;
  const table = (name: string, v: Float32Array): string => g.op('Slice', [g.f32(name, [rope.rows, half], v), g.constI64([0]), seqLen, g.constI64([0])]);
  const cos = table('rope.cos', rope.cos);
  const sin = table('rope.sin', rope.sin);
  const row = g.op('Unsqueeze', [pos, g.constI64([1])]); // query position [S, 1]
  const col = g.op('Unsqueeze', [pos, g.constI64([0])]); // key position [1, S]
  const future = g.op('Greater', [col, row]);
  const negInf = g.constF32(-Infinity);
  const zero = g.constF32(0);
  const masks = new Map<number | null, string>(); // [S, S]: 0 where a key is visible, -inf elsewhere
  for (const window of new Set(c.slidingWindow)) {
    g.scope = window === null ? 'mask' : `mask.window${window}`;
    // visible: not in the future and (with a window) fewer than `window` positions back
    const blocked = window === null ? future : g.op('Or', [future, g.op('GreaterOrEqual', [g.op('Sub', [row, col]), g.constI64([window], true)])]);
    masks.set(window, g.op('Where', [blocked, negInf, zero]));
  }

  g.scope = 'model.embed_tokens';
  let h = g.op('Gather', [param('model.embed_tokens.weight'), INPUT_IDS], { axis: { int: 0 } }); // [B, S, H]
  const headsShape = (n: number): string => g.constI64([0, 0, n, c.headDim]);
  const toHeads = g.constI64([0, 0, c.numHeads * c.headDim]);
  const rep = c.numHeads / c.numKvHeads;
  for (let i = 0; i < c.numLayers; i++) {
    const p = layerPrefix(i);
    g.scope = `${p}.self_attn`;
    const x = rmsNorm(h, param(`${p}.input_layernorm.weight`));
    const heads = (proj: string, n: number, norm: string | null): string => {
      let t = g.op('Reshape', [lin(`${p}.self_attn.${proj}`, x), headsShape(n)]); // [B, S, n, D]
      if (norm !== null) t = rmsNorm(t, param(`${p}.self_attn.${norm}.weight`));
      return g.op('Transpose', [t], { perm: { ints: [0, 2, 1, 3] } }); // [B, n, S, D]
    };
    const rotate = (t: string): string => {
      const [x1, x2] = g.opN('Split', [t], 2, { axis: { int: -1 }, num_outputs: { int: 2 } }) as [string, string];
      const a = g.op('Sub', [g.op('Mul', [x1, cos]), g.op('Mul', [x2, sin])]);
      const b = g.op('Add', [g.op('Mul', [x2, cos]), g.op('Mul', [x1, sin])]);
      return g.op('Concat', [a, b], { axis: { int: -1 } });
    };
    const q = rotate(heads('q_proj', c.numHeads, c.qkNorm ? 'q_norm' : null));
    let k = rotate(heads('k_proj', c.numKvHeads, c.qkNorm ? 'k_norm' : null));
    let v = heads('v_proj', c.numKvHeads, null);
    if (kv !== null) [k, v] = kv(g, i, k, v);
    if (rep > 1) {
      // [B, KV, S, D] -> [B, KV, rep, S, D] -> [B, H, S, D]: query head h reads KV head floor(h / rep)
      const expand = g.constI64([1, 1, rep, 1, 1]);
      const merged = g.constI64([0, c.numHeads, -1, c.headDim]);
      const repeat = (t: string): string => g.op('Reshape', [g.op('Expand', [g.op('Unsqueeze', [t, g.constI64([2])]), expand]), merged]);
      k = repeat(k);
      v = repeat(v);
    }
    const scores = g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [k], { perm: { ints: [0, 1, 3, 2] } })]), g.constF32(1 / Math.sqrt(c.headDim))]);
    const probs = g.op('Softmax', [g.op('Add', [scores, masks.get(c.slidingWindow[i] ?? null)!])], { axis: { int: -1 } });
    const attn = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, v])], { perm: { ints: [0, 2, 1, 3] } }), toHeads]);
    h = g.op('Add', [h, lin(`${p}.self_attn.o_proj`, attn)]);
    g.scope = `${p}.mlp`;
    const y = rmsNorm(h, param(`${p}.post_attention_layernorm.weight`));
    const gate = lin(`${p}.mlp.gate_proj`, y);
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), lin(`${p}.mlp.up_proj`, y)]);
    h = g.op('Add', [h, lin(`${p}.mlp.down_proj`, act)]);
  }
  g.scope = 'model.norm';
  const normed = rmsNorm(h, param('model.norm.weight'));
  g.scope = 'lm_head';
  g.alias(lin(c.tieWordEmbeddings ? 'model.embed_tokens' : 'lm_head', normed), LOGITS);
  return g.graph('mopt_decoder', [{ name: INPUT_IDS, elemType: ONNX_DTYPE.INT64, shape: ['batch', 'sequence'] }], [{ name: LOGITS, elemType: ONNX_DTYPE.FLOAT, shape: ['batch', 'sequence', c.vocabSize] }]);
}
