// The Tensor: a strided view of backend storage, plus what autograd needs (requiresGrad, grad, the node
// that produced it). Math lives in ./ops/*; the methods here are thin sugar over those functions.

import type { Backend, Storage, View } from '../backend/backend.js';
import { DTYPE_INFO, type DType, type StorageArray } from './dtype.js';
import { contiguousStrides, isContiguous, numel, shapeStr, type Shape } from './shape.js';
import { track, keep } from './scope.js';
import { storageReleased, storageViewed } from './memory.js';
import type { GradNode } from './autograd.js';
import * as E from './ops/elementwise.js';
import * as R from './ops/reduce.js';
import * as S from './ops/shape-ops.js';
import * as L from './ops/linalg.js';
import { backward as runBackwardFrom } from './ops/grad.js';

export type Scalar = number;
export type TensorOrScalar = Tensor | Scalar;

export class Tensor implements View {
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  private _storage: Storage | null;
  requiresGrad = false;
  grad: Tensor | null = null;
  gradNode: GradNode | null = null;

  constructor(storage: Storage, shape: Shape, strides?: readonly number[], offset = 0) {
    this._storage = storage;
    this.shape = [...shape];
    this.strides = strides ? [...strides] : contiguousStrides(shape);
    this.offset = offset;
    if (storage.refs++ === 0) storageViewed(storage);
    track(this);
  }

  get storage(): Storage {
    if (this._storage === null) throw new Error(`use of a disposed tensor ${shapeStr(this.shape)}`);
    return this._storage;
  }
  get backend(): Backend {
    return this.storage.backend;
  }
  get dtype(): DType {
    return this.storage.dtype;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get size(): number {
    return numel(this.shape);
  }
  get isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }
  get isDisposed(): boolean {
    return this._storage === null;
  }

  /** Releases this view; the storage is freed when its last view goes. */
  dispose(): void {
    const s = this._storage;
    if (s === null) return;
    this._storage = null;
    this.gradNode = null;
    if (--s.refs === 0) {
      storageReleased(s);
      s.backend.free(s);
    }
  }

  /** Marks this tensor as a trainable leaf. */
  requireGrad(on = true): this {
    this.requiresGrad = on;
    return this;
  }

  /** Keeps this tensor alive past the enclosing tidy() scopes. */
  keep(): this {
    return keep(this);
  }

  /** A new view of the same storage (shares memory). */
  viewAs(shape: Shape, strides: readonly number[], offset: number): Tensor {
    return new Tensor(this.storage, shape, strides, offset);
  }

  toString(): string {
    return `Tensor(${this.dtype}, ${shapeStr(this.shape)}, ${this.backend.name})`;
  }

  // ---- host access ----------------------------------------------------------------------------
  /** Contiguous host copy of the raw storage values (bit patterns for narrow floats). */
  toStorageArray(): StorageArray {
    return this.backend.toHost(this);
  }
  /** Values as float32 (narrow floats decoded). */
  toFloat32Array(): Float32Array {
    if (this.dtype === 'float32') return this.backend.toHost(this) as Float32Array;
    const t = this.cast('float32');
    const host = t.backend.toHost(t) as Float32Array;
    t.dispose(); // the temporary cast must not outlive the read (nothing else frees it outside tidy)
    return host;
  }
  toFloat64Array(): Float64Array {
    if (this.dtype === 'float64') return this.backend.toHost(this) as Float64Array;
    const t = this.cast('float64');
    const host = t.backend.toHost(t) as Float64Array;
    t.dispose();
    return host;
  }
  /** Flat list of numbers (int64 converted with Number()). */
  toArray(): number[] {
    if (this.dtype === 'int64') return Array.from(this.toStorageArray() as BigInt64Array, Number);
    if (DTYPE_INFO[this.dtype].encoded) return Array.from(this.toFloat32Array());
    return Array.from(this.toStorageArray() as Exclude<StorageArray, BigInt64Array>);
  }
  item(): number {
    if (this.size !== 1) throw new RangeError(`item() needs a one-element tensor, got ${shapeStr(this.shape)}`);
    return this.toArray()[0];
  }

  // ---- autograd -------------------------------------------------------------------------------
  backward(grad?: Tensor): void {
    runBackwardFrom(this, grad);
  }
  /** A tensor sharing storage but cut from the tape. */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape, this.strides, this.offset);
  }

  // ---- sugar over ops -------------------------------------------------------------------------
  add(o: TensorOrScalar): Tensor { return E.add(this, o); }
  sub(o: TensorOrScalar): Tensor { return E.sub(this, o); }
  mul(o: TensorOrScalar): Tensor { return E.mul(this, o); }
  div(o: TensorOrScalar): Tensor { return E.div(this, o); }
  pow(o: TensorOrScalar): Tensor { return E.pow(this, o); }
  maximum(o: TensorOrScalar): Tensor { return E.maximum(this, o); }
  minimum(o: TensorOrScalar): Tensor { return E.minimum(this, o); }
  neg(): Tensor { return E.unary('neg', this); }
  exp(): Tensor { return E.unary('exp', this); }
  log(): Tensor { return E.unary('log', this); }
  sqrt(): Tensor { return E.unary('sqrt', this); }
  rsqrt(): Tensor { return E.unary('rsqrt', this); }
  sin(): Tensor { return E.unary('sin', this); }
  cos(): Tensor { return E.unary('cos', this); }
  tanh(): Tensor { return E.unary('tanh', this); }
  sigmoid(): Tensor { return E.unary('sigmoid', this); }
  silu(): Tensor { return E.unary('silu', this); }
  abs(): Tensor { return E.unary('abs', this); }
  relu(): Tensor { return E.unary('relu', this); }
  square(): Tensor { return E.unary('square', this); }
  reciprocal(): Tensor { return E.unary('reciprocal', this); }
  cast(dtype: DType): Tensor { return E.cast(this, dtype); }
  eq(o: TensorOrScalar): Tensor { return E.compare('eq', this, o); }
  lt(o: TensorOrScalar): Tensor { return E.compare('lt', this, o); }
  gt(o: TensorOrScalar): Tensor { return E.compare('gt', this, o); }
  le(o: TensorOrScalar): Tensor { return E.compare('le', this, o); }
  ge(o: TensorOrScalar): Tensor { return E.compare('ge', this, o); }

  sum(axes?: number | number[], keepdim = false): Tensor { return R.sum(this, axes, keepdim); }
  mean(axes?: number | number[], keepdim = false): Tensor { return R.mean(this, axes, keepdim); }
  max(axes?: number | number[], keepdim = false): Tensor { return R.max(this, axes, keepdim); }
  min(axes?: number | number[], keepdim = false): Tensor { return R.min(this, axes, keepdim); }
  argmax(axis: number, keepdim = false): Tensor { return R.argmax(this, axis, keepdim); }
  softmax(axis = -1): Tensor { return R.softmax(this, axis); }
  logSoftmax(axis = -1): Tensor { return R.logSoftmax(this, axis); }

  matmul(o: Tensor): Tensor { return L.matmul(this, o); }

  reshape(shape: readonly number[]): Tensor { return S.reshape(this, shape); }
  permute(axes: readonly number[]): Tensor { return S.permute(this, axes); }
  transpose(a: number, b: number): Tensor { return S.transpose(this, a, b); }
  expand(shape: readonly number[]): Tensor { return S.expand(this, shape); }
  slice(axis: number, start: number, end: number): Tensor { return S.slice(this, axis, start, end); }
  unsqueeze(axis: number): Tensor { return S.unsqueeze(this, axis); }
  squeeze(axis: number): Tensor { return S.squeeze(this, axis); }
  contiguous(): Tensor { return S.contiguous(this); }
  flatten(): Tensor { return S.reshape(this, [this.size]); }
  clone(): Tensor { return S.clone(this); }
}
