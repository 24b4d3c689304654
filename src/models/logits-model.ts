// The part of a model that scoring and full-prefix generation use: its config and the logits of a batch of
// token ids. DecoderLM is one (with a KV cache, hooks and training besides); a model that runs elsewhere,
// such as an exported ONNX graph in ONNX Runtime (src/export/onnx-load.ts), is another.

import type { Backend } from '../backend/backend.js';
import type { Tensor } from '../tensor/index.js';
import type { DecoderConfig } from './config.js';

export interface LogitsModel {
  readonly config: DecoderConfig;
  /** where forward()'s inputs are expected and its logits live */
  readonly backend: Backend;
  /** logits [batch, seq, vocab] for integer ids [batch, seq], every position attending to the ones before it */
  forward(ids: Tensor): Tensor;
}
