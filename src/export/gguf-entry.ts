// GGUF (llama.cpp / node-llama-cpp) as an entry of the export registry.

import type { CheckpointReader, ExportFormat } from './registry.js';
import { GGUF_TYPES, checkGgufRequest, prepareGguf, writeGgufExport } from './gguf-export.js';
import { ggufFileOf, loadGguf } from './gguf-load.js';

export const ggufFormat: ExportFormat = {
  name: 'gguf',
  help:
    `GGUF for llama.cpp and node-llama-cpp (OUT/model.gguf; --gguf-type ${GGUF_TYPES.join(' | ')}, default q4_k): from an int4_awq state, ` +
    'AWQ factors folded into the norms, GPTQ / AWQ-clip weights and block scales weighted by the calibration input energy carried into ' +
    'Q4_0 / Q4_K blocks; f16 and q8_0 convert the source weights; the tokenizer is embedded.',
  check: (r) => void checkGgufRequest(r),
  prepare(q, source, r) {
    const p = prepareGguf(q, source, r);
    return { quantAlgo: p.type.toUpperCase(), write: (out, o) => writeGgufExport(p, out, o) };
  },
};

export const ggufReader: CheckpointReader = {
  name: 'gguf',
  detect: (path) => ggufFileOf(path) !== null,
  open(path, o) {
    const l = loadGguf(path, o);
    return { model: l.model, metaDir: null, tokenizer: l.tokenizer, eosTokenIds: l.eosTokenIds };
  },
};
