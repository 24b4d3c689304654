// What a mopt preset is in llm-compressor's compressed-tensors checkpoint format (what vLLM loads): the
// on-disk CompressionFormat, the QuantizationArgs of weights and input activations, and config.json's
// quantization_config. Reading goes through the same table, so what the exporter writes and what the loader
// accepts cannot drift apart. Every key written here appears in vllm-project/compressed-tensors:
//   quantization/quant_args.py    QuantizationArgs fields (num_bits, type, symmetric, group_size, strategy,
//                                 block_structure, dynamic, actorder, scale_dtype, zp_dtype, observer,
//                                 observer_kwargs); zp_dtype serializes as null when symmetric; "local" dynamic
//   quantization/quant_scheme.py  QuantizationScheme (targets, weights, input_activations, output_activations,
//                                 format) and the preset schemes FP8, W4A16, NVFP4, NVFP4A16 copied below
//   quantization/quant_config.py  QuantizationConfig (config_groups, quant_method, kv_cache_scheme, format,
//                                 quantization_status, global_compression_ratio, ignore)
//   compressors/model_compressors/model_compressor.py  update_config: version, quant_method, sparsity_config,
//                                 transform_config written beside the quantization config
//   config/base.py                CompressionFormat names (float-quantized, int-quantized, pack-quantized,
//                                 nvfp4-pack-quantized)

import type { KvPresetName, PresetName } from '../quant/recipes/presets.js';
import { UserError } from '../util/errors.js';

export const QUANT_METHOD = 'compressed-tensors';
/** the compressed-tensors release whose layout this follows (PyPI compressed-tensors 0.20.0, 2026-10) */
export const CT_VERSION = '0.20.0';

export type CtFormat = 'float-quantized' | 'int-quantized' | 'pack-quantized' | 'nvfp4-pack-quantized';

/** One QuantizationArgs as serialized JSON. */
export interface QuantArgs {
  num_bits: number;
  type: 'int' | 'float';
  symmetric: boolean;
  group_size: number | null;
  strategy: 'tensor' | 'channel' | 'group' | 'tensor_group';
  block_structure: null;
  /** "local" (DynamicType.LOCAL): NVFP4 activations, per-block scales dynamic, the global scale static */
  dynamic: boolean | 'local';
  actorder: null;
  scale_dtype: string | null;
  zp_dtype: null;
  observer: string | null;
  observer_kwargs: Record<string, never>;
}

/** A preset as compressed-tensors writes it. */
export interface CtScheme {
  /** the mopt preset a checkpoint of this scheme loads back as (nvfp4_awq writes as nvfp4 once folded) */
  preset: Exclude<PresetName, 'nvfp4_awq' | 'w4a8_awq' | 'mxfp8' | 'mxfp4'>;
  /** compressed-tensors' name for the scheme (PRESET_SCHEMES in quant_scheme.py) */
  label: string;
  format: CtFormat;
  weights: QuantArgs;
  input: QuantArgs | null;
  /** FP8 per-tensor KV cache (kv_cache_scheme) */
  kv: boolean;
}

function args(numBits: number, type: 'int' | 'float', strategy: QuantArgs['strategy'], more: Partial<QuantArgs> = {}): QuantArgs {
  // observer: quant_args.py defaults static args to "memoryless_minmax" (from the tensor itself, as mopt's
  // weight scales are); static activations use "static_minmax" (a running max over the calibration data)
  return {
    num_bits: numBits, type, symmetric: true, group_size: null, strategy, block_structure: null, dynamic: false,
    actorder: null, scale_dtype: null, zp_dtype: null, observer: 'memoryless_minmax', observer_kwargs: {}, ...more,
  };
}
const staticInput = (numBits: number, type: 'int' | 'float'): QuantArgs => args(numBits, type, 'tensor', { observer: 'static_minmax' });
const NVFP4_WEIGHTS = args(4, 'float', 'tensor_group', { group_size: 16, scale_dtype: 'torch.float8_e4m3fn' });
/** FP8 per-tensor K/V scales: the only KV cache vLLM's compressed-tensors loader accepts (CompressedTensorsKVCacheMethod) */
const KV_ARGS = staticInput(8, 'float');

/** Which presets write, and why the others cannot (an exhaustive table: a new preset must be classified). */
const SUPPORT: Record<PresetName, { ok: CtScheme['preset'] } | { refused: string }> = {
  fp8: { ok: 'fp8' },
  int8_sq: { ok: 'int8_sq' },
  int4_awq: { ok: 'int4_awq' },
  nvfp4: { ok: 'nvfp4' },
  w4a16_nvfp4: { ok: 'w4a16_nvfp4' },
  nvfp4_awq:
    { refused: "AWQ smooths o_proj (and down_proj) and compressed-tensors has no pre_quant_scale tensor: those factors would have to be folded into the NVFP4 v_proj / up_proj, whose e4m3 block scales and shared global scale cannot absorb per-row factors exactly (use nvfp4, or --export-format modelopt, which writes pre_quant_scale)" },
  w4a8_awq:
    { refused: "its weights are INT4 groups followed by an FP8 per-tensor stage and its activations static FP8; compressed-tensors' W4AFP8 has plain INT4 group weights with dynamic per-token FP8 activations, a different model (use --export-format modelopt)" },
  mxfp8:
    { refused: "mopt computes MX block scales with Model Optimizer's non-clipping ceil rule, compressed-tensors and vLLM with their own rounded-floor rule (mxfp4_utils.py generate_mxfp4_scales): the dynamic activation scales vLLM computes would not be the ones mopt evaluated (use --export-format modelopt)" },
  mxfp4:
    { refused: "mopt computes MX block scales with Model Optimizer's non-clipping ceil rule, compressed-tensors and vLLM with their own rounded-floor rule (mxfp4_utils.py generate_mxfp4_scales): the dynamic activation scales vLLM computes would not be the ones mopt evaluated" },
};

function schemeOf(preset: CtScheme['preset'], int4Group: number, kv: boolean): CtScheme {
  switch (preset) {
    case 'fp8': // quant_scheme.py FP8: tensor weights, static tensor inputs
      return { preset, label: 'FP8', format: 'float-quantized', weights: args(8, 'float', 'tensor'), input: staticInput(8, 'float'), kv };
    case 'int8_sq': // quant_scheme.py INT8_W8A8 weights (channel); mopt's SmoothQuant inputs are static per tensor, not per token
      return { preset, label: 'W8A8', format: 'int-quantized', weights: args(8, 'int', 'channel'), input: staticInput(8, 'int'), kv };
    case 'int4_awq': // quant_scheme.py W4A16 with the plan's group size
      return { preset, label: 'W4A16', format: 'pack-quantized', weights: args(4, 'int', 'group', { group_size: int4Group }), input: null, kv };
    case 'nvfp4': // quant_scheme.py NVFP4
      return {
        preset, label: 'NVFP4', format: 'nvfp4-pack-quantized', weights: NVFP4_WEIGHTS,
        input: args(4, 'float', 'tensor_group', { group_size: 16, dynamic: 'local', observer: 'static_minmax', scale_dtype: 'torch.float8_e4m3fn' }), kv,
      };
    case 'w4a16_nvfp4': // quant_scheme.py NVFP4A16
      return { preset, label: 'NVFP4A16', format: 'nvfp4-pack-quantized', weights: NVFP4_WEIGHTS, input: null, kv };
  }
}

/** the presets that write, each with the scheme name it loads back as */
const SUPPORTED: CtScheme['preset'][] = Object.values(SUPPORT).flatMap((e) => ('ok' in e ? [e.ok] : []));

/** The scheme a preset writes as (int4Group: the plan's INT4 group size); a UserError when it cannot be written. */
export function ctSchemeOf(preset: string | null, kvCache: string | null, int4Group = 128): CtScheme {
  const entry = preset === null ? undefined : SUPPORT[preset as PresetName];
  if (preset === null || entry === undefined) {
    const which = preset === null ? 'a custom recipe' : `the unknown preset ${preset}`;
    throw new UserError(`compressed-tensors export of ${which} is not supported; presets that export: ${SUPPORTED.join(', ')}`);
  }
  if ('refused' in entry) throw new UserError(`compressed-tensors cannot express the ${preset} preset: ${entry.refused}; presets that export: ${SUPPORTED.join(', ')}`);
  if (kvCache !== null && (kvCache as KvPresetName) !== 'fp8') {
    throw new UserError(`compressed-tensors export: --kv-cache ${kvCache} is not supported; vLLM loads compressed-tensors KV caches as FP8 per tensor only (use --kv-cache fp8)`);
  }
  return schemeOf(entry.ok, int4Group, kvCache !== null);
}

/** config.json["quantization_config"] of a checkpoint of this scheme; `ignore` lists the Linears left unquantized. */
export function quantizationConfig(s: CtScheme, ignore: readonly string[]): Record<string, unknown> {
  return {
    config_groups: { group_0: { targets: ['Linear'], weights: s.weights, input_activations: s.input, output_activations: null, format: s.format } },
    format: s.format,
    global_compression_ratio: null,
    ignore: [...ignore],
    kv_cache_scheme: s.kv ? KV_ARGS : null,
    quant_method: QUANT_METHOD,
    quantization_status: 'compressed',
    sparsity_config: {},
    transform_config: {},
    version: CT_VERSION,
  };
}

/** The fields that decide the numbers (observer and the dtype names are descriptive). */
function signature(a: unknown): string {
  if (a === null || a === undefined) return 'none';
  const r = a as Record<string, unknown>;
  return JSON.stringify([r.num_bits, r.type, r.strategy, r.group_size ?? null, r.symmetric ?? true, r.dynamic ?? false]);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The scheme and ignore list a quantization_config describes; a UserError naming the key when mopt cannot load it. */
export function parseQuantizationConfig(cfg: unknown, path: string): { scheme: CtScheme; ignore: string[] } {
  const where = `${path} quantization_config`;
  if (!isRecord(cfg) || cfg.quant_method !== QUANT_METHOD) throw new UserError(`${where}: quant_method is not "${QUANT_METHOD}"`);
  if (cfg.quantization_status !== 'compressed') {
    throw new UserError(`${where}: quantization_status ${JSON.stringify(cfg.quantization_status)}; mopt loads compressed checkpoints (status "compressed") only`);
  }
  const groups = isRecord(cfg.config_groups) ? Object.values(cfg.config_groups) : [];
  const g = groups[0];
  if (groups.length !== 1 || !isRecord(g) || JSON.stringify(g.targets) !== '["Linear"]') {
    throw new UserError(`${where}: mopt loads one config group targeting ["Linear"] (what it writes); found ${groups.length} group(s)`);
  }
  const ignore = cfg.ignore ?? [];
  if (!Array.isArray(ignore) || !ignore.every((x): x is string => typeof x === 'string')) throw new UserError(`${where}: ignore must be a list of module names`);
  const kvCfg = cfg.kv_cache_scheme ?? null;
  if (kvCfg !== null && signature(kvCfg) !== signature(KV_ARGS)) {
    throw new UserError(`${where}: kv_cache_scheme ${JSON.stringify(kvCfg)} is not one mopt loads (FP8 per tensor, static)`);
  }
  const groupSize = isRecord(g.weights) && typeof g.weights.group_size === 'number' ? g.weights.group_size : 128;
  for (const preset of SUPPORTED) {
    const s = schemeOf(preset, groupSize, kvCfg !== null);
    const formatOk = cfg.format === s.format && (g.format === undefined || g.format === null || g.format === s.format);
    if (formatOk && signature(g.weights) === signature(s.weights) && signature(g.input_activations) === signature(s.input) && (g.output_activations ?? null) === null) {
      if (s.preset === 'int4_awq' && ![32, 64, 128].includes(groupSize)) throw new UserError(`${where}: INT4 group_size ${groupSize}; mopt loads 32, 64 or 128`);
      return { scheme: s, ignore };
    }
  }
  throw new UserError(
    `${where}: format ${JSON.stringify(cfg.format)} with weights ${signature(g.weights)} and input_activations ${signature(g.input_activations)} is not a scheme mopt loads ` +
      `(it loads what it writes: ${SUPPORTED.map((p) => `${schemeOf(p, 128, false).label} ${schemeOf(p, 128, false).format}`).join(', ')})`,
  );
}
