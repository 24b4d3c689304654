// The Hugging Face files every exported checkpoint carries besides its tensors: config.json (the source's,
// with the format's quantization_config) and the tokenizer / generation files copied unchanged, so the
// checkpoint runs on its own in mopt, transformers or an engine.

import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile, writeJsonAtomic } from '../io/json-file.js';

/** files of a Hugging Face model directory carried into an export unchanged */
export const COPIED = ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'vocab.json', 'merges.txt', 'chat_template.jinja'];

/** Writes `dir`/config.json (the source's, with `quantization_config` set) and copies the COPIED files that exist. */
export function writeHfFiles(source: string, dir: string, quantizationConfig: Record<string, unknown>): void {
  const config = readJsonFile(join(source, 'config.json'), 'model config') as Record<string, unknown>;
  writeJsonAtomic(join(dir, 'config.json'), { ...config, quantization_config: quantizationConfig });
  for (const f of COPIED) if (existsSync(join(source, f))) copyFileSync(join(source, f), join(dir, f));
}
