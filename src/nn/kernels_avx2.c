/* AVX2 + FMA kernels (compiled with -mavx2 -mfma; called only when the CPU
 * reports both). Row tails use masked loads and stores, so any n works. The
 * shared math (exp, GELU, masks, horizontal sums) is in simd_avx2.h.
 */
#include <string.h>

#include "kernels.h"
#include "simd_avx2.h"

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

/* Rows r[0..8) of an 8 x 8 block become its columns. */
static inline void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* One head of one sequence, flash-attention style as the AVX-512 kernel
 * (kernels_avx512.c), 8 lanes wide, in natural-log units (exp256):
 *   kt [dh, Lp]  = K^T (8 x 8 block transposes), zero columns up to Lp = round32(L)
 *   vc [Lp, dh]  = V, contiguous (the head's rows sit a whole qkv row apart:
 *                  copied once, they stop mapping onto a few L1 sets), zero rows past L
 * per super block of QS queries:
 *   qc [QS, dh]  = scale * Q; o [QS, dh] the unnormalized output; m, l [QS]
 * per QB queries and tile of up to KT keys:
 *   s  [QB, KT]  = qc rows @ kt: 6 rows x 16 columns per step, 12 accumulators
 *   mask, ALiBi, online softmax; o = o alpha + s @ vc, 6 rows x 16 columns
 * NC = dh / 8 (even) is a compile-time constant in each instantiation. */
#define QB 6
#define QS NN_ATT_QS
#define KT NN_ATT_KT

typedef struct att_ws {
    float *kt, *vc, *qc, *o, *s, *m, *l, alpha[QB];
    int L, Lp, s0;   /* s0: the super block's first query */
} att_ws;

static inline __attribute__((always_inline)) void att_prep(const float *k, const float *v, int ld, const int NC,
                                                          att_ws *w) {
    const int dh = NC * 8, L = w->L, Lp = w->Lp;
    for (int j0 = 0; j0 < Lp; j0 += 8)
        for (int d0 = 0; d0 < dh; d0 += 8) {
            __m256 blk[8];
            for (int i = 0; i < 8; i++)
                blk[i] = j0 + i < L ? _mm256_loadu_ps(k + (size_t)(j0 + i) * ld + d0) : _mm256_setzero_ps();
            transpose8(blk);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(w->kt + (size_t)(d0 + i) * Lp + j0, blk[i]);
        }
    for (int j = 0; j < Lp; j++)
#pragma GCC unroll 16
        for (int c = 0; c < NC; c++)
            _mm256_storeu_ps(w->vc + (size_t)j * dh + 8 * c,
                             j < L ? _mm256_loadu_ps(v + (size_t)j * ld + 8 * c) : _mm256_setzero_ps());
}

/* s [QB, c1 - c0) = q0 [QB, dh] @ kt [dh, c0..c1) */
static inline __attribute__((always_inline)) void att_scores(const float *q0, const att_ws *w, int c0, int c1,
                                                            const int NC) {
    const int dh = NC * 8;
    for (int jb = c0; jb < c1; jb += 16) {
        __m256 a[QB], b[QB];
#pragma GCC unroll 6
        for (int r = 0; r < QB; r++) a[r] = b[r] = _mm256_setzero_ps();
        for (int d = 0; d < dh; d++) {
            const __m256 k0 = _mm256_loadu_ps(w->kt + (size_t)d * w->Lp + jb);
            const __m256 k1 = _mm256_loadu_ps(w->kt + (size_t)d * w->Lp + jb + 8);
#pragma GCC unroll 6
            for (int r = 0; r < QB; r++) {
                const __m256 x = _mm256_broadcast_ss(q0 + (size_t)r * dh + d);
                a[r] = _mm256_fmadd_ps(x, k0, a[r]);
                b[r] = _mm256_fmadd_ps(x, k1, b[r]);
            }
        }
#pragma GCC unroll 6
        for (int r = 0; r < QB; r++) {
            _mm256_storeu_ps(w->s + (size_t)r * KT + (jb - c0), a[r]);
            _mm256_storeu_ps(w->s + (size_t)r * KT + (jb - c0) + 8, b[r]);
        }
    }
}

/* Row r (query s0 + b0 + r) of the tile [c0, c1): mask and ALiBi, the new
 * running max, s = exp(s - max) (0 where masked), the running sum; OUT:
 * w->alpha[r], the old output's factor. */
static void att_softmax_row(att_ws *w, int r, int b0, int c0, int c1, const nn_attn_mask *mask, int full) {
    float *row = w->s + (size_t)r * KT, *m = w->m + b0 + r, *l = w->l + b0 + r;
    const int i = w->s0 + b0 + r, n = c1 - c0;
    __m256 keep[KT / 8];
    __m256 mx = _mm256_set1_ps(-INFINITY);
    for (int j = 0; j < n; j += 8) {
        const __m256 x = attn_mask256(_mm256_loadu_ps(row + j), c0 + j, i, w->L, mask, full, &keep[j / 8]);
        if (mask && mask->slope != 0.0f) _mm256_storeu_ps(row + j, x);
        mx = _mm256_max_ps(mx, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), x, keep[j / 8]));
    }
    const float mt = hmax256(mx), mo = *m, mn = mt > mo ? mt : mo;
    if (mn == -INFINITY) {   /* no key of this row yet */
        memset(row, 0, (size_t)n * sizeof(float));
        w->alpha[r] = 1.0f;
        return;
    }
    const __m256 vm = _mm256_set1_ps(mn);
    __m256 sum = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) {
        const __m256 e = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_loadu_ps(row + j), vm)), keep[j / 8]);
        _mm256_storeu_ps(row + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    w->alpha[r] = expf(mo - mn);   /* 0 on the first keys (mo = -inf) */
    *l = *l * w->alpha[r] + hsum256(sum);
    *m = mn;
}

/* o [QB, dh] = o alpha + s [QB, c0..c1) @ vc [c0..c1, dh], 16 columns per pass */
static inline __attribute__((always_inline)) void att_pv(att_ws *w, float *o, int c0, int c1, const int NC) {
    const int dh = NC * 8;
    for (int g = 0; g < NC; g += 2) {
        __m256 a[QB], b[QB];
#pragma GCC unroll 6
        for (int r = 0; r < QB; r++) {
            const __m256 al = _mm256_set1_ps(w->alpha[r]);
            a[r] = _mm256_mul_ps(_mm256_loadu_ps(o + (size_t)r * dh + 8 * g), al);
            b[r] = _mm256_mul_ps(_mm256_loadu_ps(o + (size_t)r * dh + 8 * g + 8), al);
        }
        for (int j = c0; j < c1; j++) {
            const __m256 v0 = _mm256_loadu_ps(w->vc + (size_t)j * dh + 8 * g);
            const __m256 v1 = _mm256_loadu_ps(w->vc + (size_t)j * dh + 8 * g + 8);
#pragma GCC unroll 6
            for (int r = 0; r < QB; r++) {
                const __m256 x = _mm256_broadcast_ss(w->s + (size_t)r * KT + (j - c0));
                a[r] = _mm256_fmadd_ps(x, v0, a[r]);
                b[r] = _mm256_fmadd_ps(x, v1, b[r]);
            }
        }
#pragma GCC unroll 6
        for (int r = 0; r < QB; r++) {
            _mm256_storeu_ps(o + (size_t)r * dh + 8 * g, a[r]);
            _mm256_storeu_ps(o + (size_t)r * dh + 8 * g + 8, b[r]);
        }
    }
}

/* Rows [b0, b0 + nr) of the super block against keys [c0, c1) */
static inline __attribute__((always_inline)) void att_block(att_ws *w, int b0, int nr, int c0, int c1,
                                                           const nn_attn_mask *mask, const int NC) {
    const int dh = NC * 8, i0 = w->s0 + b0, full = nn_attn_full(mask, w->L, i0, i0 + nr, c0, c1);
    att_scores(w->qc + (size_t)b0 * dh, w, c0, c1, NC);
    for (int r = 0; r < QB; r++) {
        if (r < nr) {
            att_softmax_row(w, r, b0, c0, c1, mask, full);
        } else {   /* padding rows: no weight */
            memset(w->s + (size_t)r * KT, 0, (size_t)(c1 - c0) * sizeof(float));
            w->alpha[r] = 1.0f;
        }
    }
    att_pv(w, w->o + (size_t)b0 * dh, c0, c1, NC);
}

/* Queries [s0, s0 + ns): qc, o, m, l set up, every tile of keys, out = o / l */
static inline __attribute__((always_inline)) void att_super(att_ws *w, const float *q, int ld, int s0, int ns,
                                                           float scale, const nn_attn_mask *mask, float *out,
                                                           int ldo, const int NC) {
    const int dh = NC * 8, nq = (ns + QB - 1) / QB * QB;
    const __m256 vs = _mm256_set1_ps(scale);
    w->s0 = s0;
    for (int r = 0; r < nq; r++) {
#pragma GCC unroll 16
        for (int c = 0; c < NC; c++)
            _mm256_storeu_ps(w->qc + (size_t)r * dh + 8 * c,
                             r < ns ? _mm256_mul_ps(_mm256_loadu_ps(q + (size_t)(s0 + r) * ld + 8 * c), vs)
                                    : _mm256_setzero_ps());
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
        const __m256 iv = _mm256_set1_ps(1.0f / w->l[r]);
#pragma GCC unroll 16
        for (int c = 0; c < NC; c++)
            _mm256_storeu_ps(out + (size_t)(s0 + r) * ldo + 8 * c,
                             _mm256_mul_ps(_mm256_loadu_ps(w->o + (size_t)r * dh + 8 * c), iv));
    }
}

static inline __attribute__((always_inline)) void attention_body(const float *q, const float *k, const float *v,
                                                                const nn_attn_mask *mask, int ld, int L, int i0,
                                                                int i1, const int NC, float scale, float *out, int ldo,
                                                                float *scratch) {
    const int dh = NC * 8;
    att_ws w = {.L = L, .Lp = (L + 31) & ~31};
    w.qc = scratch, w.o = w.qc + (size_t)QS * dh, w.s = w.o + (size_t)QS * dh, w.m = w.s + (size_t)QB * KT;
    w.l = w.m + QS, w.kt = scratch + nn_attention_scratch_fixed(dh), w.vc = w.kt + (size_t)dh * w.Lp;
    att_prep(k, v, ld, NC, &w);
    for (int s0 = i0; s0 < i1; s0 += QS) att_super(&w, q, ld, s0, i1 - s0 < QS ? i1 - s0 : QS, scale, mask, out, ldo, NC);
}

static void attention_avx2(const float *q, const float *k, const float *v, int ld, int L, int i0, int i1, int dh, float scale,
                           const nn_attn_mask *mask, float *out, int ldo, float *scratch) {
    switch (dh) {
    case 32: attention_body(q, k, v, mask, ld, L, i0, i1, 4, scale, out, ldo, scratch); break;
    case 64: attention_body(q, k, v, mask, ld, L, i0, i1, 8, scale, out, ldo, scratch); break;
    case 128: attention_body(q, k, v, mask, ld, L, i0, i1, 16, scale, out, ldo, scratch); break;
    case 16: attention_body(q, k, v, mask, ld, L, i0, i1, 2, scale, out, ldo, scratch); break;
    default: nn_kernels_ref()->attention(q, k, v, ld, L, i0, i1, dh, scale, mask, out, ldo, scratch);
    }
}

/* silu(v) = v / (1 + e^-v) */
static inline __m256 silu256(__m256 v) {
    const __m256 e = exp256(_mm256_xor_ps(v, _mm256_set1_ps(-0.0f)));
    return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static void glu_avx2(float *x, int ld, int rows, int n, nn_act act) {
    for (int r = 0; r < rows; r++) {
        float *y = x + (size_t)r * ld;
        int j = 0;
        for (; j + 8 <= n; j += 8) {
            const __m256 a = _mm256_loadu_ps(y + j), g = _mm256_loadu_ps(y + n + j);
            _mm256_storeu_ps(y + j, _mm256_mul_ps(act == NN_ACT_GELU ? gelu256(a) : silu256(a), g));
        }
        if (j < n) {
            const __m256i m = tail_mask(n - j);
            const __m256 a = _mm256_maskload_ps(y + j, m), g = _mm256_maskload_ps(y + n + j, m);
            _mm256_maskstore_ps(y + j, m, _mm256_mul_ps(act == NN_ACT_GELU ? gelu256(a) : silu256(a), g));
        }
    }
}

/* The table only: kernels.c selects it (compiled without -mavx2). */
const nn_kernels nn_table_avx2 = {
    .name = "avx2",
    .bias = bias_avx2,
    .bias_gelu = bias_gelu_avx2,
    .add_layernorm = add_layernorm_avx2,
    .attention = attention_avx2,
    .glu = glu_avx2,
    .rms_norm = nn_rms_norm_ref,
    .gemm_lowp = nn_gemm_lowp_avx2,
    .quantize_u8 = nn_quantize_u8_avx2,
    .dequant_i8 = nn_dequant_i8_avx2,
    .bias_act = nn_bias_act_avx2,
    .to_bf16 = nn_to_bf16_avx2,
};
