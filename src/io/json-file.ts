// JSON files (configs, checkpoint indexes) and the atomic-write helper every writer in src/io uses.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { UserError } from '../util/errors.js';

/** Node's errno errors carry a code; anything else is not an I/O failure we can describe. */
function errnoCode(e: unknown): string | undefined {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string'
    ? (e as NodeJS.ErrnoException).code
    : undefined;
}

/**
 * Reads and parses a JSON file. `what` names the file's role for the error message ("model config",
 * "safetensors index"), so the user knows which of several inputs is broken.
 */
export function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT') throw new UserError(`${what} ${path} does not exist; check the path`);
    if (code === 'EISDIR') throw new UserError(`${what} ${path} is a directory, expected a JSON file`);
    if (code !== undefined) throw new UserError(`cannot read ${what} ${path}: ${code}`);
    throw e;
  }
  // Editors on Windows may prepend a byte-order mark, which JSON.parse rejects; it carries no content.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UserError(`${what} ${path} is not valid JSON: ${jsonSyntaxError(text)}; fix or re-create the file`);
  }
}

/** Writes value as 2-space-indented JSON with a trailing newline, atomically. */
export function writeJsonAtomic(path: string, value: unknown): void {
  atomicWriteFile(path, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Writes data (one buffer, or chunks written in order so large checkpoints need not be concatenated in memory)
 * to a temp file next to path, fsyncs it and renames it over path. Readers thus see either the old file or the
 * complete new one, never a half-written checkpoint after a crash or Ctrl-C. The temp file lives in the same
 * directory because rename is only atomic within one filesystem.
 */
export function atomicWriteFile(path: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
    for (const chunk of chunks) {
      let done = 0;
      // writeSync may write fewer bytes than asked (e.g. for >2 GiB chunks), so loop until the chunk is out.
      while (done < chunk.byteLength) done += writeSync(fd, chunk, done, chunk.byteLength - done);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    const code = errnoCode(e);
    if (code === 'ENOENT') {
      throw new UserError(`cannot write ${path}: directory ${dirname(path)} does not exist; create it first`);
    }
    if (code !== undefined) {
      throw new UserError(`cannot write ${path} (via temp file ${basename(tmp)}): ${code}; check permissions and free space`);
    }
    throw e;
  }
}

/**
 * Describes where JSON text first fails to parse, as "REASON at line L column C (position P)". V8's own
 * messages are not usable as-is: some have no position and some quote the input, which may span lines, while
 * our errors must stay on one line. So this re-scans the text with a small validator; it only runs on failure.
 */
export function jsonSyntaxError(text: string): string {
  let found: { pos: number; reason: string } | undefined;
  try {
    found = scanJson(text);
  } catch {
    // Nesting deep enough to overflow the scanner's stack: report without a position rather than crash.
    return 'nesting too deep to locate the error';
  }
  if (found === undefined) return 'unknown syntax error';
  const before = text.slice(0, found.pos);
  const line = before.split('\n').length;
  const column = found.pos - (before.lastIndexOf('\n') + 1) + 1;
  return `${found.reason} at line ${line} column ${column} (position ${found.pos})`;
}

class JsonScanError {
  constructor(readonly pos: number, readonly reason: string) {}
}

/** Returns the first syntax error of text, or undefined when it is valid JSON. */
function scanJson(s: string): { pos: number; reason: string } | undefined {
  let i = 0;
  const fail = (reason?: string): never => {
    if (i >= s.length) throw new JsonScanError(i, 'unexpected end of input');
    throw new JsonScanError(i, reason ?? `unexpected ${JSON.stringify(s[i])}`);
  };
  const ws = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  };
  const literal = (word: string): void => {
    // Point at the start of a misspelt literal ("tru"), which is where the user has to look.
    if (s.startsWith(word, i)) i += word.length;
    else fail(`invalid literal (expected ${word})`);
  };
  const str = (): void => {
    i++; // opening quote
    for (;;) {
      if (i >= s.length) fail('unterminated string');
      const c = s.charCodeAt(i);
      if (c === 0x22) { i++; return; }
      if (c < 0x20) fail('control character in string');
      if (c === 0x5c) {
        i++;
        const e = s[i];
        if (e === 'u') {
          for (let k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(s[i + k] ?? '')) { i += k; fail('bad \\u escape'); }
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else fail('bad escape');
      } else i++;
    }
  };
  const num = (): void => {
    const re = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y; // sticky: matches exactly at i
    re.lastIndex = i;
    const m = re.exec(s);
    if (m === null) fail();
    else i += m[0].length;
  };
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === '{') {
      i++; ws();
      if (s[i] === '}') { i++; return; }
      for (;;) {
        ws();
        if (s[i] !== '"') fail('expected a double-quoted property name');
        str(); ws();
        if (s[i] !== ':') fail("expected ':'");
        i++; value(); ws();
        if (s[i] === ',') { i++; continue; }
        if (s[i] === '}') { i++; return; }
        fail("expected ',' or '}'");
      }
    } else if (c === '[') {
      i++; ws();
      if (s[i] === ']') { i++; return; }
      for (;;) {
        value(); ws();
        if (s[i] === ',') { i++; continue; }
        if (s[i] === ']') { i++; return; }
        fail("expected ',' or ']'");
      }
    } else if (c === '"') str();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) num();
    else fail();
  };
  try {
    value(); ws();
    if (i < s.length) fail('unexpected text after the JSON value');
    return undefined;
  } catch (e) {
    if (e instanceof JsonScanError) return { pos: e.pos, reason: e.reason };
    throw e;
  }
}
