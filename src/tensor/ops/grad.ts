// Entry point of reverse-mode differentiation: Tensor.backward().

import type { Tensor } from '../tensor.js';
import { noGrad, runBackward } from '../autograd.js';
import { keep } from '../scope.js';
import { add } from './elementwise.js';
import { clone } from './shape-ops.js';
import { scalarLike } from './core.js';
import { expand } from './shape-ops.js';
import { shapeStr } from '../shape.js';

export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) throw new Error('backward(): the tensor does not require grad (no trainable input reached it)');
  if (grad === undefined && root.size !== 1) {
    throw new Error(`backward(): a non-scalar tensor ${shapeStr(root.shape)} needs an explicit gradient`);
  }
  noGrad(() => {
    const seed = grad ?? expand(scalarLike(1, root), root.shape);
    runBackward(
      root,
      seed,
      (a, b) => add(a, b),
      (leaf, g, aliased) => {
        const own = aliased || g === seed || !g.isContiguous ? clone(g) : g;
        if (leaf.grad === null) leaf.grad = keep(own);
        else {
          const sum = keep(add(leaf.grad, own));
          leaf.grad.dispose();
          leaf.grad = sum;
        }
      },
    );
  });
}
