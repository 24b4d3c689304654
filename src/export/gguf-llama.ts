// Llama in GGUF the way llama.cpp names and lays it out (convert_hf_to_gguf.py, conversion/llama.py):
//   tensor names    model.embed_tokens -> token_embd, model.layers.N.{input_layernorm -> attn_norm,
//                   self_attn.{q,k,v,o}_proj -> attn_{q,k,v,output}, post_attention_layernorm -> ffn_norm,
//                   mlp.{gate,up,down}_proj -> ffn_{gate,up,down}}, model.norm -> output_norm, lm_head -> output
//                   (a tied head has no output.weight; llama.cpp then reads token_embd);
//   Q/K rows        llama.cpp's Llama RoPE rotates adjacent pairs (0,1), (2,3)... of each head where Hugging
//                   Face rotates halves (i, i + d/2), so q_proj (n_head) and k_proj (n_kv_head) rows are
//                   permuted: GGUF row h*d + 2j + t holds Hugging Face row h*d + t*d/2 + j;
//   hyperparameters llama.{context_length, embedding_length, block_count, feed_forward_length,
//                   attention.head_count(_kv), attention.key_length/value_length, rope.dimension_count,
//                   rope.freq_base, attention.layer_norm_rms_epsilon, vocab_size}, rope.scaling.* for linear.
// The reader side rebuilds a config.json from those keys and runs it through mopt's own validator.

import type { DecoderConfig } from '../models/config.js';
import { parseDecoderConfig } from '../models/config.js';
import { layerPrefix } from '../models/decoder.js';
import { gguf, type GgufFile, type GgufValue } from '../io/gguf.js';
import { UserError } from '../util/errors.js';

export const GGUF_ARCH = 'llama';

const LAYER_NAMES: readonly (readonly [string, string])[] = [
  ['input_layernorm', 'attn_norm'],
  ['self_attn.q_proj', 'attn_q'],
  ['self_attn.k_proj', 'attn_k'],
  ['self_attn.v_proj', 'attn_v'],
  ['self_attn.o_proj', 'attn_output'],
  ['post_attention_layernorm', 'ffn_norm'],
  ['mlp.gate_proj', 'ffn_gate'],
  ['mlp.up_proj', 'ffn_up'],
  ['mlp.down_proj', 'ffn_down'],
];
const TOP_NAMES: readonly (readonly [string, string])[] = [
  ['model.embed_tokens', 'token_embd'],
  ['model.norm', 'output_norm'],
  ['lm_head', 'output'],
];

/** The llama.cpp name of a Hugging Face parameter (`….weight`), or null when llama.cpp's Llama has none. */
export function ggufTensorName(hf: string): string | null {
  const m = /^(.*)\.(weight|bias)$/.exec(hf);
  if (m === null) return null;
  const [, module, kind] = m;
  const top = TOP_NAMES.find(([h]) => h === module);
  if (top) return `${top[1]}.${kind}`;
  const l = /^model\.layers\.(\d+)\.(.+)$/.exec(module!);
  const inner = l && LAYER_NAMES.find(([h]) => h === l[2]);
  return l && inner ? `blk.${l[1]}.${inner[1]}.${kind}` : null;
}

/** Whether a Hugging Face Linear's rows are permuted for llama.cpp's RoPE, and with how many heads. */
export function permutedHeads(hf: string, c: DecoderConfig): number | null {
  if (/\.self_attn\.q_proj\.weight$/.test(hf)) return c.numHeads;
  if (/\.self_attn\.k_proj\.weight$/.test(hf)) return c.numKvHeads;
  return null;
}

/** Row r of the GGUF tensor is row sourceRow(r) of the Hugging Face one (heads of headDim rows). */
function sourceRow(r: number, headDim: number): number {
  const h = Math.floor(r / headDim);
  const k = r % headDim;
  return h * headDim + (k % 2) * (headDim / 2) + (k >> 1);
}

/** Hugging Face rows -> llama.cpp rows (interleaved RoPE pairs), for any per-row data of `width` values a row. */
export function toGgufRows(a: Float32Array, rows: number, width: number, heads: number): Float32Array {
  const hd = rows / heads;
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) out.set(a.subarray(sourceRow(r, hd) * width, (sourceRow(r, hd) + 1) * width), r * width);
  return out;
}

/** llama.cpp rows -> Hugging Face rows (the inverse of toGgufRows). */
export function fromGgufRows(a: Float32Array, rows: number, width: number, heads: number): Float32Array {
  const hd = rows / heads;
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) out.set(a.subarray(r * width, (r + 1) * width), sourceRow(r, hd) * width);
  return out;
}

/** Throws when a decoder cannot be written as llama.cpp's llama architecture. */
export function checkLlamaExportable(c: DecoderConfig, source: string): void {
  const why =
    c.modelType !== 'llama' ? `model_type "${c.modelType}" (mopt writes GGUF for llama)`
      : c.attentionBias || c.mlpBias ? 'biases on attention or MLP projections'
        : c.qkNorm ? 'q/k norms'
          : c.slidingWindow.some((w) => w !== null) ? 'sliding-window attention'
            : c.rope.type !== 'default' && c.rope.type !== 'linear' ? `rope_type ${c.rope.type} (GGUF export carries default and linear RoPE scaling)`
              : c.headDim % 2 !== 0 ? `an odd head_dim ${c.headDim}`
                : null;
  if (why !== null) throw new UserError(`${source}: cannot be exported as GGUF: ${why}`);
}

/** The llama.* hyperparameter keys of a decoder. */
export function llamaMetadata(c: DecoderConfig): [string, GgufValue][] {
  const a = GGUF_ARCH;
  const kv: [string, GgufValue][] = [
    [`${a}.vocab_size`, gguf.u32(c.vocabSize)],
    [`${a}.context_length`, gguf.u32(c.maxPositionEmbeddings)],
    [`${a}.embedding_length`, gguf.u32(c.hiddenSize)],
    [`${a}.block_count`, gguf.u32(c.numLayers)],
    [`${a}.feed_forward_length`, gguf.u32(c.intermediateSize)],
    [`${a}.attention.head_count`, gguf.u32(c.numHeads)],
    [`${a}.attention.head_count_kv`, gguf.u32(c.numKvHeads)],
    [`${a}.attention.key_length`, gguf.u32(c.headDim)],
    [`${a}.attention.value_length`, gguf.u32(c.headDim)],
    [`${a}.rope.dimension_count`, gguf.u32(c.headDim)],
    [`${a}.rope.freq_base`, gguf.f32(c.rope.theta)],
    [`${a}.attention.layer_norm_rms_epsilon`, gguf.f32(c.rmsNormEps)],
  ];
  if (c.rope.type === 'linear') kv.push([`${a}.rope.scaling.type`, gguf.str('linear')], [`${a}.rope.scaling.factor`, gguf.f32(c.rope.factor)]);
  return kv;
}

/**
 * The decoder config a llama GGUF describes, as a Hugging Face config.json checked by mopt's validator;
 * `vocabRows` is token_embd's row count, `tied` whether output.weight is absent.
 */
export function configFromGguf(g: GgufFile, vocabRows: number, tied: boolean, bosId: number | null, eosIds: number[]): DecoderConfig {
  const arch = g.string('general.architecture');
  if (arch !== GGUF_ARCH) throw new UserError(`${g.path}: general.architecture is "${arch}"; mopt runs GGUF models of the llama architecture`);
  const a = GGUF_ARCH;
  const hidden = g.number(`${a}.embedding_length`);
  const heads = g.number(`${a}.attention.head_count`);
  const headDim = g.number(`${a}.attention.key_length`, hidden / heads);
  if (g.number(`${a}.attention.value_length`, headDim) !== headDim) throw new UserError(`${g.path}: ${a}.attention.value_length differs from key_length; mopt runs equal key and value head sizes`);
  if (g.number(`${a}.rope.dimension_count`, headDim) !== headDim) throw new UserError(`${g.path}: ${a}.rope.dimension_count is not the head size (partial rotary embeddings are not supported)`);
  const scaling = g.string(`${a}.rope.scaling.type`, 'none');
  if (scaling !== 'none' && scaling !== 'linear') throw new UserError(`${g.path}: ${a}.rope.scaling.type "${scaling}" is not supported; mopt reads none and linear`);
  const theta = g.number(`${a}.rope.freq_base`, 10000);
  const json = {
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    vocab_size: vocabRows,
    hidden_size: hidden,
    intermediate_size: g.number(`${a}.feed_forward_length`),
    num_hidden_layers: g.number(`${a}.block_count`),
    num_attention_heads: heads,
    num_key_value_heads: g.number(`${a}.attention.head_count_kv`, heads),
    head_dim: headDim,
    rms_norm_eps: g.number(`${a}.attention.layer_norm_rms_epsilon`),
    max_position_embeddings: g.number(`${a}.context_length`),
    rope_parameters: scaling === 'linear' ? { rope_type: 'linear', rope_theta: theta, factor: g.number(`${a}.rope.scaling.factor`) } : { rope_type: 'default', rope_theta: theta },
    tie_word_embeddings: tied,
    bos_token_id: bosId,
    eos_token_id: eosIds,
  };
  return parseDecoderConfig(json, `${g.path} (llama.* metadata)`);
}

/** Hugging Face names of every Linear whose input is an RMSNorm output, by the norm (for folding smoothing factors). */
export function normConsumers(c: DecoderConfig): [string, string[]][] {
  const out: [string, string[]][] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const p = layerPrefix(i);
    out.push([`${p}.input_layernorm`, ['q_proj', 'k_proj', 'v_proj'].map((m) => `${p}.self_attn.${m}`)]);
    out.push([`${p}.post_attention_layernorm`, [`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`]]);
  }
  if (!c.tieWordEmbeddings) out.push(['model.norm', ['lm_head']]);
  return out;
}
