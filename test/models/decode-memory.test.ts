// 1,000 decode steps must not grow device memory: the live storage count seen from the token callback
// stays flat from step 10 on (KV cache and every per-step temporary are released each step).

import assert from 'node:assert/strict';
import { parseDecoderConfig } from '../../src/models/config.js';
import { initModel } from '../../src/models/load.js';
import { generate } from '../../src/runtime/generate.js';
import { forEachBackend } from '../helpers/backends.js';

forEachBackend('no memory growth over 1,000 greedy decode steps', ({ name, backend }) => {
  const live = (): number => backend.liveStorages();
  const config = parseDecoderConfig(
    {
      model_type: 'llama', vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 1100,
    },
    'test config',
  );
  const model = initModel(config, 3, { device: name });
  const before = live();
  const counts: number[] = [];
  const ids = generate(model, [1, 2, 3], { maxNewTokens: 1000, greedy: true, onToken: () => counts.push(live()) });
  assert.equal(ids.length, 1000);
  assert.equal(Math.max(...counts.slice(10)), Math.min(...counts.slice(10)), 'live storages changed during decoding');
  assert.equal(live(), before, 'generate left storages behind');
});
