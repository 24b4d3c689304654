// Opening a GGUF file (mopt's export or any llama-architecture GGUF with F32 / F16 / BF16 / Q8_0 / Q4_0 / Q4_K
// tensors) as a runnable mopt model: the config from the llama.* metadata, every tensor dequantized to float32
// as ggml dequantizes it, q/k rows permuted back to Hugging Face's rotate-half layout, the tokenizer from the
// tokenizer.* metadata. A tensor that is missing, misshapen or not part of a plain Llama is refused by name.

import { existsSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GgufFile } from '../io/gguf.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { DecoderLM, parameterSpecs } from '../models/decoder.js';
import type { LoadOptions } from '../models/load.js';
import { getBackend } from '../backend/registry.js';
import { fromStorage, keep, tidy, type Tensor } from '../tensor/index.js';
import { UserError } from '../util/errors.js';
import { GGUF_FILE } from './gguf-export.js';
import { configFromGguf, fromGgufRows, ggufTensorName, permutedHeads } from './gguf-llama.js';
import { dequantize } from './gguf-quants.js';
import { tokenizerFromGguf } from './gguf-tokenizer.js';

/** The GGUF file a --model path names: the path itself, or DIR/model.gguf. */
export function ggufFileOf(path: string): string | null {
  if (!existsSync(path)) return null;
  if (statSync(path).isDirectory()) return existsSync(join(path, GGUF_FILE)) ? join(path, GGUF_FILE) : null;
  const fd = openSync(path, 'r');
  try {
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.toString('latin1') === 'GGUF' ? path : null;
  } finally {
    closeSync(fd);
  }
}

export interface LoadedGguf {
  model: DecoderLM;
  tokenizer: Tokenizer | undefined;
  eosTokenIds: number[];
}

export function loadGguf(path: string, opts: LoadOptions = {}): LoadedGguf {
  const file = ggufFileOf(path);
  if (file === null) throw new UserError(`${path} is neither a GGUF file nor a directory holding ${GGUF_FILE}`);
  const g = GgufFile.open(file);
  try {
    const embd = g.tensors.get('token_embd.weight');
    if (embd === undefined || embd.dims.length !== 2) throw new UserError(`${file}: tensor token_embd.weight is missing or not 2-D`);
    const tok = g.metadata.has('tokenizer.ggml.tokens') ? tokenizerFromGguf(g) : null;
    const eosIds = tok?.eosIds ?? [];
    const config = configFromGguf(g, embd.dims[1]!, !g.tensors.has('output.weight'), tok?.bosId ?? null, eosIds);
    const specs = parameterSpecs(config);
    const expected = new Set(specs.map((s) => ggufTensorName(s.name)));
    for (const name of g.tensors.keys()) {
      if (!expected.has(name)) throw new UserError(`${file}: tensor ${name} is not part of a plain llama model (${config.numLayers} layers); mopt cannot run it`);
    }
    const dtype = opts.dtype ?? 'float32';
    const device = getBackend(opts.device ?? 'cpu');
    const params = new Map<string, Tensor>();
    try {
      for (const spec of specs) {
        const name = ggufTensorName(spec.name)!;
        const info = g.tensors.get(name);
        if (info === undefined) throw new UserError(`${file}: tensor ${name} (${spec.name}) is missing`);
        const dims = [...spec.shape].reverse();
        if (info.dims.length !== dims.length || info.dims.some((d, i) => d !== dims[i])) {
          throw new UserError(`${file}: tensor ${name} has dims [${info.dims.join(', ')}], the llama.* metadata implies [${dims.join(', ')}]`);
        }
        let values = dequantize(info.type, g.read(name), spec.shape.reduce((a, b) => a * b, 1));
        const bad = values.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) throw new UserError(`${file}: tensor ${name} holds a NaN/inf value (element ${bad}); the file is corrupt`);
        const heads = permutedHeads(spec.name, config);
        if (heads !== null) values = fromGgufRows(values, spec.shape[0]!, spec.shape[1]!, heads);
        params.set(spec.name, keep(tidy(() => fromStorage(values, spec.shape, 'float32', { device }).cast(dtype))));
      }
    } catch (e) {
      // a bad tensor after good ones: the kept ones must not stay on the device
      for (const t of params.values()) t.dispose();
      throw e;
    }
    return { model: new DecoderLM(config, params), tokenizer: tok?.tokenizer, eosTokenIds: eosIds };
  } finally {
    g.close();
  }
}
