// Tokenizer tests against expected ids produced by the reference (Hugging Face) tokenizers, collected by other
// projects: llama.cpp's vocab tests and swift-transformers' tokenizer fixtures. See shared/data/README.md.
//
// Which reference goes with which tokenizer we have:
//   - phi-2 has GPT-2's vocab and merges (asserted below against tokenizers/gpt2) plus 38 added whitespace-run
//     tokens, so it is checked against GPT-2 references; where those added tokens change the result the case is
//     listed and explained, and a "GPT-2 view" of phi-2 (the same file minus those added tokens) must match all.
//   - phi-3-mini has Llama-2's 32000-piece SentencePiece-BPE vocab, so it is checked against Llama-2 references
//     (llama-spm, phi-3, swift-transformers' Llama-2 fixtures).
// Not used: llama_3.2_encoded.json and the bert/falcon/gemma/whisper/t5/Llama-3.2/distilbert entries of
// tokenizer_tests.json (we have no tokenizer.json for those models), and the other llama.cpp vocabs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { UserError } from '../../src/util/errors.js';
import { SHARED_DATA, DATA_SKIP } from '../helpers/paths.js';

const DATA = SHARED_DATA;
const skip = DATA_SKIP;

const data = (p: string): string => join(DATA, p);
const readJson = (p: string): unknown => JSON.parse(readFileSync(data(p), 'utf8'));

function loadCached(): { phi2: Tokenizer; phi3: Tokenizer; gpt2View: Tokenizer } {
  const phi2 = Tokenizer.fromModelDir(data('tokenizers/phi-2'));
  const phi3 = Tokenizer.fromModelDir(data('tokenizers/phi-3-mini'));
  // phi-2 minus its added whitespace tokens (ids > 50256) is GPT-2's tokenizer.
  const phi2Json = readJson('tokenizers/phi-2/tokenizer.json') as { added_tokens: Array<{ id: number }> };
  const gpt2Json = { ...phi2Json, added_tokens: phi2Json.added_tokens.filter((t) => t.id <= 50256) };
  const gpt2View = Tokenizer.fromJSON(gpt2Json, readJson('tokenizers/phi-2/tokenizer_config.json'), 'gpt2-view');
  return { phi2, phi3, gpt2View };
}
let cache: ReturnType<typeof loadCached> | null = null;
const toks = (): ReturnType<typeof loadCached> => (cache ??= loadCached());

/** llama.cpp's .inp/.out pairs: the .inp ends with a separator too, so the piece after the last one is dropped. */
function vocabCases(name: string): Array<{ text: string; ids: number[] }> {
  const base = data(`tokenizer-tests/llama.cpp-vocab-tests/ggml-vocab-${name}.gguf`);
  const inp = readFileSync(`${base}.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
  assert.equal(inp.pop(), '', 'the .inp is expected to end with a separator');
  // One line per case, ids written as " id id id" (leading space); an empty line is a case with no tokens.
  const out = readFileSync(`${base}.out`, 'utf8').split('\n');
  assert.equal(out.pop(), '', 'the .out is expected to end with a newline');
  assert.equal(inp.length, out.length, `${name}: .inp and .out case counts differ`);
  return inp.map((text, i) => ({ text, ids: (out[i] ?? '').split(' ').filter((s) => s !== '').map(Number) }));
}

/** Indices of the cases where encode(text, no special tokens), with `prefix` prepended, differs from the reference. */
function mismatches(tok: Tokenizer, cases: Array<{ text: string; ids: number[] }>, prefix: number[] = []): number[] {
  const bad: number[] = [];
  cases.forEach((c, i) => {
    const got = [...prefix, ...tok.encode(c.text, { addSpecialTokens: false })];
    if (JSON.stringify(got) !== JSON.stringify(c.ids)) bad.push(i);
  });
  return bad;
}

// Cases of ggml-vocab-gpt-2 where phi-2 legitimately differs from GPT-2: each contains a run of 2+ spaces or tabs,
// which phi-2 matches as one of its added tokens (50257-50294, e.g. "  " = 50286) before BPE runs, as HF tokenizers
// does for added tokens. GPT-2 instead emits 220 ("Ġ") per extra space and merges the last one into the next word:
//   4 "  ", 5 "   "                      GPT-2: 220 220 / 220 220 220    phi-2: 50286 / 50285
//   25-27 "  Hello" .. "    Hello"        GPT-2: 220.. 18435 ("ĠHello")   phi-2: 50286.. 15496 ("Hello")
//   28 "    Hello\n    Hello"             same, twice
//   45 the long mixed case (contains "\t\t", "  ", "   ", "    ", "     ")
const PHI2_VS_GPT2_CASES = [4, 5, 25, 26, 27, 28, 45];
// The same effect in swift-transformers' distilgpt2 (GPT-2 vocab) cases of tokenizer_tests.json:
// 8 "Hi  Hello", 9 "trailing space   ", 10 "   leading space", 15 "you…  ".
const PHI2_VS_DISTILGPT2_CASES = [8, 9, 10, 15];

test('phi-2 vocab and merges are GPT-2 (so GPT-2 references apply)', { skip }, () => {
  const phi2 = readJson('tokenizers/phi-2/tokenizer.json') as { model: { vocab: unknown; merges: string[] } };
  assert.deepEqual(phi2.model.vocab, readJson('tokenizers/gpt2/vocab.json'));
  const merges = readFileSync(data('tokenizers/gpt2/merges.txt'), 'utf8').split('\n');
  assert.equal(merges.shift(), '#version: 0.2');
  assert.equal(merges.pop(), '');
  assert.deepEqual(phi2.model.merges, merges);
});

test('llama.cpp ggml-vocab-gpt-2: phi-2 and its GPT-2 view', { skip }, () => {
  const { phi2, gpt2View } = toks();
  const cases = vocabCases('gpt-2');
  assert.equal(cases.length, 46);
  assert.deepEqual(mismatches(gpt2View, cases), [], 'GPT-2 view must match every case');
  const bad = mismatches(phi2, cases);
  assert.deepEqual(bad, PHI2_VS_GPT2_CASES);
  assert.equal(cases.length - bad.length, 39, 'phi-2 matches 39 of 46 cases as-is');
  for (const i of bad) {
    const c = cases[i]!;
    const ids = phi2.encode(c.text, { addSpecialTokens: false });
    assert.ok(/ {2}|\t\t/.test(c.text), `case ${i} should contain a whitespace run`);
    assert.ok(ids.some((id) => id > 50256), `case ${i} should use an added whitespace token`);
    // Either way the text is represented exactly.
    assert.equal(phi2.decode(ids, { cleanUpTokenizationSpaces: false }), c.text);
  }
});

test('llama.cpp ggml-vocab-phi-3 and ggml-vocab-llama-spm: phi-3-mini matches all', { skip }, () => {
  // The .out files come from HF's encode(text, add_special_tokens=False): no BOS, but the SentencePiece-style
  // leading "▁" (Prepend normalizer) is there, e.g. "Hello world" -> ▁Hello ▁world, " " -> "▁▁" (259), "" -> [].
  const { phi3 } = toks();
  for (const name of ['phi-3', 'llama-spm']) {
    const cases = vocabCases(name);
    assert.equal(cases.length, 46);
    assert.deepEqual(mismatches(phi3, cases), [], `${name}: every case must match`);
    // The decoder strips exactly the one leading space the normalizer added, so decoding is lossless.
    for (const c of cases) assert.equal(phi3.decode(c.ids), c.text, `${name}: decode ${JSON.stringify(c.text)}`);
  }
});

interface SwiftCase {
  input: string;
  encoded: { input_ids: number[] };
  decoded_with_special: string;
  decoded_without_special: string;
}

test('swift-transformers tokenizer_tests.json: distilgpt2 (phi-2) and Llama-2 (phi-3-mini)', { skip }, () => {
  const { phi2, phi3, gpt2View } = toks();
  const all = readJson('tokenizer-tests/swift-transformers/tokenizer_tests.json') as Record<string, SwiftCase[]>;
  const asCases = (cs: SwiftCase[]): Array<{ text: string; ids: number[] }> =>
    cs.map((c) => ({ text: c.input, ids: c.encoded.input_ids }));

  // distilgpt2 adds no special tokens.
  const gpt2 = all['distilgpt2']!;
  assert.equal(gpt2.length, 18);
  assert.deepEqual(mismatches(gpt2View, asCases(gpt2)), []);
  assert.deepEqual(mismatches(phi2, asCases(gpt2)), PHI2_VS_DISTILGPT2_CASES);
  // The reference decode cleans up tokenization spaces ("'ll !!to" -> "'ll!!to"), as phi-2's
  // tokenizer_config.json (clean_up_tokenization_spaces: true) asks for, so the default decode must match.
  for (const c of gpt2) {
    assert.equal(phi2.decode(c.encoded.input_ids), c.decoded_with_special);
    assert.equal(phi2.decode(c.encoded.input_ids, { skipSpecialTokens: true }), c.decoded_without_special);
  }

  // Llama-2's tokenizer prepends <s>; phi-3-mini's post-processor adds nothing, so prepend BOS (1) by hand.
  const llama = all['coreml-projects/Llama-2-7b-chat-coreml']!;
  assert.equal(llama.length, 18);
  assert.equal(phi3.bosId, 1);
  assert.deepEqual(mismatches(phi3, asCases(llama), [1]), []);
  for (const c of llama) {
    assert.equal(phi3.decode(c.encoded.input_ids), c.decoded_with_special);
    assert.equal(phi3.decode(c.encoded.input_ids, { skipSpecialTokens: true }), c.decoded_without_special);
  }
});

test('swift-transformers gpt2_encoded_tokens.json and llama_encoded.json (long French text)', { skip }, () => {
  const { phi2, phi3 } = toks();
  const g = readJson('tokenizer-tests/swift-transformers/gpt2_encoded_tokens.json') as {
    text: string;
    decoded_text: string;
    bpe_tokens: string[];
    token_ids: number[];
  };
  assert.deepEqual(phi2.encode(g.text, { addSpecialTokens: false }), g.token_ids);
  assert.deepEqual(g.token_ids.map((id) => phi2.idToToken(id)), g.bpe_tokens);
  assert.deepEqual(g.bpe_tokens.map((t) => phi2.tokenToId(t)), g.token_ids);
  assert.equal(phi2.decode(g.token_ids), g.decoded_text);

  const l = readJson('tokenizer-tests/swift-transformers/llama_encoded.json') as {
    text: string;
    decoded_text: string;
    bpe_tokens: string[];
    token_ids: number[];
  };
  // token_ids start with BOS; bpe_tokens do not.
  assert.deepEqual([1, ...phi3.encode(l.text, { addSpecialTokens: false })], l.token_ids);
  assert.deepEqual(l.token_ids.slice(1).map((id) => phi3.idToToken(id)), l.bpe_tokens);
  assert.equal(phi3.decode(l.token_ids), l.decoded_text);
});

test('stories260K-hf: special ids, BOS from the post-processor, round trip', { skip }, () => {
  const dir = data('models/stories260K-hf');
  const t = Tokenizer.fromModelDir(dir);
  assert.equal(t.vocabSize, 512);
  assert.deepEqual([t.tokenToId('<unk>'), t.tokenToId('<s>'), t.tokenToId('</s>')], [0, 1, 2]);
  assert.deepEqual([t.bosId, t.eosId], [1, 2]);
  assert.equal(t.idToToken(1), '<s>');
  assert.equal(t.idToToken(512), null);
  assert.equal(t.tokenToId('no such piece'), null);
  assert.deepEqual(t.encode(''), [1]);
  assert.equal(t.decode([]), '');

  const paragraphs = readFileSync(data('corpora/tinystories_val_subset.txt'), 'utf8')
    .slice(0, 20000)
    .split('\n\n')
    .slice(0, -1) // the last piece may be cut mid-paragraph by the slice
    .filter((p) => p.trim() !== '');
  assert.ok(paragraphs.length >= 10);
  for (const p of paragraphs) {
    const ids = t.encode(p);
    assert.equal(ids[0], 1, 'addSpecialTokens=true prepends <s> via the post-processor');
    assert.deepEqual(ids.slice(1), t.encode(p, { addSpecialTokens: false }));
    assert.ok(!ids.slice(1).includes(1));
    assert.equal(t.decode(ids, { skipSpecialTokens: true }), p);
    assert.equal(t.decode(ids), `<s> ${p}`);
  }

  // Without tokenizer_config.json, BOS comes from the post-processor's template and EOS from the added tokens.
  const bare = Tokenizer.fromFile(join(dir, 'tokenizer.json'));
  assert.deepEqual([bare.bosId, bare.eosId], [1, 2]);
});

test('special ids, vocab sizes and decode options of phi-2 and phi-3-mini', { skip }, () => {
  const { phi2, phi3 } = toks();
  // From tokenizer_config.json: phi-2 uses <|endoftext|> for both; phi-3-mini's eos_token is <|endoftext|>.
  assert.deepEqual([phi2.bosId, phi2.eosId, phi2.vocabSize], [50256, 50256, 50295]);
  assert.deepEqual([phi3.bosId, phi3.eosId, phi3.vocabSize], [1, 32000, 32011]);
  assert.equal(phi3.tokenToId('<|user|>'), 32010);
  // </s> (2) is not marked special in phi-3-mini's tokenizer.json, so skipSpecialTokens keeps it (as HF does).
  assert.deepEqual(phi3.specialIds(), [0, 1, ...Array.from({ length: 11 }, (_, i) => 32000 + i)]);
  // Added special tokens in the text are matched as single ids.
  assert.deepEqual(phi2.encode('a<|endoftext|>', { addSpecialTokens: false }), [64, 50256]);
  assert.equal(phi2.decode([64, 50256], { skipSpecialTokens: true }), 'a');
  // Clean-up can be overridden per call.
  const ids = phi2.encode('Hello , world', { addSpecialTokens: false });
  assert.equal(phi2.decode(ids), 'Hello, world');
  assert.equal(phi2.decode(ids, { cleanUpTokenizationSpaces: false }), 'Hello , world');
  // Ids outside the tokenizer (e.g. padded embedding rows: phi-2's model has 51200) are an error, not <unk>.
  assert.throws(() => phi2.decode([64, 50295]), RangeError);
  assert.throws(() => phi2.decode([1.5]), RangeError);
});

/** assert.throws validator: a UserError whose message contains `part` (a string) or matches it (a RegExp). */
const userError =
  (part: string | RegExp) =>
  (e: unknown): boolean =>
    e instanceof UserError && (typeof part === 'string' ? e.message.includes(part) : part.test(e.message));

test('missing or invalid tokenizer files give UserErrors that name the path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopt-tok-'));
  try {
    assert.equal(Tokenizer.tryFromModelDir(dir), null);
    assert.throws(() => Tokenizer.fromModelDir(dir), userError(dir));
    writeFileSync(join(dir, 'tokenizer.model'), 'x');
    assert.throws(() => Tokenizer.fromModelDir(dir), userError(/SentencePiece/));
    assert.throws(() => Tokenizer.fromModelDir(join(dir, 'nope')), UserError);

    const jsonPath = join(dir, 'tokenizer.json');
    assert.throws(() => Tokenizer.fromFile(jsonPath), userError(jsonPath));
    writeFileSync(jsonPath, '{"model": ');
    assert.throws(() => Tokenizer.fromFile(jsonPath), userError(/not valid JSON/));
    assert.throws(() => Tokenizer.tryFromModelDir(dir), UserError, 'a broken tokenizer.json is not "absent"');
    writeFileSync(jsonPath, '{"version": "1.0"}');
    assert.throws(() => Tokenizer.fromFile(jsonPath), userError(/no "model"/));
    writeFileSync(jsonPath, '{"model": {"type": "Nope"}}');
    assert.throws(() => Tokenizer.fromFile(jsonPath), userError(jsonPath));
    assert.throws(() => Tokenizer.fromFile(dir), UserError);

    if (!skip) {
      // A valid tokenizer.json with a missing config path is still an error (the caller asked for it).
      copyFileSync(data('models/stories260K-hf/tokenizer.json'), jsonPath);
      assert.throws(() => Tokenizer.fromFile(jsonPath, join(dir, 'tokenizer_config.json')), UserError);
      assert.equal(Tokenizer.tryFromModelDir(dir)?.vocabSize, 512);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
