// A byte-level BPE trainer (GPT-2 style) that writes a Hugging Face tokenizer.json: text is split with the
// GPT-2 pattern of the ByteLevel pre-tokenizer, every UTF-8 byte is one of 256 printable stand-in characters
// (so any text encodes, no unknown token), and pairs of adjacent symbols are merged, most frequent first
// (ties: the pair whose merged string sorts first), until the vocabulary reaches its size. Special tokens
// come first in the id space; BOS is prepended by a TemplateProcessing post-processor, as Llama tokenizers do.

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 onwards. */
export function byteToChar(): string[] {
  const keep = (b: number): boolean => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) out[b] = keep(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  return out;
}

/** The ByteLevel pre-tokenizer's split pattern (use_regex: true). */
export const BYTE_LEVEL_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export interface BpeTrainOptions {
  vocabSize: number;
  /** special tokens, ids 0..n-1 in this order; the first is BOS and the second EOS when `bos` is set */
  specialTokens: readonly string[];
  /** prepend specialTokens[0] to every encoding (add_special_tokens) */
  bos: boolean;
  /** pairs seen fewer times are not merged */
  minFrequency?: number;
}

export interface TrainedTokenizer {
  tokenizer: Record<string, unknown>;
  config: Record<string, unknown>;
  merges: number;
}

export function trainByteLevelBpe(texts: Iterable<string>, o: BpeTrainOptions): TrainedTokenizer {
  const chars = byteToChar();
  const encoder = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    for (const piece of text.match(BYTE_LEVEL_PATTERN) ?? []) {
      const w = Array.from(encoder.encode(piece), (b) => chars[b]!).join('');
      wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
    }
  }
  const symbols: string[] = [...o.specialTokens, ...[...chars].sort()];
  const idOf = new Map(symbols.map((s, i) => [s, i]));
  if (idOf.size !== symbols.length) throw new Error('trainByteLevelBpe: a special token collides with a byte symbol');
  if (o.vocabSize < symbols.length) throw new RangeError(`vocab size ${o.vocabSize} is below the ${symbols.length} special and byte symbols`);
  const words = [...wordCounts].map(([w, n]) => ({ ids: Array.from(w, (c) => idOf.get(c)!), n }));
  const key = (a: number, b: number): number => a * 1_048_576 + b; // symbol ids stay below 2^20
  const counts = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const addPairs = (wi: number, sign: 1 | -1): void => {
    const { ids, n } = words[wi]!;
    for (let i = 0; i + 1 < ids.length; i++) {
      const k = key(ids[i]!, ids[i + 1]!);
      counts.set(k, (counts.get(k) ?? 0) + sign * n);
      if (sign > 0) {
        let s = where.get(k);
        if (s === undefined) where.set(k, (s = new Set()));
        s.add(wi);
      }
    }
  };
  words.forEach((_, wi) => addPairs(wi, 1));
  const merges: [string, string][] = [];
  const minFreq = o.minFrequency ?? 2;
  while (symbols.length < o.vocabSize) {
    let best = -1;
    let bestCount = 0;
    let bestStr = '';
    for (const [k, c] of counts) {
      if (c < bestCount || c < minFreq) continue;
      const s = symbols[Math.floor(k / 1_048_576)]! + symbols[k % 1_048_576]!;
      if (c > bestCount || s < bestStr) [best, bestCount, bestStr] = [k, c, s];
    }
    if (best < 0) break;
    const [a, b] = [Math.floor(best / 1_048_576), best % 1_048_576];
    const id = symbols.length;
    symbols.push(bestStr);
    merges.push([symbols[a]!, symbols[b]!]);
    for (const wi of where.get(best) ?? []) {
      addPairs(wi, -1);
      const ids = words[wi]!.ids;
      const merged: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
          merged.push(id);
          i++;
        } else merged.push(ids[i]!);
      }
      words[wi]!.ids = merged;
      addPairs(wi, 1);
    }
    counts.delete(best);
    where.delete(best);
  }
  return { tokenizer: tokenizerJson(symbols, merges, o), config: tokenizerConfig(o), merges: merges.length };
}

function tokenizerJson(symbols: readonly string[], merges: readonly [string, string][], o: BpeTrainOptions): Record<string, unknown> {
  const n = o.specialTokens.length;
  const bos = o.bos && n > 0 ? o.specialTokens[0]! : null;
  const template = (seq: 'A' | 'B'): unknown[] => [...(bos ? [{ SpecialToken: { id: bos, type_id: 0 } }] : []), { Sequence: { id: seq, type_id: 0 } }];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: o.specialTokens.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: bos
      ? { type: 'TemplateProcessing', single: template('A'), pair: [...template('A'), ...template('B')], special_tokens: { [bos]: { id: bos, ids: [0], tokens: [bos] } } }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab: Object.fromEntries(symbols.slice(n).map((s, i) => [s, i + n]).concat(o.specialTokens.map((s, i) => [s, i]))),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

function tokenizerConfig(o: BpeTrainOptions): Record<string, unknown> {
  const [bos, eos, pad] = o.specialTokens;
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    ...(bos !== undefined ? { bos_token: bos } : {}),
    ...(eos !== undefined ? { eos_token: eos } : {}),
    ...(pad !== undefined ? { pad_token: pad } : {}),
    add_bos_token: o.bos,
    clean_up_tokenization_spaces: false,
  };
}
