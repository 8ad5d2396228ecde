/* Answers: errors as {"error": {...}}, and the content reader that writes a
 * request's answer in pieces of PIPE_OUT_FLUSH bytes, so that no request
 * holds its whole JSON answer in memory. The reader runs on an I/O thread
 * and never blocks it: a streamed answer with no vector ready parks its
 * connection (MHD_suspend_connection) and the scheduler's callbacks resume
 * it. See internal.h. */
#include <string.h>

#include "http/internal.h"
#include "json/json.h"

void http_count(http_server *s, enum route r, int status) {
    for (size_t i = 0; i < N_ROUTES && http_routes[i].path; i++)
        if (http_routes[i].r == r)
            for (size_t k = 0; k < N_CODES; k++)
                if (http_status_codes[k] == status) atomic_fetch_add(&s->requests[i][k], 1);
}

enum MHD_Result http_send_buf(struct MHD_Connection *c, int status, buf *b, const char *type, int retry_after,
                              const char *const *extra) {
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
    for (; extra && extra[0]; extra += 2) MHD_add_response_header(resp, extra[0], extra[1]);
    http_note_status(c, status);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

int http_status_of(pipe_refusal kind) {
    switch (kind) {
    case PIPE_OK: return 200;
    case PIPE_BAD_REQUEST: return 400;
    case PIPE_NOT_FOUND: return 404;
    case PIPE_TOO_LARGE: return 413;
    case PIPE_UNPROCESSABLE: return 422;
    case PIPE_BUSY: return 429;
    case PIPE_NO_MEMORY:
    case PIPE_UNAVAILABLE: return 503;
    default: return 500;
    }
}

static const char *error_type(int status) {
    switch (status) {
    case 400: return "invalid_request";
    case 401: return "unauthorized";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 413: return "payload_too_large";
    case 422: return "unprocessable_entity";
    case 429: return "queue_full";
    case 503: return "unavailable";
    default: return "internal_error";
    }
}

/* The answer when not even an error's few bytes can be allocated: a
 * constant one (libmicrohttpd's own allocation is not ours to fail). */
enum MHD_Result http_send_no_memory(http_server *s, struct MHD_Connection *c, enum route r) {
    static const char body[] = "{\"error\":{\"message\":\"out of memory; retry later\",\"type\":\"unavailable\","
                               "\"code\":503}}\n";
    struct MHD_Response *resp = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Retry-After", "1");
    http_count(s, r, 503);
    http_note_status(c, 503);
    const enum MHD_Result ret = MHD_queue_response(c, 503, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result http_send_error(http_server *s, struct MHD_Connection *c, enum route r, int status, const char *msg,
                                int retry_after_s, const char *const *extra) {
    buf b = {0};
    if (buf_append(&b, "{\"error\":{\"message\":", 20) || json_write_string(&b, msg, strlen(msg)) ||
        buf_printf(&b, ",\"type\":\"%s\",\"code\":%d}}\n", error_type(status), status)) {
        buf_free(&b);
        return http_send_no_memory(s, c, r);
    }
    http_count(s, r, status);
    log_debug("%d %s", status, msg);
    if (!retry_after_s && (status == 429 || status == 503)) retry_after_s = 1;
    return http_send_buf(c, status, &b, "application/json", retry_after_s, extra);
}

/* ---- the work's life ---- */

void http_work_release(work *w) {
    if (atomic_fetch_sub(&w->refs, 1) != 1) return;
    http_server *s = w->s;
    const int large = w->j.held >= (1u << 20);
    if (w->j.req.n_items && !w->j.refusal && w->route != R_TOKENIZE) {
        size_t truncated = 0;
        for (size_t k = 0; w->j.truncated && k < w->j.req.n_items; k++) truncated += (size_t)w->j.truncated[k];
        atomic_fetch_add(&s->chunks, w->j.req.n_items);
        atomic_fetch_add(&s->truncated, truncated);
    }
    pipe_free(&w->j);
    if (w->body_held && s->o.sched.gov) gov_unreserve(s->o.sched.gov, w->body_held);   /* never parsed */
    base_free(w->body);
    base_free(w->order);
    buf_free(&w->out);
    pthread_mutex_destroy(&w->mu);
    base_free(w);
    if (large && s->o.sched.gov) gov_trim(s->o.sched.gov);   /* after a large request, give its freed heap back (DESIGN: trim) */
}

void http_resume(http_server *s, struct MHD_Connection *c) {
    atomic_fetch_sub(&s->parked, 1);
    MHD_resume_connection(c);
}

void http_wake(work *w) {
    /* mu held by the caller */
    if (w->suspended && !w->gone) {
        w->suspended = 0;
        http_resume(w->s, w->c);
    }
}

/* ---- the answer ---- */

/* The answer's end: a stream cut short by a refusal (the answer had begun)
 * ends with a line that says what went wrong. */
static int write_tail(pipe_job *j, buf *b) {
    if (j->form != PIPE_STREAM || !j->refusal) return pipe_write_tail(j, b);
    const int status = http_status_of(j->refusal);
    return buf_append(b, "{\"error\":{\"message\":", 20) || json_write_string(b, j->msg, strlen(j->msg)) ||
           buf_printf(b, ",\"type\":\"%s\",\"code\":%d}}\n", error_type(status), status);
}

/* MHD's content reader: fills w->out up to PIPE_OUT_FLUSH and copies it out;
 * 0 (with the connection parked) when a streamed answer has nothing ready. */
static ssize_t answer_read(void *cls, uint64_t pos, char *dst, size_t max) {
    (void)pos;
    work *w = cls;
    pipe_job *j = &w->j;
    const size_t n = j->req.n_items;
    if (w->out_pos == w->out.len) {
        w->out.len = w->out_pos = 0;
        if (w->phase == 2) return MHD_CONTENT_READER_END_OF_STREAM;
        int rc = 0;
        if (w->phase == 0) {
            rc = pipe_write_head(j, &w->out);
            w->phase = 1;
        }
        while (!rc && w->phase == 1 && w->out.len < PIPE_OUT_FLUSH) {
            size_t k = w->n_sent;
            if (w->stream) {
                pthread_mutex_lock(&w->mu);
                /* the tail waits for the job's end (its usage); a job that failed ends with fewer items */
                const int wait = w->n_sent == w->n_ready && !w->done;
                if (wait && w->out.len == 0) { /* nothing to send: park until the scheduler has more */
                    w->suspended = 1;
                    atomic_fetch_add(&w->s->parked, 1);
                    MHD_suspend_connection(w->c);
                }
                const int last = !wait && w->n_sent == w->n_ready;
                if (!last && !wait) k = w->order[w->n_sent];
                pthread_mutex_unlock(&w->mu);
                if (wait) break;   /* send what is written first */
                if (last) {
                    rc = write_tail(j, &w->out);
                    w->phase = 2;
                    break;
                }
            }
            if (w->n_sent == n) {
                rc = write_tail(j, &w->out);
                w->phase = 2;
                break;
            }
            if (j->vec) pipe_finish_vector(j, k);
            rc = pipe_write_item(j, &w->out, k, w->n_sent == 0);
            w->n_sent++;
        }
        if (rc) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (w->out.len == 0) return 0;   /* parked */
    }
    const size_t m = CE_MIN(max, w->out.len - w->out_pos);
    memcpy(dst, w->out.ptr + w->out_pos, m);
    w->out_pos += m;
    return (ssize_t)m;
}

static void answer_free(void *cls) {
    work *w = cls;
    pthread_mutex_lock(&w->mu);
    w->gone = 1;   /* a client that left early: its callbacks must not resume */
    pthread_mutex_unlock(&w->mu);
    http_work_abandon(w);   /* a streamed answer cut short: what is still queued is dropped */
    http_work_release(w);
}

enum MHD_Result http_send_refusal(http_server *s, struct MHD_Connection *c, enum route r, const pipe_job *j) {
    if (j->shed) { /* memory: counted for /health and /metrics */
        atomic_fetch_add(&s->shed_memory, 1);
        atomic_store(&s->last_shed, (long long)time_now());
        log_info("request refused (503, retry after %d s): %s", j->retry_after, j->msg);
    }
    if (j->refusal == PIPE_BUSY) atomic_fetch_add(&s->shed_queue, 1);
    return http_send_error(s, c, r, http_status_of(j->refusal), j->msg, j->retry_after, NULL);
}

enum MHD_Result http_answer(http_server *s, struct MHD_Connection *c, work *w) {
    pipe_job *j = &w->j;
    if (j->refusal) {
        const enum MHD_Result ret = http_send_refusal(s, c, w->route, j);
        http_work_release(w);
        return ret;
    }
    atomic_fetch_add(&s->cache_hits, j->n_cached);
    atomic_fetch_add(&s->cache_misses, j->req.n_items - j->n_cached);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, PIPE_OUT_FLUSH, answer_read, w,
                                                                  answer_free);
    if (!resp) {
        const enum route r = w->route;
        answer_free(w);
        return http_send_no_memory(s, c, r);
    }
    MHD_add_response_header(resp, "Content-Type", w->stream ? "application/x-ndjson" : "application/json");
    /* TEI's timing headers, in milliseconds (a streamed answer starts before its compute ends: tokens and
     * tokenization only) */
    char v[32];
    snprintf(v, sizeof v, "%zu", j->tokens);
    MHD_add_response_header(resp, "x-compute-tokens", v);
    snprintf(v, sizeof v, "%.0f", w->tok_ms);
    MHD_add_response_header(resp, "x-tokenization-time", v);
    if (!w->stream && w->route != R_TOKENIZE) {
        size_t chars = 0;
        for (size_t k = 0; k < j->req.n_items; k++) chars += j->req.items[k].text_len;
        const double total = (time_now() - w->t0) * 1e3;
        const struct { const char *name; double ms; } t[] = {
            {"x-queue-time", j->sj.queue_ms}, {"x-inference-time", j->sj.compute_ms},
            {"x-compute-time", w->tok_ms + j->sj.queue_ms + j->sj.compute_ms}, {"x-total-time", total}};
        for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
            snprintf(v, sizeof v, "%.0f", t[i].ms);
            MHD_add_response_header(resp, t[i].name, v);
        }
        snprintf(v, sizeof v, "%zu", chars);
        MHD_add_response_header(resp, "x-compute-characters", v);
    }
    http_count(s, w->route, 200);
    http_note_status(c, 200);
    const enum MHD_Result ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}
