/* Scalar reference kernels, the choice of SIMD table, and OpenBLAS. The
 * reference favours plain, obviously right loops (erff from libm, expf,
 * double accumulators for LayerNorm statistics); the optimized tables are
 * tested against it.
 *
 * OpenBLAS (the fp32 reference GEMM) is opened with dlopen when first asked
 * for, with OPENBLAS_NUM_THREADS=1 set before: linked normally, its threaded
 * build starts a thread per CPU when the program loads, which would share
 * the cores with the engine's own threads and take signals meant for others.
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };   /* CBLAS's values */
typedef void (*sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc);
static sgemm_fn sgemm;
static char blas_error[256];

static void blas_open(void) {
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (h) *(void **)&sgemm = dlsym(h, "cblas_sgemm");
    if (!sgemm) snprintf(blas_error, sizeof blas_error, "%s", h ? "no cblas_sgemm in it" : dlerror());
}

int nn_gemm_init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, blas_open);
    return sgemm ? 0 : base_err(CEMBED_EINVAL, "OpenBLAS (libopenblas.so.0): %s", blas_error);
}

void nn_gemm_bt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    CE_ASSERT(sgemm);
    sgemm(ROW_MAJOR, NO_TRANS, TRANS, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
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
    /* the largest of the tables' layouts (kernels.h); the reference's one
     * row of L scores fits too */
    return nn_attention_scratch_fixed(dh) + 2 * ((((size_t)L + 31) & ~(size_t)31) * (size_t)dh);
}

/* One head, row by row, each row over the keys it may see (nn_attn_span:
 * the others would weigh exactly 0). bf16 = 0: fp32 throughout, scores
 * scaled after the dot product, exp. bf16 = 1: the products of
 * AVX512_BF16 (q, k, the probabilities and v rounded to bf16, products
 * summed in fp32, the softmax and its normalization after P V in fp32), q
 * scaled by scale * log2(e) before rounding and the scores exponentiated
 * base 2, as the SIMD kernel does. */
static void attention_scalar(const float *q, const float *k, const float *v, int ld, int L, int i0, int i1, int dh, float scale,
                             const nn_attn_mask *mask, float *out, int ldo, float *scratch, int bf16) {
    float *s = scratch;   /* one row of scores [L] */
    const float qs = bf16 ? scale * 1.44269504088896341f : 1.0f;
    for (int i = i0; i < i1; i++) {
        int lo, hi;
        nn_attn_span(mask, L, i, i + 1, &lo, &hi);
        float mx = -INFINITY;
        for (int j = lo; j < hi; j++) {
            float acc = 0;
            for (int d = 0; d < dh; d++) {
                const float a = q[(size_t)i * ld + d], b = k[(size_t)j * ld + d];
                acc += bf16 ? nn_round_bf16(a * qs) * nn_round_bf16(b) : a * b;
            }
            s[j] = bf16 ? acc : acc * scale;
        }
        if (mask) nn_mask_row(s, lo, hi, i, mask, bf16 ? 1.44269504088896341f : 1.0f);
        for (int j = lo; j < hi; j++) mx = s[j] > mx ? s[j] : mx;
        float sum = 0;
        for (int j = lo; j < hi; j++) {
            s[j] = bf16 ? exp2f(s[j] - mx) : expf(s[j] - mx);
            sum += s[j];
        }
        for (int d = 0; d < dh; d++) {
            float acc = 0;
            for (int j = lo; j < hi; j++) {
                const float b = v[(size_t)j * ld + d];
                acc += bf16 ? nn_round_bf16(s[j]) * nn_round_bf16(b) : s[j] * b;
            }
            out[(size_t)i * ldo + d] = acc / sum;
        }
    }
}

static void attention_ref(const float *q, const float *k, const float *v, int ld, int L, int i0, int i1, int dh, float scale,
                          const nn_attn_mask *mask, float *out, int ldo, float *scratch) {
    attention_scalar(q, k, v, ld, L, i0, i1, dh, scale, mask, out, ldo, scratch, 0);
}

static void attention_bf16_ref(const float *q, const float *k, const float *v, int ld, int L, int i0, int i1, int dh, float scale,
                               const nn_attn_mask *mask, float *out, int ldo, float *scratch) {
    attention_scalar(q, k, v, ld, L, i0, i1, dh, scale, mask, out, ldo, scratch, 1);
}


void nn_rms_norm_ref(float *x, const float *g, float eps, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *y = x + (size_t)r * n;
        double sq = 0;
        for (int j = 0; j < n; j++) sq += (double)y[j] * y[j];
        const float inv = (float)(1.0 / sqrt(sq / n + eps));
        for (int j = 0; j < n; j++) y[j] = y[j] * inv * g[j];
    }
}

static void glu_ref(float *x, int ld, int rows, int n, nn_act act) {
    for (int r = 0; r < rows; r++) {
        float *y = x + (size_t)r * ld;
        for (int j = 0; j < n; j++) y[j] = (act == NN_ACT_GELU ? nn_gelu_ref(y[j]) : nn_silu_ref(y[j])) * y[n + j];
    }
}

static void quantize_u8_ref(int M, int K, const float *A, int lda, uint8_t *q, int ldq, float *sa, int32_t *zp) {
    for (int r = 0; r < M; r++) sa[r] = nn_quantize_row_u8(A + (size_t)r * lda, K, ldq, q + (size_t)r * ldq, &zp[r]);
}

static void bias_act_ref(int M, int N, const float *acc, int ldacc, const float *bias, int gelu, float *C, int ldc) {
    for (int r = 0; r < M; r++)
        for (int n = 0; n < N; n++) {
            const float v = acc[(size_t)r * ldacc + n] + (bias ? bias[n] : 0.0f);
            C[(size_t)r * ldc + n] = gelu ? nn_gelu_ref(v) : v;
        }
}

static void to_bf16_ref(int M, int K, const float *A, int lda, uint16_t *out, int ldo) {
    for (int r = 0; r < M; r++)
        for (int k = 0; k < K; k++) out[(size_t)r * ldo + k] = nn_bf16_bits(A[(size_t)r * lda + k]);
}

static const nn_kernels ref = {
    .name = "scalar",
    .bias = bias_ref,
    .bias_gelu = bias_gelu_ref,
    .add_layernorm = add_layernorm_ref,
    .attention = attention_ref,
    .attention_bf16 = attention_bf16_ref,
    .glu = glu_ref,
    .rms_norm = nn_rms_norm_ref,
    .gemm_lowp = nn_gemm_lowp_ref,
    .quantize_u8 = quantize_u8_ref,
    .dequant_i8 = nn_dequant_i8_ref,
    .bias_act = bias_act_ref,
    .to_bf16 = to_bf16_ref,
};

const nn_kernels *nn_kernels_ref(void) { return &ref; }

const nn_kernels *nn_kernels_avx2(void) {
    return (cpu_features() & (CPU_AVX2 | CPU_FMA)) == (CPU_AVX2 | CPU_FMA) ? &nn_table_avx2 : NULL;
}

const nn_kernels *nn_kernels_avx512(void) {
    const unsigned f = cpu_features();
    if ((f & (CPU_AVX2 | CPU_FMA | CPU_AVX512F)) != (CPU_AVX2 | CPU_FMA | CPU_AVX512F)) return NULL;
    return f & CPU_AVX512BF16 ? &nn_table_avx512_bf16 : &nn_table_avx512;
}

int nn_bf16_attention(nn_precision p) {
    const nn_kernels *k = nn_kernels_best();
    /* only where it is faster: int8 on an Intel Xeon spent 12% less CPU time with fp32 attention */
    return p != NN_FP32 && k->attention_bf16 && k != &ref && cpu_bf16_dot_fast();
}

const nn_kernels *nn_kernels_best(void) {
    const nn_kernels *k = nn_kernels_avx512();
    if (!k) k = nn_kernels_avx2();
    return k ? k : &ref;
}
