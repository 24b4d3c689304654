// The byte-level BPE trainer: the tokenizer.json it writes loads in the tokenizers library mopt uses; that
// library's ids equal an independent BPE encoder written here from the file's merges (GPT-2 split, byte
// symbols, lowest-rank merge first); every text round-trips through encode/decode (any Unicode: byte-level);
// special tokens have ids 0.. and BOS is prepended.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainByteLevelBpe } from '../../src/train/bpe.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { DATA_SKIP, SHARED_DATA } from '../helpers/paths.js';

/** bytes_to_unicode written out again: printable Latin-1 ranges map to themselves, the rest from U+0100. */
function byteChars(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) (bs.push(b), cs.push(256 + n++));
  const out: string[] = [];
  bs.forEach((b, i) => (out[b] = String.fromCharCode(cs[i]!)));
  return out;
}

function referenceEncode(text: string, vocab: Record<string, number>, merges: string[]): number[] {
  const rank = new Map(merges.map((m, i) => [m, i]));
  const chars = byteChars();
  const ids: number[] = [];
  for (const piece of text.match(/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu) ?? []) {
    let syms = Array.from(new TextEncoder().encode(piece), (b) => chars[b]!);
    for (;;) {
      let best = -1;
      let at = -1;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = rank.get(`${syms[i]} ${syms[i + 1]}`);
        if (r !== undefined && (best < 0 || r < best)) [best, at] = [r, i];
      }
      if (best < 0) break;
      syms = [...syms.slice(0, at), syms[at]! + syms[at + 1]!, ...syms.slice(at + 2)];
    }
    for (const s of syms) ids.push(vocab[s]!);
  }
  return ids;
}

test('byte-level BPE: trained tokenizer.json loads, matches an independent encoder, round-trips any text', { skip: DATA_SKIP }, () => {
  const text = readFileSync(join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt'), 'utf8');
  const t = trainByteLevelBpe([text.slice(0, 80_000)], { vocabSize: 600, specialTokens: ['<s>', '</s>', '<pad>'], bos: true });
  assert.equal(t.merges, 600 - 3 - 256);
  const dir = mkdtempSync(join(tmpdir(), 'mopt-bpe-'));
  try {
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(t.tokenizer));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(t.config));
    const tok = Tokenizer.fromModelDir(dir);
    assert.equal(tok.vocabSize, 600);
    assert.equal(tok.bosId, 0);
    assert.equal(tok.eosId, 1);
    const model = t.tokenizer.model as { vocab: Record<string, number>; merges: string[] };
    const held = text.slice(200_000, 204_000) + ' Ünïcödé, 数字 123 and emoji 😀!\n\n  tabs\tand spaces  ';
    const ids = tok.encode(held, { addSpecialTokens: false });
    assert.deepEqual(ids, referenceEncode(held, model.vocab, model.merges));
    assert.equal(tok.decode(ids), held);
    assert.deepEqual(tok.encode('Hi', { addSpecialTokens: true }).slice(0, 1), [0], 'BOS first');
    assert.ok(ids.length < new TextEncoder().encode(held).length * 0.6, 'merges compress in-domain text');
    // special tokens in the text stay whole
    assert.deepEqual(tok.encode('a</s>b', { addSpecialTokens: false }).filter((i) => i < 3), [1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
