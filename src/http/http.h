/* http: the embedding service on libmicrohttpd.
 *
 * An event loop (two I/O threads) over every connection; complete bodies
 * go to request threads that run the pipeline (src/pipe) up to the
 * scheduler, whose single inference thread does all the compute, so no I/O
 * thread ever parses, tokenizes or runs the model. Routes:
 *   POST /embed, POST /v1/embeddings, POST /tokenize, POST /embed_all, POST /similarity,
 *   POST /rerank, POST /v1/rerank, POST / (by the body: TEI's root), GET /health, GET /info,
 *   GET /metrics, GET /v1/models. Errors are {"error": {"message", "type", "code"}}. A streamed
 * /embed ("stream": true or Accept: application/x-ndjson) answers NDJSON.
 */
#ifndef CEMBED_HTTP_H
#define CEMBED_HTTP_H

#include "base/base.h"
#include "cache/cache.h"
#include "cache/writer.h"
#include "http/keys.h"
#include "pipe/pipe.h"
#include "sched/sched.h"

typedef struct http_opts {
    const char *host;           /* listen address, "127.0.0.1" */
    int port;                   /* 0 = pick a free port (tests) */
    int listen_fd;              /* > 0: a socket http_listen bound (the server takes it over); else it binds host:port */
    size_t max_body_bytes;
    size_t max_chunks;
    int max_depth;
    int max_connections;        /* open connections, all together */
    int max_connections_per_ip; /* from one client address */
    int idle_timeout_s;         /* a connection silent this long is closed */
    int header_timeout_s;       /* a new connection must send its request's headers within this; 0 = 10 */
    int drain_timeout_s;        /* http_server_stop waits this long for requests in flight, then cancels them; 0 = 30 */
    sched_opts sched;
    /* optional: the persistent cache (lookups on request threads under a
     * mutex, stores through the writer); vectors are cached raw, before
     * normalization, under scope */
    cache *cache;
    cache_writer *cache_writer;
    cache_scope cache_scope;
    /* API keys: when any, every route but /health (and /metrics unless
     * metrics_auth) needs "Authorization: Bearer KEY"; copied */
    const keyset *keys;
    int metrics_auth;
    /* several models (n_models > 1): models[0] is the default; each its own
     * cache scope and writer (vectors of its size); the m argument of
     * http_server_start is then ignored */
    int n_models;
    cembed_model *const *models;
    const char *const *model_ids;   /* the names a request's "model" may use besides the model's own (its --model) */
    const cache_scope *cache_scopes;
    cache_writer *const *cache_writers;
} http_opts;

typedef struct http_server http_server;

/* The HTTP status of a pipeline's refusal (200 for PIPE_OK): the one place
 * the pipeline's words become numbers, for the server's answers and the
 * worker's records. Cannot fail. */
int http_status_of(pipe_refusal kind);

/* Binds and listens on host:port before anything slow (loading a model)
 * runs, so that a port in use is said at once. OUT: *fd. Fails with EIO
 * naming the address, the cause and how to choose another port. */
int http_listen(const char *host, int port, int *fd);

/* Starts serving model m. OUT: *out; the port actually bound is in
 * http_server_port(). Fails with EIO (cannot bind) or ENOMEM. */
int http_server_start(cembed_model *m, const http_opts *o, http_server **out);
int http_server_port(const http_server *s);
/* Replaces the API keys (a reload): takes *k over; requests in flight are not touched. */
void http_server_set_keys(http_server *s, keyset *k);
/* Stops accepting, lets in-flight requests finish for up to drain_timeout_s,
 * then cancels what is still queued (those requests get 503), waits for the
 * batch in hand and stops everything. */
void http_server_stop(http_server *s);

#endif
