/* cache: the persistent embedding cache (SQLite), shared by `embed`,
 * `serve` and `worker`.
 *
 * A row is keyed by SHA-256(model fingerprint || precision || pooling ||
 * normalize || truncation limit || text), so a vector is found again only
 * for the same model files, settings and text. The database runs in WAL mode
 * with synchronous=NORMAL: a killed process loses at most its last
 * uncommitted transaction and never corrupts the file. Each row carries a
 * checksum of key, dims and vector; a row that fails it (or has the wrong
 * size) is deleted and reported as a miss, never returned. A size cap evicts
 * the least recently used rows. One cache handle is used by one thread at a
 * time; several processes may share the file (SQLite's locking, with a busy
 * timeout).
 */
#ifndef CEMBED_CACHE_H
#define CEMBED_CACHE_H

#include "base/base.h"

#define CACHE_KEY_BYTES 32

typedef struct cache cache;

/* What makes a vector: filled once per model and settings. */
typedef struct cache_scope {
    uint8_t fingerprint[CACHE_KEY_BYTES];   /* of the model's files */
    char precision[8];                      /* "fp32" */
    char pooling[8];                        /* "mean" | "cls" */
    int normalize;
    int max_seq_len;
    char variant[16];                       /* what else the values depend on ("attn-bf16"); "" for
                                               nothing, and then not hashed: older keys stay valid */
} cache_scope;

/* The scope of a model's raw (unnormalized) vectors, from its info and the
 * fingerprint of its directory. Fails with EIO. */
int cache_scope_init(cache_scope *s, const char *model_dir, const char *precision, const char *variant,
                     const char *pooling, int max_seq_len);

/* SHA-256 over the files that define the model's output: model.safetensors,
 * tokenizer.json or vocab.txt, config.json and the sentence-transformers
 * files that exist. Fails with EIO. */
int cache_fingerprint_dir(const char *dir, uint8_t out[CACHE_KEY_BYTES]);
void cache_key(const cache_scope *s, const char *text, size_t len, uint8_t out[CACHE_KEY_BYTES]);

/* Opens (creating it and its directory) the database at path. max_bytes
 * caps the vectors' bytes (0 = no cap). OUT: *out. Fails with EIO (the
 * message names the file and SQLite's reason). */
int cache_open(const char *path, uint64_t max_bytes, cache **out);
void cache_close(cache *c);
/* The default path: $XDG_CACHE_HOME/cembed/cache.sqlite, else
 * $HOME/.cache/cembed/cache.sqlite. Writes at most n bytes; -1 if neither
 * variable is set. */
int cache_default_path(char *path, size_t n);

/* Looks up n keys; for each hit copies dims floats to vecs + i*dims and sets
 * hit[i] = 1 (and its recency to now when it was an hour old or more; see
 * cache_set_touch_interval). Returns the number of hits (corrupt rows are
 * deleted and are misses), or -1 with the error set. */
int cache_get_many(cache *c, const uint8_t (*keys)[CACHE_KEY_BYTES], size_t n, int dims, float *vecs, uint8_t *hit);
/* A hit writes its row's recency (for eviction) only when the stored one is
 * at least ms old: an hour unless set (tests: 0, every hit). */
void cache_set_touch_interval(cache *c, int64_t ms);
/* Stores n vectors in one transaction (replacing rows with the same key),
 * then evicts least recently used rows while over the cap. Returns 0 or -1
 * with the error set. */
int cache_put_many(cache *c, const uint8_t (*keys)[CACHE_KEY_BYTES], size_t n, int dims, const float *vecs);

typedef struct cache_stats {
    uint64_t rows, vector_bytes, file_bytes, max_bytes;
    uint64_t hits, misses, corrupt, stored, evicted;   /* this handle's counts */
    uint64_t touched;   /* hits whose recency was written (the others were used within the hour) */
} cache_stats;
int cache_get_stats(cache *c, cache_stats *out);
/* Evicts least recently used rows until the vectors fit max_bytes, then
 * checkpoints and vacuums. Returns rows removed or -1. */
long long cache_prune(cache *c, uint64_t max_bytes);
/* Removes every row. Returns 0 or -1. */
int cache_clear(cache *c);
/* "ok" or SQLite's first complaint; writes at most n bytes. */
int cache_integrity(cache *c, char *msg, size_t n);

#endif
