// The host argmax (greedy steps that read the logits row) must pick what the device argmax picks (greedy
// steps and prefills that take it on the device): the first index on ties, the first NaN if any (torch.argmax).

import assert from 'node:assert/strict';
import { argmaxRow } from '../../src/runtime/sampling.js';
import { argmax, tensor, tidy } from '../../src/tensor/index.js';
import { forEachBackend } from '../helpers/backends.js';

const ROWS: number[][] = [
  [0.5, 2, 1, 2],
  [0.5, NaN, 2, 1],
  [NaN, NaN, 3],
  [3, 1, NaN],
  [-Infinity, -Infinity],
  [-0, 0, -1],
  [0, -0, -1],
  [-5, -2, -3, -2],
  [Infinity, 1, Infinity],
];

forEachBackend('argmaxRow picks what the backend argmax picks (ties, NaN, infinities, signed zeros)', ({ name }) => {
  for (const row of ROWS) {
    const device = tidy(() => argmax(tensor(row, [row.length], { dtype: 'float32', device: name }), 0).toArray()[0]);
    assert.equal(argmaxRow(row), device, `row [${row.join(', ')}]`);
  }
  assert.equal(argmaxRow([0.5, NaN, 2, 1]), 1);
  assert.equal(argmaxRow([1, 3, 3]), 1);
});
