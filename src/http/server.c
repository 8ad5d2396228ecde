/* The HTTP service; see http.h. Request flow on a connection's thread:
 * buffer the body (refusing past max_body_bytes, early when Content-Length
 * says so) -> request_parse -> tokenize -> sched_submit -> sched_wait ->
 * write the JSON answer. A streamed /embed answers NDJSON lines from a
 * content-reader callback that blocks (this connection's thread only) until
 * the scheduler delivers the next vector. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "http/http.h"
#include "json/json.h"
#include "json/request.h"

#define CEMBED_VERSION "0.1.0"

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
};

typedef struct conn_ctx {
    enum route route;
    buf body;
    int too_large;
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

static enum MHD_Result send_buf(struct MHD_Connection *c, int status, buf *b, const char *type, int retry_after) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(b->len, b->ptr, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        buf_free(b);
        return MHD_NO;
    }
    *b = (buf){0};   /* owned by the response now (freed with free(), which base_free is) */
    MHD_add_response_header(resp, "Content-Type", type);
    if (retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
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

static enum MHD_Result send_error(http_server *s, struct MHD_Connection *c, enum route r, int status,
                                  const char *msg) {
    buf b = {0};
    if (buf_append(&b, "{\"error\":{\"message\":", 20) || json_write_string(&b, msg, strlen(msg)) ||
        buf_printf(&b, ",\"type\":\"%s\",\"code\":%d}}\n", error_type(status), status)) {
        buf_free(&b);
        return MHD_NO;
    }
    count(s, r, status);
    log_debug("%d %s", status, msg);
    return send_buf(c, status, &b, "application/json", status == 429 || status == 503 ? 1 : 0);
}

/* ---- GET routes ---- */

static enum MHD_Result get_route(http_server *s, struct MHD_Connection *c, enum route r) {
    buf b = {0};
    int status = 200, rc = 0;
    const cembed_model_info *i = &s->info;
    if (r == R_HEALTH) {
        status = atomic_load(&s->draining) ? 503 : 200;
        rc = buf_printf(&b, "{\"status\":\"%s\"}\n", status == 200 ? "ok" : "draining");
    } else if (r == R_INFO) {
        rc = buf_append(&b, "{\"model\":", 9) || json_write_string(&b, i->name, strlen(i->name)) ||
             buf_printf(&b,
                        ",\"dimensions\":%d,\"max_tokens\":%d,\"pooling\":\"%s\",\"normalize\":%s,\"threads\":%d,"
                        "\"max_batch_size\":%d,\"max_batch_tokens\":%d,\"max_body_bytes\":%zu,\"max_chunks\":%zu,"
                        "\"max_json_depth\":%d,\"max_connections\":%d,\"version\":\"" CEMBED_VERSION "\"",
                        i->hidden, i->max_seq_len, i->pooling, i->normalize ? "true" : "false", i->threads,
                        s->o.sched.max_batch, s->o.sched.max_batch_tokens, s->o.max_body_bytes, s->o.max_chunks,
                        s->o.max_depth, s->o.max_connections);
        gov *g = s->o.sched.gov;
        if (!rc && g) {
            const gov_limit *l = gov_get_limit(g);
            rc = buf_printf(&b, ",\"memory_limit_bytes\":%llu,\"memory_budget_bytes\":%llu,\"current_batch_size\":%d,"
                                "\"memory_limit_source\":",
                            (unsigned long long)l->bytes, (unsigned long long)gov_budget(g), gov_batch_size(g)) ||
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
                            "# TYPE cembed_rss_bytes gauge\ncembed_rss_bytes %llu\n",
                            (double)atomic_load(&s->latency_us_sum) / 1e6, atomic_load(&s->latency_count),
                            (unsigned long long)st.batches, atomic_load(&s->chunks), atomic_load(&s->truncated),
                            (unsigned long long)st.tokens, st.queued, st.last_batch, s->o.sched.max_batch,
                            atomic_load(&s->in_flight), (unsigned long long)gov_rss());
        gov *g = s->o.sched.gov;
        if (!rc && g) {
            gov_stats gs;
            gov_get_stats(g, &gs);
            rc = buf_printf(&b,
                            "# TYPE cembed_current_batch_size gauge\ncembed_current_batch_size %d\n"
                            "# TYPE cembed_memory_budget_bytes gauge\ncembed_memory_budget_bytes %llu\n"
                            "# TYPE cembed_memory_pressure_events_total counter\ncembed_memory_pressure_events_total %llu\n"
                            "# TYPE cembed_trims_total counter\ncembed_trims_total %llu\n",
                            gs.batch_size, (unsigned long long)gov_budget(g), (unsigned long long)gs.pressure_events,
                            (unsigned long long)gs.trims);
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

/* ---- POST routes ---- */

typedef struct work {
    http_server *s;
    request req;
    int32_t **ids;
    size_t *n_ids;
    int *truncated;
    float *vec;
    size_t tokens;
    sched_job job;
} work;

static void work_free(work *w) {
    for (size_t i = 0; w->ids && i < w->req.n_items; i++) base_free(w->ids[i]);
    base_free(w->ids);
    base_free(w->n_ids);
    base_free(w->truncated);
    base_free(w->vec);
    request_free(&w->req);
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

static void finish_vectors(work *w) {
    const int H = w->s->info.hidden;
    const int norm = wants_normalize(w);
    for (size_t k = 0; k < w->req.n_items; k++) {
        float *v = w->vec + k * (size_t)H;
        if (norm) cembed_l2_normalize(v, (size_t)H);
        if (w->req.dimensions) cembed_l2_normalize(v, (size_t)w->req.dimensions);
    }
}

static int write_embed(work *w, buf *b) {
    const cembed_model_info *i = &w->s->info;
    const size_t H = (size_t)i->hidden;
    if (w->req.tei) {
        int rc = buf_append(b, "[", 1);
        for (size_t k = 0; k < w->req.n_items && !rc; k++)
            rc = (k && buf_append(b, ",", 1)) || json_write_floats(b, w->vec + k * H, H);
        return rc || buf_append(b, "]\n", 2);
    }
    int rc = buf_append(b, "{\"batch_id\":", 12) ||
             buf_append(b, w->req.batch_id_json ? w->req.batch_id_json : "null",
                        strlen(w->req.batch_id_json ? w->req.batch_id_json : "null")) ||
             buf_append(b, ",\"model\":", 9) || json_write_string(b, i->name, strlen(i->name)) ||
             buf_printf(b, ",\"dimensions\":%d,\"embeddings\":[", i->hidden);
    for (size_t k = 0; k < w->req.n_items && !rc; k++) {
        const req_item *it = &w->req.items[k];
        rc = buf_printf(b, "%s{\"index\":%zu,\"id\":%s", k ? "," : "", k, it->id_json ? it->id_json : "null") ||
             buf_append(b, ",\"embedding\":", 13) || json_write_floats(b, w->vec + k * H, H) ||
             buf_printf(b, ",\"tokens\":%zu,\"truncated\":%s,\"cached\":false", w->n_ids[k],
                        w->truncated[k] ? "true" : "false") ||
             (it->metadata_json && (buf_append(b, ",\"metadata\":", 12) ||
                                    buf_append(b, it->metadata_json, strlen(it->metadata_json)))) ||
             buf_append(b, "}", 1);
    }
    return rc || buf_printf(b,
                            "],\"usage\":{\"chunks\":%zu,\"tokens\":%zu,\"cached\":0,\"batches\":%d,"
                            "\"queue_ms\":%.1f,\"compute_ms\":%.1f}}\n",
                            w->req.n_items, w->tokens, w->job.batches, w->job.queue_ms, w->job.compute_ms);
}

static int write_openai(work *w, buf *b) {
    const cembed_model_info *i = &w->s->info;
    const size_t H = (size_t)i->hidden, D = w->req.dimensions ? (size_t)w->req.dimensions : H;
    int rc = buf_append(b, "{\"object\":\"list\",\"data\":[", 25);
    for (size_t k = 0; k < w->req.n_items && !rc; k++) {
        rc = buf_printf(b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", k ? "," : "", k) ||
             (w->req.base64 ? json_write_base64_floats(b, w->vec + k * H, D) : json_write_floats(b, w->vec + k * H, D)) ||
             buf_append(b, "}", 1);
    }
    return rc || buf_append(b, "],\"model\":", 10) || json_write_string(b, i->name, strlen(i->name)) ||
           buf_printf(b, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}\n", w->tokens, w->tokens);
}

static int write_tokenize(work *w, buf *b) {
    int rc = buf_append(b, "[", 1);
    for (size_t k = 0; k < w->req.n_items && !rc; k++)
        rc = buf_printf(b, "%s{\"index\":%zu,\"ids\":", k ? "," : "", k) ||
             json_write_ints(b, w->ids[k], w->n_ids[k]) ||
             buf_printf(b, ",\"tokens\":%zu,\"truncated\":%s}", w->n_ids[k], w->truncated[k] ? "true" : "false");
    return rc || buf_append(b, "]\n", 2);
}

/* ---- NDJSON streaming of /embed ----
 * The work moves to the heap; the scheduler's on_vector callback (inference
 * thread) records which vectors are ready, and MHD's content reader (this
 * connection's thread, which may block) turns them into lines. */
typedef struct stream {
    work w;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t *ready;          /* indices in completion order */
    size_t n_ready, n_sent;
    int done_sent;
    buf out;                /* formatted, not yet handed to MHD */
    size_t out_pos;
} stream;

static void stream_on_vector(void *ctx, size_t index, const float *vec) {
    (void)vec;
    stream *st = ctx;
    pthread_mutex_lock(&st->mu);
    st->ready[st->n_ready++] = index;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

static int stream_line(stream *st, size_t k) {
    work *w = &st->w;
    const size_t H = (size_t)w->s->info.hidden;
    float *v = w->vec + k * H;
    if (wants_normalize(w)) cembed_l2_normalize(v, H);
    const req_item *it = &w->req.items[k];
    return buf_printf(&st->out, "{\"index\":%zu,\"id\":%s,\"embedding\":", k, it->id_json ? it->id_json : "null") ||
           json_write_floats(&st->out, v, H) ||
           buf_printf(&st->out, ",\"tokens\":%zu,\"truncated\":%s,\"cached\":false", w->n_ids[k],
                      w->truncated[k] ? "true" : "false") ||
           (it->metadata_json && (buf_append(&st->out, ",\"metadata\":", 12) ||
                                  buf_append(&st->out, it->metadata_json, strlen(it->metadata_json)))) ||
           buf_append(&st->out, "}\n", 2);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *dst, size_t max) {
    (void)pos;
    stream *st = cls;
    work *w = &st->w;
    if (st->out_pos == st->out.len) {
        st->out.len = st->out_pos = 0;
        if (st->done_sent) return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&st->mu);
        while (st->n_sent == st->n_ready && st->n_sent < w->req.n_items) pthread_cond_wait(&st->cv, &st->mu);
        size_t upto = st->n_ready;
        pthread_mutex_unlock(&st->mu);
        for (; st->n_sent < upto; st->n_sent++)
            if (stream_line(st, st->ready[st->n_sent])) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (st->n_sent == w->req.n_items) {
            sched_wait(w->s->s, &w->job);   /* batches and timings are final */
            if (buf_printf(&st->out,
                           "{\"done\":true,\"batch_id\":%s,\"usage\":{\"chunks\":%zu,\"tokens\":%zu,\"cached\":0,"
                           "\"batches\":%d,\"queue_ms\":%.1f,\"compute_ms\":%.1f}}\n",
                           w->req.batch_id_json ? w->req.batch_id_json : "null", w->req.n_items, w->tokens,
                           w->job.batches, w->job.queue_ms, w->job.compute_ms))
                return MHD_CONTENT_READER_END_WITH_ERROR;
            st->done_sent = 1;
        }
    }
    size_t n = CE_MIN(max, st->out.len - st->out_pos);
    memcpy(dst, st->out.ptr + st->out_pos, n);
    st->out_pos += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    stream *st = cls;
    sched_wait(st->w.s->s, &st->w.job);   /* a client that left early: the job still owns these buffers */
    account_done(&st->w);
    work_free(&st->w);
    base_free(st->ready);
    buf_free(&st->out);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    base_free(st);
}

/* Starts streaming work w (moved into the stream on success). */
static enum MHD_Result start_stream(http_server *s, struct MHD_Connection *c, conn_ctx *x, work *w) {
    stream *st = base_calloc(1, sizeof *st);
    size_t *ready = base_calloc(w->req.n_items, sizeof *ready);
    if (!st || !ready) {
        base_free(st);
        base_free(ready);
        return send_error(s, c, x->route, 503, "out of memory; retry with fewer chunks");
    }
    st->w = *w;
    st->ready = ready;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    st->w.job = (sched_job){.ids = (const int32_t *const *)st->w.ids, .n_ids = st->w.n_ids, .n = st->w.req.n_items,
                            .out = st->w.vec, .on_vector = stream_on_vector, .ctx = st};
    int rc = sched_submit(s->s, &st->w.job);
    if (rc) {
        *w = st->w;   /* back to the caller, who frees it */
        base_free(ready);
        pthread_mutex_destroy(&st->mu);
        pthread_cond_destroy(&st->cv);
        base_free(st);
        return send_error(s, c, x->route, rc == CEMBED_ELIMIT ? 429 : 503, cembed_last_error());
    }
    *w = (work){0};
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
    count(s, x->route, 200);
    enum MHD_Result ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result post_route(http_server *s, struct MHD_Connection *c, conn_ctx *x) {
    if (atomic_load(&s->draining)) return send_error(s, c, x->route, 503, "the server is shutting down");
    req_limits lim = {.max_items = s->o.max_chunks, .max_text_bytes = s->o.max_body_bytes, .max_depth = s->o.max_depth};
    req_kind kind = x->route == R_EMBED ? REQ_EMBED : x->route == R_OPENAI ? REQ_OPENAI : REQ_TOKENIZE;
    work w = {.s = s};
    char msg[512];
    enum MHD_Result ret;
    if (request_parse(kind, x->body.ptr ? x->body.ptr : "", x->body.len, &lim, &w.req)) {
        ret = send_error(s, c, x->route, w.req.status ? w.req.status : 400, cembed_last_error());
        goto done;
    }
    if (w.req.dimensions > s->info.hidden) {
        snprintf(msg, sizeof msg, "\"dimensions\" is %d, the model has %d", w.req.dimensions, s->info.hidden);
        ret = send_error(s, c, x->route, 400, msg);
        goto done;
    }
    int status = tokenize_all(&w, msg, sizeof msg);
    if (status) {
        ret = send_error(s, c, x->route, status, msg);
        goto done;
    }
    buf b = {0};
    if (kind == REQ_TOKENIZE) {
        if (write_tokenize(&w, &b)) goto oom;
        count(s, x->route, 200);
        ret = send_buf(c, 200, &b, "application/json", 0);
        goto done;
    }
    w.vec = base_malloc(w.req.n_items * (size_t)s->info.hidden * sizeof(float));
    if (!w.vec) goto oom;
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    if (kind == REQ_EMBED && !w.req.tei && (w.req.stream || (accept && strstr(accept, "application/x-ndjson")))) {
        ret = start_stream(s, c, x, &w);
        goto done;
    }
    w.job = (sched_job){.ids = (const int32_t *const *)w.ids, .n_ids = w.n_ids, .n = w.req.n_items, .out = w.vec};
    int rc = sched_submit(s->s, &w.job);
    if (rc) {
        ret = send_error(s, c, x->route, rc == CEMBED_ELIMIT ? 429 : 503, cembed_last_error());
        goto done;
    }
    sched_wait(s->s, &w.job);
    finish_vectors(&w);
    account_done(&w);
    if (kind == REQ_EMBED ? write_embed(&w, &b) : write_openai(&w, &b)) goto oom;
    count(s, x->route, 200);
    ret = send_buf(c, 200, &b, "application/json", 0);
    goto done;
oom:
    buf_free(&b);
    ret = send_error(s, c, x->route, 503, "out of memory building the response; retry with fewer chunks");
done:
    work_free(&w);
    return ret;
}

/* ---- libmicrohttpd callbacks ---- */

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
                if (strcmp(method, routes[i].method) == 0) x->route = routes[i].r;
                else allowed = routes[i].method;
            }
        if (x->route == R_NONE) {
            char msg[400];
            if (allowed) {
                snprintf(msg, sizeof msg, "method %.20s is not allowed on %.200s (use %s)", method, url, allowed);
                return send_error(s, c, R_NONE, 405, msg);
            }
            snprintf(msg, sizeof msg, "no route %.200s (routes: POST /embed, POST /v1/embeddings, POST /tokenize, "
                                      "GET /health, GET /info, GET /metrics)", url);
            return send_error(s, c, R_NONE, 404, msg);
        }
        if (x->route == R_HEALTH || x->route == R_INFO || x->route == R_METRICS) return get_route(s, c, x->route);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body_bytes) {
            char msg[200];
            snprintf(msg, sizeof msg, "body of %s bytes is over the limit of %zu (max_body_bytes)", cl, s->o.max_body_bytes);
            return send_error(s, c, x->route, 413, msg);
        }
        return MHD_YES;
    }
    if (*size) {
        if (!x->too_large) {
            if (x->body.len + *size > s->o.max_body_bytes) {
                x->too_large = 1;
                buf_free(&x->body);
            } else if (buf_append(&x->body, data, *size)) {
                x->too_large = 1;
                buf_free(&x->body);
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
    base_free(x);
    *con_cls = NULL;
}

int http_server_start(cembed_model *m, const http_opts *o, http_server **out) {
    *out = NULL;
    http_server *s = base_calloc(1, sizeof *s);
    if (!s) return base_err(CEMBED_ENOMEM, "out of memory");
    s->m = m;
    s->o = *o;
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
    atomic_store(&s->draining, 1);
    MHD_socket listen = MHD_quiesce_daemon(s->d);   /* no new connections; the ones open finish */
    for (int i = 0; i < 600 && atomic_load(&s->in_flight) > 0; i++) usleep(100000);
    MHD_stop_daemon(s->d);
    if (listen != MHD_INVALID_SOCKET) close(listen);
    sched_free(s->s);
    base_free(s);
}
