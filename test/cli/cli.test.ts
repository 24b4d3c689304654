// The mopt CLI end to end, as a user runs it (a child process), on the trained stories260K model.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpy } from '../../src/io/npy.js';
import { SHARED_DATA, STORIES_HF } from '../helpers/paths.js';
import { runMopt } from '../helpers/cli.js';

const mopt = (...args: string[]) => runMopt(args);

/** A tiny Llama config.json and 20 KB of TinyStories in dir, for `mopt train --config ... --data ...`. */
function writeTrainInputs(dir: string): { config: string; text: string } {
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({
    model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128, tie_word_embeddings: true,
  }));
  const text = join(dir, 'text.txt');
  writeFileSync(text, readFileSync(join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt'), 'utf8').slice(0, 20_000));
  return { config, text };
}

test('--help explains every command', () => {
  const top = mopt('--help');
  assert.equal(top.code, 0);
  for (const c of ['generate', 'eval', 'forward', 'tokenize', 'detokenize', 'inspect', 'quantize', 'export', 'train', 'tokenizer', 'report']) assert.match(top.stdout, new RegExp(`\\b${c}\\b`));
  for (const c of [['generate'], ['eval', 'ppl'], ['forward'], ['tokenize'], ['detokenize'], ['inspect'], ['quantize'], ['export'], ['train'], ['tokenizer', 'train'], ['report']]) {
    const h = mopt(...c, '--help');
    assert.equal(h.code, 0, c.join(' '));
    assert.match(h.stdout, /--json/, `${c.join(' ')} --help lists --json`);
  }
});

test('generate --json with a text prompt', () => {
  const r = mopt('generate', '--model', STORIES_HF, '--prompt', 'Once upon a time', '--max-new-tokens', '8', '--greedy', '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { ids: number[]; text: string };
  assert.equal(out.ids.length, 8);
  // the trained model continues its own golden story
  assert.ok(out.text.length > 10 && ', there was a little girl named Lily.'.startsWith(out.text), out.text);
});

test('generate with prompt ids and seeded sampling is reproducible', () => {
  const args = ['generate', '--model', STORIES_HF, '--prompt-ids', '1,403', '--max-new-tokens', '12', '--temperature', '0.9', '--top-p', '0.9', '--seed', '7', '--json'];
  const a = JSON.parse(mopt(...args).stdout) as { ids: number[] };
  const b = JSON.parse(mopt(...args).stdout) as { ids: number[] };
  assert.deepEqual(a.ids, b.ids);
  assert.equal(a.ids.length, 12);
});

test('eval ppl on TinyStories reproduces the reference perplexity 3.71', () => {
  const r = mopt('eval', 'ppl', '--model', STORIES_HF, '--data', join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt'), '--max-tokens', '512', '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { ppl: number; nll: number; tokens: number };
  assert.equal(out.tokens, 511);
  assert.ok(Math.abs(out.ppl - 3.71) < 0.005, `ppl ${out.ppl}`);
  assert.ok(Math.abs(Math.log(out.ppl) - out.nll) < 1e-9);
});

test('forward writes logits and eval ppl accepts the same ids', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopt-cli-'));
  try {
    const ids = join(dir, 'ids.json');
    writeFileSync(ids, JSON.stringify([[1, 403, 407, 261], [1, 346, 306, 414]]));
    const out = join(dir, 'logits.npy');
    const r = mopt('forward', '--model', STORIES_HF, '--ids-file', ids, '--out', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    const t = readNpy(out);
    assert.deepEqual(t.shape, [2, 4, 512]);
    const p = JSON.parse(mopt('eval', 'ppl', '--model', STORIES_HF, '--ids-file', ids, '--json').stdout) as { tokens: number };
    assert.equal(p.tokens, 6);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tokenize and detokenize round trip', () => {
  const t = JSON.parse(mopt('tokenize', '--model', STORIES_HF, '--text', 'Lily saw a cat.', '--json').stdout) as { ids: number[] };
  assert.equal(t.ids[0], 1);
  const d = JSON.parse(mopt('detokenize', '--model', STORIES_HF, '--ids', t.ids.join(','), '--skip-special', '--json').stdout) as { text: string };
  assert.equal(d.text, 'Lily saw a cat.');
});

test('inspect --json summarises the model', () => {
  const r = mopt('inspect', '--model', STORIES_HF, '--json');
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { parameters: number; architecture: string; tensor_dtypes: Record<string, number> };
  assert.equal(s.architecture, 'LlamaForCausalLM');
  assert.equal(s.parameters, 260032);
  assert.deepEqual(s.tensor_dtypes, { float32: 260032 });
});

test('user mistakes give one line on stderr and exit 1', () => {
  const cases: [string[], RegExp][] = [
    [['generate', '--model', '/no/such/dir', '--prompt', 'x', '--max-new-tokens', '2'], /does not exist/],
    [['generate', '--model', STORIES_HF, '--max-new-tokens', '2'], /exactly one of --prompt or --prompt-ids/],
    [['generate', '--model', STORIES_HF, '--prompt-ids', '1,99999', '--max-new-tokens', '2'], /99999.*vocabulary/],
    [['generate', '--model', STORIES_HF, '--prompt-ids', '1', '--max-new-tokens', '0'], /--max-new-tokens must be an integer >= 1/],
    [['eval', 'ppl', '--model', STORIES_HF, '--data', '/no/such/file.txt'], /does not exist/],
    [['forward', '--model', STORIES_HF, '--ids-file', '/no/ids.npy', '--out', '/tmp/x.npy'], /does not exist/],
    [['generate', '--model', STORIES_HF, '--prompt', 'x', '--max-new-tokens', '2', '--dtype', 'int8'], /--dtype int8/],
  ];
  for (const [args, re] of cases) {
    const r = mopt(...args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /    at /, 'no stack trace');
  }
  assert.ok(!existsSync('/tmp/x.npy'));
});

test('--device cuda gives the CPU results (generate, eval ppl, forward, train)', { skip: process.env.MOPT_TEST_CUDA === '1' ? false : 'set MOPT_TEST_CUDA=1 on a GPU machine' }, () => {
  const gen = (device: string): { ids: number[] } =>
    JSON.parse(mopt('generate', '--model', STORIES_HF, '--prompt', 'Lily and Ben', '--max-new-tokens', '40', '--device', device, '--json').stdout) as { ids: number[] };
  assert.deepEqual(gen('cuda').ids, gen('cpu').ids);
  const ppl = (device: string): number =>
    (JSON.parse(mopt('eval', 'ppl', '--model', STORIES_HF, '--data', join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt'), '--max-tokens', '1024', '--seq-len', '256', '--device', device, '--json').stdout) as { ppl: number }).ppl;
  const [c, g] = [ppl('cpu'), ppl('cuda')];
  assert.ok(Math.abs(c - g) < 1e-4 * c, `cpu ${c} vs cuda ${g}`);
  const bf = JSON.parse(mopt('eval', 'ppl', '--model', STORIES_HF, '--data', join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt'), '--max-tokens', '1024', '--seq-len', '256', '--device', 'cuda', '--dtype', 'bfloat16', '--json').stdout) as { ppl: number };
  assert.ok(Math.abs(bf.ppl - c) < 0.02 * c, `bfloat16 on cuda ${bf.ppl} vs float32 ${c}`);
  const dir = mkdtempSync(join(tmpdir(), 'mopt-cli-cuda-'));
  try {
    const ids = join(dir, 'ids.json');
    writeFileSync(ids, JSON.stringify([[1, 403, 407, 261], [1, 346, 306, 414]]));
    const logits = (device: string): Float32Array => {
      const r = mopt('forward', '--model', STORIES_HF, '--ids-file', ids, '--out', join(dir, `${device}.npy`), '--device', device, '--json');
      assert.equal(r.code, 0, r.stderr);
      const t = readNpy(join(dir, `${device}.npy`));
      assert.equal(t.dtype, 'float32');
      return t.data as Float32Array;
    };
    const [lc, lg] = [logits('cpu'), logits('cuda')];
    assert.equal(lg.length, 2 * 4 * 512);
    const err = Math.sqrt(lc.reduce((s, v, i) => s + (v - lg[i]!) ** 2, 0) / lc.reduce((s, v) => s + v * v, 0));
    assert.ok(err < 1e-4, `forward logits cpu vs cuda: relative error ${err}`);
    // four float32 training steps from the same config and seed: the same losses within float32 reordering
    const { config, text } = writeTrainInputs(dir);
    let runs = 0;
    const trained = (device: string): { steps: number; valLoss: number } => {
      const r = mopt('train', '--config', config, '--tokenizer', STORIES_HF, '--data', text, '--out', join(dir, `train-${runs++}`), '--batch-size', '2',
        '--seq-len', '32', '--warmup', '2', '--eval-every', '2', '--save-every', '4', '--val-rows', '4', '--steps', '4', '--device', device, '--json');
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { steps: number; valLoss: number };
    };
    const [tc, tg] = [trained('cpu'), trained('cuda')];
    assert.equal(tg.steps, 4);
    assert.ok(Math.abs(tc.valLoss - tg.valLoss) < 1e-3 * tc.valLoss, `validation loss after 4 steps: cpu ${tc.valLoss}, cuda ${tg.valLoss}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--device cuda without a CUDA driver fails with one sentence saying what to install', { skip: process.env.MOPT_TEST_CUDA === '1' ? 'this machine has CUDA' : false }, () => {
  const r = mopt('generate', '--model', STORIES_HF, '--prompt-ids', '1', '--max-new-tokens', '2', '--device', 'cuda', '--json');
  if (r.code === 0) return; // a machine with a working CUDA install: nothing to check here
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /CUDA is not usable: .* not found .*install .* or run with --device cpu/);
  // and the CPU path is unaffected in the same install
  assert.equal(mopt('generate', '--model', STORIES_HF, '--prompt-ids', '1', '--max-new-tokens', '2', '--json').code, 0);
});

test('quantize writes a report and a state that eval accepts as --model', () => {
  const out = mkdtempSync(join(tmpdir(), 'mopt-quant-'));
  const text = join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt');
  const held = join(SHARED_DATA, 'corpora', 'tinyshakespeare.txt');
  try {
    const q = mopt('quantize', '--model', STORIES_HF, '--format', 'int8_sq', '--algorithm', 'max', '--kv-cache', 'fp8', '--calib-data', text,
      '--calib-samples', '4', '--seq-len', '128', '--eval-data', held, '--eval-windows', '3', '--out', out, '--json');
    assert.equal(q.code, 0, q.stderr);
    const r = JSON.parse(q.stdout) as { evaluation: { before: { ppl: number }; after: { ppl: number }; kl: { mean: number } }; size: { quantizedBytes: number; sourceBytes: number }; quantizers: { name: string; amax: number | null }[] };
    assert.ok(r.evaluation.after.ppl > r.evaluation.before.ppl * 0.98 && r.evaluation.kl.mean > 0, 'int8 costs a little quality');
    assert.ok(r.size.quantizedBytes < r.size.sourceBytes / 2);
    assert.ok(r.quantizers.some((x) => x.name === 'model.layers.0.self_attn.k_bmm_quantizer' && x.amax !== null && x.amax > 0));
    assert.ok(existsSync(join(out, 'report.json')) && existsSync(join(out, 'mopt-quant.json')));
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(html, /<svg[^>]*>.*model\.layers\.0\.self_attn\.q_proj/s, 'report.html charts the per-weight SQNR');
    // the saved state scores the same windows to the same perplexity
    const e = mopt('eval', 'ppl', '--model', out, '--data', held, '--seq-len', '128', '--max-tokens', String(3 * 128), '--json');
    assert.equal(e.code, 0, e.stderr);
    assert.ok(Math.abs((JSON.parse(e.stdout) as { ppl: number }).ppl - r.evaluation.after.ppl) < 1e-9);
    // eval --kl-base: the original as base gives a positive KL; the model against itself gives 0
    const kl = mopt('eval', 'ppl', '--model', out, '--kl-base', STORIES_HF, '--data', held, '--seq-len', '128', '--max-tokens', String(3 * 128), '--json');
    assert.equal(kl.code, 0, kl.stderr);
    assert.ok(Math.abs((JSON.parse(kl.stdout) as { kl: number }).kl - r.evaluation.kl.mean) < 1e-6);
    // mopt export writes the Model Optimizer checkpoint; eval runs it from its packed weights to the same perplexity
    const ckpt = join(out, 'hf');
    const x = mopt('export', '--from', out, '--out', ckpt, '--json');
    assert.equal(x.code, 0, x.stderr);
    assert.equal((JSON.parse(x.stdout) as { quantAlgo: string }).quantAlgo, 'W8A8_SQ_PER_CHANNEL');
    const ex = mopt('eval', 'ppl', '--model', ckpt, '--data', held, '--seq-len', '128', '--max-tokens', String(3 * 128), '--json');
    assert.equal(ex.code, 0, ex.stderr);
    const exPpl = (JSON.parse(ex.stdout) as { ppl: number }).ppl;
    assert.ok(Math.abs(exPpl - r.evaluation.after.ppl) / r.evaluation.after.ppl < 1e-3, `exported ppl ${exPpl} vs ${r.evaluation.after.ppl}`);
    assert.equal(mopt('export', '--from', out, '--out', ckpt).code, 1, 'a non-empty --out needs --overwrite');
    // quantize --export-format writes the checkpoint, the report and the state into one --out
    const one = join(out, 'one');
    const qe = mopt('quantize', '--model', STORIES_HF, '--format', 'int4_awq', '--group-size', '32', '--calib-data', text, '--calib-samples', '2',
      '--seq-len', '64', '--eval-windows', '0', '--out', one, '--export-format', 'modelopt');
    assert.equal(qe.code, 0, qe.stderr);
    for (const f of ['hf_quant_config.json', 'model.safetensors', 'config.json', 'tokenizer.json', 'report.json', 'mopt-quant.json']) assert.ok(existsSync(join(one, f)), f);
    // GPTQ weights: the state keeps their static scales, so mopt export writes them later
    const gs = join(out, 'gptq');
    const g = mopt('quantize', '--model', STORIES_HF, '--format', 'w4a16_nvfp4', '--algorithm', 'gptq', '--calib-data', text, '--calib-samples', '2',
      '--seq-len', '64', '--eval-windows', '0', '--out', gs);
    assert.equal(g.code, 0, g.stderr);
    const gx = mopt('export', '--from', gs, '--out', join(out, 'gptq-hf'), '--json');
    assert.equal(gx.code, 0, gx.stderr);
    // W4A8 exports (INT4 + FP8 two-stage scales) and loads back in eval
    const wq = mopt('quantize', '--model', STORIES_HF, '--format', 'w4a8_awq', '--group-size', '32', '--calib-data', text, '--calib-samples', '2',
      '--seq-len', '64', '--eval-windows', '0', '--out', join(out, 'two'), '--export-format', 'modelopt');
    assert.equal(wq.code, 0, wq.stderr);
    assert.equal((JSON.parse(readFileSync(join(out, 'two', 'hf_quant_config.json'), 'utf8')) as { quantization: { quant_algo: string } }).quantization.quant_algo, 'W4A8_AWQ');
    const we = mopt('eval', 'ppl', '--model', join(out, 'two'), '--data', held, '--seq-len', '64', '--max-tokens', '64', '--json');
    assert.equal(we.code, 0, we.stderr);
    const self = mopt('eval', 'ppl', '--model', STORIES_HF, '--kl-base', STORIES_HF, '--data', held, '--seq-len', '128', '--max-tokens', '128', '--json');
    assert.equal((JSON.parse(self.stdout) as { kl: number }).kl, 0);
    // mistakes: one line, exit 1
    for (const [args, msg] of [
      [['--format', 'int4_awq', '--algorithm', 'awq_plus'], /--algorithm awq_plus: unknown \(known: max, smoothquant, awq_lite/],
      [['--format', 'fp4'], /unknown quantization preset "fp4"/],
      [['--format', 'fp8', '--calibrator', 'median'], /--calibrator median: unknown/],
      [['--format', 'fp8', '--algorithm', 'none'], /algorithm none calibrates nothing, but model\.layers\.0\.self_attn\.q_proj\.input_quantizer \(fp8\) needs a calibrated amax/],
      [['--format', 'fp8', '--calib-data', join(out, 'missing.txt')], /missing\.txt does not exist/],
      [['--model', out, '--format', 'fp8'], /already a mopt quantization output/],
      [['--format', 'fp8', '--out', STORIES_HF], /is the model directory; mopt never writes into its input/],
    ] as const) {
      const base = ['quantize', '--model', STORIES_HF, '--calib-data', text, '--out', join(out, 'x')];
      const bad = mopt(...base, ...args);
      assert.equal(bad.code, 1, args.join(' '));
      assert.match(bad.stderr, msg);
      assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('train from a config, resume from the newest checkpoint, and the result generates', () => {
  const out = mkdtempSync(join(tmpdir(), 'mopt-train-cli-'));
  try {
    const { config, text } = writeTrainInputs(out);
    const args = ['train', '--config', config, '--tokenizer', STORIES_HF, '--data', text, '--out', join(out, 'run'), '--batch-size', '2',
      '--seq-len', '32', '--warmup', '2', '--eval-every', '2', '--save-every', '2', '--val-rows', '4', '--json'];
    const first = mopt(...args, '--steps', '4');
    assert.equal(first.code, 0, first.stderr);
    const s1 = JSON.parse(first.stdout) as { steps: number; valLoss: number; parameters: number };
    assert.equal(s1.steps, 4);
    assert.ok(s1.valLoss > 0 && s1.parameters > 0);
    // a longer run resumes at step 4 instead of starting over
    const more = mopt(...args, '--steps', '6', '--resume');
    assert.equal(more.code, 0, more.stderr);
    const log = JSON.parse(readFileSync(join(out, 'run', 'train-log.json'), 'utf8')) as { train: { step: number }[] };
    assert.deepEqual(log.train.map((p) => p.step), [1, 2, 3, 4, 5, 6]);
    const g = mopt('generate', '--model', join(out, 'run', 'model'), '--prompt', 'Once upon a time', '--max-new-tokens', '5', '--greedy', '--json');
    assert.equal(g.code, 0, g.stderr);
    assert.equal((JSON.parse(g.stdout) as { ids: number[] }).ids.length, 5);
    const bad = mopt('train', '--preset', 'mopt-huge', '--tokenizer', STORIES_HF, '--data', text, '--out', join(out, 'x'));
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--preset mopt-huge: unknown \(known: mopt-tiny, mopt-small\)/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('quantize --format all compares every preset on the same windows', () => {
  const out = mkdtempSync(join(tmpdir(), 'mopt-quant-all-'));
  try {
    const r = mopt('quantize', '--model', STORIES_HF, '--format', 'all', '--group-size', '32', '--calib-data', join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt'),
      '--calib-samples', '2', '--seq-len', '64', '--eval-windows', '2', '--out', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { pplBefore: number; rows: { preset: string; ppl: number; kl: number; bytes: number }[] };
    assert.deepEqual(s.rows.map((x) => x.preset), ['fp8', 'int8_sq', 'int4_awq', 'w4a8_awq', 'nvfp4', 'nvfp4_awq', 'w4a16_nvfp4', 'mxfp8', 'mxfp4']);
    for (const x of s.rows) {
      assert.ok(x.ppl > 0 && x.kl >= 0 && x.bytes > 0, JSON.stringify(x));
      assert.ok(existsSync(join(out, x.preset, 'report.json')) && existsSync(join(out, x.preset, 'mopt-quant.json')), x.preset);
    }
    const fp8 = s.rows.find((x) => x.preset === 'fp8')!;
    const mxfp4 = s.rows.find((x) => x.preset === 'mxfp4')!;
    assert.ok(fp8.kl < mxfp4.kl, '8-bit costs less than 4-bit');
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')), s);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
