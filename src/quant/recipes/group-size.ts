// --group-size N: rewrites the block length of INT4 quantizers (the only format whose group size is a
// free choice among 32/64/128 — formats.md). NVFP4 (16) and MX (32) blocks are fixed by the format and
// FP8 here is per-tensor/per-channel, so asking for a group size on those is refused, not ignored.

import { UserError } from '../../util/errors.js';
import { DISABLED, type QuantizerSettings, type Recipe } from './types.js';

export const INT4_GROUP_SIZES = [32, 64, 128] as const;

export function applyGroupSize(recipe: Recipe, n: number): Recipe {
  if (!(INT4_GROUP_SIZES as readonly number[]).includes(n)) {
    throw new UserError(`--group-size ${n}: not allowed (allowed for INT4: ${INT4_GROUP_SIZES.join(', ')})`);
  }
  let changed = 0;
  const formats = new Set<string>();
  const rewrite = (s: QuantizerSettings): QuantizerSettings => {
    formats.add(s.format);
    const then = s.then === undefined ? undefined : rewrite(s.then);
    if (s.format === 'int4' && s.blockSize !== undefined) {
      changed++;
      return { ...s, blockSize: n, ...(then ? { then } : {}) };
    }
    return then ? { ...s, then } : s;
  };
  const rules = recipe.rules.map((r) => (r.settings === DISABLED ? r : { ...r, settings: rewrite(r.settings) }));
  if (changed === 0) {
    const fs = [...formats].join(', ') || 'none';
    throw new UserError(`--group-size applies only to block-wise INT4 quantizers; this recipe uses: ${fs} (nvfp4 blocks are fixed at 16, mxfp8/mxfp4 at 32)`);
  }
  return { ...recipe, rules };
}
