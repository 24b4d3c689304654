// The bundled model (models/mopt-tiny) and the main job on it: its greedy text is the one recorded on the
// H200 when it was trained (CPU float32 must give the same tokens), it predicts held-out addresses far better
// than a unigram model, and `mopt quantize` with no arguments quantizes it to NVFP4 on its bundled text with
// a perplexity close to the original's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundledHeldOut, bundledModelDir } from '../../src/models/bundled.js';
import { loadModel } from '../../src/models/load.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { generate } from '../../src/runtime/generate.js';
import { perplexity } from '../../src/eval/perplexity.js';
import { readDocuments, tokenWindows } from '../../src/quant/calib-data.js';
import { runMopt } from '../helpers/cli.js';

test('mopt-tiny: greedy text as recorded on the H200, held-out perplexity far below the unigram baseline', () => {
  const dir = bundledModelDir();
  const model = loadModel(dir);
  const tok = Tokenizer.fromModelDir(dir);
  const ids = generate(model, tok.encode('Fellow citizens'), { maxNewTokens: 24, greedy: true });
  assert.equal(
    tok.decode(ids, { skipSpecialTokens: true }),
    '. The Government of the United States has been instructed to maintain the rights of the people of the United States, and',
  );
  // 4 windows of 256 held-out tokens: the unigram baseline of this text is ~1,100 (models/mopt-tiny/README.md)
  const rows = tokenWindows(tok, readDocuments(bundledHeldOut()), 256, 4);
  const { ppl } = perplexity(model, rows);
  assert.ok(ppl > 20 && ppl < 150, `held-out perplexity ${ppl}`);
});

test('main job: `mopt quantize` with no --model quantizes the bundled model to NVFP4 and reports the cost', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'mopt-main-'));
  try {
    const r = runMopt(['quantize', '--calib-samples', '4', '--eval-windows', '4', '--json'], { cwd });
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(readFileSync(join(cwd, 'mopt-out', 'report.json'), 'utf8'));
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').at(-1)!), report);
    assert.equal(report.recipe.preset, 'nvfp4');
    const before = report.evaluation.before.ppl;
    const after = report.evaluation.after.ppl;
    // a random model of this vocabulary scores ~4,096; the trained one far less, and NVFP4 costs a few percent
    assert.ok(before < 150, `original ppl ${before}`);
    assert.ok(after > before * 0.98 && after < before * 1.1, `NVFP4 ppl ${after} vs ${before}`);
    assert.ok(report.evaluation.kl.mean > 0 && report.evaluation.kl.mean < 0.2, `KL ${report.evaluation.kl.mean}`);
    // sizes of the stored bfloat16 checkpoint, not of the float32 compute copy
    assert.ok(Math.abs(report.size.sourceBytes - 2 * 3148224) < 1, `source bytes ${report.size.sourceBytes}`);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});
