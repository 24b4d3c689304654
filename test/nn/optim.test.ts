// AdamW, global-norm clipping, the warmup+cosine schedule and cross-entropy against PyTorch/transformers
// trajectories recorded by scripts/make_optim_fixtures.py (test/fixtures/optim/adamw.json).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, clipGradNorm, warmupCosineLr } from '../../src/nn/optim.js';
import { crossEntropy } from '../../src/nn/functional.js';
import { tensor, keep } from '../../src/tensor/index.js';
import { FIXTURES } from '../helpers/paths.js';

interface Fixture {
  adamw: {
    shapes: number[][]; steps: number; warmup: number; peak_lr: number; min_lr: number; betas: [number, number];
    eps: number; weight_decay: number; max_norm: number; params_init: number[][];
    trace: { lr: number; grads: number[][]; grad_norm: number; params_after: number[][] }[];
  };
  cross_entropy: { logits: number[]; shape: number[]; targets: number[]; loss: number };
}

const fx = JSON.parse(readFileSync(join(FIXTURES, 'optim', 'adamw.json'), 'utf8')) as Fixture;

function close(a: number, b: number, rtol: number, what: string): void {
  assert.ok(Math.abs(a - b) <= rtol * Math.max(1e-12, Math.abs(b)), `${what}: ${a} vs ${b}`);
}

test('warmup + cosine LR equals transformers get_cosine_with_min_lr_schedule_with_warmup', () => {
  const a = fx.adamw;
  a.trace.forEach((t, step) =>
    close(warmupCosineLr(step, { peak: a.peak_lr, warmupSteps: a.warmup, totalSteps: a.steps, minLr: a.min_lr }), t.lr, 1e-12, `lr at step ${step}`),
  );
});

test('AdamW with clip_grad_norm_ follows torch.optim.AdamW step for step (float64)', () => {
  const a = fx.adamw;
  const params = a.params_init.map((v, i) => keep(tensor(v, a.shapes[i], { dtype: 'float64' })).requireGrad());
  const opt = new AdamW(params, { lr: 0, beta1: a.betas[0], beta2: a.betas[1], eps: a.eps, weightDecay: a.weight_decay });
  a.trace.forEach((t, step) => {
    params.forEach((p, i) => (p.grad = keep(tensor(t.grads[i], a.shapes[i], { dtype: 'float64' }))));
    opt.lr = t.lr;
    close(clipGradNorm(params, a.max_norm), t.grad_norm, 1e-12, `grad norm at step ${step}`);
    opt.update();
    opt.zeroGrad();
    params.forEach((p, i) => {
      const got = p.toFloat64Array();
      t.params_after[i].forEach((v, j) => close(got[j], v, 1e-10, `step ${step} param ${i}[${j}]`));
    });
  });
});

test('cross-entropy with ignore_index equals torch.nn.functional.cross_entropy', () => {
  const c = fx.cross_entropy;
  const loss = crossEntropy(tensor(c.logits, c.shape), tensor(c.targets, c.shape.slice(0, 2), { dtype: 'int64' }));
  close(loss.item(), c.loss, 1e-6, 'loss');
});

test('AdamW with float32 master weights for bfloat16 parameters follows the float32 trajectory', () => {
  const a = fx.adamw;
  const steps = a.trace.length;
  const opts = { lr: 0, beta1: a.betas[0], beta2: a.betas[1], eps: a.eps, weightDecay: a.weight_decay };
  // reference: float32 parameters updated with the same bf16-rounded gradients
  const ref = a.params_init.map((v, i) => keep(tensor(v, a.shapes[i], { dtype: 'bfloat16' }).cast('float32')).requireGrad());
  const bf = a.params_init.map((v, i) => keep(tensor(v, a.shapes[i], { dtype: 'bfloat16' })).requireGrad());
  const optRef = new AdamW(ref, opts);
  const optBf = new AdamW(bf, { ...opts, masterWeights: true });
  for (let step = 0; step < steps; step++) {
    const t = a.trace[step];
    bf.forEach((p, i) => (p.grad = keep(tensor(t.grads[i], a.shapes[i], { dtype: 'bfloat16' }))));
    ref.forEach((p, i) => (p.grad = keep(bf[i].grad!.cast('float32'))));
    optRef.lr = optBf.lr = t.lr;
    optRef.update();
    optBf.update();
    optRef.zeroGrad();
    optBf.zeroGrad();
  }
  bf.forEach((p, i) => {
    const master = optBf.masterOf(p).toFloat32Array();
    const want = ref[i].toFloat32Array();
    want.forEach((v, j) => assert.equal(master[j], v, `master ${i}[${j}]`));
    // the bfloat16 parameter is the master rounded once
    const rounded = tensor(master, a.shapes[i]).cast('bfloat16').toFloat32Array();
    assert.deepEqual(Array.from(p.toFloat32Array()), Array.from(rounded));
  });
  // without master weights the bf16 parameters drift: small updates vanish in bf16 rounding
  const plain = a.params_init.map((v, i) => keep(tensor(v, a.shapes[i], { dtype: 'bfloat16' })).requireGrad());
  const optPlain = new AdamW(plain, opts);
  for (const t of a.trace) {
    plain.forEach((p, i) => (p.grad = keep(tensor(t.grads[i], a.shapes[i], { dtype: 'bfloat16' }))));
    optPlain.lr = t.lr;
    optPlain.update();
    optPlain.zeroGrad();
  }
  const differs = plain.some((p, i) => p.toFloat32Array().some((x, j) => x !== bf[i].toFloat32Array()[j]));
  assert.ok(differs, 'master weights should change the bf16 result compared with plain bf16 AdamW');
});
