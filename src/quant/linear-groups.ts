// Which Linears a decoder has and how they group: forward order, the fused sibling groups (q/k/v, gate/up)
// that read one input and share export scales, and the units the smoothing algorithms scale together.

import type { DecoderLM } from '../models/decoder.js';
import { layerPrefix } from '../models/decoder.js';

const LINEARS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];

/** Names of every Linear of the decoder in forward order; a tied LM head is named after the embeddings. */
export function linearNames(model: DecoderLM): string[] {
  const names: string[] = [];
  for (let i = 0; i < model.config.numLayers; i++) for (const l of LINEARS) names.push(`${layerPrefix(i)}.${l}`);
  names.push(model.config.tieWordEmbeddings ? 'model.embed_tokens' : 'lm_head');
  return names;
}

/**
 * The units a smoothing algorithm scales together: a fused sibling group whose members are all targets
 * shares one set of factors (its members read the same input, and the export fuses them), any other target
 * is a unit of its own.
 */
export function smoothingUnits(model: DecoderLM, targets: ReadonlySet<string>, opts: { exclude?: ReadonlySet<string> } = {}): string[][] {
  const exclude = opts.exclude;
  if (exclude !== undefined && exclude.size > 0) targets = new Set([...targets].filter((t) => !exclude.has(t)));
  const units: string[][] = [];
  const grouped = new Set<string>();
  for (const g of siblingGroups(model)) {
    if (g.every((l) => targets.has(l))) {
      units.push(g);
      for (const l of g) grouped.add(l);
    }
  }
  for (const t of targets) if (!grouped.has(t)) units.push([t]);
  return units;
}

/** Linears that read the same input and are fused on export (q/k/v, gate/up), layer by layer. */
export function siblingGroups(model: DecoderLM): string[][] {
  const groups: string[][] = [];
  for (let i = 0; i < model.config.numLayers; i++) {
    const p = layerPrefix(i);
    groups.push([`${p}.self_attn.q_proj`, `${p}.self_attn.k_proj`, `${p}.self_attn.v_proj`], [`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`]);
  }
  return groups;
}
