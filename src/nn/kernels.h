/* kernels: every numeric primitive of the forward pass behind one table.
 *
 * nn_gemm_bt is the fp32 reference GEMM (OpenBLAS, single-threaded per
 * call: the engine splits rows across its own threads), with a plain scalar
 * loop beside it. The engine's GEMMs go through nn/gemm.h: oneDNN, or our
 * own on packed weights (lowp.c: packing and the scalar reference;
 * lowp_avx2.c: the AVX2 kernels) for fp32, bf16 and int8. The element-wise
 * and attention kernels exist as a scalar reference (kernels.c), an AVX2+FMA
 * table (kernels_avx2.c) and an AVX-512 one (kernels_avx512.c, with
 * attention on AVX512_BF16 in kernels_avx512bf16.c); the table is chosen at
 * run time from CPU features, and tests compare every entry of every table
 * the CPU runs with the reference.
 *
 * Shapes: row-major; "rows x n" with a leading dimension equal to n unless an
 * ld argument says otherwise.
 */
#ifndef CEMBED_KERNELS_H
#define CEMBED_KERNELS_H

#include "base/base.h"

/* C[M, N] = A[M, K] @ B[N, K]^T   (B is a Linear weight, [out, in]):
 * OpenBLAS sgemm (after nn_gemm_init succeeded), and a plain loop */
void nn_gemm_bt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);
void nn_gemm_bt_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);
/* Opens OpenBLAS, single-threaded (any thread, any number of times).
 * Fails with EINVAL when libopenblas.so.0 cannot be loaded. */
int nn_gemm_init(void);

/* Precision of the Linear layers' GEMMs (everything else stays fp32):
 *   NN_FP32  OpenBLAS sgemm on the fp32 weights (the reference path);
 *   NN_BF16  weights and activations rounded to bfloat16, products summed
 *            in fp32 (the arithmetic of AVX512_BF16's dot product);
 *   NN_INT8  activations asymmetric uint8 per token at run time (scale and
 *            zero point from the row's min and max), weights symmetric per
 *            output channel in [-63, 63] (7 bits, so that two products of
 *            uint8 x int8 never saturate a 16-bit sum: 2 x 255 x 63 <
 *            32767), products summed exactly in int32, then scaled back. */
typedef enum { NN_FP32, NN_BF16, NN_INT8 } nn_precision;

/* A Linear weight W [N, K] converted once for a low-precision GEMM; the
 * layout of w is in lowp.c. Plain data; free with nn_packed_free. */
typedef struct nn_packed {
    nn_precision prec;
    int N, K;          /* out, in */
    int Np, Kp;        /* N rounded up to NN_PANEL, K rounded up to 4 */
    void *w;           /* int8 quads or bf16 values, in panels of NN_PANEL columns */
    float *scale;      /* int8: [Np] per output channel, 0 beyond N; NULL for bf16 */
    int32_t *colsum;   /* int8: [Np] sum of each column's quantized weights */
    int borrowed;      /* w, scale and colsum point into a map (the weight cache's, gemm.h): not freed */
} nn_packed;

#define NN_PANEL 16      /* output columns per packed panel */
#define NN_LOWP_ROWS 60  /* most rows per gemm_lowp call */

/* Packs W [N, K] (row-major, ld = K) for precision p (NN_FP32 packs plain
 * floats in the same panels as bf16, for the SIMD fp32 kernel).
 * OUT: *out, owning its memory. Fails with ENOMEM. nn_packed_free frees
 * what it owns (nothing when borrowed) and clears *w. */
int nn_pack(const float *W, int N, int K, nn_precision p, int qmax, nn_packed *out);
/* The shape fields of an N x K weight packed for precision p (Np, Kp: the
 * padded sizes), no memory. Cannot fail. */
nn_packed nn_packed_shape(nn_precision p, int N, int K);
void nn_packed_free(nn_packed *w);
/* Bytes a packed weight holds. Cannot fail. */
size_t nn_packed_bytes(const nn_packed *w);
/* Scratch bytes one gemm_lowp call needs for inputs of K columns. */
size_t nn_lowp_scratch_bytes(int K);
/* One weight row w[K] (output channel) to int8 in [-qmax, qmax] (63 for
 * kernels that add u8 x s8 pairs in saturating int16, 127 for VNNI/AMX):
 * OUT: q[K], *scale = max |w| / qmax and *colsum = sum of q. Cannot fail. */
void nn_quantize_weight_row(const float *w, int K, int qmax, int8_t *q, float *scale, int32_t *colsum);
/* The same bits with AVX2 (lowp_avx2.c; only on CPUs with it), and the
 * row function this CPU runs best (start-up quantizes every weight). */
void nn_quantize_weight_row_avx2(const float *w, int K, int qmax, int8_t *q, float *scale, int32_t *colsum);
typedef void (*nn_quantize_weight_fn)(const float *w, int K, int qmax, int8_t *q, float *scale, int32_t *colsum);
nn_quantize_weight_fn nn_quantize_weight_best(void);
/* Quantizes one row a[K] to uint8 q[Kp] (zeros beyond K) as described in
 * lowp.c; OUT: *zp, the zero point. Returns the row's scale. Cannot fail. */
float nn_quantize_row_u8(const float *a, int K, int Kp, uint8_t *q, int32_t *zp);
/* 255 / (hi - lo), the inverse step of a row's uint8 grid; 0 when the
 * range is empty or so small (below 1e-30) that the inverse would overflow:
 * such a row quantizes to zeros. */
static inline float nn_quant_inv(float lo, float hi) { return hi - lo > 1e-30f ? 255.0f / (hi - lo) : 0.0f; }
/* The uint8 zero point of a row whose minimum (<= 0) is lo, with inv = 255 /
 * (max - min): round(-lo * inv) in [0, 255]; 0 for a degenerate row. */
int nn_zero_point(float lo, float inv);
/* Rounds to the nearest bfloat16 (ties to even), returned as a float. */
float nn_round_bf16(float x);
/* Name of a precision ("fp32", "bf16", "int8"). */
const char *nn_precision_name(nn_precision p);

/* What attention adds to a score besides Q K^T: ALiBi's distance penalty
 * and a sliding window. Query i and key j of one sequence: */
typedef struct nn_attn_mask {
    float slope;   /* score(i, j) -= slope |i - j| (ALiBi, bidirectional); 0: none */
    int window;    /* keys with |i - j| > window are not seen; 0: all are */
    int causal;    /* keys j > i are not seen (decoders) */
} nn_attn_mask;

/* A score no key with weight can have: exp of it minus the row's maximum is
 * 0 in every kernel's exp (they clamp or scale it to zero; -inf would make
 * NaN in some). */
#define NN_MASKED (-1e30f)

/* Applies mask m to keys [j0, j1) of row i of a score matrix, row[j0..j1)
 * (scores in units where the penalty is slope * unit per position: 1 for
 * natural-log scores, log2(e) for base-2 ones). The reference's; the SIMD
 * kernels compute the same inside their tiles (attn_mask512 in
 * simd_avx512.h, attn_mask256 in simd_avx2.h), and the tests hold them to it. */
static inline void nn_mask_row(float *row, int j0, int j1, int i, const nn_attn_mask *m, float unit) {
    const float sl = m->slope * unit;
    for (int j = j0; j < j1; j++) {
        const int d = i > j ? i - j : j - i;
        if ((m->window && d > m->window) || (m->causal && j > i)) row[j] = NN_MASKED;
        else if (sl != 0.0f) row[j] -= sl * (float)d;
    }
}

/* The SIMD attention kernels run flash-attention style: a super block of up
 * to NN_ATT_QS query rows at a time against tiles of NN_ATT_KT keys (each
 * tile's scores exist only as a few register rows of NN_ATT_KT floats), with
 * an online softmax (running row max and sum, earlier output rescaled when
 * the max grows), so a head holds O(L x head_dim) floats, never L x L. A
 * tile that no query of a block sees (above the diagonal when causal,
 * outside a sliding window) is skipped; the mask and ALiBi's bias are
 * computed inside the kernel, 16 (or 8) keys at a time. */
#define NN_ATT_QS 96
#define NN_ATT_KT 128

/* Attention's scratch, every table's layout: first the part that does not
 * grow with L (one super block's queries and output, one tile's scores and
 * bf16 probabilities, the running maxima and sums), nn_attention_scratch_fixed
 * floats; then K^T and V of the head, 2 round32(L) dh floats. A call with L
 * tokens touches no more than the first nn_attention_scratch(L, dh) floats. */
static inline size_t nn_attention_scratch_fixed(int dh) {
    return 2 * (size_t)NN_ATT_QS * (size_t)dh + 2 * 16 * (size_t)NN_ATT_KT + 2 * NN_ATT_QS + 64;
}

/* Keys [*lo, *hi) that some query in [i0, i1) of a sequence of L tokens
 * sees under m (NULL: all of them). */
static inline void nn_attn_span(const nn_attn_mask *m, int L, int i0, int i1, int *lo, int *hi) {
    *lo = 0, *hi = L;
    if (!m) return;
    if (m->window) {
        *lo = i0 - m->window > 0 ? i0 - m->window : 0;
        *hi = i1 + m->window < L ? i1 + m->window : L;
    }
    if (m->causal && *hi > i1) *hi = i1;
}

/* 1 when every query in [i0, i1) sees every key in [j0, j1) (a tile needing
 * no mask), 0 when some pair is masked or some key is past L. */
static inline int nn_attn_full(const nn_attn_mask *m, int L, int i0, int i1, int j0, int j1) {
    if (j1 > L) return 0;
    if (!m) return 1;
    if (m->causal && j1 - 1 > i0) return 0;
    return !m->window || (j0 >= i1 - 1 - m->window && j1 - 1 <= i0 + m->window);
}

typedef enum { NN_ACT_GELU, NN_ACT_SILU } nn_act;

typedef struct nn_kernels {
    const char *name;
    /* x[rows, n] += bias[n] */
    void (*bias)(float *x, const float *bias, int rows, int n);
    /* x[rows, n] = gelu_erf(x + bias) */
    void (*bias_gelu)(float *x, const float *bias, int rows, int n);
    /* res[rows, n] = LayerNorm(x + bias + res) * g + b   (x may be NULL: res = LN(res)) */
    void (*add_layernorm)(const float *x, const float *bias, float *res, const float *g, const float *b,
                          float eps, int rows, int n);
    /* One head of one sequence of L tokens, queries [i0, i1) of it:
     * out[i0..i1, dh] = softmax(scale * Q K^T + mask) V, where row i of Q,
     * K, V starts at q + i*ld, k + i*ld, v + i*ld and row i of out at out +
     * i*ldo; mask may be NULL (nothing added). scratch holds
     * nn_attention_scratch(L, dh) floats. A row's result is the same bits
     * whatever the range, when i0 is a multiple of NN_ATT_QS (so that
     * threads may share a long head's queries). */
    void (*attention)(const float *q, const float *k, const float *v, int ld, int L, int i0, int i1, int dh,
                      float scale, const nn_attn_mask *mask, float *out, int ldo, float *scratch);
    /* The same with Q, K, the probabilities and V rounded to bf16 and every
     * product summed in fp32 (AVX512_BF16's dot product); NULL in a table
     * without it (the engine then runs `attention`). */
    void (*attention_bf16)(const float *q, const float *k, const float *v, int ld, int L, int i0, int i1, int dh,
                           float scale, const nn_attn_mask *mask, float *out, int ldo, float *scratch);
    /* x[rows, n] = x / sqrt(mean(x^2) + eps) * g (RMSNorm, fp32 as Hugging
     * Face computes it; rows contiguous) */
    void (*rms_norm)(float *x, const float *g, float eps, int rows, int n);
    /* A gated linear unit in place: x[r, 0..n) = act(x[r, 0..n)) * x[r, n..2n)
     * for rows r < rows (row stride ld). */
    void (*glu)(float *x, int ld, int rows, int n, nn_act act);
    /* C[M, N] = A[M, K] @ W^T + bias, then GELU when gelu is set, for W
     * packed fp32, bf16 or int8 (A is fp32; the kernel rounds or quantizes it). M <=
     * NN_LOWP_ROWS; bias may be NULL; scratch holds nn_lowp_scratch_bytes(K)
     * bytes. */
    void (*gemm_lowp)(int M, const float *A, int lda, const nn_packed *W, const float *bias, int gelu, float *C,
                      int ldc, void *scratch);
    /* The pieces around another library's GEMM (nn/gemm.c):
     * q[r, 0..ldq) = row r of A[M, K] as nn_quantize_row_u8 makes it (zeros
     * from K to ldq); OUT: sa[r], zp[r]. Bit-exact with the reference. */
    void (*quantize_u8)(int M, int K, const float *A, int lda, uint8_t *q, int ldq, float *sa, int32_t *zp);
    /* C[r, n] = (acc[r, n] - zp[r] colsum[n]) * (sa[r] sw[n]) + bias[n], then
     * GELU when gelu is set (bias may be NULL): an int8 GEMM's epilogue */
    void (*dequant_i8)(int M, int N, const int32_t *acc, int ldacc, const float *sa, const int32_t *zp,
                       const float *sw, const int32_t *colsum, const float *bias, int gelu, float *C, int ldc);
    /* C[r, n] = acc[r, n] + bias[n], then GELU when gelu is set (bias may be NULL) */
    void (*bias_act)(int M, int N, const float *acc, int ldacc, const float *bias, int gelu, float *C, int ldc);
    /* out[r, k] = A[r, k] rounded to bf16 (to nearest, ties to even) */
    void (*to_bf16)(int M, int K, const float *A, int lda, uint16_t *out, int ldo);
} nn_kernels;

/* GELU with erf, the reference's: 0.5 v (1 + erf(v / sqrt 2)). */
float nn_gelu_ref(float v);
/* The reference RMSNorm (every table's: it is a small share of the work). */
void nn_rms_norm_ref(float *x, const float *g, float eps, int rows, int n);
/* SiLU, the reference's: v / (1 + exp(-v)). */
float nn_silu_ref(float v);
/* Rounds to bf16 (ties to even) and returns the 16 bits; nn_bf16_float
 * widens such bits back (exact). */
uint16_t nn_bf16_bits(float x);
float nn_bf16_float(uint16_t h);
/* The scalar reference of dequant_i8 (every table's values must equal it
 * bit for bit without GELU). */
void nn_dequant_i8_ref(int M, int N, const int32_t *acc, int ldacc, const float *sa, const int32_t *zp,
                       const float *sw, const int32_t *colsum, const float *bias, int gelu, float *C, int ldc);
/* The scalar reference of gemm_lowp (the reference table's entry). */
void nn_gemm_lowp_ref(int M, const float *A, int lda, const nn_packed *W, const float *bias, int gelu, float *C,
                      int ldc, void *scratch);

/* Floats of attention's scratch for a head of L tokens (see above). */
size_t nn_attention_scratch(int L, int dh);
const nn_kernels *nn_kernels_ref(void);
/* The fastest table this CPU runs (cpu_features(), so ONEDNN_MAX_CPU_ISA
 * lowers it too); never NULL. */
const nn_kernels *nn_kernels_best(void);
/* NULL when the CPU lacks AVX2 and FMA. */
const nn_kernels *nn_kernels_avx2(void);
/* Whether precision p runs attention's products in bf16 here: where the
 * precision is low already (bf16, int8) and the best table does bf16 dot
 * products in hardware faster than fp32 FMAs (cpu_bf16_dot_fast;
 * bench/fidelity.py holds the bars). */
int nn_bf16_attention(nn_precision p);
/* NULL below AVX512_CORE; with AVX512_BF16 its attention_bf16 is set. */
const nn_kernels *nn_kernels_avx512(void);
/* The SIMD tables, each defined in the file compiled for its ISA; only the
 * nn_kernels_* functions above may hand them out. */
extern const nn_kernels nn_table_avx2, nn_table_avx512, nn_table_avx512_bf16;
void nn_attention_bf16_avx512(const float *q, const float *k, const float *v, int ld, int L, int i0, int i1, int dh, float scale,
                              const nn_attn_mask *mask, float *out, int ldo, float *scratch);
/* Pieces of the AVX2 table that the AVX-512 one shares (lowp_avx2.c). */
void nn_quantize_u8_avx2(int M, int K, const float *A, int lda, uint8_t *q, int ldq, float *sa, int32_t *zp);
void nn_dequant_i8_avx2(int M, int N, const int32_t *acc, int ldacc, const float *sa, const int32_t *zp,
                        const float *sw, const int32_t *colsum, const float *bias, int gelu, float *C, int ldc);
void nn_bias_act_avx2(int M, int N, const float *acc, int ldacc, const float *bias, int gelu, float *C, int ldc);
void nn_to_bf16_avx2(int M, int K, const float *A, int lda, uint16_t *out, int ldo);
/* The AVX2 table's gemm_lowp (lowp_avx2.c). */
void nn_gemm_lowp_avx2(int M, const float *A, int lda, const nn_packed *W, const float *bias, int gelu, float *C,
                       int ldc, void *scratch);

#endif
