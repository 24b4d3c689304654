// Autograd bookkeeping, per backend: what is recorded and when, how gradients accumulate, reused
// intermediates, detach, the scalar-root rule, and independence of leaf gradients that start from one
// shared gradient tensor. (Each op's derivative is checked numerically in gradcheck.test.ts.)

import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import type { Tensor } from '../../src/tensor/index.js';
import { forEachBackend } from '../helpers/backends.js';

function near(got: Tensor | null, want: number[], what: string): void {
  assert.ok(got !== null, `${what}: no gradient`);
  const g = got.toArray();
  assert.equal(g.length, want.length, `${what}: size`);
  g.forEach((x, i) => assert.ok(Math.abs(x - want[i]) <= 1e-5 * Math.max(1, Math.abs(want[i])), `${what}[${i}]: got ${x}, want ${want[i]}`));
}

forEachBackend('noGrad records nothing and restores grad mode (also after a throw)', ({ backend }) => {
  T.tidy(() => {
    const x = T.tensor([1, 2, 3], [3], { device: backend }).requireGrad();
    const y = T.noGrad(() => {
      assert.equal(T.isGradEnabled(), false);
      T.noGrad(() => assert.equal(T.isGradEnabled(), false));
      assert.equal(T.isGradEnabled(), false, 'a nested noGrad restores the outer (disabled) mode');
      return x.mul(2).exp().sum();
    });
    assert.equal(T.isGradEnabled(), true);
    assert.equal(y.requiresGrad, false);
    assert.equal(y.gradNode, null);
    assert.throws(() => y.backward(), /does not require grad/);
    assert.throws(() => T.noGrad(() => { throw new Error('inside'); }), /inside/);
    assert.equal(T.isGradEnabled(), true, 'restored after an exception');
    assert.equal(x.grad, null);
  });
});

forEachBackend('requiresGrad propagates through ops and views, not through constants or integer results', ({ backend }) => {
  T.tidy(() => {
    const o = { device: backend };
    const x = T.tensor([1, -2, 3, 4, 0.5, -1], [2, 3], o).requireGrad();
    const c = T.tensor([1, 2, 3], [3], o);
    const tracked: [string, Tensor][] = [
      ['x + c', x.add(c)], ['c * x', T.mul(c, x)], ['transpose', x.transpose(0, 1)], ['slice', x.slice(1, 0, 2)],
      ['reshape', x.reshape([6])], ['expand', x.reshape([1, 6]).expand([3, 6])], ['sum', x.sum()], ['max', x.max(-1)],
      ['matmul', T.matmul(x, c.reshape([3, 1]))], ['cast f16', x.cast('float16')], ['where', T.where(c.gt(1), x, c)],
      ['gather', T.gather(x, 1, T.tensor([0, 2], [2, 1], { dtype: 'int32', ...o }))], ['softmax', x.softmax()],
      ['concat', T.concat([x, x], 0)], ['chain', x.mul(2).add(1).tanh().mean()],
    ];
    for (const [what, t] of tracked) {
      assert.equal(t.requiresGrad, true, `${what} requires grad`);
      assert.notEqual(t.gradNode, null, `${what} is on the tape`);
    }
    const untracked: [string, Tensor][] = [
      ['constant op', c.mul(2).exp()], ['compare', x.gt(0)], ['argmax', x.argmax(-1)], ['cast int32', x.cast('int32')],
      ['detach', x.detach()], ['detach op', x.detach().mul(3)],
    ];
    for (const [what, t] of untracked) {
      assert.equal(t.requiresGrad, false, `${what} does not require grad`);
      assert.equal(t.gradNode, null, `${what} is not on the tape`);
    }
    x.requireGrad(false);
    assert.equal(x.add(c).requiresGrad, false, 'requireGrad(false) turns tracking off');
  });
});

forEachBackend('gradients accumulate across two backward() calls', ({ backend }) => {
  const x = T.tensor([1, -2, 0.5], [3], { device: backend }).requireGrad();
  T.tidy(() => x.mul(3).sum().backward());
  near(x.grad, [3, 3, 3], 'after the first backward');
  const first = x.grad;
  T.tidy(() => x.mul(x).sum().backward());
  near(x.grad, [3 + 2 * 1, 3 - 2 * 2, 3 + 2 * 0.5], 'after the second backward');
  assert.ok(first !== null && first.isDisposed, 'the replaced gradient tensor is freed');
  assert.equal(x.grad!.isDisposed, false, 'the gradient outlives the tidy it was computed in');
  x.grad!.dispose();
  x.dispose();
});

forEachBackend('a reused intermediate sums the gradients of all its uses', ({ backend }) => {
  T.tidy(() => {
    const xs = [1, -2, 0.5];
    const x = T.tensor(xs, [3], { device: backend }).requireGrad();
    const h = x.mul(x); // h = x^2, used three times
    h.mul(h).add(h.mul(3)).add(h.sin()).sum().backward();
    // d/dx [h^2 + 3h + sin h] = (2h + 3 + cos h) * 2x
    near(x.grad, xs.map((v) => (2 * v * v + 3 + Math.cos(v * v)) * 2 * v), 'reused h');
    // a diamond through views: y = sum(x[0:2] * x[1:3]), so dy/dx = [x1, x0 + x2, x1]
    const z = T.tensor(xs, [3], { device: backend }).requireGrad();
    z.slice(0, 0, 2).mul(z.slice(0, 1, 3)).sum().backward();
    near(z.grad, [xs[1], xs[0] + xs[2], xs[1]], 'overlapping views');
    // the same leaf twice in one op
    const w = T.tensor([2, 3], [2], { device: backend }).requireGrad();
    w.add(w).mul(w).sum().backward(); // 2w^2 -> 4w
    near(w.grad, [8, 12], 'w + w');
  });
});

forEachBackend('detach cuts the tape but shares storage', ({ backend }) => {
  T.tidy(() => {
    const xs = [1, -2, 0.5];
    const x = T.tensor(xs, [3], { device: backend }).requireGrad();
    const d = x.detach();
    assert.equal(d.storage, x.storage, 'detach is a view of the same memory');
    assert.equal(d.requiresGrad, false);
    d.mul(x).sum().backward(); // d is a constant: grad = d = x
    near(x.grad, xs, 'constant * x');
    const y = T.tensor(xs, [3], { device: backend }).requireGrad();
    const h = y.mul(2);
    h.detach().mul(y).add(h).sum().backward(); // grad = h + 2 = 2y + 2
    near(y.grad, xs.map((v) => 2 * v + 2), 'detached intermediate');
  });
});

forEachBackend('backward on a non-scalar needs an explicit gradient', ({ backend }) => {
  T.tidy(() => {
    const x = T.tensor([1, 2, 3, 4], [2, 2], { device: backend }).requireGrad();
    const y = x.mul(2);
    assert.throws(() => y.backward(), /non-scalar tensor \[2, 2\] needs an explicit gradient/);
    assert.equal(x.grad, null, 'a refused backward leaves no gradient behind');
    y.backward(T.tensor([1, 2, 3, 4], [2, 2], { device: backend }));
    near(x.grad, [2, 4, 6, 8], 'explicit gradient');
    // a one-element tensor of any rank may use the implicit seed of one
    const s = T.tensor([3], [1, 1], { device: backend }).requireGrad();
    s.mul(s).backward();
    near(s.grad, [6], '[1,1] root');
  });
});

forEachBackend('leaves that receive one gradient tensor get independent gradient objects', ({ backend }) => {
  T.tidy(() => {
    const o = { device: backend };
    const a = T.tensor([1, 2, 3], [3], o).requireGrad();
    const b = T.tensor([4, 5, 6], [3], o).requireGrad();
    // add's backward hands the same tensor (2 * seed) to both inputs
    a.add(b).mul(2).sum().backward();
    assert.ok(a.grad !== null && b.grad !== null);
    assert.notEqual(a.grad, b.grad, 'distinct tensors');
    assert.notEqual(a.grad.storage, b.grad.storage, 'distinct memory');
    backend.fill(a.grad, 7); // mutate one in place
    near(b.grad, [2, 2, 2], 'b after a.grad was overwritten');
    b.grad.dispose();
    near(a.grad, [7, 7, 7], 'a after b.grad was disposed');

    // the seed itself: an explicit gradient passed by the caller is copied, not adopted
    const p = T.tensor([1, 2], [2], o).requireGrad();
    const q = T.tensor([3, 4], [2], o).requireGrad();
    const seed = T.tensor([0.5, -1], [2], o);
    p.add(q).backward(seed);
    assert.ok(p.grad !== seed && q.grad !== seed && p.grad !== q.grad);
    seed.dispose();
    near(p.grad, [0.5, -1], 'p after the seed was disposed');
    near(q.grad, [0.5, -1], 'q after the seed was disposed');
  });
});
