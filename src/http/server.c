/* The HTTP service; see http.h. Request flow on a connection's thread:
 * buffer the body (refusing past max_body_bytes, early when Content-Length
 * says so) -> request_parse -> tokenize -> sched_submit -> sched_wait ->
 * write the JSON answer. A streamed /embed answers NDJSON lines from a
 * content-reader callback that blocks (this connection's thread only) until
 * the scheduler delivers the next vector. */
#include <arpa/inet.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http/http.h"
#include "json/answer.h"
#include "json/json.h"
#include "json/request.h"


enum route { R_NONE, R_EMBED, R_OPENAI, R_TOKENIZE, R_HEALTH, R_INFO, R_METRICS };
static const struct {
    const char *path, *method;
    enum route r;
} routes[] = {
    {"/embed", "POST", R_EMBED},     {"/v1/embeddings", "POST", R_OPENAI}, {"/tokenize", "POST", R_TOKENIZE},
    {"/health", "GET", R_HEALTH},    {"/info", "GET", R_INFO},             {"/metrics", "GET", R_METRICS},
};
#define N_ROUTES (sizeof routes / sizeof *routes)
static const int status_codes[] = {200, 400, 404, 405, 413, 422, 429, 500, 503};
#define N_CODES (sizeof status_codes / sizeof *status_codes)

struct http_server {
    struct MHD_Daemon *d;
    cembed_model *m;
    cembed_model_info info;
    sched *s;
    http_opts o;
    int port;
    atomic_int draining;
    atomic_int in_flight;
    atomic_ullong requests[N_ROUTES][N_CODES];
    atomic_ullong latency_us_sum, latency_count, chunks, truncated;
    atomic_ullong shed_memory, shed_queue, cache_hits, cache_misses;
    pthread_mutex_t cache_mu;   /* the lookup handle is used by one thread at a time */
    atomic_llong last_shed;     /* time_now() seconds of the last memory refusal */
};

typedef struct conn_ctx {
    enum route route;
    buf body;
    uint64_t held;              /* bytes of the body reserved from the governor */
    int too_large, no_memory;
    double t0;
    int counted;
} conn_ctx;

/* ---- responses ---- */

static void count(http_server *s, enum route r, int status) {
    for (size_t i = 0; i < N_ROUTES; i++)
        if (routes[i].r == r)
            for (size_t k = 0; k < N_CODES; k++)
                if (status_codes[k] == status) atomic_fetch_add(&s->requests[i][k], 1);
}

/* Extra headers of an answer: Allow on 405, Connection: close while draining. */
typedef struct extra_headers {
    const char *allow;
    int close;
} extra_headers;

static enum MHD_Result send_buf_x(struct MHD_Connection *c, int status, buf *b, const char *type, int retry_after,
                                  const extra_headers *x) {
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(b->len, b->ptr, base_free);
    if (!resp) {
        buf_free(b);
        return MHD_NO;
    }
    *b = (buf){0};   /* owned by the response now */
    MHD_add_response_header(resp, "Content-Type", type);
    if (retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    if (x && x->allow) MHD_add_response_header(resp, "Allow", x->allow);
    if (x && x->close) MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_buf(struct MHD_Connection *c, int status, buf *b, const char *type, int retry_after) {
    return send_buf_x(c, status, b, type, retry_after, NULL);
}

static const char *error_type(int status) {
    switch (status) {
    case 400: return "invalid_request";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 413: return "payload_too_large";
    case 422: return "unprocessable_entity";
    case 429: return "queue_full";
    case 503: return "unavailable";
    default: return "internal_error";
    }
}

static enum MHD_Result send_error_x(http_server *s, struct MHD_Connection *c, enum route r, int status,
                                    const char *msg, int retry_after_s, const extra_headers *x) {
    buf b = {0};
    if (buf_append(&b, "{\"error\":{\"message\":", 20) || json_write_string(&b, msg, strlen(msg)) ||
        buf_printf(&b, ",\"type\":\"%s\",\"code\":%d}}\n", error_type(status), status)) {
        buf_free(&b);
        return MHD_NO;
    }
    count(s, r, status);
    log_debug("%d %s", status, msg);
    return send_buf_x(c, status, &b, "application/json", retry_after_s, x);
}

static enum MHD_Result send_error_retry(http_server *s, struct MHD_Connection *c, enum route r, int status,
                                        const char *msg, int retry_after_s) {
    return send_error_x(s, c, r, status, msg, retry_after_s, NULL);
}

static enum MHD_Result send_error(http_server *s, struct MHD_Connection *c, enum route r, int status,
                                  const char *msg) {
    return send_error_retry(s, c, r, status, msg, status == 429 || status == 503 ? 1 : 0);
}

/* ---- GET routes ---- */

static enum MHD_Result get_route(http_server *s, struct MHD_Connection *c, enum route r) {
    buf b = {0};
    int status = 200, rc = 0;
    const cembed_model_info *i = &s->info;
    if (r == R_HEALTH) {
        /* shedding: a request was refused for memory in the last 5 seconds */
        const int shedding = atomic_load(&s->last_shed) && time_now() - (double)atomic_load(&s->last_shed) < 5;
        status = atomic_load(&s->draining) || shedding ? 503 : 200;
        rc = buf_printf(&b, "{\"status\":\"%s\"}\n",
                        atomic_load(&s->draining) ? "draining" : shedding ? "shedding" : "ok");
    } else if (r == R_INFO) {
        rc = buf_append(&b, "{\"model\":", 9) || json_write_string(&b, i->name, strlen(i->name)) ||
             buf_printf(&b,
                        ",\"dimensions\":%d,\"max_tokens\":%d,\"pooling\":\"%s\",\"normalize\":%s,\"threads\":%d,"
                        "\"max_batch_size\":%d,\"max_batch_tokens\":%d,\"max_body_bytes\":%zu,\"max_chunks\":%zu,"
                        "\"max_json_depth\":%d,\"max_connections\":%d,\"precision\":\"%s\","
                        "\"version\":\"" CEMBED_VERSION "\",",
                        i->hidden, i->max_seq_len, i->pooling, i->normalize ? "true" : "false", i->threads,
                        s->o.sched.max_batch, s->o.sched.max_batch_tokens, s->o.max_body_bytes, s->o.max_chunks,
                        s->o.max_depth, s->o.max_connections, i->precision) ||
             cembed_kernels_json(s->m, &b);
        gov *g = s->o.sched.gov;
        if (!rc && g) {
            const gov_limit *l = gov_get_limit(g);
            gov_stats gs;
            gov_get_stats(g, &gs);
            rc = buf_printf(&b, ",\"memory_limit_bytes\":%llu,\"memory_budget_bytes\":%llu,\"current_batch_size\":%d,"
                                "\"memory_fixed_bytes\":%llu,\"memory_workspace_bytes\":%llu,\"batch_tokens\":%d,"
                                "\"memory_pool_bytes\":%llu,\"memory_limit_source\":",
                            (unsigned long long)l->bytes, (unsigned long long)gov_budget(g), gov_batch_size(g),
                            (unsigned long long)gs.fixed, (unsigned long long)gs.workspace, gs.batch_tokens,
                            (unsigned long long)gs.pool) ||
                 json_write_string(&b, l->source, strlen(l->source));
        }
        if (!rc) rc = buf_append(&b, "}\n", 2);
    } else {
        sched_stats st;
        sched_get_stats(s->s, &st);
        rc = buf_printf(&b,
                        "# HELP cembed_requests_total HTTP requests by route and status.\n"
                        "# TYPE cembed_requests_total counter\n");
        for (size_t k = 0; k < N_ROUTES && !rc; k++)
            for (size_t q = 0; q < N_CODES && !rc; q++) {
                unsigned long long v = atomic_load(&s->requests[k][q]);
                if (v) rc = buf_printf(&b, "cembed_requests_total{route=\"%s\",code=\"%d\"} %llu\n", routes[k].path,
                                       status_codes[q], v);
            }
        if (!rc)
            rc = buf_printf(&b,
                            "# TYPE cembed_request_duration_seconds summary\n"
                            "cembed_request_duration_seconds_sum %.6f\ncembed_request_duration_seconds_count %llu\n"
                            "# TYPE cembed_batches_total counter\ncembed_batches_total %llu\n"
                            "# TYPE cembed_chunks_total counter\ncembed_chunks_total %llu\n"
                            "# TYPE cembed_truncated_chunks_total counter\ncembed_truncated_chunks_total %llu\n"
                            "# TYPE cembed_tokens_total counter\ncembed_tokens_total %llu\n"
                            "# TYPE cembed_queue_depth gauge\ncembed_queue_depth %zu\n"
                            "# TYPE cembed_batch_size gauge\ncembed_batch_size %d\n"
                            "# TYPE cembed_max_batch_size gauge\ncembed_max_batch_size %d\n"
                            "# TYPE cembed_in_flight_requests gauge\ncembed_in_flight_requests %d\n"
                            "# TYPE cembed_rss_bytes gauge\ncembed_rss_bytes %llu\n"
                            "# TYPE cembed_heap_bytes gauge\ncembed_heap_bytes %zu\n"
                            "# TYPE cembed_cache_hits_total counter\ncembed_cache_hits_total %llu\n"
                            "# TYPE cembed_cache_misses_total counter\ncembed_cache_misses_total %llu\n",
                            (double)atomic_load(&s->latency_us_sum) / 1e6, atomic_load(&s->latency_count),
                            (unsigned long long)st.batches, atomic_load(&s->chunks), atomic_load(&s->truncated),
                            (unsigned long long)st.tokens, st.queued, st.last_batch, s->o.sched.max_batch,
                            atomic_load(&s->in_flight), (unsigned long long)gov_rss(), base_alloc_live_bytes(),
                            atomic_load(&s->cache_hits), atomic_load(&s->cache_misses));
        gov *g = s->o.sched.gov;
        if (!rc && g) {
            gov_stats gs;
            gov_get_stats(g, &gs);
            rc = buf_printf(&b,
                            "# TYPE cembed_current_batch_size gauge\ncembed_current_batch_size %d\n"
                            "# TYPE cembed_memory_budget_bytes gauge\ncembed_memory_budget_bytes %llu\n"
                            "# TYPE cembed_memory_pressure_events_total counter\ncembed_memory_pressure_events_total %llu\n"
                            "# TYPE cembed_trims_total counter\ncembed_trims_total %llu\n"
                            "# TYPE cembed_psi_pressure_events_total counter\ncembed_psi_pressure_events_total %llu\n"
                            "# TYPE cembed_memory_pool_bytes gauge\ncembed_memory_pool_bytes %llu\n"
                            "# TYPE cembed_memory_reserved_bytes gauge\ncembed_memory_reserved_bytes %llu\n"
                            "# TYPE cembed_memory_reserved_peak_bytes gauge\ncembed_memory_reserved_peak_bytes %llu\n"
                            "# HELP cembed_rejected_requests_total Requests refused by admission control.\n"
                            "# TYPE cembed_rejected_requests_total counter\n"
                            "cembed_rejected_requests_total{reason=\"memory\"} %llu\n"
                            "cembed_rejected_requests_total{reason=\"queue\"} %llu\n",
                            gs.batch_size, (unsigned long long)gov_budget(g), (unsigned long long)gs.pressure_events,
                            (unsigned long long)gs.trims, (unsigned long long)gs.psi_events,
                            (unsigned long long)gs.pool, (unsigned long long)gs.reserved,
                            (unsigned long long)gs.reserved_peak, atomic_load(&s->shed_memory),
                            atomic_load(&s->shed_queue));
        }
    }
    if (rc) {
        buf_free(&b);
        return MHD_NO;
    }
    count(s, r, status);
    return send_buf(c, status, &b, r == R_METRICS ? "text/plain; version=0.0.4" : "application/json",
                    status == 503 ? 1 : 0);
}

/* ---- POST routes ----
 * A request's memory is reserved from the governor before it is allocated,
 * in stages: the body (at its headers, from Content-Length), the parse
 * (bounded from a scan of the body), then what the parsed request needs
 * until its answer is sent (texts, token ids, vectors, the writer's
 * buffer); each stage's bytes are given back as soon as they are freed.
 * A stage that does not fit now is answered 503 + Retry-After, one that
 * could never fit 413. The answer is produced in pieces by a content
 * reader, so no request holds its whole JSON answer in memory. */

#define OUT_FLUSH (64 * 1024)   /* the writer hands MHD its buffer once it holds this much */
#define BLOCK 32                /* heap overhead bound of one block */

typedef struct work {
    http_server *s;
    enum route route;
    request req;
    int32_t **ids;
    size_t *n_ids;
    int *truncated;
    float *vec;
    size_t tokens;
    sched_job job;
    uint8_t *cached;        /* per item: the vector came from the cache */
    uint8_t (*keys)[CACHE_KEY_BYTES];
    size_t *slot;           /* the items sent to the scheduler */
    const int32_t **miss_ids;
    size_t *miss_n;
    size_t n_cached;
    uint64_t held;          /* bytes reserved from the governor */
    /* the answer */
    int stream;             /* NDJSON lines in completion order */
    int sync;               /* mu/cv initialized */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t *ready;          /* streamed: indices in completion order */
    size_t n_ready, n_sent; /* n_sent: items written */
    int phase;              /* 0 head, 1 items, 2 done */
    buf out;
    size_t out_pos;
} work;

static int hold(http_server *s, uint64_t *held, uint64_t bytes) {
    gov *g = s->o.sched.gov;
    if (!g || bytes == 0) return 0;
    if (gov_reserve(g, bytes)) return -1;
    *held += bytes;
    return 0;
}

static void drop(http_server *s, uint64_t *held, uint64_t bytes) {
    gov *g = s->o.sched.gov;
    if (!g) return;
    bytes = CE_MIN(bytes, *held);
    gov_unreserve(g, bytes);
    *held -= bytes;
}

/* Seconds a refused client should wait: the queue's tokens at the measured
 * speed, at least 1, at most 60. */
static int retry_after(http_server *s) {
    sched_stats st;
    sched_get_stats(s->s, &st);
    double rate = st.compute_s > 0.5 ? (double)st.tokens / st.compute_s : 2000.0;
    double t = (double)st.queued_tokens / rate;
    return t < 1 ? 1 : t > 60 ? 60 : (int)t + 1;
}

/* Answers a reservation that failed: 413 when the bytes could never fit the
 * pool, 503 + Retry-After when they do not fit now. */
static enum MHD_Result send_no_memory(http_server *s, struct MHD_Connection *c, enum route r, uint64_t bytes,
                                      const char *stage) {
    char msg[512];
    gov *g = s->o.sched.gov;
    if (bytes > gov_pool(g)) {
        snprintf(msg, sizeof msg,
                 "the request needs %.1f MB of memory (%s), more than the server's request pool of %.1f MB "
                 "(EMBEDDING_MAX_MEMORY_PERCENT of the memory limit, less the model and the batch workspace); "
                 "split it into smaller requests", bytes / 1048576.0, stage, gov_pool(g) / 1048576.0);
        return send_error(s, c, r, 413, msg);
    }
    snprintf(msg, sizeof msg, "memory is busy with other requests (%s %s); retry later", stage, cembed_last_error());
    atomic_fetch_add(&s->shed_memory, 1);
    atomic_store(&s->last_shed, (long long)time_now());
    const int ra = retry_after(s);
    log_info("request refused (503, retry after %d s): %s %s", ra, stage, cembed_last_error());
    return send_error_retry(s, c, r, 503, msg, ra);
}

static void work_free(work *w) {
    for (size_t i = 0; w->ids && i < w->req.n_items; i++) base_free(w->ids[i]);
    base_free(w->ids);
    base_free(w->n_ids);
    base_free(w->truncated);
    base_free(w->vec);
    base_free(w->cached);
    base_free(w->keys);
    base_free(w->slot);
    base_free(w->miss_ids);
    base_free(w->miss_n);
    base_free(w->ready);
    buf_free(&w->out);
    request_free(&w->req);
    if (w->sync) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
    }
    const int large = w->held >= (1u << 20);
    drop(w->s, &w->held, w->held);
    base_free(w);
    if (large) malloc_trim(0);   /* after a large request, give its freed heap back (DESIGN: trim) */
}

/* Bytes the parsed request needs from now until its answer is sent, beyond
 * request_held_bytes: per-item arrays, token ids (the tokenizer keeps
 * exactly the ids of a text, at most the limit; its scratch for the longest
 * text, *tok_transient, is freed after tokenizing), vectors, the streamed
 * order and the writer's buffer (one flush plus one item). */
static uint64_t work_bytes(const work *w, size_t *tok_transient) {
    const cembed_model_info *i = &w->s->info;
    const uint64_t n = w->req.n_items, H = (uint64_t)i->hidden;
    uint64_t longest = 0, item = 0, ids = 0;
    for (size_t k = 0; k < n; k++) {
        const req_item *it = &w->req.items[k];
        longest = CE_MAX(longest, (uint64_t)it->text_len);
        /* a token takes at least one byte of text; [CLS] and [SEP] are added */
        const uint64_t t = it->text ? it->text_len + 2 : it->n_ids + 2;
        ids += CE_MIN(t, (uint64_t)i->max_seq_len) * sizeof(int32_t) + BLOCK;
        uint64_t line = (it->id_json ? strlen(it->id_json) : 0) + (it->metadata_json ? strlen(it->metadata_json) : 0);
        item = CE_MAX(item, line);
    }
    *tok_transient = (size_t)(56 * longest + 64 * 1024);   /* codepoints x3 + ids while encoding */
    const uint64_t arrays = n * (2 * sizeof(int32_t *) + 3 * sizeof(size_t) + sizeof(int) + sizeof(size_t) + 1 +
                                 CACHE_KEY_BYTES) + 9 * BLOCK;
    const uint64_t vec = n * H * sizeof(float) + BLOCK;
    const uint64_t out = 2 * (OUT_FLUSH + item + H * 18 + 512);   /* doubling growth of the writer's buffer */
    return ids + arrays + vec + out;
}

/* Tokenizes every item. Returns 0 or an HTTP status with msg filled. */
static int tokenize_all(work *w, char *msg, size_t msg_len) {
    const cembed_model_info *i = &w->s->info;
    size_t n = w->req.n_items;
    w->ids = base_calloc(n, sizeof *w->ids);
    w->n_ids = base_calloc(n, sizeof *w->n_ids);
    w->truncated = base_calloc(n, sizeof *w->truncated);
    if (!w->ids || !w->n_ids || !w->truncated) return snprintf(msg, msg_len, "out of memory"), 503;
    for (size_t k = 0; k < n; k++) {
        req_item *it = &w->req.items[k];
        size_t full;
        if (it->text) {
            if (cembed_tokenize(w->s->m, it->text, it->text_len, &w->ids[k], &w->n_ids[k], &w->truncated[k], &full))
                return snprintf(msg, msg_len, "out of memory"), 503;
        } else { /* token ids: [CLS] ids [SEP] unless already framed */
            int framed = it->n_ids >= 2 && it->ids[0] == i->cls_id && it->ids[it->n_ids - 1] == i->sep_id;
            size_t want = it->n_ids + (framed ? 0 : 2);
            full = want;
            size_t keep = CE_MIN(want, (size_t)i->max_seq_len);
            w->ids[k] = base_malloc(keep * sizeof(int32_t));
            if (!w->ids[k]) return snprintf(msg, msg_len, "out of memory"), 503;
            size_t o = 0;
            w->ids[k][o++] = i->cls_id;
            const size_t first = framed ? 1 : 0, end = it->n_ids - (framed ? 1 : 0);
            for (size_t t = first; t < end && o < keep - 1; t++) {
                if (it->ids[t] >= i->vocab_size)
                    return snprintf(msg, msg_len, "input[%zu][%zu]: token id %d is outside the vocabulary of %d", k, t,
                                    (int)it->ids[t], i->vocab_size), 400;
                w->ids[k][o++] = it->ids[t];
            }
            w->ids[k][o++] = i->sep_id;
            w->n_ids[k] = o;
            w->truncated[k] = full > keep;
        }
        if (w->truncated[k] && !w->req.truncate) {
            const char *id = it->id_json ? it->id_json : "null";
            return snprintf(msg, msg_len,
                            "chunks[%zu] (id %.200s) has %zu tokens, over the model limit of %d; send \"truncate\": "
                            "true or split it", k, id, full, i->max_seq_len), 422;
        }
        w->tokens += w->n_ids[k];
    }
    return 0;
}

/* The request's "normalize", or the model's setting when it gave none. */
static int wants_normalize(const work *w) { return w->req.normalize < 0 ? w->s->info.normalize : w->req.normalize; }

/* Counts a completed request's chunks (and truncated ones) for /metrics. */
static void account_done(const work *w) {
    size_t truncated = 0;
    for (size_t k = 0; k < w->req.n_items; k++) truncated += (size_t)w->truncated[k];
    atomic_fetch_add(&w->s->chunks, w->req.n_items);
    atomic_fetch_add(&w->s->truncated, truncated);
}

/* Normalizes (and cuts to "dimensions") vector k, once, before it is written. */
static void finish_vector(work *w, size_t k) {
    const size_t H = (size_t)w->s->info.hidden;
    float *v = w->vec + k * H;
    if (wants_normalize(w)) cembed_l2_normalize(v, H);
    if (w->req.dimensions) cembed_l2_normalize(v, (size_t)w->req.dimensions);
}

static int write_usage(work *w, buf *b) {
    const embed_usage u = {.chunks = w->req.n_items, .tokens = w->tokens, .cached = w->n_cached,
                           .batches = w->job.batches, .queue_ms = w->job.queue_ms, .compute_ms = w->job.compute_ms};
    return json_write_embed_usage(b, &u);
}

/* Head, item k and tail of each answer's JSON. */
static int write_head(work *w, buf *b) {
    const cembed_model_info *i = &w->s->info;
    if (w->stream) return 0;
    if (w->route == R_TOKENIZE || (w->route == R_EMBED && w->req.tei)) return buf_append(b, "[", 1);
    if (w->route == R_OPENAI) return buf_append(b, "{\"object\":\"list\",\"data\":[", 25);
    return json_write_embed_head(b, w->req.batch_id_json, i->name, i->hidden);
}

static int write_item(work *w, buf *b, size_t k, int first) {
    const size_t H = (size_t)w->s->info.hidden;
    const float *v = w->vec ? w->vec + k * H : NULL;
    if (w->route == R_TOKENIZE)
        return buf_printf(b, "%s{\"index\":%zu,\"ids\":", first ? "" : ",", k) ||
               json_write_ints(b, w->ids[k], w->n_ids[k]) ||
               buf_printf(b, ",\"tokens\":%zu,\"truncated\":%s}", w->n_ids[k], w->truncated[k] ? "true" : "false");
    if (w->route == R_EMBED && w->req.tei) return (!first && buf_append(b, ",", 1)) || json_write_floats(b, v, H);
    if (w->route == R_OPENAI) {
        const size_t D = w->req.dimensions ? (size_t)w->req.dimensions : H;
        return buf_printf(b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", first ? "" : ",", k) ||
               (w->req.base64 ? json_write_base64_floats(b, v, D) : json_write_floats(b, v, D)) ||
               buf_append(b, "}", 1);
    }
    const req_item *it = &w->req.items[k];
    const embed_item_out o = {.index = k, .id_json = it->id_json, .metadata_json = it->metadata_json, .vec = v,
                              .dims = H, .tokens = w->n_ids[k], .truncated = w->truncated[k],
                              .cached = w->cached && w->cached[k]};
    return json_write_embed_item(b, &o, first || w->stream ? "" : ",", w->stream ? "\n" : "");
}

static int write_tail(work *w, buf *b) {
    const cembed_model_info *i = &w->s->info;
    if (w->stream) {
        const char *bid = w->req.batch_id_json ? w->req.batch_id_json : "null";
        return buf_append(b, "{\"done\":true,\"batch_id\":", 24) || buf_append(b, bid, strlen(bid)) ||
               buf_append(b, ",", 1) || write_usage(w, b);
    }
    if (w->route == R_TOKENIZE || (w->route == R_EMBED && w->req.tei)) return buf_append(b, "]\n", 2);
    if (w->route == R_OPENAI)
        return buf_append(b, "],\"model\":", 10) || json_write_string(b, i->name, strlen(i->name)) ||
               buf_printf(b, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}\n", w->tokens, w->tokens);
    return buf_append(b, "],", 2) || write_usage(w, b);
}

/* The scheduler's callback for a streamed request (inference thread). */
static void on_vector(void *ctx, size_t index, const float *vec) {
    work *w = ctx;
    if (w->s->o.cache_writer) cache_writer_put(w->s->o.cache_writer, w->keys[index], vec);   /* raw, as computed */
    if (!w->stream) return;
    pthread_mutex_lock(&w->mu);
    w->ready[w->n_ready++] = index;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Looks every item up in the cache: hits land in w->vec (raw, like a
 * computed vector, so both are finished the same way), misses are listed in
 * w->slot for the scheduler. Token-id items are keyed on their ids. Returns
 * 0 or -1 (out of memory). */
static int cache_lookup(work *w, const int32_t ***ids, size_t **n_ids) {
    http_server *s = w->s;
    const size_t n = w->req.n_items;
    w->slot = base_malloc(n * sizeof *w->slot);
    w->cached = base_calloc(n, 1);
    w->keys = base_malloc(n * CACHE_KEY_BYTES);
    *ids = base_malloc(n * sizeof **ids);
    *n_ids = base_malloc(n * sizeof **n_ids);
    if (!w->slot || !w->cached || !w->keys || !*ids || !*n_ids) return -1;
    for (size_t k = 0; k < n; k++) {
        const req_item *it = &w->req.items[k];
        if (it->text) {
            cache_key(&s->o.cache_scope, it->text, it->text_len, w->keys[k]);
        } else { /* a marker no UTF-8 text starts with, then the ids */
            buf b = {0};
            if (buf_append(&b, "\xff\xfeids", 5) || buf_append(&b, w->ids[k], w->n_ids[k] * sizeof(int32_t))) {
                buf_free(&b);
                return -1;
            }
            cache_key(&s->o.cache_scope, b.ptr, b.len, w->keys[k]);
            buf_free(&b);
        }
    }
    pthread_mutex_lock(&s->cache_mu);
    /* committed rows and those the writer has not stored yet */
    int hits = cache_writer_lookup(s->o.cache_writer, s->o.cache, (const uint8_t(*)[CACHE_KEY_BYTES])w->keys, n,
                                   s->info.hidden, w->vec, w->cached);
    pthread_mutex_unlock(&s->cache_mu);
    if (hits < 0) { /* the cache failing is not the request failing */
        log_warn("cache lookup failed: %s", cembed_last_error());
        memset(w->cached, 0, n);
        hits = 0;
    }
    w->n_cached = (size_t)hits;
    atomic_fetch_add(&s->cache_hits, (unsigned long long)hits);
    atomic_fetch_add(&s->cache_misses, (unsigned long long)(n - (size_t)hits));
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        if (w->cached[k]) {
            if (w->stream) w->ready[w->n_ready++] = k;
            continue;
        }
        w->slot[m] = k;
        (*ids)[m] = w->ids[k];
        (*n_ids)[m++] = w->n_ids[k];
    }
    return 0;
}

/* MHD's content reader (this connection's thread): fills w->out up to
 * OUT_FLUSH, blocking on the scheduler for a streamed request's next
 * vectors, and copies it out. */
static ssize_t answer_read(void *cls, uint64_t pos, char *dst, size_t max) {
    (void)pos;
    work *w = cls;
    const size_t n = w->req.n_items;
    if (w->out_pos == w->out.len) {
        w->out.len = w->out_pos = 0;
        if (w->phase == 2) return MHD_CONTENT_READER_END_OF_STREAM;
        int rc = 0;
        if (w->phase == 0) {
            rc = write_head(w, &w->out);
            w->phase = 1;
        }
        while (!rc && w->phase == 1 && w->out.len < OUT_FLUSH) {
            if (w->n_sent == n) {
                if (w->stream) sched_wait(w->s->s, &w->job);   /* batches and timings are final */
                rc = write_tail(w, &w->out);
                w->phase = 2;
                break;
            }
            size_t k = w->n_sent;
            if (w->stream) {
                pthread_mutex_lock(&w->mu);
                if (w->n_sent == w->n_ready && w->out.len > 0) { /* send what is ready before waiting */
                    pthread_mutex_unlock(&w->mu);
                    break;
                }
                while (w->n_sent == w->n_ready) pthread_cond_wait(&w->cv, &w->mu);
                k = w->ready[w->n_sent];
                pthread_mutex_unlock(&w->mu);
            }
            if (w->vec) finish_vector(w, k);
            rc = write_item(w, &w->out, k, w->n_sent == 0);
            w->n_sent++;
        }
        if (rc) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t m = CE_MIN(max, w->out.len - w->out_pos);
    memcpy(dst, w->out.ptr + w->out_pos, m);
    w->out_pos += m;
    return (ssize_t)m;
}

static void answer_free(void *cls) {
    work *w = cls;
    if (w->job.n) sched_wait(w->s->s, &w->job);   /* a client that left early: the job still owns these buffers */
    if (w->route != R_TOKENIZE) account_done(w);
    work_free(w);
}

/* Queues the answer of w (which the response owns from now on). */
static enum MHD_Result send_answer(http_server *s, struct MHD_Connection *c, work *w) {
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, OUT_FLUSH, answer_read, w, answer_free);
    if (!resp) {
        answer_free(w);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", w->stream ? "application/x-ndjson" : "application/json");
    count(s, w->route, 200);
    enum MHD_Result ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result post_route(http_server *s, struct MHD_Connection *c, conn_ctx *x) {
    if (atomic_load(&s->draining)) return send_error_retry(s, c, x->route, 503, "the server is shutting down", 1);
    req_limits lim = {.max_items = s->o.max_chunks, .max_text_bytes = s->o.max_body_bytes, .max_depth = s->o.max_depth};
    req_kind kind = x->route == R_EMBED ? REQ_EMBED : x->route == R_OPENAI ? REQ_OPENAI : REQ_TOKENIZE;
    const char *body = x->body.ptr ? x->body.ptr : "";
    uint64_t parse_held = 0;
    const uint64_t parse_need = request_parse_bound(body, x->body.len);
    if (hold(s, &parse_held, parse_need)) return send_no_memory(s, c, x->route, parse_need + x->held, "to parse");
    work *w = base_calloc(1, sizeof *w);
    if (!w) {
        drop(s, &parse_held, parse_held);
        return send_error_retry(s, c, x->route, 503, "out of memory; retry later", 1);
    }
    w->s = s;
    w->route = x->route;
    char msg[512];
    enum MHD_Result ret;
    int rc = request_parse(kind, body, x->body.len, &lim, &w->req);
    /* the body is no longer needed; the parse's own memory is down to what the request keeps */
    buf_free(&x->body);
    drop(s, &x->held, x->held);
    if (rc) {
        drop(s, &parse_held, parse_held);
        ret = send_error(s, c, x->route, w->req.status ? w->req.status : 400, cembed_last_error());
        work_free(w);
        return ret;
    }
    if (w->req.dimensions > s->info.hidden) {
        drop(s, &parse_held, parse_held);
        snprintf(msg, sizeof msg, "\"dimensions\" is %d, the model has %d", w->req.dimensions, s->info.hidden);
        ret = send_error(s, c, x->route, 400, msg);
        work_free(w);
        return ret;
    }
    /* what the request needs until it is answered, reserved before the parse's bytes are given back */
    size_t tok_transient;
    const uint64_t need = request_held_bytes(&w->req) + work_bytes(w, &tok_transient) + tok_transient;
    if (hold(s, &w->held, need)) {
        drop(s, &parse_held, parse_held);   /* the parse's share may be enough */
        if (hold(s, &w->held, need)) {
            ret = send_no_memory(s, c, x->route, need, "for its tokens and vectors");
            work_free(w);
            return ret;
        }
    }
    drop(s, &parse_held, parse_held);
    int status = tokenize_all(w, msg, sizeof msg);
    cembed_thread_release();   /* the tokenizer's scratch for this thread */
    drop(s, &w->held, tok_transient);
    if (status) {
        ret = send_error(s, c, x->route, status, msg);
        work_free(w);
        return ret;
    }
    if (kind == REQ_TOKENIZE) return send_answer(s, c, w);
    w->vec = base_malloc(w->req.n_items * (size_t)s->info.hidden * sizeof(float));
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    w->stream = kind == REQ_EMBED && !w->req.tei && (w->req.stream || (accept && strstr(accept, "application/x-ndjson")));
    if (w->stream) {
        w->ready = base_calloc(w->req.n_items, sizeof *w->ready);
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        w->sync = 1;
    }
    if (!w->vec || (w->stream && !w->ready)) {
        ret = send_error_retry(s, c, x->route, 503, "out of memory; retry later", 1);
        work_free(w);
        return ret;
    }
    w->job = (sched_job){.ids = (const int32_t *const *)w->ids, .n_ids = w->n_ids, .n = w->req.n_items,
                         .out = w->vec, .on_vector = w->stream ? on_vector : NULL, .ctx = w};
    if (s->o.cache) {
        const int32_t **mids = NULL;
        size_t *mn = NULL;
        if (cache_lookup(w, &mids, &mn)) {
            base_free(mids);
            base_free(mn);
            ret = send_error_retry(s, c, x->route, 503, "out of memory; retry later", 1);
            work_free(w);
            return ret;
        }
        /* the misses only; their pointer arrays replace the per-item ones in the job */
        w->job = (sched_job){.ids = mids, .n_ids = mn, .n = w->req.n_items - w->n_cached, .out = w->vec,
                             .slot = w->slot, .on_vector = on_vector, .ctx = w};
        w->miss_ids = mids;
        w->miss_n = mn;
    }
    rc = sched_submit(s->s, &w->job);
    if (rc) {
        w->job.n = 0;
        if (rc == CEMBED_ELIMIT) atomic_fetch_add(&s->shed_queue, 1);
        ret = rc == CEMBED_ELIMIT ? send_error_retry(s, c, x->route, 429, cembed_last_error(), retry_after(s))
                                  : send_error_retry(s, c, x->route, 503, cembed_last_error(), 1);
        work_free(w);
        return ret;
    }
    if (!w->stream) sched_wait(s->s, &w->job);
    return send_answer(s, c, w);
}

/* ---- libmicrohttpd callbacks ---- */

static enum MHD_Result count_content_length(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind, (void)value;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) ++*(int *)cls;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **con_cls) {
    (void)version;
    http_server *s = cls;
    conn_ctx *x = *con_cls;
    if (!x) {
        x = base_calloc(1, sizeof *x);
        if (!x) return MHD_NO;
        *con_cls = x;
        x->t0 = time_now();
        atomic_fetch_add(&s->in_flight, 1);
        x->counted = 1;
        const char *allowed = NULL;
        for (size_t i = 0; i < N_ROUTES; i++)
            if (strcmp(url, routes[i].path) == 0) {
                const int get = strcmp(routes[i].method, "GET") == 0;
                /* HEAD is GET without the body (MHD leaves it out) */
                if (strcmp(method, routes[i].method) == 0 || (get && strcmp(method, "HEAD") == 0)) x->route = routes[i].r;
                else allowed = get ? "GET, HEAD" : routes[i].method;
            }
        if (x->route == R_NONE) {
            char msg[400];
            if (allowed) {
                snprintf(msg, sizeof msg, "method %.20s is not allowed on %.200s (use %s)", method, url, allowed);
                const extra_headers xh = {.allow = allowed};
                return send_error_x(s, c, R_NONE, 405, msg, 0, &xh);
            }
            snprintf(msg, sizeof msg, "no route %.200s (routes: POST /embed, POST /v1/embeddings, POST /tokenize, "
                                      "GET /health, GET /info, GET /metrics)", url);
            return send_error(s, c, R_NONE, 404, msg);
        }
        if (x->route == R_HEALTH || x->route == R_INFO || x->route == R_METRICS) return get_route(s, c, x->route);
        if (atomic_load(&s->draining)) {
            const extra_headers xh = {.close = 1};
            return send_error_x(s, c, x->route, 503, "the server is shutting down; retry (on another instance)", 5, &xh);
        }
        int n_cl = 0;
        MHD_get_connection_values(c, MHD_HEADER_KIND, count_content_length, &n_cl);
        if (n_cl > 1)
            return send_error(s, c, x->route, 400, "more than one Content-Length header: a request has one length");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body_bytes) {
            char msg[200];
            snprintf(msg, sizeof msg, "body of %s bytes is over the limit of %zu (max_body_bytes)", cl, s->o.max_body_bytes);
            return send_error(s, c, x->route, 413, msg);
        }
        if (cl) { /* the body's memory is reserved, and allocated once, before it is read */
            const uint64_t n = strtoull(cl, NULL, 10) + 1;
            if (hold(s, &x->held, n + BLOCK)) return send_no_memory(s, c, x->route, n, "for its body");
            x->body.ptr = base_malloc(n);
            if (!x->body.ptr) return send_error_retry(s, c, x->route, 503, "out of memory; retry later", 1);
            x->body.cap = n;
        }
        return MHD_YES;
    }
    if (*size) {
        if (!x->too_large && !x->no_memory) {
            if (x->body.len + *size > s->o.max_body_bytes) {
                x->too_large = 1;
            } else if (x->body.cap - x->body.len < *size) { /* no Content-Length, or a body longer than it said */
                size_t cap = CE_MAX(CE_MAX(2 * x->body.cap, x->body.len + *size), (size_t)OUT_FLUSH);
                cap = CE_MIN(cap, s->o.max_body_bytes + 1);
                const uint64_t more = cap + BLOCK > x->held ? cap + BLOCK - x->held : 0;
                char *p = NULL;
                if (hold(s, &x->held, more) == 0 && (p = base_realloc(x->body.ptr, cap))) {
                    x->body.ptr = p;
                    x->body.cap = cap;
                } else {
                    x->no_memory = 1;
                }
            }
            if (x->too_large || x->no_memory) {
                buf_free(&x->body);
                drop(s, &x->held, x->held);
            } else {
                memcpy(x->body.ptr + x->body.len, data, *size);
                x->body.len += *size;
            }
        }
        *size = 0;
        return MHD_YES;
    }
    if (x->too_large) {
        char msg[200];
        snprintf(msg, sizeof msg, "body is over the limit of %zu bytes (max_body_bytes)", s->o.max_body_bytes);
        return send_error(s, c, x->route, 413, msg);
    }
    if (x->no_memory) return send_no_memory(s, c, x->route, 0, "for its body");
    return post_route(s, c, x);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c, (void)toe;
    http_server *s = cls;
    conn_ctx *x = *con_cls;
    if (!x) return;
    if (x->counted) {
        atomic_fetch_add(&s->latency_us_sum, (unsigned long long)((time_now() - x->t0) * 1e6));
        atomic_fetch_add(&s->latency_count, 1);
        atomic_fetch_sub(&s->in_flight, 1);
    }
    buf_free(&x->body);
    drop(s, &x->held, x->held);
    base_free(x);
    *con_cls = NULL;
}

int http_server_start(cembed_model *m, const http_opts *o, http_server **out) {
    *out = NULL;
    http_server *s = base_calloc(1, sizeof *s);
    if (!s) return base_err(CEMBED_ENOMEM, "out of memory");
    s->m = m;
    s->o = *o;
    pthread_mutex_init(&s->cache_mu, NULL);
    cembed_model_get_info(m, &s->info);
    int rc = sched_new(m, &o->sched, &s->s);
    if (rc) {
        base_free(s);
        return rc;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (inet_pton(AF_INET, o->host, &addr.sin_addr) != 1) {
        sched_free(s->s);
        base_free(s);
        return base_err(CEMBED_EINVAL, "host %s: not an IPv4 address", o->host);
    }
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                            (uint16_t)o->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)o->idle_timeout_s, MHD_OPTION_END);
    if (!s->d) {
        sched_free(s->s);
        base_free(s);
        return base_err(CEMBED_EIO, "cannot listen on %s:%d (in use, or not allowed)", o->host, o->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
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
    for (int i = 0; i < 600 && atomic_load(&s->in_flight) > 0; i++) usleep(100000);
    MHD_socket listen = MHD_quiesce_daemon(s->d);
    if (listen != MHD_INVALID_SOCKET) close(listen);
    listen = MHD_INVALID_SOCKET;
    MHD_stop_daemon(s->d);
    if (listen != MHD_INVALID_SOCKET) close(listen);
    sched_free(s->s);
    pthread_mutex_destroy(&s->cache_mu);
    base_free(s);
}
