// gemv_<dtype>_m<rows>, gemv_swiglu_<dtype>_m<rows>: the 16-bit float dtypes, 1..8 activation rows
// (src/backend/cuda/fused-kernels.ts FK.gemv, FK.gemvSwiglu). The bodies and their notes: gemv.cuh.
#include "gemv.cuh"

#define MOPT_GEMV_PLAIN(T, M) MOPT_DEF_GEMV_KERNELS(T, M, , false)
#define MOPT_GEMV_ROWS(X, T) X(T, 1) X(T, 2) X(T, 3) X(T, 4) X(T, 5) X(T, 6) X(T, 7) X(T, 8)
MOPT_GEMV_ROWS(MOPT_GEMV_PLAIN, f16)
MOPT_GEMV_ROWS(MOPT_GEMV_PLAIN, bf16)
