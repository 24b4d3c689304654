// Resolution: the last rule whose glob matches wins (Model Optimizer applies quant_cfg entries in order,
// later ones overriding earlier ones). A name no rule matches is disabled: every preset starts with `*`
// disabled anyway, and "unmentioned means unquantized" is the safe reading of a hand-written recipe.

import { DISABLED, type Recipe, type Resolved } from './types.js';

export function resolveQuantizer(recipe: Recipe, quantizerName: string): Resolved {
  for (let i = recipe.rules.length - 1; i >= 0; i--) {
    const r = recipe.rules[i]!;
    if (r.regex.test(quantizerName)) return r.settings;
  }
  return DISABLED;
}
