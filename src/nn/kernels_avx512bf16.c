/* Attention with AVX512_BF16's dot product (compiled with -mavx512bf16 on
 * top of the AVX-512 flags; reached only through the avx512-bf16 table).
 *
 * vdpbf16ps multiplies pairs of bf16 and adds both products to an fp32 lane:
 * 32 multiply-adds an instruction, twice fp32 FMA. Its operands are pairs
 * along the summed index, so per (sequence, head):
 *   qb [Lq, dh/2]  pairs (Q[i][2e], Q[i][2e+1]) * scale log2(e), as bf16: a
 *                  row of bf16 read as 32-bit words is already that
 *   kp [dh/2, Lp]  pairs (K[j][2e], K[j][2e+1]) for each column j: K's rows
 *                  as bf16 words, transposed 16 x 16 in registers
 *   vp [Lh, dh]    pairs (V[2h][c], V[2h+1][c]) (a zero row when L is odd)
 *   s  [QB, Lp]    scores in fp32 (log2 units), 2^(s - rowmax), row sums in fp32
 *   pb [QB, Lp/2]  the probabilities as bf16 pairs
 *   out[QB, dh]    (pb @ vp) / rowsum
 * Rounding is vcvtne2ps2bf16's: to nearest even as the scalar reference
 * (attention_bf16 in kernels.c) rounds, except that denormals become zero;
 * the sums run in another order, so the two agree to fp32 rounding, not
 * bits. dh of 32 and 64 (the BERT sizes in use); other head sizes run the
 * reference.
 */
#include <string.h>

#include "kernels.h"
#include "simd_avx512.h"

#define QB 12

/* 2^t with the degree-4 polynomial (relative error 2.8e-6, far below the
 * bf16 rounding the probabilities get next); t <= 0 and finite here, and
 * vscalefps takes any n down to 0 */
static inline __m512 exp2_bf16(__m512 t) {
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(9.569931775e-03f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.591735989e-02f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402474433e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931218505e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.999992847e-01f));
    return _mm512_scalef_ps(p, n);
}

/* 32 floats lo[0..16), hi[0..16) -> 32 bf16 in that order, i.e. 16 pairs of
 * consecutive values (vcvtne2ps2bf16: to nearest even, denormals to zero) */
static inline __m512i bf16x32(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

static inline __attribute__((always_inline)) void attention_body(const float *q, const float *k, const float *v,
                                                                const nn_attn_mask *mask,
                                                                int ld, int L, const int NC, float scale,
                                                                float *out, int ldo, float *scratch) {
    const int dh = NC * 16, dp = dh / 2, Lp = (L + 31) & ~31, Lq = (L + QB - 1) / QB * QB, Lh = (L + 1) / 2;
    uint32_t *kp = (uint32_t *)scratch;                      /* [dp, Lp] */
    uint32_t *vp = kp + (size_t)dp * Lp;                     /* [Lh, dh] */
    uint32_t *qb = vp + (size_t)Lh * dh;                     /* [Lq, dp] */
    float *s = (float *)(qb + (size_t)Lq * dp);              /* [QB, Lp] */
    uint32_t *pb = (uint32_t *)(s + (size_t)QB * Lp);        /* [QB, Lp / 2] */
    // kp [dp, Lp] = K rows as bf16 pairs, transposed 16 x 16 words at a time (zero past L)
    for (int j0 = 0; j0 < Lp; j0 += 16)
        for (int e0 = 0; e0 < dp; e0 += 16) {
            __m512i blk[16];
            for (int i = 0; i < 16; i++) {
                const float *row = k + (size_t)(j0 + i) * ld + 2 * e0;
                blk[i] = j0 + i < L ? bf16x32(_mm512_loadu_ps(row), _mm512_loadu_ps(row + 16)) : _mm512_setzero_si512();
            }
            transpose16(blk);
            for (int i = 0; i < 16; i++) _mm512_storeu_si512(kp + (size_t)(e0 + i) * Lp + j0, blk[i]);
        }
    // vp [Lh, dh] = pairs of V rows (a zero row past L): both rows converted, then interleaved
    const __m512i zip = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int h = 0; h < Lh; h++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) {
            const __m512 v0 = _mm512_loadu_ps(v + (size_t)(2 * h) * ld + 16 * c);
            const __m512 v1 = 2 * h + 1 < L ? _mm512_loadu_ps(v + (size_t)(2 * h + 1) * ld + 16 * c) : _mm512_setzero_ps();
            _mm512_storeu_si512(vp + (size_t)h * dh + 16 * c, _mm512_permutexvar_epi16(zip, bf16x32(v0, v1)));
        }
    // qb [Lq, dp] = scale log2(e) Q as bf16 pairs (zero rows up to Lq)
    const __m512 qs = _mm512_set1_ps(scale * LOG2E_F);   /* scores in log2 units: exp(x) = 2^(x log2 e) */
    for (int i = 0; i < Lq; i++)
#pragma GCC unroll 2
        for (int c = 0; c < NC; c += 2) {
            const float *row = q + (size_t)i * ld + 16 * c;
            _mm512_storeu_si512(qb + (size_t)i * dp + 8 * c,
                                i < L ? bf16x32(_mm512_mul_ps(_mm512_loadu_ps(row), qs),
                                                _mm512_mul_ps(_mm512_loadu_ps(row + 16), qs))
                                      : _mm512_setzero_si512());
        }
    for (int i0 = 0; i0 < L; i0 += QB) {
        const int nr = L - i0 < QB ? L - i0 : QB;
        const uint32_t *q0 = qb + (size_t)i0 * dp;
        // s [QB, Lp] = q0 [QB, dh] @ K^T [dh, Lp], a pair of dh per instruction
        for (int jb = 0; jb < Lp; jb += 32) {
            __m512 a[QB], b[QB];
#pragma GCC unroll 12
            for (int r = 0; r < QB; r++) a[r] = b[r] = _mm512_setzero_ps();
            for (int e = 0; e < dp; e++) {
                const __m512bh k0 = (__m512bh)_mm512_loadu_si512(kp + (size_t)e * Lp + jb);
                const __m512bh k1 = (__m512bh)_mm512_loadu_si512(kp + (size_t)e * Lp + jb + 16);
#pragma GCC unroll 12
                for (int r = 0; r < QB; r++) {
                    const __m512bh w = (__m512bh)_mm512_set1_epi32((int)q0[(size_t)r * dp + e]);
                    a[r] = _mm512_dpbf16_ps(a[r], k0, w);
                    b[r] = _mm512_dpbf16_ps(b[r], k1, w);
                }
            }
#pragma GCC unroll 12
            for (int r = 0; r < QB; r++) {
                _mm512_storeu_ps(s + (size_t)r * Lp + jb, a[r]);
                _mm512_storeu_ps(s + (size_t)r * Lp + jb + 16, b[r]);
            }
        }
        // pb = bf16 pairs of 2^(s - rowmax) (zero past L); inv = 1 / rowsum (fp32)
        float inv[QB];
        for (int r = 0; r < QB; r++) {
            float *row = s + (size_t)r * Lp;
            uint32_t *pr = pb + (size_t)r * (Lp / 2);
            if (r >= nr) {
                memset(pr, 0, (size_t)(Lp / 2) * sizeof(uint32_t));
                continue;
            }
            if (mask) nn_mask_row(row, L, i0 + r, mask, LOG2E_F);
            const __m512 vm = row_max512(row, L);
            __m512 sum = _mm512_setzero_ps();
            int j = 0;
            for (; j + 32 <= L; j += 32) {
                const __m512 e0 = exp2_bf16(_mm512_sub_ps(_mm512_loadu_ps(row + j), vm));
                const __m512 e1 = exp2_bf16(_mm512_sub_ps(_mm512_loadu_ps(row + j + 16), vm));
                sum = _mm512_add_ps(sum, _mm512_add_ps(e0, e1));
                _mm512_storeu_si512(pr + j / 2, bf16x32(e0, e1));
            }
            for (; j < Lp; j += 32) {   /* the last block: zero past L */
                const __m512 e0 = _mm512_maskz_mov_ps(mask16(L - j), exp2_bf16(_mm512_sub_ps(_mm512_loadu_ps(row + j), vm)));
                const __m512 e1 =
                    _mm512_maskz_mov_ps(mask16(L - j - 16), exp2_bf16(_mm512_sub_ps(_mm512_loadu_ps(row + j + 16), vm)));
                sum = _mm512_add_ps(sum, _mm512_add_ps(e0, e1));
                _mm512_storeu_si512(pr + j / 2, bf16x32(e0, e1));
            }
            inv[r] = 1.0f / _mm512_reduce_add_ps(sum);
        }
        // out [nr, dh] = pb [nr, L] @ vp [L, dh] / rowsum, a pair of rows of V per instruction,
        // NB columns of 16 per pass (dh 128: two passes)
        const int NB = NC < 4 ? NC : 4;
        for (int c0 = 0; c0 < NC; c0 += NB) {
            __m512 acc[QB][4];
#pragma GCC unroll 12
            for (int r = 0; r < QB; r++)
#pragma GCC unroll 4
                for (int c = 0; c < NB; c++) acc[r][c] = _mm512_setzero_ps();
            for (int h = 0; h < Lh; h++) {
                __m512bh vv[4];
#pragma GCC unroll 4
                for (int c = 0; c < NB; c++)
                    vv[c] = (__m512bh)_mm512_loadu_si512(vp + (size_t)h * dh + 16 * (c0 + c));
#pragma GCC unroll 12
                for (int r = 0; r < QB; r++) {
                    const __m512bh w = (__m512bh)_mm512_set1_epi32((int)pb[(size_t)r * (Lp / 2) + h]);
#pragma GCC unroll 4
                    for (int c = 0; c < NB; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], vv[c], w);
                }
            }
            for (int r = 0; r < nr; r++) {
                const __m512 iv = _mm512_set1_ps(inv[r]);
#pragma GCC unroll 4
                for (int c = 0; c < NB; c++)
                    _mm512_storeu_ps(out + (size_t)(i0 + r) * ldo + 16 * (c0 + c), _mm512_mul_ps(acc[r][c], iv));
            }
        }
    }
}

void nn_attention_bf16_avx512(const float *q, const float *k, const float *v, int ld, int L, int dh, float scale,
                              const nn_attn_mask *mask, float *out, int ldo, float *scratch) {
    switch (dh) {
    case 32: attention_body(q, k, v, mask, ld, L, 2, scale, out, ldo, scratch); break;
    case 64: attention_body(q, k, v, mask, ld, L, 4, scale, out, ldo, scratch); break;
    case 128: attention_body(q, k, v, mask, ld, L, 8, scale, out, ldo, scratch); break;
    default: nn_kernels_ref()->attention_bf16(q, k, v, ld, L, dh, scale, mask, out, ldo, scratch);
    }
}
