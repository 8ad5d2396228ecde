/* A POST request on a request thread: the pipeline (src/pipe) up to the
 * scheduler, then back to the I/O thread through MHD_resume_connection. The
 * I/O threads never parse, tokenize or wait. See internal.h. */
#include <string.h>

#include "http/internal.h"

/* The scheduler's callbacks (inference thread). */
static void on_vector(void *ctx, size_t k) {
    work *w = ctx;
    if (!w->stream) return;
    pthread_mutex_lock(&w->mu);
    w->order[w->n_ready++] = k;
    http_wake(w);
    pthread_mutex_unlock(&w->mu);
}

static void on_done(void *ctx) {
    work *w = ctx;
    if (w->stream) {
        pthread_mutex_lock(&w->mu);
        w->done = 1;
        http_wake(w);
        pthread_mutex_unlock(&w->mu);
    } else { /* the connection waits parked since its body arrived */
        atomic_store(&w->ready, 1);
        http_resume(w->s, w->c);
    }
    http_work_release(w);   /* the scheduler's reference */
}

/* The model a request names ("model": its name, or the --model it was
 * given by); with one model served, any name is that model (as TEI). */
static int choose_model(http_server *s, pipe_job *j) {
    for (int i = 0; i < s->n_models; i++) {
        const pipe_env *e = &s->pes[i];
        if (strcmp(j->req.model, e->info.name) == 0 || (s->model_ids[i] && strcmp(j->req.model, s->model_ids[i]) == 0)) {
            j->e = &s->pes[i];
            if (j->req.dimensions <= e->info.hidden) return 0;
            return pipe_refuse(j, PIPE_BAD_REQUEST, "\"dimensions\" is %d, the model has %d", j->req.dimensions,
                               e->info.hidden);
        }
    }
    size_t len = 0;
    len += (size_t)snprintf(j->msg, sizeof j->msg, "model \"%.200s\" is not served here (models:", j->req.model);
    for (int i = 0; i < s->n_models && len < sizeof j->msg; i++)
        len += (size_t)snprintf(j->msg + len, sizeof j->msg - len, "%s %s", i ? "," : "", s->pes[i].info.name);
    if (len < sizeof j->msg) snprintf(j->msg + len, sizeof j->msg - len, ")");
    j->refusal = PIPE_NOT_FOUND;   /* the message is built above */
    return PIPE_NOT_FOUND;
}

void http_work_abandon(work *w) {
    const size_t n = pipe_cancel(&w->j);
    if (n) log_info("client left: cancelled the %zu queued sequences of its request", n);
}

static req_kind route_kind(enum route r) {
    switch (r) {
    case R_EMBED:
    case R_EMBED_ALL: return REQ_EMBED;
    case R_OPENAI: return REQ_OPENAI;
    case R_SIMILARITY: return REQ_SIMILARITY;
    case R_RERANK:
    case R_RERANK_V1: return REQ_RERANK;
    case R_ROOT: return REQ_AUTO;   /* the body says which (TEI's and Inference Endpoints' root) */
    default: return REQ_TOKENIZE;
    }
}

/* The answer's shape: by the request's kind (POST /'s is known once parsed) and form. */
static pipe_form form_of(const work *w) {
    const request *r = &w->j.req;
    switch (r->kind) {
    case REQ_TOKENIZE: return PIPE_TOKENIZE;
    case REQ_OPENAI: return PIPE_OPENAI;
    case REQ_RERANK: return r->rerank_v1 ? PIPE_RERANK_V1 : PIPE_RERANK;
    case REQ_SIMILARITY: return PIPE_SIMILARITY;
    default: return w->route == R_EMBED_ALL ? PIPE_EMBED_ALL : r->tei ? PIPE_TEI : w->stream ? PIPE_STREAM : PIPE_EMBED;
    }
}

/* Parses w's body and chooses its model; the body and its reservation are
 * given back either way. 0 or j's refusal. */
static int parse(work *w) {
    http_server *s = w->s;
    pipe_job *j = &w->j;
    /* parsed against the widest model (its "dimensions" limit); choose_model checks the one chosen */
    int widest = 0;
    for (int i = 1; i < s->n_models; i++)
        if (s->pes[i].info.hidden > s->pes[widest].info.hidden) widest = i;
    int rc = pipe_parse(j, &s->pes[widest], route_kind(w->route), w->body ? w->body : "", w->body_len);
    if (!rc) {
        j->e = &s->pes[0];
        if (j->req.model && s->n_models > 1) rc = choose_model(s, j);
        else if (j->req.dimensions > j->e->info.hidden)
            rc = pipe_refuse(j, PIPE_BAD_REQUEST, "\"dimensions\" is %d, the model has %d", j->req.dimensions,
                             j->e->info.hidden);
    }
    if (!rc && w->route == R_EMBED_ALL && j->req.dimensions)
        rc = pipe_refuse(j, PIPE_BAD_REQUEST, "\"dimensions\" does not apply to /embed_all: it answers every "
                         "token's vector whole");
    base_free(w->body);   /* the body is no longer needed, nor its reservation */
    w->body = NULL;
    if (s->o.sched.gov && w->body_held) gov_unreserve(s->o.sched.gov, w->body_held);
    w->body_held = 0;
    w->stream = !rc && (w->route == R_EMBED || w->route == R_ROOT) && j->req.kind == REQ_EMBED && !j->req.tei &&
                (j->req.stream || w->accept_ndjson);
    return rc;
}

/* Hands a prepared job to the scheduler: 1 when submitted (its callbacks
 * answer it from now on), 0 when refused (j says why). */
static int submit(work *w) {
    pipe_job *j = &w->j;
    if (w->stream) /* cached vectors are ready at once */
        for (size_t k = 0; k < j->req.n_items; k++)
            if (j->cached[k]) w->order[w->n_ready++] = k;
    j->on_vector = on_vector;
    j->on_done = on_done;
    j->ctx = w;
    atomic_fetch_add(&w->refs, 2);   /* the scheduler's, until on_done, and this thread's */
    const int stream = w->stream;
    if (pipe_submit(j) != 0) {
        atomic_fetch_sub(&w->refs, 2);
        return 0;
    }
    /* the client may have left while it was parsed and tokenized */
    if (atomic_load(&w->abandoned)) http_work_abandon(w);
    /* a plain answer: on_done resumes it; a streamed one starts now (its response holds w) */
    if (stream) {
        atomic_store(&w->ready, 1);
        http_resume(w->s, w->c);
    }
    http_work_release(w);
    return 1;
}

void http_work_run(work *w) {
    pipe_job *j = &w->j;
    const double t_tok = time_now();
    int rc = parse(w);
    const pipe_form form = form_of(w);
    if (!rc) rc = pipe_prepare(j, form);
    w->tok_ms = (time_now() - t_tok) * 1e3;
    if (!rc) rc = pipe_answer_buffer(j, &w->out);   /* once the 200 is sent, writing never allocates */
    if (!rc && w->stream && !(w->order = base_calloc(j->req.n_items, sizeof *w->order)))
        rc = pipe_refuse(j, PIPE_NO_MEMORY, "out of memory; retry later");
    if (!rc && form != PIPE_TOKENIZE && submit(w)) return;
    atomic_store(&w->ready, 1);
    http_resume(w->s, w->c);
}
