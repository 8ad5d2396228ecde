/* AVX-512 kernels (compiled with -mavx512f -mfma; called only when the CPU
 * reports AVX-512F). Tails use masked loads, so any n works.
 *
 * exp: 2^n * p(r), n = round(x / ln2), r = x - n ln2 (two-part ln2), p the
 * degree-7 Taylor polynomial (|r| <= ln2/2: error < 1e-8 relative), 2^n by
 * vscalefps. erf: Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), which is
 * what GELU's 0.5 x (1 + erf(x / sqrt 2)) needs at fp32.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels.h"

static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f)), _mm512_set1_ps(-87.3f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline __m512 gelu512(__m512 v) {
    const __m512 z = _mm512_mul_ps(v, _mm512_set1_ps((float)M_SQRT1_2));
    const __m512 az = _mm512_abs_ps(z);
    const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(az, _mm512_set1_ps(0.3275911f),
                                                                       _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    p = _mm512_mul_ps(p, t);
    /* erfc(|z|) = p * exp(-z^2); 1 + erf(z) = 2 - erfc(|z|) for z >= 0, erfc(|z|) for z < 0 */
    const __m512 ec = _mm512_mul_ps(p, exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), az), az)));
    const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 one_plus = _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(2.0f), ec), ec);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), one_plus);
}

static inline __mmask16 tail_mask(int left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

static void bias_avx512(float *x, const float *bias, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *y = x + (size_t)r * n;
        for (int j = 0; j < n; j += 16) {
            __mmask16 m = tail_mask(n - j);
            __m512 a = _mm512_maskz_loadu_ps(m, y + j), b = _mm512_maskz_loadu_ps(m, bias + j);
            _mm512_mask_storeu_ps(y + j, m, _mm512_add_ps(a, b));
        }
    }
}

static void bias_gelu_avx512(float *x, const float *bias, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *y = x + (size_t)r * n;
        for (int j = 0; j < n; j += 16) {
            __mmask16 m = tail_mask(n - j);
            __m512 a = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + j), _mm512_maskz_loadu_ps(m, bias + j));
            _mm512_mask_storeu_ps(y + j, m, gelu512(a));
        }
    }
}

static void add_layernorm_avx512(const float *x, const float *bias, float *res, const float *g, const float *b,
                                 float eps, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *y = res + (size_t)r * n;
        const float *xr = x ? x + (size_t)r * n : NULL;
        __m512 s = _mm512_setzero_ps();
        for (int j = 0; j < n; j += 16) {
            __mmask16 m = tail_mask(n - j);
            __m512 v = _mm512_maskz_loadu_ps(m, y + j);
            if (xr) {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, xr + j));
                if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + j));
                _mm512_mask_storeu_ps(y + j, m, v);
            }
            s = _mm512_add_ps(s, v);
        }
        const float mean = _mm512_reduce_add_ps(s) / (float)n;
        const __m512 vm = _mm512_set1_ps(mean);
        __m512 q = _mm512_setzero_ps();
        for (int j = 0; j < n; j += 16) {
            __mmask16 m = tail_mask(n - j);
            __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, y + j), vm);
            q = _mm512_fmadd_ps(d, d, q);
        }
        const float inv = 1.0f / sqrtf(_mm512_reduce_add_ps(q) / (float)n + eps);
        const __m512 vi = _mm512_set1_ps(inv);
        for (int j = 0; j < n; j += 16) {
            __mmask16 m = tail_mask(n - j);
            __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, y + j), vm), vi);
            __m512 o = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, g + j), _mm512_maskz_loadu_ps(m, b + j));
            _mm512_mask_storeu_ps(y + j, m, o);
        }
    }
}

/* One head of one sequence, 4 query rows at a time:
 *   kt [dh, Lp]  = K^T (padded with zeros to Lp = round16(L))
 *   s  [4, Lp]   = scale * q_rows @ kt, then exp(s - rowmax)
 *   out[4, dh]   = (s @ V) / rowsum
 * dh must be a multiple of 16 and at most 64 (else the scalar kernel runs). */
static void attention_avx512(const float *q, const float *k, const float *v, int ld, int L, int dh, float scale,
                             float *out, int ldo, float *scratch) {
    if (dh % 16 != 0 || dh > 64) {
        nn_kernels_ref()->attention(q, k, v, ld, L, dh, scale, out, ldo, scratch);
        return;
    }
    const int Lp = (L + 15) & ~15, nc = dh / 16;
    float *kt = scratch, *s = scratch + (size_t)dh * Lp;
    for (int j = 0; j < Lp; j++)
        for (int d = 0; d < dh; d++) kt[(size_t)d * Lp + j] = j < L ? k[(size_t)j * ld + d] : 0.0f;

    for (int i0 = 0; i0 < L; i0 += 4) {
        const int nr = L - i0 < 4 ? L - i0 : 4;
        float qs[4][64];
        for (int r = 0; r < 4; r++)
            for (int d = 0; d < dh; d++) qs[r][d] = r < nr ? q[(size_t)(i0 + r) * ld + d] * scale : 0.0f;
        /* scores */
        for (int jb = 0; jb < Lp; jb += 16) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int d = 0; d < dh; d++) {
                const __m512 kv = _mm512_loadu_ps(kt + (size_t)d * Lp + jb);
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(qs[0][d]), kv, a0);
                a1 = _mm512_fmadd_ps(_mm512_set1_ps(qs[1][d]), kv, a1);
                a2 = _mm512_fmadd_ps(_mm512_set1_ps(qs[2][d]), kv, a2);
                a3 = _mm512_fmadd_ps(_mm512_set1_ps(qs[3][d]), kv, a3);
            }
            _mm512_storeu_ps(s + 0 * (size_t)Lp + jb, a0);
            _mm512_storeu_ps(s + 1 * (size_t)Lp + jb, a1);
            _mm512_storeu_ps(s + 2 * (size_t)Lp + jb, a2);
            _mm512_storeu_ps(s + 3 * (size_t)Lp + jb, a3);
        }
        /* softmax numerators; padded columns become 0 */
        float inv[4];
        for (int r = 0; r < 4; r++) {
            float *row = s + (size_t)r * Lp;
            __m512 mx = _mm512_set1_ps(-INFINITY);
            for (int jb = 0; jb < Lp; jb += 16)
                mx = _mm512_mask_max_ps(mx, tail_mask(L - jb), mx, _mm512_loadu_ps(row + jb));
            const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
            __m512 sum = _mm512_setzero_ps();
            for (int jb = 0; jb < Lp; jb += 16) {
                __m512 e = _mm512_maskz_mov_ps(tail_mask(L - jb), exp512(_mm512_sub_ps(_mm512_loadu_ps(row + jb), m)));
                _mm512_storeu_ps(row + jb, e);
                sum = _mm512_add_ps(sum, e);
            }
            inv[r] = 1.0f / _mm512_reduce_add_ps(sum);
        }
        /* weighted sum of V rows */
        __m512 acc[4][4];
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
        for (int j = 0; j < L; j++) {
            const float *vj = v + (size_t)j * ld;
            const __m512 p0 = _mm512_set1_ps(s[j]), p1 = _mm512_set1_ps(s[Lp + j]),
                         p2 = _mm512_set1_ps(s[2 * (size_t)Lp + j]), p3 = _mm512_set1_ps(s[3 * (size_t)Lp + j]);
            for (int c = 0; c < nc; c++) {
                const __m512 vv = _mm512_loadu_ps(vj + 16 * c);
                acc[0][c] = _mm512_fmadd_ps(p0, vv, acc[0][c]);
                acc[1][c] = _mm512_fmadd_ps(p1, vv, acc[1][c]);
                acc[2][c] = _mm512_fmadd_ps(p2, vv, acc[2][c]);
                acc[3][c] = _mm512_fmadd_ps(p3, vv, acc[3][c]);
            }
        }
        for (int r = 0; r < nr; r++)
            for (int c = 0; c < nc; c++)
                _mm512_storeu_ps(out + (size_t)(i0 + r) * ldo + 16 * c,
                                 _mm512_mul_ps(acc[r][c], _mm512_set1_ps(inv[r])));
    }
}

static const nn_kernels avx512 = {
    .name = "avx512",
    .bias = bias_avx512,
    .bias_gelu = bias_gelu_avx512,
    .add_layernorm = add_layernorm_avx512,
    .attention = attention_avx512,
};

const nn_kernels *nn_kernels_avx512(void) {
    return (cpu_features() & (CPU_AVX512F | CPU_FMA)) == (CPU_AVX512F | CPU_FMA) ? &avx512 : NULL;
}
