// parseRecipe: JSON or YAML text → validated Recipe. Every problem is a one-line UserError of the form
// `<source>: <key path>: <what is wrong> (allowed: ...)` so a user can find the line to fix.
//
// Accepted shape (Model Optimizer's quant_cfg, as our own keys):
//   algorithm: max | smoothquant | awq_lite | ...            (default max)
//   quant_cfg:                                               ordered; last match wins
//     - ["*weight_quantizer", {format: int4, block_size: 128}]                 tuple form
//     - {quantizer_name: "*lm_head*", enable: false}                            Model Optimizer's entry form
//     - {quantizer_name: "*input_quantizer", cfg: {format: fp8}}
// Settings keys: format, axis, block_size, dynamic, then (second stage), enable (false → disabled).

import { parse as parseYaml } from 'yaml';
import { UserError } from '../../util/errors.js';
import { compileGlob } from './glob.js';
import { ALGORITHMS, DISABLED, FORMATS, type Algorithm, type Format, type QuantizerSettings, type Recipe, type Resolved, type Rule } from './types.js';

const TOP_KEYS = ['algorithm', 'quant_cfg'];
const ENTRY_KEYS = ['quantizer_name', 'cfg', 'enable'];
const SETTING_KEYS = ['format', 'axis', 'block_size', 'dynamic', 'then', 'enable'];
// Block lengths each format can use (formats.md): MX is fixed at 32; NVFP4 is 16 (32 in w4a8_nvfp4_fp8);
// INT4 groups are 32/64/128 (the sizes AWQ kernels and --group-size accept).
const BLOCK_SIZES: Record<Format, readonly number[]> = {
  fp8: [128], int8: [], int4: [32, 64, 128], nvfp4: [16, 32], mxfp8: [32], mxfp4: [32],
};

class Ctx {
  constructor(readonly source: string) {}
  fail(path: string, msg: string): never {
    throw new UserError(`${this.source}: ${path || '<root>'}: ${msg}`.replace(/\s*\n\s*/g, ' '));
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(ctx: Ctx, path: string, obj: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) ctx.fail(join(path, k), `unknown key (allowed: ${allowed.join(', ')})`);
  }
}

function join(path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;
}

function oneOf<T extends string>(ctx: Ctx, path: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    ctx.fail(path, `bad value ${JSON.stringify(v)} (allowed: ${allowed.join(', ')})`);
  }
  return v as T;
}

function parseSettings(ctx: Ctx, path: string, v: unknown): Resolved {
  if (!isObject(v)) ctx.fail(path, `expected an object with keys ${SETTING_KEYS.join(', ')}`);
  checkKeys(ctx, path, v, SETTING_KEYS);
  if (v.enable !== undefined && typeof v.enable !== 'boolean') ctx.fail(join(path, 'enable'), `bad value ${JSON.stringify(v.enable)} (allowed: true, false)`);
  if (v.enable === false) return DISABLED;
  return parseEnabled(ctx, path, v);
}

function parseEnabled(ctx: Ctx, path: string, v: Record<string, unknown>): QuantizerSettings {
  if (v.format === undefined) ctx.fail(join(path, 'format'), `missing (allowed: ${FORMATS.join(', ')}), or set enable: false`);
  const format = oneOf(ctx, join(path, 'format'), v.format, FORMATS);
  const s: QuantizerSettings = { format };
  if (v.axis !== undefined) {
    if (!Number.isInteger(v.axis)) ctx.fail(join(path, 'axis'), `bad value ${JSON.stringify(v.axis)} (allowed: an integer axis, e.g. 0)`);
    s.axis = v.axis as number;
  }
  if (v.block_size !== undefined) {
    const allowed = BLOCK_SIZES[format];
    if (typeof v.block_size !== 'number' || !allowed.includes(v.block_size)) {
      ctx.fail(join(path, 'block_size'), `bad value ${JSON.stringify(v.block_size)} for ${format} (allowed: ${allowed.length ? allowed.join(', ') : 'none; ' + format + ' has no blocks'})`);
    }
    s.blockSize = v.block_size;
  }
  if (s.axis !== undefined && s.blockSize !== undefined) ctx.fail(path, 'axis and block_size are exclusive (per-channel or per-block, not both)');
  if (v.dynamic !== undefined) {
    if (typeof v.dynamic !== 'boolean') ctx.fail(join(path, 'dynamic'), `bad value ${JSON.stringify(v.dynamic)} (allowed: true, false)`);
    s.dynamic = v.dynamic;
  }
  if (v.then !== undefined) {
    const t = parseSettings(ctx, join(path, 'then'), v.then);
    if (t === DISABLED) ctx.fail(join(path, 'then'), 'a second stage cannot be disabled; remove `then` instead');
    s.then = t;
  }
  return s;
}

function parsePattern(ctx: Ctx, path: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') ctx.fail(path, 'expected a non-empty glob string (e.g. "*weight_quantizer")');
  return v;
}

function parseEntry(ctx: Ctx, path: string, e: unknown): Rule {
  let pattern: string;
  let settings: Resolved;
  if (Array.isArray(e)) {
    if (e.length !== 2) ctx.fail(path, `expected [glob, settings], got ${e.length} items`);
    pattern = parsePattern(ctx, join(path, 0), e[0]);
    settings = parseSettings(ctx, join(path, 1), e[1]);
  } else if (isObject(e)) {
    checkKeys(ctx, path, e, ENTRY_KEYS);
    pattern = parsePattern(ctx, join(path, 'quantizer_name'), e.quantizer_name);
    if (e.enable !== undefined && typeof e.enable !== 'boolean') ctx.fail(join(path, 'enable'), `bad value ${JSON.stringify(e.enable)} (allowed: true, false)`);
    if (e.enable === false) settings = DISABLED;
    else if (e.cfg === undefined) ctx.fail(join(path, 'cfg'), 'missing (give cfg settings, or enable: false)');
    else settings = parseSettings(ctx, join(path, 'cfg'), e.cfg);
  } else {
    ctx.fail(path, 'expected [glob, settings] or {quantizer_name, cfg, enable}');
  }
  return { pattern, settings, regex: compileGlob(pattern) };
}

/** Parses recipe data already decoded from JSON/YAML. */
export function recipeFromData(data: unknown, source: string): Recipe {
  const ctx: Ctx = new Ctx(source);
  if (!isObject(data)) ctx.fail('', `expected an object with keys ${TOP_KEYS.join(', ')}`);
  checkKeys(ctx, '', data, TOP_KEYS);
  const algorithm: Algorithm = data.algorithm === undefined ? 'max' : oneOf(ctx, 'algorithm', data.algorithm, ALGORITHMS);
  if (!Array.isArray(data.quant_cfg)) ctx.fail('quant_cfg', 'missing or not a list of [glob, settings] rules');
  const rules = data.quant_cfg.map((e: unknown, i: number) => parseEntry(ctx, join('quant_cfg', i), e));
  return { algorithm, rules };
}

/** JSON when the source ends in .json or the text starts with `{`/`[`, YAML otherwise. */
export function parseRecipe(text: string, source: string): Recipe {
  const ext = source.toLowerCase();
  const json = ext.endsWith('.json') || (!/\.ya?ml$/.test(ext) && /^\s*[[{]/.test(text));
  let data: unknown;
  try {
    data = json ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new UserError(`${source}: not valid ${json ? 'JSON' : 'YAML'}: ${msg}`.replace(/:?\s*\n[\s\S]*$/, ''));
  }
  return recipeFromData(data, source);
}
