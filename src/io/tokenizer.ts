// Text <-> token ids for Hugging Face checkpoints.
//
// The heavy lifting (normalizers, pre-tokenizers, BPE/Unigram/WordPiece, post-processors, decoders) is done by
// @huggingface/tokenizers, a pure-JS port of the Rust `tokenizers` crate. This wrapper exists to:
//   - turn missing or broken files into UserErrors that say which path and what to do (the library throws bare
//     Errors like 'Tokenizer must contain a "decoder" property');
//   - paper over the places where the JS port differs from the Rust/transformers behaviour the checkpoints were
//     made with (decode of an empty list throws, unknown ids silently become <unk>, clean-up of tokenization
//     spaces defaults to true when tokenizer_config.json does not say);
//   - resolve BOS/EOS ids the way transformers does (tokenizer_config.json first), with a fallback for
//     directories that only ship tokenizer.json.
//
// Semantics follow the Hugging Face *fast* tokenizer: tokenizer.json is the source of truth for what
// addSpecialTokens adds (its post-processor), e.g. stories260K-hf prepends <s> while phi-3-mini adds nothing.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizerUntyped } from '@huggingface/tokenizers';
import { UserError } from '../util/errors.js';

export interface EncodeOptions {
  /** Apply the post-processor's special tokens (e.g. a leading BOS). Default true, as in transformers. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop tokens marked `special` in tokenizer.json (and tokenizer_config's additional_special_tokens). */
  skipSpecialTokens?: boolean;
  /**
   * Remove spaces before punctuation/contractions (" ," -> ","), as transformers' clean_up_tokenization does.
   * Default: tokenizer_config.json's clean_up_tokenization_spaces, or false when it is absent (lossless).
   */
  cleanUpTokenizationSpaces?: boolean;
}

type JsonObject = Record<string, unknown>;

// The package's .d.ts files import each other without file extensions, which NodeNext resolution rejects, so under
// this project's tsconfig its classes type as `any` (silently, because of skipLibCheck). Pin down the part we use
// here instead, so the compiler checks our calls against the library's documented signatures.
interface HfAddedToken {
  content: string;
  special: boolean;
}
interface HfTokenizer {
  model: { vocab: string[] } | null;
  // An id is undefined when a piece is neither in the vocab nor covered by an unk token.
  encode(text: string, options: { add_special_tokens: boolean }): { ids: Array<number | undefined> };
  decode(ids: number[], options: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean }): string;
  id_to_token(id: number): string | undefined;
  token_to_id(token: string): number | undefined;
  get_added_tokens_decoder(): Map<number, HfAddedToken>;
}
const HfTokenizerClass: new (tokenizer: object, config: object) => HfTokenizer = HfTokenizerUntyped;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// Names used for BOS/EOS by widespread tokenizers; only consulted when tokenizer_config.json is missing or silent,
// and only when the name is a *special added token* of this tokenizer (a plain vocab piece named "<s>" proves
// nothing).
const KNOWN_BOS = ['<s>', '<|begin_of_text|>', '<bos>', '<|startoftext|>'];
const KNOWN_EOS = ['</s>', '<|end_of_text|>', '<eos>', '<|endoftext|>'];

const HINT_FORMAT =
  'mopt reads the Hugging Face "fast" tokenizer format; re-download it, or regenerate it in Python with ' +
  "AutoTokenizer.from_pretrained(dir).save_pretrained(dir)";

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function readJsonFile(path: string, what: string): unknown {
  if (!existsSync(path)) throw new UserError(`${what} not found: ${path}. ${HINT_FORMAT}.`);
  if (statSync(path).isDirectory()) {
    throw new UserError(`${what} path is a directory: ${path}. Pass the file itself (or use the model directory).`);
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read ${what} ${path}: ${errorText(e)}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new UserError(`${what} ${path} is not valid JSON (${errorText(e)}). ${HINT_FORMAT}.`);
  }
}

export class Tokenizer {
  /** Size of the id space: highest id (model vocab or added token) + 1. Embedding tables may be larger (padding). */
  readonly vocabSize: number;
  /** BOS id from tokenizer_config.json, else the post-processor's leading special token, else a known name; or null. */
  readonly bosId: number | null;
  /** EOS id from tokenizer_config.json, else a known special added token name; or null. */
  readonly eosId: number | null;
  /** Where the tokenizer came from, for messages. */
  readonly source: string;

  private readonly inner: HfTokenizer;
  private readonly cleanUpDefault: boolean;

  private constructor(inner: HfTokenizer, json: JsonObject, config: JsonObject, source: string) {
    this.inner = inner;
    this.source = source;
    // The library keeps an id-indexed array that already includes the added tokens.
    this.vocabSize = inner.model?.vocab.length ?? 0;
    this.cleanUpDefault = config.clean_up_tokenization_spaces === true;
    const bosFallback = (): number | null => this.bosFromTemplate(json) ?? this.knownSpecial(KNOWN_BOS);
    this.bosId = this.resolveSpecial(config, 'bos_token', bosFallback);
    this.eosId = this.resolveSpecial(config, 'eos_token', () => this.knownSpecial(KNOWN_EOS));
  }

  /**
   * Builds a tokenizer from already-parsed tokenizer.json (and optional tokenizer_config.json) contents.
   * `source` names the origin in error messages.
   */
  static fromJSON(tokenizerJson: unknown, tokenizerConfig: unknown = {}, source = 'tokenizer.json'): Tokenizer {
    if (!isObject(tokenizerJson) || !isObject(tokenizerJson.model)) {
      throw new UserError(`${source} is not a Hugging Face tokenizer.json (no "model" object). ${HINT_FORMAT}.`);
    }
    if (!isObject(tokenizerConfig)) {
      throw new UserError(`tokenizer config for ${source} must be a JSON object`);
    }
    // The Rust serializer always writes these keys (null when unused) and the JS port insists on them;
    // hand-written files may omit them, which the Rust loader tolerates, so fill the gaps rather than fail.
    const json: JsonObject = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      ...tokenizerJson,
      added_tokens: Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens : [],
    };
    let inner: HfTokenizer;
    try {
      inner = new HfTokenizerClass(json, tokenizerConfig);
    } catch (e) {
      // Usually a component the JS port does not implement, sometimes a damaged file.
      throw new UserError(
        `cannot load tokenizer ${source}: ${errorText(e)} (unsupported by @huggingface/tokenizers, or damaged). ` +
          `${HINT_FORMAT}.`,
      );
    }
    return new Tokenizer(inner, json, tokenizerConfig, source);
  }

  /** Loads tokenizer.json, plus tokenizer_config.json when its path is given (BOS/EOS, clean-up, extra specials). */
  static fromFile(tokenizerJsonPath: string, tokenizerConfigPath?: string): Tokenizer {
    const json = readJsonFile(tokenizerJsonPath, 'tokenizer file');
    const config = tokenizerConfigPath === undefined ? {} : readJsonFile(tokenizerConfigPath, 'tokenizer config');
    return Tokenizer.fromJSON(json, config, tokenizerJsonPath);
  }

  /** Loads dir/tokenizer.json (required) and dir/tokenizer_config.json (optional). */
  static fromModelDir(dir: string): Tokenizer {
    const t = Tokenizer.tryFromModelDir(dir);
    if (t !== null) return t;
    if (!existsSync(dir)) throw new UserError(`model directory not found: ${dir}`);
    // A SentencePiece-only checkpoint is the common way to end up here; say so rather than just "not found".
    const spm = existsSync(join(dir, 'tokenizer.model'))
      ? ' It has a SentencePiece tokenizer.model, which mopt does not read: convert it to tokenizer.json.'
      : '';
    throw new UserError(`no tokenizer.json in ${dir}.${spm} ${HINT_FORMAT}.`);
  }

  /** Like fromModelDir, but returns null when dir has no tokenizer.json (a broken one still throws). */
  static tryFromModelDir(dir: string): Tokenizer | null {
    const jsonPath = join(dir, 'tokenizer.json');
    if (!existsSync(jsonPath)) return null;
    const configPath = join(dir, 'tokenizer_config.json');
    return Tokenizer.fromFile(jsonPath, existsSync(configPath) ? configPath : undefined);
  }

  encode(text: string, { addSpecialTokens = true }: EncodeOptions = {}): number[] {
    const out: number[] = [];
    // The library maps a piece that is neither in the vocab nor representable to the unk id, which is undefined
    // for tokenizers without <unk>; surface that instead of returning a hole.
    for (const id of this.inner.encode(text, { add_special_tokens: addSpecialTokens }).ids) {
      if (id === undefined || !Number.isInteger(id)) {
        throw new UserError(
          `${this.source}: the text cannot be tokenized (a piece is not in the vocabulary and there is no unk token)`,
        );
      }
      out.push(id);
    }
    return out;
  }

  decode(ids: readonly number[], { skipSpecialTokens = false, cleanUpTokenizationSpaces }: DecodeOptions = {}): string {
    // The library throws on an empty list; transformers returns ''.
    if (ids.length === 0) return '';
    // The library silently decodes unknown ids as <unk>; an out-of-range id is a caller bug (e.g. sampling from
    // padded embedding rows), so report it.
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.inner.id_to_token(id) === undefined) {
        throw new RangeError(`token id ${id} is not in the vocabulary of ${this.source} (size ${this.vocabSize})`);
      }
    }
    return this.inner.decode(ids.slice(), {
      skip_special_tokens: skipSpecialTokens,
      clean_up_tokenization_spaces: cleanUpTokenizationSpaces ?? this.cleanUpDefault,
    });
  }

  /** The token string for an id (byte-level/metaspace form, e.g. 'Ġworld', '▁world'), or null. */
  idToToken(id: number): string | null {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) return null;
    return this.inner.id_to_token(id) ?? null;
  }

  /** The id of a token string (vocab piece or added token), or null. */
  tokenToId(token: string): number | null {
    return this.inner.token_to_id(token) ?? null;
  }

  /** Ids of the added tokens marked special in tokenizer.json (these are what skipSpecialTokens drops). */
  specialIds(): number[] {
    const out: number[] = [];
    for (const [id, tok] of this.inner.get_added_tokens_decoder()) if (tok.special) out.push(id);
    return out.sort((a, b) => a - b);
  }

  // tokenizer_config.json's value wins, including an explicit null (e.g. Qwen declares bos_token: null: it has no
  // BOS even though other tokens could look like one). transformers writes either a string or an AddedToken dict.
  private resolveSpecial(config: JsonObject, key: string, fallback: () => number | null): number | null {
    if (!(key in config)) return fallback();
    const v = config[key];
    const content = typeof v === 'string' ? v : isObject(v) && typeof v.content === 'string' ? v.content : null;
    return content === null ? null : this.tokenToId(content);
  }

  // With no config, a TemplateProcessing post-processor that starts the single-sequence template with a special
  // token is the tokenizer's own statement of what its BOS is (Llama: "<s> $A").
  private bosFromTemplate(json: JsonObject): number | null {
    const pp = json.post_processor;
    const templates = !isObject(pp)
      ? []
      : pp.type === 'TemplateProcessing'
        ? [pp]
        : pp.type === 'Sequence' && Array.isArray(pp.processors)
          ? pp.processors.filter((p): p is JsonObject => isObject(p) && p.type === 'TemplateProcessing')
          : [];
    for (const t of templates) {
      const first: unknown = Array.isArray(t.single) ? t.single[0] : undefined;
      if (!isObject(first) || !isObject(first.SpecialToken)) continue;
      const name = first.SpecialToken.id;
      const specials = t.special_tokens;
      if (typeof name !== 'string') continue;
      const entry = isObject(specials) ? specials[name] : undefined;
      if (isObject(entry) && Array.isArray(entry.ids) && typeof entry.ids[0] === 'number') return entry.ids[0];
      return this.tokenToId(name);
    }
    return null;
  }

  private knownSpecial(names: readonly string[]): number | null {
    const specials = new Map<string, number>();
    for (const [id, tok] of this.inner.get_added_tokens_decoder()) if (tok.special) specials.set(tok.content, id);
    for (const n of names) {
      const id = specials.get(n);
      if (id !== undefined) return id;
    }
    return null;
  }
}
