// mopt-tiny's tokenizer (trained by `mopt tokenizer train`) against the Python `tokenizers` library: the fixture
// holds 20 texts (edge cases and the seven held-out addresses) with their ids with and without special tokens.
// It was written by `node scripts/tokenizer-ids.mjs` and then checked on the GPU machine by
// `python3 scripts/check_tokenizer_ids.py` with tokenizers 0.23.2: 40 of 40 encodings identical (2026-11-29), so
// these are Python's ids for the shipped tokenizer.json.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { bundledModelDir } from '../../src/models/bundled.js';
import { FIXTURES } from '../helpers/paths.js';

test('mopt-tiny tokenizer: the ids Python tokenizers 0.23.2 gives, with and without special tokens', () => {
  const ref = JSON.parse(gunzipSync(readFileSync(join(FIXTURES, 'tokenizer', 'mopt-tiny-python-ids.json.gz'))).toString('utf8')) as {
    texts: string[];
    ids: number[][];
    idsWithSpecial: number[][];
  };
  assert.equal(ref.texts.length, 20);
  const tok = Tokenizer.fromModelDir(bundledModelDir());
  ref.texts.forEach((t, i) => {
    assert.deepEqual(tok.encode(t, { addSpecialTokens: false }), ref.ids[i], `text ${i} (${JSON.stringify(t.slice(0, 40))})`);
    assert.deepEqual(tok.encode(t, { addSpecialTokens: true }), ref.idsWithSpecial[i], `text ${i} with special tokens`);
  });
});
