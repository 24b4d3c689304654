// 1,000 decode steps must not grow device memory: the live storage count seen from the token callback
// stays flat from step 10 on (KV cache and every per-step temporary are released each step), and on CUDA
// the caching allocator's allocated bytes are back where they started afterwards. float32 decodes through
// the recorded multi-kernel step; bfloat16 through the whole-step kernel where the backend has one
// (CUDA: test/runtime/decode-fused.test.ts).

import assert from 'node:assert/strict';
import { parseDecoderConfig } from '../../src/models/config.js';
import { initModel } from '../../src/models/load.js';
import { generate } from '../../src/runtime/generate.js';
import { TINY_LLAMA, allocatedBytes, forEachBackend } from '../helpers/backends.js';

forEachBackend('no memory growth over 1,000 greedy decode steps', ({ name, backend }) => {
  const live = (): number => backend.liveStorages();
  const config = parseDecoderConfig({ ...TINY_LLAMA, max_position_embeddings: 1100 }, 'test config');
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const model = initModel(config, 3, { device: name, dtype });
    const before = live();
    const bytesBefore = allocatedBytes(backend);
    const counts: number[] = [];
    const ids = generate(model, [1, 2, 3], { maxNewTokens: 1000, greedy: true, onToken: () => counts.push(live()) });
    assert.equal(ids.length, 1000);
    assert.equal(Math.max(...counts.slice(10)), Math.min(...counts.slice(10)), `${dtype}: live storages changed during decoding`);
    assert.equal(live(), before, `${dtype}: generate left storages behind`);
    assert.equal(allocatedBytes(backend), bytesBefore, `${dtype}: generate left device memory allocated`);
    for (const p of model.parameters()) p.dispose();
  }
});

forEachBackend('a device-side position frees everything it made (16-bit tables are cast from float32 temporaries)', ({ name, backend }) => {
  const config = parseDecoderConfig(
    { model_type: 'llama', vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2 },
    'test config',
  );
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const model = initModel(config, 3, { device: name, dtype });
    const before = backend.liveStorages();
    model.devicePosition(40).dispose();
    assert.equal(backend.liveStorages(), before, dtype);
    for (const p of model.parameters()) p.dispose();
  }
});
