// Memory scopes and tensor lifetimes, per backend: tidy() disposes what it created except what it returns
// or what is kept, survivors move to the enclosing scope, exceptions unwind everything, views share
// storage with reference counts, disposed tensors refuse use, and a training loop does not leak.
// Leak checks count live storages with Backend.liveStorages().

import assert from 'node:assert/strict';
import type { Backend } from '../../src/backend/backend.js';
import { crossEntropy, rmsNorm } from '../../src/nn/functional.js';
import { AdamW, clipGradNorm } from '../../src/nn/optim.js';
import * as T from '../../src/tensor/index.js';
import type { Tensor } from '../../src/tensor/index.js';
import { scopeDepth } from '../../src/tensor/scope.js';
import { forEachBackend } from '../helpers/backends.js';

/** The backend's live-storage counter. */
function liveCounter(b: Backend): () => number {
  return () => b.liveStorages();
}

forEachBackend('tidy disposes intermediates and keeps returned values (arrays, objects, Maps)', ({ backend }) => {
  const live = liveCounter(backend);
  const before = live();
  const o = { device: backend };
  const intermediates: Tensor[] = [];
  const res = T.tidy(() => {
    const a = T.ones([2, 3], o);
    const b = a.mul(2);
    const c = b.add(1);
    intermediates.push(a, b, T.tensor([1, 2], [2], o));
    return { list: [c, { deep: c.sum() }], map: new Map([['m', b.neg()]]), n: 3, s: 'text', none: null };
  });
  assert.ok(intermediates.every((t) => t.isDisposed), 'intermediates are disposed');
  const [c, deep] = res.list as [Tensor, { deep: Tensor }];
  assert.deepEqual(c.toArray(), [3, 3, 3, 3, 3, 3]);
  assert.equal(deep.deep.item(), 18);
  assert.deepEqual(res.map.get('m')!.toArray(), [-2, -2, -2, -2, -2, -2]);
  assert.equal(res.n, 3);
  if (live && before !== undefined) assert.equal(live(), before + 3, 'exactly the three returned tensors are live');
  for (const t of [c, deep.deep, res.map.get('m')!]) t.dispose();
  if (live && before !== undefined) assert.equal(live(), before);
  assert.equal(scopeDepth(), 0);
});

forEachBackend('keep() survives every enclosing tidy; a tensor from outside is never disposed by one', ({ backend }) => {
  const o = { device: backend };
  const outside = T.full([2], 5, o);
  let kept!: Tensor;
  let keptInner!: Tensor;
  let temp!: Tensor;
  T.tidy(() => {
    temp = T.ones([2], o);
    kept = temp.mul(4).keep();
    T.tidy(() => {
      keptInner = T.keep(T.full([1], 9, o));
      return outside; // returned from a nested scope, but created outside every scope
    });
  });
  assert.ok(temp.isDisposed);
  assert.deepEqual(kept.toArray(), [4, 4]);
  assert.deepEqual(keptInner.toArray(), [9]);
  assert.deepEqual(outside.toArray(), [5, 5]);
  for (const t of [kept, keptInner, outside]) t.dispose();
});

forEachBackend('nested tidy moves its survivors to the parent scope', ({ backend }) => {
  const o = { device: backend };
  let inner!: Tensor;
  let innerTemp!: Tensor;
  let seenAlive = false;
  const out = T.tidy(() => {
    inner = T.tidy(() => {
      innerTemp = T.ones([3], o);
      return innerTemp.mul(3);
    });
    seenAlive = !inner.isDisposed && innerTemp.isDisposed;
    return inner.add(1);
  });
  assert.ok(seenAlive, 'the inner result lives on in the outer scope; the inner temporary does not');
  assert.ok(inner.isDisposed, 'the inner survivor belonged to the outer scope, which disposed it');
  assert.deepEqual(out.toArray(), [4, 4, 4]);
  out.dispose();
});

forEachBackend('an exception inside tidy disposes everything created in it, in every nested scope', ({ backend }) => {
  const live = liveCounter(backend);
  const before = live();
  const o = { device: backend };
  const made: Tensor[] = [];
  assert.throws(
    () =>
      T.tidy(() => {
        made.push(T.ones([4], o));
        made.push(made[0].mul(2));
        T.tidy(() => {
          made.push(T.zeros([2, 2], o), T.tensor([1, 2, 3], [3], o).keep().exp());
          throw new Error('boom');
        });
      }),
    /boom/,
  );
  assert.ok(made.every((t) => t.isDisposed), 'all tensors created in the failed scopes are disposed');
  assert.equal(scopeDepth(), 0, 'the scope stack is unwound');
  // the kept tensor left the scopes before the throw and is the only survivor
  if (live && before !== undefined) assert.equal(live(), before + 1);
});

forEachBackend('views keep storage alive until the last view is disposed', ({ backend }) => {
  const live = liveCounter(backend);
  const o = { device: backend };
  const before = live();
  const base = T.tensor([1, 2, 3, 4, 5, 6], [2, 3], o);
  const storage = base.storage;
  const vt = base.transpose(0, 1);
  const vs = base.slice(1, 1, 3);
  const row = base.slice(0, 0, 1);
  const ve = row.expand([4, 3]);
  assert.equal(live(), before + 1, 'views allocate no storage');
  assert.equal(storage.refs, 5, 'base and each of the four views hold a reference');
  base.dispose();
  row.dispose();
  assert.equal(live(), before + 1);
  assert.deepEqual(vt.toArray(), [1, 4, 2, 5, 3, 6]);
  vt.dispose();
  assert.deepEqual(vs.toArray(), [2, 3, 5, 6]);
  vs.dispose();
  assert.equal(storage.freed, false);
  assert.deepEqual(ve.toArray(), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
  ve.dispose();
  assert.equal(storage.freed, true, 'the last view frees the storage');
  assert.equal(live(), before);
});

forEachBackend('a tidy returning a view of an intermediate keeps only that storage alive', ({ backend }) => {
  const live = liveCounter(backend);
  const before = live();
  const v = T.tidy(() => T.arange(0, 6, 1, { device: backend }).reshape([2, 3]).transpose(0, 1));
  assert.equal(live(), before + 1);
  assert.deepEqual(v.toArray(), [0, 3, 1, 4, 2, 5]);
  v.dispose();
  assert.equal(live(), before);
});

forEachBackend('use after dispose throws a clear error; dispose twice is harmless', ({ backend }) => {
  const x = T.tensor([1, 2, 3, 4, 5, 6], [2, 3], { device: backend });
  const y = x.transpose(0, 1);
  x.dispose();
  x.dispose();
  assert.equal(x.isDisposed, true);
  for (const use of [() => x.toArray(), () => x.add(1), () => x.sum(), () => x.transpose(0, 1), () => x.dtype, () => T.matmul(y, x)]) {
    assert.throws(use, /use of a disposed tensor \[2, 3\]/);
  }
  assert.deepEqual(y.toArray(), [1, 4, 2, 5, 3, 6], 'a view of the disposed tensor still works');
  y.dispose();
});

forEachBackend('host reads of non-float32 tensors do not leak their temporary cast', ({ backend }) => {
  const live = liveCounter(backend);
  const x = T.tensor([1.5, -2, 3], [3], { dtype: 'bfloat16', device: backend });
  const before = live();
  assert.deepEqual(x.toArray(), [1.5, -2, 3]);
  assert.deepEqual(Array.from(x.toFloat32Array()), [1.5, -2, 3]);
  assert.deepEqual(Array.from(x.toFloat64Array()), [1.5, -2, 3]);
  const v = x.slice(0, 1, 2);
  assert.equal(v.item(), -2);
  assert.equal(live(), before, 'reads free their float32/float64 temporaries at once');
  v.dispose();
  x.dispose();
});

forEachBackend('200 training steps (forward, backward, clipping, AdamW) inside tidy do not leak', ({ backend }) => {
  const live = liveCounter(backend);
  const o = { device: backend };
  const before = live();
  const init = (shape: number[], seed: number, scale: number): Tensor => T.tidy(() => T.mul(T.randn(shape, seed, o), scale));
  const w1 = init([8, 16], 1, 0.3).requireGrad();
  const b1 = T.zeros([16], o).requireGrad();
  const norm = T.ones([16], o).requireGrad();
  const w2 = init([16, 4], 2, 0.3).requireGrad();
  const teacher = init([8, 4], 3, 1);
  const params = [w1, b1, norm, w2];
  const opt = new AdamW(params, { lr: 2e-2, weightDecay: 0.01 });
  const losses: number[] = [];
  let steady = -1;
  for (let step = 0; step < 200; step++) {
    const loss = T.tidy(() => {
      const x = T.randn([6, 8], 100 + (step % 20), o);
      const labels = T.argmax(T.matmul(x, teacher), -1);
      const h = rmsNorm(T.add(T.matmul(x, w1), b1), norm, 1e-5).silu();
      const logits = T.matmul(h, w2);
      const l = T.add(crossEntropy(logits, labels), T.mean(w2.square()));
      l.backward();
      clipGradNorm(params, 1.0);
      opt.update();
      opt.zeroGrad();
      return l.item();
    });
    losses.push(loss);
    if (step === 0) steady = live();
    else if (live() !== steady) assert.fail(`step ${step}: ${live()} live storages, ${steady} after the first step`);
    assert.equal(scopeDepth(), 0);
  }
  assert.ok(losses[199] < losses[0] * 0.6, `loss ${losses[0]} -> ${losses[199]} should drop`);
  // everything left is parameters, the teacher and AdamW's two moments per parameter
  assert.equal(steady - before, 5 + 2 * params.length);
  const { m, v } = opt.state();
  for (const s of [...params, teacher, ...m, ...v]) s?.dispose();
  assert.equal(live(), before);
});
