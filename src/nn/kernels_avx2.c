/* AVX2 + FMA kernels (compiled with -mavx2 -mfma; called only when the CPU
 * reports both). Row tails use masked loads and stores, so any n works.
 *
 * exp: 2^n * p(r), n = round(x / ln2), r = x - n ln2 (two-part ln2), p the
 * degree-7 Taylor polynomial (|r| <= ln2/2: relative error < 1e-8), 2^n built
 * in the exponent bits. erf: Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7),
 * enough for GELU's 0.5 x (1 + erf(x / sqrt 2)) at fp32.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels.h"

static inline __m256 exp256(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 gelu256(__m256 v) {
    const __m256 z = _mm256_mul_ps(v, _mm256_set1_ps((float)M_SQRT1_2));
    const __m256 az = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z);
    const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(az, _mm256_set1_ps(0.3275911f),
                                                                       _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(1.061405429f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    p = _mm256_mul_ps(p, t);
    /* erfc(|z|) = p exp(-z^2); 1 + erf(z) = 2 - erfc(|z|) for z >= 0, erfc(|z|) for z < 0 */
    const __m256 ec = _mm256_mul_ps(p, exp256(_mm256_mul_ps(_mm256_xor_ps(az, _mm256_set1_ps(-0.0f)), az)));
    const __m256 neg = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 one_plus = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(2.0f), ec), ec, neg);
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), one_plus);
}

static inline __m256i tail_mask(int left) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), idx);
}

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void bias_avx2(float *x, const float *bias, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *y = x + (size_t)r * n;
        int j = 0;
        for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_add_ps(_mm256_loadu_ps(y + j), _mm256_loadu_ps(bias + j)));
        if (j < n) {
            const __m256i m = tail_mask(n - j);
            _mm256_maskstore_ps(y + j, m, _mm256_add_ps(_mm256_maskload_ps(y + j, m), _mm256_maskload_ps(bias + j, m)));
        }
    }
}

static void bias_gelu_avx2(float *x, const float *bias, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *y = x + (size_t)r * n;
        int j = 0;
        for (; j + 8 <= n; j += 8)
            _mm256_storeu_ps(y + j, gelu256(_mm256_add_ps(_mm256_loadu_ps(y + j), _mm256_loadu_ps(bias + j))));
        if (j < n) {
            const __m256i m = tail_mask(n - j);
            _mm256_maskstore_ps(y + j, m, gelu256(_mm256_add_ps(_mm256_maskload_ps(y + j, m), _mm256_maskload_ps(bias + j, m))));
        }
    }
}

static void add_layernorm_avx2(const float *x, const float *bias, float *res, const float *g, const float *b,
                               float eps, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *y = res + (size_t)r * n;
        const float *xr = x ? x + (size_t)r * n : NULL;
        __m256 s = _mm256_setzero_ps();
        for (int j = 0; j < n; j += 8) {
            const __m256i m = tail_mask(n - j);
            __m256 v = _mm256_maskload_ps(y + j, m);
            if (xr) {
                v = _mm256_add_ps(v, _mm256_maskload_ps(xr + j, m));
                if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias + j, m));
                _mm256_maskstore_ps(y + j, m, v);
            }
            s = _mm256_add_ps(s, v);
        }
        const float mean = hsum256(s) / (float)n;
        const __m256 vm = _mm256_set1_ps(mean);
        __m256 q = _mm256_setzero_ps();
        for (int j = 0; j < n; j += 8) {
            const __m256i m = tail_mask(n - j);
            const __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(y + j, m), vm), _mm256_castsi256_ps(m));
            q = _mm256_fmadd_ps(d, d, q);
        }
        const __m256 vi = _mm256_set1_ps(1.0f / sqrtf(hsum256(q) / (float)n + eps));
        for (int j = 0; j < n; j += 8) {
            const __m256i m = tail_mask(n - j);
            const __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(y + j, m), vm), vi);
            _mm256_maskstore_ps(y + j, m, _mm256_fmadd_ps(d, _mm256_maskload_ps(g + j, m), _mm256_maskload_ps(b + j, m)));
        }
    }
}

/* One head of one sequence, QB query rows at a time:
 *   kt [dh, Lp]  = K^T, zero-padded to Lp = round16(L)
 *   s  [QB, Lp]  = scale * q_rows @ kt, then exp(s - rowmax)
 *   out[QB, dh]  = (s @ V) / rowsum, two rows at a time (8 accumulators)
 * NC = dh / 8 is a compile-time constant in each instantiation. */
#define QB 4
static inline __attribute__((always_inline)) void attention_body(const float *q, const float *k, const float *v,
                                                                int ld, int L, const int NC, float scale,
                                                                float *out, int ldo, float *scratch) {
    const int dh = NC * 8, Lp = (L + 15) & ~15;
    float *kt = scratch, *s = scratch + (size_t)dh * Lp;
    for (int d = 0; d < dh; d++) {
        float *row = kt + (size_t)d * Lp;
        for (int j = 0; j < L; j++) row[j] = k[(size_t)j * ld + d];
        for (int j = L; j < Lp; j++) row[j] = 0.0f;
    }
    for (int i0 = 0; i0 < L; i0 += QB) {
        const int nr = L - i0 < QB ? L - i0 : QB;
        float qs[QB][64];
        for (int r = 0; r < QB; r++)
            for (int d = 0; d < dh; d++) qs[r][d] = r < nr ? q[(size_t)(i0 + r) * ld + d] * scale : 0.0f;
        /* 4 rows x 16 columns per step: 8 accumulators, 2 loads + 4 broadcasts per 8 FMAs */
        for (int jb = 0; jb < Lp; jb += 16) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (int d = 0; d < dh; d++) {
                const __m256 k0 = _mm256_loadu_ps(kt + (size_t)d * Lp + jb);
                const __m256 k1 = _mm256_loadu_ps(kt + (size_t)d * Lp + jb + 8);
                __m256 w = _mm256_broadcast_ss(&qs[0][d]);
                a0 = _mm256_fmadd_ps(w, k0, a0);
                b0 = _mm256_fmadd_ps(w, k1, b0);
                w = _mm256_broadcast_ss(&qs[1][d]);
                a1 = _mm256_fmadd_ps(w, k0, a1);
                b1 = _mm256_fmadd_ps(w, k1, b1);
                w = _mm256_broadcast_ss(&qs[2][d]);
                a2 = _mm256_fmadd_ps(w, k0, a2);
                b2 = _mm256_fmadd_ps(w, k1, b2);
                w = _mm256_broadcast_ss(&qs[3][d]);
                a3 = _mm256_fmadd_ps(w, k0, a3);
                b3 = _mm256_fmadd_ps(w, k1, b3);
            }
            _mm256_storeu_ps(s + 0 * (size_t)Lp + jb, a0);
            _mm256_storeu_ps(s + 1 * (size_t)Lp + jb, a1);
            _mm256_storeu_ps(s + 2 * (size_t)Lp + jb, a2);
            _mm256_storeu_ps(s + 3 * (size_t)Lp + jb, a3);
            _mm256_storeu_ps(s + 0 * (size_t)Lp + jb + 8, b0);
            _mm256_storeu_ps(s + 1 * (size_t)Lp + jb + 8, b1);
            _mm256_storeu_ps(s + 2 * (size_t)Lp + jb + 8, b2);
            _mm256_storeu_ps(s + 3 * (size_t)Lp + jb + 8, b3);
        }
        float inv[QB];
        for (int r = 0; r < nr; r++) {
            float *row = s + (size_t)r * Lp;
            __m256 mx = _mm256_set1_ps(-INFINITY);
            int jb = 0;
            for (; jb + 8 <= L; jb += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(row + jb));
            float m = hmax256(mx);
            for (int j = jb; j < L; j++) m = row[j] > m ? row[j] : m;
            const __m256 vm = _mm256_set1_ps(m);
            __m256 sum = _mm256_setzero_ps();
            for (jb = 0; jb < Lp; jb += 8) {
                const __m256 keep = _mm256_castsi256_ps(tail_mask(L - jb));
                const __m256 e = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_loadu_ps(row + jb), vm)), keep);
                _mm256_storeu_ps(row + jb, e);
                sum = _mm256_add_ps(sum, e);
            }
            inv[r] = 1.0f / hsum256(sum);
        }
        for (int r = 0; r < nr; r += 2) {
            const int two = nr - r >= 2;
            const float *p0 = s + (size_t)r * Lp, *p1 = s + (size_t)(r + two) * Lp;
            __m256 c0[8], c1[8];
#pragma GCC unroll 8
            for (int c = 0; c < NC; c++) c0[c] = c1[c] = _mm256_setzero_ps();
            for (int j = 0; j < L; j++) {
                const float *vj = v + (size_t)j * ld;
                const __m256 w0 = _mm256_broadcast_ss(p0 + j), w1 = _mm256_broadcast_ss(p1 + j);
#pragma GCC unroll 8
                for (int c = 0; c < NC; c++) {
                    const __m256 vv = _mm256_loadu_ps(vj + 8 * c);
                    c0[c] = _mm256_fmadd_ps(w0, vv, c0[c]);
                    c1[c] = _mm256_fmadd_ps(w1, vv, c1[c]);
                }
            }
            const __m256 i0v = _mm256_set1_ps(inv[r]), i1v = _mm256_set1_ps(two ? inv[r + 1] : 0.0f);
#pragma GCC unroll 8
            for (int c = 0; c < NC; c++) {
                _mm256_storeu_ps(out + (size_t)(i0 + r) * ldo + 8 * c, _mm256_mul_ps(c0[c], i0v));
                if (two) _mm256_storeu_ps(out + (size_t)(i0 + r + 1) * ldo + 8 * c, _mm256_mul_ps(c1[c], i1v));
            }
        }
    }
}

static void attention_avx2(const float *q, const float *k, const float *v, int ld, int L, int dh, float scale,
                           float *out, int ldo, float *scratch) {
    switch (dh) {
    case 32: attention_body(q, k, v, ld, L, 4, scale, out, ldo, scratch); break;
    case 64: attention_body(q, k, v, ld, L, 8, scale, out, ldo, scratch); break;
    case 16: attention_body(q, k, v, ld, L, 2, scale, out, ldo, scratch); break;
    default: nn_kernels_ref()->attention(q, k, v, ld, L, dh, scale, out, ldo, scratch);
    }
}

static const nn_kernels avx2 = {
    .name = "avx2",
    .bias = bias_avx2,
    .bias_gelu = bias_gelu_avx2,
    .add_layernorm = add_layernorm_avx2,
    .attention = attention_avx2,
};

const nn_kernels *nn_kernels_avx2(void) {
    return (cpu_features() & (CPU_AVX2 | CPU_FMA)) == (CPU_AVX2 | CPU_FMA) ? &avx2 : NULL;
}
