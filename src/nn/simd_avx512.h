/* simd_avx512: the AVX-512 math shared by the kernel files compiled for
 * AVX512_CORE (F, BW, VL, DQ) and FMA (kernels_avx512.c,
 * kernels_avx512bf16.c); include it only there.
 *
 * exp goes through 2^t (callers fold log2(e) into a scale they apply
 * anyway: softmax into Q's scale), with vscalefps for the 2^n part; erf is
 * Abramowitz & Stegun 7.1.28 (|error| <= 3e-7; simd_avx2.h keeps 7.1.26,
 * 1.5e-7, with an exp: here the exp-free form is 20% cheaper). Row
 * tails use opmasks: a masked load reads nothing past the mask, a masked
 * store writes nothing there.
 */
#ifndef CEMBED_SIMD_AVX512_H
#define CEMBED_SIMD_AVX512_H

#include <immintrin.h>
#include <math.h>

#include "kernels.h"

/* 2^t for t <= 128 (0 below -150): n = round(t), f = t - n in [-1/2, 1/2],
 * 2^f by a degree-6 polynomial fitted for relative error (1.0e-7 evaluated
 * in fp32), 2^n applied by vscalefps. */
static inline __m512 exp2_512(__m512 t) {
    t = _mm512_max_ps(t, _mm512_set1_ps(-150.0f));
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(1.534569892e-04f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339988783e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618489072e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550329015e-02f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264625e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471825e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

#define LOG2E_F 1.44269504088896341f

/* 0.5 v (1 + erf(v / sqrt 2)), erf by Abramowitz & Stegun 7.1.28:
 * erfc(|z|) = 1 / (1 + a1 |z| + ... + a6 |z|^6)^16 (|error| <= 3e-7), the
 * reciprocal by vrcp14ps and one Newton step, then squared four times.
 * Against erff in double: |GELU error| <= 4.5e-7 max(1, |v|) (the tests'
 * bar is 1e-6), and 20 operations a vector where 7.1.26 with its exp took
 * 28 (3,140 against 2,480 Melem/s a core here). |z| is capped at 6, where
 * erfc is 2e-17: the power stays finite. */
static inline __m512 gelu512(__m512 v) {
    const __m512 z = _mm512_mul_ps(v, _mm512_set1_ps((float)M_SQRT1_2));
    const __m512 az = _mm512_min_ps(_mm512_abs_ps(z), _mm512_set1_ps(6.0f));
    __m512 p = _mm512_set1_ps(0.0000430638f);
    p = _mm512_fmadd_ps(p, az, _mm512_set1_ps(0.0002765672f));
    p = _mm512_fmadd_ps(p, az, _mm512_set1_ps(0.0001520143f));
    p = _mm512_fmadd_ps(p, az, _mm512_set1_ps(0.0092705272f));
    p = _mm512_fmadd_ps(p, az, _mm512_set1_ps(0.0422820123f));
    p = _mm512_fmadd_ps(p, az, _mm512_set1_ps(0.0705230784f));
    p = _mm512_fmadd_ps(p, az, _mm512_set1_ps(1.0f));
    __m512 t = _mm512_rcp14_ps(p);
    t = _mm512_fmadd_ps(t, _mm512_fnmadd_ps(p, t, _mm512_set1_ps(1.0f)), t);
    t = _mm512_mul_ps(t, t);
    t = _mm512_mul_ps(t, t);
    t = _mm512_mul_ps(t, t);
    const __m512 ec = _mm512_mul_ps(t, t);   /* erfc(|z|) */
    /* 1 + erf(z) = 2 - erfc(|z|) for z >= 0, erfc(|z|) for z < 0 */
    const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 one_plus = _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(2.0f), ec), ec);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), one_plus);
}

/* lanes [0, left) set, at most 16 */
static inline __mmask16 mask16(int left) {
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
}

/* max of row[0..n), broadcast to every lane (a softmax row's shift) */
static inline __m512 row_max512(const float *row, int n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n; j += 16) mx = _mm512_mask_max_ps(mx, mask16(n - j), mx, _mm512_loadu_ps(row + j));
    return _mm512_set1_ps(_mm512_reduce_max_ps(mx));
}

/* Keys j0..j0+15 of query i in a sequence of L under mask m (may be NULL):
 * x (scores in log2 units) less ALiBi's penalty, and OUT: *keep, the keys
 * the query sees (j < L, not after i when causal, within the window); all
 * 16 when full (nn_attn_full said so for the tile). */
static inline __m512 attn_mask512(__m512 x, int j0, int i, int L, const nn_attn_mask *m, int full, __mmask16 *keep) {
    *keep = 0xffff;
    if (full && (!m || m->slope == 0.0f)) return x;
    const __m512i jv = _mm512_add_epi32(_mm512_set1_epi32(j0),
                                        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m512i d = _mm512_abs_epi32(_mm512_sub_epi32(jv, _mm512_set1_epi32(i)));
    if (!full) {
        *keep = _mm512_cmplt_epi32_mask(jv, _mm512_set1_epi32(L));
        if (m && m->causal) *keep &= _mm512_cmple_epi32_mask(jv, _mm512_set1_epi32(i));
        if (m && m->window) *keep &= _mm512_cmple_epi32_mask(d, _mm512_set1_epi32(m->window));
    }
    if (m && m->slope != 0.0f) x = _mm512_fnmadd_ps(_mm512_set1_ps(m->slope * LOG2E_F), _mm512_cvtepi32_ps(d), x);
    return x;
}

/* r[0..16), rows of 16 32-bit words, become its columns */
static inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* each 128-bit lane now holds a 4 x 4 block: gather the lanes */
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
        r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
    }
}

#endif
