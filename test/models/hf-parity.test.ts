// Logits and greedy generations against Hugging Face transformers, on tiny random-weight models made by
// scripts/make_hf_fixtures.py (committed under test/fixtures/hf with the transformers outputs), on every
// backend under test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/models/load.js';
import { generate } from '../../src/runtime/generate.js';
import { readNpy } from '../../src/io/npy.js';
import { tensor, noGrad, tidy } from '../../src/tensor/index.js';
import { FIXTURES } from '../helpers/paths.js';
import { forEachBackend } from '../helpers/backends.js';

const dir = join(FIXTURES, 'hf');
const cases = existsSync(dir) ? readdirSync(dir).filter((d) => existsSync(join(dir, d, 'logits.npy'))).sort() : [];

// Issue #2/#3 ask for <= 1e-4 (float32, TF32 off). The CPU reference measures ~5e-7, so it is held to
// 3e-6, which also catches subtle slips such as a wrong RMSNorm eps (~6e-6 on these logits).
const TOLERANCE: Record<string, number> = { cpu: 3e-6, cuda: 1e-4 };

test('HF fixtures are present', () => {
  for (const must of ['llama-gqa', 'llama3-rope', 'llama-linear-rope', 'llama-yarn-rope', 'qwen2-bias-tied', 'qwen3-qknorm', 'mistral', 'mistral-sliding']) {
    assert.ok(cases.includes(must), `fixture ${must} missing from ${dir}; run scripts/make_hf_fixtures.py on the GPU machine`);
  }
});

for (const name of cases) {
  const caseDir = join(dir, name);
  forEachBackend(`${name}: float32 logits match transformers`, ({ name: device }) => {
    const model = loadModel(caseDir, { device });
    const ids = readNpy(join(caseDir, 'input_ids.npy'));
    const ref = readNpy(join(caseDir, 'logits.npy')).data as Float32Array;
    const [b, s] = ids.shape;
    const idList = Array.from(ids.data as BigInt64Array, Number);
    const got = noGrad(() => tidy(() => model.forward(tensor(idList, [b, s], { dtype: 'int32', device })).toFloat32Array()));
    assert.equal(got.length, ref.length);
    let num = 0;
    let den = 0;
    for (let i = 0; i < ref.length; i++) {
      num += (got[i] - ref[i]) ** 2;
      den += ref[i] ** 2;
    }
    const rel = Math.sqrt(num / den);
    assert.ok(rel <= TOLERANCE[device], `relative error ${rel.toExponential(3)} > ${TOLERANCE[device]}`);
    process.stdout.write(`# ${device} ${name}: relative logits error ${rel.toExponential(2)}\n`);
  });

  forEachBackend(`${name}: greedy generation equals transformers generate()`, ({ name: device }) => {
    const model = loadModel(caseDir, { device });
    const g = JSON.parse(readFileSync(join(caseDir, 'greedy.json'), 'utf8')) as { prompt: number[]; new_tokens: number[] };
    const ids = generate(model, g.prompt, { maxNewTokens: g.new_tokens.length, greedy: true });
    assert.deepEqual(ids, g.new_tokens);
  });
}
