// A 2-layer Llama trained from scratch on TinyStories text on the CPU must clearly lower its loss:
// exercises autograd through the whole decoder, cross-entropy, AdamW, clipping and the LR schedule.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDecoderConfig } from '../../src/models/config.js';
import { initModel } from '../../src/models/load.js';
import { crossEntropy } from '../../src/nn/functional.js';
import { AdamW, clipGradNorm, warmupCosineLr } from '../../src/nn/optim.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { tensor, tidy } from '../../src/tensor/index.js';
import { Rng } from '../../src/tensor/random.js';
import { SHARED_DATA, STORIES_HF } from '../helpers/paths.js';

test('2-layer Llama trained for 300 steps on TinyStories lowers its loss clearly', () => {
  const tok = Tokenizer.fromModelDir(STORIES_HF);
  const text = readFileSync(join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt'), 'utf8').slice(0, 60_000);
  const ids = tok.encode(text, { addSpecialTokens: false });
  const config = parseDecoderConfig(
    {
      model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 512, hidden_size: 48, intermediate_size: 128,
      num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-5,
      tie_word_embeddings: true,
    },
    'test config',
  );
  const model = initModel(config, 11);
  const params = model.parameters();
  for (const p of params) p.requireGrad();
  const steps = Number(process.env.MOPT_TRAIN_STEPS ?? 300);
  const opt = new AdamW(params, { lr: 0, weightDecay: 0.01 });
  const rng = new Rng(5);
  const batch = 4;
  const seq = 32;
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    opt.lr = warmupCosineLr(step, { peak: 1e-2, warmupSteps: 20, totalSteps: steps, minLr: 1e-3 });
    const rows: number[] = [];
    const targets: number[] = [];
    for (let b = 0; b < batch; b++) {
      const start = rng.int(ids.length - seq - 1);
      rows.push(...ids.slice(start, start + seq));
      targets.push(...ids.slice(start + 1, start + seq + 1));
    }
    const loss = tidy(() => {
      const logits = model.forward(tensor(rows, [batch, seq], { dtype: 'int32' }));
      const l = crossEntropy(logits, tensor(targets, [batch, seq], { dtype: 'int32' }));
      l.backward();
      return l.item();
    });
    clipGradNorm(params, 1.0);
    opt.update();
    opt.zeroGrad();
    losses.push(loss);
  }
  const first = losses.slice(0, 10).reduce((a, b) => a + b) / 10;
  const last = losses.slice(-20).reduce((a, b) => a + b) / 20;
  assert.ok(Math.abs(first - Math.log(512)) < 0.3, `initial loss ${first} should be near ln(512)`);
  assert.ok(last < first - 1.5, `loss went from ${first.toFixed(3)} to ${last.toFixed(3)}; expected a drop of more than 1.5 nats`);
});
