// Writing an export directory atomically: refuse an --out that is (or holds) the source model or that is
// non-empty without --overwrite, build the whole directory beside it, rename it into place when complete.
// Every export format writes through here, so a failed export never leaves a half-written checkpoint.

import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { UserError } from '../util/errors.js';

/** Throws when `out` may not be written: it is or contains `source`, or is non-empty without overwrite. */
export function checkExportOut(source: string, out: string, overwrite?: boolean): void {
  const outDir = resolve(out);
  const src = resolve(source);
  if (src === outDir || src.startsWith(outDir + sep)) throw new UserError(`--out ${out} is or contains the source model directory; the input model is never modified, choose another directory`);
  if (existsSync(outDir) && readdirSync(outDir).length > 0 && !overwrite) throw new UserError(`--out ${out} exists and is not empty; pass --overwrite to replace it`);
}

/**
 * Runs `fill(tmp)` on a fresh staging directory beside `out`, then replaces `out` with it. Returns fill's
 * result with the staged paths it names rebased onto `out` by the caller (the final directory is `resolve(out)`).
 */
export function writeStaged<T>(source: string, out: string, overwrite: boolean | undefined, fill: (tmp: string) => T): T {
  checkExportOut(source, out, overwrite);
  const outDir = resolve(out);
  const tmp = join(dirname(outDir), `.${basename(outDir)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const result = fill(tmp);
    if (existsSync(outDir)) rmSync(outDir, { recursive: true });
    renameSync(tmp, outDir);
    return result;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
