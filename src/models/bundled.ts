// mopt-tiny, the model that ships inside the package (models/mopt-tiny: a Llama trained by mopt on public
// domain text, with its tokenizer, calibration text and held-out text; see its README.md). `mopt quantize`
// without --model runs on it, so a fresh install can do the main job with no download.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';

export const BUNDLED_MODEL_NAME = 'mopt-tiny';

/** models/mopt-tiny of the installed package: found upwards from this file (src/ in a checkout, dist/src/ when built). */
export function bundledModelDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'models', BUNDLED_MODEL_NAME);
    if (existsSync(join(candidate, 'config.json'))) return candidate;
    dir = dirname(dir);
  }
  throw new UserError(`the bundled model models/${BUNDLED_MODEL_NAME} is missing from this installation (reinstall mopt)`);
}

/** The bundled model's calibration text (State of the Union addresses 2008-2014, inside its training years). */
export const bundledCalibration = (): string => join(bundledModelDir(), 'calibration.jsonl');
/** The bundled model's held-out text (addresses from 2015 on, never trained on). */
export const bundledHeldOut = (): string => join(bundledModelDir(), 'heldout.jsonl');
