/* Unit tests of src/cache on a real SQLite file. */
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/writer.h"
#include "test.h"

static void fill(float *v, int dims, float seed) {
    for (int i = 0; i < dims; i++) v[i] = seed + (float)i * 0.001f;
}

TEST(cache_round_trip_corruption_eviction) {
    char path[512];
    snprintf(path, sizeof path, "%s/cache/sub/c.sqlite", test_tmpdir());
    cache *c;
    CHECK_INT(cache_open(path, 0, &c), 0);   /* creates the folders */
    cache_scope sc = {.normalize = 1, .max_seq_len = 256};
    snprintf(sc.precision, sizeof sc.precision, "fp32");
    snprintf(sc.pooling, sizeof sc.pooling, "mean");
    enum { N = 20, D = 16 };
    uint8_t keys[N][CACHE_KEY_BYTES], hit[N];
    float v[N * D], got[N * D];
    char text[32];
    for (int i = 0; i < N; i++) {
        snprintf(text, sizeof text, "text %d", i);
        cache_key(&sc, text, strlen(text), keys[i]);
        fill(v + i * D, D, (float)i);
    }
    /* the key depends on every part of the scope */
    uint8_t k2[CACHE_KEY_BYTES];
    cache_scope other = sc;
    other.normalize = 0;
    cache_key(&other, "text 0", 6, k2);
    CHECK(memcmp(k2, keys[0], CACHE_KEY_BYTES) != 0);
    other = sc;
    other.fingerprint[5] ^= 1;
    cache_key(&other, "text 0", 6, k2);
    CHECK(memcmp(k2, keys[0], CACHE_KEY_BYTES) != 0);

    CHECK_INT(cache_get_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, N, D, got, hit), 0);
    CHECK_INT(cache_put_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, N / 2, D, v), 0);
    CHECK_INT(cache_get_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, N, D, got, hit), N / 2);
    CHECK(memcmp(got, v, sizeof(float) * D * (N / 2)) == 0);
    CHECK_INT(hit[0], 1);
    CHECK_INT(hit[N - 1], 0);
    /* another width is a miss, not a wrong vector */
    CHECK_INT(cache_get_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, 1, D / 2, got, hit), 0);
    cache_close(c);

    /* a bit flipped behind the cache's back: a miss, and the row is gone */
    sqlite3 *db;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    CHECK_INT(sqlite3_prepare_v2(db, "UPDATE vectors SET vec = ? WHERE key = ?", -1, &q, NULL), SQLITE_OK);
    float bad[D];
    memcpy(bad, v + 3 * D, sizeof bad);
    bad[7] += 1e-3f;
    sqlite3_bind_blob(q, 1, bad, sizeof bad, SQLITE_STATIC);
    sqlite3_bind_blob(q, 2, keys[3], CACHE_KEY_BYTES, SQLITE_STATIC);
    CHECK_INT(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);
    sqlite3_close(db);
    CHECK_INT(cache_open(path, 0, &c), 0);
    CHECK_INT(cache_get_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, N / 2, D, got, hit), N / 2 - 1);
    CHECK_INT(hit[3], 0);
    cache_stats st;
    CHECK_INT(cache_get_stats(c, &st), 0);
    CHECK_INT(st.corrupt, 1);
    CHECK_INT(st.rows, N / 2 - 1);
    CHECK_INT(st.vector_bytes, (N / 2 - 1) * D * 4);
    char msg[64];
    CHECK_INT(cache_integrity(c, msg, sizeof msg), 0);
    CHECK_STR(msg, "ok");
    cache_close(c);

    /* a cap of 8 vectors: the least recently used go first (to 90% of the cap);
     * every hit writes its recency here (by default only hits an hour old do) */
    CHECK_INT(cache_open(path, 8 * D * 4, &c), 0);
    cache_set_touch_interval(c, 0);
    CHECK_INT(cache_clear(c), 0);
    for (int i = 0; i < 8; i++) {
        CHECK_INT(cache_put_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys + i, 1, D, v + i * D), 0);
        usleep(3000);
    }
    CHECK_INT(cache_get_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, 1, D, got, hit), 1);   /* 0 is used again */
    usleep(3000);
    CHECK_INT(cache_put_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys + 8, 1, D, v + 8 * D), 0);
    CHECK_INT(cache_get_stats(c, &st), 0);
    CHECK_INT(st.rows, 7);
    CHECK_INT(st.evicted, 2);
    CHECK_INT(cache_get_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, 9, D, got, hit), 7);
    CHECK_INT(hit[0], 1);   /* recently read: kept */
    CHECK_INT(hit[1], 0);   /* the oldest two went */
    CHECK_INT(hit[2], 0);
    CHECK_INT(hit[8], 1);
    CHECK_INT(cache_prune(c, 3 * D * 4), 4);
    CHECK_INT(cache_clear(c), 0);
    CHECK_INT(cache_get_stats(c, &st), 0);
    CHECK_INT(st.rows, 0);
    CHECK_INT(st.vector_bytes, 0);
    cache_close(c);
    /* an unwritable place names the file */
    CHECK(cache_open("/proc/cembed/c.sqlite", 0, &c) != 0);
    CHECK_CONTAINS(cembed_last_error(), "/proc/cembed");
}

/* A vector handed to the writer is found at once: committed (the lookup
 * connection) or still queued / in flight (the writer), never neither. */
/* By default a hit writes its recency only when the stored one is an hour
 * old: a second read of the same rows writes nothing, a row last used two
 * hours ago is touched once (and then is recent). */
TEST(cache_hits_write_recency_only_when_old) {
    char path[512];
    snprintf(path, sizeof path, "%s/cache-touch.sqlite", test_tmpdir());
    cache *c;
    CHECK_INT(cache_open(path, 0, &c), 0);
    CHECK_INT(cache_clear(c), 0);
    enum { N = 4, D = 8 };
    uint8_t keys[N][CACHE_KEY_BYTES], hit[N];
    float v[N * D], got[N * D];
    cache_scope sc = {.max_seq_len = 16};
    for (int i = 0; i < N; i++) {
        char text[16];
        snprintf(text, sizeof text, "t%d", i);
        cache_key(&sc, text, strlen(text), keys[i]);
        fill(v + i * D, D, (float)i);
    }
    CHECK_INT(cache_put_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, N, D, v), 0);
    cache_stats st;
    CHECK_INT(cache_get_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, N, D, got, hit), N);
    CHECK_INT(cache_get_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, N, D, got, hit), N);
    CHECK_INT(cache_get_stats(c, &st), 0);
    CHECK_INT(st.touched, 0);   /* just stored: recent */
    CHECK(memcmp(got, v, sizeof v) == 0);
    /* row 1 last used two hours ago */
    sqlite3 *db;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    CHECK_INT(sqlite3_prepare_v2(db, "UPDATE vectors SET used = used - 7200000 WHERE key = ?", -1, &q, NULL),
              SQLITE_OK);
    sqlite3_bind_blob(q, 1, keys[1], CACHE_KEY_BYTES, SQLITE_STATIC);
    CHECK_INT(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);
    CHECK_INT(cache_get_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, N, D, got, hit), N);
    CHECK_INT(cache_get_many(c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, N, D, got, hit), N);
    CHECK_INT(cache_get_stats(c, &st), 0);
    CHECK_INT(st.touched, 1);   /* once, then recent */
    for (int i = 0; i < N; i++) CHECK_INT(hit[i], 1);
    sqlite3_close(db);
    cache_close(c);
}

TEST(cache_writer_vectors_visible_before_commit) {
    char path[512];
    snprintf(path, sizeof path, "%s/cache/w.sqlite", test_tmpdir());
    enum { N = 600, D = 8 };
    cache *c;
    cache_writer *w;
    CHECK_INT(cache_open(path, 0, &c), 0);
    CHECK_INT(cache_writer_start(path, 0, D, &w), 0);
    static uint8_t keys[N][CACHE_KEY_BYTES], hit[N];
    static float v[N * D], got[N * D];
    cache_scope sc = {.max_seq_len = 256};
    char text[32];
    int missing = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
        snprintf(text, sizeof text, "w %d", i);
        cache_key(&sc, text, strlen(text), keys[i]);
        fill(v + i * D, D, (float)i);
        cache_writer_put(w, keys[i], v + i * D);
        /* look up everything put so far */
        const size_t n = (size_t)i + 1;
        const int h = cache_writer_lookup(w, c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, n, D, got, hit);
        if (h != (int)n) missing++;
        for (size_t k = 0; k < n; k++)
            if (hit[k] && memcmp(got + k * D, v + k * D, D * sizeof(float)) != 0) wrong++;
        if (i % 97 == 0) usleep(2000);   /* let some transactions land in between */
    }
    CHECK_INT(missing, 0);
    CHECK_INT(wrong, 0);
    /* without a writer it is the plain lookup */
    memset(hit, 1, N);
    CHECK_INT(cache_writer_lookup(NULL, c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, 3, D, got, hit) >= 0, 1);
    cache_writer_stop(w);
    cache_close(c);
}

static void write_file(const char *dir, const char *name, const char *text) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) fputs(text, f), fclose(f);
}

/* The fingerprint's memo: a second start reads it; a file changed (same
 * size, other bytes) or a new optional file makes a new fingerprint, the
 * one hashing gives. */
TEST(cache_fingerprint_memo) {
    char dir[512], xdg[512], memo[600];
    snprintf(dir, sizeof dir, "%s/fpmodel", test_tmpdir());
    snprintf(xdg, sizeof xdg, "%s/fpxdg", test_tmpdir());
    mkdir(dir, 0755);
    const char *old = getenv("XDG_CACHE_HOME");
    char *saved = old ? strdup(old) : NULL;
    setenv("XDG_CACHE_HOME", xdg, 1);
    const char *home = getenv("HOME");
    char *saved_home = home ? strdup(home) : NULL;
    write_file(dir, "model.safetensors", "weights one");
    write_file(dir, "config.json", "{}");
    uint8_t a[CACHE_KEY_BYTES], b[CACHE_KEY_BYTES], c[CACHE_KEY_BYTES];
    snprintf(memo, sizeof memo, "%s/cembed/fingerprints", xdg);
    CHECK_INT(cache_fingerprint_dir(dir, a), 0);
    CHECK(access(memo, F_OK) != 0);   /* files changed within the last second: no memo yet */
    usleep(1100 * 1000);
    CHECK_INT(cache_fingerprint_dir(dir, b), 0);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(access(memo, F_OK) == 0);
    CHECK_INT(cache_fingerprint_dir(dir, b), 0);
    CHECK(memcmp(a, b, sizeof a) == 0);
    write_file(dir, "model.safetensors", "weights two");   /* same size, other bytes */
    CHECK_INT(cache_fingerprint_dir(dir, b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/nonexistent-cembed-home", 1);   /* no memo at all: the hash itself */
    CHECK_INT(cache_fingerprint_dir(dir, c), 0);
    CHECK(memcmp(b, c, sizeof b) == 0);
    setenv("XDG_CACHE_HOME", xdg, 1);
    write_file(dir, "vocab.txt", "[PAD]\n");   /* an optional file appears */
    CHECK_INT(cache_fingerprint_dir(dir, c), 0);
    CHECK(memcmp(b, c, sizeof b) != 0);
    if (saved) setenv("XDG_CACHE_HOME", saved, 1), free(saved);
    else unsetenv("XDG_CACHE_HOME");
    if (saved_home) setenv("HOME", saved_home, 1), free(saved_home);
}
