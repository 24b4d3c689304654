// Writes {texts, ids, idsWithSpecial} for a tokenizer.json: the ids mopt's tokenizer gives for a set of
// texts (held-out prose plus edge cases), which scripts/check_tokenizer_ids.py compares with the Python
// `tokenizers` library on the GPU machine (issue: mopt tokenizer train must load identically in both).
//   node scripts/tokenizer-ids.mjs TOKENIZER.json TEXTS.jsonl OUT.json
import { readFileSync, writeFileSync } from 'node:fs';
import { Tokenizer } from '../dist/src/io/tokenizer.js';

const [tokPath, textsPath, outPath] = process.argv.slice(2);
if (!outPath) throw new Error('usage: node scripts/tokenizer-ids.mjs TOKENIZER.json TEXTS.jsonl OUT.json');
const tok = Tokenizer.fromFile(tokPath);
const prose = readFileSync(textsPath, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l).text);
const paragraphs = prose.flatMap((t) => t.split(/\n+/)).filter((p) => p.length > 0).slice(0, 300);
const edge = ['', ' ', '  leading and trailing  ', 'tabs\tand\nnewlines\n\n', 'numbers 1234567890 3.14159 -42', "it's don't we'll I'M",
  'Ünïcödé façade naïve — “quotes” … ’', '日本語のテキスト', 'emoji 🎉🇺🇸👍🏽', 'mixed\u00a0nbsp', '<s> literal special </s> <pad>', 'a'.repeat(300), '$%^&*()_+={}[]|\\:;"<>,.?/~`'];
const texts = [...edge, ...paragraphs];
writeFileSync(outPath, JSON.stringify({ texts, ids: texts.map((t) => tok.encode(t, { addSpecialTokens: false })), idsWithSpecial: texts.map((t) => tok.encode(t, { addSpecialTokens: true })) }));
console.log(`${texts.length} texts -> ${outPath}`);
