// An ONNX Runtime session that the synchronous model interface (LogitsModel.forward) can call.
// onnxruntime-node is not a dependency of mopt (its package is ~110 MB with every platform's binaries; it is
// loaded only when an ONNX model is run, from wherever Node resolves it beside mopt or from the directory
// MOPT_ONNXRUNTIME_DIR names). Its public API is asynchronous (InferenceSession.create / run return
// promises), while mopt's forward, perplexity and generation are synchronous, so the session lives in a
// worker thread (onnx-worker.ts): this side posts a request, blocks on a shared flag with Atomics.wait until
// the worker has posted the answer, and takes it with receiveMessageOnPort; the logits buffer is transferred,
// not copied.

import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { UserError } from '../util/errors.js';

/** The onnxruntime-node version mopt is tested with (test/onnxruntime/package.json pins it). */
export const ORT_VERSION = '1.30.0';
export const ORT_DIR_ENV = 'MOPT_ONNXRUNTIME_DIR';
export const ORT_INSTALL_HINT =
  `install it beside mopt with \`ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node@${ORT_VERSION}\` (the variable skips its CUDA ` +
  `download; the CPU build is in the npm package), or set ${ORT_DIR_ENV} to a directory whose node_modules holds it`;

/** Flag states (element 0 of an Int32Array [2] on a SharedArrayBuffer; element 1 is the worker's heartbeat). */
export const FLAG = { WAITING: 0, ANSWERED: 1, EXITED: 2 } as const;
/** The worker bumps the heartbeat this often; a caller that sees none for DEAD_AFTER_MS gives up on it. */
export const HEARTBEAT_MS = 200;
const DEAD_AFTER_MS = 15_000;

/** The worker thread died or stopped answering: the session cannot be used again. */
class WorkerGone extends Error {}

export interface WorkerInit {
  modelPath: string;
  /** session configuration entries, without their `session.` prefix (e.g. disable_quant_qdq: '1') */
  sessionConfig: Record<string, string>;
  /** MOPT_ONNXRUNTIME_DIR, read on this side so the worker does not depend on its own environment copy */
  searchDir: string | null;
  port: MessagePort;
  flag: Int32Array;
}

export interface RunRequest {
  ids: BigInt64Array;
  dims: [number, number];
}

export type Reply =
  | { kind: 'ready'; version: string }
  | { kind: 'logits'; data: Float32Array; dims: number[] }
  | { kind: 'missing' }
  | { kind: 'error'; message: string };

export class OrtSession {
  private closed = false;

  private constructor(private readonly worker: Worker, private readonly port: MessagePort, private readonly flag: Int32Array, readonly version: string) {}

  /**
   * Starts the worker and loads the model on the CPU execution provider with every graph optimization and
   * `sessionConfig` (session.* entries); throws a UserError when onnxruntime-node is missing or refuses the model.
   */
  static open(modelPath: string, sessionConfig: Record<string, string>): OrtSession {
    const { port1, port2 } = new MessageChannel();
    const flag = new Int32Array(new SharedArrayBuffer(8));
    const init: WorkerInit = { modelPath, sessionConfig, searchDir: process.env[ORT_DIR_ENV] ?? null, port: port2, flag };
    const worker = new Worker(new URL('./onnx-worker.js', import.meta.url), { workerData: init, transferList: [port2] });
    worker.unref(); // a CLI run ends when its command does, whether or not the session was closed
    let first: Reply;
    try {
      first = answer(port1, flag);
    } catch (e) {
      void worker.terminate();
      port1.close();
      throw new UserError(`${modelPath}: ONNX Runtime could not be started: ${(e as Error).message}`);
    }
    if (first.kind === 'ready') return new OrtSession(worker, port1, flag, first.version);
    void worker.terminate();
    port1.close();
    if (first.kind === 'missing') throw new UserError(`${modelPath} is an ONNX model; running it needs onnxruntime-node, which is not installed: ${ORT_INSTALL_HINT}`);
    throw new UserError(`${modelPath}: ONNX Runtime cannot load it: ${first.kind === 'error' ? first.message : first.kind}`);
  }

  /** logits for int64 ids [batch, seq] */
  run(ids: BigInt64Array, batch: number, seq: number): { data: Float32Array; dims: number[] } {
    if (this.closed) throw new Error('OrtSession.run after close() (or after its worker thread died)');
    const req: RunRequest = { ids, dims: [batch, seq] };
    this.port.postMessage(req);
    let r: Reply;
    try {
      r = answer(this.port, this.flag);
    } catch (e) {
      if (e instanceof WorkerGone) this.close(); // nothing would answer the next request
      throw e;
    }
    if (r.kind === 'logits') return r;
    throw new Error(`ONNX Runtime: ${r.kind === 'error' ? r.message : r.kind}`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.port.close();
    void this.worker.terminate();
  }
}

/**
 * Blocks until the worker has posted its answer, then takes it off the port. Throws WorkerGone when the
 * worker exited or its heartbeat stopped (a thread that died before its exit handler ran, e.g. of a failed
 * import or out of memory, never sets the flag), so a caller never waits forever.
 */
function answer(port: MessagePort, flag: Int32Array): Reply {
  let beat = Atomics.load(flag, 1);
  let seen = Date.now();
  while (Atomics.load(flag, 0) === FLAG.WAITING) {
    Atomics.wait(flag, 0, FLAG.WAITING, 500);
    const b = Atomics.load(flag, 1);
    if (b !== beat) {
      beat = b;
      seen = Date.now();
    } else if (Date.now() - seen > DEAD_AFTER_MS) {
      throw new WorkerGone(`the ONNX Runtime worker thread stopped responding (no heartbeat for ${DEAD_AFTER_MS / 1000} s)`);
    }
  }
  const state = Atomics.load(flag, 0);
  const m = receiveMessageOnPort(port);
  if (m === undefined) {
    if (state === FLAG.EXITED) throw new WorkerGone('the ONNX Runtime worker thread exited without answering');
    Atomics.store(flag, 0, FLAG.WAITING);
    throw new Error('the ONNX Runtime worker signalled an answer but posted none');
  }
  if (state !== FLAG.EXITED) Atomics.store(flag, 0, FLAG.WAITING);
  return m.message as Reply;
}
