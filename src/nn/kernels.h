/* kernels: every numeric primitive of the forward pass behind one table.
 *
 * GEMM goes through nn_gemm_bt (OpenBLAS, single-threaded per call: the
 * engine splits rows across its own threads), with a plain scalar reference
 * beside it. The element-wise and attention kernels exist as a scalar
 * reference (kernels.c) and an AVX2+FMA version (kernels_avx2.c); the table
 * is chosen at run time from CPU features, and tests compare every entry of
 * the selected table with the reference.
 *
 * Shapes: row-major; "rows x n" with a leading dimension equal to n unless an
 * ld argument says otherwise.
 */
#ifndef CEMBED_KERNELS_H
#define CEMBED_KERNELS_H

#include "base/base.h"

/* C[M, N] = A[M, K] @ B[N, K]^T   (B is a Linear weight, [out, in]) */
void nn_gemm_bt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);
void nn_gemm_bt_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);
/* Makes BLAS run single-threaded inside each call (call once). */
void nn_gemm_init(void);

typedef struct nn_kernels {
    const char *name;
    /* x[rows, n] += bias[n] */
    void (*bias)(float *x, const float *bias, int rows, int n);
    /* x[rows, n] = gelu_erf(x + bias) */
    void (*bias_gelu)(float *x, const float *bias, int rows, int n);
    /* res[rows, n] = LayerNorm(x + bias + res) * g + b   (x may be NULL: res = LN(res)) */
    void (*add_layernorm)(const float *x, const float *bias, float *res, const float *g, const float *b,
                          float eps, int rows, int n);
    /* One head of one sequence: out[L, dh] = softmax(scale * Q K^T) V, where
     * row i of Q, K, V starts at q + i*ld, k + i*ld, v + i*ld and row i of
     * out at out + i*ldo. scratch holds nn_attention_scratch(L, dh) floats. */
    void (*attention)(const float *q, const float *k, const float *v, int ld, int L, int dh, float scale,
                      float *out, int ldo, float *scratch);
} nn_kernels;

size_t nn_attention_scratch(int L, int dh);
const nn_kernels *nn_kernels_ref(void);
/* The fastest table this CPU runs (cpu_features()); never NULL. */
const nn_kernels *nn_kernels_best(void);
/* NULL when the CPU lacks AVX2 and FMA. */
const nn_kernels *nn_kernels_avx2(void);

#endif
