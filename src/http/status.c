/* GET /health, /info and /metrics; see internal.h. */
#include <string.h>

#include "http/internal.h"
#include "json/json.h"

enum MHD_Result http_status_route(http_server *s, struct MHD_Connection *c, enum route r) {
    buf b = {0};
    int status = 200, rc = 0;
    const cembed_model_info *i = &s->info;
    if (r == R_HEALTH) {
        /* shedding: a request was refused for memory in the last 5 seconds */
        const int shedding = atomic_load(&s->last_shed) && time_now() - (double)atomic_load(&s->last_shed) < 5;
        status = atomic_load(&s->draining) || shedding ? 503 : 200;
        rc = buf_printf(&b, "{\"status\":\"%s\"}\n",
                        atomic_load(&s->draining) ? "draining" : shedding ? "shedding" : "ok");
    } else if (r == R_MODELS) { /* OpenAI's list: clients call it before they embed */
        rc = buf_append(&b, "{\"object\":\"list\",\"data\":[", 25);
        for (int k = 0; k < s->n_models && !rc; k++) {
            const char *name = s->pes[k].info.name;
            rc = buf_append(&b, k ? ",{\"id\":" : "{\"id\":", k ? 7 : 6) || json_write_string(&b, name, strlen(name)) ||
                 buf_printf(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"cembed\"}");
        }
        if (!rc) rc = buf_append(&b, "]}\n", 3);
    } else if (r == R_INFO) {
        rc = buf_append(&b, "{\"model\":", 9) || json_write_string(&b, i->name, strlen(i->name)) ||
             buf_printf(&b,
                        ",\"kind\":\"%s\",\"architecture\":\"%s\",\"family\":\"%s\","
                        "\"dimensions\":%d,\"max_tokens\":%d,\"pooling\":\"%s\",\"normalize\":%s,\"threads\":%d,"
                        "\"max_batch_size\":%d,\"max_batch_tokens\":%d,\"max_body_bytes\":%zu,\"max_chunks\":%zu,"
                        "\"max_json_depth\":%d,\"max_connections\":%d,\"max_connections_per_ip\":%d,"
                        "\"header_timeout_s\":%d,\"idle_timeout_s\":%d,\"precision\":\"%s\","
                        "\"version\":\"" CEMBED_VERSION "\",",
                        i->kind, i->architecture, i->family, i->hidden, i->max_seq_len, i->pooling,
                        i->normalize ? "true" : "false", i->threads, s->o.sched.max_batch, s->o.sched.max_batch_tokens, s->o.max_body_bytes, s->o.max_chunks,
                        s->o.max_depth, s->o.max_connections, s->o.max_connections_per_ip,
                        s->o.header_timeout_s, s->o.idle_timeout_s, i->precision) ||
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
        /* every model served (the fields above are the default's, the first) */
        if (!rc) rc = buf_append(&b, ",\"models\":[", 11);
        for (int k = 0; k < s->n_models && !rc; k++) {
            const cembed_model_info *mi = &s->pes[k].info;
            rc = buf_append(&b, k ? ",{\"model\":" : "{\"model\":", k ? 10 : 9) ||
                 json_write_string(&b, mi->name, strlen(mi->name)) ||
                 buf_printf(&b, ",\"kind\":\"%s\",\"family\":\"%s\",\"dimensions\":%d,\"max_tokens\":%d,"
                                "\"pooling\":\"%s\",\"normalize\":%s,\"path\":",
                            mi->kind, mi->family, mi->hidden, mi->max_seq_len, mi->pooling,
                            mi->normalize ? "true" : "false") ||
                 json_write_string(&b, mi->path, strlen(mi->path)) || buf_append(&b, "}", 1);
        }
        if (!rc) rc = buf_append(&b, "]", 1);
        /* the model's prompts by name, and the default one */
        if (!rc) rc = buf_append(&b, ",\"prompts\":{", 12);
        const char *name, *text;
        for (size_t k = 0; !rc && (name = cembed_prompt_at(s->m, k, &text)); k++)
            rc = (k && buf_append(&b, ",", 1)) || json_write_string(&b, name, strlen(name)) || buf_append(&b, ":", 1) ||
                 json_write_string(&b, text, strlen(text));
        if (!rc) rc = buf_append(&b, "},\"default_prompt_name\":", 24) ||
                      (i->default_prompt ? json_write_string(&b, i->default_prompt, strlen(i->default_prompt))
                                         : buf_append(&b, "null", 4));
        if (!rc) rc = buf_append(&b, "}\n", 2);
    } else {
        sched_stats st;
        sched_get_stats(s->s, &st);
        rc = buf_printf(&b,
                        "# HELP cembed_requests_total HTTP requests by route and status.\n"
                        "# TYPE cembed_requests_total counter\n");
        for (size_t k = 0; k < N_ROUTES && http_routes[k].path && !rc; k++)
            for (size_t q = 0; q < N_CODES && !rc; q++) {
                unsigned long long v = atomic_load(&s->requests[k][q]);
                if (v) rc = buf_printf(&b, "cembed_requests_total{route=\"%s\",code=\"%d\"} %llu\n", http_routes[k].path,
                                       http_status_codes[q], v);
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
                            "# TYPE cembed_cache_misses_total counter\ncembed_cache_misses_total %llu\n"
                            "# TYPE cembed_connections_total counter\ncembed_connections_total %llu\n"
                            "# HELP cembed_header_timeouts_total Connections closed for not sending their headers in time.\n"
                            "# TYPE cembed_header_timeouts_total counter\ncembed_header_timeouts_total %llu\n"
                            "# HELP cembed_auth_failures_total Requests refused for a missing or unknown API key.\n"
                            "# TYPE cembed_auth_failures_total counter\ncembed_auth_failures_total %llu\n",
                            (double)atomic_load(&s->latency_us_sum) / 1e6, atomic_load(&s->latency_count),
                            (unsigned long long)st.batches, atomic_load(&s->chunks), atomic_load(&s->truncated),
                            (unsigned long long)st.tokens, st.queued, st.last_batch, s->o.sched.max_batch,
                            atomic_load(&s->in_flight), (unsigned long long)gov_rss(), base_alloc_live_bytes(),
                            atomic_load(&s->cache_hits), atomic_load(&s->cache_misses),
                            atomic_load(&s->conns_opened), atomic_load(&s->conns_deadline),
                            atomic_load(&s->auth_failures));
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
        return http_send_no_memory(s, c, r);
    }
    http_count(s, r, status);
    return http_send_buf(c, status, &b, r == R_METRICS ? "text/plain; version=0.0.4" : "application/json",
                         status == 503 ? 1 : 0, NULL);
}
