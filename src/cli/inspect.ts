// mopt inspect: what a model directory holds (architecture, parameters, dtypes, size on disk).

import type { Command } from 'commander';
import { statSync } from 'node:fs';
import { readModelConfig } from '../models/load.js';
import { parameterSpecs } from '../models/decoder.js';
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import { Tokenizer } from '../io/tokenizer.js';
import { numel } from '../tensor/shape.js';
import { emit, requireModelDir } from './common.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('Show a model directory: architecture, parameter count, tensor dtypes, size on disk.')
    .requiredOption('--model <dir>', 'Hugging Face model directory')
    .option('--json', 'print the summary as JSON')
    .action((o: { model: string; json?: boolean }) => {
      const dir = requireModelDir(o.model);
      const c = readModelConfig(dir);
      const ckpt = SafetensorsCheckpoint.open(dir);
      try {
        const expected = new Set(parameterSpecs(c).map((s) => s.name));
        const dtypes: Record<string, number> = {};
        let parameters = 0;
        const unused: string[] = [];
        for (const name of ckpt.names()) {
          const info = ckpt.info(name);
          dtypes[info.dtype] = (dtypes[info.dtype] ?? 0) + numel(info.shape);
          if (expected.has(name)) parameters += numel(info.shape);
          else unused.push(name);
        }
        const missing = [...expected].filter((n) => !ckpt.has(n));
        const bytes = ckpt.files().reduce((s, f) => s + statSync(f).size, 0);
        const tok = Tokenizer.tryFromModelDir(dir);
        const summary = {
          model: dir,
          architecture: c.architecture,
          model_type: c.modelType,
          parameters,
          layers: c.numLayers,
          hidden_size: c.hiddenSize,
          intermediate_size: c.intermediateSize,
          heads: c.numHeads,
          kv_heads: c.numKvHeads,
          head_dim: c.headDim,
          vocab_size: c.vocabSize,
          rope: c.rope,
          tie_word_embeddings: c.tieWordEmbeddings,
          tensor_dtypes: dtypes,
          size_bytes: bytes,
          files: ckpt.files().length,
          tokenizer: tok === null ? null : { vocab_size: tok.vocabSize, bos_id: tok.bosId, eos_id: tok.eosId },
          missing_tensors: missing,
          unused_tensors: unused,
        };
        const lines = [
          `${c.architecture} (${c.modelType}) in ${dir}`,
          `parameters   ${parameters.toLocaleString('en-US')} (${(parameters / 1e6).toFixed(2)} M)`,
          `layers       ${c.numLayers}, hidden ${c.hiddenSize}, mlp ${c.intermediateSize}`,
          `attention    ${c.numHeads} heads, ${c.numKvHeads} kv heads, head_dim ${c.headDim}, rope ${c.rope.type} (theta ${c.rope.theta})`,
          `vocab        ${c.vocabSize}${c.tieWordEmbeddings ? ', tied embeddings' : ''}`,
          `dtypes       ${Object.entries(dtypes).map(([d, n]) => `${d} ${n.toLocaleString('en-US')}`).join(', ')}`,
          `on disk      ${(bytes / 1e6).toFixed(2)} MB in ${ckpt.files().length} file(s)`,
          `tokenizer    ${tok === null ? 'none' : `${tok.vocabSize} tokens`}`,
        ];
        if (missing.length > 0) lines.push(`MISSING      ${missing.length} tensors, e.g. ${missing[0]}`);
        if (unused.length > 0) lines.push(`unused       ${unused.length} tensors, e.g. ${unused[0]}`);
        emit(o.json === true, summary, lines.join('\n'));
      } finally {
        ckpt.close();
      }
    });
}
