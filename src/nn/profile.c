/* The kernel table of a profiled run (CEMBED_PROFILE=1, base/prof.h): a
 * copy of the best table whose entries time the real ones and count their
 * work, so that the forward pass (nn/bert.c) and the GEMM seam are timed
 * without a line of their own. Only nn_kernels_profiled hands it out, and
 * only a profiled run asks; otherwise the real table runs untouched. */
#include "base/prof.h"
#include "nn/profile.h"

static const nn_kernels *real;
static nn_kernels wrapped;

static void p_bias(float *x, const float *bias, int rows, int n) {
    const uint64_t t0 = prof_now();
    real->bias(x, bias, rows, n);
    prof_add(PROF_ELEMENTWISE, t0, (double)rows * n);
}

static void p_bias_gelu(float *x, const float *bias, int rows, int n) {
    const uint64_t t0 = prof_now();
    real->bias_gelu(x, bias, rows, n);
    prof_add(PROF_GELU, t0, (double)rows * n);
}

static void p_add_layernorm(const float *x, const float *bias, float *res, const float *g, const float *b, float eps,
                            int rows, int n) {
    const uint64_t t0 = prof_now();
    real->add_layernorm(x, bias, res, g, b, eps, rows, n);
    prof_add(PROF_LAYERNORM, t0, (double)rows * n);
}

/* QK^T and PV of queries [i0, i1): 2 (i1 - i0) L dh multiply-adds (a
 * causal or windowed mask does less) */
static void p_attention(const float *q, const float *k, const float *v, int ld, int L, int i0, int i1, int dh,
                        float scale, const nn_attn_mask *mask, float *out, int ldo, float *scratch) {
    const uint64_t t0 = prof_now();
    real->attention(q, k, v, ld, L, i0, i1, dh, scale, mask, out, ldo, scratch);
    prof_add(PROF_ATTENTION, t0, 4.0 * (i1 - i0) * L * dh);
}

static void p_attention_bf16(const float *q, const float *k, const float *v, int ld, int L, int i0, int i1, int dh,
                             float scale, const nn_attn_mask *mask, float *out, int ldo, float *scratch) {
    const uint64_t t0 = prof_now();
    real->attention_bf16(q, k, v, ld, L, i0, i1, dh, scale, mask, out, ldo, scratch);
    prof_add(PROF_ATTENTION, t0, 4.0 * (i1 - i0) * L * dh);
}

static void p_rms_norm(float *x, const float *g, float eps, int rows, int n) {
    const uint64_t t0 = prof_now();
    real->rms_norm(x, g, eps, rows, n);
    prof_add(PROF_LAYERNORM, t0, (double)rows * n);
}

static void p_glu(float *x, int ld, int rows, int n, nn_act act) {
    const uint64_t t0 = prof_now();
    real->glu(x, ld, rows, n, act);
    prof_add(PROF_GELU, t0, (double)rows * n);
}

static void p_quantize_u8(int M, int K, const float *A, int lda, uint8_t *q, int ldq, float *sa, int32_t *zp) {
    const uint64_t t0 = prof_now();
    real->quantize_u8(M, K, A, lda, q, ldq, sa, zp);
    prof_add(PROF_QUANTIZE, t0, (double)M * K);
}

/* GELU fused into an epilogue is timed apart: the epilogue runs without
 * it, then GELU on its output row by row (bias_gelu with a zero bias: x + 0
 * is x, so the values are the fused kernel's). Wider rows stay fused. */
#define GELU_MAX_N 16384
static const float zeros[GELU_MAX_N];

static void gelu_rows(int M, int N, float *C, int ldc) {
    const uint64_t t0 = prof_now();
    for (int r = 0; r < M; r++) real->bias_gelu(C + (size_t)r * ldc, zeros, 1, N);
    prof_add(PROF_GELU_IN_GEMM, t0, (double)M * N);
}

static void p_dequant_i8(int M, int N, const int32_t *acc, int ldacc, const float *sa, const int32_t *zp,
                         const float *sw, const int32_t *colsum, const float *bias, int gelu, float *C, int ldc) {
    const int apart = gelu && N <= GELU_MAX_N;
    const uint64_t t0 = prof_now();
    real->dequant_i8(M, N, acc, ldacc, sa, zp, sw, colsum, bias, gelu && !apart, C, ldc);
    prof_add(gelu && !apart ? PROF_DEQUANT_GELU : PROF_DEQUANT, t0, (double)M * N);
    if (apart) gelu_rows(M, N, C, ldc);
}

static void p_bias_act(int M, int N, const float *acc, int ldacc, const float *bias, int gelu, float *C, int ldc) {
    const int apart = gelu && N <= GELU_MAX_N;
    const uint64_t t0 = prof_now();
    real->bias_act(M, N, acc, ldacc, bias, gelu && !apart, C, ldc);
    prof_add(gelu && !apart ? PROF_DEQUANT_GELU : PROF_DEQUANT, t0, (double)M * N);
    if (apart) gelu_rows(M, N, C, ldc);
}

static void p_to_bf16(int M, int K, const float *A, int lda, uint16_t *out, int ldo) {
    const uint64_t t0 = prof_now();
    real->to_bf16(M, K, A, lda, out, ldo);
    prof_add(PROF_QUANTIZE, t0, (double)M * K);
}

const nn_kernels *nn_kernels_profiled(const nn_kernels *k) {
    /* the reference table is told apart by its address (nn_gemm_pick): it stays as it is */
    if (!prof_enabled || k == nn_kernels_ref()) return k;
    real = k;
    wrapped = *k;
    wrapped.bias = p_bias;
    wrapped.bias_gelu = p_bias_gelu;
    wrapped.add_layernorm = p_add_layernorm;
    wrapped.attention = p_attention;
    wrapped.attention_bf16 = k->attention_bf16 ? p_attention_bf16 : NULL;
    wrapped.rms_norm = p_rms_norm;
    wrapped.glu = p_glu;
    wrapped.quantize_u8 = p_quantize_u8;
    wrapped.dequant_i8 = p_dequant_i8;
    wrapped.bias_act = p_bias_act;
    wrapped.to_bf16 = p_to_bf16;
    return &wrapped;
}
