/* The cache's single writer for the service: request threads hand it
 * vectors, it stores them in batched transactions on its own connection, so
 * no request waits on a disk write. Until a vector is committed it stays
 * visible to lookups through cache_writer_get_many (the queue, and the rows of
 * the transaction in flight), so a chunk repeated right after it was computed
 * is a hit. */
#include <pthread.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/writer.h"

#define FLUSH_ROWS 256
#define MAX_QUEUED 2048    /* beyond this, new vectors are dropped (a cache may miss; it never blocks) */

struct cache_writer {
    cache *c;
    int dims;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t (*keys)[CACHE_KEY_BYTES];   /* the queue: [MAX_QUEUED] */
    float *vecs;
    size_t n, dropped;
    uint8_t (*fkeys)[CACHE_KEY_BYTES];  /* the transaction in flight: [FLUSH_ROWS] */
    float *fvecs;
    size_t nf;
    int stopping;
};

static void *run(void *arg) {
    cache_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->n == 0 && !w->stopping) pthread_cond_wait(&w->cv, &w->mu);
        if (w->n == 0) break;
        /* take the oldest rows, up to one transaction's worth; lookups still see them in flight */
        const size_t k = CE_MIN(w->n, (size_t)FLUSH_ROWS);
        memcpy(w->fkeys, w->keys, k * CACHE_KEY_BYTES);
        memcpy(w->fvecs, w->vecs, k * (size_t)w->dims * sizeof(float));
        memmove(w->keys, w->keys + k, (w->n - k) * CACHE_KEY_BYTES);
        memmove(w->vecs, w->vecs + k * (size_t)w->dims, (w->n - k) * (size_t)w->dims * sizeof(float));
        w->n -= k;
        w->nf = k;
        pthread_mutex_unlock(&w->mu);
        /* only this thread writes the flight rows; readers take the mutex */
        if (cache_put_many(w->c, (const uint8_t(*)[CACHE_KEY_BYTES])w->fkeys, k, w->dims, w->fvecs))
            log_warn("cache: %zu vectors not stored: %s", k, cembed_last_error());
        pthread_mutex_lock(&w->mu);
        w->nf = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Keys with hit[i] == 0 that are queued or in flight: vector to vecs, hit[i] = 1. */
static size_t pending_get_many(cache_writer *w, const uint8_t (*keys)[CACHE_KEY_BYTES], size_t n, float *vecs,
                               uint8_t *hit) {
    size_t found = 0;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < n && (w->n || w->nf); i++) {
        if (hit[i]) continue;
        const float *v = NULL;
        /* newest first: the queue's tail, then the flight */
        for (size_t q = w->n; q-- > 0 && !v;)
            if (memcmp(w->keys[q], keys[i], CACHE_KEY_BYTES) == 0) v = w->vecs + q * (size_t)w->dims;
        for (size_t q = 0; q < w->nf && !v; q++)
            if (memcmp(w->fkeys[q], keys[i], CACHE_KEY_BYTES) == 0) v = w->fvecs + q * (size_t)w->dims;
        if (v) {
            memcpy(vecs + i * (size_t)w->dims, v, (size_t)w->dims * sizeof(float));
            hit[i] = 1;
            found++;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return found;
}

int cache_writer_lookup(cache_writer *w, cache *c, const uint8_t (*keys)[CACHE_KEY_BYTES], size_t n, int dims,
                        float *vecs, uint8_t *hit) {
    /* the writer first: a row leaves its flight only once committed, so a
     * key it no longer holds is in the file by the time c is read */
    memset(hit, 0, n);
    size_t found = w ? pending_get_many(w, keys, n, vecs, hit) : 0;
    if (found == n) return (int)found;
    uint8_t *db = base_malloc(n);
    if (!db) return (int)found;   /* the rest are misses: computed again, never wrong */
    const int h = cache_get_many(c, keys, n, dims, vecs, db);
    for (size_t i = 0; h > 0 && i < n; i++)
        if (!hit[i] && db[i]) hit[i] = 1, found++;
    base_free(db);
    return h < 0 ? -1 : (int)found;
}

/* Closes the connection and frees the buffers (the thread is not running). */
static void writer_free(cache_writer *w) {
    cache_close(w->c);
    base_free(w->keys);
    base_free(w->vecs);
    base_free(w->fkeys);
    base_free(w->fvecs);
    base_free(w);
}

int cache_writer_start(const char *path, uint64_t max_bytes, int dims, cache_writer **out) {
    *out = NULL;
    cache_writer *w = base_calloc(1, sizeof *w);
    if (!w) return base_err(CEMBED_ENOMEM, "out of memory");
    w->dims = dims;
    w->keys = base_malloc((size_t)MAX_QUEUED * CACHE_KEY_BYTES);
    w->vecs = base_malloc((size_t)MAX_QUEUED * (size_t)dims * sizeof(float));
    w->fkeys = base_malloc(FLUSH_ROWS * CACHE_KEY_BYTES);
    w->fvecs = base_malloc((size_t)FLUSH_ROWS * (size_t)dims * sizeof(float));
    int rc = !w->keys || !w->vecs || !w->fkeys || !w->fvecs ? base_err(CEMBED_ENOMEM, "out of memory")
                                                            : cache_open(path, max_bytes, &w->c);
    if (!rc) { /* touched now, so that the memory plan counts the queue as resident */
        memset(w->keys, 0, (size_t)MAX_QUEUED * CACHE_KEY_BYTES);
        memset(w->vecs, 0, (size_t)MAX_QUEUED * (size_t)dims * sizeof(float));
        memset(w->fkeys, 0, FLUSH_ROWS * CACHE_KEY_BYTES);
        memset(w->fvecs, 0, (size_t)FLUSH_ROWS * (size_t)dims * sizeof(float));
    }
    if (!rc) {
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        if (pthread_create(&w->thread, NULL, run, w) != 0) {
            pthread_mutex_destroy(&w->mu);
            pthread_cond_destroy(&w->cv);
            rc = base_err(CEMBED_ENOMEM, "cache: cannot start the writer thread");
        }
    }
    if (rc) {
        writer_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void cache_writer_put(cache_writer *w, const uint8_t key[CACHE_KEY_BYTES], const float *vec) {
    pthread_mutex_lock(&w->mu);
    if (w->n < MAX_QUEUED) {
        memcpy(w->keys[w->n], key, CACHE_KEY_BYTES);
        memcpy(w->vecs + w->n * (size_t)w->dims, vec, (size_t)w->dims * sizeof(float));
        w->n++;
        pthread_cond_signal(&w->cv);
    } else {
        w->dropped++;
    }
    pthread_mutex_unlock(&w->mu);
}

void cache_writer_stop(cache_writer *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);   /* after the last rows are stored */
    if (w->dropped) log_warn("cache: %zu vectors were not stored (the writer fell behind)", w->dropped);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    writer_free(w);
}
