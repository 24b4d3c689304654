// gather / scatter-add along one axis with torch semantics, as src/backend/cpu/cpu-backend.ts implements
// them: a negative index counts from the end (j + size), anything still outside [0, size) is an error.
// A kernel never reads or writes out of bounds: it records the smallest logical position of a bad index
// in a device error word (atomicMin; the host resets it to all ones), and the host, after the launch,
// reads the offending index back and throws the CPU's RangeError. scatter-add checks every index first
// (index_check) so that `out` is left untouched on error, as on the CPU.
//
// Layout operands: 0 = out (gather) or the accumulation target (scatter), 1 = index, 2 = x (gather) or
// src (scatter). The target's / x's stride on `axis` is 0 in the layout: the index supplies that
// coordinate, times axis_stride.
#include "common.cuh"

/** The index at offset k, made non-negative; false (and the error recorded) when out of range. */
template <class I>
MOPT_DEV bool load_index(const I* index, i64_t k, i64_t size, u64_t i, u64_t* err, i64_t& j) {
  j = (i64_t)index[k];
  if (j < 0) j += size;
  if (j >= 0 && j < size) return true;
  if (err != nullptr) atomicMin(err, (u64_t)i);
  return false;
}

// gather moves bit patterns (the CPU copies raw storage), so it is generic over the word width only
template <class W, class I>
MOPT_DEV void gather_body(const Strided& L, W* out, const I* index, const W* x, i64_t size, i64_t axis_stride, u64_t* err) {
  for_each_strided<3>(L, [&](u64_t i, const i64_t* o) {
    i64_t j;
    if (load_index(index, o[1], size, i, err, j)) out[o[0]] = x[o[2] + j * axis_stride];
  });
}

// scatter moves bit patterns too; it records bad indices itself (the host checks first outside a graph
// capture, where it cannot read the error word back)
template <class W, class I>
MOPT_DEV void scatter_body(const Strided& L, W* target, const I* index, const W* src, i64_t size, i64_t axis_stride, u64_t* err) {
  for_each_strided<3>(L, [&](u64_t i, const i64_t* o) {
    i64_t j;
    if (load_index(index, o[1], size, i, err, j)) target[o[0] + j * axis_stride] = src[o[2]];
  });
}

template <class I>
MOPT_DEV void check_body(const Strided& L, const I* index, i64_t size, u64_t* err) {
  for_each_strided<1>(L, [&](u64_t i, const i64_t* o) {
    i64_t j;
    load_index(index, o[0], size, i, err, j);
  });
}

// Adds src (read as its compute type) into an accumulator of type A with atomics. A is the output's own
// storage when that is float32/float64, else a float32/float64 buffer the host converts from and back
// to the output dtype, so each output element is rounded once, like the CPU's float64 sums.
template <class T, class I, class A>
MOPT_DEV void scatter_add_body(const Strided& L, A* target, const I* index, const typename T::S* src, i64_t size, i64_t axis_stride) {
  for_each_strided<3>(L, [&](u64_t i, const i64_t* o) {
    i64_t j;
    if (load_index(index, o[1], size, i, (u64_t*)nullptr, j)) atomicAdd(&target[o[0] + j * axis_stride], (A)T::load(src[o[2]]));
  });
}

#define MOPT_INDEX_TYPES_WITH(X, a) X(a, i32, int) X(a, i64, i64_t)

#define MOPT_DEF_GATHER(W, I, IT)                                                                  \
  MOPT_KERNEL gather_##W##_##I(Strided L, W##_t* out, const IT* index, const W##_t* x, i64_t size, \
                                              i64_t axis_stride, u64_t* err) {                     \
    gather_body<W##_t, IT>(L, out, index, x, size, axis_stride, err);                              \
  }
#define MOPT_GATHER_FOR(name, W) MOPT_INDEX_TYPES_WITH(MOPT_DEF_GATHER, name)
MOPT_WORDS(MOPT_GATHER_FOR)

#define MOPT_DEF_SCATTER_STORE(W, I, IT)                                                                 \
  MOPT_KERNEL scatter_##W##_##I(Strided L, W##_t* target, const IT* index, const W##_t* src, i64_t size, \
                                i64_t axis_stride, u64_t* err) {                                         \
    scatter_body<W##_t, IT>(L, target, index, src, size, axis_stride, err);                              \
  }
#define MOPT_SCATTER_STORE_FOR(name, W) MOPT_INDEX_TYPES_WITH(MOPT_DEF_SCATTER_STORE, name)
MOPT_WORDS(MOPT_SCATTER_STORE_FOR)

#define MOPT_DEF_CHECK(unused, I, IT)                                                                                      \
  MOPT_KERNEL index_check_##I(Strided L, const IT* index, i64_t size, u64_t* err) { check_body<IT>(L, index, size, err); }
MOPT_INDEX_TYPES_WITH(MOPT_DEF_CHECK, _)

// scatter_add_<src dtype>_<index dtype>_<accumulator dtype>: float32 accumulators for the float32-computed
// dtypes, float64 for all (the host picks; other src dtypes are converted to float64 first)
#define MOPT_SCATTER_SRC_ACC(X, I, IT)                                                                         \
  X(f32, f32, float, I, IT) X(f16, f32, float, I, IT) X(bf16, f32, float, I, IT)                               \
  X(f64, f64, double, I, IT) X(f32, f64, double, I, IT) X(f16, f64, double, I, IT) X(bf16, f64, double, I, IT) \
  X(i64, f64, double, I, IT) X(i32, f64, double, I, IT)
#define MOPT_DEF_SCATTER(T, A, AT, I, IT)                                                              \
  MOPT_KERNEL scatter_add_##T##_##I##_##A(Strided L, AT* target, const IT* index, const dt::T::S* src, \
                                                         i64_t size, i64_t axis_stride) {              \
    scatter_add_body<dt::T, IT, AT>(L, target, index, src, size, axis_stride);                         \
  }
#define MOPT_SCATTER_FOR(unused, I, IT) MOPT_SCATTER_SRC_ACC(MOPT_DEF_SCATTER, I, IT)
MOPT_INDEX_TYPES_WITH(MOPT_SCATTER_FOR, _)
