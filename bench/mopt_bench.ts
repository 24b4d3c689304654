// mopt side of issue #3's benchmark: the workloads of bench/pytorch_baseline.py through mopt's public API,
// on the same checkpoint (bench/make_llama1b.py), with the same token ids, sizes and timing method.
//
//   node dist/bench/mopt_bench.js --model /tmp/llama1b --device cuda --json $OUT/mopt.json
//
//   calib   noGrad forward of batch 8 x seq 2048 with a linearHook that, for every Linear, takes max(|x|) of
//           its input on the device and folds it into a running-max tensor kept per Linear name (nothing is
//           read back to the host until the end), then lets the plain linear run (returns undefined).
//   decode  generate() of 256 greedy tokens at batch 1 from a 16-token prompt (no EOS stop); tokens/s =
//           256 / wall time between two synchronizations. The calls share a DecodeSession, as a serving loop's
//           would (src/runtime/decode-session.ts: the KV cache, the step kernel and the prompt length's
//           prefill, recorded as a graph on its second run, are kept across calls: the first timed call pays
//           the recording, about an eager prefill, which the median of the default 5 runs leaves out); one more
//           call without a session is timed after them and reported beside (without_session).
//   train   forward + crossEntropy (next-token targets, last position ignored: the same mean as transformers'
//           labels=input_ids) + backward + AdamW.update() (lr 1e-5, wd 0.01; moments in the parameters' dtype,
//           bf16, like torch.optim.AdamW on bf16 parameters) + zeroGrad(), batch 4 x seq 2048.
//
// Timing: with --device cuda, device events on the CUDA backend's stream around each iteration (the end event
// after the iteration's tidy() has freed its temporaries); otherwise the host clock. Warm-up runs first; the
// median of the timed runs is reported. Each workload has a time budget (--budget-*), so a slow backend still
// finishes: timed runs stop once it is spent (at least one), and a decode run past it stops early and
// reports the tokens it made. A workload that throws is recorded as {"error": ...}; the others still run. The JSON
// is rewritten after every workload, so a run killed from outside keeps what it finished.
//
// The CUDA backend (src/backend/cuda/index.ts, getCudaBackend()) is loaded with a dynamic import and used
// through structural types only, so this file compiles whether or not that module exists yet.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadModel } from '../src/models/load.js';
import type { DecoderLM } from '../src/models/decoder.js';
import { generate } from '../src/runtime/generate.js';
import { DecodeSession } from '../src/runtime/decode-session.js';
import { crossEntropy } from '../src/nn/functional.js';
import { AdamW } from '../src/nn/optim.js';
import { tidy, noGrad, keep, tensor, amax as absMax, maximum, DTYPE_INFO, type Tensor } from '../src/tensor/index.js';
import { lehmerIds } from './token-ids.js';
import { eventClock, hostClock, loadCuda, measure, median, message, round4, type Clock, type CudaBackendLike, type Json, type JsonObject } from './bench-runtime.js';

// Seeds of the shared id streams (same constants in bench/pytorch_baseline.py).
const SEED_CALIB = 1001;
const SEED_TRAIN = 2002;
const SEED_PROMPT = 3003;
const DATASHEET_BF16_TFLOPS = 989.4;

// ---- helpers ---------------------------------------------------------------------------------------

/** Anything (allocator stats) as JSON: bigints become numbers, Maps objects, functions are dropped. */
function toJson(v: unknown, depth = 0): Json {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (depth > 4 || typeof v !== 'object') return null;
  if (Array.isArray(v)) return v.map((x) => toJson(x, depth + 1));
  const out: JsonObject = {};
  const entries: [string, unknown][] = v instanceof Map ? [...v.entries()].map(([k, x]) => [String(k), x]) : Object.entries(v);
  for (const [k, x] of entries) if (typeof x !== 'function') out[k] = toJson(x, depth + 1);
  return out;
}

/** The first numeric field whose name mentions 'peak' (searched one level deep too). */
function findPeak(stats: Json): number | null {
  if (stats === null || typeof stats !== 'object' || Array.isArray(stats)) return null;
  for (const [k, v] of Object.entries(stats)) if (/peak/i.test(k) && typeof v === 'number') return v;
  for (const v of Object.values(stats)) {
    const p = findPeak(v);
    if (p !== null) return p;
  }
  return null;
}

interface ModelCounts {
  params: number;
  weight_bytes: number;
  matmul_params: number;
  linear_modules: number;
  layers: number;
  q_dim: number;
}

function modelCounts(model: DecoderLM): ModelCounts {
  const c = model.config;
  let params = 0;
  let bytes = 0;
  for (const p of model.parameters()) {
    params += p.size;
    bytes += p.size * DTYPE_INFO[p.dtype].bytes;
  }
  let matmul = 0;
  let linears = 0;
  for (const [name, t] of model.params) {
    if (name.endsWith('_proj.weight') || name === 'lm_head.weight') {
      matmul += t.size;
      linears++;
    }
  }
  if (c.tieWordEmbeddings) {
    matmul += model.param('model.embed_tokens.weight').size; // the tied LM head is a Linear too
    linears++;
  }
  return { params, weight_bytes: bytes, matmul_params: matmul, linear_modules: linears, layers: c.numLayers, q_dim: c.numHeads * c.headDim };
}

/** Same convention as pytorch_baseline.py: 6N (train) or 2N (forward), attention (causal) separately. */
function flopsPerToken(k: ModelCounts, seq: number, train: boolean): { dense: number; attention_causal: number } {
  return { dense: (train ? 6 : 2) * k.matmul_params, attention_causal: (train ? 3 : 1) * 2 * 2 * k.layers * (seq / 2) * k.q_dim };
}

// ---- options ---------------------------------------------------------------------------------------

interface Args {
  model: string;
  device: string;
  json: string | null;
  calibBatch: number;
  trainBatch: number;
  seq: number;
  promptLen: number;
  newTokens: number;
  warmup: number;
  calibIters: number;
  trainIters: number;
  decodeRuns: number;
  budgetCalib: number;
  budgetTrain: number;
  budgetDecode: number;
  workloads: string[];
}

const USAGE = `usage: node dist/bench/mopt_bench.js --model DIR [--device cuda|cpu] [--json OUT]
  [--calib-batch 8] [--train-batch 4] [--seq 2048] [--prompt-len 16] [--new-tokens 256] [--warmup 3]
  [--calib-iters 10] [--train-iters 10] [--decode-runs 5] [--budget-calib 45] [--budget-train 60]
  [--budget-decode 45] [--workloads calib,decode,train]`;

function parseArgs(argv: readonly string[]): Args {
  const a: Args = {
    model: '', device: 'cuda', json: null, calibBatch: 8, trainBatch: 4, seq: 2048, promptLen: 16, newTokens: 256,
    warmup: 3, calibIters: 10, trainIters: 10, decodeRuns: 5, budgetCalib: 45, budgetTrain: 60, budgetDecode: 45,
    workloads: ['calib', 'decode', 'train'],
  };
  const ints: Record<string, 'calibBatch' | 'trainBatch' | 'seq' | 'promptLen' | 'newTokens' | 'warmup' | 'calibIters' | 'trainIters' | 'decodeRuns'> = {
    '--calib-batch': 'calibBatch', '--train-batch': 'trainBatch', '--seq': 'seq', '--prompt-len': 'promptLen',
    '--new-tokens': 'newTokens', '--warmup': 'warmup', '--calib-iters': 'calibIters', '--train-iters': 'trainIters',
    '--decode-runs': 'decodeRuns',
  };
  const secs: Record<string, 'budgetCalib' | 'budgetTrain' | 'budgetDecode'> = {
    '--budget-calib': 'budgetCalib', '--budget-train': 'budgetTrain', '--budget-decode': 'budgetDecode',
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--help' || flag === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    const val = argv[i + 1];
    if (val === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
    i++;
    if (flag === '--model') a.model = val;
    else if (flag === '--device') a.device = val;
    else if (flag === '--json') a.json = val;
    else if (flag === '--workloads') a.workloads = val.split(',').map((s) => s.trim()).filter((s) => s !== '');
    else if (flag in ints) {
      const n = Number(val);
      if (!Number.isInteger(n) || n < (flag === '--warmup' ? 0 : 1)) throw new Error(`${flag} must be a positive integer, got "${val}"`);
      a[ints[flag]] = n;
    } else if (flag in secs) {
      const n = Number(val);
      if (!(n > 0)) throw new Error(`${flag} must be a positive number of seconds, got "${val}"`);
      a[secs[flag]] = n;
    } else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  if (a.model === '') throw new Error(`--model is required\n${USAGE}`);
  if (a.device !== 'cpu' && a.device !== 'cuda') throw new Error(`--device must be cpu or cuda, got "${a.device}"`);
  if (a.seq < 2) throw new Error('--seq must be at least 2');
  return a;
}

// ---- workloads -------------------------------------------------------------------------------------

interface Ctx {
  model: DecoderLM;
  clock: Clock;
  a: Args;
  counts: ModelCounts;
}

function workloadCalib({ model, clock, a, counts }: Ctx): JsonObject {
  const vocab = model.config.vocabSize;
  const ids = tensor(lehmerIds(a.calibBatch * a.seq, vocab, SEED_CALIB), [a.calibBatch, a.seq], { dtype: 'int32', device: model.backend });
  const amax = new Map<string, Tensor>();
  model.linearHook = (name, x) => {
    const prev = amax.get(name);
    // max(|x|) on the device in one pass (amax), folded into this Linear's running max; the temporaries
    // die with the inner tidy
    const next = keep(tidy(() => {
      const local = absMax(x);
      return prev === undefined ? local : maximum(prev, local);
    }));
    prev?.dispose();
    amax.set(name, next);
    return undefined; // run the plain linear
  };
  try {
    const step = (): void => {
      tidy(() => noGrad(() => {
        model.forward(ids);
      }));
    };
    const m = measure(clock, step, a.warmup, a.calibIters, a.budgetCalib);
    const tokens = a.calibBatch * a.seq;
    const tps = tokens / (m.median_ms * 1e-3);
    const amaxOut: JsonObject = {};
    let amaxDtype: string | null = null;
    for (const [k, t] of amax) {
      amaxDtype = t.dtype;
      amaxOut[k] = t.toFloat32Array()[0]; // the only reads to the host, after all timed runs
    }
    const fl = flopsPerToken(counts, a.seq, false);
    return {
      batch: a.calibBatch, seq: a.seq, tokens_per_iter: tokens, ...m, tokens_per_s: tps,
      model_TFLOP_per_s_2N: (tps * fl.dense) / 1e12, hooks: amax.size, amax_dtype: amaxDtype, amax: amaxOut,
    };
  } finally {
    model.linearHook = null;
    for (const t of amax.values()) t.dispose();
    ids.dispose();
  }
}

class BudgetStop extends Error {}

function workloadDecode({ model, clock, a }: Ctx): JsonObject {
  const vocab = model.config.vocabSize;
  const prompt = lehmerIds(a.promptLen, vocab, SEED_PROMPT);
  const session = new DecodeSession(model);
  try {
    const r = decodeRuns(model, prompt, session, clock, a);
    const why = session.recordingError;
    return { ...r, recorded_prefills: session.recordedPrefills, recording_error: why === null ? null : String(why) };
  } finally {
    session.dispose();
  }
}

function decodeRuns(model: DecoderLM, prompt: number[], session: DecodeSession, clock: Ctx['clock'], a: Ctx['a']): JsonObject {
  clock.sync();
  const tw = performance.now();
  generate(model, prompt, { maxNewTokens: a.newTokens, greedy: true, session }); // warm-up at the timed length, as bench/pytorch_baseline.py
  clock.sync();
  const warmS = (performance.now() - tw) / 1e3;
  const times: number[] = [];
  const firsts: number[] = []; // ms from a run's start to its first token: the prompt's prefill and the per-call setup
  let generated: number[] | null = null;
  let truncated: JsonObject | null = null;
  const t1 = performance.now();
  for (let r = 0; r < Math.max(1, a.decodeRuns); r++) {
    // start another run only if one more (as long as the last) still fits the budget
    if (r > 0 && performance.now() - t1 + times[times.length - 1] * 1e3 > a.budgetDecode * 1e3) break;
    clock.sync();
    const t0 = performance.now();
    let count = 0;
    const toks: number[] = [];
    try {
      generate(model, prompt, {
        maxNewTokens: a.newTokens,
        greedy: true,
        session,
        onToken: (id) => {
          count++;
          if (count === 1) firsts.push(performance.now() - t0);
          toks.push(id);
          if (count < a.newTokens && performance.now() - t0 > a.budgetDecode * 1e3) throw new BudgetStop();
        },
      });
    } catch (e) {
      if (!(e instanceof BudgetStop)) throw e;
    }
    clock.sync();
    const dt = (performance.now() - t0) / 1e3;
    generated ??= toks;
    if (count < a.newTokens) {
      // one run did not fit the budget: report its rate over the tokens it made
      truncated = { tokens: count, seconds: dt };
      times.push((dt * a.newTokens) / Math.max(1, count));
      break;
    }
    times.push(dt);
  }
  const med = median(times);
  // one call as a lone generate() makes it: its own cache and step kernel, the prefill run eagerly (skipped
  // when a run did not fit the budget)
  let lone: JsonObject | null = null;
  if (truncated === null) {
    clock.sync();
    const t2 = performance.now();
    let first = 0;
    generate(model, prompt, { maxNewTokens: a.newTokens, greedy: true, onToken: () => void (first ||= performance.now() - t2) });
    clock.sync();
    const s = (performance.now() - t2) / 1e3;
    lone = { seconds: round4(s), tokens_per_s: a.newTokens / s, first_token_ms: round4(first) };
  }
  return {
    without_session: lone,
    batch: 1, prompt_len: prompt.length, new_tokens: a.newTokens, timing: 'wall clock, synchronized', warmup_s: warmS,
    runs: times.length, times_s: times.map(round4), median_s: med, tokens_per_s: a.newTokens / med,
    ms_per_token: (med / a.newTokens) * 1e3, first_token_ms: round4(median(firsts)), truncated_by_budget: truncated, prompt, generated,
  };
}

function workloadTrain({ model, clock, a, counts }: Ctx): JsonObject {
  const vocab = model.config.vocabSize;
  const [B, S] = [a.trainBatch, a.seq];
  const flat = lehmerIds(B * S, vocab, SEED_TRAIN);
  const ids = tensor(flat, [B, S], { dtype: 'int32', device: model.backend });
  // next-token targets; the last position of each row has none (-100), as in transformers' shifted labels
  const tgt = new Array<number>(B * S);
  for (let b = 0; b < B; b++) for (let t = 0; t < S; t++) tgt[b * S + t] = t < S - 1 ? flat[b * S + t + 1] : -100;
  const targets = tensor(tgt, [B, S], { dtype: 'int32', device: model.backend });
  const params = model.parameters();
  for (const p of params) p.requireGrad(true);
  const opt = new AdamW(params, { lr: 1e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  const losses: Tensor[] = [];
  try {
    const step = (): void => {
      const loss = tidy(() => {
        const l = crossEntropy(model.forward(ids), targets);
        l.backward();
        return keep(l.detach());
      });
      opt.update();
      opt.zeroGrad();
      losses.push(loss);
    };
    const m = measure(clock, step, a.warmup, a.trainIters, a.budgetTrain);
    const tokens = B * S;
    const tps = tokens / (m.median_ms * 1e-3);
    const fl = flopsPerToken(counts, S, true);
    const tf = (tps * fl.dense) / 1e12;
    const st = opt.state();
    const m0 = st.m.find((t) => t !== null) ?? null;
    return {
      batch: B, seq: S, tokens_per_iter: tokens, ...m, tokens_per_s: tps,
      first_loss: losses[0].item(), last_loss: losses[losses.length - 1].item(),
      optimizer: 'mopt AdamW(lr=1e-5, beta1=0.9, beta2=0.999, eps=1e-8, weightDecay=0.01)',
      optimizer_state_dtype: m0 === null ? null : m0.dtype, param_dtype: params[0].dtype,
      flops_per_token: fl, model_TFLOP_per_s_6N: tf,
      model_TFLOP_per_s_6N_plus_attn: (tps * (fl.dense + fl.attention_causal)) / 1e12,
      mfu_6N_vs_datasheet: tf / DATASHEET_BF16_TFLOPS,
    };
  } finally {
    opt.zeroGrad();
    const st = opt.state();
    for (const t of [...st.m, ...st.v]) t?.dispose();
    for (const p of params) p.requireGrad(false);
    for (const l of losses) l.dispose();
    ids.dispose();
    targets.dispose();
  }
}

const WORKLOADS: Record<string, (c: Ctx) => JsonObject> = { calib: workloadCalib, decode: workloadDecode, train: workloadTrain };

// ---- main ------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let a: Args;
  try {
    a = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    return 2;
  }
  const workloads: JsonObject = {};
  const result: JsonObject = {
    framework: 'mopt',
    date: new Date().toISOString(),
    command: ['node', ...process.argv.slice(1).map((s, i) => (i === 0 ? s.replace(`${process.cwd()}/`, '') : s))].join(' '),
    versions: { node: process.version },
    device: a.device,
    dtype: 'bfloat16',
    settings: toJson(a),
    workloads,
  };
  const jsonPath = a.json === null ? null : resolve(a.json);
  const write = (): void => {
    if (jsonPath === null) return;
    mkdirSync(dirname(jsonPath), { recursive: true });
    writeFileSync(`${jsonPath}.tmp`, `${JSON.stringify(result, null, 1)}\n`);
    renameSync(`${jsonPath}.tmp`, jsonPath);
  };
  const failAll = (why: string): number => {
    for (const w of a.workloads) workloads[w] = { error: why };
    write();
    console.error(`mopt_bench: ${why}`);
    return 1;
  };

  let cuda: CudaBackendLike | null = null;
  if (a.device === 'cuda') {
    const got = await loadCuda();
    cuda = got.cuda;
    if (got.error !== null) return failAll(`CUDA backend not available: ${got.error}`);
    result.gpu = cuda?.driver.info?.name ?? null;
  }
  const clock = cuda === null ? hostClock(() => {}) : eventClock(cuda.driver);
  result.timing = clock.method;
  const allocStats = (): Json => {
    try {
      return cuda?.allocator ? toJson(cuda.allocator.stats()) : null;
    } catch (e) {
      return { error: message(e) };
    }
  };
  const memUsed = (): number | null => {
    try {
      const m = cuda?.driver.memGetInfo?.();
      return m ? m.total - m.free : null;
    } catch {
      return null;
    }
  };

  let model: DecoderLM;
  const tl = performance.now();
  try {
    model = loadModel(a.model, { dtype: 'bfloat16', device: a.device });
    clock.sync();
  } catch (e) {
    console.error(e);
    result.load_error = message(e);
    return failAll(`model did not load: ${message(e)}`);
  }
  result.load_s = (performance.now() - tl) / 1e3;
  const counts = modelCounts(model);
  result.model = { ...counts, path: resolve(a.model), param_dtype: model.dtype };
  result.allocator_after_load = allocStats();
  write();
  console.log(`mopt_bench: loaded ${a.model} on ${a.device} in ${(result.load_s).toFixed(1)} s (${counts.params.toLocaleString()} parameters)`);

  const ctx: Ctx = { model, clock, a, counts };
  let peakBefore = findPeak(result.allocator_after_load);
  let peakResettable = false;
  for (const w of a.workloads) {
    console.log(`mopt_bench: ${w} ...`);
    const run = WORKLOADS[w];
    let r: JsonObject;
    try {
      if (run === undefined) throw new Error(`unknown workload "${w}" (known: ${Object.keys(WORKLOADS).join(', ')})`);
      try {
        if (cuda?.allocator?.resetPeak) {
          cuda.allocator.resetPeak();
          peakResettable = true;
        }
      } catch {
        // stats are optional
      }
      const tw = performance.now();
      r = run(ctx);
      r.wall_s = (performance.now() - tw) / 1e3;
    } catch (e) {
      console.error(e);
      r = { error: message(e), stack: e instanceof Error && e.stack ? e.stack.split('\n').slice(0, 8).join('\n') : null };
    }
    const stats = allocStats();
    r.allocator = stats;
    // The allocator's peak counts from process start unless it can be reset: it is this workload's peak only
    // when it rose during the workload; otherwise this workload stayed at or under the earlier peak.
    const peak = findPeak(stats);
    if (peak !== null && (peakResettable || peakBefore === null || peak > peakBefore)) r.peak_bytes = peak;
    else if (peak !== null) {
      r.peak_bytes = null;
      r.peak_bytes_at_most = peak;
    }
    peakBefore = peak;
    r.device_memory_used_bytes = memUsed();
    workloads[w] = r;
    write();
    const tps = r.tokens_per_s;
    console.log(typeof tps === 'number' ? `  ${w}: ${tps.toLocaleString('en-US', { maximumFractionDigits: 1 })} tok/s` : `  ${w}: ERROR ${String(r.error)}`);
  }

  console.log('');
  console.log(`mopt ${a.device}${typeof result.gpu === 'string' ? ` (${result.gpu})` : ''}, bf16, timing=${clock.method}`);
  console.log(`  ${'workload'.padEnd(8)} ${'tok/s'.padStart(12)} ${'median'.padStart(12)} ${'runs'.padStart(5)} ${'peak GiB'.padStart(9)}`);
  for (const [w, rj] of Object.entries(workloads)) {
    if (rj === null || typeof rj !== 'object' || Array.isArray(rj)) continue;
    if (typeof rj.error === 'string') {
      console.log(`  ${w.padEnd(8)} ${'ERROR'.padStart(12)}  ${rj.error.slice(0, 100)}`);
      continue;
    }
    const tps = typeof rj.tokens_per_s === 'number' ? rj.tokens_per_s.toLocaleString('en-US', { maximumFractionDigits: 1 }) : '-';
    const med = typeof rj.median_ms === 'number' ? `${rj.median_ms.toFixed(2)} ms` : typeof rj.median_s === 'number' ? `${rj.median_s.toFixed(3)} s` : '-';
    const runs = typeof rj.iters === 'number' ? rj.iters : typeof rj.runs === 'number' ? rj.runs : '-';
    const pk = typeof rj.peak_bytes === 'number' ? (rj.peak_bytes / 2 ** 30).toFixed(1) : '-';
    console.log(`  ${w.padEnd(8)} ${tps.padStart(12)} ${med.padStart(12)} ${String(runs).padStart(5)} ${pk.padStart(9)}`);
  }
  if (jsonPath !== null) console.log(`wrote ${jsonPath}`);
  return Object.values(workloads).some((r) => r !== null && typeof r === 'object' && !Array.isArray(r) && 'error' in r) ? 1 : 0;
}

process.exitCode = await main();
