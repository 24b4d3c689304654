// `mopt quantize --layerwise` as a user runs it: the saved state is byte-identical to the whole-model run's,
// the progress directory is gone when the outputs are written, an interrupted run's progress left in --out is
// resumed by the same command (only the remaining layers run), also with --export-format, and progress of
// another run is refused with one line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { calibrationSplit } from '../../src/quant/calib-data.js';
import { presetRecipe } from '../../src/quant/recipes/index.js';
import { calibrateLayerwise } from '../../src/quant/layerwise.js';
import { PROGRESS_DIR } from '../../src/quant/layerwise-progress.js';
import { STATE_FILE } from '../../src/quant/state.js';
import { DATA_SKIP, SHARED_DATA, STORIES_HF } from '../helpers/paths.js';
import { runMopt } from '../helpers/cli.js';

const TEXT = join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt');
const ARGS = ['quantize', '--model', STORIES_HF, '--format', 'nvfp4', '--kv-cache', 'fp8', '--calib-data', TEXT, '--calib-samples', '3', '--seq-len', '64', '--eval-windows', '0'];

/** What an interrupted `mopt quantize ARGS --layerwise --out out` leaves: progress after layer `stage` (0-based). */
function interrupted(out: string, stage: number): void {
  const rows = calibrationSplit(Tokenizer.fromModelDir(STORIES_HF), TEXT, 3, 64, 0).calib;
  const stop = new Error('interrupted');
  assert.throws(() => calibrateLayerwise({
    model: STORIES_HF, dtype: 'float32', device: 'cpu', recipe: presetRecipe('nvfp4', 'fp8'), calibrator: 'max', sqAlpha: 1, batches: rows,
    progressDir: join(out, PROGRESS_DIR), onStageDone: (s) => {
      if (s === stage) throw stop;
    },
  }), (e) => e === stop);
}

test('quantize --layerwise: same state as the whole-model run, resumes an interrupted run, refuses another run\'s progress', { skip: DATA_SKIP }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopt-quant-layerwise-'));
  try {
    const help = runMopt(['quantize', '--help']);
    assert.match(help.stdout.replace(/\s+/g, ' '), /--layerwise +calibrate one decoder layer at a time/);

    const whole = runMopt([...ARGS, '--out', join(dir, 'whole')]);
    assert.equal(whole.code, 0, whole.stderr);
    const state = readFileSync(join(dir, 'whole', STATE_FILE), 'utf8');

    const lw = runMopt([...ARGS, '--layerwise', '--out', join(dir, 'lw')]);
    assert.equal(lw.code, 0, lw.stderr);
    assert.match(lw.stderr, /calibrate layer 1\/5/);
    assert.equal(readFileSync(join(dir, 'lw', STATE_FILE), 'utf8'), state, 'byte-identical state');
    assert.ok(!existsSync(join(dir, 'lw', PROGRESS_DIR)), 'the progress is removed once the outputs are written');

    // an interrupted run's progress in --out: the same command resumes after layer 3
    interrupted(join(dir, 'resume'), 2);
    const resumed = runMopt([...ARGS, '--layerwise', '--out', join(dir, 'resume')]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.doesNotMatch(resumed.stderr, /calibrate layer [123]\/5/);
    assert.match(resumed.stderr, /calibrate layer 4\/5/);
    assert.match(resumed.stderr, /resuming layer-by-layer calibration from .*layerwise-progress: 3 of 5 stages already done/);
    assert.equal(readFileSync(join(dir, 'resume', STATE_FILE), 'utf8'), state);

    // with --export-format, an --out holding only the progress is resumed, not refused as non-empty
    interrupted(join(dir, 'export'), 0);
    const exported = runMopt([...ARGS, '--layerwise', '--out', join(dir, 'export'), '--export-format', 'modelopt']);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stderr, /calibrate layer 2\/5/);
    assert.doesNotMatch(exported.stderr, /calibrate layer 1\/5/);
    assert.equal(readFileSync(join(dir, 'export', STATE_FILE), 'utf8'), state);
    assert.ok(!existsSync(join(dir, 'export', PROGRESS_DIR)));

    // progress of a different run (another preset) is refused with one line naming the fix
    interrupted(join(dir, 'other'), 1);
    const other = runMopt([...ARGS.map((a) => (a === 'nvfp4' ? 'fp8' : a)), '--layerwise', '--out', join(dir, 'other')]);
    assert.equal(other.code, 1, other.stderr);
    assert.match(other.stderr.trim(), /^mopt: error: .*layerwise-progress holds the progress of a different run \(its recipe differs\); delete .* to start over, or re-run the interrupted command unchanged$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
