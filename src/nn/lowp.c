/* Packed Linear weights: packing once at load, and the scalar reference of
 * the packed GEMMs (fp32, bf16, int8).
 *
 * Packed layout (every precision): the N output columns in panels of
 * NN_PANEL = 16 (N padded with zero columns to Np), each panel contiguous,
 * K padded with zeros to Kp (a multiple of 4):
 *   int8: for each quad of inputs k = 4g .. 4g+3: 64 bytes
 *         [c0:k..k+3, c1:k..k+3, ... c7:k..k+3 | c8:k..k+3 ... c15:k..k+3]
 *         so 32 bytes meet a row's 4 activations broadcast to every 32-bit
 *         lane: vpmaddubsw (uint8 x int8, pairs summed to int16) then
 *         vpmaddwd by ones (pairs of those summed to int32) give 8 columns'
 *         4-term dot products;
 *   bf16: for each input k: 16 bf16 values (32 bytes) [c0:k ... c15:k];
 *   fp32: the same with 16 floats (64 bytes).
 * int8 weights: scale[n] = max_k |W[n, k]| / 63 (0 for an all-zero row),
 * q = round(W / scale) in [-63, 63] (7 bits: vpmaddubsw adds its pairs in
 * saturating int16; oneDNN's VNNI and AMX kernels take 127, gemm_dnnl.c),
 * colsum[n] = sum_k q. Activations, per
 * row (token) at run time: lo = min(0, min a), hi = max(0, max a), scale
 * sa = (hi - lo) / 255, zero point zp = round(-lo / sa), qa = clamp(round(a /
 * sa) + zp, 0, 255); then a . w = sa * scale[n] * (qa . q - zp * colsum[n]).
 * A row's result never depends on the other rows in its batch.
 */
#include <math.h>
#include <string.h>

#include "gemm.h"
#include "kernels.h"


size_t nn_packed_bytes(const nn_packed *w) {
    const size_t cells = (size_t)w->Np * (size_t)w->Kp;
    if (w->prec == NN_INT8) return cells + (size_t)w->Np * (sizeof(float) + sizeof(int32_t));
    return cells * (w->prec == NN_BF16 ? sizeof(uint16_t) : sizeof(float));
}

void nn_packed_free(nn_packed *w) {
    if (w->borrowed) {
        memset(w, 0, sizeof *w);
        return;
    }
    base_free(w->w);
    base_free(w->scale);
    base_free(w->colsum);
    memset(w, 0, sizeof *w);
}

nn_quantize_weight_fn nn_quantize_weight_best(void) {
    return cpu_features() & CPU_AVX2 ? nn_quantize_weight_row_avx2 : nn_quantize_weight_row;
}

nn_packed nn_packed_shape(nn_precision p, int N, int K) {
    return (nn_packed){.prec = p, .N = N, .K = K, .Np = (N + NN_PANEL - 1) / NN_PANEL * NN_PANEL, .Kp = (K + 3) & ~3};
}

int nn_pack(const float *W, int N, int K, nn_precision p, int qmax, nn_packed *out) {
    CE_ASSERT(p == NN_INT8 || p == NN_BF16 || p == NN_FP32);
    CE_ASSERT(N > 0 && K > 0);
    nn_packed w = nn_packed_shape(p, N, K);
    const size_t Np = (size_t)w.Np, Kp = (size_t)w.Kp;
    w.w = base_calloc(Np * Kp, p == NN_INT8 ? 1 : p == NN_BF16 ? 2 : 4);
    if (p == NN_INT8) {
        w.scale = base_calloc(Np, sizeof(float));
        w.colsum = base_calloc(Np, sizeof(int32_t));
    }
    int8_t *qrow = p == NN_INT8 ? base_malloc((size_t)K) : NULL;
    if (!w.w || (p == NN_INT8 && (!w.scale || !w.colsum || !qrow))) {
        base_free(qrow);
        nn_packed_free(&w);
        return base_err(CEMBED_ENOMEM, "out of memory packing a %d x %d weight for %s", N, K, nn_precision_name(p));
    }
    const nn_quantize_weight_fn quantize_row = nn_quantize_weight_best();
    for (int n = 0; n < N; n++) {
        const float *row = W + (size_t)n * K;
        const size_t panel = (size_t)(n / NN_PANEL) * NN_PANEL * Kp, c = (size_t)(n % NN_PANEL);
        if (p == NN_BF16) {
            uint16_t *dst = (uint16_t *)w.w + panel;
            for (int k = 0; k < K; k++) dst[(size_t)k * NN_PANEL + c] = nn_bf16_bits(row[k]);
            continue;
        }
        if (p == NN_FP32) {
            float *dst = (float *)w.w + panel;
            for (int k = 0; k < K; k++) dst[(size_t)k * NN_PANEL + c] = row[k];
            continue;
        }
        quantize_row(row, K, qmax, qrow, &w.scale[n], &w.colsum[n]);
        int8_t *dst = (int8_t *)w.w + panel;
        for (int k = 0; k < K; k++) dst[(size_t)(k / 4) * 4 * NN_PANEL + 4 * c + (size_t)(k & 3)] = qrow[k];
    }
    base_free(qrow);
    *out = w;
    return 0;
}

size_t nn_lowp_scratch_bytes(int K) {
    /* rows rounded up to a whole AVX2 tile (5 or 6 rows); int8: uint8 [rows, Kp] + scales and zero
     * points; bf16: float [rows, Kp] */
    const size_t rows = NN_LOWP_ROWS + 8, Kp = (size_t)((K + 3) & ~3);
    const size_t i8 = rows * Kp + rows * (sizeof(float) + sizeof(int32_t)), bf = rows * Kp * sizeof(float);
    return (i8 > bf ? i8 : bf) + 64;
}

static int8_t i8_at(const nn_packed *w, int n, int k) {
    const size_t panel = (size_t)(n / NN_PANEL) * NN_PANEL * (size_t)w->Kp, c = (size_t)(n % NN_PANEL);
    return ((const int8_t *)w->w)[panel + (size_t)(k / 4) * 4 * NN_PANEL + 4 * c + (size_t)(k & 3)];
}

static float float_at(const nn_packed *w, int n, int k) {
    const size_t panel = (size_t)(n / NN_PANEL) * NN_PANEL * (size_t)w->Kp, c = (size_t)(n % NN_PANEL);
    const size_t i = panel + (size_t)k * NN_PANEL + c;
    return w->prec == NN_BF16 ? nn_bf16_float(((const uint16_t *)w->w)[i]) : ((const float *)w->w)[i];
}

void nn_dequant_i8_ref(int M, int N, const int32_t *acc, int ldacc, const float *sa, const int32_t *zp,
                       const float *sw, const int32_t *colsum, const float *bias, int gelu, float *C, int ldc) {
    for (int r = 0; r < M; r++)
        for (int n = 0; n < N; n++) {
            const int32_t d = acc[(size_t)r * ldacc + n] - zp[r] * colsum[n];
            const float v = (float)d * (sa[r] * sw[n]) + (bias ? bias[n] : 0.0f);
            C[(size_t)r * ldc + n] = gelu ? nn_gelu_ref(v) : v;
        }
}

void nn_gemm_lowp_ref(int M, const float *A, int lda, const nn_packed *W, const float *bias, int gelu, float *C,
                      int ldc, void *scratch) {
    const int N = W->N, K = W->K;
    CE_ASSERT(M <= NN_LOWP_ROWS);
    for (int r = 0; r < M; r++) {
        const float *a = A + (size_t)r * lda;
        float *c = C + (size_t)r * ldc;
        if (W->prec == NN_INT8) {
            uint8_t *q = scratch;
            int32_t zp;
            const float sa = nn_quantize_row_u8(a, K, W->Kp, q, &zp);
            for (int n = 0; n < N; n++) {
                int32_t acc = 0;
                for (int k = 0; k < K; k++) acc += (int32_t)q[k] * i8_at(W, n, k);
                nn_dequant_i8_ref(1, 1, &acc, 1, &sa, &zp, &W->scale[n], &W->colsum[n], bias ? &bias[n] : NULL, gelu,
                                  &c[n], 1);
            }
        } else {
            float *ab = scratch;
            for (int k = 0; k < K; k++) ab[k] = W->prec == NN_BF16 ? nn_round_bf16(a[k]) : a[k];
            for (int n = 0; n < N; n++) {
                double acc = 0;
                for (int k = 0; k < K; k++) acc += (double)ab[k] * float_at(W, n, k);
                float v = (float)acc + (bias ? bias[n] : 0.0f);
                c[n] = gelu ? nn_gelu_ref(v) : v;
            }
        }
    }
}

/* bf16 -> fp32, the reference of nn_widen_bf16_avx512 (gemm.h) */
void nn_widen_bf16_ref(const uint16_t *in, size_t n, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = nn_bf16_float(in[i]);
}
