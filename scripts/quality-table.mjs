#!/usr/bin/env node
// Builds the docs/quality.md table: runs `mopt quantize --json` on one model for each configuration below
// and prints a markdown table (ppl before/after, mean KL, bits per Linear weight, size, layers left out).
// Usage (from the repository root, after npm run build):
//   node scripts/quality-table.mjs --model ../shared/data/models/stories260K-hf \
//     --calib-data ../shared/data/corpora/tinystories_val_subset.txt [--eval-data FILE] [--device cpu]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const model = arg('--model');
const calib = arg('--calib-data');
if (!model || !calib) {
  console.error('usage: node scripts/quality-table.mjs --model DIR --calib-data FILE [--eval-data FILE] [--device cpu] [--samples 32] [--seq-len 256] [--eval-windows 16] [--only LABEL-SUBSTRING]');
  process.exit(2);
}
const common = ['--model', model, '--calib-data', calib, '--calib-samples', arg('--samples', '32'), '--seq-len', arg('--seq-len', '256'),
  '--eval-windows', arg('--eval-windows', '16'), '--device', arg('--device', 'cpu')];
const evalData = arg('--eval-data');
if (evalData) common.push('--eval-data', evalData);

// [label, extra arguments]
const CONFIGS = [
  ['fp8 (W8A8 FP8, max)', ['--format', 'fp8']],
  ['fp8 + FP8 KV cache', ['--format', 'fp8', '--kv-cache', 'fp8']],
  ['fp8, entropy calibrator', ['--format', 'fp8', '--calibrator', 'entropy']],
  ['int8 W8A8 (int8_sq rules, max, no smoothing)', ['--format', 'int8_sq', '--algorithm', 'max']],
  ['int8 W8A8, percentile 99.99', ['--format', 'int8_sq', '--algorithm', 'max', '--calibrator', 'percentile']],
  ['int8 W8A8, entropy', ['--format', 'int8_sq', '--algorithm', 'max', '--calibrator', 'entropy']],
  ['int8 W8A8, mse', ['--format', 'int8_sq', '--algorithm', 'max', '--calibrator', 'mse']],
  ['int8 W8A8 + SmoothQuant α = 1.0 (Model Optimizer default)', ['--format', 'int8_sq']],
  ['int8 W8A8 + SmoothQuant α = 0.5 (paper default)', ['--format', 'int8_sq', '--sq-alpha', '0.5']],
  ['int4 g32 weight-only, round-to-nearest', ['--format', 'int4_awq', '--algorithm', 'max', '--group-size', '32']],
  ['int4 g32 weight-only, AWQ lite', ['--format', 'int4_awq', '--group-size', '32']],
  ['int4 g32 weight-only, GPTQ', ['--format', 'int4_awq', '--algorithm', 'gptq', '--group-size', '32']],
  ['int4 g32 weight-only, AWQ clip', ['--format', 'int4_awq', '--algorithm', 'awq_clip', '--group-size', '32']],
  ['int4 g32 weight-only, AWQ full (lite + clip)', ['--format', 'int4_awq', '--algorithm', 'awq_full', '--group-size', '32']],
  ['int4 g32 weight-only, weight MSE search', ['--format', 'int4_awq', '--algorithm', 'mse', '--group-size', '32']],
  ['w4a8 g32 (INT4 weights + FP8 inputs), RTN', ['--format', 'w4a8_awq', '--algorithm', 'max', '--group-size', '32']],
  ['w4a8 g32, AWQ lite', ['--format', 'w4a8_awq', '--group-size', '32']],
  ['nvfp4 (W4A4)', ['--format', 'nvfp4']],
  ['nvfp4 + AWQ lite', ['--format', 'nvfp4_awq']],
  ['nvfp4 + NVFP4 KV cache', ['--format', 'nvfp4', '--kv-cache', 'nvfp4']],
  ['w4a16_nvfp4 (weight-only)', ['--format', 'w4a16_nvfp4']],
  ['w4a16_nvfp4, GPTQ', ['--format', 'w4a16_nvfp4', '--algorithm', 'gptq']],
  ['w4a16_nvfp4, weight MSE search', ['--format', 'w4a16_nvfp4', '--algorithm', 'mse']],
  ['mxfp8', ['--format', 'mxfp8']],
  ['mxfp4', ['--format', 'mxfp4']],
];

const cli = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
// --only SUBSTRING: just the configurations whose label contains it
const only = arg('--only');
const rows = [];
for (const [label, extra] of CONFIGS.filter(([l]) => only === undefined || l.includes(only))) {
  const out = mkdtempSync(join(tmpdir(), 'mopt-quality-'));
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [cli, 'quantize', ...common, ...extra, '--out', out, '--json'], { encoding: 'utf8' });
  rmSync(out, { recursive: true, force: true });
  if (r.status !== 0) {
    rows.push(`| ${label} | failed: ${r.stderr.trim().split('\n').pop()} | | | | | |`);
    continue;
  }
  const rep = JSON.parse(r.stdout);
  const e = rep.evaluation;
  const left = rep.quantizers.filter((q) => q.skipped !== null).length;
  const pct = (100 * (e.after.ppl - e.before.ppl)) / e.before.ppl;
  rows.push(`| ${label} | \`${['quantize', ...extra].join(' ')}\` | ${e.before.ppl.toFixed(4)} | ${e.after.ppl.toFixed(4)} (${pct >= 0 ? '+' : ''}${pct.toFixed(2)}%) | ${e.kl.mean.toFixed(5)} | ${rep.size.linearBitsPerWeight.toFixed(2)} | ${(rep.size.quantizedBytes / 1e3).toFixed(0)} kB | ${left} |`);
  console.error(`${label}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
console.log('| configuration | mopt command | ppl before | ppl after | mean KL (nats/token) | bits per Linear weight | parameters | quantizers left out |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const row of rows) console.log(row);
