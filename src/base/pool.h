/* A small fixed thread pool for the engine: pool_run(fn, ctx) calls fn on
 * every worker and on the caller, each with its thread index, and returns
 * when all are done. Work splitting is the caller's (static ranges or an
 * atomic counter), which keeps the pool free of per-task allocation. */
#ifndef CEMBED_POOL_H
#define CEMBED_POOL_H

typedef struct pool pool;
typedef void (*pool_fn)(void *ctx, int thread, int n_threads);

/* Starts n-1 workers (the caller is thread 0). OUT: *out. Fails with ENOMEM
 * or EINVAL (n < 1). */
int pool_new(int n, pool **out);
void pool_free(pool *p);
int pool_threads(const pool *p);
/* Runs fn on all threads; cannot fail. Not reentrant. */
void pool_run(pool *p, pool_fn fn, void *ctx);

#endif
