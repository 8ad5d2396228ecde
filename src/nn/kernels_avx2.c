/* AVX2 + FMA kernels (compiled with -mavx2 -mfma; called only when the CPU
 * reports both). Row tails use masked loads and stores, so any n works. The
 * shared math (exp, GELU, masks, horizontal sums) is in simd_avx2.h.
 */
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

/* One head of one sequence, QB query rows at a time, never more than QB rows
 * of the score matrix in memory:
 *   qc [Lq, dh]  = scale * Q, contiguous, zero rows up to Lq = roundup(L, QB)
 *   kt [dh, Lp]  = K^T, zero-padded to Lp = round16(L) (8 x 8 block transposes)
 *   vc [L, dh]   = V, contiguous
 * (the head's rows sit a whole qkv row apart: copied once, they stop mapping
 * onto a few L1 sets and are read in order)
 *   s  [QB, Lp]  = qc rows @ kt: 6 rows x 16 columns per step, 12 accumulators
 *   exp(s - rowmax), row sums
 *   out[QB, dh]  = (s @ vc) / rowsum: PR rows at a time (PR x NC accumulators)
 * NC = dh / 8 is a compile-time constant in each instantiation. */
#define QB 6
static inline __attribute__((always_inline)) void attention_body(const float *q, const float *k, const float *v,
                                                                const nn_attn_mask *mask,
                                                                int ld, int L, const int NC, float scale,
                                                                float *out, int ldo, float *scratch) {
    const int dh = NC * 8, Lp = (L + 15) & ~15, Lq = (L + QB - 1) / QB * QB;
    const int PR = NC <= 4 ? 3 : 1;
    float *kt = scratch, *vc = kt + (size_t)dh * Lp, *qc = vc + (size_t)dh * Lp, *s = qc + (size_t)dh * (Lp + QB);
    for (int j0 = 0; j0 < Lp; j0 += 8)
        for (int d0 = 0; d0 < dh; d0 += 8) {
            __m256 blk[8];
            for (int i = 0; i < 8; i++)
                blk[i] = j0 + i < L ? _mm256_loadu_ps(k + (size_t)(j0 + i) * ld + d0) : _mm256_setzero_ps();
            transpose8(blk);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(kt + (size_t)(d0 + i) * Lp + j0, blk[i]);
        }
    const __m256 vs = _mm256_set1_ps(scale);
    for (int j = 0; j < Lq; j++)
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++) {
            const int in = j < L;
            _mm256_storeu_ps(qc + (size_t)j * dh + 8 * c,
                             in ? _mm256_mul_ps(_mm256_loadu_ps(q + (size_t)j * ld + 8 * c), vs) : _mm256_setzero_ps());
            if (in) _mm256_storeu_ps(vc + (size_t)j * dh + 8 * c, _mm256_loadu_ps(v + (size_t)j * ld + 8 * c));
        }
    for (int i0 = 0; i0 < L; i0 += QB) {
        const int nr = L - i0 < QB ? L - i0 : QB;
        const float *q0 = qc + (size_t)i0 * dh;
        for (int jb = 0; jb < Lp; jb += 16) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
            __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0;
            for (int d = 0; d < dh; d++) {
                const __m256 k0 = _mm256_loadu_ps(kt + (size_t)d * Lp + jb);
                const __m256 k1 = _mm256_loadu_ps(kt + (size_t)d * Lp + jb + 8);
                __m256 w = _mm256_broadcast_ss(q0 + 0 * dh + d);
                a0 = _mm256_fmadd_ps(w, k0, a0), b0 = _mm256_fmadd_ps(w, k1, b0);
                w = _mm256_broadcast_ss(q0 + 1 * dh + d);
                a1 = _mm256_fmadd_ps(w, k0, a1), b1 = _mm256_fmadd_ps(w, k1, b1);
                w = _mm256_broadcast_ss(q0 + 2 * dh + d);
                a2 = _mm256_fmadd_ps(w, k0, a2), b2 = _mm256_fmadd_ps(w, k1, b2);
                w = _mm256_broadcast_ss(q0 + 3 * dh + d);
                a3 = _mm256_fmadd_ps(w, k0, a3), b3 = _mm256_fmadd_ps(w, k1, b3);
                w = _mm256_broadcast_ss(q0 + 4 * dh + d);
                a4 = _mm256_fmadd_ps(w, k0, a4), b4 = _mm256_fmadd_ps(w, k1, b4);
                w = _mm256_broadcast_ss(q0 + 5 * dh + d);
                a5 = _mm256_fmadd_ps(w, k0, a5), b5 = _mm256_fmadd_ps(w, k1, b5);
            }
            float *sr = s + jb;
            _mm256_storeu_ps(sr + 0 * (size_t)Lp, a0), _mm256_storeu_ps(sr + 0 * (size_t)Lp + 8, b0);
            _mm256_storeu_ps(sr + 1 * (size_t)Lp, a1), _mm256_storeu_ps(sr + 1 * (size_t)Lp + 8, b1);
            _mm256_storeu_ps(sr + 2 * (size_t)Lp, a2), _mm256_storeu_ps(sr + 2 * (size_t)Lp + 8, b2);
            _mm256_storeu_ps(sr + 3 * (size_t)Lp, a3), _mm256_storeu_ps(sr + 3 * (size_t)Lp + 8, b3);
            _mm256_storeu_ps(sr + 4 * (size_t)Lp, a4), _mm256_storeu_ps(sr + 4 * (size_t)Lp + 8, b4);
            _mm256_storeu_ps(sr + 5 * (size_t)Lp, a5), _mm256_storeu_ps(sr + 5 * (size_t)Lp + 8, b5);
        }
        float inv[QB];
        for (int r = 0; r < nr; r++) {
            float *row = s + (size_t)r * Lp;
            if (mask) nn_mask_row(row, L, i0 + r, mask, 1.0f);
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
        for (int r0 = 0; r0 < nr; r0 += PR) {
            /* rows past nr repeat the last real row; their sums are not stored */
            const float *p[3];
            for (int r = 0; r < PR; r++) p[r] = s + (size_t)(r0 + r < nr ? r0 + r : nr - 1) * Lp;
            const int NB = NC < 8 ? NC : 8;   /* columns of 8 per pass (dh 128: two passes) */
            for (int c0 = 0; c0 < NC; c0 += NB) {
                __m256 acc[3][8];
#pragma GCC unroll 3
                for (int r = 0; r < PR; r++)
#pragma GCC unroll 8
                    for (int c = 0; c < NB; c++) acc[r][c] = _mm256_setzero_ps();
                for (int j = 0; j < L; j++) {
                    const float *vj = vc + (size_t)j * dh + 8 * c0;
#pragma GCC unroll 3
                    for (int r = 0; r < PR; r++) {
                        const __m256 w = _mm256_broadcast_ss(p[r] + j);
#pragma GCC unroll 8
                        for (int c = 0; c < NB; c++) acc[r][c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8 * c), acc[r][c]);
                    }
                }
#pragma GCC unroll 3
                for (int r = 0; r < PR; r++) {
                    if (r0 + r >= nr) break;
                    const __m256 iv = _mm256_set1_ps(inv[r0 + r]);
#pragma GCC unroll 8
                    for (int c = 0; c < NB; c++)
                        _mm256_storeu_ps(out + (size_t)(i0 + r0 + r) * ldo + 8 * (c0 + c), _mm256_mul_ps(acc[r][c], iv));
                }
            }
        }
    }
}

static void attention_avx2(const float *q, const float *k, const float *v, int ld, int L, int dh, float scale,
                           const nn_attn_mask *mask, float *out, int ldo, float *scratch) {
    switch (dh) {
    case 32: attention_body(q, k, v, mask, ld, L, 4, scale, out, ldo, scratch); break;
    case 64: attention_body(q, k, v, mask, ld, L, 8, scale, out, ldo, scratch); break;
    case 128: attention_body(q, k, v, mask, ld, L, 16, scale, out, ldo, scratch); break;
    case 16: attention_body(q, k, v, mask, ld, L, 2, scale, out, ldo, scratch); break;
    default: nn_kernels_ref()->attention(q, k, v, ld, L, dh, scale, mask, out, ldo, scratch);
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
