// Recipe -> data in the accepted file shape (parse.ts), so a quantization state can store the exact rules it
// was made with and rebuild them through the same validator.

import { DISABLED, type QuantizerSettings, type Recipe, type Resolved } from './types.js';

export interface RecipeData {
  algorithm: string;
  quant_cfg: [string, Record<string, unknown>][];
}

function settingsData(s: Resolved): Record<string, unknown> {
  if (s === DISABLED) return { enable: false };
  return enabledData(s);
}

function enabledData(s: QuantizerSettings): Record<string, unknown> {
  const d: Record<string, unknown> = { format: s.format };
  if (s.axis !== undefined) d.axis = s.axis;
  if (s.blockSize !== undefined) d.block_size = s.blockSize;
  if (s.dynamic !== undefined) d.dynamic = s.dynamic;
  if (s.then !== undefined) d.then = enabledData(s.then);
  return d;
}

export function recipeToData(r: Recipe): RecipeData {
  return { algorithm: r.algorithm, quant_cfg: r.rules.map((rule) => [rule.pattern, settingsData(rule.settings)]) };
}
