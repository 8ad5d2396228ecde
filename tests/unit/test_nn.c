/* Unit tests of src/nn: every optimized kernel against the scalar
 * reference, the BLAS GEMM against a plain loop, and the whole forward pass
 * of a tiny random model: optimized vs reference kernels, and each sequence
 * alone vs packed into a shuffled batch. */
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

/* The optimized tables this CPU can run; the test skips none silently. */
static const nn_kernels *opt(void) {
    const nn_kernels *k = nn_kernels_best();
    if (k == nn_kernels_ref()) fprintf(stderr, "  note: no SIMD kernels on this CPU, comparing scalar with itself\n");
    return k;
}

TEST(gemm_blas_matches_reference) {
    nn_gemm_init();
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

TEST(kernel_bias_and_gelu_match_reference) {
    const nn_kernels *k = opt(), *r = nn_kernels_ref();
    const int ns[] = {1, 7, 8, 13, 384, 1536};
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
        if (d > 1e-6) FAIL_AT("bias_gelu n=%d: max diff %g", n, d);
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

TEST(kernel_layernorm_matches_reference) {
    const nn_kernels *k = opt(), *r = nn_kernels_ref();
    const int ns[] = {5, 16, 32, 384, 1000};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        int n = ns[i], rows = 4;
        float *x = rand_vec((size_t)rows * n, 3), *b = rand_vec((size_t)n, 1), *g = rand_vec((size_t)n, 1),
              *be = rand_vec((size_t)n, 1), *y1 = rand_vec((size_t)rows * n, 10), *y2 = malloc((size_t)rows * n * 4);
        memcpy(y2, y1, (size_t)rows * n * 4);
        k->add_layernorm(x, b, y1, g, be, 1e-12f, rows, n);
        r->add_layernorm(x, b, y2, g, be, 1e-12f, rows, n);
        double d = max_abs_diff(y1, y2, (size_t)rows * n);
        if (d > 2e-5) FAIL_AT("add_layernorm n=%d: max diff %g", n, d);
        k->add_layernorm(NULL, NULL, y1, g, be, 1e-5f, rows, n);
        r->add_layernorm(NULL, NULL, y2, g, be, 1e-5f, rows, n);
        d = max_abs_diff(y1, y2, (size_t)rows * n);
        if (d > 2e-5) FAIL_AT("layernorm n=%d: max diff %g", n, d);
        free(x), free(b), free(g), free(be), free(y1), free(y2);
    }
}

TEST(kernel_attention_matches_reference) {
    const nn_kernels *k = opt(), *r = nn_kernels_ref();
    const int Ls[] = {1, 2, 3, 5, 16, 17, 100, 256};
    const int dhs[] = {16, 32, 64, 24};
    for (size_t a = 0; a < sizeof Ls / sizeof *Ls; a++)
        for (size_t b = 0; b < sizeof dhs / sizeof *dhs; b++) {
            int L = Ls[a], dh = dhs[b], ld = 3 * dh + 5;
            float *qkv = rand_vec((size_t)L * ld, 4);
            float *o1 = calloc((size_t)L * dh, 4), *o2 = calloc((size_t)L * dh, 4);
            float *scr = malloc(nn_attention_scratch(L, dh) * 4);
            float scale = 1.0f / sqrtf((float)dh);
            k->attention(qkv, qkv + dh, qkv + 2 * dh, ld, L, dh, scale, o1, dh, scr);
            r->attention(qkv, qkv + dh, qkv + 2 * dh, ld, L, dh, scale, o2, dh, scr);
            double d = max_abs_diff(o1, o2, (size_t)L * dh);
            if (d > 1e-5) FAIL_AT("attention L=%d dh=%d: max diff %g", L, dh, d);
            free(qkv), free(o1), free(o2), free(scr);
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

TEST(gemm_lowp_matches_reference_and_fp32) {
    const nn_kernels *k = opt(), *r = nn_kernels_ref();
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
            CHECK_INT(nn_pack(W, N, K, prec, &w), 0);
            CHECK_INT((int)nn_packed_bytes(&w), (int)((size_t)w.Np * w.Kp * (prec == NN_INT8 ? 1 : prec == NN_BF16 ? 2 : 4) +
                                                      (prec == NN_INT8 ? (size_t)w.Np * 8 : 0)));
            for (int gelu = 0; gelu < 2; gelu++) {
                k->gemm_lowp(M, A, K, &w, gelu ? bias : NULL, gelu, c1, N, scr);
                r->gemm_lowp(M, A, K, &w, gelu ? bias : NULL, gelu, c2, N, scr);
                double scale = 0;
                for (size_t i = 0; i < (size_t)M * N; i++) scale = fmax(scale, fabs(c2[i]));
                double d = max_abs_diff(c1, c2, (size_t)M * N);
                /* int8 sums are exact in both; bf16 sums in fp32 vs double */
                if (d > 1e-5 * fmax(1, scale) * (prec == NN_INT8 ? 1 : sqrt(K)))
                    FAIL_AT("%s gemm M=%d N=%d K=%d gelu=%d: optimized vs reference max diff %g", nn_precision_name(prec),
                            M, N, K, gelu, d);
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
    CHECK_INT(nn_pack(W0, 2, 4, NN_INT8, &w0), 0);
    k->gemm_lowp(2, A0, 4, &w0, NULL, 0, C0, 2, scr0);
    CHECK(C0[0] == 0 && C0[1] == 0 && C0[2] == 0);
    CHECK_NEAR(C0[3], -2.0, 0.05);
    /* non-finite inputs give garbage, never undefined behaviour (UBSan build) */
    float Abad[2 * 4] = {INFINITY, 1, 2, 3, NAN, -INFINITY, 0, 1};
    k->gemm_lowp(2, Abad, 4, &w0, NULL, 0, C0, 2, scr0);
    r->gemm_lowp(2, Abad, 4, &w0, NULL, 0, C0, 2, scr0);
    CHECK_INT(nn_zero_point(NAN, 1.0f), 0);
    CHECK_INT(nn_zero_point(-1.0f, 127.5f), 128);
    nn_packed_free(&w0);
    CHECK_NEAR(nn_round_bf16(1.00390625f), 1.0, 0);          /* halfway: ties to even */
    CHECK_NEAR(nn_round_bf16(1.01171875f), 1.015625, 0);     /* halfway: up to even */
    CHECK_NEAR(nn_round_bf16(-3.0f), -3.0, 0);
}

typedef struct fwd_fixture {
    model m;
    pool *p;
    bert *b;
} fwd_fixture;

static int fixture_prec(fwd_fixture *f, const char *dir, const nn_kernels *k, nn_precision prec, int threads,
                        int max_tokens) {
    memset(f, 0, sizeof *f);
    if (model_load(dir, &f->m) || pool_new(threads, &f->p) || bert_new(&f->m, k, prec, f->p, max_tokens, 40, &f->b)) {
        FAIL_AT("fixture: %s", cembed_last_error());
        return -1;
    }
    return 0;
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
    if (fixture_prec(&fo, tiny_dir(), nn_kernels_best(), prec, 2, off[NSEQ]) ||
        fixture_prec(&fr, tiny_dir(), nn_kernels_ref(), prec, 1, off[NSEQ]))
        return;
    const int H = fo.m.cfg.hidden;
    float *out_r = malloc((size_t)NSEQ * H * 4), *one = malloc((size_t)H * 4);
    bert_forward(fo.b, NSEQ, ids, off, out_o, fo.m.normalize);
    bert_forward(fr.b, NSEQ, ids, off, out_r, fr.m.normalize);
    double d = max_abs_diff(out_o, out_r, (size_t)NSEQ * H);
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
    if (worst > 1e-6) FAIL_AT("%s: batch invariance: max diff %g", nn_precision_name(prec), worst);
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

TEST(forward_optimized_matches_reference_and_is_batch_invariant) {
    nn_gemm_init();
    enum { NSEQ = 24, H = 64 };
    static float f32[NSEQ * H], bf[NSEQ * H], i8[NSEQ * H];
    forward_checks(NN_FP32, 1e-5, f32);
    forward_checks(NN_BF16, 5e-4, bf);
    forward_checks(NN_INT8, 2e-3, i8);
    /* the low precisions stay close to fp32 */
    double cb = min_cosine(bf, f32, NSEQ, H), ci = min_cosine(i8, f32, NSEQ, H);
    if (cb < 0.9999) FAIL_AT("bf16 vs fp32: min cosine %.6f", cb);
    if (ci < 0.99) FAIL_AT("int8 vs fp32: min cosine %.6f", ci);
}

TEST(forward_cls_pooling_unnormalized) {
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
