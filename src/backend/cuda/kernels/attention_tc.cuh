// Tensor-core building blocks shared by attention_tc.cu (forward) and attention_tc_bwd.cu (backward):
// mma.sync m16n8k16 with float32 accumulation for float16/bfloat16, fragment packing, cp.async staging of
// row-major 16-bit tiles into shared memory, and ldmatrix.trans for B operands stored row-major [k][n].
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16", 16-bit types), g = lane >> 2,
// c = lane & 3; the lower 16 bits of a .b32 register hold the element with the smaller column/row index:
//   A 16x16: a0 = (g, 2c..2c+1), a1 = (g+8, 2c..), a2 = (g, 2c+8..), a3 = (g+8, 2c+8..)
//   B 16x8:  b0 = (k 2c..2c+1, n g), b1 = (k 2c+8..2c+9, n g)
//   C 16x8:  c0,c1 = (g, 2c), (g, 2c+1); c2,c3 = (g+8, 2c), (g+8, 2c+1)
// So the C layout of two adjacent n8 blocks is the A layout of one k16 block (tc_pack_c_to_a), and a B
// operand whose column n is row n of a row-major tile X (X^T) is read as two adjacent halves of that row.
// Requires sm_80 or newer (the host only picks these kernels there).
#pragma once
#include "attention.cuh"

#define MOPT_TC_THREADS 128
#define TC_LOG2E 1.4426950408889634f
#define TC_LN2 0.6931471805599453f

// The (dtype, head dim) pairs the tensor-core kernels are stamped out for (fused-kernels.ts TC_DTYPES x TC_DIMS).
#define MOPT_TC_ALL(X) X(f16, 64) X(bf16, 64) X(f16, 128) X(bf16, 128)

template <class T> struct TcMma;
template <> struct TcMma<dt::bf16> {
  MOPT_DEV void mma(float (&d)[4], const u32_t (&a)[4], u32_t b0, u32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};
template <> struct TcMma<dt::f16> {
  MOPT_DEV void mma(float (&d)[4], const u32_t (&a)[4], u32_t b0, u32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

MOPT_DEV u32_t tc_pack(u16_t lo, u16_t hi) { return (u32_t)lo | ((u32_t)hi << 16); }

/**
 * Two float32 values rounded to T and packed (lo in the low half): one cvt.rn instruction instead of the
 * generic integer rounding of T::store (~10 ALU operations per value, which made the integer pipe the
 * busiest one in these kernels). Round to nearest even, so every finite value gives T::store's bits; only
 * NaN payloads may differ (never an input of these roundings: probabilities and gradients of finite scores).
 */
template <class T> MOPT_DEV u32_t tc_store2(float lo, float hi);
template <> __device__ __forceinline__ u32_t tc_store2<dt::bf16>(float lo, float hi) {
  u32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
template <> __device__ __forceinline__ u32_t tc_store2<dt::f16>(float lo, float hi) {
  u32_t r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

/** Shared-memory pitch (in 16-bit elements) of the K and V tiles [BK][P]: rows 16-byte aligned, and the 8
 * rows one fragment load or ldmatrix phase touches start in distinct bank quads. */
template <int D> struct TcTile {
  enum { BQ = 64, BK = 64, P = D + 8, TILE = BK * P };
};

/** Shared-window address of a shared-memory pointer (for cp.async and ldmatrix). */
MOPT_DEV u32_t tc_smem_addr(const void* p) {
  u32_t a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  return a;
}
/** 16 bytes global -> shared, asynchronously; only the first `bytes` (0 or 16) are read, the rest zero-filled. */
MOPT_DEV void tc_cp_async16(void* dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(tc_smem_addr(dst)), "l"(src), "r"(bytes) : "memory");
}
MOPT_DEV void tc_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/** Waits until at most one committed group of this thread is still in flight. */
MOPT_DEV void tc_cp_async_wait1() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }
/**
 * ldmatrix.x4.trans: lane l names row l % 8 of 8x8 matrix l / 8 (8 contiguous halves at `row`); register m
 * gets matrix m transposed: halves (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4), low first.
 */
MOPT_DEV void tc_ldmatrix_x4_trans(u32_t (&r)[4], const u16_t* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(tc_smem_addr(row))
               : "memory");
}

/**
 * Starts staging rows [t0, t0 + BK) of two [n, D] matrices (K and V, or Q and dO) row-major into Ks, Vs
 * ([BK][D + 8] 16-bit words), rows beyond T zero. `vec`: every row is 16-byte aligned (base and row
 * stride), so cp.async moves 8 halves at a time; otherwise plain 2-byte loads (synchronous). Either way
 * the caller commits, waits and syncs.
 */
template <int D, int BK>
MOPT_DEV void tc_load_kv(u16_t* Ks, u16_t* Vs, const u16_t* kb, const u16_t* vb, i64_t k_st, i64_t v_st, i64_t t0,
                         i64_t T, bool vec) {
  constexpr int P = TcTile<D>::P, C8 = D / 8;
  if (vec) {
#pragma unroll
    for (int e = threadIdx.x; e < BK * C8; e += MOPT_TC_THREADS) {
      const int r = e / C8, c = (e % C8) * 8;
      const i64_t t = t0 + r;
      const bool ok = t < T;
      // a row past T reads nothing (src-size 0) but still needs a valid address: row 0 of the view
      tc_cp_async16(Ks + r * P + c, kb + (ok ? t : 0) * k_st + c, ok ? 16 : 0);
      tc_cp_async16(Vs + r * P + c, vb + (ok ? t : 0) * v_st + c, ok ? 16 : 0);
    }
  } else {
#pragma unroll 4
    for (int e = threadIdx.x; e < BK * D; e += MOPT_TC_THREADS) {
      const int r = e / D, c = e % D;
      const i64_t t = t0 + r;
      Ks[r * P + c] = t < T ? kb[t * k_st + c] : (u16_t)0;
      Vs[r * P + c] = t < T ? vb[t * v_st + c] : (u16_t)0;
    }
  }
}

/** A fragment (16 rows x 16 columns, the k16 block kc) of a row-major shared tile X [.][P], rows r0.. */
template <int P>
MOPT_DEV void tc_load_a(u32_t (&a)[4], const u16_t* X, int r0, int kc) {
  const int lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const u16_t* p = X + (r0 + g) * P + 16 * kc + 2 * c;
  a[0] = *reinterpret_cast<const u32_t*>(p);
  a[1] = *reinterpret_cast<const u32_t*>(p + 8 * P);
  a[2] = *reinterpret_cast<const u32_t*>(p + 8);
  a[3] = *reinterpret_cast<const u32_t*>(p + 8 * P + 8);
}

/** acc[j] (16 x 8 block j) += A (16 x 16 kc) . X^T, where column n of X^T is row 8j + n of tile X [.][P]. */
template <class T, int P, int NB>
MOPT_DEV void tc_mma_abt(float (&acc)[NB][4], const u32_t (&a)[4], const u16_t* X, int kc) {
  const int lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
#pragma unroll
  for (int j = 0; j < NB; j++) {
    const u16_t* r = X + (8 * j + g) * P + 16 * kc + 2 * c;
    TcMma<T>::mma(acc[j], a, *reinterpret_cast<const u32_t*>(r), *reinterpret_cast<const u32_t*>(r + 8));
  }
}

/**
 * acc[n] (16 x 8, columns 8n..) += A . X, with A the NK k16 fragments `a` and X a row-major tile [16 NK][P]
 * of which NO * 8 columns are used: B fragments come from ldmatrix.trans (lane l names row 16kk + l % 16,
 * column 8n + 8 (l / 16); matrices 0, 1 are b0, b1 of block n and 2, 3 those of block n + 1).
 */
template <class T, int P, int NK, int NO>
MOPT_DEV void tc_mma_ab(float (&acc)[NO][4], const u32_t (&a)[NK][4], const u16_t* X) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int kk = 0; kk < NK; kk++)
#pragma unroll
    for (int n = 0; n < NO; n += 2) {
      u32_t f[4];
      tc_ldmatrix_x4_trans(f, X + (16 * kk + (lane & 15)) * P + 8 * n + 8 * (lane >> 4));
      TcMma<T>::mma(acc[n], a[kk], f[0], f[1]);
      TcMma<T>::mma(acc[n + 1], a[kk], f[2], f[3]);
    }
}

/** Rounds accumulator block j (4 float32 values) to T and packs it into the A fragments of k16 block j / 2. */
template <class T, int NK>
MOPT_DEV void tc_pack_c_to_a(u32_t (&a)[NK][4], int j, const float (&w)[4]) {
  // block j covers columns 8j..8j+7: the low (j even) or high (j odd) 8 columns of k16 block j/2
  a[j / 2][(j & 1) * 2 + 0] = tc_store2<T>(w[0], w[1]);  // row g
  a[j / 2][(j & 1) * 2 + 1] = tc_store2<T>(w[2], w[3]);  // row g + 8
}

/**
 * A fragments of rows r0 and r0 + 8 (this thread's rows: r0 includes g) of a row-major [n, 16 KC] matrix in
 * global memory with row stride rs; rows at or past n read as zero.
 */
template <int KC>
MOPT_DEV void tc_rows_to_a(u32_t (&a)[KC][4], const u16_t* base, i64_t r0, i64_t n, i64_t rs) {
  const int c = threadIdx.x & 3;
  const bool ok0 = r0 < n, ok1 = r0 + 8 < n;
  const u16_t* p0 = base + (ok0 ? r0 : 0) * rs;
  const u16_t* p1 = base + (ok1 ? r0 + 8 : 0) * rs;
#pragma unroll
  for (int kc = 0; kc < KC; kc++) {
    const int col = 16 * kc + 2 * c;
    a[kc][0] = ok0 ? tc_pack(p0[col], p0[col + 1]) : 0u;
    a[kc][1] = ok1 ? tc_pack(p1[col], p1[col + 1]) : 0u;
    a[kc][2] = ok0 ? tc_pack(p0[col + 8], p0[col + 9]) : 0u;
    a[kc][3] = ok1 ? tc_pack(p1[col + 8], p1[col + 9]) : 0u;
  }
}
