/* simd_avx2: the AVX2 + FMA math shared by the kernel files compiled with
 * -mavx2 -mfma (kernels_avx2.c, lowp_avx2.c); include it only there.
 *
 * exp: 2^n * p(r), n = round(x / ln2), r = x - n ln2 (two-part ln2), p the
 * degree-7 Taylor polynomial (|r| <= ln2/2: relative error < 1e-8), 2^n built
 * in the exponent bits. erf: Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7),
 * enough for GELU's 0.5 x (1 + erf(x / sqrt 2)) at fp32.
 */
#ifndef CEMBED_SIMD_AVX2_H
#define CEMBED_SIMD_AVX2_H

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

/* Keys j0..j0+7 of query i in a sequence of L under mask m (may be NULL):
 * x (natural-log scores) less ALiBi's penalty, and OUT: *keep, all bits
 * set in the lanes of the keys the query sees (j < L, not after i when
 * causal, within the window); every lane when full (nn_attn_full). */
static inline __m256 attn_mask256(__m256 x, int j0, int i, int L, const nn_attn_mask *m, int full, __m256 *keep) {
    *keep = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    if (full && (!m || m->slope == 0.0f)) return x;
    const __m256i jv = _mm256_add_epi32(_mm256_set1_epi32(j0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i d = _mm256_abs_epi32(_mm256_sub_epi32(jv, _mm256_set1_epi32(i)));
    if (!full) {
        __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32(L), jv);
        if (m && m->causal) k = _mm256_andnot_si256(_mm256_cmpgt_epi32(jv, _mm256_set1_epi32(i)), k);
        if (m && m->window) k = _mm256_andnot_si256(_mm256_cmpgt_epi32(d, _mm256_set1_epi32(m->window)), k);
        *keep = _mm256_castsi256_ps(k);
    }
    if (m && m->slope != 0.0f) x = _mm256_fnmadd_ps(_mm256_set1_ps(m->slope), _mm256_cvtepi32_ps(d), x);
    return x;
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

#endif
