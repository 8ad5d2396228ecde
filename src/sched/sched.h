/* sched: one queue of sequences from every request, one inference thread.
 *
 * A request thread tokenizes its texts, submits them as a job and waits; the
 * inference thread builds each batch round-robin across the jobs waiting
 * (one sequence from each in turn, so a small request is not starved behind
 * a giant one), bounded by the batch size and the token budget, runs one
 * forward pass and scatters the vectors back to their jobs in each job's own
 * order. A sequence passed over because it did not fit (one as long as the
 * token budget, or one whose token vectors are wanted) goes first in the
 * next batch, so it runs alone as soon as the batch in hand is done and the
 * short ones batch again after it. Vectors are pooled but not normalized
 * (requests choose). A job's
 * on_vector callback (optional) sees each vector as soon as it is computed,
 * for streaming.
 */
#ifndef CEMBED_SCHED_H
#define CEMBED_SCHED_H

#include "base/base.h"
#include "gov/gov.h"

typedef struct sched sched;

typedef struct sched_opts {
    int max_batch;          /* sequences per forward pass */
    int max_batch_tokens;   /* tokens per forward pass */
    size_t max_queued;      /* sequences waiting, over all jobs; 0 = no limit */
    gov *gov;               /* optional: its adaptive batch size caps each batch */
} sched_opts;

typedef struct sched_job sched_job;
typedef void (*sched_vector_fn)(void *ctx, size_t index, const float *vec);

struct sched_job {
    /* filled by the caller */
    cembed_model *model;    /* which model (one of the scheduler's); NULL: the first */
    const int32_t *const *ids;
    const size_t *n_ids;
    const int *type1_from;  /* optional: sequence i's first token of type 1 (a pair's second text) */
    size_t n;
    float *out;             /* rows of hidden floats */
    const size_t *slot;     /* optional: the out row (and on_vector index) of sequence i; else i */
    float *const *token_out; /* optional: sequence i's token vectors (n_ids[i] x hidden) go to token_out[row];
                               such a job's sequences run one per forward pass */
    sched_vector_fn on_vector;
    /* optional: called once every vector is in (also for n == 0), after
     * which the scheduler never touches the job; a job with on_done is not
     * given to sched_wait */
    void (*on_done)(void *ctx);
    void *ctx;
    /* owned by the scheduler */
    size_t next, done;
    int deferred;           /* its next sequence did not fit a batch: it goes first in the next one */
    size_t failed;          /* sequences whose forward pass failed (out of memory): their rows are not set */
    int cancelled;          /* sched_cancel or sched_cancel_all dropped some of them (counted in failed) */
    int batches;            /* batches that held at least one of its sequences */
    uint64_t last_batch;    /* the number of the last of them */
    double queued_at, queue_ms;
    double compute_ms;      /* its share of those batches' time, by tokens */
    sched_job *link;
};

/* Starts the inference thread over model m (which must outlive it).
 * OUT: *out. Fails with EINVAL or ENOMEM. */
int sched_new(cembed_model *m, const sched_opts *o, sched **out);
/* The same over n models: one queue, one thread; a batch holds one model's
 * sequences (the first waiting job's model), and the previous model's batch
 * workspace is given back when the model changes (the memory plan has room
 * for one). */
int sched_new_multi(cembed_model *const *models, int n, const sched_opts *o, sched **out);
/* Stops after every submitted job is done, then joins the thread. */
void sched_free(sched *s);
/* Queues a job; returns 0, or ELIMIT when the queue is full (the caller
 * answers 429), EINVAL for a sequence the model cannot run (empty, over
 * its limit, an id outside its vocabulary) or once sched_free has begun. */
int sched_submit(sched *s, sched_job *job);
/* Drops the sequences of a submitted job that no batch has taken yet (its
 * client left): they count as failed, their rows are not set, and on_done
 * follows once the batch in hand (if it holds some of them) is done; at
 * once from this call when none is. A job that is done, or was never
 * queued, is left alone. Returns the sequences dropped. Cannot fail. */
size_t sched_cancel(sched *s, sched_job *job);
/* Stops accepting jobs (sched_submit refuses them) and cancels every queued
 * one as sched_cancel does: the end of a drain's time. Returns the
 * sequences dropped. */
size_t sched_cancel_all(sched *s);
/* Blocks until every sequence of job has its vector. */
void sched_wait(sched *s, sched_job *job);

typedef struct sched_stats {
    uint64_t batches, sequences, tokens, jobs;
    size_t queued;          /* sequences waiting now */
    size_t queued_tokens;   /* their tokens */
    double compute_s;       /* seconds spent in forward passes */
    int last_batch;         /* sequences in the last batch */
} sched_stats;
void sched_get_stats(sched *s, sched_stats *out);

#endif
