// Resumable layer-by-layer calibration: after each stage (a decoder layer, or the final norm + LM head) its
// results and the hidden states the next stage reads are written under OUT/layerwise-progress, so an
// interrupted `mopt quantize --layerwise` re-run with the same command continues after the last finished
// stage and ends with the same state as an uninterrupted run (everything is stored bit-exactly: amax as JSON
// numbers, which round-trip doubles; factors, weights and hidden states as safetensors in their own dtypes).
//
//   progress.json           {format, version, fingerprint, done}: written last, it is the commit point
//   stage-<s>.safetensors   stage s: smoothing factors, algorithm weights (original, quantized, static scales),
//                           its amax values in the header metadata
//   hidden-<s>.safetensors  the inputs of stage s (one tensor per forward batch; a second stream for AWQ clip)
//
// A directory written by a different run (other model files, recipe, calibration windows, options) is
// refused with a UserError naming what differs: mixing two runs' layers would give a state neither would.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readJsonFile, writeJsonAtomic } from '../io/json-file.js';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { fromStorage, keep, type Tensor } from '../tensor/index.js';
import type { Backend } from '../backend/backend.js';
import { UserError } from '../util/errors.js';
import type { StaticScales } from './algorithms/block-quantizer.js';

export const PROGRESS_DIR = 'layerwise-progress';
const FORMAT = 'mopt-layerwise-progress';
const PROGRESS_FILE = 'progress.json';

/** A weight an algorithm quantized: what QuantizedModel.setPrequantized takes. */
export interface PrequantizedWeight {
  original: Float32Array;
  values: Float32Array;
  scales?: StaticScales;
}

/** What one stage contributes to the quantization state. */
export interface StageResult {
  amax: Record<string, number>;
  smooth: Map<string, Float32Array>;
  prequantized: Map<string, PrequantizedWeight>;
}

/** The hidden states a stage reads: the main stream, and the unquantized one where the algorithm needs both. */
export interface Streams {
  quant: Tensor[];
  float: Tensor[] | null;
}

/** What makes two runs the same: each part as a short string (a hash for the large ones). */
export type Fingerprint = Record<string, string>;

export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 16);

/** The checkpoint's files (config.json and safetensors) by name, size and modification time. */
export function checkpointStamp(dir: string): string {
  const files = readdirSync(dir).filter((f) => f === 'config.json' || f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json')).sort();
  return sha256(files.map((f) => {
    const st = statSync(join(dir, f));
    return `${f}:${st.size}:${st.mtimeMs}`;
  }).join('\n'));
}

/** Where the progress of a run writing to `out` lives. */
export function progressDir(out: string): string {
  return join(out, PROGRESS_DIR);
}

/** True when `out` holds nothing but layer-by-layer progress (a resumable run, not someone's files). */
export function onlyProgress(out: string): boolean {
  if (!existsSync(out)) return false;
  const entries = readdirSync(out);
  return entries.length === 1 && entries[0] === PROGRESS_DIR;
}

export class LayerwiseProgress {
  private constructor(readonly dir: string, private readonly fingerprint: Fingerprint, readonly done: number) {}

  /**
   * Opens (or starts) the progress in `dir`: `done` is the number of finished stages, 0 for a fresh start.
   * Progress of a different run is refused.
   */
  static open(dir: string, fingerprint: Fingerprint): LayerwiseProgress {
    const path = join(dir, PROGRESS_FILE);
    if (!existsSync(path)) {
      mkdirSync(dir, { recursive: true });
      return new LayerwiseProgress(dir, fingerprint, 0);
    }
    const d = readJsonFile(path, 'layer-by-layer progress') as { format?: unknown; version?: unknown; fingerprint?: unknown; done?: unknown };
    const fix = `delete ${resolve(dir)} to start over, or re-run the interrupted command unchanged`;
    if (d.format !== FORMAT || d.version !== 1 || typeof d.fingerprint !== 'object' || d.fingerprint === null || typeof d.done !== 'number') {
      throw new UserError(`${path} is not mopt layer-by-layer progress; ${fix}`);
    }
    const saved = d.fingerprint as Record<string, unknown>;
    for (const key of new Set([...Object.keys(saved), ...Object.keys(fingerprint)])) {
      if (saved[key] !== fingerprint[key]) throw new UserError(`${dir} holds the progress of a different run (its ${key} differs); ${fix}`);
    }
    return new LayerwiseProgress(dir, fingerprint, d.done);
  }

  /** Stage s's saved results. */
  readStage(s: number): StageResult {
    const f = SafetensorsFile.open(join(this.dir, stageFile(s)));
    try {
      const amax = JSON.parse(f.metadata['amax'] ?? '{}') as Record<string, number>;
      const smooth = new Map<string, Float32Array>();
      const prequantized = new Map<string, PrequantizedWeight>();
      const f32 = (name: string): Float32Array => f.read(name).data as Float32Array;
      for (const name of f.names()) {
        const [kind, lin] = splitName(name);
        if (kind === 'smooth') smooth.set(lin, f32(name));
        if (kind !== 'values') continue;
        const block = f.has(`block_amax/${lin}`) ? f32(`block_amax/${lin}`) : null;
        const global = f.has(`global_amax/${lin}`) ? Number((f.read(`global_amax/${lin}`).data as Float64Array)[0]) : null;
        prequantized.set(lin, { original: f32(`original/${lin}`), values: f32(name), ...(block === null ? {} : { scales: { blockAmax: block, globalAmax: global } }) });
      }
      return { amax, smooth, prequantized };
    } finally {
      f.close();
    }
  }

  /** The hidden states stage `s` reads, on the backend (kept: the caller disposes them). */
  readHidden(s: number, backend: Backend): Streams {
    const f = SafetensorsFile.open(join(this.dir, hiddenFile(s)));
    try {
      const load = (prefix: string): Tensor[] => {
        const out: Tensor[] = [];
        for (let k = 0; f.has(`${prefix}/${k}`); k++) {
          const t = f.read(`${prefix}/${k}`);
          out.push(keep(fromStorage(t.data, t.shape, t.dtype, { device: backend })));
        }
        return out;
      };
      return { quant: load('quant'), float: f.has('float/0') ? load('float') : null };
    } finally {
      f.close();
    }
  }

  /**
   * Records stage s as finished: its results, then the next stage's inputs (when there is a next stage), then
   * progress.json, each written atomically; a crash in between leaves the previous commit point intact.
   */
  saveStage(s: number, r: StageResult, next: Streams | null): void {
    const tensors = new Map<string, RawTensor>();
    for (const [lin, c] of r.smooth) tensors.set(`smooth/${lin}`, { dtype: 'float32', shape: [c.length], data: c });
    for (const [lin, w] of r.prequantized) {
      tensors.set(`original/${lin}`, { dtype: 'float32', shape: [w.original.length], data: w.original });
      tensors.set(`values/${lin}`, { dtype: 'float32', shape: [w.values.length], data: w.values });
      if (w.scales === undefined) continue;
      tensors.set(`block_amax/${lin}`, { dtype: 'float32', shape: [w.scales.blockAmax.length], data: w.scales.blockAmax });
      if (w.scales.globalAmax !== null) tensors.set(`global_amax/${lin}`, { dtype: 'float64', shape: [], data: Float64Array.of(w.scales.globalAmax) });
    }
    writeSafetensors(join(this.dir, stageFile(s)), tensors, { amax: JSON.stringify(r.amax) });
    if (next !== null) {
      const hidden = new Map<string, RawTensor>();
      const put = (prefix: string, ts: readonly Tensor[]): void => ts.forEach((t, k) => hidden.set(`${prefix}/${k}`, { dtype: t.dtype, shape: [...t.shape], data: t.toStorageArray() }));
      put('quant', next.quant);
      if (next.float !== null) put('float', next.float);
      writeSafetensors(join(this.dir, hiddenFile(s + 1)), hidden);
    }
    writeJsonAtomic(join(this.dir, PROGRESS_FILE), { format: FORMAT, version: 1, fingerprint: this.fingerprint, done: s + 1 });
    rmSync(join(this.dir, hiddenFile(s)), { force: true }); // stage s's inputs are no longer needed
  }

  /** Removes the progress (the run's outputs are written). */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const pad = (s: number): string => String(s).padStart(5, '0');
const stageFile = (s: number): string => `stage-${pad(s)}.safetensors`;
const hiddenFile = (s: number): string => `hidden-${pad(s)}.safetensors`;

function splitName(name: string): [string, string] {
  const i = name.indexOf('/');
  return [name.slice(0, i), name.slice(i + 1)];
}
