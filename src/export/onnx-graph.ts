// Building an ONNX graph node by node: every op gets a readable unique output name under the current scope
// (e.g. `model.layers.3.self_attn/MatMul_2`), constants and weights become initializers, and the result is
// the GraphSpec that src/io/onnx-proto.ts encodes. Element bytes are produced here, in ONNX's raw_data
// layout (little-endian; 4-bit types two per byte, element 2k in the low nibble).

import type { AttrValue, GraphSpec, NodeSpec, TensorSpec, ValueInfoSpec } from '../io/onnx-proto.js';
import { ONNX_DTYPE } from '../io/onnx-tensor.js';

export const MS_DOMAIN = 'com.microsoft';

export class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: TensorSpec[] = [];
  private readonly used = new Set<string>();
  private readonly counts = new Map<string, number>();
  /** prefix of the names of the nodes added next */
  scope = '';

  private fresh(base: string): string {
    const key = `${this.scope}/${base}`;
    const n = this.counts.get(key) ?? 0;
    this.counts.set(key, n + 1);
    return `${this.scope === '' ? '' : this.scope + '/'}${base}_${n}`;
  }

  /** Adds a node and returns its output names (`outputs` of them). */
  opN(op: string, inputs: readonly string[], outputs: number, attrs: Record<string, AttrValue> = {}, domain = ''): string[] {
    const name = this.fresh(op);
    const outs = outputs === 1 ? [name] : Array.from({ length: outputs }, (_, i) => `${name}:${i}`);
    for (const o of outs) this.claim(o);
    this.nodes.push({ op, domain, name, inputs, outputs: outs, attrs });
    return outs;
  }

  op(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, domain = ''): string {
    return this.opN(op, inputs, 1, attrs, domain)[0]!;
  }

  /** Makes `value` available under `name` (a graph output's fixed name). */
  alias(value: string, name: string): void {
    this.claim(name);
    this.nodes.push({ op: 'Identity', domain: '', name: this.fresh('Identity'), inputs: [value], outputs: [name], attrs: {} });
  }

  private claim(name: string): void {
    if (this.used.has(name)) throw new Error(`ONNX graph: the name ${name} is used twice`);
    this.used.add(name);
  }

  /** An initializer under a name of the caller's choosing (Hugging Face tensor names, so the file reads like the checkpoint). */
  tensor(name: string, dataType: number, dims: readonly number[], raw: Uint8Array): string {
    this.claim(name);
    this.initializers.push({ name, dataType, dims, raw });
    return name;
  }

  f32(name: string, dims: readonly number[], values: Float32Array): string {
    return this.tensor(name, ONNX_DTYPE.FLOAT, dims, bytesOf(values));
  }

  i64(name: string, dims: readonly number[], values: readonly number[]): string {
    return this.tensor(name, ONNX_DTYPE.INT64, dims, bytesOf(BigInt64Array.from(values, (v) => BigInt(v))));
  }

  /** A small constant initializer named after the scope (shapes, axes, scalars). */
  constI64(values: readonly number[], scalar = false): string {
    return this.i64(this.fresh('const'), scalar ? [] : [values.length], values);
  }

  constF32(value: number): string {
    return this.f32(this.fresh('const'), [], Float32Array.of(value));
  }

  graph(name: string, inputs: readonly ValueInfoSpec[], outputs: readonly ValueInfoSpec[]): GraphSpec {
    return { name, nodes: this.nodes, initializers: this.initializers, inputs, outputs };
  }
}

/** The little-endian bytes of a typed array (a view on the same memory; every platform Node runs on is little-endian). */
export function bytesOf(a: Float32Array | BigInt64Array | Int8Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Signed 4-bit values in ONNX INT4 raw layout: element 2k in the low nibble of byte k, 2k+1 in the high one. */
export function packInt4(q: Int8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(q.length / 2));
  for (let i = 0; i < q.length; i++) out[i >> 1]! |= (q[i]! & 0xf) << ((i & 1) * 4);
  return out;
}

/** Row-major [rows, cols] -> [cols, rows]. */
export function transpose<T extends Float32Array | Int8Array | Uint8Array>(a: T, rows: number, cols: number, make: (n: number) => T): T {
  const out = make(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}
