/* AVX-512 kernels (compiled with -mavx512f -mavx512bw -mavx512vl
 * -mavx512dq -mfma; the table is returned only when the CPU has AVX512_CORE
 * and ONEDNN_MAX_CPU_ISA allows it). The element-wise work, the pieces
 * around oneDNN's GEMMs and fp32 attention, 16 lanes wide with opmask tails.
 * The packed GEMM of our own stays the AVX2 one (on these CPUs the GEMMs go
 * to oneDNN, nn/gemm.c); attention with bf16 products is in
 * kernels_avx512bf16.c. The shared math is in simd_avx512.h.
 */
#include <string.h>

#include "gemm.h"
#include "kernels.h"
#include "simd_avx512.h"

/* bf16 -> fp32 (gemm.h): each 16-bit value to the top half of a 32-bit lane */
void nn_widen_bf16_avx512(const uint16_t *in, size_t n, float *out) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512i a = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(in + i)));
        const __m512i b = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(in + i + 16)));
        _mm512_storeu_si512(out + i, _mm512_slli_epi32(a, 16));
        _mm512_storeu_si512(out + i + 16, _mm512_slli_epi32(b, 16));
    }
    for (; i < n; i += 16) {
        const __mmask16 m = mask16((int)(n - i));
        const __m512i a = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, in + i));
        _mm512_mask_storeu_ps(out + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(a, 16)));
    }
}

static void bias_avx512(float *x, const float *bias, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *y = x + (size_t)r * n;
        for (int j = 0; j < n; j += 16) {
            const __mmask16 m = mask16(n - j);
            _mm512_mask_storeu_ps(y + j, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + j), _mm512_maskz_loadu_ps(m, bias + j)));
        }
    }
}

static void bias_gelu_avx512(float *x, const float *bias, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *y = x + (size_t)r * n;
        for (int j = 0; j < n; j += 16) {
            const __mmask16 m = mask16(n - j);
            const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + j), _mm512_maskz_loadu_ps(m, bias + j));
            _mm512_mask_storeu_ps(y + j, m, gelu512(v));
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
            const __mmask16 m = mask16(n - j);
            __m512 v = _mm512_maskz_loadu_ps(m, y + j);
            if (xr) {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, xr + j));
                if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + j));
                _mm512_mask_storeu_ps(y + j, m, v);
            }
            s = _mm512_add_ps(s, v);
        }
        const __m512 vm = _mm512_set1_ps(_mm512_reduce_add_ps(s) / (float)n);
        __m512 q = _mm512_setzero_ps();
        for (int j = 0; j < n; j += 16) {
            const __mmask16 m = mask16(n - j);
            const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, y + j), vm);
            q = _mm512_fmadd_ps(d, d, q);
        }
        const __m512 vi = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(q) / (float)n + eps));
        for (int j = 0; j < n; j += 16) {
            const __mmask16 m = mask16(n - j);
            const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, y + j), vm), vi);
            _mm512_mask_storeu_ps(y + j, m, _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, g + j), _mm512_maskz_loadu_ps(m, b + j)));
        }
    }
}

/* One head of one sequence, flash-attention style (kernels.h): a super block
 * of up to QS query rows against tiles of up to KT keys, QB rows at a time
 * in registers. Per head:
 *   kt [dh, Lp]  = K^T (16 x 16 register transposes), zero columns up to Lp = round32(L)
 *   vc [Lp, dh]  = V, contiguous (the head's rows sit a qkv row apart), zero rows past L
 * per super block:
 *   qc [QS, dh]  = scale log2(e) Q (scores in log2 units), zero rows past the block
 *   o  [QS, dh]  = the unnormalized output so far; m, l [QS]: running max and sum
 * per QB rows and tile:
 *   s  [QB, KT]  = qc rows @ kt columns: QB rows x 32 columns per step (24 accumulators)
 *   mask, ALiBi, online softmax (att_softmax), o = o alpha + s @ vc rows (att_pv)
 * NC = dh / 16 is a compile-time constant in each instantiation. */
#define QB 12
#define QS NN_ATT_QS
#define KT NN_ATT_KT

typedef struct att_ws {
    float *kt, *vc, *qc, *o, *s, *m, *l, alpha[QB];
    int L, Lp, s0;   /* s0: the super block's first query */
} att_ws;

/* kt and vc for the whole head */
static inline __attribute__((always_inline)) void att_prep(const float *k, const float *v, int ld, const int NC,
                                                          att_ws *w) {
    const int dh = NC * 16, L = w->L, Lp = w->Lp;
    for (int j0 = 0; j0 < Lp; j0 += 16)
        for (int d0 = 0; d0 < dh; d0 += 16) {
            __m512i blk[16];
            for (int i = 0; i < 16; i++)
                blk[i] = j0 + i < L ? _mm512_loadu_si512(k + (size_t)(j0 + i) * ld + d0) : _mm512_setzero_si512();
            transpose16(blk);
            for (int i = 0; i < 16; i++) _mm512_storeu_si512(w->kt + (size_t)(d0 + i) * Lp + j0, blk[i]);
        }
    for (int j = 0; j < Lp; j++)
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++)
            _mm512_storeu_ps(w->vc + (size_t)j * dh + 16 * c,
                             j < L ? _mm512_loadu_ps(v + (size_t)j * ld + 16 * c) : _mm512_setzero_ps());
}

/* s [QB, c1 - c0) = q0 [QB, dh] @ kt [dh, c0..c1), c0 and c1 multiples of 32 */
static inline __attribute__((always_inline)) void att_scores(const float *q0, const att_ws *w, int c0, int c1,
                                                            const int NC) {
    const int dh = NC * 16;
    for (int jb = c0; jb < c1; jb += 32) {
        __m512 a[QB], b[QB];
#pragma GCC unroll 12
        for (int r = 0; r < QB; r++) a[r] = b[r] = _mm512_setzero_ps();
        for (int d = 0; d < dh; d++) {
            const __m512 k0 = _mm512_loadu_ps(w->kt + (size_t)d * w->Lp + jb);
            const __m512 k1 = _mm512_loadu_ps(w->kt + (size_t)d * w->Lp + jb + 16);
#pragma GCC unroll 12
            for (int r = 0; r < QB; r++) {
                const __m512 x = _mm512_set1_ps(q0[(size_t)r * dh + d]);
                a[r] = _mm512_fmadd_ps(x, k0, a[r]);
                b[r] = _mm512_fmadd_ps(x, k1, b[r]);
            }
        }
#pragma GCC unroll 12
        for (int r = 0; r < QB; r++) {
            _mm512_storeu_ps(w->s + (size_t)r * KT + (jb - c0), a[r]);
            _mm512_storeu_ps(w->s + (size_t)r * KT + (jb - c0) + 16, b[r]);
        }
    }
}

/* Row r (query i) of the tile [c0, c1): ALiBi's bias and the mask (keep:
 * the keys it sees; all when full), the new running max of row b0 + r, s = 2^(s - max)
 * (0 where masked), the running sum; OUT: w->alpha[r], the old output's factor. */
static void att_softmax_row(att_ws *w, int r, int b0, int c0, int c1, const nn_attn_mask *mask, int full) {
    float *row = w->s + (size_t)r * KT, *m = w->m + b0 + r, *l = w->l + b0 + r;
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
        memset(row, 0, (size_t)n * sizeof(float));
        w->alpha[r] = 1.0f;
        return;
    }
    const __m512 vm = _mm512_set1_ps(mn);
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
        const __m512 e = _mm512_maskz_mov_ps(keep[j / 16], exp2_512(_mm512_sub_ps(_mm512_loadu_ps(row + j), vm)));
        _mm512_storeu_ps(row + j, e);
        sum = _mm512_add_ps(sum, e);
    }
    w->alpha[r] = exp2f(mo - mn);   /* 0 on the first keys (mo = -inf) */
    *l = *l * w->alpha[r] + _mm512_reduce_add_ps(sum);
    *m = mn;
}

/* o [QB, dh] = o alpha + s [QB, c0..c1) @ vc [c0..c1, dh], NB column groups of 16 per pass */
static inline __attribute__((always_inline)) void att_pv(att_ws *w, float *o, int c0, int c1, const int NC) {
    const int dh = NC * 16, NB = NC < 2 ? NC : 2;
    for (int g = 0; g < NC; g += NB) {
        __m512 acc[QB][2];
#pragma GCC unroll 12
        for (int r = 0; r < QB; r++)
#pragma GCC unroll 2
            for (int c = 0; c < NB; c++)
                acc[r][c] = _mm512_mul_ps(_mm512_loadu_ps(o + (size_t)r * dh + 16 * (g + c)), _mm512_set1_ps(w->alpha[r]));
        for (int j = c0; j < c1; j++) {
            const float *vj = w->vc + (size_t)j * dh + 16 * g;
            __m512 vv[2];
#pragma GCC unroll 2
            for (int c = 0; c < NB; c++) vv[c] = _mm512_loadu_ps(vj + 16 * c);
#pragma GCC unroll 12
            for (int r = 0; r < QB; r++) {
                const __m512 x = _mm512_set1_ps(w->s[(size_t)r * KT + (j - c0)]);
#pragma GCC unroll 2
                for (int c = 0; c < NB; c++) acc[r][c] = _mm512_fmadd_ps(x, vv[c], acc[r][c]);
            }
        }
#pragma GCC unroll 12
        for (int r = 0; r < QB; r++)
#pragma GCC unroll 2
            for (int c = 0; c < NB; c++) _mm512_storeu_ps(o + (size_t)r * dh + 16 * (g + c), acc[r][c]);
    }
}

/* Rows [b0, b0 + nr) of the super block (queries i0..) against keys [c0, c1) */
static inline __attribute__((always_inline)) void att_block(att_ws *w, int b0, int i0, int nr, int c0, int c1,
                                                           const nn_attn_mask *mask, const int NC) {
    const int dh = NC * 16, full = nn_attn_full(mask, w->L, i0, i0 + nr, c0, c1);
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
    const int dh = NC * 16, nq = (ns + QB - 1) / QB * QB;
    w->s0 = s0;
    const __m512 vs = _mm512_set1_ps(scale * LOG2E_F);   /* exp(x) = 2^(x log2 e) */
    for (int r = 0; r < nq; r++) {
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++)
            _mm512_storeu_ps(w->qc + (size_t)r * dh + 16 * c,
                             r < ns ? _mm512_mul_ps(_mm512_loadu_ps(q + (size_t)(s0 + r) * ld + 16 * c), vs)
                                    : _mm512_setzero_ps());
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
            if (c0 < c1) att_block(w, b0, s0 + b0, nr, c0, c1, mask, NC);
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
    const int dh = NC * 16;
    att_ws w = {.L = L, .Lp = (L + 31) & ~31};
    w.qc = scratch, w.o = w.qc + (size_t)QS * dh, w.s = w.o + (size_t)QS * dh, w.m = w.s + (size_t)QB * KT;
    w.l = w.m + QS, w.kt = scratch + nn_attention_scratch_fixed(dh), w.vc = w.kt + (size_t)dh * w.Lp;
    att_prep(k, v, ld, NC, &w);
    for (int s0 = i0; s0 < i1; s0 += QS) att_super(&w, q, ld, s0, i1 - s0 < QS ? i1 - s0 : QS, scale, mask, out, ldo, NC);
}

static void attention_avx512(const float *q, const float *k, const float *v, int ld, int L, int i0, int i1, int dh, float scale,
                             const nn_attn_mask *mask, float *out, int ldo, float *scratch) {
    switch (dh) {
    case 32: attention_body(q, k, v, mask, ld, L, i0, i1, 2, scale, out, ldo, scratch); break;
    case 64: attention_body(q, k, v, mask, ld, L, i0, i1, 4, scale, out, ldo, scratch); break;
    case 128: attention_body(q, k, v, mask, ld, L, i0, i1, 8, scale, out, ldo, scratch); break;
    case 16: attention_body(q, k, v, mask, ld, L, i0, i1, 1, scale, out, ldo, scratch); break;
    default: nn_kernels_ref()->attention(q, k, v, ld, L, i0, i1, dh, scale, mask, out, ldo, scratch);
    }
}

/* silu(v) = v / (1 + 2^(-v log2 e)) */
static inline __m512 silu512(__m512 v) {
    const __m512 e = exp2_512(_mm512_mul_ps(v, _mm512_set1_ps(-LOG2E_F)));
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

static void glu_avx512(float *x, int ld, int rows, int n, nn_act act) {
    for (int r = 0; r < rows; r++) {
        float *y = x + (size_t)r * ld;
        for (int j = 0; j < n; j += 16) {
            const __mmask16 m = mask16(n - j);
            const __m512 a = _mm512_maskz_loadu_ps(m, y + j), g = _mm512_maskz_loadu_ps(m, y + n + j);
            _mm512_mask_storeu_ps(y + j, m, _mm512_mul_ps(act == NN_ACT_GELU ? gelu512(a) : silu512(a), g));
        }
    }
}

/* Row a[K] -> q[ldq] uint8 (zeros beyond K), as nn_quantize_row_u8: one
 * pass for the range, one that rounds (to nearest even), adds the zero point
 * and saturates to [0, 255] by packing 64 values at a time. */
static float quantize_row(const float *a, int K, int ldq, uint8_t *q, int32_t *zp_out) {
    __m512 lo = _mm512_setzero_ps(), hi = lo, lo1 = lo, hi1 = lo;   /* two chains: min and max are exact in any order */
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        const __m512 v = _mm512_loadu_ps(a + k), v1 = _mm512_loadu_ps(a + k + 16);
        lo = _mm512_min_ps(lo, v), hi = _mm512_max_ps(hi, v);
        lo1 = _mm512_min_ps(lo1, v1), hi1 = _mm512_max_ps(hi1, v1);
    }
    lo = _mm512_min_ps(lo, lo1), hi = _mm512_max_ps(hi, hi1);
    for (; k + 16 <= K; k += 16) {
        const __m512 v = _mm512_loadu_ps(a + k);
        lo = _mm512_min_ps(lo, v), hi = _mm512_max_ps(hi, v);
    }
    if (k < K) {
        const __m512 v = _mm512_maskz_loadu_ps(mask16(K - k), a + k);   /* masked lanes read 0 */
        lo = _mm512_min_ps(lo, v), hi = _mm512_max_ps(hi, v);
    }
    const float l = _mm512_reduce_min_ps(lo), h = _mm512_reduce_max_ps(hi);
    const float inv = nn_quant_inv(l, h);
    const int zp = nn_zero_point(l, inv);
    const __m512 vi = _mm512_set1_ps(inv);
    const __m512i vz = _mm512_set1_epi32(zp), zero = _mm512_setzero_si512();
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
#define QZ(x) _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps((x), vi)), vz)
    for (k = 0; k + 64 <= K; k += 64) {
        /* signed packs to 16 bits, unsigned to 8 (the clamp), then the 128-bit lanes' dwords in order */
        const __m512i w0 = _mm512_packs_epi32(QZ(_mm512_loadu_ps(a + k)), QZ(_mm512_loadu_ps(a + k + 16)));
        const __m512i w1 = _mm512_packs_epi32(QZ(_mm512_loadu_ps(a + k + 32)), QZ(_mm512_loadu_ps(a + k + 48)));
        _mm512_storeu_si512(q + k, _mm512_permutexvar_epi32(order, _mm512_packus_epi16(w0, w1)));
    }
    for (; k < K; k += 16) {
        const __mmask16 m = mask16(K - k);
        const __m512i v = _mm512_max_epi32(QZ(_mm512_maskz_loadu_ps(m, a + k)), zero);
        _mm_mask_storeu_epi8(q + k, m, _mm512_cvtusepi32_epi8(v));
    }
#undef QZ
    if (ldq > K) memset(q + K, 0, (size_t)(ldq - K));
    *zp_out = zp;
    return (h - l) / 255.0f;
}

static void quantize_u8_avx512(int M, int K, const float *A, int lda, uint8_t *q, int ldq, float *sa, int32_t *zp) {
    for (int r = 0; r < M; r++) sa[r] = quantize_row(A + (size_t)r * lda, K, ldq, q + (size_t)r * ldq, &zp[r]);
}

/* c[0..16) under m = v + bias, GELU when set */
static inline __attribute__((always_inline)) void store16(float *c, __m512 v, const float *bias, int gelu,
                                                          __mmask16 m) {
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias));
    _mm512_mask_storeu_ps(c, m, gelu ? gelu512(v) : v);
}

/* One row of the int8 epilogue; inlined into a copy per (bias, gelu). */
static inline __attribute__((always_inline)) void dequant_row(int N, const int32_t *a, float sa, int32_t zp,
                                                              const float *sw, const int32_t *colsum,
                                                              const float *bias, int gelu, float *c) {
    const __m512 s = _mm512_set1_ps(sa);
    const __m512i z = _mm512_set1_epi32(zp);
    int n = 0;
    for (; n + 16 <= N; n += 16) {
        const __m512i d = _mm512_sub_epi32(_mm512_loadu_si512(a + n), _mm512_mullo_epi32(z, _mm512_loadu_si512(colsum + n)));
        store16(c + n, _mm512_mul_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(s, _mm512_loadu_ps(sw + n))),
                bias ? bias + n : NULL, gelu, 0xffff);
    }
    if (n < N) {
        const __mmask16 m = mask16(N - n);
        const __m512i d = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(m, a + n),
                                           _mm512_mullo_epi32(z, _mm512_maskz_loadu_epi32(m, colsum + n)));
        store16(c + n, _mm512_mul_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, sw + n))),
                bias ? bias + n : NULL, gelu, m);
    }
}

static void dequant_i8_avx512(int M, int N, const int32_t *acc, int ldacc, const float *sa, const int32_t *zp,
                              const float *sw, const int32_t *colsum, const float *bias, int gelu, float *C, int ldc) {
    for (int r = 0; r < M; r++) {
        const int32_t *a = acc + (size_t)r * ldacc;
        float *c = C + (size_t)r * ldc;
        if (gelu)
            dequant_row(N, a, sa[r], zp[r], sw, colsum, bias, 1, c);
        else if (bias)
            dequant_row(N, a, sa[r], zp[r], sw, colsum, bias, 0, c);
        else
            dequant_row(N, a, sa[r], zp[r], sw, colsum, NULL, 0, c);
    }
}

static void bias_act_avx512(int M, int N, const float *acc, int ldacc, const float *bias, int gelu, float *C, int ldc) {
    for (int r = 0; r < M; r++)
        for (int n = 0; n < N; n += 16) {
            const __mmask16 m = mask16(N - n);
            store16(C + (size_t)r * ldc + n, _mm512_maskz_loadu_ps(m, acc + (size_t)r * ldacc + n), bias ? bias + n : NULL,
                    gelu, m);
        }
}

/* Rounding by integer arithmetic rather than vcvtneps2bf16, which flushes
 * denormals: the result equals nn_bf16_bits for every finite input. */
static void to_bf16_avx512(int M, int K, const float *A, int lda, uint16_t *out, int ldo) {
    const __m512i round = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    for (int r = 0; r < M; r++) {
        const float *a = A + (size_t)r * lda;
        uint16_t *o = out + (size_t)r * ldo;
        for (int k = 0; k < K; k += 16) {
            const __mmask16 m = mask16(K - k);
            const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, a + k));
            const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
            const __m512i v = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(round, lsb)), 16);
            _mm256_mask_storeu_epi16(o + k, m, _mm512_cvtepi32_epi16(v));
        }
    }
}

/* Tables only: the selection (nn_kernels_avx512) lives in kernels.c, which
 * is compiled without AVX-512, so that nothing here runs on a CPU without it. */
#define AVX512_TABLE                          \
    .bias = bias_avx512,                      \
    .bias_gelu = bias_gelu_avx512,            \
    .add_layernorm = add_layernorm_avx512,    \
    .attention = attention_avx512,            \
    .glu = glu_avx512,                        \
    .rms_norm = nn_rms_norm_ref,              \
    .gemm_lowp = nn_gemm_lowp_avx2,           \
    .quantize_u8 = quantize_u8_avx512,        \
    .dequant_i8 = dequant_i8_avx512,          \
    .bias_act = bias_act_avx512,              \
    .to_bf16 = to_bf16_avx512
const nn_kernels nn_table_avx512 = {.name = "avx512", AVX512_TABLE};
const nn_kernels nn_table_avx512_bf16 = {.name = "avx512-bf16", .attention_bf16 = nn_attention_bf16_avx512, AVX512_TABLE};
