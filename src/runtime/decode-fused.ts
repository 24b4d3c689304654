// The whole-step decode kernel (backend.ts FusedDecode) for a DecoderLM: the model's parameters, its KV cache
// and the device-side position handed over as a DecodeStepSpec. Only models the kernel computes exactly as
// DecoderLM.forward does qualify: no Linear or KV hooks (quantizers see each Linear), no biases, no q/k norms,
// no sliding window that could cut the cache; the backend then declines shapes or dtypes it does not handle.

import type { DecodeStepKernel, DecodeStepLayer } from '../backend/backend.js';
import { hasFusedDecode } from '../backend/backend.js';
import type { DecoderLM, DevicePosition } from '../models/decoder.js';
import { layerPrefix } from '../models/decoder.js';
import type { KVCache } from '../models/kv-cache.js';
import type { Tensor } from '../tensor/index.js';

/** Device buffers the step reads and writes besides the model and cache. */
export interface FusedStepIO {
  pos: DevicePosition;
  /** int32 [1, 1]: the input token; the step writes its choice here */
  ids: Tensor;
  /** int32 [1]: the step's greedy choice */
  next: Tensor;
  /** int32 [capacity]: each step's choice at its position, or null */
  produced: Tensor | null;
  /** float32 [vocab]: the step's logits, or null */
  logits: Tensor | null;
  /** record phase times (DecodeStepKernel.phaseNs) */
  timing?: boolean;
}

/** The prepared whole-step kernel, or null where the model or backend does not qualify. */
export function fusedDecodeStep(model: DecoderLM, cache: KVCache, io: FusedStepIO): DecodeStepKernel | null {
  const b = model.backend;
  const c = model.config;
  if (!hasFusedDecode(b) || model.linearHook !== null || model.kvHook !== null || model.streamed !== undefined) return null;
  if (c.qkNorm || [...model.params.keys()].some((n) => n.endsWith('.bias'))) return null;
  if (c.slidingWindow.some((w) => w !== null && w < cache.capacity) || cache.batch !== 1) return null;
  const p = (name: string): Tensor => model.param(name);
  const layers: DecodeStepLayer[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const l = layerPrefix(i);
    const [kCache, vCache] = cache.buffers(i);
    layers.push({
      inputNorm: p(`${l}.input_layernorm.weight`),
      q: p(`${l}.self_attn.q_proj.weight`),
      k: p(`${l}.self_attn.k_proj.weight`),
      v: p(`${l}.self_attn.v_proj.weight`),
      o: p(`${l}.self_attn.o_proj.weight`),
      postNorm: p(`${l}.post_attention_layernorm.weight`),
      gate: p(`${l}.mlp.gate_proj.weight`),
      up: p(`${l}.mlp.up_proj.weight`),
      down: p(`${l}.mlp.down_proj.weight`),
      kCache,
      vCache,
    });
  }
  return b.decodeStep({
    hidden: c.hiddenSize,
    heads: c.numHeads,
    kvHeads: c.numKvHeads,
    headDim: c.headDim,
    intermediate: c.intermediateSize,
    vocab: c.vocabSize,
    eps: c.rmsNormEps,
    capacity: cache.capacity,
    embed: p('model.embed_tokens.weight'),
    finalNorm: p('model.norm.weight'),
    lmHead: p(c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'),
    layers,
    cos: io.pos.cos,
    sin: io.pos.sin,
    pos: io.pos.at,
    ids: io.ids,
    next: io.next,
    produced: io.produced,
    logits: io.logits,
    timing: io.timing,
  });
}
