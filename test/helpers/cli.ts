// Runs the built mopt CLI as a user does: a child process of this Node, output captured.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `mopt ...args` (cwd: the test's own, unless given), killed after timeoutMs (a hang fails the test, it does not stall it). */
export function runMopt(args: readonly string[], opts: { cwd?: string; timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: process.env, cwd: opts.cwd, maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 300_000, killSignal: 'SIGKILL' });
  const killed = r.signal === null ? '' : `\n[mopt ${args.join(' ')} killed by ${r.signal}${r.error ? `: ${r.error.message}` : ''}]`;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr + killed };
}
