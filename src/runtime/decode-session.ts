// What a serving loop keeps between greedy generate() calls on one model: the KV cache, the step decoder
// (with its whole-step kernel or recorded step) and, per prompt length, the recorded prefill.
//
// Why: a generate() of its own allocates a cache, builds the step kernel's tables and runs the prompt's
// prefill eagerly: ~300 kernels and GEMMs queued one by one from JavaScript, a first token after 7-24 ms for a
// 16-token prompt of Llama-3.2-1B on the H200 (bench/first-token.ts, bench/mopt_bench.ts), ~10% of a 256-token
// generation; with a session the first token came after 1.8 ms (docs/benchmarks.md, 2026-11-29 16:38).
// With a session, the second prefill at a length is recorded as a CUDA graph (prompt ids read from a device
// buffer, the argmax taken on the device), and every later one is a replay and a 4-byte read-back; the cache
// and the step decoder are made once. A session holds its device memory until dispose() (generate() alone
// frees everything it made when it returns). On a backend without graphs the session still reuses the cache.
// The step kernel and the recordings read the weights where they were: in-place updates (a training step) are
// seen, and a parameter replaced by another tensor (or a hook set) makes the next call rebuild them.
//
//   const session = new DecodeSession(model);
//   try { for (const p of prompts) generate(model, p, { maxNewTokens: 256, greedy: true, session }); }
//   finally { session.dispose(); }

import type { DecoderLM } from '../models/decoder.js';
import type { KVCache } from '../models/kv-cache.js';
import { canCaptureGraphs, type RecordedGraph, type Storage } from '../backend/backend.js';
import { Tensor, argmax, keep, reshape, tensor, tidy, zeros } from '../tensor/index.js';
import { GraphDecoder } from './decode-graph.js';

/** Cache capacities grow in steps of this many positions, so nearby lengths share one cache and its recordings. */
const CAPACITY_STEP = 256;

/** One prompt length's recorded prefill: ids [1, T] in, the greedy next token (int32 [1]) out. */
interface PrefillGraph {
  ids: Tensor;
  /** the RoPE rows of positions 0 .. T - 1 (a recording cannot upload them) */
  rope: { cos: Tensor; sin: Tensor };
  next: Tensor;
  graph: RecordedGraph;
}

/** The argmax (int32 [1], first index on ties, NaN wins) of the logits after the last of ids [1, T], cached. */
function forwardArgmax(model: DecoderLM, cache: KVCache, ids: Tensor, rope?: { cos: Tensor; sin: Tensor }): Tensor {
  const logits = model.forward(ids, { cache, lastOnly: true, rope });
  return argmax(reshape(logits, [logits.size]), 0, true);
}

/**
 * The prompt's prefill into the cache, eagerly, and its greedy next token: the argmax is taken on the device
 * and 4 bytes read back, not the float32 logits row (0.5 MB for a 128K vocabulary, and an argmax on the host).
 */
export function greedyPrefill(model: DecoderLM, cache: KVCache, prompt: readonly number[]): number {
  return tidy(() => forwardArgmax(model, cache, tensor(prompt, [1, prompt.length], { dtype: 'int32', device: model.backend })).toArray()[0]);
}

/** Prompt lengths whose recorded prefill a session keeps (least recently used first out): each holds a pool. */
const MAX_RECORDED = 8;

/** Runs every step, even after one throws; rethrows the first error. */
function runAll(steps: (() => void)[]): void {
  let first: unknown = null;
  for (const step of steps) {
    try {
      step();
    } catch (e) {
      first ??= e;
    }
  }
  if (first !== null) throw first;
}

export class DecodeSession {
  private cache: KVCache | null = null;
  private decoder: GraphDecoder | null = null;
  private greedy = true;
  /**
   * per prompt length, in least-recently-used order: 'seen' once run eagerly (kernels compiled, GEMMs
   * planned), then the recording; 'eager' where recording failed (that length stays eager)
   */
  private readonly prefills = new Map<number, PrefillGraph | 'seen' | 'eager'>();
  /** the parameters' storages when the decoder and recordings were made (they hold those addresses) */
  private weights: (Storage | null)[] = [];
  /** why the last recording that failed did (that length then stays eager); null if none failed */
  recordingError: unknown = null;
  /** a generate() call is between begin() and end() */
  private active = false;
  private disposed = false;

  constructor(readonly model: DecoderLM) {}

  /**
   * The session's cache, emptied, with room for `positions`, and its step decoder (null where steps
   * cannot be recorded: generate() then runs them eagerly). A larger need, another sampling kind or a
   * replaced parameter replaces both (and the prefill recordings, which write into the cache). One call at a
   * time: end() closes it.
   */
  begin(positions: number, greedy: boolean, graphs: boolean): { cache: KVCache; decoder: GraphDecoder | null } {
    if (this.disposed) throw new RangeError('DecodeSession: used after dispose()');
    if (this.active) throw new RangeError('DecodeSession: already in use by a generate() call (a session serves one call at a time)');
    const canRecord = graphs && GraphDecoder.supports(this.model);
    const weights = this.model.parameters().map((p) => (p.isDisposed ? null : p.storage));
    const moved = weights.length !== this.weights.length || weights.some((w, i) => w !== this.weights[i]);
    if (this.cache === null || this.cache.capacity < positions || greedy !== this.greedy || canRecord !== (this.decoder !== null) || moved) {
      this.release();
      this.weights = weights;
      const max = this.model.config.maxPositionEmbeddings;
      const capacity = Math.max(positions, Math.min(Math.ceil(positions / CAPACITY_STEP) * CAPACITY_STEP, max));
      this.cache = this.model.newCache(1, capacity);
      this.greedy = greedy;
      this.decoder = canRecord ? new GraphDecoder(this.model, this.cache, greedy) : null;
    }
    this.cache.truncate(0);
    this.active = true;
    return { cache: this.cache, decoder: this.decoder };
  }

  /** Closes the call begin() opened (generate() does, also when it throws). */
  end(): void {
    this.active = false;
  }

  /**
   * Greedy only, right after begin(): the prompt's prefill into the cache and its next token. The first
   * prefill at a length runs eagerly; the second is recorded and replayed, and so is every later one.
   */
  prefillGreedy(prompt: readonly number[]): number {
    const cache = this.cache;
    if (cache === null || cache.length !== 0 || !this.greedy || !this.active) throw new RangeError('DecodeSession.prefillGreedy: call begin() with greedy decoding first');
    const T = prompt.length;
    const known = this.prefills.get(T);
    if (known !== undefined) this.prefills.delete(T); // re-inserted below: most recently used last
    let p: PrefillGraph | null = null;
    if (known === 'seen' && this.decoder !== null && canCaptureGraphs(this.model.backend)) p = this.record(T, cache);
    else if (known !== undefined && known !== 'seen' && known !== 'eager') p = known;
    if (p === null) {
      // eager: the first time compiles the kernels and plans the GEMMs a recording needs
      const next = greedyPrefill(this.model, cache, prompt);
      if (this.decoder !== null) this.remember(T, known === undefined ? 'seen' : 'eager');
      return next;
    }
    this.remember(T, p);
    const backend = this.model.backend;
    tidy(() => backend.copy(tensor(prompt, [1, T], { dtype: 'int32', device: backend }), p.ids));
    p.graph.launch();
    cache.advance(T);
    return p.next.toArray()[0];
  }

  /** How many prompt lengths have a recorded prefill. */
  get recordedPrefills(): number {
    let n = 0;
    for (const p of this.prefills.values()) if (typeof p !== 'string') n++;
    return n;
  }

  /** Frees the cache, the step decoder and the recordings; the session cannot be used afterwards. */
  dispose(): void {
    if (this.active) throw new RangeError('DecodeSession: dispose() during a generate() call on it');
    this.disposed = true;
    this.release();
  }

  /**
   * The prefill at length T recorded (the cache's contents are not touched: recording runs no kernel), or
   * null where recording failed. Every tensor the recording makes is freed inside it, so a failed recording's
   * memory pool goes back whole.
   */
  private record(T: number, cache: KVCache): PrefillGraph | null {
    const model = this.model;
    const backend = model.backend;
    if (!canCaptureGraphs(backend)) return null;
    const made: Tensor[] = [];
    const hold = (t: Tensor): Tensor => (made.push(t), t);
    try {
      const ids = hold(keep(zeros([1, T], { dtype: 'int32', device: backend })));
      const next = hold(keep(zeros([1], { dtype: 'int32', device: backend })));
      const rope = tidy(() => {
        const r = model.ropeRows(0, T);
        return { cos: hold(keep(r.cos)), sin: hold(keep(r.sin)) };
      });
      const graph = backend.captureGraph(() => tidy(() => backend.copy(forwardArgmax(model, cache, ids, rope), next)));
      return { ids, rope, next, graph };
    } catch (e) {
      // this length stays eager (prefillGreedy); a fault that is not the recording's resurfaces there
      this.recordingError = e;
      runAll(made.map((t) => () => t.dispose()));
      return null;
    } finally {
      cache.truncate(0); // recording ran the forward's host side (which advanced the cache), not its kernels
    }
  }

  /** Notes what is known of length T as the most recently used; past MAX_RECORDED recordings, frees the oldest. */
  private remember(T: number, p: PrefillGraph | 'seen' | 'eager'): void {
    this.prefills.set(T, p);
    if (this.recordedPrefills <= MAX_RECORDED) return;
    for (const [len, q] of this.prefills) {
      if (typeof q === 'string') continue;
      this.prefills.delete(len);
      this.prefills.set(len, 'seen'); // recorded again on its next use
      freeRecording(q);
      return;
    }
  }

  private release(): void {
    const recordings = [...this.prefills.values()].filter((p): p is PrefillGraph => typeof p !== 'string');
    this.prefills.clear();
    const decoder = this.decoder;
    const cache = this.cache;
    this.decoder = null;
    this.cache = null;
    runAll([...recordings.map((p) => () => freeRecording(p)), () => decoder?.dispose(), () => cache?.dispose()]);
  }
}

/** A recording's graph (which waits for its replays) and the tensors it reads and writes. */
function freeRecording(p: PrefillGraph): void {
  runAll([() => p.graph.dispose(), () => p.next.dispose(), () => p.ids.dispose(), () => p.rope.cos.dispose(), () => p.rope.sin.dispose()]);
}
