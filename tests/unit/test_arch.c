/* Every encoder family against golden outputs nobody here computed with
 * cembed: tests/golden/arch/NAME/ holds a small random-weight checkpoint laid
 * out as the real one (config.json keys, tensor names, sentence-transformers
 * files) and golden-torch.json, the outputs of a PyTorch port of the family's
 * real modeling code (tests/oracle/arch/port_*.py names the file and commit)
 * for a dozen id sequences; golden-llamacpp.json, where present, the same
 * from llama.cpp on a GGUF written from the same weights.
 *
 * For each model and each golden file: fp32 through every GEMM backend this
 * CPU runs reaches cosine >= 0.99999 per sequence (pooled vector, every
 * token's last hidden state, or a classifier's logits to 1e-4); bf16 and
 * int8 stay within the bars below; and each sequence's output is the same
 * bits alone as inside the whole batch. ARCH_GOLDEN_DIR overrides the
 * folder (the tests run from the repository's root). */
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>

#include "cembed.h"
#include "test.h"

#define ARCH_MAX_SEQ 64   /* sequences read from one golden file */

typedef struct golden_seq {
    int32_t *ids;
    size_t n;
    int type1_from;
    float *want;      /* pooled vector or logits */
    size_t dims;
    float *tokens;    /* n x hidden, or NULL */
} golden_seq;

static int load_floats(json_t *a, float **out, size_t *n) {
    *n = json_array_size(a);
    *out = malloc((*n ? *n : 1) * sizeof **out);
    for (size_t i = 0; i < *n; i++) (*out)[i] = (float)json_number_value(json_array_get(a, i));
    return 0;
}

/* Reads golden file path into seqs (at most ARCH_MAX_SEQ). Returns the count, -1 if absent. */
static int load_golden(const char *path, golden_seq *seqs) {
    json_t *root = json_load_file(path, 0, NULL);
    if (!root) return -1;
    json_t *arr = json_object_get(root, "sequences"), *s;
    size_t i;
    int n = 0;
    json_array_foreach(arr, i, s) {
        if (n == ARCH_MAX_SEQ) break;
        golden_seq *g = &seqs[n++];
        memset(g, 0, sizeof *g);
        json_t *ids = json_object_get(s, "ids");
        g->n = json_array_size(ids);
        g->ids = malloc(g->n * sizeof *g->ids);
        for (size_t k = 0; k < g->n; k++) g->ids[k] = (int32_t)json_integer_value(json_array_get(ids, k));
        json_t *t1 = json_object_get(s, "type1_from");
        g->type1_from = json_is_integer(t1) ? (int)json_integer_value(t1) : (int)g->n;
        json_t *want = json_object_get(s, "logits");
        if (!want) want = json_object_get(s, "pooled");
        load_floats(want, &g->want, &g->dims);
        json_t *tok = json_object_get(s, "tokens");
        if (json_is_array(tok) && json_array_size(tok) == g->n) {
            size_t H = json_array_size(json_array_get(tok, 0)), m;
            g->tokens = malloc(g->n * H * sizeof(float));
            for (size_t r = 0; r < g->n; r++) {
                float *row;
                load_floats(json_array_get(tok, r), &row, &m);
                memcpy(g->tokens + r * H, row, H * sizeof(float));
                free(row);
            }
        }
    }
    json_decref(root);
    return n;
}

static void free_golden(golden_seq *seqs, int n) {
    for (int i = 0; i < n; i++) free(seqs[i].ids), free(seqs[i].want), free(seqs[i].tokens);
}

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
}

/* Runs every sequence, all in one call, against the golden rows; OUT: the
 * worst cosine (pooled) or the worst absolute difference (logits). */
static int run_all(cembed_model *m, golden_seq *g, int n, float *out) {
    const int32_t *ids[ARCH_MAX_SEQ];
    size_t lens[ARCH_MAX_SEQ];
    int types[ARCH_MAX_SEQ];
    for (int i = 0; i < n; i++) ids[i] = g[i].ids, lens[i] = g[i].n, types[i] = g[i].type1_from;
    return cembed_run_ids(m, ids, lens, types, (size_t)n, out, 0);
}

typedef struct bars {
    double pooled_cos, token_cos, logit_abs;
    int batch_only;   /* skip the alone-vs-batched comparison (long inputs: twice the time) */
} bars;

static void check_model(const char *dir, const char *golden, int precision, const char *gemm, bars bar) {
    golden_seq g[ARCH_MAX_SEQ];
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, golden);
    const int n = load_golden(path, g);
    if (n < 0) return;
    cembed_options o = {.threads = 2, .precision = precision, .gemm = gemm, .max_batch = 16};
    cembed_model *m = NULL;
    if (cembed_model_open(dir, &o, &m)) {
        FAIL_AT("%s: %s", dir, cembed_last_error());
        free_golden(g, n);
        return;
    }
    cembed_model_info info;
    cembed_model_get_info(m, &info);
    const int reranker = strcmp(info.kind, "reranker") == 0;
    const size_t D = (size_t)info.hidden;
    float *out = calloc((size_t)n * D, sizeof(float)), *alone = calloc(D, sizeof(float));
    CHECK_INT(run_all(m, g, n, out), 0);
    double worst = reranker ? 0 : 1;
    for (int i = 0; i < n; i++) {
        if (g[i].dims != D) {
            FAIL_AT("%s: golden sequence %d has %zu values, the model gives %zu", dir, i, g[i].dims, D);
            continue;
        }
        const float *row = out + (size_t)i * D;
        if (reranker) {
            for (size_t k = 0; k < D; k++) worst = fmax(worst, fabs(row[k] - g[i].want[k]) / fmax(1, fabs(g[i].want[k])));
        } else {
            worst = fmin(worst, cosine(row, g[i].want, D));
        }
        /* the same bits alone as in the batch */
        const int32_t *one = g[i].ids;
        if (!bar.batch_only && cembed_run_ids(m, &one, &g[i].n, &g[i].type1_from, 1, alone, 0) == 0 &&
            memcmp(alone, row, D * sizeof(float)) != 0)
            FAIL_AT("%s %s %s: sequence %d differs alone and batched", dir, info.precision, info.gemm, i);
        if (g[i].tokens && !reranker) {
            const size_t H = (size_t)info.hidden_size;
            float *tok = malloc(g[i].n * H * sizeof(float)), pooled[4096];
            CHECK_INT(cembed_embed_tokens(m, g[i].ids, g[i].n, pooled, tok), 0);
            double tw = 1;
            for (size_t r = 0; r < g[i].n; r++) tw = fmin(tw, cosine(tok + r * H, g[i].tokens + r * H, H));
            if (tw < bar.token_cos)
                FAIL_AT("%s %s %s: sequence %d token vectors: min cosine %.7f < %.7f", dir, info.precision, info.gemm, i,
                        tw, bar.token_cos);
            free(tok);
        }
    }
    if (reranker ? worst > bar.logit_abs : worst < bar.pooled_cos)
        FAIL_AT("%s (%s) %s %s: %s %.7g, bar %.7g", dir, golden, info.precision, info.gemm,
                reranker ? "max logit error" : "min cosine", worst, reranker ? bar.logit_abs : bar.pooled_cos);
    else
        fprintf(stderr, "    %-28s %-20s %-5s %-28s %s %.7g\n", strrchr(dir, '/') + 1, golden, info.precision,
                info.gemm, reranker ? "max logit error" : "min cosine", worst);
    free(out), free(alone);
    cembed_model_free(m);
    free_golden(g, n);
}

static void each_model(void (*fn)(const char *dir)) {
    const char *root = getenv("ARCH_GOLDEN_DIR") ? getenv("ARCH_GOLDEN_DIR") : "tests/golden/arch";
    DIR *d = opendir(root);
    if (!d) {
        FAIL_AT("%s: cannot open (run the unit tests from the repository's root)", root);
        return;
    }
    struct dirent *e;
    int models = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        char cfg[1100];
        snprintf(cfg, sizeof cfg, "%s/config.json", dir);
        FILE *f = fopen(cfg, "r");
        if (!f) continue;
        fclose(f);
        fn(dir);
        models++;
    }
    closedir(d);
    CHECK(models >= 5);
}

static void fp32_all_backends(const char *dir) {
    static const char *gemms[] = {"scalar", "auto", "avx2"};
    const bars b = {0.99999, 0.99999, 1e-4, 0};
    /* llama.cpp's CPU GELU is the tanh approximation on an fp16-rounded
     * input (tests/oracle/llamacpp/README.md): vectors keep cosine >= 0.99999,
     * a classifier's logits move by up to ~2e-3 (1.5e-6 with an exact-erf
     * build) */
    const bars lb = {0.99999, 0.99999, 3e-3, 0};
    for (size_t k = 0; k < sizeof gemms / sizeof *gemms; k++) {
        char desc[200];
        cembed_gemm_plan(CEMBED_FP32, gemms[k], desc, sizeof desc);
        if (strncmp(desc, "unavailable", 11) == 0) continue;
        check_model(dir, "golden-torch.json", CEMBED_FP32, gemms[k], b);
        check_model(dir, "golden-llamacpp.json", CEMBED_FP32, gemms[k], lb);
    }

}

/* Random weights are harder on low precision than trained ones (no
 * outliers are learned away), so these bars are looser than the real
 * model's (bench/fidelity.py); they still catch a wrong layout or kernel,
 * which scores near 0. */
static void low_precision(const char *dir) {
    check_model(dir, "golden-torch.json", CEMBED_BF16, NULL, (bars){0.999, 0.995, 0.05, 0});
    check_model(dir, "golden-torch.json", CEMBED_INT8, NULL, (bars){0.99, 0.98, 0.15, 0});
}

TEST(arch_fp32_matches_torch_and_llamacpp) { each_model(fp32_all_backends); }

TEST(arch_bf16_int8_within_bars) { each_model(low_precision); }

/* 2,000 to 8,192 tokens (golden-long.json: rotary far out, windows far from
 * the start, ALiBi over long distances, the causal mask), fp32, the default
 * backend. Named apart from arch_ so that the runs at each lower ISA level
 * leave it out, and skipped under the sanitizers (minutes there). */
static void long_inputs(const char *dir) {
    check_model(dir, "golden-long.json", CEMBED_FP32, NULL, (bars){0.99999, 0.99999, 1e-4, 1});
}

TEST(long_inputs_match_torch) {
#if defined(__SANITIZE_ADDRESS__)
    TEST_SKIP("8k-token forward passes under ASan take minutes; the normal build runs them");
    return;
#endif
    each_model(long_inputs);
}

/* ---- checkpoints stored in BF16 or F16 (as the Hub's Qwen3-Embedding) ----
 * Every golden model is rewritten twice: its tensors stored in the half
 * type, and stored as F32 holding the same (half-rounded) values. Both
 * must give the same bits through every precision and backend: the half
 * matrices are widened per weight while they are prepared, and per row
 * on embedding lookup, with nothing else changing. */

#include "base/base.h"
#include "model/model.h"
#include "tiny_model.h"


/* The golden ids through dir at (precision, gemm). OUT: *out (n x dims
 * floats, malloc'd); returns the dims, 0 on failure. */
static size_t run_dir(const char *dir, golden_seq *g, int n, int precision, const char *gemm, float **out) {
    cembed_options o = {.threads = 2, .precision = precision, .gemm = gemm, .max_batch = 16};
    cembed_model *m = NULL;
    *out = NULL;
    if (cembed_model_open(dir, &o, &m)) {
        FAIL_AT("%s: %s", dir, cembed_last_error());
        return 0;
    }
    cembed_model_info info;
    cembed_model_get_info(m, &info);
    const size_t D = (size_t)info.hidden;
    *out = calloc((size_t)n * D, sizeof(float));
    CHECK_INT(run_all(m, g, n, *out), 0);
    cembed_model_free(m);
    return D;
}

static void half_stored(const char *dir, st_dtype half) {
    golden_seq g[ARCH_MAX_SEQ];
    char path[1100], hdir[1100], rdir[1100];
    snprintf(path, sizeof path, "%s/golden-torch.json", dir);
    const int n = load_golden(path, g);
    if (n < 0) return;
    const char *name = strrchr(dir, '/') + 1;
    snprintf(hdir, sizeof hdir, "%s/%s-%s", test_tmpdir(), name, st_dtype_name(half));
    snprintf(rdir, sizeof rdir, "%s/%s-%s-as-f32", test_tmpdir(), name, st_dtype_name(half));
    CHECK_INT(tiny_model_rewrite(dir, hdir, half, half), 0);
    CHECK_INT(tiny_model_rewrite(dir, rdir, half, ST_F32), 0);
    static const struct { int prec; const char *gemm; } runs[] = {
        {CEMBED_FP32, "auto"}, {CEMBED_FP32, "scalar"}, {CEMBED_FP32, "blas"}, {CEMBED_BF16, NULL}, {CEMBED_INT8, NULL}};
    for (size_t r = 0; r < CE_ARRAY_LEN(runs); r++) {
        char desc[200];
        cembed_gemm_plan(runs[r].prec, runs[r].gemm, desc, sizeof desc);
        if (strncmp(desc, "unavailable", 11) == 0) continue;
        float *a, *b;
        const size_t D = run_dir(hdir, g, n, runs[r].prec, runs[r].gemm, &a), D2 = run_dir(rdir, g, n, runs[r].prec, runs[r].gemm, &b);
        CHECK_MSG(D && D == D2 && memcmp(a, b, (size_t)n * D * sizeof(float)) == 0,
                  "%s stored %s, precision %d gemm %s: outputs differ from the same values stored F32", name,
                  st_dtype_name(half), runs[r].prec, runs[r].gemm ? runs[r].gemm : "default");
        if (r == 0 && D) {   /* and the goldens, within what rounding the weights costs */
            double worst = 1;
            for (int i = 0; i < n && g[i].dims == D; i++) worst = fmin(worst, cosine(a + (size_t)i * D, g[i].want, D));
            fprintf(stderr, "    %-28s stored %-4s fp32: min cosine to golden-torch %.7f\n", name, st_dtype_name(half), worst);
            CHECK_MSG(worst >= (half == ST_BF16 ? 0.999 : 0.99999), "%s stored %s: min cosine %.7f", name,
                      st_dtype_name(half), worst);
        }
        free(a), free(b);
    }
    free_golden(g, n);
}

static void bf16_stored(const char *dir) { half_stored(dir, ST_BF16); }
static void f16_stored(const char *dir) { half_stored(dir, ST_F16); }

TEST(arch_half_stored_same_as_f32) {
    each_model(bf16_stored);
    each_model(f16_stored);
}

static size_t status_kib(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t v = 0, kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) v = strtoull(line + kl + 1, NULL, 10);
    if (f) fclose(f);
    return v;
}

/* A BF16-stored BERT (embeddings 30,000 x 384, four layers: 38 MB on disk,
 * 75 MB as fp32) opened at int8 and run: the peak RSS it adds holds the
 * int8 weights (7 MB), one widened weight at a time (2.4 MB), a small
 * workspace, the tokenizer and oneDNN's code pages (about 21 MB in all
 * here), never an fp32 copy of the file (75 MB, of the embeddings alone
 * 46 MB); the governor counts the embedding tables at their stored size. */
TEST(bf16_stored_peak_rss_has_no_f32_copy) {
#if defined(__SANITIZE_ADDRESS__)
    TEST_SKIP("ASan's quarantine keeps freed blocks resident: RSS says nothing there");
    return;
#endif
    char f32dir[400], bdir[400];
    snprintf(f32dir, sizeof f32dir, "%s/mem-f32", test_tmpdir());
    snprintf(bdir, sizeof bdir, "%s/mem-bf16", test_tmpdir());
    const tiny_spec sp = {.vocab = 30000, .hidden = 384, .layers = 4, .heads = 6, .inter = 1536, .max_pos = 512};
    CHECK_INT(tiny_model_write(f32dir, &sp, 7), 0);
    CHECK_INT(tiny_model_rewrite(f32dir, bdir, ST_BF16, ST_BF16), 0);
    const size_t H = 384, emb = (30000 + 512 + 2) * H, lin = 4 * (4 * H * H + 2 * H * 1536), file16 = 2 * (emb + lin);
    FILE *cr = fopen("/proc/self/clear_refs", "w");
    if (!cr || fputs("5", cr) < 0 || fclose(cr) != 0) {   /* resets VmHWM to VmRSS */
        TEST_SKIP("cannot reset the peak RSS (/proc/self/clear_refs)");
        return;
    }
    const size_t before = status_kib("VmRSS:") * 1024;
    cembed_options o = {.threads = 1, .precision = CEMBED_INT8, .max_batch = 1, .max_seq_len = 32};
    cembed_model *m = NULL;
    CHECK_INT(cembed_model_open(bdir, &o, &m), 0);
    if (!m) return;
    const int32_t ids[8] = {2, 5, 6, 7, 8, 9, 29999, 3};
    const int32_t *pi[1] = {ids};
    const size_t ni[1] = {8};
    float out[384];
    CHECK_INT(cembed_embed_ids(m, pi, ni, 1, out), 0);
    const size_t peak = status_kib("VmHWM:") * 1024, grew = peak > before ? peak - before : 0;
    fprintf(stderr, "    BF16 file %.1f MB (fp32 %.1f MB, int8 matrices %.1f MB): peak RSS grew %.1f MB\n",
            file16 / 1e6, 2 * file16 / 1e6, lin / 1e6, grew / 1e6);
    CHECK_MSG(grew < file16, "peak RSS grew %zu bytes opening a %zu-byte BF16 model at int8", grew, file16);
    CHECK_INT(cembed_model_lazy_bytes(m), emb * 2);
    cembed_model_free(m);
}
