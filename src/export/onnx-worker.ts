// The worker thread that owns one ONNX Runtime session (onnx-runtime.ts says why it is a thread): it finds
// onnxruntime-node, creates the session on the CPU execution provider, answers 'ready', then answers each run
// request with the logits. Every answer is posted before the shared flag is set, so the blocked caller finds
// it on its port when it wakes.

import { workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FLAG, HEARTBEAT_MS, type Reply, type RunRequest, type WorkerInit } from './onnx-runtime.js';

/** The part of onnxruntime-node's API used here (mopt has no compile-time dependency on its types). */
interface OrtTensor {
  readonly data: unknown;
  readonly dims: readonly number[];
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor | undefined>>;
}
interface OrtModule {
  InferenceSession: { create(path: string, options: Record<string, unknown>): Promise<OrtSession> };
  Tensor: new (type: 'int64', data: BigInt64Array, dims: readonly number[]) => OrtTensor;
}

const init = workerData as WorkerInit;

function reply(r: Reply, transfer: ArrayBuffer[] = []): void {
  init.port.postMessage(r, transfer);
  Atomics.store(init.flag, 0, FLAG.ANSWERED);
  Atomics.notify(init.flag, 0);
}

// the caller's liveness check (onnx-runtime.ts answer): a dead thread stops bumping it
setInterval(() => Atomics.add(init.flag, 1, 1), HEARTBEAT_MS);

process.on('exit', () => {
  Atomics.store(init.flag, 0, FLAG.EXITED);
  Atomics.notify(init.flag, 0);
});

/** onnxruntime-node as Node resolves it from mopt's install, else from MOPT_ONNXRUNTIME_DIR; null when neither has it. */
function loadOrt(): { ort: OrtModule; version: string } | null {
  const bases = [import.meta.url, ...(init.searchDir === null ? [] : [pathToFileURL(join(init.searchDir, 'package.json')).href])];
  for (const base of bases) {
    const req = createRequire(base);
    let main: string;
    try {
      main = req.resolve('onnxruntime-node');
    } catch {
      continue;
    }
    const ort = req(main) as Partial<OrtModule>;
    if (typeof ort.InferenceSession?.create !== 'function' || typeof ort.Tensor !== 'function') throw new Error(`${main} does not look like onnxruntime-node`);
    const pkg = req(join(main, '..', '..', 'package.json')) as { version?: unknown };
    return { ort: ort as OrtModule, version: String(pkg.version) };
  }
  return null;
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

async function serve(): Promise<void> {
  const loaded = loadOrt();
  if (loaded === null) {
    reply({ kind: 'missing' });
    return;
  }
  const { ort, version } = loaded;
  // errors only in the log: ONNX Runtime's warnings (e.g. about unused initializers) would interleave with mopt's output
  const session = await ort.InferenceSession.create(init.modelPath, {
    executionProviders: ['cpu'],
    logSeverityLevel: 3,
    extra: { session: init.sessionConfig },
  });
  init.port.on('message', (req: RunRequest) => {
    let feeds: Record<string, OrtTensor>;
    try {
      feeds = { input_ids: new ort.Tensor('int64', req.ids, req.dims) };
    } catch (e) {
      reply({ kind: 'error', message: message(e) }); // answered, not thrown: a throw here would end the thread
      return;
    }
    session.run(feeds).then(
      (out) => {
        const logits = out.logits;
        if (logits === undefined || !(logits.data instanceof Float32Array)) {
          reply({ kind: 'error', message: 'the model has no float32 output named logits' });
          return;
        }
        const data = new Float32Array(logits.data); // a copy this thread owns, so its buffer can be transferred
        reply({ kind: 'logits', data, dims: [...logits.dims] }, [data.buffer]);
      },
      (e: unknown) => reply({ kind: 'error', message: message(e) }),
    );
  });
  reply({ kind: 'ready', version });
}

serve().catch((e: unknown) => reply({ kind: 'error', message: message(e) }));
