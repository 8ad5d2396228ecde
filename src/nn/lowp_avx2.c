/* The bf16 and int8 GEMMs with AVX2 + FMA (compiled with -mavx2 -mfma; the
 * table in kernels_avx2.c points here only when the CPU has both). Packed
 * layouts are described in lowp.c.
 *
 * Both work in tiles of 6 rows x 16 columns (12 accumulators, 2 weight
 * vectors and 1 broadcast: 15 of the 16 ymm registers), the panel's weights
 * staying in L1/L2 while the tile walks down the (at most 48) quantized rows.
 *   int8: per pair of inputs, 16 weights sign-extended to 16 bits
 *         (vpmovsxbw) x the row's broadcast pair: vpmaddwd gives 8 exact
 *         int32 sums of two products (|q| <= 127: no saturation, unlike
 *         vpmaddubsw), vpaddd accumulates: 16 multiply-adds per uop, twice
 *         the fp32 FMA rate on CPUs without VNNI;
 *   bf16: per input, 8 bf16 weights widened to fp32 by a 16-bit shift, FMA
 *         with the broadcast (bf16-rounded) activation. Without AVX512_BF16
 *         this is fp32 arithmetic on half the weight bytes.
 * The epilogue (scale back, bias, GELU) runs on the accumulators before the
 * single store of the tile.
 */
#include <string.h>

#include "kernels.h"
#include "simd_avx2.h"

#define MR 6

static inline __m256i bcast_pair(const int16_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* acc[2r + h] (r < 6, h < 2) = sum over pairs of a_r . w, columns 8h..8h+7 */
static inline void i8_tile(const int16_t *a, int lda, const int8_t *b, int pairs, __m256i acc[2 * MR]) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
            c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#define I8_ROW(r)                                                                       \
    do {                                                                                \
        const __m256i av = bcast_pair(a + (size_t)(r) * lda + 2 * q);                   \
        c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(av, b0));                 \
        c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(av, b1));                 \
    } while (0)
    for (int q = 0; q < pairs; q++) {
        const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 32 * (size_t)q)));
        const __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 32 * (size_t)q + 16)));
        I8_ROW(0);
        I8_ROW(1);
        I8_ROW(2);
        I8_ROW(3);
        I8_ROW(4);
        I8_ROW(5);
    }
#undef I8_ROW
    acc[0] = c00, acc[1] = c01, acc[2] = c10, acc[3] = c11, acc[4] = c20, acc[5] = c21;
    acc[6] = c30, acc[7] = c31, acc[8] = c40, acc[9] = c41, acc[10] = c50, acc[11] = c51;
}

static inline __m256 bf16_widen(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

static inline void bf16_tile(const float *a, int lda, const uint16_t *b, int K, __m256 acc[2 * MR]) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#define BF_ROW(r)                                                   \
    do {                                                            \
        const __m256 av = _mm256_broadcast_ss(a + (size_t)(r) * lda + k); \
        c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0);                 \
        c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);                 \
    } while (0)
    for (int k = 0; k < K; k++) {
        const __m256 b0 = bf16_widen(b + (size_t)k * NN_PANEL), b1 = bf16_widen(b + (size_t)k * NN_PANEL + 8);
        BF_ROW(0);
        BF_ROW(1);
        BF_ROW(2);
        BF_ROW(3);
        BF_ROW(4);
        BF_ROW(5);
    }
#undef BF_ROW
    acc[0] = c00, acc[1] = c01, acc[2] = c10, acc[3] = c11, acc[4] = c20, acc[5] = c21;
    acc[6] = c30, acc[7] = c31, acc[8] = c40, acc[9] = c41, acc[10] = c50, acc[11] = c51;
}

/* Stores 8 columns of one output row: v (+ bias) (GELU), masked to n_left. */
static inline void store8(float *c, __m256 v, const float *bias, int gelu, int n_left) {
    if (n_left >= 8) {
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias));
        _mm256_storeu_ps(c, gelu ? gelu256(v) : v);
    } else if (n_left > 0) {
        const __m256i m = tail_mask(n_left);
        if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias, m));
        _mm256_maskstore_ps(c, m, gelu ? gelu256(v) : v);
    }
}

/* Row r of A [., K] -> q [Kp] int16 (zero beyond K); returns the row's scale. */
static float quantize_row(const float *a, int K, int Kp, int16_t *q) {
    __m256 mx = _mm256_setzero_ps();
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    int k = 0;
    for (; k + 8 <= K; k += 8) mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(a + k), absmask));
    if (k < K) mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_maskload_ps(a + k, tail_mask(K - k)), absmask));
    const float m = hmax256(mx), inv = m > 0 ? 127.0f / m : 0.0f;
    const __m256 vi = _mm256_set1_ps(inv);
    for (k = 0; k + 8 <= K; k += 8) {
        /* |a * inv| <= 127 up to rounding: the conversion needs no clamp */
        const __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(a + k), vi));
        _mm_storeu_si128((__m128i *)(q + k), _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
    }
    for (; k < K; k++) {
        const float x = nearbyintf(a[k] * inv);
        q[k] = (int16_t)(x > 127 ? 127 : x < -127 ? -127 : x);
    }
    for (; k < Kp; k++) q[k] = 0;
    return m / 127.0f;
}

static void gemm_i8(int M, const float *A, int lda, const nn_packed *W, const float *bias, int gelu, float *C,
                    int ldc, void *scratch) {
    const int N = W->N, K = W->K, Kp = W->Kp, Mp = (M + MR - 1) / MR * MR, pairs = Kp / 2;
    int16_t *qa = scratch;                                  /* [Mp, Kp] */
    float *sa = (float *)(qa + (size_t)Mp * (size_t)Kp);    /* [Mp] */
    for (int r = 0; r < M; r++) sa[r] = quantize_row(A + (size_t)r * lda, K, Kp, qa + (size_t)r * Kp);
    for (int r = M; r < Mp; r++) {
        memset(qa + (size_t)r * Kp, 0, (size_t)Kp * sizeof(int16_t));
        sa[r] = 0;
    }
    const int8_t *wb = W->w;
    for (int n0 = 0; n0 < N; n0 += NN_PANEL) {
        // qa [Mp, Kp] @ panel [Kp, 16] -> C[:, n0 .. n0+16)
        const int8_t *panel = wb + (size_t)n0 * (size_t)Kp;
        const __m256 sw0 = _mm256_loadu_ps(W->scale + n0), sw1 = _mm256_loadu_ps(W->scale + n0 + 8);
        const float *b = bias ? bias + n0 : NULL;
        for (int r0 = 0; r0 < M; r0 += MR) {
            __m256i acc[2 * MR];
            i8_tile(qa + (size_t)r0 * Kp, Kp, panel, pairs, acc);
            for (int r = 0; r < MR && r0 + r < M; r++) {
                const __m256 s = _mm256_set1_ps(sa[r0 + r]);
                float *c = C + (size_t)(r0 + r) * ldc + n0;
                store8(c, _mm256_mul_ps(_mm256_cvtepi32_ps(acc[2 * r]), _mm256_mul_ps(s, sw0)), b, gelu, N - n0);
                store8(c + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(acc[2 * r + 1]), _mm256_mul_ps(s, sw1)), b ? b + 8 : NULL,
                       gelu, N - n0 - 8);
            }
        }
    }
}

static void gemm_bf16(int M, const float *A, int lda, const nn_packed *W, const float *bias, int gelu, float *C,
                      int ldc, void *scratch) {
    const int N = W->N, K = W->K, Kp = W->Kp, Mp = (M + MR - 1) / MR * MR;
    float *ab = scratch;   /* [Mp, Kp]: A rounded to bf16 */
    const __m256i round = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1),
                  hi = _mm256_set1_epi32((int)0xffff0000u);
    for (int r = 0; r < Mp; r++) {
        float *d = ab + (size_t)r * Kp;
        if (r >= M) {
            memset(d, 0, (size_t)Kp * sizeof(float));
            continue;
        }
        const float *a = A + (size_t)r * lda;
        int k = 0;
        for (; k + 8 <= K; k += 8) {
            /* round to nearest even on the top 16 bits (activations are finite) */
            const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(a + k));
            const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
            const __m256i v = _mm256_and_si256(_mm256_add_epi32(u, _mm256_add_epi32(round, lsb)), hi);
            _mm256_storeu_ps(d + k, _mm256_castsi256_ps(v));
        }
        for (; k < K; k++) d[k] = nn_round_bf16(a[k]);
        for (; k < Kp; k++) d[k] = 0;
    }
    const uint16_t *wb = W->w;
    for (int n0 = 0; n0 < N; n0 += NN_PANEL) {
        // ab [Mp, K] @ panel [K, 16] -> C[:, n0 .. n0+16)
        const uint16_t *panel = wb + (size_t)n0 * (size_t)Kp;
        const float *b = bias ? bias + n0 : NULL;
        for (int r0 = 0; r0 < M; r0 += MR) {
            __m256 acc[2 * MR];
            bf16_tile(ab + (size_t)r0 * Kp, Kp, panel, K, acc);
            for (int r = 0; r < MR && r0 + r < M; r++) {
                float *c = C + (size_t)(r0 + r) * ldc + n0;
                store8(c, acc[2 * r], b, gelu, N - n0);
                store8(c + 8, acc[2 * r + 1], b ? b + 8 : NULL, gelu, N - n0 - 8);
            }
        }
    }
}

void nn_gemm_lowp_avx2(int M, const float *A, int lda, const nn_packed *W, const float *bias, int gelu, float *C,
                       int ldc, void *scratch) {
    CE_ASSERT(M <= NN_LOWP_ROWS);
    if (W->prec == NN_INT8)
        gemm_i8(M, A, lda, W, bias, gelu, C, ldc, scratch);
    else
        gemm_bf16(M, A, lda, W, bias, gelu, C, ldc, scratch);
}
