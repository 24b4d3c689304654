// What a serving loop keeps between greedy generate() calls on one model: the KV cache, the step decoder
// (with its whole-step kernel or recorded step) and, per prompt length, the recorded prefill.
//
// Why: a generate() of its own allocates a cache, builds the step kernel's tables and runs the prompt's
// prefill eagerly: ~300 kernels and GEMMs queued one by one from JavaScript, 6-20 ms of host time for a
// 16-token prompt of Llama-3.2-1B on the H200 (the device needs ~2 ms of it), ~8% of a 256-token generation.
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

export class DecodeSession {
  private cache: KVCache | null = null;
  private decoder: GraphDecoder | null = null;
  private greedy = true;
  /** per prompt length: null once run eagerly (kernels compiled, GEMMs planned), then the recording */
  private readonly prefills = new Map<number, PrefillGraph | null>();
  /** the parameters' storages when the decoder and recordings were made (they hold those addresses) */
  private weights: (Storage | null)[] = [];
  private disposed = false;

  constructor(readonly model: DecoderLM) {}

  /**
   * The session's cache, emptied, with room for `positions`, and its step decoder (null where steps
   * cannot be recorded: generate() then runs them eagerly). A larger need or another sampling kind
   * replaces both (and the prefill recordings, which write into the cache).
   */
  begin(positions: number, greedy: boolean, graphs: boolean): { cache: KVCache; decoder: GraphDecoder | null } {
    if (this.disposed) throw new RangeError('DecodeSession: used after dispose()');
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
    return { cache: this.cache, decoder: this.decoder };
  }

  /**
   * Greedy only, right after begin(): the prompt's prefill into the cache and its next token. The first
   * prefill at a length runs eagerly; the second is recorded and replayed, and so is every later one.
   */
  prefillGreedy(prompt: readonly number[]): number {
    const cache = this.cache;
    if (cache === null || cache.length !== 0 || !this.greedy) throw new RangeError('DecodeSession.prefillGreedy: call begin() with greedy decoding first');
    const model = this.model;
    const T = prompt.length;
    const seen = this.prefills.get(T);
    if (seen === undefined || !canCaptureGraphs(model.backend) || this.decoder === null) {
      // eager: compiles the kernels and plans the GEMMs a recording needs
      if (this.decoder !== null) this.prefills.set(T, null);
      return greedyPrefill(model, cache, prompt);
    }
    let p = seen;
    if (p === null) {
      const ids = keep(zeros([1, T], { dtype: 'int32', device: model.backend }));
      const rope = tidy(() => {
        const r = model.ropeRows(0, T);
        return { cos: keep(r.cos), sin: keep(r.sin) };
      });
      const out: { next: Tensor | null } = { next: null };
      try {
        const graph = model.backend.captureGraph(() => {
          out.next = tidy(() => keep(forwardArgmax(model, cache, ids, rope)));
        });
        if (out.next === null) throw new Error('DecodeSession: the prefill recording produced no token');
        p = { ids, rope, next: out.next, graph };
      } catch (e) {
        out.next?.dispose();
        ids.dispose();
        rope.cos.dispose();
        rope.sin.dispose();
        throw e;
      }
      this.prefills.set(T, p);
      cache.truncate(0); // recording ran the forward's host side (which advanced the cache), not its kernels
    }
    tidy(() => model.backend.copy(tensor(prompt, [1, T], { dtype: 'int32', device: model.backend }), p.ids));
    p.graph.launch();
    cache.advance(T);
    return p.next.toArray()[0];
  }

  /** How many prompt lengths have a recorded prefill. */
  get recordedPrefills(): number {
    let n = 0;
    for (const p of this.prefills.values()) if (p !== null) n++;
    return n;
  }

  /** Frees the cache, the step decoder and the recordings; the session cannot be used afterwards. */
  dispose(): void {
    this.disposed = true;
    this.release();
  }

  private release(): void {
    try {
      for (const p of this.prefills.values()) {
        if (p === null) continue;
        p.next.dispose();
        p.graph.dispose();
        p.ids.dispose();
        p.rope.cos.dispose();
        p.rope.sin.dispose();
      }
      this.prefills.clear();
      this.decoder?.dispose();
    } finally {
      this.decoder = null;
      this.cache?.dispose();
      this.cache = null;
    }
  }
}
