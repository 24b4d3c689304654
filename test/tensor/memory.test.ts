// The live-tensor-bytes counter (src/tensor/memory.ts): a storage counts once from its first view to its last,
// views and kept tensors included, and the peak follows the most bytes alive at once.

import assert from 'node:assert/strict';
import { liveTensorBytes, peakTensorBytes, resetPeakTensorBytes, tidy, tensor, zeros, add, reshape } from '../../src/tensor/index.js';
import { forEachBackend } from '../helpers/backends.js';

forEachBackend('live tensor bytes: storages count once, views add nothing, dispose and tidy release, the peak is kept', ({ backend }) => {
  const base = liveTensorBytes(backend);
  resetPeakTensorBytes(backend);
  const a = zeros([4, 8], { dtype: 'float32', device: backend });
  assert.equal(liveTensorBytes(backend) - base, 128);
  const v = reshape(a, [32]); // a view of the same storage
  assert.equal(liveTensorBytes(backend) - base, 128);
  const h = zeros([16], { dtype: 'bfloat16', device: backend });
  assert.equal(liveTensorBytes(backend) - base, 160);
  a.dispose();
  assert.equal(liveTensorBytes(backend) - base, 160, 'the view keeps the storage alive');
  v.dispose();
  h.dispose();
  assert.equal(liveTensorBytes(backend), base);
  assert.equal(peakTensorBytes(backend) - base, 160);
  resetPeakTensorBytes(backend);
  const kept = tidy(() => add(tensor([1, 2, 3, 4], [4], { device: backend }), 1)); // temporaries freed, result kept
  assert.equal(liveTensorBytes(backend) - base, 16);
  assert.ok(peakTensorBytes(backend) - base >= 32, 'the temporaries counted while alive');
  kept.dispose();
  assert.equal(liveTensorBytes(backend), base);
});
