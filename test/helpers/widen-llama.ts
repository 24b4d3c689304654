// A Llama checkpoint widened with zeros (hidden and FFN size -> `width`), so Q4_K's 256-element super-blocks have
// rows to fit on stories260K (hidden 64, FFN 172). Embeddings, norms and Linears are zero-padded; with k = width /
// hidden, mean(x²) over the padded channels is 1/k of the original, so eps becomes eps/k and every RMSNorm weight
// g/sqrt(k), which gives x / sqrt(mean(x²)/k + eps/k) * g/sqrt(k) = x / sqrt(mean(x²) + eps) * g on the original
// channels. Padded channels stay zero through every layer (zero norm weights, zero weights, silu(0) * 0 = 0), so the
// widened model computes the original logits up to float rounding.

import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsCheckpoint, writeSafetensors } from '../../src/io/safetensors.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';

/** Writes `dst`: the Llama checkpoint in `src` with hidden_size and intermediate_size zero-padded to `width`. */
export function widenLlama(src: string, dst: string, width: number): void {
  const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, number | string | boolean | object>;
  const hidden = cfg.hidden_size as number;
  const ratio = width / hidden;
  const ckpt = SafetensorsCheckpoint.open(src);
  const out = new Map<string, RawTensor>();
  try {
    for (const name of ckpt.names()) {
      const t = ckpt.read(name);
      const w = t.data as Float32Array;
      const [rows, cols] = t.shape.length === 2 ? (t.shape as [number, number]) : [1, t.shape[0]!];
      // the hidden / FFN channels of each tensor: input columns of everything but o_proj, output rows of o/gate/up/down
      const padCols = /o_proj/.test(name) ? cols : width;
      const padRows = /o_proj|gate_proj|up_proj|down_proj/.test(name) ? width : rows;
      const data = new Float32Array(padRows * padCols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[r * padCols + c] = w[r * cols + c]! * (/norm/.test(name) ? 1 / Math.sqrt(ratio) : 1);
      out.set(name, { dtype: 'float32', shape: t.shape.length === 2 ? [padRows, padCols] : [padCols], data });
    }
  } finally {
    ckpt.close();
  }
  mkdirSync(dst, { recursive: true });
  writeSafetensors(join(dst, 'model.safetensors'), out);
  writeFileSync(join(dst, 'config.json'), JSON.stringify({ ...cfg, hidden_size: width, intermediate_size: width, rms_norm_eps: (cfg.rms_norm_eps as number) / ratio }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) if (existsSync(join(src, f))) copyFileSync(join(src, f), join(dst, f));
}
