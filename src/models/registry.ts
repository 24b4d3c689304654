// model_type -> what differs between the decoder families mopt runs with one implementation.
// Adding a family is one entry here (plus fixtures proving it matches transformers).

export interface DecoderFamily {
  architectures: string[];
  /** 'always': q/k/v carry a bias (Qwen2); 'config': follow attention_bias (Llama, Mistral, Qwen3) */
  attentionBias: 'always' | 'config';
  /** RMSNorm on each head of q and k before RoPE (Qwen3) */
  qkNorm: boolean;
  tieDefault: boolean;
  slidingWindowRule: 'mistral' | 'qwen' | 'none';
}

const FAMILIES: Record<string, DecoderFamily> = {
  llama: { architectures: ['LlamaForCausalLM'], attentionBias: 'config', qkNorm: false, tieDefault: false, slidingWindowRule: 'none' },
  mistral: { architectures: ['MistralForCausalLM'], attentionBias: 'config', qkNorm: false, tieDefault: false, slidingWindowRule: 'mistral' },
  qwen2: { architectures: ['Qwen2ForCausalLM'], attentionBias: 'always', qkNorm: false, tieDefault: false, slidingWindowRule: 'qwen' },
  qwen3: { architectures: ['Qwen3ForCausalLM'], attentionBias: 'config', qkNorm: true, tieDefault: false, slidingWindowRule: 'qwen' },
};

export function findFamily(modelType: string): DecoderFamily | undefined {
  return Object.prototype.hasOwnProperty.call(FAMILIES, modelType) ? FAMILIES[modelType] : undefined;
}

export function supportedModelTypes(): string[] {
  return Object.keys(FAMILIES);
}
