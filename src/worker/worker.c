/* The Redis Streams worker; see worker.h. */
#include <hiredis/hiredis.h>
#include <string.h>
#include <unistd.h>

#include "http/http.h"
#include "pipe/pipe.h"
#include "worker/worker.h"

int redis_parse_url(const char *url, redis_addr *a) {
    *a = (redis_addr){.port = 6379};
    snprintf(a->host, sizeof a->host, "127.0.0.1");
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0) return base_err(CEMBED_EINVAL, "%s: a Redis URL starts with redis://", url);
    p += 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if ((size_t)(at - pw) >= sizeof a->password) return base_err(CEMBED_EINVAL, "%s: password too long", url);
        memcpy(a->password, pw, (size_t)(at - pw));
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl >= sizeof a->host) return base_err(CEMBED_EINVAL, "%s: host name too long", url);
    if (hl) {
        memcpy(a->host, p, hl);
        a->host[hl] = 0;
    }
    p += hl;
    char *end;
    if (*p == ':') {
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/'))
            return base_err(CEMBED_EINVAL, "%s: the port must be in [1, 65535]", url);
        a->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        long db = strtol(p + 1, &end, 10);
        if (*end || db < 0 || db > 1 << 20) return base_err(CEMBED_EINVAL, "%s: the database must be a number", url);
        a->db = (int)db;
    }
    return 0;
}

int worker_result_key(const char *prefix, int kind, const char *value, size_t len, buf *out) {
    out->len = 0;
    const char *mark = kind == WORKER_KEY_INT ? "\xff#" : kind == WORKER_KEY_ENTRY ? "\xff@" : "";
    if (buf_printf(out, "%s:%s", prefix, mark) || buf_append(out, value, len) || buf_append(out, "", 1))
        return base_err(CEMBED_ENOMEM, "out of memory");
    out->len--;   /* NUL-terminated for logging; len excludes it */
    return 0;
}

typedef struct worker {
    const worker_env *env;
    const worker_opts *o;
    cembed_model_info info;
    pipe_env pe;
    redisContext *c;
    double last_reclaim;
} worker;

/* ---- Redis ---- */

int redis_open(const redis_addr *a, int timeout_s, redisContext **out) {
    *out = NULL;
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
    if (!c || c->err) {
        const int rc = base_err(CEMBED_EIO, "redis %s:%d: %s", a->host, a->port, c ? c->errstr : "cannot allocate a context");
        if (c) redisFree(c);
        return rc;
    }
    if (timeout_s > 0) {
        struct timeval ctv = {timeout_s, 0};
        redisSetTimeout(c, ctv);
    }
    char db[16];
    snprintf(db, sizeof db, "%d", a->db);
    const char *auth[] = {"AUTH", a->password}, *sel[] = {"SELECT", db};
    const char *const *steps[] = {a->password[0] ? auth : NULL, a->db ? sel : NULL};
    for (size_t i = 0; i < CE_ARRAY_LEN(steps); i++) {
        if (!steps[i]) continue;
        redisReply *r = redisCommandArgv(c, 2, (const char **)steps[i], NULL);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            const int rc = base_err(r ? CEMBED_EINVAL : CEMBED_EIO, "redis %s:%d: %s%s%s: %s%s", a->host, a->port,
                                    steps[i][0], i ? " " : "", i ? db : "", r ? r->str : c->errstr,
                                    i == 0 && r ? " (the password of --redis / EMBEDDING_REDIS_URL)" : "");
            if (r) freeReplyObject(r);
            redisFree(c);
            return rc;
        }
        freeReplyObject(r);
    }
    *out = c;
    return 0;
}

static void disconnect(worker *w) {
    if (w->c) redisFree(w->c);
    w->c = NULL;
}

/* A command from argv; NULL when the connection failed (then it is closed
 * and the caller goes back to the loop, which reconnects). */
static redisReply *cmd(worker *w, int argc, const char **argv, const size_t *lens) {
    if (!w->c) return NULL;
    redisReply *r = redisCommandArgv(w->c, argc, argv, lens);
    if (!r) {
        log_warn("redis: %s; reconnecting", w->c->errstr);
        disconnect(w);
    }
    return r;
}

static redisReply *cmd0(worker *w, int argc, const char **argv) { return cmd(w, argc, argv, NULL); }

static int connect_redis(worker *w, volatile sig_atomic_t *stop) {
    double backoff = 0.1;
    while (!*stop) {
        /* commands wait at most the block time plus a margin */
        const int rc = redis_open(&w->o->addr, (w->o->block_ms + 10000) / 1000, &w->c);
        if (rc == CEMBED_EINVAL) /* a refusal (WRONGPASS) is logged: it is the URL's to fix */
            log_error("%s; retrying in %.1f s", cembed_last_error(), backoff);
        else if (rc)
            log_warn("%s; retrying in %.1f s", cembed_last_error(), backoff);
        if (!rc) { /* the group reads the stream from its start; it may exist already */
            const char *a[] = {"XGROUP", "CREATE", w->o->stream, w->o->group, "0", "MKSTREAM"};
            redisReply *r = cmd0(w, 6, a);
            const int ok = r && (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0);
            if (r && !ok) log_warn("redis: XGROUP CREATE: %s", r->str);
            if (r) freeReplyObject(r);
            if (ok && w->c) {
                log_info("connected to redis %s:%d, stream %s, group %s, consumer %s", w->o->addr.host, w->o->addr.port,
                         w->o->stream, w->o->group, w->o->consumer);
                return 0;
            }
        }
        disconnect(w);
        for (double t = 0; t < backoff && !*stop; t += 0.05) usleep(50000);
        backoff = CE_MIN(backoff * 2, 5.0);
    }
    return -1;
}

/* ---- one job ---- */

/* Embeds one body into out (the POST /embed answer) through the pipeline.
 * Returns 0, or the kind of the refusal with reason filled ("STATUS: why",
 * the status POST /embed would answer): a transient one (memory or queue
 * busy now) is the service's, the others the job's. */
static int run_job(worker *w, const char *id, const char *body, size_t len, buf *out, buf *key, buf *bid,
                   char *reason, size_t rn) {
    pipe_job j = {.whole_answer = 1};   /* the whole answer is held until Redis has it */
    int rc = pipe_parse(&j, &w->pe, REQ_EMBED, body, len);
    if (!rc) {
        /* the result key: exact and collision-free (worker.h); the announced batch_id: its value, else the entry id */
        const int kind = !j.req.batch_id ? WORKER_KEY_ENTRY : j.req.batch_id_is_string ? WORKER_KEY_STRING : WORKER_KEY_INT;
        const char *bv = j.req.batch_id ? j.req.batch_id : id;
        const size_t bl = j.req.batch_id ? j.req.batch_id_len : strlen(id);
        bid->len = 0;
        if (worker_result_key(w->o->result_prefix, kind, bv, bl, key) || buf_append(bid, bv, bl))
            rc = pipe_refuse(&j, PIPE_NO_MEMORY, "out of memory");
    }
    if (!rc) rc = pipe_run(&j, j.req.tei ? PIPE_TEI : PIPE_EMBED, out);
    if (rc) snprintf(reason, rn, "%d: %.490s", http_status_of(rc), j.msg);
    pipe_free(&j);
    return rc;
}

static void worker_pipe_init(worker *w) {
    const req_limits lim = {.max_items = w->o->max_chunks, .max_text_bytes = w->o->max_body_bytes,
                            .max_depth = w->o->max_depth};
    pipe_env_init(&w->pe, w->env->m, w->env->s, w->env->g, &lim);
    w->pe.cache = w->env->cache;
    w->pe.writer = w->env->writer;
    w->pe.scope = w->env->scope;
}

int worker_embed_body(const worker_env *env, const worker_opts *o, const char *id, const char *body, size_t len,
                      buf *out, buf *key, buf *bid, char *reason, size_t rn) {
    worker w = {.env = env, .o = o};
    worker_pipe_init(&w);
    const int rc = run_job(&w, id, body, len, out, key, bid, reason, rn);
    pipe_env_destroy(&w.pe);
    return rc;
}

typedef struct rcmd {
    int argc;
    const char **argv;
    const size_t *lens;
} rcmd;

static int transact(worker *w, const rcmd *cmds, int n, char *why, size_t wn) {
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"}, *discard[] = {"DISCARD"};
    snprintf(why, wn, "the connection to Redis was lost");
    redisReply *r = cmd0(w, 1, multi);
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (r && !ok) snprintf(why, wn, "MULTI: %s", r->str);
    if (r) freeReplyObject(r);
    for (int k = 0; k < n && ok; k++) {
        r = cmd(w, cmds[k].argc, cmds[k].argv, cmds[k].lens);
        ok = r && r->type != REDIS_REPLY_ERROR;
        if (r && !ok) snprintf(why, wn, "%s: %s", cmds[k].argv[0], r->str);
        if (r) freeReplyObject(r);
    }
    if (!w->c) return 0;
    r = cmd0(w, 1, ok ? exec : discard);
    if (ok) {
        ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == (size_t)n;
        if (r && r->type == REDIS_REPLY_ERROR) snprintf(why, wn, "EXEC: %s", r->str);
        for (size_t k = 0; ok && k < r->elements; k++)
            if (r->element[k]->type == REDIS_REPLY_ERROR) {
                snprintf(why, wn, "%s: %s", cmds[k].argv[0], r->element[k]->str);
                ok = 0;
            }
    }
    if (r) freeReplyObject(r);
    return ok;
}

/* Waits before the next attempt at a refused write: 0.1 s doubling to 5 s.
 * Returns 0 to go on, -1 when stopped. */
static int backoff_wait(double *backoff, volatile sig_atomic_t *stop) {
    for (double t = 0; t < *backoff && !*stop; t += 0.05) usleep(50000);
    *backoff = CE_MIN(*backoff * 2, 5.0);
    return *stop ? -1 : 0;
}

/* The failure recorded for entry id by an earlier delivery, into reason[];
 * 1 when there is one, 0 when none (its deliveries were crashes, kills or
 * Redis failures, not the job's), -1 when Redis did not answer. */
static int recorded_failure(worker *w, const char *id, char *reason, size_t rn) {
    const char *hg[] = {"HGET", w->o->errors_hash, id};
    redisReply *r = cmd0(w, 3, hg);
    if (!r) return -1;
    const int found = r->type == REDIS_REPLY_STRING;
    if (found) snprintf(reason, rn, "%s", r->str);
    else if (r->type == REDIS_REPLY_ERROR) log_warn("redis: HGET %s: %s", w->o->errors_hash, r->str);
    const int rc = r->type == REDIS_REPLY_ERROR ? -1 : found;
    freeReplyObject(r);
    return rc;
}

/* Acks entry id and forgets its recorded failure, once what it produced
 * (its answer or its dead letter) is stored: never in the same MULTI as
 * those writes, since a command that fails inside EXEC (WRONGTYPE) does not
 * stop the others, and the job would be acked and lost. A crash between
 * the two leaves it pending: it is done again (at-least-once). */
static int ack(worker *w, const char *id, char *why, size_t wn) {
    const char *xack[] = {"XACK", w->o->stream, w->o->group, id}, *hdel[] = {"HDEL", w->o->errors_hash, id};
    const rcmd cmds[] = {{4, xack, NULL}, {3, hdel, NULL}};
    return transact(w, cmds, 2, why, wn);
}

/* Moves a job that failed more than max_deliveries times to the dead
 * letters, then acks it; a refused write leaves it pending (logged) for a
 * later claim. */
static void dead_letter(worker *w, const char *id, const char *body, size_t len, long long deliveries,
                        const char *reason) {
    char dv[24], why[512];
    snprintf(dv, sizeof dv, "%lld", deliveries);
    const char *add[] = {"XADD", w->o->dead_stream, "*", "job", id, "body", body ? body : "", "reason", reason,
                         "deliveries", dv};
    size_t add_l[11];
    for (int k = 0; k < 11; k++) add_l[k] = strlen(add[k]);
    add_l[6] = body ? len : 0;
    const rcmd cmds[] = {{11, add, add_l}};
    if (!transact(w, cmds, 1, why, sizeof why))
        log_warn("job %s: could not move it to %s (%s); it stays pending", id, w->o->dead_stream, why);
    else if (!ack(w, id, why, sizeof why))
        log_warn("job %s: moved to %s but not acked (%s); it stays pending", id, w->o->dead_stream, why);
    else
        log_warn("job %s moved to %s after %lld deliveries: %s", id, w->o->dead_stream, deliveries, reason);
}

/* Stores a job's answer and announces it (one MULTI), then acks the job.
 * A Redis that refuses the writes (out of memory, read-only replica) is
 * logged and tried again with backoff, the answer kept, until it takes them
 * or the worker stops; a lost connection is reconnected first. Returns 1
 * when stored, 0 when stopped first (the job stays pending: another
 * delivery computes it again). */
static int store(worker *w, const char *id, const buf *key, const buf *bid, const buf *out, volatile sig_atomic_t *stop) {
    char ttl[24], why[512];
    snprintf(ttl, sizeof ttl, "%ld", w->o->result_ttl_s);
    const char *set[] = {"SET", key->ptr, out->ptr ? out->ptr : "", "EX", ttl};
    const size_t set_l[] = {3, key->len, out->len, 2, strlen(ttl)};
    const char *add[] = {"XADD", w->o->results_stream, "MAXLEN", "~", "100000", "*", "batch_id", bid->ptr ? bid->ptr : "",
                         "job", id, "key", key->ptr};
    size_t add_l[12];
    for (int k = 0; k < 12; k++) add_l[k] = k == 7 ? bid->len : k == 11 ? key->len : strlen(add[k]);
    const rcmd cmds[] = {{5, set, set_l}, {12, add, add_l}};
    double backoff = 0.1;
    for (int stored = 0;;) {
        if (!w->c && connect_redis(w, stop)) return 0;
        if (!stored) stored = transact(w, cmds, 2, why, sizeof why);
        if (stored && ack(w, id, why, sizeof why)) return 1;
        log_warn("job %s: Redis did not %s (%s); retrying in %.1f s, the job stays pending (not acked)", id,
                 stored ? "ack it (the answer is stored)" : "store the answer", why, backoff);
        if (backoff_wait(&backoff, stop)) return 0;
    }
}

/* Handles entry id with its body (NULL: the entry has none); deliveries
 * counts this one. */
static void handle(worker *w, const char *id, const char *body, size_t len, long long deliveries,
                   volatile sig_atomic_t *stop) {
    char reason[512] = "";
    if (deliveries > w->o->max_deliveries) {
        /* dead only for the job's own failures; deliveries by crashes, kills or Redis trouble are not its fault */
        const int failed = recorded_failure(w, id, reason, sizeof reason);
        if (failed < 0) return;
        if (failed) {
            dead_letter(w, id, body, len, deliveries, reason);
            return;
        }
    }
    buf out = {0}, key = {0}, bid = {0};
    double t0 = time_now();
    int refusal = 0;
    if (!body) {
        snprintf(reason, sizeof reason, "the entry has no \"body\" field (XADD %s * body JSON)", w->o->stream);
    } else if ((refusal = run_job(w, id, body, len, &out, &key, &bid, reason, sizeof reason)) == 0) {
        if (store(w, id, &key, &bid, &out, stop))
            log_info("job %s (batch %.*s) done in %.1f ms", id, (int)CE_MIN(bid.len, 200), bid.ptr, (time_now() - t0) * 1e3);
        buf_free(&out), buf_free(&key), buf_free(&bid);
        return;
    }
    buf_free(&out), buf_free(&key), buf_free(&bid);
    if (pipe_refusal_transient(refusal)) {
        /* this worker is busy, not the job wrong: it stays pending, unrecorded, and comes back */
        log_warn("job %s not run now (delivery %lld): %s; it is retried after the claim time", id, deliveries, reason);
        return;
    }
    /* not acked: it comes back after the claim time, and goes to the dead letters after max_deliveries */
    log_warn("job %s failed (delivery %lld of %d): %s", id, deliveries, w->o->max_deliveries, reason);
    const char *hs[] = {"HSET", w->o->errors_hash, id, reason};
    redisReply *r = cmd0(w, 4, hs);
    if (r && r->type == REDIS_REPLY_ERROR) log_warn("job %s: Redis did not record the failure (HSET: %s)", id, r->str);
    if (r) freeReplyObject(r);
}

/* The "body" field of a stream entry reply [id, [k, v, ...]]. */
static const redisReply *entry_body(const redisReply *e) {
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY) return NULL;
    const redisReply *f = e->element[1];
    for (size_t k = 0; k + 1 < f->elements; k += 2)
        if (f->element[k]->type == REDIS_REPLY_STRING && strcmp(f->element[k]->str, "body") == 0 &&
            f->element[k + 1]->type == REDIS_REPLY_STRING)
            return f->element[k + 1];
    return NULL;
}

/* Claims entries idle past the claim time (a worker died or failed them)
 * with XAUTOCLAIM, and learns each one's delivery count from XPENDING. */
static void reclaim(worker *w, volatile sig_atomic_t *stop) {
    char idle[24], cursor[64] = "0-0";
    snprintf(idle, sizeof idle, "%ld", w->o->claim_idle_ms);
    do {
        const char *xa[] = {"XAUTOCLAIM", w->o->stream, w->o->group, w->o->consumer, idle, cursor, "COUNT", "16"};
        redisReply *c = cmd0(w, 8, xa);
        if (!c || c->type != REDIS_REPLY_ARRAY || c->elements < 2 || c->element[0]->type != REDIS_REPLY_STRING ||
            c->element[1]->type != REDIS_REPLY_ARRAY) {
            if (c && c->type == REDIS_REPLY_ERROR) log_warn("redis: XAUTOCLAIM: %s", c->str);
            if (c) freeReplyObject(c);
            return;
        }
        snprintf(cursor, sizeof cursor, "%s", c->element[0]->str);
        const redisReply *entries = c->element[1];
        for (size_t k = 0; k < entries->elements && !*stop && w->c; k++) {
            const redisReply *e = entries->element[k];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING) continue;
            const char *id = e->element[0]->str;
            long long deliveries = 1;
            const char *xp[] = {"XPENDING", w->o->stream, w->o->group, id, id, "1"};
            redisReply *p = cmd0(w, 6, xp);
            if (p && p->type == REDIS_REPLY_ARRAY && p->elements == 1 && p->element[0]->elements >= 4)
                deliveries = p->element[0]->element[3]->integer;
            if (p) freeReplyObject(p);
            if (!w->c) break;
            const redisReply *body = entry_body(e);
            log_info("claimed job %s (delivery %lld)", id, deliveries);
            handle(w, id, body ? body->str : NULL, body ? body->len : 0, deliveries, stop);
        }
        freeReplyObject(c);
    } while (strcmp(cursor, "0-0") != 0 && !*stop && w->c);
}

int worker_run(const worker_env *env, const worker_opts *o, volatile sig_atomic_t *stop) {
    if (o->max_deliveries < 1 || o->claim_idle_ms < 1 || o->block_ms < 1)
        return base_err(CEMBED_EINVAL, "worker: bad options");
    worker w = {.env = env, .o = o};
    cembed_model_get_info(env->m, &w.info);
    worker_pipe_init(&w);
    char block[24];
    snprintf(block, sizeof block, "%ld", o->block_ms);
    while (!*stop) {
        if (!w.c && connect_redis(&w, stop)) break;
        const double now = time_now();
        if (now - w.last_reclaim >= (double)o->claim_idle_ms / 2e3) {
            w.last_reclaim = now;
            reclaim(&w, stop);
            if (!w.c || *stop) continue;
        }
        const char *xr[] = {"XREADGROUP", "GROUP", o->group, o->consumer, "COUNT", "1", "BLOCK", block,
                            "STREAMS", o->stream, ">"};
        redisReply *r = cmd0(&w, 11, xr);
        if (!r) continue;
        if (r->type == REDIS_REPLY_ERROR) {
            /* NOGROUP: the stream or group was deleted; reconnecting recreates it */
            log_warn("redis: XREADGROUP: %s", r->str);
            if (strncmp(r->str, "NOGROUP", 7) == 0) disconnect(&w);
            else usleep(200000);
        } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            const redisReply *s = r->element[0];
            if (s->type == REDIS_REPLY_ARRAY && s->elements == 2 && s->element[1]->type == REDIS_REPLY_ARRAY)
                for (size_t k = 0; k < s->element[1]->elements; k++) {
                    const redisReply *e = s->element[1]->element[k];
                    const redisReply *body = entry_body(e);
                    if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 && e->element[0]->type == REDIS_REPLY_STRING)
                        handle(&w, e->element[0]->str, body ? body->str : NULL, body ? body->len : 0, 1, stop);
                }
        }
        freeReplyObject(r);
    }
    disconnect(&w);
    pipe_env_destroy(&w.pe);
    return 0;
}
