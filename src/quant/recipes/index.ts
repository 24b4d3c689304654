// Recipe layer (issue #4): quantization recipes as data, resolved per quantizer name.
export * from './types.js';
export { compileGlob } from './glob.js';
export { parseRecipe, recipeFromData } from './parse.js';
export { resolveQuantizer } from './resolve.js';
export { PRESETS, PRESET_NAMES, KV_PRESET_NAMES, DEFAULT_EXCLUSIONS, presetRecipe, type PresetName, type KvPresetName } from './presets.js';
export { applyGroupSize, INT4_GROUP_SIZES } from './group-size.js';
export { recipeToData, type RecipeData } from './serialize.js';
