/* GET /health, /info and /metrics; see internal.h. */
#include <string.h>

#include "http/internal.h"
#include "json/json.h"

/* A metric with no labels: its name, type, HELP line and value. */
typedef struct metric_row {
    const char *name, *type, *help;
    unsigned long long v;
} metric_row;

/* The n metrics of m, each with its HELP and TYPE lines. */
static int metrics(buf *b, const metric_row *m, size_t n) {
    int rc = 0;
    for (size_t k = 0; k < n && !rc; k++)
        rc = buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", m[k].name, m[k].help, m[k].name, m[k].type,
                        m[k].name, m[k].v);
    return rc;
}

/* cembed_requests_total by route and status, and the requests' durations. */
static int request_metrics(http_server *s, buf *b) {
    int rc = buf_printf(b, "# HELP cembed_requests_total HTTP requests by route and status.\n"
                           "# TYPE cembed_requests_total counter\n");
    for (size_t k = 0; k < N_ROUTES && http_routes[k].path && !rc; k++)
        for (size_t q = 0; q < N_CODES && !rc; q++) {
            unsigned long long v = atomic_load(&s->requests[k][q]);
            if (v) rc = buf_printf(b, "cembed_requests_total{route=\"%s\",code=\"%d\"} %llu\n", http_routes[k].path,
                                   http_status_codes[q], v);
        }
    if (!rc)
        rc = buf_printf(b, "# HELP cembed_request_duration_seconds Time from a request's headers to its end.\n"
                           "# TYPE cembed_request_duration_seconds summary\n"
                           "cembed_request_duration_seconds_sum %.6f\ncembed_request_duration_seconds_count %llu\n",
                        (double)atomic_load(&s->latency_us_sum) / 1e6, atomic_load(&s->latency_count));
    return rc;
}

/* The scheduler's, the process's, the cache's and the connections' counts.
 * cembed_batch_size is the one batch size (the adaptive one the scheduler
 * uses now); the last batch's sequences are cembed_last_batch_sequences. */
static int engine_metrics(http_server *s, buf *b) {
    sched_stats st;
    sched_get_stats(s->s, &st);
    gov *g = s->o.sched.gov;
    const int size = g ? CE_MIN(s->o.sched.max_batch, gov_batch_size(g)) : s->o.sched.max_batch;
    const metric_row m[] = {
        {"cembed_batches_total", "counter", "Forward passes run.", st.batches},
        {"cembed_chunks_total", "counter", "Texts answered by the embedding routes.", atomic_load(&s->chunks)},
        {"cembed_truncated_chunks_total", "counter", "Texts cut to the model's limit.", atomic_load(&s->truncated)},
        {"cembed_tokens_total", "counter", "Tokens run through the model.", st.tokens},
        {"cembed_queue_depth", "gauge", "Sequences waiting for a batch.", st.queued},
        {"cembed_batch_size", "gauge", "Sequences per forward pass now (the adaptive size, at most the maximum).",
         (unsigned long long)size},
        {"cembed_max_batch_size", "gauge", "Largest batch size.", (unsigned long long)s->o.sched.max_batch},
        {"cembed_last_batch_sequences", "gauge", "Sequences in the last forward pass.", (unsigned long long)st.last_batch},
        {"cembed_in_flight_requests", "gauge", "Requests between their headers and their end.",
         (unsigned long long)atomic_load(&s->in_flight)},
        {"cembed_rss_bytes", "gauge", "Resident memory of the process.", (unsigned long long)gov_rss()},
        {"cembed_heap_bytes", "gauge", "Bytes cembed's allocator holds.", (unsigned long long)base_alloc_live_bytes()},
        {"cembed_cache_hits_total", "counter", "Texts answered from the vector cache.", atomic_load(&s->cache_hits)},
        {"cembed_cache_misses_total", "counter", "Texts the vector cache did not hold.", atomic_load(&s->cache_misses)},
        {"cembed_connections_total", "counter", "Connections accepted.", atomic_load(&s->conns_opened)},
        {"cembed_header_timeouts_total", "counter", "Connections closed for not sending their headers in time.",
         atomic_load(&s->conns_deadline)},
        {"cembed_auth_failures_total", "counter", "Requests refused for a missing or unknown API key.",
         atomic_load(&s->auth_failures)},
    };
    return metrics(b, m, CE_ARRAY_LEN(m));
}

/* The memory governor's budget, pressure and reservations, and the
 * requests admission control refused (only with a governor). */
static int memory_metrics(http_server *s, gov *g, buf *b) {
    gov_stats gs;
    gov_get_stats(g, &gs);
    const metric_row m[] = {
        {"cembed_memory_budget_bytes", "gauge", "The memory budget (EMBEDDING_MAX_MEMORY_PERCENT of the limit).",
         gov_budget(g)},
        {"cembed_memory_pressure_events_total", "counter", "Batches that met memory pressure (trimmed and halved).",
         gs.pressure_events},
        {"cembed_trims_total", "counter", "Heap trims.", gs.trims},
        {"cembed_psi_pressure_events_total", "counter", "Pressure events seen through PSI.", gs.psi_events},
        {"cembed_memory_pool_bytes", "gauge", "The request pool: bytes requests may reserve.", gs.pool},
        {"cembed_memory_reserved_bytes", "gauge", "Bytes requests hold reserved now.", gs.reserved},
        {"cembed_memory_reserved_peak_bytes", "gauge", "The most bytes requests held reserved.", gs.reserved_peak},
    };
    int rc = metrics(b, m, CE_ARRAY_LEN(m));
    if (!rc)
        rc = buf_printf(b, "# HELP cembed_rejected_requests_total Requests refused by admission control.\n"
                           "# TYPE cembed_rejected_requests_total counter\n"
                           "cembed_rejected_requests_total{reason=\"memory\"} %llu\n"
                           "cembed_rejected_requests_total{reason=\"queue\"} %llu\n",
                        atomic_load(&s->shed_memory), atomic_load(&s->shed_queue));
    return rc;
}

/* GET /metrics: Prometheus text, every metric with # HELP. */
static int write_metrics(http_server *s, buf *b) {
    gov *g = s->o.sched.gov;
    int rc = request_metrics(s, b);
    if (!rc) rc = engine_metrics(s, b);
    if (!rc && g) rc = memory_metrics(s, g, b);
    return rc;
}

/* GET /health: 503 while draining, or shedding (a request was refused for memory in the last 5 seconds). */
static int write_health(http_server *s, buf *b, int *status) {
    const int shedding = atomic_load(&s->last_shed) && time_now() - (double)atomic_load(&s->last_shed) < 5;
    *status = atomic_load(&s->draining) || shedding ? 503 : 200;
    return buf_printf(b, "{\"status\":\"%s\"}\n", atomic_load(&s->draining) ? "draining" : shedding ? "shedding" : "ok");
}

/* GET /v1/models: OpenAI's list; clients call it before they embed. */
static int write_models(http_server *s, buf *b) {
    int rc = buf_append(b, "{\"object\":\"list\",\"data\":[", 25);
    for (int k = 0; k < s->n_models && !rc; k++) {
        const char *name = s->pes[k].info.name;
        rc = buf_append(b, k ? ",{\"id\":" : "{\"id\":", k ? 7 : 6) || json_write_string(b, name, strlen(name)) ||
             buf_printf(b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"cembed\"}");
    }
    return rc || buf_append(b, "]}\n", 3);
}

/* /info's fields of the default model and the limits. */
static int write_info_head(http_server *s, buf *b) {
    const cembed_model_info *i = &s->info;
    return buf_append(b, "{\"model\":", 9) || json_write_string(b, i->name, strlen(i->name)) ||
           buf_printf(b,
                      ",\"kind\":\"%s\",\"architecture\":\"%s\",\"family\":\"%s\","
                      "\"dimensions\":%d,\"max_tokens\":%d,\"pooling\":\"%s\",\"normalize\":%s,\"threads\":%d,"
                      "\"max_batch_size\":%d,\"max_batch_tokens\":%d,\"max_body_bytes\":%zu,\"max_chunks\":%zu,"
                      "\"max_json_depth\":%d,\"max_connections\":%d,\"max_connections_per_ip\":%d,"
                      "\"header_timeout_s\":%d,\"idle_timeout_s\":%d,\"precision\":\"%s\","
                      "\"version\":\"" CEMBED_VERSION "\",",
                      i->kind, i->architecture, i->family, i->hidden, i->max_seq_len, i->pooling,
                      i->normalize ? "true" : "false", i->threads, s->o.sched.max_batch, s->o.sched.max_batch_tokens,
                      s->o.max_body_bytes, s->o.max_chunks, s->o.max_depth, s->o.max_connections,
                      s->o.max_connections_per_ip, s->o.header_timeout_s, s->o.idle_timeout_s, i->precision) ||
           cembed_kernels_json(s->m, b);
}

/* /info's memory plan (with a governor). */
static int write_info_memory(http_server *s, buf *b) {
    gov *g = s->o.sched.gov;
    if (!g) return 0;
    const gov_limit *l = gov_get_limit(g);
    gov_stats gs;
    gov_get_stats(g, &gs);
    return buf_printf(b, ",\"memory_limit_bytes\":%llu,\"memory_budget_bytes\":%llu,\"current_batch_size\":%d,"
                         "\"memory_fixed_bytes\":%llu,\"memory_workspace_bytes\":%llu,\"batch_tokens\":%d,"
                         "\"memory_pool_bytes\":%llu,\"memory_limit_source\":",
                      (unsigned long long)l->bytes, (unsigned long long)gov_budget(g),
                      CE_MIN(s->o.sched.max_batch, gov_batch_size(g)),   /* = cembed_batch_size */
                      (unsigned long long)gs.fixed, (unsigned long long)gs.workspace, gs.batch_tokens,
                      (unsigned long long)gs.pool) ||
           json_write_string(b, l->source, strlen(l->source));
}

/* /info's every model served (the fields above are the default's, the first), and its prompts. */
static int write_info_models(http_server *s, buf *b) {
    const cembed_model_info *i = &s->info;
    int rc = buf_append(b, ",\"models\":[", 11);
    for (int k = 0; k < s->n_models && !rc; k++) {
        const cembed_model_info *mi = &s->pes[k].info;
        rc = buf_append(b, k ? ",{\"model\":" : "{\"model\":", k ? 10 : 9) ||
             json_write_string(b, mi->name, strlen(mi->name)) ||
             buf_printf(b, ",\"kind\":\"%s\",\"family\":\"%s\",\"dimensions\":%d,\"max_tokens\":%d,"
                           "\"pooling\":\"%s\",\"normalize\":%s,\"path\":",
                        mi->kind, mi->family, mi->hidden, mi->max_seq_len, mi->pooling, mi->normalize ? "true" : "false") ||
             json_write_string(b, mi->path, strlen(mi->path)) || buf_append(b, "}", 1);
    }
    if (!rc) rc = buf_append(b, "],\"prompts\":{", 13);
    const char *name, *text;
    for (size_t k = 0; !rc && (name = cembed_prompt_at(s->m, k, &text)); k++)
        rc = (k && buf_append(b, ",", 1)) || json_write_string(b, name, strlen(name)) || buf_append(b, ":", 1) ||
             json_write_string(b, text, strlen(text));
    return rc || buf_append(b, "},\"default_prompt_name\":", 24) ||
           (i->default_prompt ? json_write_string(b, i->default_prompt, strlen(i->default_prompt))
                              : buf_append(b, "null", 4)) ||
           buf_append(b, "}\n", 2);
}

enum MHD_Result http_status_route(http_server *s, struct MHD_Connection *c, enum route r) {
    buf b = {0};
    int status = 200, rc;
    switch (r) {
    case R_HEALTH: rc = write_health(s, &b, &status); break;
    case R_MODELS: rc = write_models(s, &b); break;
    case R_INFO: rc = write_info_head(s, &b) || write_info_memory(s, &b) || write_info_models(s, &b); break;
    default: rc = write_metrics(s, &b); break;
    }
    if (rc) {
        buf_free(&b);
        return http_send_no_memory(s, c, r);
    }
    http_count(s, r, status);
    return http_send_buf(c, status, &b, r == R_METRICS ? "text/plain; version=0.0.4" : "application/json",
                         status == 503 ? 1 : 0, NULL);
}
