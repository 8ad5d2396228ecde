/* The HTTP service's libmicrohttpd glue; see http.h and internal.h.
 *
 * Two I/O threads run an epoll loop over every connection; they read
 * headers and bodies and write answers, nothing else. A complete POST body
 * parks its connection (MHD_suspend_connection) and goes to a request
 * thread, which runs the pipeline up to the scheduler; the scheduler's
 * callbacks resume the connection when its answer can be written. So an
 * idle or slow connection costs a socket and a few hundred bytes, never a
 * thread, and thousands of them do not keep a real client waiting. Slow
 * clients are bounded three ways: a connection limit sized for the loop
 * (the process's file limit is raised to allow it), a per-address limit,
 * and a deadline for a request's headers (libmicrohttpd's own timeout only
 * counts silence, which a client sending one byte at a time never gives). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/internal.h"

const route_def http_routes[N_ROUTES] = {
    {"/embed", "POST", R_EMBED},       {"/v1/embeddings", "POST", R_OPENAI}, {"/tokenize", "POST", R_TOKENIZE},
    {"/embed_all", "POST", R_EMBED_ALL}, {"/similarity", "POST", R_SIMILARITY}, {"/rerank", "POST", R_RERANK},
    {"/v1/rerank", "POST", R_RERANK_V1}, {"/health", "GET", R_HEALTH},
    {"/info", "GET", R_INFO},          {"/metrics", "GET", R_METRICS},       {"/v1/models", "GET", R_MODELS},
    {"/", "POST", R_ROOT},             {NULL, NULL, R_NONE},
};
const int http_status_codes[N_CODES] = {200, 400, 401, 404, 405, 413, 422, 429, 500, 503};

#define IO_THREADS 2
#define BLOCK 32   /* heap overhead bound of one block */

/* ---- connections and the header deadline ---- */

typedef struct conn_track {
    int fd;
    int waiting;                /* for a request's headers, since `since` */
    int first;                  /* ... its first request's (else a keep-alive one's) */
    int closed;                 /* shut down by the deadline */
    int status;                 /* the status of the answer queued last (the access log) */
    work *w;                    /* the request parked on it, until it is answered (its connection's reference) */
    double since;
    struct conn_track *prev, *next;
} conn_track;

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->conns_opened, 1);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_track *t = ci ? base_calloc(1, sizeof *t) : NULL;
        if (!t) return;   /* untracked: only the inactivity timeout applies */
        *t = (conn_track){.fd = ci->connect_fd, .waiting = 1, .first = 1, .since = time_now()};
        pthread_mutex_lock(&s->c_mu);
        t->next = s->tracked;
        if (s->tracked) s->tracked->prev = t;
        s->tracked = t;
        pthread_mutex_unlock(&s->c_mu);
        *socket_context = t;
    } else if (*socket_context) { /* closed: before libmicrohttpd closes the socket */
        conn_track *t = *socket_context;
        pthread_mutex_lock(&s->c_mu);
        if (t->prev) t->prev->next = t->next;
        else s->tracked = t->next;
        if (t->next) t->next->prev = t->prev;
        pthread_mutex_unlock(&s->c_mu);
        base_free(t);
        *socket_context = NULL;
    }
}

static conn_track *track_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void set_waiting(http_server *s, struct MHD_Connection *c, int waiting) {
    conn_track *t = track_of(c);
    if (!t) return;
    pthread_mutex_lock(&s->c_mu);
    t->waiting = waiting;
    if (waiting) {
        t->first = 0;
        t->since = time_now();
    }
    pthread_mutex_unlock(&s->c_mu);
}

void http_note_status(struct MHD_Connection *c, int status) {
    conn_track *t = track_of(c);
    if (t) t->status = status;   /* the connection's own I/O thread: no lock */
}

/* The access log: one line per request, at info (/health and /metrics,
 * which probes call all the time, at debug). */
static void access_log(struct MHD_Connection *c, const conn_ctx *x) {
    const int quiet = x->route == R_HEALTH || x->route == R_METRICS;
    const conn_track *t = track_of(c);
    const char *path = "(no route)";
    for (size_t i = 0; i < N_ROUTES && http_routes[i].path; i++)
        if (http_routes[i].r == x->route) path = http_routes[i].path;
    char client[64] = "?";
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, client, sizeof client);
    const double ms = (time_now() - x->t0) * 1e3;
    if (quiet)
        log_debug("%s %s %d %.1f ms client %s", x->method, path, t ? t->status : 0, ms, client);
    else
        log_info("%s %s %d: %zu chunks, %zu tokens, %.1f ms, client %s", x->method, path, t ? t->status : 0, x->chunks,
                 x->tokens, ms, client);
}

/* The work parked on connection c is answered or dropped: the reaper must
 * not touch it any more. */
static void untrack_work(http_server *s, struct MHD_Connection *c) {
    conn_track *t = track_of(c);
    if (!t) return;
    pthread_mutex_lock(&s->c_mu);
    t->w = NULL;
    pthread_mutex_unlock(&s->c_mu);
}

/* 1 when the client of a parked connection has closed it: libmicrohttpd
 * does not read a suspended connection, so nothing else would notice. A
 * client that only shut its sending side down looks the same; HTTP/1.1
 * clients do not do that while waiting for an answer. */
static int peer_left(int fd) {
    char c;
    const ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Parked requests whose clients left (c_mu held): marked, held, and put in
 * gone[] to be cancelled once c_mu is let go. Returns how many. */
static int find_abandoned(http_server *s, work **gone, int max) {
    int n = 0;
    for (conn_track *t = s->tracked; t && n < max; t = t->next) {
        if (!t->w || atomic_load(&t->w->abandoned) || !peer_left(t->fd)) continue;
        atomic_store(&t->w->abandoned, 1);
        atomic_fetch_add(&t->w->refs, 1);
        gone[n++] = t->w;
    }
    return n;
}

/* Once a second: a connection past its deadline for headers is shut down
 * (libmicrohttpd then sees the socket fail and closes it on its thread),
 * and a parked request whose client left is cancelled. */
static void *reaper(void *arg) {
    http_server *s = arg;
    pthread_mutex_lock(&s->c_mu);
    while (!s->c_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&s->c_cv, &s->c_mu, &ts);
        const double now = time_now();
        for (conn_track *t = s->tracked; t; t = t->next) {
            const double limit = t->first ? s->o.header_timeout_s : s->o.idle_timeout_s;
            if (!t->waiting || t->closed || now - t->since <= limit) continue;
            t->closed = 1;
            shutdown(t->fd, SHUT_RDWR);
            atomic_fetch_add(&s->conns_deadline, 1);
            log_debug("closed a connection that sent no complete request headers in %.0f s", limit);
        }
        work *gone[64];
        const int n_gone = find_abandoned(s, gone, 64);
        if (n_gone) {
            pthread_mutex_unlock(&s->c_mu);
            for (int i = 0; i < n_gone; i++) {
                http_work_abandon(gone[i]);
                http_work_release(gone[i]);
            }
            pthread_mutex_lock(&s->c_mu);
        }
    }
    pthread_mutex_unlock(&s->c_mu);
    return NULL;
}

/* ---- the request threads ---- */

static void *request_thread(void *arg) {
    http_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->q_mu);
        while (!s->q_head && !s->q_stop) pthread_cond_wait(&s->q_cv, &s->q_mu);
        work *w = s->q_head;
        if (w) {
            s->q_head = w->next;
            if (!s->q_head) s->q_tail = NULL;
        }
        pthread_mutex_unlock(&s->q_mu);
        if (!w) return NULL;
        http_work_run(w);
    }
}

static void enqueue(http_server *s, work *w) {
    pthread_mutex_lock(&s->q_mu);
    if (s->q_tail) s->q_tail->next = w;
    else s->q_head = w;
    s->q_tail = w;
    pthread_cond_signal(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
}

/* ---- libmicrohttpd callbacks ---- */

static enum MHD_Result count_content_length(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind, (void)value;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) ++*(int *)cls;
    return MHD_YES;
}

/* 1 when the request carries one of the keys (or none are set), or goes
 * to a route that needs none. Keys are never logged. */
static int authorized(http_server *s, struct MHD_Connection *c, enum route r) {
    if (r == R_HEALTH || (r == R_METRICS && !s->o.metrics_auth)) return 1;
    pthread_mutex_lock(&s->k_mu);
    int ok = s->keys.n == 0;
    if (!ok) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (h && strncasecmp(h, "Bearer ", 7) == 0) {
            h += 7;
            while (*h == ' ') h++;
            ok = keys_match(&s->keys, h, strlen(h));
        }
    }
    pthread_mutex_unlock(&s->k_mu);
    if (!ok) atomic_fetch_add(&s->auth_failures, 1);
    return ok;
}

void http_server_set_keys(http_server *s, keyset *k) {
    pthread_mutex_lock(&s->k_mu);
    keys_free(&s->keys);
    s->keys = *k;
    *k = (keyset){0};
    pthread_mutex_unlock(&s->k_mu);
}

/* The first call of a request: its headers are in. */
static enum MHD_Result on_headers(http_server *s, struct MHD_Connection *c, conn_ctx *x, const char *url,
                                  const char *method) {
    const char *allowed = NULL;
    for (size_t i = 0; i < N_ROUTES && http_routes[i].path; i++)
        if (strcmp(url, http_routes[i].path) == 0) {
            const int get = strcmp(http_routes[i].method, "GET") == 0;
            /* HEAD is GET without the body (MHD leaves it out) */
            if (strcmp(method, http_routes[i].method) == 0 || (get && strcmp(method, "HEAD") == 0))
                x->route = http_routes[i].r;
            else allowed = get ? "GET, HEAD" : http_routes[i].method;
        }
    char msg[400];
    static const char *const challenge[] = {"WWW-Authenticate", "Bearer realm=\"cembed\"", NULL};
    if (!authorized(s, c, x->route))
        return http_send_error(s, c, x->route, 401, "missing or unknown API key: send \"Authorization: Bearer KEY\" "
                                                    "with one of the server's keys", 0, challenge);
    if (x->route == R_NONE) {
        if (allowed) {
            snprintf(msg, sizeof msg, "method %.20s is not allowed on %.200s (use %s)", method, url, allowed);
            const char *const allow[] = {"Allow", allowed, NULL};
            return http_send_error(s, c, R_NONE, 405, msg, 0, allow);
        }
        snprintf(msg, sizeof msg, "no route %.200s (routes: POST /embed, /v1/embeddings, /tokenize, /embed_all, "
                                  "/similarity, /rerank, /v1/rerank; GET /health, /info, /metrics, /v1/models)", url);
        return http_send_error(s, c, R_NONE, 404, msg, 0, NULL);
    }
    if (x->route == R_HEALTH || x->route == R_INFO || x->route == R_METRICS || x->route == R_MODELS)
        return http_status_route(s, c, x->route);
    static const char *const close_it[] = {"Connection", "close", NULL};
    if (atomic_load(&s->draining))
        return http_send_error(s, c, x->route, 503, "the server is shutting down; retry (on another instance)", 5,
                               close_it);
    int n_cl = 0;
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_content_length, &n_cl);
    if (n_cl > 1)
        return http_send_error(s, c, x->route, 400, "more than one Content-Length header: a request has one length", 0,
                               NULL);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->o.max_body_bytes) {
        snprintf(msg, sizeof msg, "body of %.30s bytes is over the limit of %zu (max_body_bytes)", cl, s->o.max_body_bytes);
        return http_send_error(s, c, x->route, 413, msg, 0, NULL);
    }
    if (cl) { /* the body's memory is reserved, and allocated once, before it is read */
        const uint64_t n = strtoull(cl, NULL, 10) + 1;
        pipe_job probe = {.e = &s->pes[0]};   /* the pipeline's own reservation rule, before its job exists */
        if (pipe_hold(&probe, &x->held, n + BLOCK, "for its body")) return http_send_refusal(s, c, x->route, &probe);
        if (!(x->body.ptr = base_malloc(n))) return http_send_error(s, c, x->route, 503, "out of memory; retry later", 1, NULL);
        x->body.cap = n;
    }
    return MHD_YES;
}

/* Body bytes: kept while they fit the limit and the reservation (grown as
 * needed without a Content-Length). */
static void on_body(http_server *s, conn_ctx *x, const char *data, size_t size) {
    if (x->too_large || x->no_memory) return;
    gov *g = s->o.sched.gov;
    if (x->body.len + size > s->o.max_body_bytes) {
        x->too_large = 1;
    } else if (x->body.cap - x->body.len < size) { /* no Content-Length, or a body longer than it said */
        size_t cap = CE_MAX(CE_MAX(2 * x->body.cap, x->body.len + size), (size_t)PIPE_OUT_FLUSH);
        cap = CE_MIN(cap, s->o.max_body_bytes + 1);
        const uint64_t more = cap + BLOCK > x->held ? cap + BLOCK - x->held : 0;
        pipe_job probe = {.e = &s->pes[0]};
        char *p = NULL;
        /* a failed realloc leaves the bytes in x->held, given back below with the rest */
        if (pipe_hold(&probe, &x->held, more, "for its body") == 0 && (p = base_realloc(x->body.ptr, cap))) {
            x->body.ptr = p;
            x->body.cap = cap;
        } else {
            x->no_memory = 1;
        }
    }
    if (x->too_large || x->no_memory) {
        buf_free(&x->body);
        if (g && x->held) gov_unreserve(g, x->held);
        x->held = 0;
        return;
    }
    memcpy(x->body.ptr + x->body.len, data, size);
    x->body.len += size;
}

static const char *const close_conn[] = {"Connection", "close", NULL};

/* A complete body: its work goes to a request thread and the connection is
 * parked (suspended) until the work can be answered. */
static enum MHD_Result park(http_server *s, struct MHD_Connection *c, conn_ctx *x) {
    work *w = base_calloc(1, sizeof *w);
    if (!w) return http_send_error(s, c, x->route, 503, "out of memory; retry later", 1, NULL);
    w->s = s;
    w->c = c;
    w->route = x->route;
    w->t0 = x->t0;
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    w->accept_ndjson = accept && strstr(accept, "application/x-ndjson");
    w->body = x->body.ptr;   /* the body and its reservation go to the work */
    w->body_len = x->body.len;
    w->body_held = x->held;
    w->j.e = &s->pes[0];
    x->body = (buf){0};
    x->held = 0;
    atomic_init(&w->refs, 1);
    pthread_mutex_init(&w->mu, NULL);
    x->w = w;
    conn_track *t = track_of(c);
    if (t) {
        pthread_mutex_lock(&s->c_mu);
        t->w = w;
        pthread_mutex_unlock(&s->c_mu);
    }
    atomic_fetch_add(&s->parked, 1);
    MHD_suspend_connection(c);
    enqueue(s, w);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **con_cls) {
    (void)version;
    http_server *s = cls;
    conn_ctx *x = *con_cls;
    if (!x) {
        set_waiting(s, c, 0);
        if (!(x = base_calloc(1, sizeof *x))) return http_send_no_memory(s, c, R_NONE);
        *con_cls = x;
        x->t0 = time_now();
        snprintf(x->method, sizeof x->method, "%s", method);
        atomic_fetch_add(&s->in_flight, 1);
        return on_headers(s, c, x, url, method);
    }
    if (*size) {
        on_body(s, x, data, *size);
        *size = 0;
        return MHD_YES;
    }
    if (x->w) { /* resumed: the request thread or the scheduler is done with it */
        CE_ASSERT(atomic_load(&x->w->ready));
        work *w = x->w;
        x->w = NULL;
        untrack_work(s, c);
        x->chunks = w->j.req.n_items;
        x->tokens = w->j.tokens;
        return http_answer(s, c, w);
    }
    char msg[200];
    if (x->too_large) {
        snprintf(msg, sizeof msg, "body is over the limit of %zu bytes (max_body_bytes)", s->o.max_body_bytes);
        return http_send_error(s, c, x->route, 413, msg, 0, NULL);
    }
    if (x->no_memory) {
        pipe_job refusal = {.refusal = PIPE_NO_MEMORY, .retry_after = 1, .shed = 1};
        snprintf(refusal.msg, sizeof refusal.msg, "memory is busy with other requests (for its body); retry later");
        return http_send_refusal(s, c, x->route, &refusal);
    }
    if (atomic_load(&s->draining))
        return http_send_error(s, c, x->route, 503, "the server is shutting down", 1, close_conn);
    return park(s, c, x);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)toe;
    http_server *s = cls;
    conn_ctx *x = *con_cls;
    if (!x) return;
    atomic_fetch_add(&s->latency_us_sum, (unsigned long long)((time_now() - x->t0) * 1e6));
    atomic_fetch_add(&s->latency_count, 1);
    atomic_fetch_sub(&s->in_flight, 1);
    access_log(c, x);
    if (x->w) { /* never answered (the daemon is stopping) */
        untrack_work(s, c);
        http_work_release(x->w);
    }
    buf_free(&x->body);
    gov *g = s->o.sched.gov;
    if (g && x->held) gov_unreserve(g, x->held);
    base_free(x);
    *con_cls = NULL;
    set_waiting(s, c, 1);   /* a keep-alive connection now waits for its next request */
}

/* ---- start and stop ---- */

int http_listen(const char *host, int port, int *fd_out) {
    *fd_out = -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return base_err(CEMBED_EINVAL, "host %s: not an IPv4 address", host);
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return base_err(CEMBED_EIO, "cannot listen on %s:%d: %s", host, port, strerror(errno));
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 1024) != 0) {
        const int e = errno;
        close(fd);
        if (e == EADDRINUSE)
            return base_err(CEMBED_EIO, "cannot listen on %s:%d: the port is in use (another cembed?); choose another "
                            "with --port P, EMBEDDING_PORT=P or `make run PORT=P`", host, port);
        return base_err(CEMBED_EIO, "cannot listen on %s:%d: %s", host, port, strerror(e));
    }
    *fd_out = fd;
    return 0;
}

/* The connection limit the file limit allows (raised to its hard maximum
 * first): every connection is a descriptor, and the cache, the model and
 * the listener need some. */
static unsigned connection_limit(int wanted) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return (unsigned)wanted;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    const rlim_t room = rl.rlim_cur > 128 ? rl.rlim_cur - 64 : rl.rlim_cur / 2;
    if ((rlim_t)wanted > room) {
        log_warn("EMBEDDING_MAX_CONNECTIONS=%d is over what the open-file limit (%llu) allows: %llu", wanted,
                 (unsigned long long)rl.rlim_cur, (unsigned long long)room);
        return (unsigned)room;
    }
    return (unsigned)wanted;
}

static void stop_threads(http_server *s) {
    pthread_mutex_lock(&s->q_mu);
    s->q_stop = 1;
    pthread_cond_broadcast(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
    for (int i = 0; i < s->n_threads; i++) pthread_join(s->threads[i], NULL);
    base_free(s->threads);
    s->threads = NULL;
    s->n_threads = 0;
    pthread_mutex_lock(&s->c_mu);
    s->c_stop = 1;
    pthread_cond_broadcast(&s->c_cv);
    pthread_mutex_unlock(&s->c_mu);
    if (s->reaper) pthread_join(s->reaper, NULL);
    s->reaper = 0;
}

static void server_free(http_server *s) {
    stop_threads(s);
    sched_free(s->s);
    for (int i = 0; i < s->n_models; i++) pipe_env_destroy(&s->pes[i]);
    base_free(s->pes);
    base_free(s->model_ids);
    pthread_mutex_destroy(&s->q_mu);
    pthread_cond_destroy(&s->q_cv);
    pthread_mutex_destroy(&s->c_mu);
    pthread_cond_destroy(&s->c_cv);
    pthread_mutex_destroy(&s->k_mu);
    keys_free(&s->keys);
    base_free(s);
}

/* One pipeline environment per model (model i of models[0..n)), one
 * scheduler and one budget for all. Fails as sched_new_multi, or ENOMEM. */
static int start_models(http_server *s, cembed_model *const *models, int n) {
    const http_opts *o = &s->o;
    s->pes = base_calloc((size_t)n, sizeof *s->pes);
    s->model_ids = base_calloc((size_t)n, sizeof *s->model_ids);
    if (!s->pes || !s->model_ids) return base_err(CEMBED_ENOMEM, "out of memory");
    const int rc = sched_new_multi(models, n, &o->sched, &s->s);
    if (rc) {
        s->s = NULL;
        return rc;
    }
    const req_limits lim = {.max_items = o->max_chunks, .max_text_bytes = o->max_body_bytes, .max_depth = o->max_depth};
    for (int i = 0; i < n; i++) {
        pipe_env_init(&s->pes[i], models[i], s->s, o->sched.gov, &lim);
        s->pes[i].cache = o->cache;
        s->pes[i].writer = o->n_models > 1 ? o->cache_writers[i] : o->cache_writer;
        s->pes[i].scope = o->n_models > 1 ? o->cache_scopes[i] : o->cache_scope;
        s->model_ids[i] = o->n_models > 1 && o->model_ids ? o->model_ids[i] : NULL;
        s->n_models = i + 1;
    }
    return 0;
}

/* The request threads (tokenizing is CPU work: as many as the engine's
 * threads) and the connection reaper. Fails with ENOMEM. */
static int start_threads(http_server *s) {
    s->n_threads = CE_MAX(2, s->info.threads);
    if (!(s->threads = base_calloc((size_t)s->n_threads, sizeof *s->threads))) {
        s->n_threads = 0;
        return base_err(CEMBED_ENOMEM, "out of memory");
    }
    for (int i = 0; i < s->n_threads; i++)
        if (pthread_create(&s->threads[i], NULL, request_thread, s) != 0) {
            s->n_threads = i;
            return base_err(CEMBED_ENOMEM, "cannot start the request threads");
        }
    if (pthread_create(&s->reaper, NULL, reaper, s) != 0) {
        s->reaper = 0;
        return base_err(CEMBED_ENOMEM, "cannot start the connection deadline thread");
    }
    return 0;
}

/* libmicrohttpd on the socket bound beforehand (http_listen), else on addr. Fails with EIO. */
static int start_daemon(http_server *s, const struct sockaddr_in *addr) {
    const http_opts *o = &s->o;
    struct MHD_OptionItem where[] = {
        o->listen_fd > 0 ? (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, o->listen_fd, NULL}
                         : (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)addr},
        {MHD_OPTION_END, 0, NULL}};
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                                MHD_USE_ERROR_LOG,
                            (uint16_t)o->port, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, where,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)IO_THREADS,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)o->max_connections_per_ip,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->idle_timeout_s,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!s->d) return base_err(CEMBED_EIO, "cannot listen on %s:%d (in use, or not allowed)", o->host, o->port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    return 0;
}

int http_server_start(cembed_model *m, const http_opts *o, http_server **out) {
    *out = NULL;
    http_server *s = base_calloc(1, sizeof *s);
    if (!s) return base_err(CEMBED_ENOMEM, "out of memory");
    s->m = m;
    s->o = *o;
    if (s->o.header_timeout_s <= 0) s->o.header_timeout_s = 10;
    cembed_model_get_info(m, &s->info);
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    pthread_mutex_init(&s->c_mu, NULL);
    pthread_cond_init(&s->c_cv, NULL);
    pthread_mutex_init(&s->k_mu, NULL);
    int rc = 0;
    for (size_t i = 0; o->keys && i < o->keys->n && !rc; i++)
        rc = keys_add(&s->keys, o->keys->keys[i], strlen(o->keys->keys[i]), 0);
    cembed_model *const one[1] = {m};
    if (!rc) rc = start_models(s, o->n_models > 1 ? o->models : one, o->n_models > 1 ? o->n_models : 1);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (!rc && inet_pton(AF_INET, o->host, &addr.sin_addr) != 1)
        rc = base_err(CEMBED_EINVAL, "host %s: not an IPv4 address", o->host);
    if (!rc) rc = start_threads(s);
    s->o.max_connections = (int)connection_limit(o->max_connections);
    if (!rc) rc = start_daemon(s, &addr);
    if (rc) {
        server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int http_server_port(const http_server *s) { return s->port; }

void http_server_stop(http_server *s) {
    if (!s) return;
    /* new requests get 503 + Retry-After (and /health "draining") while the
     * ones in flight finish; then the listener closes, so later connections
     * are refused at once instead of waiting in the backlog */
    atomic_store(&s->draining, 1);
    const int limit = s->o.drain_timeout_s > 0 ? s->o.drain_timeout_s : 30;
    for (int i = 0; i < limit * 10 && atomic_load(&s->in_flight) > 0; i++) usleep(100000);
    if (atomic_load(&s->in_flight) > 0) {
        const size_t dropped = sched_cancel_all(s->s);
        log_warn("the drain time (%d s, EMBEDDING_DRAIN_TIMEOUT) is over: %d requests still in flight; "
                 "cancelled their %zu queued sequences (they are answered 503)", limit, atomic_load(&s->in_flight),
                 dropped);
        /* their 503s are written by the I/O threads: a few seconds for those to go out before the
         * daemon stops (stopping closes every connection, an answer in hand included) */
        for (int i = 0; i < 50 && atomic_load(&s->in_flight) > 0; i++) usleep(100000);
    }
    MHD_socket listen = MHD_quiesce_daemon(s->d);
    if (listen != MHD_INVALID_SOCKET) close(listen);
    /* a parked connection waits for the scheduler, which always finishes;
     * libmicrohttpd must not be stopped with one parked */
    while (atomic_load(&s->parked) > 0) usleep(10000);
    MHD_stop_daemon(s->d);
    server_free(s);
}
