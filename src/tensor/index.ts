// The public tensor API in one import.

export { Tensor, type TensorOrScalar } from './tensor.js';
export { type DType, DTYPES, DTYPE_INFO, isFloatDType } from './dtype.js';
export { tensor, full, zeros, ones, arange, randn, rand, fromStorage, type CreateOptions } from './create.js';
export { add, sub, mul, div, pow, maximum, minimum, unary, binary, compare, where, cast } from './ops/elementwise.js';
export { sum, mean, max, min, amax, argmax, softmax, logSoftmax, sumTo } from './ops/reduce.js';
export { reshape, permute, transpose, expand, slice, unsqueeze, squeeze, concat, split, contiguous, clone } from './ops/shape-ops.js';
export { matmul } from './ops/linalg.js';
export { gather, scatterAdd, scatterInto, embedding } from './ops/indexing.js';
export { noGrad, isGradEnabled } from './autograd.js';
export { tidy, keep } from './scope.js';
export { liveTensorBytes, peakTensorBytes, resetPeakTensorBytes } from './memory.js';
