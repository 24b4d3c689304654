// A DecodeSession keeps the cache, the step decoder and the recorded prefills between generate() calls: the
// tokens must be those of generate() without one (greedy: first run at a length eager, second recorded,
// later replayed, including with other prompt ids; a longer request grows the cache; sampling), and
// dispose() must free everything the session made, and the trained stories260K must still give llama2.c's
// golden text. float32 decodes through the recorded multi-kernel step, bfloat16 through the whole-step kernel
// where the backend has one (CUDA); elsewhere every step is eager and only the cache's reuse is exercised.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDecoderConfig } from '../../src/models/config.js';
import { initModel, loadModel } from '../../src/models/load.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { DATA_SKIP, SHARED_DATA, STORIES_HF } from '../helpers/paths.js';
import { generate } from '../../src/runtime/generate.js';
import { DecodeSession } from '../../src/runtime/decode-session.js';
import { canCaptureGraphs } from '../../src/backend/backend.js';
import { TINY_LLAMA, allocatedBytes, forEachBackend } from '../helpers/backends.js';
import { keep, noGrad, tensor, tidy } from '../../src/tensor/index.js';

forEachBackend('generate() with a DecodeSession gives the tokens of generate() without one, and dispose() frees it all', ({ name, backend }) => {
  const config = parseDecoderConfig({ ...TINY_LLAMA, vocab_size: 96, hidden_size: 64, intermediate_size: 128, max_position_embeddings: 600 }, 'test config');
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const model = initModel(config, 5, { device: name, dtype });
    const other = initModel(config, 6, { device: name, dtype });
    const a = [3, 14, 15, 92, 65];
    const b = [2, 71, 82, 81, 8];
    const c = [1, 4, 1, 42, 13, 56, 23, 7, 9];
    // [prompt, new tokens, sampling]: a three times (eager, recorded, replayed), b at a's length (replayed
    // with other ids), c (another length), then more positions than the first cache holds, then sampling
    const calls: [number[], number, boolean][] = [[a, 12, true], [a, 12, true], [a, 12, true], [b, 12, true], [c, 7, true], [b, 300, true], [a, 10, false], [a, 12, true]];
    const want = calls.map(([p, n, greedy]) => generate(model, p, { maxNewTokens: n, greedy, seed: 7 }));
    const live = backend.liveStorages();
    const bytes = allocatedBytes(backend);
    const session = new DecodeSession(model);
    try {
      calls.forEach(([p, n, greedy], i) => {
        const got = generate(model, p, { maxNewTokens: n, greedy, seed: 7, session });
        assert.deepEqual(got, want[i], `${dtype}: call ${i} (prompt of ${p.length}, ${n} new, ${greedy ? 'greedy' : 'sampled'})`);
        // after a, a, a, b: length 5 recorded where the backend records graphs
        if (i === 3) assert.equal(session.recordedPrefills, canCaptureGraphs(backend) ? 1 : 0, `${dtype}: recorded prefills`);
      });
      assert.throws(() => generate(other, a, { maxNewTokens: 2, session }), /session was made for another model/);
    } finally {
      session.dispose();
    }
    assert.equal(backend.liveStorages(), live, `${dtype}: the disposed session left storages behind`);
    assert.equal(allocatedBytes(backend), bytes, `${dtype}: the disposed session left device memory allocated`);
    assert.throws(() => generate(model, a, { maxNewTokens: 2, session }), /used after dispose/);
    for (const p of [...model.parameters(), ...other.parameters()]) p.dispose();
  }
});

forEachBackend('a DecodeSession rebuilds its step decoder and recordings when a parameter is replaced (as PTQ does)', ({ name }) => {
  const config = parseDecoderConfig({ ...TINY_LLAMA, vocab_size: 96, hidden_size: 64, intermediate_size: 128, max_position_embeddings: 600 }, 'test config');
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const model = initModel(config, 8, { device: name, dtype });
    const prompt = [5, 17, 33, 2, 71];
    const session = new DecodeSession(model);
    try {
      const before = generate(model, prompt, { maxNewTokens: 12, session });
      assert.deepEqual(generate(model, prompt, { maxNewTokens: 12, session }), before, `${dtype}: recorded prefill`);
      const key = 'model.layers.1.mlp.down_proj.weight';
      const old = model.params.get(key)!;
      model.params.set(key, keep(tidy(() => old.mul(-4))));
      old.dispose(); // what the session's kernel and recordings pointed at is gone
      const want = generate(model, prompt, { maxNewTokens: 12 });
      assert.notDeepEqual(want, before, `${dtype}: the replaced weight must change the tokens for this test to mean anything`);
      assert.deepEqual(generate(model, prompt, { maxNewTokens: 12, session }), want, `${dtype}: the session after the replacement`);
      assert.deepEqual(generate(model, prompt, { maxNewTokens: 12, session }), want, `${dtype}: recorded again`);
    } finally {
      session.dispose();
      for (const p of model.parameters()) p.dispose();
    }
  }
});

forEachBackend('a DecodeSession serves one generate() at a time and keeps at most 8 recorded prefills', ({ name, backend }) => {
  const config = parseDecoderConfig({ ...TINY_LLAMA, max_position_embeddings: 600 }, 'test config');
  const model = initModel(config, 9, { device: name, dtype: 'bfloat16' });
  const session = new DecodeSession(model);
  try {
    // a nested call on the same session (from the token callback) would rewrite the outer call's cache
    assert.throws(() => generate(model, [1, 2, 3], { maxNewTokens: 3, session, onToken: () => void generate(model, [4], { maxNewTokens: 2, session }) }), /already in use/);
    assert.throws(() => generate(model, [1, 2, 3], { maxNewTokens: 3, session, onToken: () => session.dispose() }), /dispose\(\) during a generate\(\) call/);
    // ten prompt lengths, each twice (eager, then recorded): the least recently used two are dropped, and
    // recorded again when used again
    const prompts = Array.from({ length: 10 }, (_, i) => Array.from({ length: i + 1 }, (_, j) => (7 * i + 3 * j + 1) % 64));
    const want = prompts.map((p) => generate(model, p, { maxNewTokens: 6 }));
    for (let round = 0; round < 2; round++) prompts.forEach((p, i) => assert.deepEqual(generate(model, p, { maxNewTokens: 6, session }), want[i], `length ${p.length}, round ${round}`));
    const records = canCaptureGraphs(backend) ? 8 : 0;
    assert.equal(session.recordedPrefills, records);
    assert.deepEqual(generate(model, prompts[0], { maxNewTokens: 6, session }), want[0], 'length 1 after its recording was dropped');
    assert.equal(session.recordedPrefills, records);
  } finally {
    session.dispose();
    for (const p of model.parameters()) p.dispose();
  }
});

forEachBackend('stories260K greedy text through a DecodeSession (eager, recorded and replayed prefill) is llama2.c golden text', ({ name, backend }, t) => {
  if (DATA_SKIP) return t.skip(DATA_SKIP);
  const model = loadModel(STORIES_HF, { device: name });
  const tok = Tokenizer.fromModelDir(STORIES_HF);
  const expected = readFileSync(join(SHARED_DATA, 'models', 'stories260K', 'expected_greedy_200.txt'), 'utf8').trimEnd();
  const golden = tok.encode(expected, { addSpecialTokens: false });
  const session = new DecodeSession(model);
  try {
    for (const call of ['eager prefill', 'recorded prefill', 'replayed prefill']) {
      assert.deepEqual(generate(model, [1], { maxNewTokens: 200, greedy: true, session }), golden, call);
    }
    assert.equal(session.recordedPrefills, canCaptureGraphs(backend) ? 1 : 0);
  } finally {
    session.dispose();
    for (const p of model.parameters()) p.dispose();
  }
});

forEachBackend('forward refuses RoPE rows made for another length, naming the call that makes them', ({ name }) => {
  const model = initModel(parseDecoderConfig({ ...TINY_LLAMA }, 'test config'), 2, { device: name });
  noGrad(() => {
    const cache = model.newCache(1, 8);
    try {
      const rope = model.ropeRows(0, 3);
      const ids = tensor([1, 2, 3, 4], [1, 4], { dtype: 'int32', device: name });
      assert.throws(() => model.forward(ids, { cache, rope }), /RoPE rows of shape \[3, 4\] given for 4 positions; make them with ropeRows\(cache length, 4\)/);
      assert.equal(cache.length, 0, 'a refused forward leaves the cache as it was');
    } finally {
      cache.dispose();
      for (const p of model.parameters()) p.dispose();
    }
  });
});
