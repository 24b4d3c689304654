// Pre-allocated key/value cache for incremental decoding: one [batch, kvHeads, capacity, headDim]
// buffer per layer for K and for V; each step writes its new positions in place.

import type { Backend } from '../backend/backend.js';
import { Tensor, zeros, keep, slice, expand, reshape, scatterInto, type DType } from '../tensor/index.js';
import { ropeAppend } from '../tensor/ops/fused.js';

export class KVCache {
  private readonly k: Tensor[] = [];
  private readonly v: Tensor[] = [];
  length = 0;

  constructor(
    numLayers: number,
    readonly batch: number,
    kvHeads: number,
    readonly capacity: number,
    headDim: number,
    dtype: DType,
    backend: Backend,
  ) {
    for (let i = 0; i < numLayers; i++) {
      this.k.push(keep(zeros([batch, kvHeads, capacity, headDim], { dtype, device: backend })));
      this.v.push(keep(zeros([batch, kvHeads, capacity, headDim], { dtype, device: backend })));
    }
  }

  /** Writes the new keys/values of layer i after the cached ones; returns views of all positions. */
  append(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    const n = k.shape[2];
    const end = this.length + n;
    if (end > this.capacity) {
      throw new RangeError(`KV cache full: ${end} positions needed, capacity ${this.capacity}`);
    }
    const kc = this.k[layer];
    const vc = this.v[layer];
    kc.backend.copy(k, slice(kc, 2, this.length, end));
    vc.backend.copy(v, slice(vc, 2, this.length, end));
    return [slice(kc, 2, 0, end), slice(vc, 2, 0, end)];
  }

  /**
   * Writes the new keys/values of layer i at device-side `positions` (int32 [seq]) and returns the whole
   * buffers: which positions are valid is known only on the device (attention's pastAt).
   */
  appendAt(layer: number, k: Tensor, v: Tensor, positions: Tensor): [Tensor, Tensor] {
    const [b, h, n, d] = k.shape;
    const index = expand(reshape(positions, [1, 1, n, 1]), [b, h, n, d]);
    scatterInto(this.k[layer], 2, index, k);
    scatterInto(this.v[layer], 2, index, v);
    return [this.k[layer], this.v[layer]];
  }

  /**
   * appendAt for keys that still need RoPE, fused with the rotation of the queries: returns the rotated q
   * and the whole K and V buffers.
   */
  ropeAppendAt(layer: number, q: Tensor, k: Tensor, v: Tensor, cos: Tensor, sin: Tensor, positions: Tensor): [Tensor, Tensor, Tensor] {
    return [ropeAppend(q, k, v, cos, sin, positions, this.k[layer], this.v[layer]), this.k[layer], this.v[layer]];
  }

  /** Layer i's whole K and V buffers [batch, kvHeads, capacity, headDim] (a fused decode step writes them itself). */
  buffers(layer: number): [Tensor, Tensor] {
    return [this.k[layer], this.v[layer]];
  }

  /** Called once per forward after every layer appended. */
  advance(n: number): void {
    this.length += n;
  }

  /** Forget positions from `length` on (speculative decoding rolls back rejected tokens this way). */
  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new RangeError(`cannot truncate a cache of ${this.length} to ${length}`);
    this.length = length;
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t.dispose();
  }
}
