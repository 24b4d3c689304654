// Calibration and held-out token windows from a text file, tokenized with the model's tokenizer.
// Accepted files: plain UTF-8 text; .jsonl with one JSON string or {"text": ...} object per line; .json with
// an array of those. Documents are tokenized one by one (each gets the tokenizer's BOS, as at inference) and
// concatenated; the stream is cut into windows of seqLen tokens. The first `samples` windows calibrate; the
// windows after them are the held-out text a report can score when no separate evaluation file is given.

import { existsSync, readFileSync } from 'node:fs';
import type { Tokenizer } from '../io/tokenizer.js';
import { UserError } from '../util/errors.js';

/** The documents of a calibration/evaluation file, in order; empty documents dropped. */
export function readDocuments(path: string): string[] {
  if (!existsSync(path)) throw new UserError(`${path} does not exist`);
  const raw = readFileSync(path, 'utf8');
  const textOf = (v: unknown, where: string): string => {
    if (typeof v === 'string') return v;
    if (typeof v === 'object' && v !== null && typeof (v as { text?: unknown }).text === 'string') return (v as { text: string }).text;
    throw new UserError(`${path}: ${where}: expected a string or an object with a "text" string`);
  };
  let docs: string[];
  if (path.endsWith('.jsonl')) {
    docs = raw.split('\n').map((line, i) => [line.trim(), i] as const).filter(([l]) => l !== '').map(([line, i]) => {
      try {
        return textOf(JSON.parse(line), `line ${i + 1}`);
      } catch (e) {
        if (e instanceof UserError) throw e;
        throw new UserError(`${path}: line ${i + 1} is not valid JSON`);
      }
    });
  } else if (path.endsWith('.json')) {
    let data: unknown;
    try {
      data = JSON.parse(raw);
    } catch {
      throw new UserError(`${path} is not valid JSON`);
    }
    if (!Array.isArray(data)) throw new UserError(`${path}: expected a JSON array of strings or {"text": ...} objects`);
    docs = data.map((v, i) => textOf(v, `item ${i}`));
  } else {
    docs = [raw];
  }
  docs = docs.filter((d) => d.trim() !== '');
  if (docs.length === 0) throw new UserError(`${path} holds no text`);
  return docs;
}

/**
 * Token windows of exactly seqLen tokens: tokenizes documents until `windows` windows are filled (or the
 * documents run out). Long documents are tokenized in growing prefixes, so a large file costs only what is used.
 */
export function tokenWindows(tok: Tokenizer, docs: readonly string[], seqLen: number, windows: number): number[][] {
  const need = seqLen * windows;
  const ids: number[] = [];
  for (const d of docs) {
    if (ids.length >= need) break;
    for (const id of encodeAtLeast(tok, d, need - ids.length)) ids.push(id); // no spread: documents can be long
  }
  const out: number[][] = [];
  for (let i = 0; i + seqLen <= ids.length && out.length < windows; i += seqLen) out.push(ids.slice(i, i + seqLen));
  return out;
}

/** The tokens of text, or of a prefix of it (cut at a line break) with at least n tokens. */
function encodeAtLeast(tok: Tokenizer, text: string, n: number): number[] {
  for (let chars = Math.max(1024, n * 8); ; chars *= 2) {
    if (chars >= text.length) return tok.encode(text);
    const nl = text.lastIndexOf('\n', chars);
    const ids = tok.encode(text.slice(0, nl > 0 ? nl : chars));
    if (ids.length >= n) return ids;
  }
}

export interface CalibrationSplit {
  calib: number[][];
  /** held-out windows after the calibration ones (may be empty) */
  heldOut: number[][];
}

/** Calibration windows (`samples` of them, at least one) and up to `heldOut` held-out windows after them. */
export function calibrationSplit(tok: Tokenizer, path: string, samples: number, seqLen: number, heldOut: number): CalibrationSplit {
  const rows = tokenWindows(tok, readDocuments(path), seqLen, samples + heldOut);
  if (rows.length === 0) {
    throw new UserError(`${path} is shorter than one --seq-len window of ${seqLen} tokens; give more calibration text or a smaller --seq-len`);
  }
  const calib = rows.slice(0, samples);
  return { calib, heldOut: rows.slice(calib.length) };
}
