/* The persistent embedding cache; see cache.h. */
/* the allocation-free SHA-256 of cache_key */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>   /* SHA256_CTX: deprecated in OpenSSL 3 but kept; allocation-free */
#include <sqlite3.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"

#define CACHE_SQLITE_HEAP (4 << 20)

/* A hit rewrites its row's `used` (its page, the recency index, the WAL)
 * only when the stored time is older than this: eviction needs no finer
 * order, and a rerun over an unchanged tree soon after the last one (43,670
 * hits: 1.2-1.6 s of a 6 s rerun, and some 175 MB of WAL) writes nothing. */
#define CACHE_TOUCH_MS (3600 * 1000)

struct cache {
    sqlite3 *db;
    char *path;
    uint64_t max_bytes;
    int64_t touch_ms;   /* CACHE_TOUCH_MS; tests set 0 */
    sqlite3_stmt *get, *put, *touch, *del, *bytes;
    cache_stats st;
};

/* ---- keys ---- */

static int hash_file(EVP_MD_CTX *h, const char *dir, const char *name, int required) {
    char *path = path_join(dir, name);
    if (!path) return base_err(CEMBED_ENOMEM, "out of memory");
    int rc = 0, fd = -1;
    struct stat st;
    if (!required && stat(path, &st) != 0 && errno == ENOENT) { /* an optional file that is not there */
        base_free(path);
        return 0;
    }
    FILE *f = NULL;
    if ((rc = file_open_regular(path, O_RDONLY, &fd, NULL)) || !(f = fdopen(fd, "rb"))) { /* never waits on a FIFO */
        if (!rc) rc = base_err(CEMBED_EIO, "%s: %s", path, strerror(errno));
        if (fd >= 0 && !f) close(fd);
        base_free(path);
        return rc;
    }
    /* read, not mapped: hashing must not add the file to this process's RSS */
    char *chunk = base_malloc(1 << 16);
    if (!chunk) rc = base_err(CEMBED_ENOMEM, "out of memory");
    EVP_DigestUpdate(h, name, strlen(name) + 1);   /* the name too: moving bytes between files changes the print */
    for (size_t n; !rc && (n = fread(chunk, 1, 1 << 16, f)) > 0;) EVP_DigestUpdate(h, chunk, n);
    if (!rc && ferror(f)) rc = base_err(CEMBED_EIO, "%s: read error", path);
    fclose(f);
    base_free(chunk);
    base_free(path);
    return rc;
}

static const char *const optional[] = {"tokenizer.json", "vocab.txt", "modules.json", "1_Pooling/config.json",
                                       "sentence_bert_config.json"};

/* ---- the fingerprint's memo ----
 * Hashing the files is the longest step of a service's start (SHA-256 over
 * 90 MB of weights: 60-200 ms). The result is kept in a memo,
 * $XDG_CACHE_HOME/cembed/fingerprints/H (H: SHA-256 of the folder's path),
 * with the identity of every file it read: device, inode, size, and the
 * modification and change times to the nanosecond (cembed never writes a
 * model's files, so a change of any of them means someone did). A start
 * whose files have the same identity reads the memo instead of hashing. The
 * memo is only a shortcut: any failure to read or write it means hashing. */

static int make_parent(const char *path);

/* SHA-256 over dir and the identity of each file the fingerprint reads;
 * OUT: *newest, the latest modification or change time (ns). Returns 0, or
 * -1 when a file cannot be looked at (then no memo). */
static int files_identity(const char *dir, uint8_t id[CACHE_KEY_BYTES], int64_t *newest) {
    *newest = 0;
    SHA256_CTX h;
    SHA256_Init(&h);
    SHA256_Update(&h, dir, strlen(dir) + 1);
    for (size_t i = 0; i < 2 + CE_ARRAY_LEN(optional); i++) {
        const char *name = i == 0 ? "model.safetensors" : i == 1 ? "config.json" : optional[i - 2];
        char *path = path_join(dir, name);
        struct stat st;
        const int rc = path ? stat(path, &st) : -1, absent = rc != 0 && path && errno == ENOENT && i >= 2;
        base_free(path);
        if (rc != 0 && !absent) return -1;
        int64_t v[7] = {absent};
        if (!absent)
            v[1] = (int64_t)st.st_dev, v[2] = (int64_t)st.st_ino, v[3] = (int64_t)st.st_size,
            v[4] = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
            v[5] = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec, v[6] = (int64_t)st.st_mode;
        *newest = CE_MAX(*newest, CE_MAX(v[4], v[5]));
        SHA256_Update(&h, name, strlen(name) + 1);
        SHA256_Update(&h, v, sizeof v);
    }
    SHA256_Final(id, &h);
    return 0;
}

/* The memo's path for dir into path[n]; -1 when there is no cache folder. */
static int memo_path(const char *dir, char *path, size_t n) {
    char base[4096];
    if (cache_default_path(base, sizeof base)) return -1;
    char *slash = strrchr(base, '/');
    if (!slash) return -1;
    *slash = 0;   /* .../cembed */
    uint8_t d[CACHE_KEY_BYTES];
    SHA256((const unsigned char *)dir, strlen(dir), d);
    int len = snprintf(path, n, "%s/fingerprints/", base);
    for (int i = 0; i < 16 && len > 0 && (size_t)len < n; i++) len += snprintf(path + len, n - (size_t)len, "%02x", d[i]);
    return len > 0 && (size_t)len < n ? 0 : -1;
}

/* The memo of dir's fingerprint when its files are as it says: 0 and out
 * filled, else -1. */
static int memo_read(const char *path, const uint8_t id[CACHE_KEY_BYTES], uint8_t out[CACHE_KEY_BYTES]) {
    char *data = NULL;
    size_t len = 0;
    int rc = -1;
    if (file_read_all(path, 2 * CACHE_KEY_BYTES, &data, &len) == 0 && len == 2 * CACHE_KEY_BYTES &&
        memcmp(data, id, CACHE_KEY_BYTES) == 0) {
        memcpy(out, data + CACHE_KEY_BYTES, CACHE_KEY_BYTES);
        rc = 0;
    }
    base_free(data);
    base_err_clear();
    return rc;
}

static void memo_write(const char *path, const uint8_t id[CACHE_KEY_BYTES], const uint8_t fp[CACHE_KEY_BYTES]) {
    uint8_t data[2 * CACHE_KEY_BYTES];
    memcpy(data, id, CACHE_KEY_BYTES);
    memcpy(data + CACHE_KEY_BYTES, fp, CACHE_KEY_BYTES);
    if (make_parent(path) == 0) file_write_all(path, data, sizeof data);
    base_err_clear();
}

static int fingerprint_files(const char *dir, uint8_t out[CACHE_KEY_BYTES]);

int cache_fingerprint_dir(const char *dir, uint8_t out[CACHE_KEY_BYTES]) {
    uint8_t id[CACHE_KEY_BYTES], again[CACHE_KEY_BYTES];
    char path[4200];
    int64_t newest, newest2;
    const int memo = files_identity(dir, id, &newest) == 0 && memo_path(dir, path, sizeof path) == 0;
    if (memo && memo_read(path, id, out) == 0) return 0;
    const int rc = fingerprint_files(dir, out);
    /* kept only when no file changed while it was read, and none changed in
     * the last second: a file rewritten within the clock's tick after the
     * memo would keep its times (git's "racily clean" entries) */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const int64_t now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    if (!rc && memo && newest < now_ns - 1000000000 && files_identity(dir, again, &newest2) == 0 &&
        memcmp(id, again, sizeof id) == 0)
        memo_write(path, id, out);
    return rc;
}

/* The fingerprint itself: SHA-256 over the files' names and bytes. */
static int fingerprint_files(const char *dir, uint8_t out[CACHE_KEY_BYTES]) {
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    if (!h || !EVP_DigestInit_ex(h, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(h);
        return base_err(CEMBED_ENOMEM, "SHA-256: cannot start");
    }
    int rc = hash_file(h, dir, "model.safetensors", 1);
    if (!rc) rc = hash_file(h, dir, "config.json", 1);
    for (size_t i = 0; !rc && i < sizeof optional / sizeof *optional; i++) rc = hash_file(h, dir, optional[i], 0);
    unsigned int n = 0;
    if (!rc && (!EVP_DigestFinal_ex(h, out, &n) || n != CACHE_KEY_BYTES))
        rc = base_err(CEMBED_EIO, "SHA-256: cannot finish");
    EVP_MD_CTX_free(h);
    return rc;
}

int cache_scope_init(cache_scope *s, const char *model_dir, const char *precision, const char *variant,
                     const char *pooling, int max_seq_len) {
    memset(s, 0, sizeof *s);
    snprintf(s->precision, sizeof s->precision, "%s", precision);
    snprintf(s->variant, sizeof s->variant, "%s", variant);
    snprintf(s->pooling, sizeof s->pooling, "%s", pooling);
    s->normalize = 0;   /* raw vectors: normalized after, the same way for cached and computed ones */
    s->max_seq_len = max_seq_len;
    return cache_fingerprint_dir(model_dir, s->fingerprint);
}

void cache_key(const cache_scope *s, const char *text, size_t len, uint8_t out[CACHE_KEY_BYTES]) {
    /* SHA-256 on a context on the stack: nothing is allocated, so nothing
     * can fail (EVP_MD_CTX_new can, and a request must not abort for it) */
    SHA256_CTX h;
    const int32_t ints[2] = {s->normalize, s->max_seq_len};
    SHA256_Init(&h);
    SHA256_Update(&h, s->fingerprint, sizeof s->fingerprint);
    SHA256_Update(&h, s->precision, sizeof s->precision);
    SHA256_Update(&h, s->pooling, sizeof s->pooling);
    SHA256_Update(&h, ints, sizeof ints);
    if (s->variant[0]) SHA256_Update(&h, s->variant, sizeof s->variant);
    SHA256_Update(&h, text, len);
    SHA256_Final(out, &h);
}

/* FNV-1a, 64 bits, over key, dims and the vector's bytes: finds a torn or
 * bit-flipped row; not a defence against someone writing the file. */
static int64_t row_sum(const uint8_t *key, int dims, const void *vec, size_t bytes) {
    uint64_t h = 1469598103934665603ull;
    const uint8_t *parts[3] = {key, (const uint8_t *)&dims, vec};
    const size_t lens[3] = {CACHE_KEY_BYTES, sizeof dims, bytes};
    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < lens[p]; i++) h = (h ^ parts[p][i]) * 1099511628211ull;
    return (int64_t)h;
}

/* ---- the database ---- */

static int db_err(cache *c, const char *what) {
    return base_err(CEMBED_EIO, "cache %s: %s: %s", c->path, what, sqlite3_errmsg(c->db));
}

static int exec(cache *c, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    int rc = base_err(CEMBED_EIO, "cache %s: %s", c->path, msg ? msg : sqlite3_errmsg(c->db));
    sqlite3_free(msg);
    return rc;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* mkdir -p of path's directory */
static int make_parent(const char *path) {
    char *d = base_strndup(path, strlen(path));
    if (!d) return base_err(CEMBED_ENOMEM, "out of memory");
    for (char *p = d + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(d, 0755) != 0 && errno != EEXIST) {
            int rc = base_err(CEMBED_EIO, "cache directory %s: %s", d, strerror(errno));
            base_free(d);
            return rc;
        }
        *p = '/';
    }
    base_free(d);
    return 0;
}

int cache_default_path(char *path, size_t n) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) return snprintf(path, n, "%s/cembed/cache.sqlite", xdg) < (int)n ? 0 : -1;
    if (home && *home) return snprintf(path, n, "%s/.cache/cembed/cache.sqlite", home) < (int)n ? 0 : -1;
    return -1;
}

/* Opens c->path and makes the schema and statements; 0, or an error with
 * *sqlite_code set to what SQLite said (SQLITE_NOTADB, SQLITE_CORRUPT...). */
static int open_db(cache *c, int *sqlite_code) {
    int rc = 0;
    *sqlite_code = SQLITE_OK;
    if (sqlite3_open_v2(c->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        *sqlite_code = c->db ? sqlite3_errcode(c->db) : SQLITE_NOMEM;
        return db_err(c, "open");
    }
    sqlite3_busy_timeout(c->db, 30000);
    /* the bytes counter is kept by triggers, in the same transactions as the rows */
    if ((rc = exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-1024;"
                      "CREATE TABLE IF NOT EXISTS vectors(key BLOB PRIMARY KEY, dims INTEGER NOT NULL,"
                      " vec BLOB NOT NULL, sum INTEGER NOT NULL, used INTEGER NOT NULL) WITHOUT ROWID;"
                      "CREATE INDEX IF NOT EXISTS vectors_used ON vectors(used);"
                      "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
                      "INSERT OR IGNORE INTO meta VALUES('bytes', 0), ('version', 1);"
                      "CREATE TRIGGER IF NOT EXISTS vectors_ins AFTER INSERT ON vectors BEGIN"
                      " UPDATE meta SET v = v + length(NEW.vec) WHERE k = 'bytes'; END;"
                      "CREATE TRIGGER IF NOT EXISTS vectors_del AFTER DELETE ON vectors BEGIN"
                      " UPDATE meta SET v = v - length(OLD.vec) WHERE k = 'bytes'; END;"
                      "CREATE TRIGGER IF NOT EXISTS vectors_upd AFTER UPDATE OF vec ON vectors BEGIN"
                      " UPDATE meta SET v = v - length(OLD.vec) + length(NEW.vec) WHERE k = 'bytes'; END;"))) {
        *sqlite_code = sqlite3_errcode(c->db);
        return rc;
    }
    if (sqlite3_prepare_v2(c->db, "SELECT dims, vec, sum, used FROM vectors WHERE key = ?", -1, &c->get, NULL) ||
        sqlite3_prepare_v2(c->db,
                           "INSERT INTO vectors(key, dims, vec, sum, used) VALUES(?, ?, ?, ?, ?) ON CONFLICT(key) DO "
                           "UPDATE SET dims = excluded.dims, vec = excluded.vec, sum = excluded.sum, used = excluded.used",
                           -1, &c->put, NULL) ||
        sqlite3_prepare_v2(c->db, "UPDATE vectors SET used = ? WHERE key = ?", -1, &c->touch, NULL) ||
        sqlite3_prepare_v2(c->db, "DELETE FROM vectors WHERE key = ?", -1, &c->del, NULL) ||
        sqlite3_prepare_v2(c->db, "SELECT v FROM meta WHERE k = 'bytes'", -1, &c->bytes, NULL)) {
        *sqlite_code = sqlite3_errcode(c->db);
        return db_err(c, "prepare");
    }
    /* a file cut short (a full disk, a bad copy) is found now rather than at
     * some later read: with no write-ahead log pending, the file must hold
     * every page the database counts */
    struct stat db, wal;
    char walp[4200];
    snprintf(walp, sizeof walp, "%s-wal", c->path);
    sqlite3_stmt *q = NULL;
    long long pages = 0, page = 0;
    if (stat(c->path, &db) == 0 && (stat(walp, &wal) != 0 || wal.st_size == 0) &&
        sqlite3_prepare_v2(c->db, "SELECT page_count, page_size FROM pragma_page_count, pragma_page_size", -1, &q,
                           NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        pages = sqlite3_column_int64(q, 0), page = sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
    if (pages > 0 && (long long)db.st_size < pages * page) {
        *sqlite_code = SQLITE_CORRUPT;
        return base_err(CEMBED_EIO, "cache %s: %lld bytes for %lld pages of %lld: the file is cut short", c->path,
                        (long long)db.st_size, pages, page);
    }
    return 0;
}

static void close_db(cache *c) {
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->put);
    sqlite3_finalize(c->touch);
    sqlite3_finalize(c->del);
    sqlite3_finalize(c->bytes);
    sqlite3_close(c->db);
    c->get = c->put = c->touch = c->del = c->bytes = NULL;
    c->db = NULL;
}

/* A cache holds only what can be computed again: a file SQLite finds
 * corrupt (or not a database at all) is renamed PATH.corrupt-TIME, with its
 * write-ahead log, and a new one is started in its place. */
static int set_aside_and_reopen(cache *c, const char *why_in) {
    char why[512];   /* why_in is often cembed_last_error(): copied before anything sets it again */
    snprintf(why, sizeof why, "%s", why_in);
    close_db(c);
    char aside[4096], side[4200], from[4200];
    snprintf(aside, sizeof aside, "%s.corrupt-%lld", c->path, (long long)time(NULL));
    if (rename(c->path, aside) != 0 && errno != ENOENT)
        return base_err(CEMBED_EIO, "%s (corrupt); it cannot be set aside as %s: %s", why, aside, strerror(errno));
    for (int k = 0; k < 2; k++) {
        snprintf(from, sizeof from, "%s%s", c->path, k ? "-shm" : "-wal");
        snprintf(side, sizeof side, "%s%s", aside, k ? "-shm" : "-wal");
        if (rename(from, side) != 0 && errno != ENOENT) unlink(from);
    }
    log_warn("%s (corrupt); set aside as %s, starting a new one", why, aside);
    int code;
    return open_db(c, &code);
}

static int corrupt_code(int code) { return code == SQLITE_CORRUPT || code == SQLITE_NOTADB; }

int cache_open(const char *path, uint64_t max_bytes, cache **out) {
    *out = NULL;
    int rc = make_parent(path);
    if (rc) return rc;
    cache *c = base_calloc(1, sizeof *c);
    if (!c || !(c->path = base_strndup(path, strlen(path)))) {
        base_free(c);
        return base_err(CEMBED_ENOMEM, "out of memory");
    }
    c->max_bytes = max_bytes;
    c->touch_ms = CACHE_TOUCH_MS;
    /* SQLite's own heap (page caches, statements) is held to a few MB,
     * so that the memory plan's slack covers it */
    sqlite3_soft_heap_limit64(CACHE_SQLITE_HEAP);
    int code;
    rc = open_db(c, &code);
    if (rc && corrupt_code(code)) rc = set_aside_and_reopen(c, cembed_last_error());
    if (rc) {
        cache_close(c);
        return rc;
    }
    c->st.max_bytes = max_bytes;
    *out = c;
    return 0;
}

void cache_close(cache *c) {
    if (!c) return;
    close_db(c);
    base_free(c->path);
    base_free(c);
}

static uint64_t stored_bytes(cache *c) {
    sqlite3_reset(c->bytes);
    uint64_t v = sqlite3_step(c->bytes) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(c->bytes, 0) : 0;
    sqlite3_reset(c->bytes);
    return v;
}

void cache_set_touch_interval(cache *c, int64_t ms) { c->touch_ms = ms; }

/* hit[i] after the lookups: 0 miss, 1 hit to touch, 2 corrupt (to delete),
 * 3 hit used recently enough (nothing to write). */
int cache_get_many(cache *c, const uint8_t (*keys)[CACHE_KEY_BYTES], size_t n, int dims, float *vecs, uint8_t *hit) {
    const size_t bytes = (size_t)dims * sizeof(float);
    const int64_t t = now_ms();
    int hits = 0, corrupt = 0, stale = 0;
    if (exec(c, "BEGIN")) return -1;
    for (size_t i = 0; i < n; i++) {
        hit[i] = 0;
        sqlite3_reset(c->get);
        sqlite3_bind_blob(c->get, 1, keys[i], CACHE_KEY_BYTES, SQLITE_STATIC);
        int s = sqlite3_step(c->get);
        if (s == SQLITE_DONE) continue;
        if (s != SQLITE_ROW) {
            db_err(c, "read");
            exec(c, "ROLLBACK");
            return -1;
        }
        const void *v = sqlite3_column_blob(c->get, 1);
        const int d = sqlite3_column_int(c->get, 0), len = sqlite3_column_bytes(c->get, 1);
        const int64_t sum = sqlite3_column_int64(c->get, 2);
        if (d == dims && v && (size_t)len == bytes && row_sum(keys[i], dims, v, bytes) == sum) {
            memcpy(vecs + i * (size_t)dims, v, bytes);
            const int64_t used = sqlite3_column_int64(c->get, 3);
            hit[i] = t - used >= c->touch_ms || used > t ? 1 : 3;
            stale += hit[i] == 1;
            hits++;
        } else if (d == dims) { /* right shape but wrong bytes: corrupt; a row of another width is a miss */
            hit[i] = 2;
            corrupt++;
        }
    }
    sqlite3_reset(c->get);
    exec(c, "COMMIT");
    /* recency of the hits not used lately and removal of corrupt rows: one write transaction */
    if (stale || corrupt) {
        if (exec(c, "BEGIN IMMEDIATE")) {   /* busy: recency is a hint, the hits stand */
            for (size_t i = 0; i < n; i++) hit[i] = hit[i] == 1 || hit[i] == 3;
            return hits;
        }
        for (size_t i = 0; i < n; i++) {
            if (!hit[i] || hit[i] == 3) continue;
            sqlite3_stmt *q = hit[i] == 1 ? c->touch : c->del;
            sqlite3_reset(q);
            if (hit[i] == 1) {
                sqlite3_bind_int64(q, 1, t);
                sqlite3_bind_blob(q, 2, keys[i], CACHE_KEY_BYTES, SQLITE_STATIC);
            } else {
                sqlite3_bind_blob(q, 1, keys[i], CACHE_KEY_BYTES, SQLITE_STATIC);
                hit[i] = 0;
            }
            sqlite3_step(q);
            sqlite3_reset(q);
        }
        if (exec(c, "COMMIT")) exec(c, "ROLLBACK");
    }
    for (size_t i = 0; i < n; i++) hit[i] = hit[i] == 1 || hit[i] == 3;
    c->st.touched += (uint64_t)stale;
    c->st.hits += (uint64_t)hits;
    c->st.misses += n - (size_t)hits;
    c->st.corrupt += (uint64_t)corrupt;
    return hits;
}

/* Deletes least recently used rows until the vectors' bytes fit target,
 * in steps sized from the excess (row_bytes: a typical row). */
static long long evict(cache *c, uint64_t target, uint64_t row_bytes) {
    long long removed = 0;
    for (uint64_t have; (have = stored_bytes(c)) > target;) {
        uint64_t rows = (have - target + row_bytes - 1) / (row_bytes ? row_bytes : 1);
        rows = CE_MAX(rows, (uint64_t)1);
        rows = CE_MIN(rows, (uint64_t)4096);
        char sql[160];
        snprintf(sql, sizeof sql, "DELETE FROM vectors WHERE key IN (SELECT key FROM vectors ORDER BY used LIMIT %llu)",
                 (unsigned long long)rows);
        if (exec(c, sql)) return -1;
        int k = sqlite3_changes(c->db);
        if (k == 0) break;
        removed += k;
    }
    c->st.evicted += (uint64_t)removed;
    return removed;
}

int cache_put_many(cache *c, const uint8_t (*keys)[CACHE_KEY_BYTES], size_t n, int dims, const float *vecs) {
    const size_t bytes = (size_t)dims * sizeof(float);
    const int64_t t = now_ms();
    if (exec(c, "BEGIN IMMEDIATE")) return -1;
    for (size_t i = 0; i < n; i++) {
        const float *v = vecs + i * (size_t)dims;
        sqlite3_reset(c->put);
        sqlite3_bind_blob(c->put, 1, keys[i], CACHE_KEY_BYTES, SQLITE_STATIC);
        sqlite3_bind_int(c->put, 2, dims);
        sqlite3_bind_blob(c->put, 3, v, (int)bytes, SQLITE_STATIC);
        sqlite3_bind_int64(c->put, 4, row_sum(keys[i], dims, v, bytes));
        sqlite3_bind_int64(c->put, 5, t);
        if (sqlite3_step(c->put) != SQLITE_DONE) {
            db_err(c, "write");
            sqlite3_reset(c->put);
            exec(c, "ROLLBACK");
            return -1;
        }
    }
    sqlite3_reset(c->put);
    /* over the cap: evict down to 90% so that the next puts do not evict again at once */
    if (c->max_bytes && stored_bytes(c) > c->max_bytes && evict(c, c->max_bytes / 10 * 9, bytes) < 0) {
        exec(c, "ROLLBACK");
        return -1;
    }
    if (exec(c, "COMMIT")) {
        exec(c, "ROLLBACK");
        return -1;
    }
    c->st.stored += n;
    return 0;
}

int cache_get_stats(cache *c, cache_stats *out) {
    *out = c->st;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM vectors", -1, &q, NULL) != SQLITE_OK) return db_err(c, "stats");
    if (sqlite3_step(q) == SQLITE_ROW) out->rows = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    out->vector_bytes = stored_bytes(c);
    struct stat st;
    char wal[4200];
    if (stat(c->path, &st) == 0) out->file_bytes = (uint64_t)st.st_size;
    snprintf(wal, sizeof wal, "%s-wal", c->path);
    if (stat(wal, &st) == 0) out->file_bytes += (uint64_t)st.st_size;
    return 0;
}

/* Rolls back what BEGIN opened, if it is still open (SQLite may already
 * have rolled it back itself after an error). */
static void rollback(cache *c) {
    if (!sqlite3_get_autocommit(c->db)) exec(c, "ROLLBACK");
}

long long cache_prune(cache *c, uint64_t max_bytes) {
    cache_stats st;
    long long removed = -1;
    if (exec(c, "BEGIN IMMEDIATE") == 0 && cache_get_stats(c, &st) == 0)
        removed = evict(c, max_bytes, st.rows ? st.vector_bytes / st.rows : 1536);
    if (removed >= 0 && exec(c, "COMMIT") == 0 && exec(c, "PRAGMA wal_checkpoint(TRUNCATE); VACUUM;") == 0)
        return removed;
    const int code = sqlite3_errcode(c->db);
    rollback(c);
    if (corrupt_code(code)) return set_aside_and_reopen(c, cembed_last_error()) ? -1 : 0;   /* nothing left to prune */
    return -1;
}

int cache_clear(cache *c) {
    if (exec(c, "BEGIN IMMEDIATE; DELETE FROM vectors; COMMIT;") == 0 &&
        exec(c, "PRAGMA wal_checkpoint(TRUNCATE); VACUUM;") == 0)
        return 0;
    const int code = sqlite3_errcode(c->db);
    rollback(c);
    /* clearing always works: a file that cannot be emptied is replaced */
    return corrupt_code(code) ? set_aside_and_reopen(c, cembed_last_error()) : -1;
}

int cache_integrity(cache *c, char *msg, size_t n) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(c->db, "PRAGMA integrity_check", -1, &q, NULL) != SQLITE_OK) return db_err(c, "integrity");
    snprintf(msg, n, "%s", sqlite3_step(q) == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : "no answer");
    sqlite3_finalize(q);
    return 0;
}
