/* Thread pool: workers sleep on a condition variable between jobs and wake
 * on a generation counter. One job at a time; the caller takes part as
 * thread 0, so a pool of 1 runs everything inline. */
#include <pthread.h>

#include "base.h"
#include "pool.h"

struct pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    unsigned long gen;
    int pending, stop;
    pool_fn fn;
    void *ctx;
};

typedef struct {
    pool *p;
    int index;
} worker_arg;

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    pool *p = wa->p;
    int index = wa->index;
    base_free(wa);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->stop) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        pool_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, index, p->n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int pool_new(int n, pool **out) {
    *out = NULL;
    if (n < 1) return base_err(CEMBED_EINVAL, "thread count %d: must be at least 1", n);
    pool *p = base_calloc(1, sizeof *p);
    if (!p) return base_err(CEMBED_ENOMEM, "thread pool: out of memory");
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = base_calloc((size_t)n, sizeof *p->threads);
    if (!p->threads) {
        base_free(p);
        return base_err(CEMBED_ENOMEM, "thread pool: out of memory");
    }
    p->n = 1;   /* counts the caller and the workers started so far */
    for (int i = 1; i < n; i++) {
        worker_arg *wa = base_malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){p, i};
        if (!wa || pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            base_free(wa);
            pool_free(p);
            return base_err(CEMBED_ENOMEM, "thread pool: cannot start %d threads", n);
        }
        p->n = i + 1;
    }
    *out = p;
    return 0;
}

void pool_free(pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        if (p->threads[i]) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    base_free(p->threads);
    base_free(p);
}

int pool_threads(const pool *p) { return p->n; }

void pool_run(pool *p, pool_fn fn, void *ctx) {
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
