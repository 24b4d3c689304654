// Recipe types: a recipe is data (JSON/YAML), an ORDERED list of glob rules over quantizer names where the
// last matching rule wins — the shape of Model Optimizer's `quant_cfg` (docs/reference/modelopt.md §1.1),
// expressed as our own types rather than its Python attribute bag.

export const FORMATS = ['fp8', 'int8', 'int4', 'nvfp4', 'mxfp8', 'mxfp4'] as const;
export type Format = (typeof FORMATS)[number];

// Calibration / PTQ algorithms named as in Model Optimizer (§1.2); 'none' is what its MX presets use.
export const ALGORITHMS = ['max', 'smoothquant', 'awq_lite', 'awq_clip', 'awq_full', 'gptq', 'mse', 'none'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

/** How one quantizer quantizes. No axis and no blockSize means per-tensor. */
export interface QuantizerSettings {
  format: Format;
  /** per-channel axis (0 = output rows of a weight); Model Optimizer's `axis` */
  axis?: number;
  /** block length along the last (input) dim; Model Optimizer's `block_sizes {-1: n}` */
  blockSize?: number;
  /** scales computed at run time instead of calibrated (`block_sizes.type: dynamic`) */
  dynamic?: boolean;
  /** a second stage applied after this one (Model Optimizer's SequentialQuantizer, used by W4A8: INT4 then FP8) */
  then?: QuantizerSettings;
}

export const DISABLED = 'disabled' as const;
export type Resolved = QuantizerSettings | typeof DISABLED;

export interface Rule {
  /** glob over quantizer names: `*` any run (dots included), `?` one char, `[kv]` a class */
  pattern: string;
  settings: Resolved;
  /** compiled once when the recipe is built */
  regex: RegExp;
}

export interface Recipe {
  algorithm: Algorithm;
  rules: Rule[];
}
