// Reverse-mode automatic differentiation over a tape of GradNodes. Each op records, on its output,
// which inputs it read and a closure mapping the output gradient to input gradients; backward()
// walks the graph in reverse topological order and accumulates gradients into leaf tensors.

import type { Tensor } from './tensor.js';

export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** gradient of each input (null where an input needs none) given the output gradient */
  readonly backward: (gOut: Tensor) => readonly (Tensor | null)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording the tape (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** True when an op with these inputs must record a GradNode. */
export function needsGrad(inputs: readonly Tensor[]): boolean {
  return gradEnabled && inputs.some((t) => t.requiresGrad);
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // iterative DFS: deep graphs (long sequences of ops) must not overflow the JS stack
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.gradNode?.inputs ?? [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const child = inputs[i];
      if (child.requiresGrad && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

/**
 * Accumulates d(root)/d(leaf) into leaf.grad for every leaf that requires grad.
 * `seed` defaults to ones (root must then be a scalar, as in PyTorch).
 * `accumulate` adds two gradients; `adopt` makes a leaf own its gradient tensor (clone if aliased).
 */
export function runBackward(
  root: Tensor,
  seed: Tensor,
  accumulate: (a: Tensor, b: Tensor) => Tensor,
  adopt: (leaf: Tensor, g: Tensor, aliased: boolean) => void,
): void {
  const grads = new Map<Tensor, Tensor>();
  grads.set(root, seed);
  const assigned = new Set<Tensor>();
  for (const t of topoOrder(root)) {
    const g = grads.get(t);
    if (g === undefined) continue;
    grads.delete(t);
    const node = t.gradNode;
    if (node === null) {
      if (t.requiresGrad) {
        adopt(t, g, assigned.has(g));
        assigned.add(g);
      }
      continue;
    }
    const inputGrads = node.backward(g);
    node.inputs.forEach((inp, i) => {
      const gi = inputGrads[i];
      if (gi === null || gi === undefined || !inp.requiresGrad) return;
      const prev = grads.get(inp);
      grads.set(inp, prev === undefined ? gi : accumulate(prev, gi));
    });
  }
}
