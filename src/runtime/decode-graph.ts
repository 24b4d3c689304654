// Batch-1 decoding replayed from a recorded graph. Each decode step is the same ~300 kernels with only the
// token id and the position changing, and queueing them one by one costs the host more than the device
// needs to run them. So the step is recorded once (CUDA graph) with the token and position read from
// device buffers, and every later step writes those two values and launches the recording.
//
// The first step runs eagerly (it compiles kernels and plans GEMMs, which must not happen while
// recording), the second records and launches, the rest only launch. On a backend without graphs every
// step runs eagerly through the same device-position forward (which is how the CPU tests it). Greedy decoding takes the argmax on
// the device and reads back one int32; sampling reads back the float32 logits row.
//
// Greedy steps also feed themselves on the device: each writes its argmax into the input token buffer, logs
// it at its position in `produced` and advances the device position, so greedySteps() launches many steps
// back to back and reads their tokens with one copy, instead of a host round trip (write token, launch,
// wait, read) per token.
//
// Where the backend runs a whole decode step as one kernel (decode-fused.ts: CUDA, 16-bit Llama-style models
// without hooks), every step is that kernel instead of the eager step and the recording: it reads and writes
// the same device buffers (token, position, produced log, KV cache), so the two kinds of step mix freely.
// MOPT_FUSED_DECODE=0 (or `fused: false`) keeps the recorded multi-kernel step.

import type { DecoderLM, DevicePosition } from '../models/decoder.js';
import type { KVCache } from '../models/kv-cache.js';
import { canCaptureGraphs, type DecodeStepKernel, type RecordedGraph } from '../backend/backend.js';
import { Tensor, add, argmax, keep, reshape, scatterInto, slice, tensor, tidy, zeros } from '../tensor/index.js';
import { fusedDecodeStep } from './decode-fused.js';

export type StepOutput = { kind: 'token'; id: number } | { kind: 'logits'; row: Float32Array };

export class GraphDecoder {
  private readonly pos: DevicePosition;
  private readonly ids: Tensor;
  /** greedy: int32 [capacity], the token each step chose, at the position it was fed at */
  private readonly produced: Tensor | null;
  /** int32 [1] one: the position increment (made before recording: a recording cannot copy from the host) */
  private readonly one: Tensor;
  private graph: RecordedGraph | null = null;
  private out: Tensor | null = null;
  private steps = 0;
  /** the whole-step kernel, once made (undefined: not tried yet; null: the model does not qualify) */
  private fused: DecodeStepKernel | null | undefined;
  /** the kernel's `next` output when this.out is its logits row */
  private fusedExtra: Tensor | null = null;

  /** Whether a model's decode steps can be recorded: a backend with graphs, and no hooks (they may read the host). */
  static supports(model: DecoderLM): boolean {
    return canCaptureGraphs(model.backend) && model.linearHook === null && model.kvHook === null;
  }

  constructor(
    private readonly model: DecoderLM,
    private readonly cache: KVCache,
    readonly greedy: boolean,
    private readonly opts: { fused?: boolean } = {},
  ) {
    if (cache.batch !== 1) throw new RangeError(`GraphDecoder: batch-1 decoding only, the cache has batch ${cache.batch}`);
    this.pos = model.devicePosition(cache.capacity);
    this.ids = keep(zeros([1, 1], { dtype: 'int32', device: model.backend }));
    this.produced = greedy ? keep(zeros([cache.capacity], { dtype: 'int32', device: model.backend })) : null;
    this.one = keep(tensor([1], [1], { dtype: 'int32', device: model.backend }));
  }

  /** Feeds `token` at position cache.length; returns the next token (greedy) or the next-token logits. */
  step(token: number): StepOutput {
    if (this.cache.length >= this.cache.capacity) throw new RangeError(`KV cache full: capacity ${this.cache.capacity}`);
    this.feed(token);
    const out = this.runStep();
    const result = this.read(out);
    if (out !== this.out) out.dispose();
    return result;
  }

  /**
   * Greedy only: feeds `token` at position cache.length and runs n steps, each step's argmax becoming the
   * next step's input on the device; returns the n tokens (read back once, at the end).
   */
  greedySteps(token: number, n: number): number[] {
    if (this.produced === null) throw new RangeError('greedySteps: this decoder samples (it was made with greedy = false)');
    if (this.cache.length + n > this.cache.capacity) throw new RangeError(`KV cache full: ${this.cache.length} + ${n} steps > capacity ${this.cache.capacity}`);
    const start = this.cache.length;
    this.feed(token);
    for (let i = 0; i < n; i++) {
      const out = this.runStep();
      if (out !== this.out) out.dispose();
    }
    return tidy(() => Array.from(slice(this.produced!, 0, start, start + n).toArray(), Number));
  }

  /** Writes the input token and the position to their device buffers. */
  private feed(token: number): void {
    const backend = this.model.backend;
    tidy(() => {
      backend.copy(tensor([token], [1, 1], { dtype: 'int32', device: backend }), this.ids);
      backend.copy(tensor([this.cache.length], [1], { dtype: 'int32', device: backend }), this.pos.at);
    });
  }

  /** One step from the device buffers: the whole-step kernel, or eager the first time and then the recording. */
  private runStep(): Tensor {
    const backend = this.model.backend;
    if (this.fusedStep() !== null) {
      this.steps++;
      this.fused!.launch();
      this.cache.length += 1;
      return this.out!;
    }
    if (this.steps++ === 0 || !canCaptureGraphs(backend)) {
      // eager: compiles what the recording needs
      const out = tidy(() => this.forward());
      this.cache.length += 1;
      return out;
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
    return this.out!;
  }

  /** The whole-step kernel and its output tensor (this.out), made on first use; null where it does not apply. */
  private fusedStep(): DecodeStepKernel | null {
    if (this.fused !== undefined) return this.fused;
    this.fused = null;
    if (this.opts.fused === false || process.env.MOPT_FUSED_DECODE === '0') return null;
    const b = this.model.backend;
    const next = keep(zeros([1], { dtype: 'int32', device: b }));
    const logits = this.greedy ? null : keep(zeros([this.model.config.vocabSize], { dtype: 'float32', device: b }));
    let k: DecodeStepKernel | null = null;
    try {
      k = fusedDecodeStep(this.model, this.cache, { pos: this.pos, ids: this.ids, next, produced: this.produced, logits });
    } finally {
      if (k === null) {
        next.dispose();
        logits?.dispose();
      }
    }
    if (k === null) return null;
    this.out?.dispose();
    this.out = logits ?? next;
    this.fusedExtra = logits === null ? null : next; // written by every step, read by none when sampling
    this.fused = k;
    return k;
  }

  dispose(): void {
    this.out?.dispose();
    this.out = null;
    this.fused?.dispose();
    this.fused = null;
    this.fusedExtra?.dispose();
    this.fusedExtra = null;
    try {
      this.graph?.dispose();
    } finally {
      this.graph = null;
      this.ids.dispose();
      this.produced?.dispose();
      this.one.dispose();
      this.pos.dispose();
    }
  }

  /** The step's device output, kept past the tidy scope: the argmax id or the float32 logits row. */
  private forward(): Tensor {
    const logits = this.model.forward(this.ids, { cache: this.cache, lastOnly: true, position: this.pos });
    const row = reshape(logits, [logits.size]);
    if (this.produced === null) return keep(row.cast('float32'));
    // greedy: the argmax becomes the next input, is logged at this position, and the position advances
    const next = argmax(row, 0, true); // int32 [1]
    const backend = this.model.backend;
    scatterInto(this.produced, 0, this.pos.at, next);
    backend.copy(reshape(next, [1, 1]), this.ids);
    backend.copy(add(this.pos.at, this.one), this.pos.at);
    return keep(next);
  }

  private read(out: Tensor): StepOutput {
    return this.greedy ? { kind: 'token', id: out.toArray()[0] } : { kind: 'logits', row: out.toFloat32Array() };
  }
}
