// gemv_norm_<dtype>_m<rows>, gemv_swiglu_norm_<dtype>_m<rows>: the GEMVs with the RMSNorm before them folded
// in (gemv.cuh), for the decode step's 1 or 2 activation rows (src/backend/cuda/fused-kernels.ts FK.gemv /
// FK.gemvSwiglu with norm, GEMV_NORM_MAX_ROWS). A module of its own: NVRTC compiles it apart from the plain
// variants (the two together took over a minute to compile), and only where a decode step needs it.
#include "gemv.cuh"

#define MOPT_GEMV_NORM(T, M) MOPT_DEF_GEMV_KERNELS(T, M, norm_, true)
MOPT_GEMV_NORM(f16, 1) MOPT_GEMV_NORM(f16, 2)
MOPT_GEMV_NORM(bf16, 1) MOPT_GEMV_NORM(bf16, 2)
