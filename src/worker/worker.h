/* worker: `cembed worker`, the embedding service fed by a Redis Stream.
 *
 * Jobs are entries of a stream (default cembed:jobs) with a field "body"
 * holding one POST /embed body. Workers read them in a consumer group
 * (default cembed) with XREADGROUP, one at a time; a job is embedded with
 * the same engine, scheduler, memory governor and cache as the HTTP service,
 * and its answer (the JSON POST /embed would send) is written, in one
 * MULTI/EXEC with the XACK, to the key PREFIX:BATCH_ID (default prefix
 * cembed:result, with a TTL) and announced on the stream cembed:results
 * (fields batch_id, job, key). The key is exact and collision-free
 * (worker_result_key). At-least-once: a
 * worker that dies before EXEC leaves the job pending; entries idle longer
 * than claim_idle_ms are claimed by another worker (XAUTOCLAIM; XPENDING
 * gives the delivery count); a
 * redelivery overwrites the same key, so each batch_id has one result. A job
 * that fails (bad or missing body, too large for the memory budget) is not
 * acked; its reason is kept in the hash cembed:errors, and once delivered
 * more than max_deliveries times it moves to cembed:dead (fields job, body,
 * reason, deliveries) and is acked. Only the job's own failures count: a
 * job redelivered because workers died or Redis failed is computed again,
 * never dead-lettered. Redis going away: reconnect with backoff (0.1 s
 * doubling to 5 s); Redis refusing writes (maxmemory, a read-only replica):
 * logged, the answer kept and stored again with the same backoff. The stop
 * flag (SIGTERM) is checked between jobs and while waiting.
 */
#ifndef CEMBED_WORKER_H
#define CEMBED_WORKER_H

#include <signal.h>

#include "base/base.h"
#include "cache/cache.h"
#include "cache/writer.h"
#include "gov/gov.h"
#include "sched/sched.h"

typedef struct redis_addr {
    char host[256];
    int port, db;
    char password[256];
} redis_addr;

/* Parses redis://[:PASSWORD@]HOST[:PORT][/DB]. Returns 0 or EINVAL. */
int redis_parse_url(const char *url, redis_addr *out);

/* Connects to a (within 5 s), sends AUTH and SELECT as the address asks,
 * and sets every later command's timeout to timeout_s (0: none). OUT: *out
 * (redisFree). Fails with EIO (cannot connect) or EINVAL (Redis refused
 * AUTH or SELECT: its answer, WRONGPASS, is in the message, the URL's to
 * fix), the message naming host:port and the step. */
struct redisContext;
int redis_open(const redis_addr *a, int timeout_s, struct redisContext **out);

typedef struct worker_opts {
    redis_addr addr;
    const char *stream, *group, *consumer;
    const char *results_stream, *dead_stream, *errors_hash, *result_prefix;
    long claim_idle_ms, block_ms, result_ttl_s;
    int max_deliveries;
    size_t max_chunks, max_body_bytes;
    int max_depth;
} worker_opts;

typedef struct worker_env {
    cembed_model *m;
    sched *s;
    gov *g;                     /* optional: reservations before allocation */
    cache *cache;               /* optional */
    cache_writer *writer;
    cache_scope scope;
} worker_env;

/* One entry's job as a worker runs it, without Redis: the /embed answer
 * into out, its result key into key, the batch_id it announces into bid.
 * Returns 0 or the kind of the refusal (a pipe_refusal; reason filled
 * "STATUS: why"; a transient one, pipe_refusal_transient, is the worker's
 * own, left pending and retried). */
int worker_embed_body(const worker_env *env, const worker_opts *o, const char *id, const char *body, size_t len,
                      buf *out, buf *key, buf *bid, char *reason, size_t rn);

/* Runs until *stop. Returns 0 (stopped) or fails with EINVAL (the options). */
int worker_run(const worker_env *env, const worker_opts *o, volatile sig_atomic_t *stop);

/* The result key of a job, exact and collision-free whatever its batch_id
 * holds or how long it is:
 *   WORKER_KEY_STRING  PREFIX:VALUE     a string batch_id, its bytes as they are
 *   WORKER_KEY_INT     PREFIX:\xff#N    an integer batch_id N
 *   WORKER_KEY_ENTRY   PREFIX:\xff@ID   no batch_id: the stream entry's id
 * (0xFF is never a byte of UTF-8 text, so no string batch_id gives the
 * others). OUT: *out, NUL-terminated, out->len without the NUL. Fails with
 * ENOMEM. */
enum { WORKER_KEY_STRING, WORKER_KEY_INT, WORKER_KEY_ENTRY };
int worker_result_key(const char *prefix, int kind, const char *value, size_t len, buf *out);

#endif
