/* The cache's single writer for the service: request threads hand it
 * vectors, it stores them in batched transactions on its own connection, so
 * no request waits on a disk write. */
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
    uint8_t (*keys)[CACHE_KEY_BYTES];
    float *vecs;
    size_t n, dropped;
    int stopping;
};

static void *run(void *arg) {
    cache_writer *w = arg;
    uint8_t (*keys)[CACHE_KEY_BYTES] = base_malloc(FLUSH_ROWS * CACHE_KEY_BYTES);
    float *vecs = base_malloc((size_t)FLUSH_ROWS * (size_t)w->dims * sizeof(float));
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->n == 0 && !w->stopping) pthread_cond_wait(&w->cv, &w->mu);
        if (w->n == 0) break;
        /* take the oldest rows, up to one transaction's worth */
        size_t k = CE_MIN(w->n, (size_t)FLUSH_ROWS);
        if (keys && vecs) {
            memcpy(keys, w->keys, k * CACHE_KEY_BYTES);
            memcpy(vecs, w->vecs, k * (size_t)w->dims * sizeof(float));
        }
        memmove(w->keys, w->keys + k, (w->n - k) * CACHE_KEY_BYTES);
        memmove(w->vecs, w->vecs + k * (size_t)w->dims, (w->n - k) * (size_t)w->dims * sizeof(float));
        w->n -= k;
        pthread_mutex_unlock(&w->mu);
        if (!keys || !vecs || cache_put_many(w->c, (const uint8_t(*)[CACHE_KEY_BYTES])keys, k, w->dims, vecs))
            log_warn("cache: %zu vectors not stored: %s", k, keys && vecs ? cembed_last_error() : "out of memory");
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    base_free(keys);
    base_free(vecs);
    return NULL;
}

int cache_writer_start(const char *path, uint64_t max_bytes, int dims, cache_writer **out) {
    *out = NULL;
    cache_writer *w = base_calloc(1, sizeof *w);
    if (!w) return base_err(CEMBED_ENOMEM, "out of memory");
    w->dims = dims;
    w->keys = base_malloc((size_t)MAX_QUEUED * CACHE_KEY_BYTES);
    w->vecs = base_malloc((size_t)MAX_QUEUED * (size_t)dims * sizeof(float));
    int rc = !w->keys || !w->vecs ? base_err(CEMBED_ENOMEM, "out of memory") : cache_open(path, max_bytes, &w->c);
    if (!rc) { /* touched now, so that the memory plan counts the queue as resident */
        memset(w->keys, 0, (size_t)MAX_QUEUED * CACHE_KEY_BYTES);
        memset(w->vecs, 0, (size_t)MAX_QUEUED * (size_t)dims * sizeof(float));
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
        cache_close(w->c);
        base_free(w->keys);
        base_free(w->vecs);
        base_free(w);
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
    cache_close(w->c);
    base_free(w->keys);
    base_free(w->vecs);
    base_free(w);
}
