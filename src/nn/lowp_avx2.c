/* The bf16 and int8 GEMMs with AVX2 + FMA (compiled with -mavx2 -mfma; the
 * table in kernels_avx2.c points here only when the CPU has both). Packed
 * layouts are described in lowp.c.
 *
 * Both work in tiles of a few rows x 16 columns, the panel's weights staying
 * in L1/L2 while the tile walks down the (at most NN_LOWP_ROWS) quantized rows.
 *   int8: 5 rows (10 accumulators, 2 weight vectors, the broadcast, a
 *         product and the ones: 15 registers). Per quad of inputs, the row's
 *         4 uint8 activations broadcast x 32 int8 weights: vpmaddubsw sums
 *         pairs to int16 (at most 2 x 255 x 63: never saturates), vpmaddwd
 *         by ones sums those pairs to int32, vpaddd accumulates. 3 uops per
 *         32 multiply-adds; measured on AVX2 Zen cores, that is 1.9x the fp32
 *         FMA rate, where vpmaddwd on 16-bit pairs + vpaddd gives 1.45x;
 *   bf16: 6 rows (12 accumulators). Per input, 8 bf16 weights widened to
 *         fp32 by a 16-bit shift, FMA with the broadcast (bf16-rounded)
 *         activation. Without AVX512_BF16 this is fp32 arithmetic on half the
 *         weight bytes;
 *   fp32: the bf16 tile on fp32 weights (no widening).
 * The epilogue (scale back, bias, GELU) runs on the accumulators before the
 * single store of the tile.
 */
#include <string.h>

#include "kernels.h"
#include "simd_avx2.h"

/* x's bits rounded to nearest even at bit 16: the bf16 is the top half
 * (activations are finite; nn_bf16_bits handles the rest) */
static inline __m256i bf16_round256(__m256 x) {
    const __m256i u = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    return _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
}

#define MR 6      /* bf16 tile rows */
#define MR_I8 5   /* int8 tile rows: one more register goes to the products */

/* acc[2r + h] (r < 5, h < 2) = sum over quads of a_r . w, columns 8h..8h+7 */
static inline void i8_tile(const uint8_t *a, int lda, const int8_t *b, int quads, __m256i acc[2 * MR_I8]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
            c31 = c00, c40 = c00, c41 = c00;
#define I8_ROW(r)                                                                                   \
    do {                                                                                            \
        int32_t four;                                                                               \
        memcpy(&four, a + (size_t)(r) * lda + 4 * (size_t)g, sizeof four);                          \
        const __m256i av = _mm256_set1_epi32(four);                                                 \
        c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones)); \
        c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones)); \
    } while (0)
    for (int g = 0; g < quads; g++) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)(b + 64 * (size_t)g));
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + 64 * (size_t)g + 32));
        I8_ROW(0);
        I8_ROW(1);
        I8_ROW(2);
        I8_ROW(3);
        I8_ROW(4);
    }
#undef I8_ROW
    acc[0] = c00, acc[1] = c01, acc[2] = c10, acc[3] = c11, acc[4] = c20, acc[5] = c21;
    acc[6] = c30, acc[7] = c31, acc[8] = c40, acc[9] = c41;
}

static inline __m256 bf16_widen(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* acc[2r + h] (r < 6, h < 2) = sum over k of a_r[k] w[k], columns 8h..8h+7;
 * LOAD(k, h) gives weights [k, 8h .. 8h+8) as fp32. */
#define FLOAT_TILE(name, wtype, LOAD)                                                                          \
    static void name(const float *a, int lda, const wtype *b, int K, __m256 acc[2 * MR]) {                   \
        __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, \
               c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;                                       \
        for (int k = 0; k < K; k++) {                                                                        \
            const __m256 b0 = LOAD(k, 0), b1 = LOAD(k, 1);                                                   \
            F_ROW(0);                                                                                        \
            F_ROW(1);                                                                                        \
            F_ROW(2);                                                                                        \
            F_ROW(3);                                                                                        \
            F_ROW(4);                                                                                        \
            F_ROW(5);                                                                                        \
        }                                                                                                    \
        acc[0] = c00, acc[1] = c01, acc[2] = c10, acc[3] = c11, acc[4] = c20, acc[5] = c21;                  \
        acc[6] = c30, acc[7] = c31, acc[8] = c40, acc[9] = c41, acc[10] = c50, acc[11] = c51;                \
    }
#define F_ROW(r)                                                          \
    do {                                                                  \
        const __m256 av = _mm256_broadcast_ss(a + (size_t)(r) * lda + k); \
        c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0);                       \
        c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);                       \
    } while (0)
#define LOAD_F32(k, h) _mm256_loadu_ps(b + (size_t)(k) * NN_PANEL + 8 * (h))
#define LOAD_BF16(k, h) bf16_widen(b + (size_t)(k) * NN_PANEL + 8 * (h))
FLOAT_TILE(f32_tile, float, LOAD_F32)
FLOAT_TILE(bf16_tile, uint16_t, LOAD_BF16)
#undef F_ROW

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

/* Row a[K] -> q[Kp] uint8 (zeros beyond K), as nn_quantize_row_u8. */
static float quantize_row(const float *a, int K, int Kp, uint8_t *q, int32_t *zp_out) {
    __m256 lo = _mm256_setzero_ps(), hi = lo;
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        const __m256 v = _mm256_loadu_ps(a + k);
        lo = _mm256_min_ps(lo, v), hi = _mm256_max_ps(hi, v);
    }
    if (k < K) {
        const __m256 v = _mm256_maskload_ps(a + k, tail_mask(K - k));   /* masked lanes read 0 */
        lo = _mm256_min_ps(lo, v), hi = _mm256_max_ps(hi, v);
    }
    const float l = -hmax256(_mm256_sub_ps(_mm256_setzero_ps(), lo)), h = hmax256(hi);
    const float inv = nn_quant_inv(l, h);
    const int zp = nn_zero_point(l, inv);
    const __m256 vi = _mm256_set1_ps(inv);
    const __m256i vz = _mm256_set1_epi32(zp);
    for (k = 0; k + 8 <= K; k += 8) {
        /* round, add the zero point; the unsigned packs clamp to [0, 255] */
        const __m256i v = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(a + k), vi)), vz);
        const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64((__m128i *)(q + k), _mm_packus_epi16(w, w));
    }
    for (; k < K; k++) {
        const float x = nearbyintf(a[k] * inv) + (float)zp;
        q[k] = (uint8_t)(x > 255 ? 255 : x >= 0 ? x : 0);   /* NaN: 0 */
    }
    for (; k < Kp; k++) q[k] = 0;
    *zp_out = zp;
    return (h - l) / 255.0f;
}

static void gemm_i8(int M, const float *A, int lda, const nn_packed *W, const float *bias, int gelu, float *C,
                    int ldc, void *scratch) {
    const int N = W->N, K = W->K, Kp = W->Kp, Mp = (M + MR_I8 - 1) / MR_I8 * MR_I8, quads = Kp / 4;
    uint8_t *qa = scratch;                                      /* [Mp, Kp] */
    float *sa = (float *)(qa + (size_t)Mp * (size_t)Kp);        /* [Mp] (Kp is a multiple of 4) */
    int32_t *zp = (int32_t *)(sa + Mp);                         /* [Mp] */
    for (int r = 0; r < M; r++) sa[r] = quantize_row(A + (size_t)r * lda, K, Kp, qa + (size_t)r * Kp, &zp[r]);
    for (int r = M; r < Mp; r++) {
        memset(qa + (size_t)r * Kp, 0, (size_t)Kp);
        sa[r] = 0, zp[r] = 0;
    }
    const int8_t *wb = W->w;
    for (int n0 = 0; n0 < N; n0 += NN_PANEL) {
        // qa [Mp, Kp] @ panel [Kp, 16] -> C[:, n0 .. n0+16)
        const int8_t *panel = wb + (size_t)n0 * (size_t)Kp;
        const __m256 sw0 = _mm256_loadu_ps(W->scale + n0), sw1 = _mm256_loadu_ps(W->scale + n0 + 8);
        const __m256i cs0 = _mm256_loadu_si256((const __m256i *)(W->colsum + n0));
        const __m256i cs1 = _mm256_loadu_si256((const __m256i *)(W->colsum + n0 + 8));
        const float *b = bias ? bias + n0 : NULL;
        for (int r0 = 0; r0 < M; r0 += MR_I8) {
            __m256i acc[2 * MR_I8];
            i8_tile(qa + (size_t)r0 * Kp, Kp, panel, quads, acc);
            for (int r = 0; r < MR_I8 && r0 + r < M; r++) {
                const __m256 s = _mm256_set1_ps(sa[r0 + r]);
                const __m256i z = _mm256_set1_epi32(zp[r0 + r]);
                const __m256i d0 = _mm256_sub_epi32(acc[2 * r], _mm256_mullo_epi32(z, cs0));
                const __m256i d1 = _mm256_sub_epi32(acc[2 * r + 1], _mm256_mullo_epi32(z, cs1));
                float *c = C + (size_t)(r0 + r) * ldc + n0;
                store8(c, _mm256_mul_ps(_mm256_cvtepi32_ps(d0), _mm256_mul_ps(s, sw0)), b, gelu, N - n0);
                store8(c + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(d1), _mm256_mul_ps(s, sw1)), b ? b + 8 : NULL, gelu,
                       N - n0 - 8);
            }
        }
    }
}

/* fp32 and bf16 (W->prec): A copied (bf16: rounded) into rows padded to a
 * whole tile, then 6 x 16 tiles. */
static void gemm_float(int M, const float *A, int lda, const nn_packed *W, const float *bias, int gelu, float *C,
                      int ldc, void *scratch) {
    const int N = W->N, K = W->K, Kp = W->Kp, Mp = (M + MR - 1) / MR * MR;
    float *ab = scratch;   /* [Mp, Kp]: A (bf16: rounded) */
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    for (int r = 0; r < Mp; r++) {
        float *d = ab + (size_t)r * Kp;
        if (r >= M) {
            memset(d, 0, (size_t)Kp * sizeof(float));
            continue;
        }
        const float *a = A + (size_t)r * lda;
        int k = 0;
        if (W->prec == NN_FP32) {
            memcpy(d, a, (size_t)K * sizeof(float));
            k = K;
        }
        for (; k + 8 <= K; k += 8)
            _mm256_storeu_ps(d + k, _mm256_castsi256_ps(_mm256_and_si256(bf16_round256(_mm256_loadu_ps(a + k)), hi)));
        for (; k < K; k++) d[k] = nn_round_bf16(a[k]);
        for (; k < Kp; k++) d[k] = 0;
    }
    for (int n0 = 0; n0 < N; n0 += NN_PANEL) {
        // ab [Mp, K] @ panel [K, 16] -> C[:, n0 .. n0+16)
        const float *b = bias ? bias + n0 : NULL;
        for (int r0 = 0; r0 < M; r0 += MR) {
            __m256 acc[2 * MR];
            if (W->prec == NN_FP32)
                f32_tile(ab + (size_t)r0 * Kp, Kp, (const float *)W->w + (size_t)n0 * (size_t)Kp, K, acc);
            else
                bf16_tile(ab + (size_t)r0 * Kp, Kp, (const uint16_t *)W->w + (size_t)n0 * (size_t)Kp, K, acc);
            for (int r = 0; r < MR && r0 + r < M; r++) {
                float *c = C + (size_t)(r0 + r) * ldc + n0;
                store8(c, acc[2 * r], b, gelu, N - n0);
                store8(c + 8, acc[2 * r + 1], b ? b + 8 : NULL, gelu, N - n0 - 8);
            }
        }
    }
}

void nn_quantize_u8_avx2(int M, int K, const float *A, int lda, uint8_t *q, int ldq, float *sa, int32_t *zp) {
    for (int r = 0; r < M; r++) sa[r] = quantize_row(A + (size_t)r * lda, K, ldq, q + (size_t)r * ldq, &zp[r]);
}

void nn_dequant_i8_avx2(int M, int N, const int32_t *acc, int ldacc, const float *sa, const int32_t *zp,
                        const float *sw, const int32_t *colsum, const float *bias, int gelu, float *C, int ldc) {
    for (int r = 0; r < M; r++) {
        const __m256 s = _mm256_set1_ps(sa[r]);
        const __m256i z = _mm256_set1_epi32(zp[r]);
        const int32_t *a = acc + (size_t)r * ldacc;
        float *c = C + (size_t)r * ldc;
        for (int n = 0; n < N; n += 8) {
            const __m256i m = tail_mask(N - n);
            const __m256i cs = _mm256_maskload_epi32(colsum + n, m);
            const __m256i d = _mm256_sub_epi32(_mm256_maskload_epi32(a + n, m), _mm256_mullo_epi32(z, cs));
            const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(s, _mm256_maskload_ps(sw + n, m)));
            store8(c + n, v, bias ? bias + n : NULL, gelu, N - n);
        }
    }
}

void nn_bias_act_avx2(int M, int N, const float *acc, int ldacc, const float *bias, int gelu, float *C, int ldc) {
    for (int r = 0; r < M; r++)
        for (int n = 0; n < N; n += 8)
            store8(C + (size_t)r * ldc + n, _mm256_maskload_ps(acc + (size_t)r * ldacc + n, tail_mask(N - n)),
                   bias ? bias + n : NULL, gelu, N - n);
}

void nn_to_bf16_avx2(int M, int K, const float *A, int lda, uint16_t *out, int ldo) {
    for (int r = 0; r < M; r++) {
        const float *a = A + (size_t)r * lda;
        uint16_t *o = out + (size_t)r * ldo;
        int k = 0;
        for (; k + 8 <= K; k += 8) {
            const __m256i v = _mm256_srli_epi32(bf16_round256(_mm256_loadu_ps(a + k)), 16);
            const __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            _mm_storeu_si128((__m128i *)(o + k), p);
        }
        for (; k < K; k++) o[k] = nn_bf16_bits(a[k]);
    }
}

void nn_gemm_lowp_avx2(int M, const float *A, int lda, const nn_packed *W, const float *bias, int gelu, float *C,
                       int ldc, void *scratch) {
    CE_ASSERT(M <= NN_LOWP_ROWS);
    if (W->prec == NN_INT8)
        gemm_i8(M, A, lda, W, bias, gelu, C, ldc, scratch);
    else
        gemm_float(M, A, lda, W, bias, gelu, C, ldc, scratch);
}

/* nn_quantize_weight_row with AVX2, the same bits: the row's largest |w|
 * (NaN left out, as fmaxf does), then round(w * qmax / max) to nearest even,
 * NaN to 0, clamped to [-qmax, qmax], and the sum of the codes. Start-up
 * quantizes every weight of the model through here. */
void nn_quantize_weight_row_avx2(const float *w, int K, int qmax, int8_t *q, float *scale, int32_t *colsum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m8 = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) /* max(|w|, m): m when |w| is NaN */
        m8 = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(w + k)), m8);
    float mx = hmax256(m8);
    for (int j = k; j < K; j++) mx = fmaxf(mx, fabsf(w[j]));
    const float qm = (float)qmax;
    *scale = mx / qm;
    const float inv = mx > 0 ? qm / mx : 0.0f;
    const __m256 vi = _mm256_set1_ps(inv), hi = _mm256_set1_ps(qm), lo = _mm256_set1_ps(-qm);
    __m256i sum8 = _mm256_setzero_si256();
    for (k = 0; k + 8 <= K; k += 8) {
        __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(w + k), vi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));   /* NaN -> 0 */
        const __m256i c = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
        sum8 = _mm256_add_epi32(sum8, c);
        const __m128i s16 = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
        _mm_storel_epi64((__m128i *)(q + k), _mm_packs_epi16(s16, s16));
    }
    int32_t lanes[8], sum = 0;
    _mm256_storeu_si256((__m256i *)lanes, sum8);
    for (int j = 0; j < 8; j++) sum += lanes[j];
    for (; k < K; k++) {
        const float x = nearbyintf(w[k] * inv);
        q[k] = (int8_t)(x > qm ? qmax : x < -qm ? -qmax : x == x ? (int)x : 0);
        sum += q[k];
    }
    *colsum = sum;
}
