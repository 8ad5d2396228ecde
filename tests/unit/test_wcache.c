/* The cache of prepared weights (nn/wcache.c, gemm.c's nn_gemm_cache_*),
 * with real files and real maps: for every precision and every backend
 * this CPU runs, the vectors without a cache, with a cold one (written)
 * and a warm one (read back) are bit-identical; a changed model, another
 * precision or backend, a truncated, corrupted or foreign file are never
 * trusted (prepared again, the file replaced, the same vectors); "off" or
 * an unusable folder writes nothing and still runs. */
#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/pool.h"
#include "nn/bert.h"
#include "nn/wcache.h"
#include "test.h"
#include "tiny_model.h"

enum { WC_H = 64, WC_NSEQ = 5 };

static const char *wc_model(void) {
    static char d[160];
    if (!d[0]) {
        snprintf(d, sizeof d, "%s/wc-model", test_tmpdir());
        const tiny_spec sp = {.vocab = 64, .hidden = WC_H, .layers = 2, .heads = 2, .inter = 96, .max_pos = 40,
                              .normalize = 1};
        if (tiny_model_write(d, &sp, 17) != 0) FAIL_AT("cannot write the tiny model");
    }
    return d;
}

/* Embeds five sequences with the tiny model at prec on backend be, the
 * weight cache in folder wdir (NULL: none). OUT: out, *hit (the file was
 * read), the file's path into path (may be NULL). Returns 0, 1 when the
 * backend cannot run here, -1 on failure (reported). */
static int wc_run_model(const char *mdir, nn_precision prec, nn_gemm_backend be, const char *wdir, float *out,
                        int *hit, char *path) {
    char id[8192];
    if (nn_wcache_model_id(mdir, id, sizeof id)) {
        FAIL_AT("model id of %s", mdir);
        return -1;
    }
    const bert_opts o = {.k = nn_kernels_best(), .prec = prec, .gemm = be, .attn_bf16 = nn_bf16_attention(prec),
                         .wcache = wdir, .model_dir = mdir, .model_id = id};
    model m;
    pool *p = NULL;
    bert *b = NULL;
    if (model_load(mdir, &m) || pool_new(2, &p)) {
        FAIL_AT("fixture: %s", cembed_last_error());
        return -1;
    }
    int rc = bert_new(&m, &o, p, 200, 40, &b);
    if (rc == CEMBED_EINVAL || rc == CEMBED_EMODEL) rc = 1;   /* not on this CPU (ISA level) */
    else if (rc) {
        FAIL_AT("bert_new: %s", cembed_last_error());
        rc = -1;
    }
    if (!rc) {
        int32_t ids[200];
        int off[WC_NSEQ + 1] = {0};
        for (int s = 0; s < WC_NSEQ; s++) {
            off[s + 1] = off[s] + 3 + 7 * s;
            for (int t = off[s]; t < off[s + 1]; t++) ids[t] = (t * 13 + s) % 64;
        }
        bert_forward(b, WC_NSEQ, ids, off, out, 1);
        const char *f = bert_weight_cache(b, hit);
        if (path) snprintf(path, 512, "%s", f ? f : "");
    }
    bert_free(b);
    pool_free(p);
    model_free(&m);
    return rc;
}

static int wc_run(nn_precision prec, nn_gemm_backend be, const char *wdir, float *out, int *hit, char *path) {
    return wc_run_model(wc_model(), prec, be, wdir, out, hit, path);
}

/* *.wcache files in dir */
static int wc_count(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".wcache") != NULL;
    if (d) closedir(d);
    return n;
}

static const nn_gemm_backend wc_backends[] = {NN_GEMM_ONEDNN, NN_GEMM_OWN, NN_GEMM_SCALAR};

TEST(nn_wcache_cold_warm_and_none_are_bit_identical) {
    static const nn_precision precs[] = {NN_FP32, NN_BF16, NN_INT8};
    int ran = 0;
    for (int pi = 0; pi < 3; pi++)
        for (int bi = 0; bi < 3; bi++) {
            char wdir[256], path[512], path2[512];
            snprintf(wdir, sizeof wdir, "%s/wc-%d-%d", test_tmpdir(), pi, bi);
            static float none[WC_NSEQ * WC_H], cold[WC_NSEQ * WC_H], warm[WC_NSEQ * WC_H];
            int hit = -1, rc = wc_run(precs[pi], wc_backends[bi], NULL, none, &hit, NULL);
            if (rc) continue;
            ran++;
            const char *what = nn_precision_name(precs[pi]), *be = nn_gemm_backend_name(wc_backends[bi]);
            CHECK_INT(hit, 0);
            CHECK_INT(wc_run(precs[pi], wc_backends[bi], wdir, cold, &hit, path), 0);
            CHECK_MSG(hit == 0 && wc_count(wdir) == 1, "%s %s: the cold start wrote one file (hit %d)", what, be, hit);
            CHECK_INT(wc_run(precs[pi], wc_backends[bi], wdir, warm, &hit, path2), 0);
            CHECK_MSG(hit == 1 && strcmp(path, path2) == 0, "%s %s: the warm start read %s (hit %d)", what, be, path, hit);
            CHECK_MSG(memcmp(none, cold, sizeof none) == 0, "%s %s: cold cache vectors differ", what, be);
            CHECK_MSG(memcmp(none, warm, sizeof none) == 0, "%s %s: warm cache vectors differ", what, be);
        }
    fprintf(stderr, "  note: %d precision x backend pairs ran here\n", ran);
    CHECK(ran >= 2);   /* the scalar backend runs everywhere, for every precision */
}

/* Rewrites byte `at` of file path (or truncates it to `at` bytes, or
 * replaces it with junk). */
static void wc_damage(const char *path, int how, off_t at) {
    int fd = open(path, O_RDWR);
    if (fd < 0) return;
    if (how == 0) {
        CHECK_INT(ftruncate(fd, at), 0);
    } else if (how == 1) {
        unsigned char c;
        CHECK_INT(pread(fd, &c, 1, at), 1);
        c ^= 0x5a;
        CHECK_INT(pwrite(fd, &c, 1, at), 1);
    } else {
        CHECK_INT(ftruncate(fd, 0), 0);
        CHECK_INT(pwrite(fd, "CEMBWC\r\n junk, not a cache", 27, 0), 27);
    }
    close(fd);
}

TEST(nn_wcache_never_trusts_a_changed_or_damaged_file) {
    const nn_precision prec = NN_INT8;
    const nn_gemm_backend be = NN_GEMM_SCALAR;
    char wdir[256], path[512], p2[512];
    snprintf(wdir, sizeof wdir, "%s/wc-damage", test_tmpdir());
    static float ref[WC_NSEQ * WC_H], v[WC_NSEQ * WC_H];
    int hit;
    CHECK_INT(wc_run(prec, be, NULL, ref, &hit, NULL), 0);
    CHECK_INT(wc_run(prec, be, wdir, v, &hit, path), 0);
    /* truncated (inside the payload, inside the header), a flipped header byte, junk */
    const off_t cuts[][2] = {{0, 4096 + 100}, {0, 30}, {1, 20}, {1, 50}, {2, 0}};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        wc_damage(path, (int)cuts[i][0], cuts[i][1]);
        memset(v, 0, sizeof v);
        CHECK_INT(wc_run(prec, be, wdir, v, &hit, p2), 0);
        CHECK_MSG(hit == 0, "damage %zu: the file was trusted", i);
        CHECK_MSG(memcmp(v, ref, sizeof v) == 0, "damage %zu: other vectors", i);
        CHECK_INT(wc_run(prec, be, wdir, v, &hit, p2), 0);   /* replaced: read back */
        CHECK_MSG(hit == 1 && memcmp(v, ref, sizeof v) == 0, "damage %zu: not replaced (hit %d)", i, hit);
        CHECK_INT(wc_count(wdir), 1);
    }
    /* another precision or backend: a file of its own */
    CHECK_INT(wc_run(NN_FP32, be, wdir, v, &hit, p2), 0);
    CHECK(hit == 0 && strcmp(p2, path) != 0 && wc_count(wdir) == 2);
    /* the model file changed (its mtime): prepared again, the old file replaced */
    char st[512];
    snprintf(st, sizeof st, "%s/model.safetensors", wc_model());
    const struct timespec ts[2] = {{0, UTIME_OMIT}, {1234567890, 5}};
    CHECK_INT(utimensat(AT_FDCWD, st, ts, 0), 0);
    CHECK_INT(wc_run(prec, be, wdir, v, &hit, p2), 0);
    CHECK(hit == 0 && strcmp(p2, path) != 0);
    CHECK_MSG(memcmp(v, ref, sizeof v) == 0, "a touched model: other vectors");
    CHECK_INT(access(path, F_OK), -1);   /* the file of the old identity is gone */
    CHECK_INT(wc_count(wdir), 2);
}

TEST(nn_wcache_off_or_unusable_writes_nothing) {
    static float ref[WC_NSEQ * WC_H], v[WC_NSEQ * WC_H];
    int hit;
    CHECK_INT(wc_run(NN_FP32, NN_GEMM_SCALAR, NULL, ref, &hit, NULL), 0);
    char file[256], wdir[300];
    snprintf(file, sizeof file, "%s/wc-a-file", test_tmpdir());
    FILE *f = fopen(file, "w");
    if (f) fclose(f);
    snprintf(wdir, sizeof wdir, "%s/below", file);   /* a folder under a file: cannot exist */
    CHECK_INT(wc_run(NN_FP32, NN_GEMM_SCALAR, wdir, v, &hit, NULL), 0);
    CHECK_INT(hit, 0);
    CHECK(memcmp(v, ref, sizeof v) == 0);
    CHECK_INT(wc_run(NN_FP32, NN_GEMM_SCALAR, wdir, v, &hit, NULL), 0);   /* again: still runs */
    CHECK(memcmp(v, ref, sizeof v) == 0);
}

/* A real file's header parses, and no shorter or longer image of it does. */
TEST(nn_wcache_parse_rejects_every_truncation) {
    char wdir[256], path[512];
    snprintf(wdir, sizeof wdir, "%s/wc-parse", test_tmpdir());
    static float v[WC_NSEQ * WC_H];
    int hit;
    CHECK_INT(wc_run(NN_INT8, NN_GEMM_SCALAR, wdir, v, &hit, path), 0);
    char *data;
    size_t len;
    if (file_read_all(path, 1 << 26, &data, &len)) {
        FAIL_AT("%s", cembed_last_error());
        return;
    }
    nn_wcache_view view;
    CHECK_INT(nn_wcache_parse((const uint8_t *)data, len, &view), 0);
    CHECK(view.n_weights == 8 && view.n_shapes == 4);
    int accepted = 0;
    for (size_t n = 0; n < len; n += n < 8192 ? 1 : 997) accepted += nn_wcache_parse((const uint8_t *)data, n, &view) == 0;
    CHECK_INT(accepted, 0);
    base_free(data);
}

/* An empty file in dir, its mtime `age` seconds ago. */
static void wc_old_file(const char *dir, const char *name, long age) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) fputs("not a cache", f), fclose(f);
    const struct timespec ts[2] = {{time(NULL) - age, 0}, {time(NULL) - age, 0}};
    CHECK_INT(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static int wc_exists(const char *dir, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* Writing a file deletes those of models that are gone, those unused for
 * 30 days and temporary files a crash left; it keeps the others. */
TEST(nn_wcache_write_deletes_stale_files) {
    char wdir[256], gone[256], path[512];
    snprintf(wdir, sizeof wdir, "%s/wc-stale", test_tmpdir());
    snprintf(gone, sizeof gone, "%s/wc-gone-model", test_tmpdir());
    const tiny_spec sp = {.vocab = 64, .hidden = 32, .layers = 1, .heads = 2, .inter = 48, .max_pos = 40};
    CHECK_INT(tiny_model_write(gone, &sp, 3), 0);
    static float v[WC_NSEQ * WC_H];
    int hit;
    CHECK_INT(wc_run_model(gone, NN_FP32, NN_GEMM_SCALAR, wdir, v, &hit, path), 0);
    CHECK_INT(wc_count(wdir), 1);
    char st[512];
    snprintf(st, sizeof st, "%s/model.safetensors", gone);
    CHECK_INT(unlink(st), 0);   /* that model is gone */
    wc_old_file(wdir, "0123456789abcdef-0123456789abcdef.wcache", 31L * 86400);   /* unused for 31 days */
    wc_old_file(wdir, "1123456789abcdef-0123456789abcdef.wcache", 29L * 86400);   /* 29: kept */
    wc_old_file(wdir, "a.wcache.tmp.1.0", 2 * 3600);                                /* a crash's, 2 hours old */
    wc_old_file(wdir, "b.wcache.tmp.1.0", 60);                                      /* being written: kept */
    wc_old_file(wdir, "notes.txt", 365L * 86400);                                   /* not ours: kept */
    CHECK_INT(wc_run(NN_BF16, NN_GEMM_SCALAR, wdir, v, &hit, path), 0);
    CHECK(hit == 0 && wc_exists(wdir, strrchr(path, '/') + 1));
    CHECK(!wc_exists(wdir, "0123456789abcdef-0123456789abcdef.wcache"));
    CHECK(wc_exists(wdir, "1123456789abcdef-0123456789abcdef.wcache"));
    CHECK(!wc_exists(wdir, "a.wcache.tmp.1.0"));
    CHECK(wc_exists(wdir, "b.wcache.tmp.1.0"));
    CHECK(wc_exists(wdir, "notes.txt"));
    CHECK_INT(wc_count(wdir), 3);   /* the new one, the 29-day one, the fresh temporary (the gone model's went) */
}
