/* Scalar reference kernels and the BLAS GEMM seam. The reference favours
 * plain, obviously right loops (erff from libm, expf, double accumulators
 * for LayerNorm statistics); the optimized tables are tested against it. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "kernels.h"

void nn_gemm_init(void) { openblas_set_num_threads(1); }

void nn_gemm_bt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}

void nn_gemm_bt_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) acc += (double)A[(size_t)i * lda + k] * B[(size_t)j * ldb + k];
            C[(size_t)i * ldc + j] = (float)acc;
        }
}

static void bias_ref(float *x, const float *bias, int rows, int n) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++) x[(size_t)r * n + j] += bias[j];
}

float nn_gelu_ref(float v) { return 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2)); }

static void bias_gelu_ref(float *x, const float *bias, int rows, int n) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++) x[(size_t)r * n + j] = nn_gelu_ref(x[(size_t)r * n + j] + bias[j]);
}

static void add_layernorm_ref(const float *x, const float *bias, float *res, const float *g, const float *b,
                              float eps, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *y = res + (size_t)r * n;
        double sum = 0, sq = 0;
        for (int j = 0; j < n; j++) {
            float v = y[j];
            if (x) v += x[(size_t)r * n + j] + (bias ? bias[j] : 0.0f);
            y[j] = v;
            sum += v;
        }
        double mean = sum / n;
        for (int j = 0; j < n; j++) sq += (y[j] - mean) * (y[j] - mean);
        float inv = (float)(1.0 / sqrt(sq / n + eps));
        for (int j = 0; j < n; j++) y[j] = (float)(y[j] - mean) * inv * g[j] + b[j];
    }
}

size_t nn_attention_scratch(int L, int dh) {
    size_t lp = ((size_t)L + 15) & ~(size_t)15;   /* covers every kernel's padding */
    return 3 * lp * (size_t)dh + 16 * (size_t)dh + 8 * lp + 64;
}

static void attention_ref(const float *q, const float *k, const float *v, int ld, int L, int dh, float scale,
                          float *out, int ldo, float *scratch) {
    float *s = scratch;   /* one row of scores [L] */
    for (int i = 0; i < L; i++) {
        float mx = -INFINITY;
        for (int j = 0; j < L; j++) {
            float acc = 0;
            for (int d = 0; d < dh; d++) acc += q[(size_t)i * ld + d] * k[(size_t)j * ld + d];
            s[j] = acc * scale;
            if (s[j] > mx) mx = s[j];
        }
        float sum = 0;
        for (int j = 0; j < L; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        for (int d = 0; d < dh; d++) {
            float acc = 0;
            for (int j = 0; j < L; j++) acc += s[j] * v[(size_t)j * ld + d];
            out[(size_t)i * ldo + d] = acc / sum;
        }
    }
}

static const nn_kernels ref = {
    .name = "scalar",
    .bias = bias_ref,
    .bias_gelu = bias_gelu_ref,
    .add_layernorm = add_layernorm_ref,
    .attention = attention_ref,
    .gemm_lowp = nn_gemm_lowp_ref,
};

const nn_kernels *nn_kernels_ref(void) { return &ref; }

const nn_kernels *nn_kernels_best(void) {
    const nn_kernels *k = nn_kernels_avx2();
    return k ? k : &ref;
}
