/* The scheduler; see sched.h. One mutex guards the job list; the inference
 * thread holds it only to pick a batch and to scatter results. */
#include <pthread.h>
#include <string.h>

#include "sched/sched.h"

#define SCHED_MAX_MODELS 16

struct sched {
    cembed_model *m;            /* the model of the batch in hand (the first when idle) */
    cembed_model *models[SCHED_MAX_MODELS];
    cembed_model_info info[SCHED_MAX_MODELS];
    int n_models;
    sched_opts o;
    int hidden;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    sched_job *head, *tail;     /* jobs with sequences left to run */
    size_t queued, queued_tokens;
    int stopping, accepting;
    int fail_cap;               /* after a batch failed for memory: at most this many, until one succeeds */
    sched_stats stats;
    /* the batch being built */
    const int32_t **b_ids;
    size_t *b_len;
    int *b_type;                /* each sequence's first token of type 1 (pairs) */
    sched_job **b_job;
    size_t *b_index;
    float *b_out;
    void (**b_done)(void *);    /* the on_done calls of the jobs the batch finished */
    void **b_done_ctx;
};

/* The governor's check before a batch (mutex held): on pressure it trims
 * and halves; the workspace goes back and the batch is rebuilt smaller. */
static int model_hidden(const sched *s, const cembed_model *m) {
    for (int i = 0; i < s->n_models; i++)
        if (s->models[i] == m) return s->info[i].hidden;
    return s->info[0].hidden;
}

static int under_pressure(sched *s, int tokens, int k) {
    size_t need, resident;
    cembed_workspace_bytes(s->m, tokens, &need, &resident);
    if (!gov_check_batch(s->o.gov, need > resident ? need - resident : 0, k)) return 0;
    cembed_release_workspace(s->m);
    return k > 1;
}

/* Unlinks the jobs with nothing left to start (mutex held). */
static void unlink_started(sched *s) {
    sched_job **pp = &s->head, *last = NULL;
    while (*pp) {
        if ((*pp)->next >= (*pp)->n) {
            *pp = (*pp)->link;
        } else {
            last = *pp;
            pp = &(*pp)->link;
        }
    }
    s->tail = last;
}

/* Links job again if sched_cancel unlinked it while its picks were in a
 * batch that is now retried (mutex held). */
static void relink(sched *s, sched_job *job) {
    for (sched_job *j = s->head; j; j = j->link)
        if (j == job) return;
    job->link = NULL;
    if (s->tail) s->tail->link = job;
    else s->head = job;
    s->tail = job;
}

/* The first job whose next sequence did not fit a batch (mutex held): it
 * goes first in the next one, so that a sequence as long as the token
 * budget runs alone as soon as the batch in hand is done, not after every
 * shorter one queued ahead of it; the short ones batch again after it. */
static sched_job *deferred_job(const sched *s) {
    for (sched_job *j = s->head; j; j = j->link)
        if (j->deferred && j->next < j->n) return j;
    return NULL;
}

/* Job j's next sequence into the batch's slot k (mutex held); returns its tokens. */
static int take(sched *s, sched_job *j, int k) {
    const size_t len = j->n_ids[j->next];
    s->b_ids[k] = j->ids[j->next];
    s->b_len[k] = len;
    s->b_type[k] = j->type1_from ? j->type1_from[j->next] : (int)len;
    s->b_job[k] = j;
    s->b_index[k] = j->next++;
    return (int)len;
}

/* Picks the next batch into s->b_* (mu held): the deferred job's sequence
 * first, then the first waiting job's model, round-robin one sequence from
 * each of its jobs in turn, up to the governor's size and the batch's
 * tokens; a sequence that does not fit marks its job deferred. Returns the
 * count. OUT: *tokens, *solo (one sequence whose token vectors are wanted),
 * *first (the deferred job taken first, or NULL). */
static int pick_batch(sched *s, int *tokens, int *solo, sched_job **first) {
    int cap = s->o.gov ? CE_MIN(s->o.max_batch, gov_batch_size(s->o.gov)) : s->o.max_batch;
    if (s->fail_cap) cap = CE_MIN(cap, s->fail_cap);
    int k = 0, progress = 1;
    *tokens = 0;
    *solo = 0;
    *first = deferred_job(s);
    cembed_model *bm = *first ? (*first)->model : NULL;   /* the batch's model: the first waiting job's */
    for (sched_job *j = s->head; j && !bm; j = j->link)
        if (j->next < j->n) bm = j->model;
    if (bm != s->m) { /* another model: the last one's workspace goes back (the plan holds one) */
        if (s->o.gov) cembed_release_workspace(s->m);
        s->m = bm;
        s->hidden = model_hidden(s, bm);
    }
    if (*first) {
        (*first)->deferred = 0;
        *solo = (*first)->token_out != NULL;
        *tokens += take(s, *first, k++);
    }
    while (k < cap && progress && !*solo) {
        progress = 0;
        for (sched_job *j = s->head; j && k < cap && !*solo; j = j->link) {
            if (j->next >= j->n || j->model != bm) continue;
            if (k > 0 && (j->token_out || *tokens + (int)j->n_ids[j->next] > s->o.max_batch_tokens)) {
                j->deferred = 1;   /* runs first in the next batch */
                continue;
            }
            *solo = j->token_out != NULL;
            *tokens += take(s, j, k++);
            progress = 1;
        }
    }
    return k;
}

/* Runs the picked batch (mu not held). Raw: requests normalize; sched_submit
 * refused what the model cannot run, so a failure is out of memory. */
static int compute_batch(sched *s, int k, int solo, uint64_t batch_no) {
    int rc;
    if (solo) {
        const sched_job *j = s->b_job[0];
        const size_t row = j->slot ? j->slot[s->b_index[0]] : s->b_index[0];
        rc = cembed_embed_tokens(s->m, s->b_ids[0], s->b_len[0], s->b_out, j->token_out[row]);
    } else {
        rc = cembed_run_ids(s->m, s->b_ids, s->b_len, s->b_type, (size_t)k, s->b_out, 0);
    }
    if (rc) {
        cembed_release_workspace(s->m);
        log_warn("batch %llu of %d texts failed (%s)%s", (unsigned long long)batch_no, k, cembed_last_error(),
                 k > 1 ? "; retrying with half as many" : "; its text is answered as failed");
    }
    return rc;
}

/* A failed batch of several goes back to its jobs (mu held), to be retried at half the size. */
static void retry_smaller(sched *s, int k, int tokens) {
    for (int i = k - 1; i >= 0; i--) s->b_job[i]->next--;
    for (int i = 0; i < k; i++) relink(s, s->b_job[i]);   /* one cancelled meanwhile was unlinked */
    s->queued += (size_t)k;
    s->queued_tokens += (size_t)tokens;
    s->fail_cap = k / 2;
    if (s->o.gov) gov_pressure(s->o.gov);
}

/* Every computed vector to its job's row, and its on_vector (mu not held). */
static void deliver(sched *s, int k) {
    for (int i = 0; i < k; i++) {
        sched_job *j = s->b_job[i];
        const size_t row = j->slot ? j->slot[s->b_index[i]] : s->b_index[i];
        memcpy(j->out + row * (size_t)s->hidden, s->b_out + (size_t)i * s->hidden, (size_t)s->hidden * sizeof(float));
        if (j->on_vector) j->on_vector(j->ctx, row, j->out + row * (size_t)s->hidden);
    }
}

/* The batch's counts (mu held): the scheduler's, and per job each batch
 * counted once (a shared batch holds several jobs' sequences in turn), its
 * time shared by tokens, so the jobs' times add up to the real one. The
 * finished jobs' on_done go to s->b_done: returns how many. */
static int account(sched *s, int k, int tokens, double dt, int rc, uint64_t batch_no) {
    int n_done = 0;
    s->stats.batches++;
    s->stats.sequences += (uint64_t)k;
    s->stats.tokens += (uint64_t)tokens;
    s->stats.compute_s += dt / 1e3;
    s->stats.last_batch = k;
    for (int i = 0; i < k; i++) {
        sched_job *j = s->b_job[i];
        if (j->last_batch != batch_no) {
            j->last_batch = batch_no;
            j->batches++;
        }
        j->compute_ms += dt * (double)s->b_len[i] / (double)(tokens > 0 ? tokens : 1);
        if (rc) j->failed++;
        if (++j->done == j->n && j->on_done) { /* called after the mutex is let go, from copies */
            s->b_done[n_done] = j->on_done;
            s->b_done_ctx[n_done++] = j->ctx;
        }
    }
    return n_done;
}

static void *run(void *arg) {
    sched *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stopping) pthread_cond_wait(&s->work, &s->mu);
        if (!s->head) break;
        int tokens, solo;
        sched_job *first;
        const int k = pick_batch(s, &tokens, &solo, &first);
        if (s->o.gov && under_pressure(s, tokens, k)) {
            /* give the picks back (each job's were taken in order) and retry smaller */
            for (int i = k - 1; i >= 0; i--) s->b_job[i]->next--;
            if (first) first->deferred = 1;
            continue;
        }
        s->queued -= (size_t)k;
        s->queued_tokens -= (size_t)tokens;
        double t0 = time_now();
        for (int i = 0; i < k; i++) {
            sched_job *j = s->b_job[i];
            if (j->queue_ms == 0) j->queue_ms = (t0 - j->queued_at) * 1e3;
        }
        const uint64_t batch_no = s->stats.batches + 1;
        const size_t waiting = s->queued;
        pthread_mutex_unlock(&s->mu);
        log_debug("processing chunk %llu (%d texts, %d tokens; %zu waiting)", (unsigned long long)batch_no, k, tokens,
                  waiting);
        /* out of memory: retry smaller, and a single sequence that still
         * fails is answered as failed (503), never a crash */
        const int rc = compute_batch(s, k, solo, batch_no);
        if (rc && k > 1) {
            pthread_mutex_lock(&s->mu);
            if (first) first->deferred = 1;
            retry_smaller(s, k, tokens);
            continue;
        }
        s->fail_cap = 0;
        double dt = (time_now() - t0) * 1e3;
        if (s->o.gov && !rc) gov_good_batch(s->o.gov);
        if (!rc) deliver(s, k);
        pthread_mutex_lock(&s->mu);
        const int n_done = account(s, k, tokens, dt, rc, batch_no);
        unlink_started(s);
        pthread_cond_broadcast(&s->done);
        if (n_done) {
            pthread_mutex_unlock(&s->mu);
            for (int i = 0; i < n_done; i++) s->b_done[i](s->b_done_ctx[i]);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int sched_new_multi(cembed_model *const *models, int n_models, const sched_opts *o, sched **out) {
    *out = NULL;
    if (o->max_batch < 1 || o->max_batch_tokens < 1) return base_err(CEMBED_EINVAL, "scheduler: bad batch limits");
    if (n_models < 1 || n_models > SCHED_MAX_MODELS) return base_err(CEMBED_EINVAL, "scheduler: 1 to 16 models");
    sched *s = base_calloc(1, sizeof *s);
    if (!s) return base_err(CEMBED_ENOMEM, "scheduler: out of memory");
    int max_hidden = 0;
    for (int i = 0; i < n_models; i++) {
        s->models[i] = models[i];
        cembed_model_get_info(models[i], &s->info[i]);
        max_hidden = CE_MAX(max_hidden, s->info[i].hidden);
    }
    s->n_models = n_models;
    s->m = models[0];
    s->o = *o;
    s->hidden = s->info[0].hidden;
    s->accepting = 1;
    size_t n = (size_t)o->max_batch;
    s->b_ids = base_calloc(n, sizeof *s->b_ids);
    s->b_len = base_calloc(n, sizeof *s->b_len);
    s->b_type = base_calloc(n, sizeof *s->b_type);
    s->b_job = base_calloc(n, sizeof *s->b_job);
    s->b_index = base_calloc(n, sizeof *s->b_index);
    s->b_out = base_calloc(n * (size_t)max_hidden, sizeof *s->b_out);
    s->b_done = base_calloc(n, sizeof *s->b_done);
    s->b_done_ctx = base_calloc(n, sizeof *s->b_done_ctx);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->done, NULL);
    if (!s->b_ids || !s->b_len || !s->b_type || !s->b_job || !s->b_index || !s->b_out || !s->b_done || !s->b_done_ctx ||
        pthread_create(&s->thread, NULL, run, s) != 0) {
        base_free(s->b_ids), base_free(s->b_len), base_free(s->b_type), base_free(s->b_job), base_free(s->b_index),
            base_free(s->b_out);
        base_free(s->b_done), base_free(s->b_done_ctx);
        base_free(s);
        return base_err(CEMBED_ENOMEM, "scheduler: cannot start the inference thread");
    }
    *out = s;
    return 0;
}

int sched_new(cembed_model *m, const sched_opts *o, sched **out) { return sched_new_multi(&m, 1, o, out); }

void sched_free(sched *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->accepting = 0;
    s->stopping = 1;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->done);
    base_free(s->b_ids), base_free(s->b_len), base_free(s->b_type), base_free(s->b_job), base_free(s->b_index),
        base_free(s->b_out);
    base_free(s->b_done), base_free(s->b_done_ctx);
    base_free(s);
}

int sched_submit(sched *s, sched_job *job) {
    job->next = job->done = job->failed = 0;
    job->cancelled = 0;
    job->batches = 0;
    job->last_batch = 0;
    job->queue_ms = job->compute_ms = 0;
    job->link = NULL;
    job->queued_at = time_now();
    /* what the inference thread would assert on is refused here */
    if (!job->model) job->model = s->models[0];
    int mi = -1;
    for (int i = 0; i < s->n_models; i++)
        if (s->models[i] == job->model) mi = i;
    if (mi < 0) return base_err(CEMBED_EINVAL, "job for a model this scheduler does not run");
    const int max_seq_len = s->info[mi].max_seq_len, vocab_size = s->info[mi].vocab_size;
    if (job->n && (!job->ids || !job->n_ids || !job->out)) return base_err(CEMBED_EINVAL, "job without ids or output");
    for (size_t i = 0; i < job->n; i++) {
        if (!job->ids[i] || job->n_ids[i] < 1 || job->n_ids[i] > (size_t)max_seq_len)
            return base_err(CEMBED_EINVAL, "sequence %zu has %zu tokens; the model takes 1 to %d", i, job->n_ids[i],
                            max_seq_len);
        for (size_t t = 0; t < job->n_ids[i]; t++)
            if (job->ids[i][t] < 0 || job->ids[i][t] >= vocab_size)
                return base_err(CEMBED_EINVAL, "sequence %zu, token %zu: id %d is outside the vocabulary of %d", i, t,
                                (int)job->ids[i][t], vocab_size);
    }
    if (job->n == 0) {
        if (job->on_done) job->on_done(job->ctx);
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    if (!s->accepting) {
        pthread_mutex_unlock(&s->mu);
        return base_err(CEMBED_EINVAL, "the server is shutting down");
    }
    if (s->o.max_queued && s->queued + job->n > s->o.max_queued && s->queued > 0) {
        size_t q = s->queued;
        pthread_mutex_unlock(&s->mu);
        return base_err(CEMBED_ELIMIT, "the queue holds %zu sequences; %zu more would pass its limit of %zu", q, job->n,
                        s->o.max_queued);
    }
    if (s->tail) s->tail->link = job;
    else s->head = job;
    s->tail = job;
    s->queued += job->n;
    for (size_t i = 0; i < job->n; i++) s->queued_tokens += job->n_ids[i];
    s->stats.jobs++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

size_t sched_cancel(sched *s, sched_job *job) {
    size_t rest = 0;
    void (*done)(void *) = NULL;
    void *ctx = NULL;
    pthread_mutex_lock(&s->mu);
    for (sched_job *j = s->head; j; j = j->link)
        if (j == job) {
            rest = job->n - job->next;   /* a linked job has some left */
            if (rest) {
                for (size_t i = job->next; i < job->n; i++) s->queued_tokens -= job->n_ids[i];
                s->queued -= rest;
                job->failed += rest;
                job->cancelled = 1;
                job->done += rest;
                job->next = job->n;
                if (job->done == job->n) done = job->on_done, ctx = job->ctx;
            }
            break;
        }
    if (rest) {
        unlink_started(s);
        pthread_cond_broadcast(&s->done);
    }
    pthread_mutex_unlock(&s->mu);
    if (done) done(ctx);
    return rest;
}

size_t sched_cancel_all(sched *s) {
    size_t rest = 0;
    pthread_mutex_lock(&s->mu);
    s->accepting = 0;
    /* the on_done calls are made without the mutex, in rounds of at most 64 */
    for (;;) {
        void (*calls[64])(void *);
        void *ctxs[64];
        int n_done = 0;
        for (sched_job *j = s->head; j && n_done < 64; j = j->link) {
            const size_t r = j->next < j->n ? j->n - j->next : 0;
            if (!r) continue;
            for (size_t i = j->next; i < j->n; i++) s->queued_tokens -= j->n_ids[i];
            s->queued -= r;
            j->failed += r;
            j->cancelled = 1;
            j->done += r;
            j->next = j->n;
            rest += r;
            if (j->done == j->n && j->on_done) calls[n_done] = j->on_done, ctxs[n_done++] = j->ctx;
        }
        unlink_started(s);
        pthread_cond_broadcast(&s->done);
        if (!n_done) break;
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < n_done; i++) calls[i](ctxs[i]);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return rest;
}

void sched_wait(sched *s, sched_job *job) {
    pthread_mutex_lock(&s->mu);
    while (job->done < job->n) pthread_cond_wait(&s->done, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void sched_get_stats(sched *s, sched_stats *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    out->queued = s->queued;
    out->queued_tokens = s->queued_tokens;
    pthread_mutex_unlock(&s->mu);
}
