// The trained stories260K Llama (converted to HF format) against llama2.c's golden greedy text.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/models/load.js';
import { generate } from '../../src/runtime/generate.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { SHARED_DATA, STORIES_HF } from '../helpers/paths.js';
import { forEachBackend } from '../helpers/backends.js';

forEachBackend('stories260K greedy decoding after <s> reproduces llama2.c golden text', ({ name }) => {
  const model = loadModel(STORIES_HF, { device: name });
  const tok = Tokenizer.fromModelDir(STORIES_HF);
  const expected = readFileSync(join(SHARED_DATA, 'models', 'stories260K', 'expected_greedy_200.txt'), 'utf8').trimEnd();
  // llama2.c's run with steps=200 prints 200 tokens after BOS; the golden text is exactly those 200 ids
  // (its tokenization is 200 ids long), so compare ids, not only text.
  const golden = tok.encode(expected, { addSpecialTokens: false });
  assert.equal(golden.length, 200);
  const ids = generate(model, [1], { maxNewTokens: 200, greedy: true });
  assert.deepEqual(ids, golden);
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), expected);
  // 199 new tokens are the golden text up to its last word
  assert.ok(expected.startsWith(tok.decode(ids.slice(0, 199), { skipSpecialTokens: true })));
});
