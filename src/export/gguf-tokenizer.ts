// A Hugging Face tokenizer.json as GGUF tokenizer metadata, and back. llama.cpp tokenizes from the ggml keys:
//   "llama" (SentencePiece-style BPE with byte fallback, e.g. Llama 2, stories260K): tokens, scores, token_type;
//           llama.cpp merges the adjacent pair whose joined piece has the highest score, so a merge's rank r
//           becomes the score -r of the piece it makes (convert_hf_to_gguf.py's LlamaHfVocab writes -1000 for
//           every piece, which makes llama.cpp merge left to right instead of in BPE order); byte pieces
//           <0xXX> are type 6, special added tokens 3 (the unk token 2), other added tokens 4, padding 5;
//   "gpt2"  (byte-level BPE): tokens, token_type and merges ("a b"), with tokenizer.ggml.pre naming the
//           pre-tokenizer regex (mopt recognizes GPT-2's own);
// plus bos / eos / unknown / padding ids, add_bos_token / add_eos_token from the post-processor template and
// add_space_prefix from the normalizer. The whole tokenizer.json also goes into tokenizer.huggingface.json
// (GGUF's key for it), which mopt's reader prefers; without it the reader rebuilds a tokenizer.json from the
// ggml keys (merges from the scores for "llama"), which the tests hold to the original on real text.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile } from '../io/json-file.js';
import { Tokenizer } from '../io/tokenizer.js';
import { gguf, type GgufFile, type GgufValue } from '../io/gguf.js';
import { UserError } from '../util/errors.js';

const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;
const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;
type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A merges entry as its two parts ("a b" or ["a", "b"]). */
function mergePair(m: unknown, source: string): [string, string] {
  if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
  if (typeof m === 'string') {
    const i = m.indexOf(' ', 1);
    if (i > 0) return [m.slice(0, i), m.slice(i + 1)];
  }
  throw new UserError(`${source}: merges entry ${JSON.stringify(m)} is neither "a b" nor ["a", "b"]`);
}

/** Whether the template of a TemplateProcessing post-processor starts (or ends) with a special token. */
function templateAdds(pp: unknown): { bos: boolean; eos: boolean } {
  const procs = !isObj(pp) ? [] : pp.type === 'Sequence' && Array.isArray(pp.processors) ? pp.processors : [pp];
  for (const p of procs) {
    if (!isObj(p) || p.type !== 'TemplateProcessing' || !Array.isArray(p.single)) continue;
    const single = p.single as unknown[];
    const isSpecial = (x: unknown): boolean => isObj(x) && isObj(x.SpecialToken);
    return { bos: isSpecial(single[0]), eos: single.length > 1 && isSpecial(single[single.length - 1]) };
  }
  return { bos: false, eos: false };
}

/** The GGUF tokenizer keys for the tokenizer in a Hugging Face model directory, padded to `vocabSize` entries. */
export function tokenizerMetadata(dir: string, vocabSize: number): [string, GgufValue][] {
  const path = join(dir, 'tokenizer.json');
  if (!existsSync(path)) throw new UserError(`${dir} has no tokenizer.json; a GGUF model carries its tokenizer, so mopt needs it to write one`);
  const json = readJsonFile(path, 'tokenizer');
  const cfgPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(cfgPath) ? readJsonFile(cfgPath, 'tokenizer config') : {};
  if (!isObj(json) || !isObj(json.model) || json.model.type !== 'BPE') throw new UserError(`${path}: GGUF export supports BPE tokenizers (SentencePiece-style or byte-level), this one is ${isObj(json) && isObj(json.model) ? String(json.model.type) : 'not a tokenizer.json'}`);
  const tok = Tokenizer.fromJSON(json, config, path);
  const model = json.model;
  const vocab = model.vocab as Record<string, number>;
  const tokens: string[] = [];
  for (const [piece, id] of Object.entries(vocab)) tokens[id] = piece;
  const added = Array.isArray(json.added_tokens) ? (json.added_tokens as Json[]) : [];
  const addedType = new Map<number, number>();
  const unkId = typeof model.unk_token === 'string' ? vocab[model.unk_token] ?? null : null;
  for (const a of added) {
    const id = a.id as number;
    tokens[id] = a.content as string;
    addedType.set(id, id === unkId ? UNKNOWN : a.special === true ? CONTROL : USER_DEFINED);
  }
  if (tokens.length > vocabSize) throw new UserError(`${path}: the tokenizer has ${tokens.length} ids but the model's vocab_size is ${vocabSize}`);
  for (let i = 0; i < tokens.length; i++) if (tokens[i] === undefined) throw new UserError(`${path}: no token has id ${i}; GGUF needs one token per id`);
  const nReal = tokens.length;
  for (let i = nReal; i < vocabSize; i++) tokens.push(`[PAD${i - nReal + 1}]`);
  const types = tokens.map((t, i) => (i >= nReal ? UNUSED : addedType.get(i) ?? (i === unkId ? UNKNOWN : NORMAL)));
  const merges = Array.isArray(model.merges) ? model.merges.map((m) => mergePair(m, path)) : [];
  const adds = templateAdds(json.post_processor);
  const kv: [string, GgufValue][] = [];
  if (model.byte_fallback === true) {
    // SentencePiece-style: llama.cpp ranks merges by the score of the piece they make; a multi-character piece
    // no merge makes (BPE never produces it) gets a score below every merge
    tokens.forEach((t, i) => {
      if (types[i] === NORMAL && BYTE_PIECE.test(t)) types[i] = BYTE;
    });
    const rank = new Map<string, number>();
    merges.forEach(([a, b], r) => {
      if (!rank.has(a + b)) rank.set(a + b, r);
    });
    const scores = tokens.map((t, i) => (types[i] !== NORMAL ? 0 : rank.has(t) ? -rank.get(t)! : [...t].length > 1 ? -1e6 : 0));
    const norm = JSON.stringify(json.normalizer ?? null);
    const pre = json.pre_tokenizer;
    const spacePrefix = norm.includes('"Prepend"') || (isObj(pre) && pre.type === 'Metaspace' && pre.prepend_scheme !== 'never' && pre.add_prefix_space !== false);
    kv.push(['tokenizer.ggml.model', gguf.str('llama')], ['tokenizer.ggml.pre', gguf.str('default')], ['tokenizer.ggml.tokens', gguf.strings(tokens)],
      ['tokenizer.ggml.scores', gguf.numbers('float32', scores)], ['tokenizer.ggml.token_type', gguf.numbers('int32', types)],
      ['tokenizer.ggml.add_space_prefix', gguf.bool(spacePrefix)]);
  } else {
    const pre = json.pre_tokenizer;
    if (!(isObj(pre) && pre.type === 'ByteLevel' && pre.use_regex !== false && pre.add_prefix_space !== true)) {
      throw new UserError(`${path}: byte-level BPE with pre-tokenizer ${JSON.stringify(pre)}: mopt writes llama.cpp's tokenizer.ggml.pre only for GPT-2's (ByteLevel with its regex)`);
    }
    // llama.cpp writes a space inside a merge part as U+0120, as the byte-level alphabet does
    const mergeStrings = merges.map(([a, b]) => `${a.replaceAll(' ', '\u0120')} ${b.replaceAll(' ', '\u0120')}`);
    kv.push(['tokenizer.ggml.model', gguf.str('gpt2')], ['tokenizer.ggml.pre', gguf.str('gpt-2')], ['tokenizer.ggml.tokens', gguf.strings(tokens)],
      ['tokenizer.ggml.token_type', gguf.numbers('int32', types)], ['tokenizer.ggml.merges', gguf.strings(mergeStrings)]);
  }
  const idOf = (v: unknown): number | null => (typeof v === 'string' ? tok.tokenToId(v) : isObj(v) && typeof v.content === 'string' ? tok.tokenToId(v.content) : null);
  const special: [string, number | null][] = [['bos', tok.bosId], ['eos', tok.eosId], ['unknown', unkId], ['padding', isObj(config) ? idOf(config.pad_token) : null]];
  for (const [name, id] of special) if (id !== null) kv.push([`tokenizer.ggml.${name}_token_id`, gguf.u32(id)]);
  kv.push(['tokenizer.ggml.add_bos_token', gguf.bool(adds.bos)], ['tokenizer.ggml.add_eos_token', gguf.bool(adds.eos)]);
  kv.push(['tokenizer.huggingface.json', gguf.str(JSON.stringify(json))]);
  return kv;
}

/** The tokenizer of a GGUF file (tokenizer.huggingface.json when present, else rebuilt from the ggml keys). */
export function tokenizerFromGguf(g: GgufFile): { tokenizer: Tokenizer; eosIds: number[]; bosId: number | null } {
  const tokens = stringItems(g, 'tokenizer.ggml.tokens');
  const id = (key: string): number | null => (g.metadata.has(key) ? g.number(key) : null);
  const bosId = id('tokenizer.ggml.bos_token_id');
  const eosId = id('tokenizer.ggml.eos_token_id');
  for (const [k, v] of [['bos', bosId], ['eos', eosId]] as const) {
    if (v !== null && (v < 0 || v >= tokens.length)) throw new UserError(`${g.path}: tokenizer.ggml.${k}_token_id ${v} is outside the ${tokens.length} tokens`);
  }
  const config: Json = { clean_up_tokenization_spaces: false };
  if (bosId !== null) config.bos_token = tokens[bosId];
  if (eosId !== null) config.eos_token = tokens[eosId];
  const hf = g.metadata.get('tokenizer.huggingface.json');
  let json: unknown;
  if (hf !== undefined && hf.type === 'string') {
    try {
      json = JSON.parse(hf.value) as unknown;
    } catch {
      throw new UserError(`${g.path}: tokenizer.huggingface.json is not valid JSON`);
    }
  } else {
    json = rebuildTokenizerJson(g);
  }
  return { tokenizer: Tokenizer.fromJSON(json, config, `${g.path} (tokenizer)`), eosIds: eosId === null ? [] : [eosId], bosId };
}

function stringItems(g: GgufFile, key: string): string[] {
  const a = g.array(key);
  if (a.itemType !== 'string') throw new UserError(`${g.path}: ${key} must be an array of strings`);
  return a.items;
}

function numberItems(g: GgufFile, key: string, n: number): number[] {
  const a = g.array(key);
  const bad = (): never => {
    throw new UserError(`${g.path}: ${key} must be ${n} numbers, one per token`);
  };
  switch (a.itemType) {
    case 'string':
    case 'bool':
    case 'array':
    case 'uint64':
    case 'int64':
      return bad();
    default:
      return a.items.length === n ? a.items : bad();
  }
}

/** A tokenizer.json equivalent to the ggml tokenizer keys (llama.cpp's "llama" and "gpt2" with pre "gpt-2"). */
export function rebuildTokenizerJson(g: GgufFile): Json {
  const kind = g.string('tokenizer.ggml.model');
  const tokens = stringItems(g, 'tokenizer.ggml.tokens');
  const types = g.metadata.has('tokenizer.ggml.token_type') ? numberItems(g, 'tokenizer.ggml.token_type', tokens.length) : tokens.map(() => NORMAL);
  const flag = (key: string, fallback: boolean): boolean => {
    const v = g.metadata.get(key);
    return v?.type === 'bool' ? v.value : fallback;
  };
  const special = (key: string): string | null => (g.metadata.has(key) ? tokens[g.number(key)] ?? null : null);
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (!(t in vocab)) vocab[t] = i;
  });
  const added = tokens.flatMap((t, i) => (types[i] === CONTROL || types[i] === UNKNOWN || types[i] === USER_DEFINED
    ? [{ id: i, content: t, single_word: false, lstrip: false, rstrip: false, normalized: types[i] === USER_DEFINED, special: types[i] !== USER_DEFINED }] : []));
  const bos = special('tokenizer.ggml.bos_token_id');
  const eos = special('tokenizer.ggml.eos_token_id');
  const addBos = flag('tokenizer.ggml.add_bos_token', kind === 'llama') && bos !== null;
  const addEos = flag('tokenizer.ggml.add_eos_token', false) && eos !== null;
  const template = (): Json => {
    const single: Json[] = [];
    const specials: Json = {};
    const add = (t: string): void => {
      single.push({ SpecialToken: { id: t, type_id: 0 } });
      specials[t] = { id: t, ids: [vocab[t]], tokens: [t] };
    };
    if (addBos) add(bos!);
    single.push({ Sequence: { id: 'A', type_id: 0 } });
    if (addEos) add(eos!);
    return { type: 'TemplateProcessing', single, pair: [...single, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: specials };
  };
  if (kind === 'llama') {
    const scores = g.metadata.has('tokenizer.ggml.scores') ? numberItems(g, 'tokenizer.ggml.scores', tokens.length) : tokens.map(() => 0);
    // every split of a normal piece into two pieces is a merge, ranked by the joined piece's score
    const cands: [number, number, number, string, string][] = [];
    tokens.forEach((t, i) => {
      if (types[i] !== NORMAL) return;
      const chars = [...t];
      for (let k = 1; k < chars.length; k++) {
        const a = chars.slice(0, k).join('');
        const b = chars.slice(k).join('');
        const ia = vocab[a];
        const ib = vocab[b];
        if (ia !== undefined && ib !== undefined && types[ia] === NORMAL && types[ib] === NORMAL) cands.push([scores[i]!, ia, ib, a, b]);
      }
    });
    cands.sort((x, y) => y[0] - x[0] || x[1] - y[1] || x[2] - y[2]);
    const spacePrefix = flag('tokenizer.ggml.add_space_prefix', true);
    const replace = { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' };
    return {
      version: '1.0', added_tokens: added,
      normalizer: spacePrefix ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, replace] } : replace,
      pre_tokenizer: null, post_processor: template(),
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, ...(spacePrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : [])] },
      model: {
        type: 'BPE', dropout: null, unk_token: special('tokenizer.ggml.unknown_token_id'), continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: cands.map((c) => [c[3], c[4]]),
      },
    };
  }
  if (kind === 'gpt2') {
    const pre = g.string('tokenizer.ggml.pre', 'default');
    if (pre !== 'gpt-2') throw new UserError(`${g.path}: tokenizer.ggml.pre "${pre}" cannot be rebuilt (mopt knows "gpt-2") and the file has no tokenizer.huggingface.json`);
    const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
    return {
      version: '1.0', added_tokens: added, normalizer: null, pre_tokenizer: byteLevel,
      post_processor: addBos || addEos ? template() : { ...byteLevel, trim_offsets: false },
      decoder: byteLevel,
      model: {
        type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false,
        ignore_merges: false, vocab, merges: stringItems(g, 'tokenizer.ggml.merges').map((m) => mergePair(m, g.path)),
      },
    };
  }
  throw new UserError(`${g.path}: tokenizer.ggml.model "${kind}" is not supported; mopt reads "llama" and "gpt2"`);
}
