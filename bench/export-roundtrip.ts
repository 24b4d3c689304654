// Issue #5's round-trip check at scale: for each preset, quantize (the preset's algorithm, then max
// calibration) -> export -> load the checkpoint back the way `mopt eval --model CKPT` does -> the loaded model's
// perplexity must equal the fake-quantized model's (|Δppl|/ppl <= 1e-3). test/export/*.test.ts check the same
// on stories260K; this script runs it on any checkpoint, meant for the random-weight Llama-3.2-1B on the H200:
//
//   python3 bench/make_llama1b.py /tmp/llama1b
//   bash .gpu/run.sh node dist/bench/export-roundtrip.js --model /tmp/llama1b --device cuda --json $OUT/export-roundtrip.json
//
// No tokenizer is needed: calibration and held-out windows are Lehmer token-id streams (bench/token-ids.ts)
// with different seeds. Per case it prints one line, and at the end a markdown table; --json is rewritten after
// every case, so a run killed from outside keeps what finished. A case that throws is reported as ERROR with its
// one-line message and the others continue. Exit status: 0 when every case passed, 1 otherwise (FAIL, ERROR,
// or SKIP because --budget-s ran out).
//
// The steps are the ones `mopt quantize --export-format F` takes (src/cli/quantize-run.ts quantizeOnce):
// restrictPlan, runAlgorithm, calibrate('max'), prepare + write, then apply. Only one model is on the device
// at a time: the fake-quantized model is scored and disposed before the checkpoint is loaded back (the logits
// of the probe window wait on the host), so the peak is about one model plus activations.

import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadModel, readModelConfig } from '../src/models/load.js';
import { DecoderLM } from '../src/models/decoder.js';
import type { LogitsModel } from '../src/models/logits-model.js';
import { openModel, parseDType, parseDevice, type ComputeDType } from '../src/cli/common.js';
import { exportFormat, readerFor } from '../src/export/registry.js';
import { QuantizedModel } from '../src/quant/ptq.js';
import { runAlgorithm } from '../src/quant/algorithms/run.js';
import { ALGORITHMS, INT4_GROUP_SIZES, applyGroupSize, presetRecipe, type Algorithm, type Recipe } from '../src/quant/recipes/index.js';
import { perplexity } from '../src/eval/perplexity.js';
import { getBackend } from '../src/backend/registry.js';
import { liveTensorBytes, peakTensorBytes, resetPeakTensorBytes } from '../src/tensor/memory.js';
import { tidy, noGrad, tensor } from '../src/tensor/index.js';
import { writeJsonAtomic } from '../src/io/json-file.js';
import { UserError } from '../src/util/errors.js';
import { lehmerIds } from './token-ids.js';

const TOLERANCE = 1e-3; // issue #5: |Δppl| / ppl <= 0.1 %
// Seeds of the id streams: row i of the calibration set is lehmerIds(seq, vocab, SEED_CALIB + i), etc.
const SEED_CALIB = 5005;
const SEED_EVAL = 6006;
// Every preset Model Optimizer's export takes, plus one with an FP8 KV cache (k_scale / v_scale).
const DEFAULT_CASES = 'fp8,int8_sq,int4_awq,w4a8_awq,nvfp4,nvfp4_awq,w4a16_nvfp4,mxfp8,mxfp4,nvfp4+kv:fp8';
const CT = 'compressed-tensors';

const HELP = `node dist/bench/export-roundtrip.js [options]
  --model DIR          Hugging Face checkpoint (default /tmp/llama1b; python3 bench/make_llama1b.py /tmp/llama1b)
  --device cpu|cuda    (default cuda)          --dtype float32|bfloat16|float16 (default float32, as mopt quantize)
  --presets LIST       cases, comma-separated: PRESET[+kv:KV][@ct]  (@ct: --export-format compressed-tensors)
                       default ${DEFAULT_CASES}
  --ct                 also every listed case that compressed-tensors can express, as PRESET@ct
  --calib N --eval N --seq N   pseudo-random windows: N calibration, N held-out, of seq tokens (default 4, 4, 256)
  --group-size N|auto  INT4 group size for int4_awq / w4a8_awq (default auto: the largest of 128, 64, 32 dividing
                       hidden_size; 128, the preset's own, on Llama-3.2-1B; 64 on stories260K)
  --algorithm A        every case's algorithm, or FROM=TO[,FROM=TO] (e.g. awq_lite=max when AWQ is too slow)
  --budget-s S         start no new case after S seconds (those left are SKIP); default none
  --tmp DIR            where exports go (default the OS temp dir)   --keep   keep the exports
  --json FILE          results as JSON, rewritten after every case`;

interface Case {
  label: string;
  preset: string;
  kv: string | null;
  format: string;
}

interface Result {
  label: string;
  status: 'PASS' | 'FAIL' | 'ERROR' | 'SKIP';
  error?: string;
  algorithm?: string;
  quantAlgo?: string;
  quantizedLinears?: number;
  pplFake?: number;
  pplLoaded?: number;
  relDiff?: number;
  /** the fake-quantized model's perplexity change against the source's: shows the quantization is not a no-op */
  relChangeVsSource?: number;
  maxAbsLogitDiff?: number;
  exportBytes?: number;
  /** seconds per phase, host clock (device work is synchronized by the reads that end most phases) */
  seconds?: Record<string, number>;
  peakDeviceBytes?: number;
  /** tensor bytes still alive after the case minus before: 0 unless something leaked */
  leakedBytes?: number;
  /** the process's peak resident memory so far (host RAM: the exporters and apply() work on float32 host copies) */
  maxRssBytes?: number;
}

function parseCases(list: string, ct: boolean): Case[] {
  const cases = list.split(',').map((s) => s.trim()).filter((s) => s !== '').map((label): Case => {
    const m = /^([a-z0-9_]+)(?:\+kv:([a-z0-9_]+))?(@ct)?$/.exec(label);
    if (m === null) throw new UserError(`--presets: "${label}" is not PRESET[+kv:KV][@ct]`);
    return { label, preset: m[1]!, kv: m[2] ?? null, format: m[3] === undefined ? 'modelopt' : CT };
  });
  if (ct) {
    for (const c of cases.filter((x) => x.format === 'modelopt')) {
      if (cases.some((x) => x.format === CT && x.preset === c.preset && x.kv === c.kv)) continue;
      try {
        exportFormat(CT).check({ preset: c.preset, kvCache: c.kv });
        cases.push({ ...c, label: `${c.label}@ct`, format: CT });
      } catch {
        // compressed-tensors cannot express this preset (e.g. MXFP4): it stays modelopt-only
      }
    }
  }
  return cases;
}

/** --algorithm: "A" for every case, or "FROM=TO,..." to replace only some algorithms. */
function parseAlgorithm(s: string | undefined): (a: Algorithm) => Algorithm {
  if (s === undefined) return (a) => a;
  const known = (x: string): Algorithm => {
    if (!(ALGORITHMS as readonly string[]).includes(x)) throw new UserError(`--algorithm ${x}: unknown (known: ${ALGORITHMS.join(', ')})`);
    return x as Algorithm;
  };
  if (!s.includes('=')) {
    const a = known(s);
    return () => a;
  }
  const map = new Map(s.split(',').map((p) => p.split('=').map((x) => x.trim())).map(([from, to]) => [known(from ?? ''), known(to ?? '')] as const));
  return (a) => map.get(a) ?? a;
}

function recipeOf(c: Case, group: number, algorithm: (a: Algorithm) => Algorithm): Recipe {
  let r = presetRecipe(c.preset, c.kv ?? undefined);
  // only the INT4 presets have a free group size (NVFP4 / MX blocks are fixed: applyGroupSize refuses them)
  if (c.preset === 'int4_awq' || c.preset === 'w4a8_awq') r = applyGroupSize(r, group);
  return { ...r, algorithm: algorithm(r.algorithm) };
}

function logitsOf(m: LogitsModel, ids: readonly number[]): Float32Array {
  return noGrad(() => tidy(() => m.forward(tensor([...ids], [1, ids.length], { dtype: 'int32', device: m.backend })).toFloat32Array()));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** Frees a model's parameters; models that are not DecoderLMs (ONNX) hold no device tensors here. */
function dispose(m: LogitsModel | null): void {
  if (m instanceof DecoderLM) for (const t of m.params.values()) t.dispose();
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((s, f) => s + statSync(join(dir, f)).size, 0);
}

const firstLine = (e: unknown): string => (e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e)).split('\n')[0]!;
const g = (x: number | undefined, d: number): string => (x === undefined ? '-' : x.toFixed(d));
const e = (x: number | undefined): string => (x === undefined ? '-' : x.toExponential(2));

function line(r: Result): string {
  if (r.status === 'ERROR' || r.status === 'SKIP') return `${r.label.padEnd(22)} ${r.status}: ${r.error ?? ''}`;
  const s = r.seconds ?? {};
  const total = Object.values(s).reduce((a, b) => a + b, 0);
  return `${r.label.padEnd(22)} ${r.status} ppl fake ${g(r.pplFake, 4)} loaded ${g(r.pplLoaded, 4)} |Δ|/ppl ${e(r.relDiff)} max|Δlogit| ${e(r.maxAbsLogitDiff)} ` +
    `(${r.quantAlgo}, ${r.algorithm}, ${r.quantizedLinears} Linears, ${g((r.exportBytes ?? 0) / 1e6, 1)} MB, ${total.toFixed(1)} s: ` +
    `${Object.entries(s).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')})`;
}

function table(rs: readonly Result[]): string {
  const phases = [...new Set(rs.flatMap((r) => Object.keys(r.seconds ?? {})))];
  const rows = ['| case | status | quant_algo | algorithm | Linears | ppl fake-quant | ppl loaded | \\|Δppl\\|/ppl | max \\|Δlogit\\| | export MB | ' +
    `${phases.map((p) => `${p} s`).join(' | ')} | peak device MB | max RSS GB |`];
  rows.push(`|${' --- |'.repeat(12 + phases.length)}`);
  for (const r of rs) {
    const s = r.seconds ?? {};
    const st = r.status === 'ERROR' || r.status === 'SKIP' ? `${r.status}: ${(r.error ?? '').replaceAll('|', '\\|')}` : r.status;
    rows.push(`| ${r.label} | ${st} | ${r.quantAlgo ?? '-'} | ${r.algorithm ?? '-'} | ${r.quantizedLinears ?? '-'} | ${g(r.pplFake, 4)} | ${g(r.pplLoaded, 4)} | ${e(r.relDiff)} | ` +
      `${e(r.maxAbsLogitDiff)} | ${r.exportBytes === undefined ? '-' : (r.exportBytes / 1e6).toFixed(1)} | ${phases.map((p) => g(s[p], 1)).join(' | ')} | ` +
      `${r.peakDeviceBytes === undefined ? '-' : (r.peakDeviceBytes / 1e6).toFixed(0)} | ${r.maxRssBytes === undefined ? '-' : (r.maxRssBytes / 1e9).toFixed(2)} |`);
  }
  return rows.join('\n');
}

function main(): number {
  const { values: v } = parseArgs({
    options: {
      model: { type: 'string', default: '/tmp/llama1b' }, device: { type: 'string', default: 'cuda' }, dtype: { type: 'string', default: 'float32' },
      presets: { type: 'string', default: DEFAULT_CASES }, ct: { type: 'boolean', default: false }, calib: { type: 'string', default: '4' },
      eval: { type: 'string', default: '4' }, seq: { type: 'string', default: '256' }, 'group-size': { type: 'string', default: 'auto' },
      algorithm: { type: 'string' }, 'budget-s': { type: 'string' }, tmp: { type: 'string', default: tmpdir() }, keep: { type: 'boolean', default: false },
      json: { type: 'string' }, help: { type: 'boolean', default: false },
    },
  });
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const int = (name: string, s: string, min: number): number => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new UserError(`--${name} must be an integer >= ${min}, got "${s}"`);
    return n;
  };
  const model = v.model;
  const device = parseDevice(v.device);
  const dtype: ComputeDType = parseDType(v.dtype);
  const [nCalib, nEval, seq] = [int('calib', v.calib, 1), int('eval', v.eval, 1), int('seq', v.seq, 2)];
  const cfg = readModelConfig(model);
  const fits = [...INT4_GROUP_SIZES].sort((a, b) => b - a).find((n) => cfg.hiddenSize % n === 0) ?? INT4_GROUP_SIZES[0];
  const group = v['group-size'] === 'auto' ? fits : int('group-size', v['group-size'], 1);
  const algorithm = parseAlgorithm(v.algorithm);
  const budgetS = v['budget-s'] === undefined ? Infinity : Number(v['budget-s']);
  const cases = parseCases(v.presets, v.ct);
  const vocab = cfg.vocabSize;
  const calib = Array.from({ length: nCalib }, (_, i) => lehmerIds(seq, vocab, SEED_CALIB + i));
  const held = Array.from({ length: nEval }, (_, i) => lehmerIds(seq, vocab, SEED_EVAL + i));
  const backend = getBackend(device);
  const t0 = performance.now();
  const since = (t: number): number => (performance.now() - t) / 1e3;
  const load = (): DecoderLM => loadModel(model, { dtype, device });

  // the source model's perplexity once, for context (each case needs a fresh copy: apply() replaces weights)
  let t = performance.now();
  const src = load();
  const loadS = since(t);
  t = performance.now();
  const pplSource = perplexity(src, held).ppl;
  dispose(src);
  const header = {
    model, device, dtype, calib: `${nCalib} x ${seq}`, heldOut: `${nEval} x ${seq}`, int4GroupSize: group, algorithmOverride: v.algorithm ?? null,
    pplSource, sourceLoadSeconds: loadS, sourceScoreSeconds: since(t), tolerance: TOLERANCE, seeds: { calib: SEED_CALIB, heldOut: SEED_EVAL }, node: process.version,
  };
  console.log(`export round trip: ${model} on ${device} (${dtype}), calib ${header.calib}, held-out ${header.heldOut} pseudo-random ids, INT4 group ${group}` +
    `${v.algorithm === undefined ? '' : `, --algorithm ${v.algorithm} (not the presets' own algorithm where it applies)`}; ` +
    `source ppl ${pplSource.toFixed(4)} (load ${loadS.toFixed(1)} s, score ${header.sourceScoreSeconds.toFixed(1)} s)`);

  const root = mkdtempSync(join(v.tmp, 'mopt-roundtrip-'));
  const results: Result[] = [];
  const save = (): void => {
    if (v.json !== undefined) writeJsonAtomic(v.json, { ...header, totalSeconds: since(t0), results });
  };
  try {
    for (const c of cases) {
      if (since(t0) > budgetS) {
        results.push({ label: c.label, status: 'SKIP', error: `--budget-s ${budgetS} spent` });
        console.log(line(results.at(-1)!));
        save();
        continue;
      }
      const r: Result = { label: c.label, status: 'ERROR', seconds: {} };
      const secs = r.seconds!;
      const phase = <T>(name: string, fn: () => T): T => {
        const s = performance.now();
        const out = fn();
        secs[name] = since(s);
        return out;
      };
      const out = join(root, c.label.replace(/[^a-z0-9_.-]/gi, '_'));
      const liveBefore = liveTensorBytes(backend);
      resetPeakTensorBytes(backend);
      let fake: DecoderLM | null = null;
      let loaded: LogitsModel | null = null;
      try {
        const recipe = recipeOf(c, group, algorithm);
        r.algorithm = recipe.algorithm;
        const fmt = exportFormat(c.format);
        fmt.check({ preset: c.preset, kvCache: c.kv }); // an unexportable case fails before the long work
        const q = phase('load', () => new QuantizedModel((fake = load()), recipe));
        fmt.restrictPlan?.(q);
        phase('algorithm', () => runAlgorithm(q, recipe.algorithm, calib, { sqAlpha: 1 })); // mopt quantize's default --sq-alpha
        phase('calibrate', () => q.calibrate(calib, 'max'));
        // the checkpoint's codes come from the source weights, before apply() replaces them
        const summary = phase('export', () => fmt.prepare(q, model, { preset: c.preset, kvCache: c.kv, calibration: calib }).write(out, {}));
        r.quantAlgo = summary.quantAlgo;
        r.quantizedLinears = summary.quantizedLinears;
        r.exportBytes = dirBytes(out);
        phase('apply', () => q.apply());
        const want = phase('score_fake', () => {
          r.pplFake = perplexity(q.model, held).ppl;
          return logitsOf(q.model, held[0]!);
        });
        dispose(fake); // one model on the device at a time
        fake = null;
        const reader = readerFor(out)?.name ?? 'none';
        if (reader !== c.format) throw new Error(`the export in ${out} is detected as ${reader}, not ${c.format}`);
        loaded = phase('load_back', () => openModel(out, dtype, device).model); // what mopt eval/generate/forward do with --model CKPT
        const got = phase('score_loaded', () => {
          r.pplLoaded = perplexity(loaded!, held).ppl;
          return logitsOf(loaded!, held[0]!);
        });
        r.maxAbsLogitDiff = maxAbsDiff(want, got);
        r.relDiff = Math.abs(r.pplLoaded! - r.pplFake!) / r.pplFake!;
        r.relChangeVsSource = (r.pplFake! - pplSource) / pplSource;
        r.status = r.relDiff <= TOLERANCE ? 'PASS' : 'FAIL';
      } catch (err) {
        r.error = firstLine(err);
        if (!(err instanceof UserError)) console.error(err); // a bug: its stack goes to stderr, the table gets one line
      } finally {
        dispose(fake);
        dispose(loaded);
        if (!v.keep) rmSync(out, { recursive: true, force: true });
        r.peakDeviceBytes = peakTensorBytes(backend);
        r.leakedBytes = liveTensorBytes(backend) - liveBefore;
        r.maxRssBytes = process.resourceUsage().maxRSS * 1024;
      }
      results.push(r);
      console.log(line(r));
      save();
    }
  } finally {
    if (!v.keep) rmSync(root, { recursive: true, force: true });
    else console.log(`exports kept in ${root}`);
  }
  const bad = results.filter((r) => r.status !== 'PASS');
  console.log(`\n${table(results)}\n\n${results.length - bad.length} of ${results.length} cases pass (|Δppl|/ppl <= ${TOLERANCE}) in ${since(t0).toFixed(1)} s` +
    `${bad.length === 0 ? '' : `; not passing: ${bad.map((r) => `${r.label} (${r.status})`).join(', ')}`}`);
  const leaks = results.filter((r) => (r.leakedBytes ?? 0) !== 0);
  if (leaks.length > 0) console.log(`device tensors left alive after: ${leaks.map((r) => `${r.label} ${r.leakedBytes} B`).join(', ')}`);
  save();
  if (v.json !== undefined) console.log(`wrote ${v.json}`);
  return bad.length === 0 ? 0 : 1;
}

try {
  process.exitCode = main();
} catch (err) {
  // a bad option or model directory: one line, as the CLI prints UserErrors
  const parse = err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS');
  console.error(err instanceof UserError || parse ? `error: ${err.message}${parse ? `\n${HELP}` : ''}` : err);
  process.exitCode = 2;
}
