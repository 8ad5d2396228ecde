/* The service's internals, shared by its files:
 *   server.c   libmicrohttpd glue: connections, header deadline, suspend and
 *              resume, the request threads, start and stop
 *   admit.c    what a request must pass before its body is read, and the
 *              pipeline run on a request thread
 *   reply.c    error answers and the answer's content reader
 *   status.c   GET /health, /info, /metrics
 */
#ifndef CEMBED_HTTP_INTERNAL_H
#define CEMBED_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "http/http.h"
#include "pipe/pipe.h"

enum route { R_NONE, R_EMBED, R_OPENAI, R_TOKENIZE, R_EMBED_ALL, R_SIMILARITY, R_RERANK, R_RERANK_V1, R_HEALTH, R_INFO,
             R_METRICS, R_MODELS, R_ROOT };
typedef struct route_def {
    const char *path, *method;
    enum route r;
} route_def;
extern const route_def http_routes[];
extern const size_t http_n_routes;
#define N_ROUTES 13
#define N_CODES 10
extern const int http_status_codes[N_CODES];

typedef struct work work;

struct http_server {
    struct MHD_Daemon *d;
    cembed_model *m;
    cembed_model_info info;
    sched *s;
    pipe_env *pes;              /* one per model; pes[0] the default */
    int n_models;
    const char **model_ids;
    http_opts o;
    int port;
    atomic_int draining;
    atomic_int in_flight;       /* requests between their headers and their end */
    atomic_int parked;          /* suspended connections: each is waiting for its work */
    atomic_ullong requests[N_ROUTES][N_CODES];
    atomic_ullong latency_us_sum, latency_count, chunks, truncated;
    atomic_ullong shed_memory, shed_queue, cache_hits, cache_misses;
    atomic_ullong conns_opened, conns_deadline, auth_failures;
    pthread_mutex_t k_mu;
    keyset keys;
    atomic_llong last_shed;     /* time_now() seconds of the last memory refusal */
    /* the request threads: parse, tokenize, look the cache up, submit */
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    work *q_head, *q_tail;
    int q_stop, n_threads;
    pthread_t *threads;
    /* connections waiting for their request's headers (the deadline) */
    pthread_mutex_t c_mu;
    pthread_cond_t c_cv;
    struct conn_track *tracked;
    int c_stop;
    pthread_t reaper;
};

/* Per request on a connection. */
typedef struct conn_ctx {
    enum route route;
    buf body;
    uint64_t held;              /* bytes of the body reserved from the governor */
    int too_large, no_memory;
    double t0;
    char method[8];
    size_t chunks, tokens;      /* of its answer (the access log) */
    work *w;                    /* handed to a request thread; answered once w->ready */
} conn_ctx;

/* One request's pipeline job and its answer. */
struct work {
    http_server *s;
    struct MHD_Connection *c;
    enum route route;
    pipe_job j;
    char *body;
    size_t body_len;
    uint64_t body_held;         /* the body's reservation, given back once it is parsed */
    int stream;                 /* NDJSON lines in completion order */
    int accept_ndjson;          /* the request's Accept asks for NDJSON (read on the I/O thread) */
    double t0, tok_ms;          /* the request's start; parse + tokenize time */
    atomic_int refs;            /* the response and, while it runs, the scheduler */
    atomic_int ready;           /* the request thread (or the job) is done: answer it */
    pthread_mutex_t mu;
    size_t *order;              /* streamed: indices in completion order */
    size_t n_ready, n_sent;
    int done, suspended, gone;  /* under mu: job done, connection parked by the reader, response freed */
    atomic_int abandoned;       /* its client closed the connection before the answer: cancel what is queued */
    int phase;                  /* 0 head, 1 items, 2 done */
    buf out;
    size_t out_pos;
    work *next;                 /* the request threads' queue */
};

void http_count(http_server *s, enum route r, int status);
/* Records the status answered on c, for its access log line. */
void http_note_status(struct MHD_Connection *c, int status);
/* extra: NULL, or header names and values, NULL-terminated. */
enum MHD_Result http_send_buf(struct MHD_Connection *c, int status, buf *b, const char *type, int retry_after,
                              const char *const *extra);
enum MHD_Result http_send_error(http_server *s, struct MHD_Connection *c, enum route r, int status, const char *msg,
                                int retry_after_s, const char *const *extra);
enum MHD_Result http_send_no_memory(http_server *s, struct MHD_Connection *c, enum route r);
enum MHD_Result http_status_route(http_server *s, struct MHD_Connection *c, enum route r);
/* Answers a pipeline's refusal (j->refusal, j->msg, j->retry_after), counted as shed when it is for memory. */
enum MHD_Result http_send_refusal(http_server *s, struct MHD_Connection *c, enum route r, const pipe_job *j);
/* Queues w's answer: its error, or the content reader over its vectors. */
enum MHD_Result http_answer(http_server *s, struct MHD_Connection *c, work *w);
/* Runs w's pipeline up to submission (a request thread). */
void http_work_run(work *w);
void http_work_release(work *w);
/* Resumes w's connection if the reader parked it (the job's threads). */
void http_wake(work *w);
void http_resume(http_server *s, struct MHD_Connection *c);
/* Cancels w's queued sequences once its client has left (any thread but the
 * inference thread; w must be held). */
void http_work_abandon(work *w);

#endif
