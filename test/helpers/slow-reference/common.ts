// The speedup left src/quant/formats/common.ts unchanged, so the oracle uses it as is (a copy would only
// compare the file with itself).
export * from '../../../src/quant/formats/common.js';
