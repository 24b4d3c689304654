// Batch-1 decoding replayed from a recorded graph. Each decode step is the same ~300 kernels with only the
// token id and the position changing, and queueing them one by one costs the host more than the device
// needs to run them. So the step is recorded once (CUDA graph) with the token and position read from
// device buffers, and every later step writes those two values and launches the recording.
//
// The first step runs eagerly (it compiles kernels and plans GEMMs, which must not happen while
// recording), the second records and launches, the rest only launch. On a backend without graphs every
// step runs eagerly through the same device-position forward (which is how the CPU tests it). Greedy decoding takes the argmax on
// the device and reads back one int32; sampling reads back the float32 logits row.

import type { DecoderLM, DevicePosition } from '../models/decoder.js';
import type { KVCache } from '../models/kv-cache.js';
import { canCaptureGraphs, type RecordedGraph } from '../backend/backend.js';
import { Tensor, argmax, keep, reshape, tensor, tidy, zeros } from '../tensor/index.js';

export type StepOutput = { kind: 'token'; id: number } | { kind: 'logits'; row: Float32Array };

export class GraphDecoder {
  private readonly pos: DevicePosition;
  private readonly ids: Tensor;
  private graph: RecordedGraph | null = null;
  private out: Tensor | null = null;
  private steps = 0;

  /** Whether a model's decode steps can be recorded: a backend with graphs, and no hooks (they may read the host). */
  static supports(model: DecoderLM): boolean {
    return canCaptureGraphs(model.backend) && model.linearHook === null && model.kvHook === null;
  }

  constructor(
    private readonly model: DecoderLM,
    private readonly cache: KVCache,
    private readonly greedy: boolean,
  ) {
    if (cache.batch !== 1) throw new RangeError(`GraphDecoder: batch-1 decoding only, the cache has batch ${cache.batch}`);
    this.pos = model.devicePosition(cache.capacity);
    this.ids = keep(zeros([1, 1], { dtype: 'int32', device: model.backend }));
  }

  /** Feeds `token` at position cache.length; returns the next token (greedy) or the next-token logits. */
  step(token: number): StepOutput {
    if (this.cache.length >= this.cache.capacity) throw new RangeError(`KV cache full: capacity ${this.cache.capacity}`);
    const backend = this.model.backend;
    tidy(() => {
      backend.copy(tensor([token], [1, 1], { dtype: 'int32', device: backend }), this.ids);
      backend.copy(tensor([this.cache.length], [1], { dtype: 'int32', device: backend }), this.pos.at);
    });
    if (this.steps++ === 0 || !canCaptureGraphs(backend)) {
      // eager: compiles what the recording needs
      const out = tidy(() => this.forward());
      const result = this.read(out);
      out.dispose();
      this.cache.length += 1;
      return result;
    }
    if (this.graph === null) {
      try {
        this.graph = backend.captureGraph(() => {
          this.out = tidy(() => this.forward());
        });
      } catch (e) {
        // the recording failed: its output was never computed, and its memory must go back with the pool
        this.out?.dispose();
        this.out = null;
        throw e;
      }
    }
    this.graph.launch();
    this.cache.length += 1;
    return this.read(this.out!);
  }

  dispose(): void {
    this.out?.dispose();
    this.out = null;
    try {
      this.graph?.dispose();
    } finally {
      this.graph = null;
      this.ids.dispose();
      this.pos.dispose();
    }
  }

  /** The step's device output, kept past the tidy scope: the argmax id or the float32 logits row. */
  private forward(): Tensor {
    const logits = this.model.forward(this.ids, { cache: this.cache, lastOnly: true, position: this.pos });
    const row = reshape(logits, [logits.size]);
    return keep(this.greedy ? argmax(row, 0) : row.cast('float32'));
  }

  private read(out: Tensor): StepOutput {
    return this.greedy ? { kind: 'token', id: out.toArray()[0] } : { kind: 'logits', row: out.toFloat32Array() };
  }
}
