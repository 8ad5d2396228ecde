/* Unit tests of src/nn: every SIMD table this CPU runs (AVX2, AVX-512;
 * ONEDNN_MAX_CPU_ISA lowers the list, so tests/run.sh covers each level)
 * against the scalar reference, every GEMM backend through the seam
 * (oneDNN, our packed kernels, BLAS) against the packed reference, rows
 * bit for bit whatever their batchmates, and the whole forward pass of a
 * tiny random model: optimized vs reference, each sequence alone vs packed
 * into a shuffled batch. Test names start with nn_ (unit_tests nn_ runs
 * them alone). */
#include <stdlib.h>
#include <unistd.h>

#include "base/pool.h"
#include "nn/bert.h"
#include "test.h"
#include "tiny_model.h"

static unsigned seed = 12345;
static float frand(float scale) { return tiny_rand(&seed) * scale * 5.0f; }

static float *rand_vec(size_t n, float scale) {
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = frand(scale);
    return v;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

/* sqrt(sum (a - b)^2 / sum b^2) */
static double rms_rel(const float *a, const float *b, size_t n) {
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), m += (double)b[i] * b[i];
    return sqrt(e / fmax(m, 1e-30));
}

/* The SIMD tables this CPU runs, best last; the tests skip none silently. */
static int simd_tables(const nn_kernels *out[2]) {
    int n = 0;
    if (nn_kernels_avx2()) out[n++] = nn_kernels_avx2();
    if (nn_kernels_avx512()) out[n++] = nn_kernels_avx512();
    if (!n) fprintf(stderr, "  note: no SIMD kernels at this ISA level (%s), the scalar table is tested by itself\n",
                    cpu_isa_name(cpu_features()));
    return n;
}

TEST(nn_gemm_blas_matches_reference) {
    if (nn_gemm_init()) {
        FAIL_AT("%s", cembed_last_error());
        return;
    }
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {64, 96, 128}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = rand_vec((size_t)M * K, 1), *B = rand_vec((size_t)N * K, 1);
        float *C1 = calloc((size_t)M * N, 4), *C2 = calloc((size_t)M * N, 4);
        nn_gemm_bt(M, N, K, A, K, B, K, C1, N);
        nn_gemm_bt_ref(M, N, K, A, K, B, K, C2, N);
        CHECK(max_abs_diff(C1, C2, (size_t)M * N) < 1e-4);
        free(A), free(B), free(C1), free(C2);
    }
}

TEST(nn_kernel_bias_and_gelu_match_reference) {
    const nn_kernels *ts[2], *r = nn_kernels_ref();
    for (int t = simd_tables(ts) - 1; t >= 0; t--) {
        const nn_kernels *k = ts[t];
        const int ns[] = {1, 7, 8, 13, 17, 384, 1536};
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
            int n = ns[i], rows = 3;
            float *b = rand_vec((size_t)n, 1), *x1 = rand_vec((size_t)rows * n, 4), *x2 = malloc((size_t)rows * n * 4);
            memcpy(x2, x1, (size_t)rows * n * 4);
            k->bias(x1, b, rows, n);
            r->bias(x2, b, rows, n);
            CHECK(max_abs_diff(x1, x2, (size_t)rows * n) == 0);
            k->bias_gelu(x1, b, rows, n);
            r->bias_gelu(x2, b, rows, n);
            double d = max_abs_diff(x1, x2, (size_t)rows * n);
            if (d > 1e-6) FAIL_AT("%s bias_gelu n=%d: max diff %g", k->name, n, d);
            free(b), free(x1), free(x2);
        }
        /* GELU across the whole useful range, and its extremes */
        float xs[] = {-30, -10, -5.5f, -3, -1, -0.5f, -1e-3f, 0, 1e-3f, 0.5f, 1, 3, 5.5f, 10, 30, 80};
        float ys[16], zs[16], zero[16] = {0};
        memcpy(ys, xs, sizeof xs);
        memcpy(zs, xs, sizeof xs);
        k->bias_gelu(ys, zero, 1, 16);
        r->bias_gelu(zs, zero, 1, 16);
        for (int i = 0; i < 16; i++) CHECK_NEAR(ys[i], zs[i], 1e-6 * fmax(1, fabs(xs[i])));
    }
}

TEST(nn_kernel_layernorm_matches_reference) {
    const nn_kernels *ts[2], *r = nn_kernels_ref();
    for (int t = simd_tables(ts) - 1; t >= 0; t--) {
        const nn_kernels *k = ts[t];
        const int ns[] = {5, 16, 32, 33, 384, 1000};
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
            int n = ns[i], rows = 4;
            float *x = rand_vec((size_t)rows * n, 3), *b = rand_vec((size_t)n, 1), *g = rand_vec((size_t)n, 1),
                  *be = rand_vec((size_t)n, 1), *y1 = rand_vec((size_t)rows * n, 10), *y2 = malloc((size_t)rows * n * 4);
            memcpy(y2, y1, (size_t)rows * n * 4);
            k->add_layernorm(x, b, y1, g, be, 1e-12f, rows, n);
            r->add_layernorm(x, b, y2, g, be, 1e-12f, rows, n);
            double d = max_abs_diff(y1, y2, (size_t)rows * n);
            CHECK_MSG(d <= 2e-5, "%s add_layernorm n=%d: max diff %g", k->name, n, d);
            k->add_layernorm(NULL, NULL, y1, g, be, 1e-5f, rows, n);
            r->add_layernorm(NULL, NULL, y2, g, be, 1e-5f, rows, n);
            d = max_abs_diff(y1, y2, (size_t)rows * n);
            CHECK_MSG(d <= 2e-5, "%s layernorm n=%d: max diff %g", k->name, n, d);
            free(x), free(b), free(g), free(be), free(y1), free(y2);
        }
    }
}

/* Table k's attention (and attention_bf16, where it has one) against the
 * reference on one random head of L tokens. The scratch is exactly
 * nn_attention_scratch floats (ASan sees any overrun). */
static void check_attention(const nn_kernels *k, int L, int dh, const nn_attn_mask *mask, size_t mi) {
    const nn_kernels *r = nn_kernels_ref();
    const int ld = 3 * dh + 5;
    float *qkv = rand_vec((size_t)L * ld, 4);
    float *o1 = calloc((size_t)L * dh, 4), *o2 = calloc((size_t)L * dh, 4), *o3 = calloc((size_t)L * dh, 4);
    float *scr = malloc(nn_attention_scratch(L, dh) * 4);
    float scale = 1.0f / sqrtf((float)dh);
    k->attention(qkv, qkv + dh, qkv + 2 * dh, ld, L, 0, L, dh, scale, mask, o1, dh, scr);
    r->attention(qkv, qkv + dh, qkv + 2 * dh, ld, L, 0, L, dh, scale, mask, o2, dh, scr);
    double d = max_abs_diff(o1, o2, (size_t)L * dh);
    CHECK_MSG(d <= 3e-5 * fmax(1, max_abs(o2, (size_t)L * dh)),   /* base-2 exp, other sum orders */
              "%s attention L=%d dh=%d mask %zu: max diff %g", k->name, L, dh, mi, d);
    /* queries in two calls, split at a super block: the same bits */
    if (L > NN_ATT_QS) {
        k->attention(qkv, qkv + dh, qkv + 2 * dh, ld, L, 0, NN_ATT_QS, dh, scale, mask, o3, dh, scr);
        k->attention(qkv, qkv + dh, qkv + 2 * dh, ld, L, NN_ATT_QS, L, dh, scale, mask, o3, dh, scr);
        CHECK_MSG(memcmp(o1, o3, (size_t)L * dh * 4) == 0, "%s attention L=%d dh=%d mask %zu: split queries differ",
                  k->name, L, dh, mi);
    }
    if (k->attention_bf16) {
        /* same bf16 inputs, fp32 sums in another order and probabilities
         * rounded to bf16 against a running maximum: the scores differ in
         * their last bits, which flips the bf16 rounding of some
         * probabilities (2^-8 each) */
        k->attention_bf16(qkv, qkv + dh, qkv + 2 * dh, ld, L, 0, L, dh, scale, mask, o1, dh, scr);
        r->attention_bf16(qkv, qkv + dh, qkv + 2 * dh, ld, L, 0, L, dh, scale, mask, o3, dh, scr);
        d = max_abs_diff(o1, o3, (size_t)L * dh);
        const double mag = fmax(1, max_abs(o3, (size_t)L * dh)), rms = rms_rel(o1, o3, (size_t)L * dh);
        if (d > 1e-2 * mag || rms > 1e-3)
            FAIL_AT("%s attention_bf16 L=%d dh=%d mask %zu: max diff %g, relative rms %g", k->name, L, dh, mi, d, rms);
        /* and stays within bf16's rounding of the fp32 result */
        d = max_abs_diff(o3, o2, (size_t)L * dh);
        if (d > 0.03 * fmax(1, max_abs(o2, (size_t)L * dh)))
            FAIL_AT("attention_bf16 L=%d dh=%d mask %zu: %g from fp32", L, dh, mi, d);
    }
    free(qkv), free(o1), free(o2), free(o3), free(scr);
}

TEST(nn_kernel_attention_matches_reference) {
    const nn_kernels *ts[2];
    const int Ls[] = {1, 2, 3, 5, 12, 13, 16, 17, 31, 33, 100, 256};
    const int dhs[] = {16, 32, 64, 128, 24};
    /* none, ALiBi, a sliding window, both, causal, causal with a window */
    const nn_attn_mask masks[] = {{0, 0, 0}, {0.35f, 0, 0}, {0, 4, 0}, {0.0625f, 9, 0}, {0, 0, 1}, {0, 3, 1}};
    for (int t = simd_tables(ts) - 1; t >= 0; t--)
        for (size_t a = 0; a < sizeof Ls / sizeof *Ls; a++)
            for (size_t b = 0; b < sizeof dhs / sizeof *dhs; b++)
                for (size_t mi = 0; mi < sizeof masks / sizeof *masks; mi++)
                    check_attention(ts[t], Ls[a], dhs[b], mi ? &masks[mi] : NULL, mi);
}

/* Inputs longer than a tile (NN_ATT_KT keys) and a super block (NN_ATT_QS
 * queries): tiles skipped above the diagonal and outside windows wider and
 * narrower than a tile, ALiBi over long distances, the online softmax's
 * rescaling across tiles. */
TEST(nn_kernel_attention_long_matches_reference) {
    const nn_kernels *ts[2];
    const int Ls[] = {NN_ATT_QS + 1, 2 * NN_ATT_KT + 37, 611};
    const int dhs[] = {32, 64, 128};
    const nn_attn_mask masks[] = {{0, 0, 0},   {0.01f, 0, 0}, {0, 64, 0}, {0, NN_ATT_KT + 50, 0},
                                  {0, 0, 1},   {0, 100, 1},   {0.2f, 0, 1}, {0.03f, 40, 0}};
    for (int t = simd_tables(ts) - 1; t >= 0; t--)
        for (size_t a = 0; a < sizeof Ls / sizeof *Ls; a++)
            for (size_t b = 0; b < sizeof dhs / sizeof *dhs; b++)
                for (size_t mi = 0; mi < sizeof masks / sizeof *masks; mi++)
                    if (Ls[a] < 600 || dhs[b] == 64) check_attention(ts[t], Ls[a], dhs[b], mi ? &masks[mi] : NULL, mi);
}

/* The mask itself, on the reference: a window hides far keys entirely,
 * ALiBi lowers each by its distance. One query row against 3 keys with
 * equal scores: weights e^0, e^-s, e^-2s for query 0. */
TEST(nn_attention_mask_semantics) {
    const nn_kernels *r = nn_kernels_ref();
    const int L = 3, dh = 1, ld = 3;
    float qkv[9] = {0, 0, 1, 0, 0, 2, 0, 0, 4}, out[3], scr[4096];
    const nn_attn_mask alibi = {0.5f, 0, 0}, win = {0, 1, 0}, causal = {0, 0, 1};
    r->attention(qkv, qkv + 1, qkv + 2, ld, L, 0, L, dh, 1.0f, &alibi, out, 1, scr);
    const double w0 = 1, w1 = exp(-0.5), w2 = exp(-1.0);
    CHECK_NEAR(out[0], (1 * w0 + 2 * w1 + 4 * w2) / (w0 + w1 + w2), 1e-5);
    r->attention(qkv, qkv + 1, qkv + 2, ld, L, 0, L, dh, 1.0f, &win, out, 1, scr);
    CHECK_NEAR(out[0], 1.5, 1e-6);          /* keys 0, 1 */
    CHECK_NEAR(out[1], 7.0 / 3.0, 1e-6);    /* keys 0, 1, 2 */
    CHECK_NEAR(out[2], 3.0, 1e-6);          /* keys 1, 2 */
    r->attention(qkv, qkv + 1, qkv + 2, ld, L, 0, L, dh, 1.0f, &causal, out, 1, scr);
    CHECK_NEAR(out[0], 1.0, 1e-6);          /* key 0 */
    CHECK_NEAR(out[1], 1.5, 1e-6);          /* keys 0, 1 */
    CHECK_NEAR(out[2], 7.0 / 3.0, 1e-6);    /* keys 0, 1, 2 */
}

TEST(nn_kernel_glu_matches_reference) {
    const nn_kernels *ts[2], *r = nn_kernels_ref();
    for (int t = simd_tables(ts) - 1; t >= 0; t--) {
        const nn_kernels *k = ts[t];
        const int ns[] = {1, 7, 16, 33, 1152};
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
            for (int act = 0; act < 2; act++) {
                const int n = ns[i], rows = 3, ld = 2 * n + 3;
                float *x1 = rand_vec((size_t)rows * ld, 4), *x2 = malloc((size_t)rows * ld * 4);
                for (int q = 0; q < rows * ld; q++) x1[q] *= 6.0f;   /* GELU's and SiLU's whole range */
                memcpy(x2, x1, (size_t)rows * ld * 4);
                k->glu(x1, ld, rows, n, (nn_act)act);
                r->glu(x2, ld, rows, n, (nn_act)act);
                double d = 0;
                for (int q = 0; q < rows; q++) {
                    double dq = max_abs_diff(x1 + (size_t)q * ld, x2 + (size_t)q * ld, (size_t)n);
                    d = dq > d ? dq : d;
                }
                CHECK_MSG(d <= 2e-5 * 36, "%s glu n=%d act %d: max diff %g", k->name, n, act, d);
                free(x1), free(x2);
            }
    }
}

/* The pieces around another library's GEMM: bit-exact with the reference
 * (GELU: within its approximation). */
TEST(nn_quantize_weight_rows_match_reference) {
    if (!(cpu_features() & CPU_AVX2)) {
        TEST_SKIP("no AVX2 here: the weight quantizer is the reference itself");
        return;
    }
    const int Ks[] = {1, 7, 8, 9, 16, 17, 383, 384, 1536};
    for (size_t i = 0; i < sizeof Ks / sizeof *Ks; i++) {
        const int K = Ks[i], rows = 6;
        float *W = rand_vec((size_t)rows * K, 1);
        for (int j = 0; j < K; j++) W[(size_t)K + j] = 0;                 /* an all-zero row */
        W[(size_t)2 * K + K / 2] = NAN;                                    /* NaN: left out of the max, code 0 */
        W[(size_t)3 * K] = INFINITY;                                       /* inf: every other code 0 */
        for (int j = 0; j < K; j++) W[(size_t)4 * K + j] = (float)(j % 5) * 0.5f - 1.0f;   /* ties at .5 */
        W[(size_t)5 * K + K - 1] = -1e-40f;                                 /* a denormal */
        for (int r = 0; r < 2 * rows; r++) {
            const int qm = r < rows ? 63 : 127;   /* both weight ranges */
            int8_t q1[1536], q2[1536];
            float s1, s2;
            int32_t c1, c2;
            nn_quantize_weight_row(W + (size_t)(r % rows) * K, K, qm, q1, &s1, &c1);
            nn_quantize_weight_row_avx2(W + (size_t)(r % rows) * K, K, qm, q2, &s2, &c2);
            CHECK_MSG(!memcmp(q1, q2, (size_t)K) && !memcmp(&s1, &s2, sizeof s1) && c1 == c2,
                      "K=%d row %d qmax %d: the AVX2 weight quantizer differs from the reference", K, r % rows, qm);
        }
        free(W);
    }
}

TEST(nn_kernel_gemm_pieces_match_reference) {
    const nn_kernels *ts[2], *r = nn_kernels_ref();
    for (int t = simd_tables(ts) - 1; t >= 0; t--) {
        const nn_kernels *k = ts[t];
        const int Ks[] = {1, 7, 16, 17, 64, 384, 1536};
        for (size_t i = 0; i < sizeof Ks / sizeof *Ks; i++) {
            const int K = Ks[i], M = 5, ldq = K + 4, N = K;
            float *A = rand_vec((size_t)M * K, 3);
            A[0] = 7.5f;                     /* an outlier */
            for (int j = 0; j < K; j++) A[(size_t)2 * K + j] = 0;            /* a zero row */
            for (int j = 0; j < K; j++) A[(size_t)3 * K + j] = fabsf(A[j]);  /* no negative value */
            A[(size_t)4 * K + K / 2] = 1e-40f;   /* a denormal */
            uint8_t *q1 = malloc((size_t)M * ldq), *q2 = malloc((size_t)M * ldq);
            memset(q1, 0xAA, (size_t)M * ldq);
            memset(q2, 0x55, (size_t)M * ldq);
            float sa1[5], sa2[5];
            int32_t zp1[5], zp2[5];
            k->quantize_u8(M, K, A, K, q1, ldq, sa1, zp1);
            r->quantize_u8(M, K, A, K, q2, ldq, sa2, zp2);
            if (memcmp(q1, q2, (size_t)M * ldq) || memcmp(sa1, sa2, sizeof sa1) || memcmp(zp1, zp2, sizeof zp1))
                FAIL_AT("%s quantize_u8 K=%d differs from the reference", k->name, K);
            uint16_t *b1 = malloc((size_t)M * K * 2), *b2 = malloc((size_t)M * K * 2);
            k->to_bf16(M, K, A, K, b1, K);
            r->to_bf16(M, K, A, K, b2, K);
            if (memcmp(b1, b2, (size_t)M * K * 2)) FAIL_AT("%s to_bf16 K=%d differs from the reference", k->name, K);
            /* epilogues on [M, N] accumulators */
            int32_t *acc = malloc((size_t)M * N * 4), *cs = malloc((size_t)N * 4);
            float *sw = rand_vec((size_t)N, 0.01f), *bias = rand_vec((size_t)N, 1), *facc = rand_vec((size_t)M * N, 3);
            float *c1 = malloc((size_t)M * (N + 3) * 4), *c2 = malloc((size_t)M * (N + 3) * 4);
            for (int j = 0; j < M * N; j++) acc[j] = (int32_t)(frand(1) * 2e6f);
            for (int j = 0; j < N; j++) cs[j] = (int32_t)(frand(1) * 3e3f);
            for (int gelu = 0; gelu < 2; gelu++) {
                const double tol = gelu ? 1e-6 : 0;
                k->dequant_i8(M, N, acc, N, sa1, zp1, sw, cs, gelu ? bias : NULL, gelu, c1, N + 3);
                r->dequant_i8(M, N, acc, N, sa1, zp1, sw, cs, gelu ? bias : NULL, gelu, c2, N + 3);
                for (int row = 0; row < M; row++) {
                    const double d = max_abs_diff(c1 + (size_t)row * (N + 3), c2 + (size_t)row * (N + 3), (size_t)N);
                    if (d > tol * fmax(1, max_abs(c2 + (size_t)row * (N + 3), (size_t)N)))
                        FAIL_AT("%s dequant_i8 K=%d gelu=%d row %d: max diff %g", k->name, K, gelu, row, d);
                }
                k->bias_act(M, N, facc, N, bias, gelu, c1, N + 3);
                r->bias_act(M, N, facc, N, bias, gelu, c2, N + 3);
                for (int row = 0; row < M; row++) {
                    const double d = max_abs_diff(c1 + (size_t)row * (N + 3), c2 + (size_t)row * (N + 3), (size_t)N);
                    if (d > tol * fmax(1, max_abs(c2 + (size_t)row * (N + 3), (size_t)N)))
                        FAIL_AT("%s bias_act K=%d gelu=%d row %d: max diff %g", k->name, K, gelu, row, d);
                }
            }
            free(A), free(q1), free(q2), free(b1), free(b2), free(acc), free(cs), free(sw), free(bias), free(facc);
            free(c1), free(c2);
        }
    }
    /* bf16 ties, signs and denormals: the integer rounding of every table */
    const float xs[] = {1.00390625f, 1.01171875f, -3.0f, 1e-40f, -1e-40f, 3.4e38f, 0.0f, -0.0f};
    uint16_t ref[8], got[8];
    r->to_bf16(1, 8, xs, 8, ref, 8);
    for (int t = simd_tables(ts) - 1; t >= 0; t--) {
        ts[t]->to_bf16(1, 8, xs, 8, got, 8);
        CHECK(memcmp(ref, got, sizeof ref) == 0);
    }
}

/* C = A @ W^T at fp32 in double, for the low-precision GEMM tests. */
static void gemm_exact(int M, int N, int K, const float *A, const float *W, const float *bias, float *C) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = bias ? bias[j] : 0;
            for (int k = 0; k < K; k++) acc += (double)A[(size_t)i * K + k] * W[(size_t)j * K + k];
            C[(size_t)i * N + j] = (float)acc;
        }
}

TEST(nn_gemm_lowp_matches_reference_and_fp32) {
    const nn_kernels *ts[2], *r = nn_kernels_ref();
    const int n_tables = simd_tables(ts);
    const int shapes[][3] = {{1, 1, 1}, {5, 16, 3}, {6, 17, 64}, {7, 40, 385}, {13, 33, 384}, {48, 1152, 384}, {48, 96, 1536}};
    for (int p = 0; p < 3; p++) {
        const nn_precision prec = p == 2 ? NN_FP32 : p ? NN_INT8 : NN_BF16;
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
            float *A = rand_vec((size_t)M * K, 2), *W = rand_vec((size_t)N * K, 0.2f), *bias = rand_vec((size_t)N, 1);
            A[0] = 3.0f;   /* an outlier, as LayerNorm outputs have */
            float *c1 = malloc((size_t)M * N * 4), *c2 = malloc((size_t)M * N * 4), *ce = malloc((size_t)M * N * 4);
            void *scr = malloc(nn_lowp_scratch_bytes(K));
            nn_packed w;
            CHECK_INT(nn_pack(W, N, K, prec, 63, &w), 0);
            CHECK_INT((int)nn_packed_bytes(&w), (int)((size_t)w.Np * w.Kp * (prec == NN_INT8 ? 1 : prec == NN_BF16 ? 2 : 4) +
                                                      (prec == NN_INT8 ? (size_t)w.Np * 8 : 0)));
            for (int t = 0; t < n_tables; t++)
                for (int gelu = 0; gelu < 2; gelu++) {
                    ts[t]->gemm_lowp(M, A, K, &w, gelu ? bias : NULL, gelu, c1, N, scr);
                    r->gemm_lowp(M, A, K, &w, gelu ? bias : NULL, gelu, c2, N, scr);
                    double scale = max_abs(c2, (size_t)M * N);
                    double d = max_abs_diff(c1, c2, (size_t)M * N);
                    /* int8 sums are exact in both; bf16 sums in fp32 vs double */
                    if (d > 1e-5 * fmax(1, scale) * (prec == NN_INT8 ? 1 : sqrt(K)))
                        FAIL_AT("%s %s gemm M=%d N=%d K=%d gelu=%d: optimized vs reference max diff %g", ts[t]->name,
                                nn_precision_name(prec), M, N, K, gelu, d);
                }
            /* and both stay within the format's rounding of the fp32 product */
            gemm_exact(M, N, K, A, W, NULL, ce);
            r->gemm_lowp(M, A, K, &w, NULL, 0, c2, N, scr);
            double err = 0, mag = 0;
            for (size_t i = 0; i < (size_t)M * N; i++) {
                err += (c2[i] - ce[i]) * (double)(c2[i] - ce[i]);
                mag += (double)ce[i] * ce[i];
            }
            const double rel = sqrt(err / fmax(mag, 1e-30));
            if (rel > (prec == NN_INT8 ? 0.03 : prec == NN_BF16 ? 0.008 : 1e-6))
                FAIL_AT("%s gemm M=%d N=%d K=%d: relative error %g against fp32", nn_precision_name(prec), M, N, K, rel);
            nn_packed_free(&w);
            free(A), free(W), free(bias), free(c1), free(c2), free(ce), free(scr);
        }
    }
    /* an all-zero weight row and an all-zero input row give zeros, not NaN */
    float A0[2 * 4] = {0, 0, 0, 0, 1, -2, 3, -4}, W0[2 * 4] = {0, 0, 0, 0, 1, 1, 1, 1}, C0[4], scr0[256];
    nn_packed w0;
    CHECK_INT(nn_pack(W0, 2, 4, NN_INT8, 63, &w0), 0);
    for (int t = 0; t < n_tables; t++) {
        ts[t]->gemm_lowp(2, A0, 4, &w0, NULL, 0, C0, 2, scr0);
        CHECK(C0[0] == 0 && C0[1] == 0 && C0[2] == 0);
        CHECK_NEAR(C0[3], -2.0, 0.05);
        /* non-finite inputs give garbage, never undefined behaviour (UBSan build) */
        float Abad[2 * 4] = {INFINITY, 1, 2, 3, NAN, -INFINITY, 0, 1};
        ts[t]->gemm_lowp(2, Abad, 4, &w0, NULL, 0, C0, 2, scr0);
    }
    float Abad[2 * 4] = {INFINITY, 1, 2, 3, NAN, -INFINITY, 0, 1};
    r->gemm_lowp(2, Abad, 4, &w0, NULL, 0, C0, 2, scr0);
    CHECK_INT(nn_zero_point(NAN, 1.0f), 0);
    CHECK_INT(nn_zero_point(-1.0f, 127.5f), 128);
    nn_packed_free(&w0);
    CHECK_NEAR(nn_round_bf16(1.00390625f), 1.0, 0);          /* halfway: ties to even */
    CHECK_NEAR(nn_round_bf16(1.01171875f), 1.015625, 0);     /* halfway: up to even */
    CHECK_NEAR(nn_round_bf16(-3.0f), -3.0, 0);
}

/* bf16 -> fp32 widening (bf16w weights): the AVX-512 one equals the
 * reference bit for bit at every length (tails), whatever the bits (NaN,
 * infinities, subnormals), and the reference is exact. */
TEST(nn_widen_bf16_matches_reference) {
    enum { MAXN = 100 };
    uint16_t in[MAXN];
    float a[MAXN + 1], b[MAXN + 1];
    for (int i = 0; i < MAXN; i++) in[i] = (uint16_t)(rand() * 7919u + (unsigned)i * 40503u);
    in[0] = 0x7fc0, in[1] = 0xff80, in[2] = 0x0001, in[3] = 0x8000;   /* NaN, -inf, subnormal, -0 */
    nn_widen_bf16_ref(in, 5, a);
    CHECK(a[4] == nn_bf16_float(in[4]) && isinf(a[1]) && a[1] < 0 && isnan(a[0]) && signbit(a[3]));
    if (!(cpu_features() & CPU_AVX512F)) return;
    const int lens[] = {0, 1, 15, 16, 17, 31, 32, 33, 64, 99, 100};
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        const int n = lens[li];
        a[n] = b[n] = 12345.0f;   /* past the end: untouched */
        nn_widen_bf16_ref(in, (size_t)n, a);
        nn_widen_bf16_avx512(in, (size_t)n, b);
        if (memcmp(a, b, (size_t)(n + 1) * sizeof(float))) FAIL_AT("widen_bf16 n=%d: avx512 differs from the reference", n);
    }
}

/* Every GEMM backend through the seam, at every precision it runs here,
 * against the scalar backend (the packed reference): int8 bit for bit
 * without GELU (exact sums, the same epilogue), floats within their sums'
 * rounding; and each row of a call equal, bit for bit, to the same row
 * computed alone or at another position (batch invariance). */
TEST(nn_gemm_backends_match_reference_and_rows_are_independent) {
    const nn_shape shapes[] = {{1152, 384}, {384, 1536}, {40, 385}, {17, 33}};
    const int n_shapes = (int)(sizeof shapes / sizeof *shapes);
    const nn_gemm_backend backends[] = {NN_GEMM_ONEDNN, NN_GEMM_OWN, NN_GEMM_BLAS};
    const int Ms[] = {1, 3, 64, 65, 130};
    const nn_kernels *k = nn_kernels_best();
    int ran = 0;
    nn_gemm *ref32;
    if (nn_gemm_new(nn_kernels_ref(), NN_FP32, NN_GEMM_SCALAR, 1, shapes, n_shapes, &ref32)) {
        FAIL_AT("scalar backend: %s", cembed_last_error());
        return;
    }
    for (int p = 0; p < 3; p++) {
        const nn_precision prec = p == 0 ? NN_INT8 : p == 1 ? NN_BF16 : NN_FP32;
        nn_gemm *ref;
        if (nn_gemm_new(nn_kernels_ref(), prec, NN_GEMM_SCALAR, 1, shapes, n_shapes, &ref)) {
            FAIL_AT("scalar backend: %s", cembed_last_error());
            continue;
        }
        for (size_t bi = 0; bi < sizeof backends / sizeof *backends; bi++) {
            if (backends[bi] == NN_GEMM_BLAS && prec != NN_FP32) continue;
            nn_gemm *g;
            if (nn_gemm_new(k, prec, backends[bi], 2, shapes, n_shapes, &g)) {
                fprintf(stderr, "  note: %s %s not run at %s: %s\n", nn_gemm_backend_name(backends[bi]),
                        nn_precision_name(prec), cpu_isa_name(cpu_features()), cembed_last_error());
                continue;
            }
            ran++;
            nn_gemm_set_qmax(ref, nn_gemm_qmax(g));   /* the reference quantizes as g does */
            for (int si = 0; si < n_shapes; si++) {
                const int N = shapes[si].N, K = shapes[si].K, Mmax = 130;
                float *W = rand_vec((size_t)N * K, 0.2f), *bias = rand_vec((size_t)N, 1);
                float *A = rand_vec((size_t)Mmax * K, 2), *c1 = malloc((size_t)Mmax * N * 4),
                      *c2 = malloc((size_t)Mmax * N * 4), *one = malloc((size_t)N * 4);
                A[0] = 3.0f;
                nn_linear lw, lr;
                /* bf16w (bf16 weights, fp32 activations): the fp32 reference on the rounded weights */
                const int bf16w = strstr(nn_gemm_describe(g), "bf16w") != NULL;
                nn_gemm *gr = bf16w ? ref32 : ref;
                float *Wr = rand_vec((size_t)N * K, 0);
                for (size_t i = 0; i < (size_t)N * K; i++) Wr[i] = bf16w ? nn_round_bf16(W[i]) : W[i];
                if (nn_gemm_prepare(g, W, N, K, &lw) || nn_gemm_prepare(gr, Wr, N, K, &lr)) {
                    FAIL_AT("prepare: %s", cembed_last_error());
                    break;
                }
                for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
                    for (int gelu = 0; gelu < 2; gelu++) {
                        const int M = Ms[mi];
                        nn_gemm_run(g, 1, &lw, M, A, K, gelu ? bias : NULL, gelu, c1, N);
                        nn_gemm_run(gr, 0, &lr, M, A, K, gelu ? bias : NULL, gelu, c2, N);
                        const double d = max_abs_diff(c1, c2, (size_t)M * N), scale = fmax(1, max_abs(c2, (size_t)M * N));
                        const double tol = prec == NN_INT8 ? (gelu ? 1e-6 * scale : 0) : 1e-5 * scale * sqrt(K);
                        if (d > tol)
                            FAIL_AT("%s %s N=%d K=%d M=%d gelu=%d: %g from the reference", nn_gemm_describe(g),
                                    nn_precision_name(prec), N, K, M, gelu, d);
                        /* rows alone (OpenBLAS, the reference of CPUs without AVX2, picks
                         * kernels by the row count: it is not held to this) */
                        for (int row = 0; row < M && backends[bi] != NN_GEMM_BLAS; row += 1 + M / 7) {
                            nn_gemm_run(g, 0, &lw, 1, A + (size_t)row * K, K, gelu ? bias : NULL, gelu, one, N);
                            if (memcmp(one, c1 + (size_t)row * N, (size_t)N * 4))
                                FAIL_AT("%s %s N=%d K=%d: row %d of %d differs from the row alone", nn_gemm_describe(g),
                                        nn_precision_name(prec), N, K, row, M);
                        }
                    }
                /* the same rows in a call that starts 37 rows later */
                nn_gemm_run(g, 0, &lw, 130, A, K, bias, 1, c1, N);
                nn_gemm_run(g, 1, &lw, 93, A + (size_t)37 * K, K, bias, 1, c2, N);
                if (backends[bi] != NN_GEMM_BLAS && memcmp(c1 + (size_t)37 * N, c2, (size_t)93 * N * 4))
                    FAIL_AT("%s %s N=%d K=%d: rows depend on their position in the call", nn_gemm_describe(g),
                            nn_precision_name(prec), N, K);
                nn_linear_free(&lw);
                nn_linear_free(&lr);
                free(W), free(Wr), free(bias), free(A), free(c1), free(c2), free(one);
            }
            nn_gemm_free(g);
        }
        nn_gemm_free(ref);
    }
    nn_gemm_free(ref32);
    CHECK(ran >= 1);
}

typedef struct fwd_fixture {
    model m;
    pool *p;
    bert *b;
} fwd_fixture;

/* qmax: 0, or the int8 weight range of the scalar reference (that of the
 * backend it checks) */
static int fixture_q(fwd_fixture *f, const char *dir, const nn_kernels *k, nn_precision prec, int threads,
                     int max_tokens, int qmax) {
    memset(f, 0, sizeof *f);
    const bert_opts o = {.k = k, .prec = prec, .gemm = NN_GEMM_AUTO, .attn_bf16 = nn_bf16_attention(prec),
                         .int8_qmax = qmax};
    if (model_load(dir, &f->m) || pool_new(threads, &f->p) || bert_new(&f->m, &o, f->p, max_tokens, 40, &f->b)) {
        FAIL_AT("fixture: %s", cembed_last_error());
        return -1;
    }
    return 0;
}

static int fixture_prec(fwd_fixture *f, const char *dir, const nn_kernels *k, nn_precision prec, int threads,
                        int max_tokens) {
    return fixture_q(f, dir, k, prec, threads, max_tokens, 0);
}

static int fixture(fwd_fixture *f, const char *dir, const nn_kernels *k, int threads, int max_tokens) {
    return fixture_prec(f, dir, k, NN_FP32, threads, max_tokens);
}

static void fixture_free(fwd_fixture *f) {
    bert_free(f->b);
    pool_free(f->p);
    model_free(&f->m);
}

static char dir[128];

static const char *tiny_dir(void) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/nn", test_tmpdir());
        tiny_spec sp = {.vocab = 64, .hidden = 64, .layers = 2, .heads = 2, .inter = 96, .max_pos = 40, .normalize = 1};
        if (tiny_model_write(dir, &sp, 99) != 0) FAIL_AT("cannot write the tiny model");
    }
    return dir;
}

/* The tiny model's forward pass at one precision: optimized (2 threads)
 * against the reference table (1 thread), each sequence alone against the
 * packed batch; OUT: the optimized batch's vectors in out. */
static void forward_checks(nn_precision prec, double tol_ref, float *out_o) {
    enum { NSEQ = 24 };
    int lens[NSEQ], off[NSEQ + 1] = {0};
    int32_t ids[NSEQ * 40];
    for (int s = 0; s < NSEQ; s++) {
        lens[s] = 1 + (s * 7) % 40;
        off[s + 1] = off[s] + lens[s];
        for (int t = 0; t < lens[s]; t++) ids[off[s] + t] = (s * 31 + t * 17) % 64;
    }
    fwd_fixture fo, fr;
    if (fixture_prec(&fo, tiny_dir(), nn_kernels_best(), prec, 2, off[NSEQ]))
        return;
    if (fixture_q(&fr, tiny_dir(), nn_kernels_ref(), prec, 1, off[NSEQ], bert_int8_qmax(fo.b))) {
        fixture_free(&fo);
        return;
    }
    const int H = fo.m.cfg.hidden;
    float *out_r = malloc((size_t)NSEQ * H * 4), *one = malloc((size_t)H * 4);
    bert_forward(fo.b, NSEQ, ids, off, out_o, fo.m.normalize);
    bert_forward(fr.b, NSEQ, ids, off, out_r, fr.m.normalize);
    double d = max_abs_diff(out_o, out_r, (size_t)NSEQ * H);
    /* bf16w (bf16 weights, fp32 activations) against the reference's bf16 x
     * bf16: the activations' rounding apart (its accuracy: the cosines below) */
    if (prec == NN_BF16 && strstr(bert_gemm_describe(fo.b), "bf16w")) tol_ref = 4e-3;
    if (d > tol_ref) FAIL_AT("%s: optimized vs reference forward: max diff %g", nn_precision_name(prec), d);
    /* normalized output */
    double sq = 0;
    for (int i = 0; i < H; i++) sq += (double)out_o[i] * out_o[i];
    CHECK_NEAR(sq, 1.0, 1e-5);
    /* each sequence alone gives the same vector as inside the packed batch
     * (int8 too: activations are quantized per token) */
    double worst = 0;
    for (int s = 0; s < NSEQ; s++) {
        int o1[2] = {0, lens[s]};
        bert_forward(fo.b, 1, ids + off[s], o1, one, fo.m.normalize);
        worst = fmax(worst, max_abs_diff(one, out_o + (size_t)s * H, (size_t)H));
    }
    if (worst != 0) FAIL_AT("%s (%s): batch invariance: max diff %g", nn_precision_name(prec), bert_gemm_describe(fo.b), worst);
    free(out_r), free(one);
    fixture_free(&fo);
    fixture_free(&fr);
}

static double min_cosine(const float *a, const float *b, int n_vec, int dims) {
    double worst = 1;
    for (int v = 0; v < n_vec; v++) {
        double ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < dims; i++) {
            const double x = a[(size_t)v * dims + i], y = b[(size_t)v * dims + i];
            ab += x * y, aa += x * x, bb += y * y;
        }
        worst = fmin(worst, ab / sqrt(aa * bb));
    }
    return worst;
}

TEST(nn_forward_optimized_matches_reference_and_is_batch_invariant) {
    enum { NSEQ = 24, H = 64 };
    static float f32[NSEQ * H], bf[NSEQ * H], i8[NSEQ * H];
    forward_checks(NN_FP32, 1e-5, f32);
    forward_checks(NN_BF16, 5e-4, bf);
    forward_checks(NN_INT8, 2e-3, i8);
    /* the low precisions stay close to fp32 */
    double cb = min_cosine(bf, f32, NSEQ, H), ci = min_cosine(i8, f32, NSEQ, H);
    if (cb < 0.9999) FAIL_AT("bf16 vs fp32: min cosine %.6f", cb);
    fprintf(stderr, "  note: min cosine to fp32: bf16 %.7f, int8 %.7f\n", cb, ci);
    if (ci < 0.99) FAIL_AT("int8 vs fp32: min cosine %.6f", ci);
}

/* The shared items of bert.c (co_run): whole-sequence mode hands the
 * batch's last sequences (as many rows as the longest) to every thread,
 * and a batch of fewer than two sequences a thread is shared items
 * throughout. With 1 to 4 threads, at fp32 and int8, every sequence's
 * vector is the same bits, and that of the sequence run alone: a tail of
 * short sequences, a tail of two 39-token ones (two row items at int8), and
 * three sequences (shared items only). */
static void shared_items_check(const int *lens, int nseq) {
    enum { H = 64, MAXS = 12 };
    int off[MAXS + 1] = {0};
    int32_t ids[MAXS * 40];
    for (int s = 0; s < nseq; s++) {
        off[s + 1] = off[s] + lens[s];
        for (int t = 0; t < lens[s]; t++) ids[off[s] + t] = (s * 13 + t * 29) % 64;
    }
    const nn_precision precs[2] = {NN_FP32, NN_INT8};
    for (int p = 0; p < 2; p++) {
        static float want[MAXS * H], got[MAXS * H];
        for (int threads = 1; threads <= 4; threads++) {
            fwd_fixture f;
            if (fixture_prec(&f, tiny_dir(), nn_kernels_best(), precs[p], threads, off[nseq])) return;
            CHECK_INT(f.m.cfg.hidden, H);
            bert_forward(f.b, nseq, ids, off, threads == 1 ? want : got, f.m.normalize);
            if (threads == 1)   /* each sequence alone */
                for (int s = 0; s < nseq; s++) {
                    const int o1[2] = {0, lens[s]};
                    float one[H];
                    bert_forward(f.b, 1, ids + off[s], o1, one, f.m.normalize);
                    CHECK_MSG(memcmp(one, want + (size_t)s * H, sizeof one) == 0, "%s: %d sequences: sequence %d alone differs",
                              nn_precision_name(precs[p]), nseq, s);
                }
            else
                CHECK_MSG(memcmp(want, got, (size_t)nseq * H * sizeof(float)) == 0, "%s: %d sequences: %d threads differ from one",
                          nn_precision_name(precs[p]), nseq, threads);
            fixture_free(&f);
        }
    }
}

TEST(nn_forward_shared_items_same_bits_any_threads) {
    static const int a[12] = {40, 40, 39, 38, 30, 25, 12, 9, 5, 3, 2, 1}, b[9] = {40, 40, 40, 40, 40, 40, 40, 39, 39},
                     c[3] = {40, 40, 40};
    shared_items_check(a, 12);
    shared_items_check(b, 9);
    shared_items_check(c, 3);
}

TEST(nn_forward_cls_pooling_unnormalized) {
    char d2[160];
    snprintf(d2, sizeof d2, "%s-cls", tiny_dir());
    tiny_spec sp = {.vocab = 64, .hidden = 32, .layers = 1, .heads = 2, .inter = 48, .max_pos = 40, .pooling_cls = 1};
    CHECK_INT(tiny_model_write(d2, &sp, 5), 0);
    fwd_fixture f;
    if (fixture(&f, d2, nn_kernels_best(), 1, 40)) return;
    CHECK_INT(f.m.pooling, POOL_CLS);
    CHECK_INT(f.m.normalize, 0);
    int32_t ids[3] = {2, 5, 3};
    int off[2] = {0, 3};
    float out[32];
    bert_forward(f.b, 1, ids, off, out, f.m.normalize);
    double sq = 0;
    for (int i = 0; i < 32; i++) sq += (double)out[i] * out[i];
    CHECK(fabs(sq - 1.0) > 1e-3);   /* not normalized */
    fixture_free(&f);
}

/* The memory plan counts a long sequence exactly: after bert_release, one
 * sequence of L tokens makes resident what bert_batch_bytes(L) says, to
 * the page (one thread: every head's attention runs in its scratch; with
 * more, a thread may take no head). Attention holds no L x L matrix: the
 * plan grows linearly with L. */
TEST(nn_workspace_plan_counts_a_long_sequence) {
    char ldir[160];
    snprintf(ldir, sizeof ldir, "%s/nn-long", test_tmpdir());
    const tiny_spec sp = {.vocab = 64, .hidden = 64, .layers = 1, .heads = 2, .inter = 96, .max_pos = 1100};
    if (tiny_model_write(ldir, &sp, 7) != 0) {
        FAIL_AT("cannot write the tiny model");
        return;
    }
    model m;
    pool *p = NULL;
    bert *b = NULL;
    const bert_opts o = {.k = nn_kernels_best(), .prec = NN_FP32, .gemm = NN_GEMM_AUTO};
    if (model_load(ldir, &m) || pool_new(1, &p) || bert_new(&m, &o, p, 2048, 1024, &b)) {
        FAIL_AT("%s", cembed_last_error());
        return;
    }
    enum { L = 1000 };
    static int32_t ids[L];
    for (int t = 0; t < L; t++) ids[t] = (t * 13) % 64;
    float out[64];
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (int pass = 0; pass < 2; pass++) {
        bert_release(b);
        const size_t before = bert_resident_bytes(b);
        const int off[2] = {0, L};
        bert_forward(b, 1, ids, off, out, 1);
        const size_t grew = bert_resident_bytes(b) - before, plan = bert_batch_bytes(b, L);
        /* every region may add one partial page at either end */
        CHECK_MSG(grew <= plan + 8 * page && grew + 8 * page >= plan, "resident grew %zu, plan %zu", grew, plan);
    }
    /* alone its heads run in chunks of queries (phase mode); among two
     * short ones, in one call each (whole-sequence mode): the same bits */
    static int32_t ids3[L + 2];
    memcpy(ids3, ids, sizeof ids);
    ids3[L] = 5, ids3[L + 1] = 9;
    const int off3[4] = {0, L, L + 1, L + 2};
    float out3[3 * 64];
    bert_forward(b, 3, ids3, off3, out3, 1);
    CHECK(memcmp(out, out3, sizeof out) == 0);
    CHECK(bert_batch_bytes(b, 1000) < 2 * bert_batch_bytes(b, 500) + 1024);
    CHECK(bert_batch_bytes(b, 1000) < (size_t)1000 * 1000 * sizeof(float));
    bert_free(b);
    pool_free(p);
    model_free(&m);
}

/* The plan of app/runtime.c splits a batch's workspace into activations
 * per token, f(L + 1) - f(L), and attention's scratch of one L-token
 * sequence per thread, f(L) - L x that (L: the longest sequence): a batch
 * of t >= L tokens then costs exactly t x per-token + scratch, and two
 * sequences of L tokens make resident no more than that (the scratch is
 * not counted once per token, which over-reserved batches). */
TEST(nn_workspace_plan_scratch_once_per_thread) {
    char ldir[160];
    snprintf(ldir, sizeof ldir, "%s/nn-plan2", test_tmpdir());
    const tiny_spec sp = {.vocab = 64, .hidden = 64, .layers = 1, .heads = 2, .inter = 96, .max_pos = 600};
    if (tiny_model_write(ldir, &sp, 9) != 0) {
        FAIL_AT("cannot write the tiny model");
        return;
    }
    model m;
    pool *p = NULL;
    bert *b = NULL;
    const bert_opts o = {.k = nn_kernels_best(), .prec = NN_FP32, .gemm = NN_GEMM_AUTO};
    enum { L = 512 };
    if (model_load(ldir, &m) || pool_new(2, &p) || bert_new(&m, &o, p, 2 * L, L, &b)) {
        FAIL_AT("%s", cembed_last_error());
        return;
    }
    const size_t per_token = bert_batch_bytes(b, L + 1) - bert_batch_bytes(b, L);
    const size_t scratch = bert_batch_bytes(b, L) - L * per_token;
    CHECK_INT(scratch, 2 * 2 * (size_t)L * 32 * sizeof(float));   /* 2 threads x K^T and V x L x head_dim */
    CHECK_INT(bert_batch_bytes(b, 2 * L), 2 * L * per_token + scratch);
    CHECK(2 * L * bert_batch_bytes(b, 1) > bert_batch_bytes(b, 2 * L) + scratch / 2);   /* the old plan's excess */
    static int32_t ids[2 * L];
    for (int t = 0; t < 2 * L; t++) ids[t] = (t * 7) % 64;
    const int off[3] = {0, L, 2 * L};
    float out[2 * 64];
    bert_release(b);
    const size_t before = bert_resident_bytes(b);
    bert_forward(b, 2, ids, off, out, 1);
    const size_t grew = bert_resident_bytes(b) - before, page = (size_t)sysconf(_SC_PAGESIZE);
    CHECK_MSG(grew <= 2 * L * per_token + scratch + 8 * page, "resident grew %zu, plan %zu", grew,
              2 * L * per_token + scratch);
    bert_free(b);
    pool_free(p);
    model_free(&m);
}
