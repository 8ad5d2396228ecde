/* Attention with AVX512_BF16's dot product (compiled with -mavx512bf16 on
 * top of the AVX-512 flags; reached only through the avx512-bf16 table),
 * in tiles with an online softmax as the fp32 kernel (kernels_avx512.c).
 *
 * vdpbf16ps multiplies pairs of bf16 and adds both products to an fp32 lane:
 * 32 multiply-adds an instruction, twice fp32 FMA. Its operands are pairs
 * along the summed index, so per (sequence, head):
 *   kp [dh/2, Lp]  pairs (K[j][2e], K[j][2e+1]) for each column j: K's rows
 *                  as bf16 words, transposed 16 x 16 in registers
 *   vp [Lp/2, dh]  pairs (V[2h][c], V[2h+1][c]) (zero rows past L)
 * per super block of QS queries:
 *   qb [QS, dh/2]  pairs (Q[i][2e], Q[i][2e+1]) * scale log2(e), as bf16: a
 *                  row of bf16 read as 32-bit words is already that
 *   o  [QS, dh]    the unnormalized output so far (fp32); m, l: running max and sum
 * per QB queries and tile of up to KT keys:
 *   s  [QB, KT]    scores in fp32 (log2 units), mask and ALiBi, 2^(s - running max)
 *   pb [QB, KT/2]  the probabilities as bf16 pairs; o = o alpha + pb @ vp
 * Rounding is vcvtne2ps2bf16's: to nearest even as the scalar reference
 * (attention_bf16 in kernels.c) rounds, except that denormals become zero;
 * the sums run in another order and the probabilities are rounded against
 * the running maximum, not the row's, so the two agree to bf16 rounding,
 * not bits. dh of 32, 64 and 128; other head sizes run the reference.
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

#define QS NN_ATT_QS
#define KT NN_ATT_KT

typedef struct att_ws {
    uint32_t *kp, *vp, *qb, *pb;
    float *o, *s, *m, *l, alpha[QB];
    int L, Lp, s0;   /* s0: the super block's first query */
} att_ws;

/* kp and vp for the whole head */
static inline __attribute__((always_inline)) void att_prep(const float *k, const float *v, int ld, const int NC,
                                                          att_ws *w) {
    const int dh = NC * 16, dp = dh / 2, L = w->L, Lp = w->Lp;
    for (int j0 = 0; j0 < Lp; j0 += 16)
        for (int e0 = 0; e0 < dp; e0 += 16) {
            __m512i blk[16];
            for (int i = 0; i < 16; i++) {
                const float *row = k + (size_t)(j0 + i) * ld + 2 * e0;
                blk[i] = j0 + i < L ? bf16x32(_mm512_loadu_ps(row), _mm512_loadu_ps(row + 16)) : _mm512_setzero_si512();
            }
            transpose16(blk);
            for (int i = 0; i < 16; i++) _mm512_storeu_si512(w->kp + (size_t)(e0 + i) * Lp + j0, blk[i]);
        }
    /* both rows converted, then interleaved into pairs */
    const __m512i zip = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int h = 0; h < Lp / 2; h++)
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++) {
            const __m512 v0 = 2 * h < L ? _mm512_loadu_ps(v + (size_t)(2 * h) * ld + 16 * c) : _mm512_setzero_ps();
            const __m512 v1 = 2 * h + 1 < L ? _mm512_loadu_ps(v + (size_t)(2 * h + 1) * ld + 16 * c) : _mm512_setzero_ps();
            _mm512_storeu_si512(w->vp + (size_t)h * dh + 16 * c, _mm512_permutexvar_epi16(zip, bf16x32(v0, v1)));
        }
}

/* s [QB, c1 - c0) = q0 [QB, dh] @ K^T [dh, c0..c1), a pair of dh per instruction */
static inline __attribute__((always_inline)) void att_scores(const uint32_t *q0, const att_ws *w, int c0, int c1,
                                                            const int NC) {
    const int dp = NC * 8;
    for (int jb = c0; jb < c1; jb += 32) {
        __m512 a[QB], b[QB];
#pragma GCC unroll 12
        for (int r = 0; r < QB; r++) a[r] = b[r] = _mm512_setzero_ps();
        for (int e = 0; e < dp; e++) {
            const __m512bh k0 = (__m512bh)_mm512_loadu_si512(w->kp + (size_t)e * w->Lp + jb);
            const __m512bh k1 = (__m512bh)_mm512_loadu_si512(w->kp + (size_t)e * w->Lp + jb + 16);
#pragma GCC unroll 12
            for (int r = 0; r < QB; r++) {
                const __m512bh x = (__m512bh)_mm512_set1_epi32((int)q0[(size_t)r * dp + e]);
                a[r] = _mm512_dpbf16_ps(a[r], k0, x);
                b[r] = _mm512_dpbf16_ps(b[r], k1, x);
            }
        }
#pragma GCC unroll 12
        for (int r = 0; r < QB; r++) {
            _mm512_storeu_ps(w->s + (size_t)r * KT + (jb - c0), a[r]);
            _mm512_storeu_ps(w->s + (size_t)r * KT + (jb - c0) + 16, b[r]);
        }
    }
}

/* Row r (query s0 + b0 + r) of the tile [c0, c1): mask and ALiBi, the new
 * running max, pb = bf16 pairs of 2^(s - max) (0 where masked), the running
 * sum of the fp32 values; OUT: w->alpha[r], the old output's factor. */
static void att_softmax_row(att_ws *w, int r, int b0, int c0, int c1, const nn_attn_mask *mask, int full) {
    float *row = w->s + (size_t)r * KT, *m = w->m + b0 + r, *l = w->l + b0 + r;
    uint32_t *pr = w->pb + (size_t)r * (KT / 2);
    const int i = w->s0 + b0 + r, n = c1 - c0;
    __mmask16 keep[KT / 16];
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n; j += 16) {
        const __m512 x = attn_mask512(_mm512_loadu_ps(row + j), c0 + j, i, w->L, mask, full, &keep[j / 16]);
        if (mask && mask->slope != 0.0f) _mm512_storeu_ps(row + j, x);
        mx = _mm512_mask_max_ps(mx, keep[j / 16], mx, x);
    }
    const float mt = _mm512_reduce_max_ps(mx), mo = *m, mn = mt > mo ? mt : mo;
    if (mn == -INFINITY) {   /* no key of this row yet */
        memset(pr, 0, (size_t)(n / 2) * sizeof(uint32_t));
        w->alpha[r] = 1.0f;
        return;
    }
    const __m512 vm = _mm512_set1_ps(mn);
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 32) {
        const __m512 e0 = _mm512_maskz_mov_ps(keep[j / 16], exp2_bf16(_mm512_sub_ps(_mm512_loadu_ps(row + j), vm)));
        const __m512 e1 =
            _mm512_maskz_mov_ps(keep[j / 16 + 1], exp2_bf16(_mm512_sub_ps(_mm512_loadu_ps(row + j + 16), vm)));
        sum = _mm512_add_ps(sum, _mm512_add_ps(e0, e1));
        _mm512_storeu_si512(pr + j / 2, bf16x32(e0, e1));
    }
    w->alpha[r] = exp2f(mo - mn);   /* 0 on the first keys (mo = -inf) */
    *l = *l * w->alpha[r] + _mm512_reduce_add_ps(sum);
    *m = mn;
}

/* o [QB, dh] = o alpha + pb [QB, c0..c1) @ V [c0..c1, dh], a pair of keys per
 * instruction, NB column groups of 16 per pass */
static inline __attribute__((always_inline)) void att_pv(att_ws *w, float *o, int c0, int c1, const int NC) {
    const int dh = NC * 16, NB = NC < 2 ? NC : 2;
    for (int g = 0; g < NC; g += NB) {
        __m512 acc[QB][2];
#pragma GCC unroll 12
        for (int r = 0; r < QB; r++)
#pragma GCC unroll 2
            for (int c = 0; c < NB; c++)
                acc[r][c] = _mm512_mul_ps(_mm512_loadu_ps(o + (size_t)r * dh + 16 * (g + c)), _mm512_set1_ps(w->alpha[r]));
        for (int h = c0 / 2; h < c1 / 2; h++) {
            __m512bh vv[2];
#pragma GCC unroll 2
            for (int c = 0; c < NB; c++) vv[c] = (__m512bh)_mm512_loadu_si512(w->vp + (size_t)h * dh + 16 * (g + c));
#pragma GCC unroll 12
            for (int r = 0; r < QB; r++) {
                const __m512bh x = (__m512bh)_mm512_set1_epi32((int)w->pb[(size_t)r * (KT / 2) + (h - c0 / 2)]);
#pragma GCC unroll 2
                for (int c = 0; c < NB; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], vv[c], x);
            }
        }
#pragma GCC unroll 12
        for (int r = 0; r < QB; r++)
#pragma GCC unroll 2
            for (int c = 0; c < NB; c++) _mm512_storeu_ps(o + (size_t)r * dh + 16 * (g + c), acc[r][c]);
    }
}

/* Rows [b0, b0 + nr) of the super block against keys [c0, c1) */
static inline __attribute__((always_inline)) void att_block(att_ws *w, int b0, int nr, int c0, int c1,
                                                           const nn_attn_mask *mask, const int NC) {
    const int i0 = w->s0 + b0, full = nn_attn_full(mask, w->L, i0, i0 + nr, c0, c1);
    att_scores(w->qb + (size_t)b0 * NC * 8, w, c0, c1, NC);
    for (int r = 0; r < QB; r++) {
        if (r < nr) {
            att_softmax_row(w, r, b0, c0, c1, mask, full);
        } else {   /* padding rows: no weight */
            memset(w->pb + (size_t)r * (KT / 2), 0, (size_t)(c1 - c0) / 2 * sizeof(uint32_t));
            w->alpha[r] = 1.0f;
        }
    }
    att_pv(w, w->o + (size_t)b0 * NC * 16, c0, c1, NC);
}

/* Queries [s0, s0 + ns): qb, o, m, l set up, every tile of keys, out = o / l */
static inline __attribute__((always_inline)) void att_super(att_ws *w, const float *q, int ld, int s0, int ns,
                                                           float scale, const nn_attn_mask *mask, float *out,
                                                           int ldo, const int NC) {
    const int dh = NC * 16, dp = dh / 2, nq = (ns + QB - 1) / QB * QB;
    const __m512 qs = _mm512_set1_ps(scale * LOG2E_F);   /* scores in log2 units: exp(x) = 2^(x log2 e) */
    w->s0 = s0;
    for (int r = 0; r < nq; r++) {
#pragma GCC unroll 4
        for (int c = 0; c < NC; c += 2) {
            const float *row = q + (size_t)(s0 + r) * ld + 16 * c;
            _mm512_storeu_si512(w->qb + (size_t)r * dp + 8 * c,
                                r < ns ? bf16x32(_mm512_mul_ps(_mm512_loadu_ps(row), qs),
                                                 _mm512_mul_ps(_mm512_loadu_ps(row + 16), qs))
                                       : _mm512_setzero_si512());
        }
        w->m[r] = -INFINITY, w->l[r] = 0.0f;
    }
    memset(w->o, 0, (size_t)nq * dh * sizeof(float));
    int lo, hi;
    nn_attn_span(mask, w->L, s0, s0 + ns, &lo, &hi);
    for (int t0 = lo & ~31; t0 < hi; t0 += KT) {
        const int t1 = t0 + KT < hi ? t0 + KT : (hi + 31) & ~31;
        for (int b0 = 0; b0 < ns; b0 += QB) {
            const int nr = ns - b0 < QB ? ns - b0 : QB;
            int blo, bhi;
            nn_attn_span(mask, w->L, s0 + b0, s0 + b0 + nr, &blo, &bhi);
            const int c0 = t0 > (blo & ~31) ? t0 : blo & ~31, ce = (bhi + 31) & ~31, c1 = t1 < ce ? t1 : ce;
            if (c0 < c1) att_block(w, b0, nr, c0, c1, mask, NC);
        }
    }
    for (int r = 0; r < ns; r++) {
        const __m512 iv = _mm512_set1_ps(1.0f / w->l[r]);
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++)
            _mm512_storeu_ps(out + (size_t)(s0 + r) * ldo + 16 * c,
                             _mm512_mul_ps(_mm512_loadu_ps(w->o + (size_t)r * dh + 16 * c), iv));
    }
}

static inline __attribute__((always_inline)) void attention_body(const float *q, const float *k, const float *v,
                                                                const nn_attn_mask *mask, int ld, int L, int i0,
                                                                int i1, const int NC, float scale, float *out, int ldo,
                                                                float *scratch) {
    const int dh = NC * 16, dp = dh / 2;
    att_ws w = {.L = L, .Lp = (L + 31) & ~31};
    w.o = scratch, w.s = w.o + (size_t)QS * dh, w.m = w.s + (size_t)QB * KT, w.l = w.m + QS;
    w.qb = (uint32_t *)(w.l + QS), w.pb = w.qb + (size_t)QS * dp;
    w.kp = (uint32_t *)(scratch + nn_attention_scratch_fixed(dh)), w.vp = w.kp + (size_t)dp * w.Lp;
    att_prep(k, v, ld, NC, &w);
    for (int s0 = i0; s0 < i1; s0 += QS) att_super(&w, q, ld, s0, i1 - s0 < QS ? i1 - s0 : QS, scale, mask, out, ldo, NC);
}

void nn_attention_bf16_avx512(const float *q, const float *k, const float *v, int ld, int L, int i0, int i1, int dh, float scale,
                              const nn_attn_mask *mask, float *out, int ldo, float *scratch) {
    switch (dh) {
    case 32: attention_body(q, k, v, mask, ld, L, i0, i1, 2, scale, out, ldo, scratch); break;
    case 64: attention_body(q, k, v, mask, ld, L, i0, i1, 4, scale, out, ldo, scratch); break;
    case 128: attention_body(q, k, v, mask, ld, L, i0, i1, 8, scale, out, ldo, scratch); break;
    default: nn_kernels_ref()->attention_bf16(q, k, v, ld, L, i0, i1, dh, scale, mask, out, ldo, scratch);
    }
}
