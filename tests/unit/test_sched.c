/* The scheduler's cancellation (sched_cancel, sched_cancel_all): a
 * request whose client left gives its untaken sequences back at once, the
 * others run on untouched, and a cancelled job still gets its on_done. */
#include <stdatomic.h>
#include <unistd.h>

#include "sched/sched.h"
#include "test.h"
#include "tiny_model.h"

static cembed_model *open_tiny_sched(const char *name) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(), name);
    const tiny_spec sp = {.vocab = 64, .hidden = 32, .layers = 2, .heads = 2, .inter = 48, .max_pos = 40};
    if (tiny_model_write(dir, &sp, 5) != 0) return NULL;
    cembed_options o = {.threads = 1, .max_batch = 4};
    cembed_model *m = NULL;
    return cembed_model_open(dir, &o, &m) ? NULL : m;
}

static void count_done(void *ctx) { atomic_fetch_add((atomic_int *)ctx, 1); }

TEST(sched_cancel_drops_untaken_sequences_and_calls_on_done) {
    cembed_model *m = open_tiny_sched("sched-cancel");
    if (!m) {
        FAIL_AT("cannot open the tiny model: %s", cembed_last_error());
        return;
    }
    sched *s;
    const sched_opts so = {.max_batch = 2, .max_batch_tokens = 1024};
    CHECK_INT(sched_new(m, &so, &s), 0);
    enum { BIG = 4000, SMALL = 3 };
    static int32_t seq[6] = {2, 5, 6, 7, 8, 3};
    const int32_t **ids = calloc(BIG, sizeof *ids);
    size_t *n_ids = calloc(BIG, sizeof *n_ids);
    float *out = calloc((size_t)BIG * 32, sizeof *out), small_out[SMALL * 32];
    for (int i = 0; i < BIG; i++) ids[i] = seq, n_ids[i] = 6;
    atomic_int big_done = 0;
    sched_job big = {.ids = ids, .n_ids = n_ids, .n = BIG, .out = out, .on_done = count_done, .ctx = &big_done};
    sched_job small = {.ids = ids, .n_ids = n_ids, .n = SMALL, .out = small_out};
    CHECK_INT(sched_submit(s, &big), 0);
    const size_t dropped = sched_cancel(s, &big);
    CHECK(dropped > 0 && dropped <= BIG);
    CHECK_INT(sched_cancel(s, &big), 0);   /* twice: nothing more */
    CHECK_INT(sched_submit(s, &small), 0);
    sched_wait(s, &small);
    CHECK_INT(small.failed, 0);
    CHECK_INT(small.cancelled, 0);
    for (int spin = 0; spin < 2000 && atomic_load(&big_done) == 0; spin++) usleep(1000);
    CHECK_INT(atomic_load(&big_done), 1);   /* on_done once, after the batch in hand */
    CHECK(big.cancelled && big.failed == dropped && big.done == big.n);
    sched_stats st;
    sched_get_stats(s, &st);
    CHECK_INT(st.queued, 0);
    CHECK_INT(st.queued_tokens, 0);
    /* cancel_all: every queued job ends, and later submissions are refused */
    atomic_int all_done = 0;
    sched_job a = {.ids = ids, .n_ids = n_ids, .n = BIG, .out = out, .on_done = count_done, .ctx = &all_done};
    CHECK_INT(sched_submit(s, &a), 0);
    sched_cancel_all(s);
    for (int spin = 0; spin < 2000 && atomic_load(&all_done) == 0; spin++) usleep(1000);
    CHECK_INT(atomic_load(&all_done), 1);
    sched_job late = {.ids = ids, .n_ids = n_ids, .n = SMALL, .out = small_out};
    CHECK(sched_submit(s, &late) != 0);
    sched_free(s);
    cembed_model_free(m);
    free(ids), free(n_ids), free(out);
}

/* A long sequence among short ones: the one that fills the token budget
 * runs alone, in the batch after the one it did not fit into (not after
 * every short sequence queued ahead of it), and the short ones keep
 * batching as many as fit. Batch numbers come from on_vector (called
 * outside the scheduler's mutex, before the batch is counted). */
enum { LONG_SHORTS = 200, LONG_TOKENS = 24, SHORT_TOKENS = 6 };

typedef struct long_ctx {
    sched *s;
    atomic_int z_in, z_go;
    int batch_of[LONG_SHORTS + 1];   /* [LONG_SHORTS]: the long one's */
} long_ctx;

static int batch_now(sched *s) {
    sched_stats st;
    sched_get_stats(s, &st);
    return (int)st.batches + 1;
}

static void on_blocker(void *ctx, size_t index, const float *vec) {
    (void)index, (void)vec;
    long_ctx *c = ctx;
    atomic_store(&c->z_in, 1);
    for (int spin = 0; spin < 5000 && !atomic_load(&c->z_go); spin++) usleep(1000);
}

static void on_short(void *ctx, size_t index, const float *vec) {
    (void)vec;
    long_ctx *c = ctx;
    c->batch_of[index] = batch_now(c->s);
}

static void on_long(void *ctx, size_t index, const float *vec) {
    (void)index, (void)vec;
    long_ctx *c = ctx;
    c->batch_of[LONG_SHORTS] = batch_now(c->s);
}

TEST(sched_long_sequence_runs_alone_and_is_not_starved) {
    cembed_model *m = open_tiny_sched("sched-long");
    if (!m) {
        FAIL_AT("cannot open the tiny model: %s", cembed_last_error());
        return;
    }
    static long_ctx c;
    memset(&c, 0, sizeof c);
    const sched_opts so = {.max_batch = 4, .max_batch_tokens = LONG_TOKENS};
    CHECK_INT(sched_new(m, &so, &c.s), 0);
    static int32_t shortseq[SHORT_TOKENS] = {2, 5, 6, 7, 8, 3}, longseq[LONG_TOKENS];
    for (int t = 0; t < LONG_TOKENS; t++) longseq[t] = 4 + t;
    static const int32_t *ids[LONG_SHORTS];
    static size_t n_ids[LONG_SHORTS];
    for (int i = 0; i < LONG_SHORTS; i++) ids[i] = shortseq, n_ids[i] = SHORT_TOKENS;
    const int32_t *long_ids[1] = {longseq};
    const size_t long_n[1] = {LONG_TOKENS};
    static float out[(LONG_SHORTS + 2) * 32];
    sched_job z = {.ids = ids, .n_ids = n_ids, .n = 1, .out = out, .on_vector = on_blocker, .ctx = &c};
    sched_job a = {.ids = ids, .n_ids = n_ids, .n = LONG_SHORTS, .out = out, .on_vector = on_short, .ctx = &c};
    sched_job b = {.ids = long_ids, .n_ids = long_n, .n = 1, .out = out, .on_vector = on_long, .ctx = &c};
    CHECK_INT(sched_submit(c.s, &z), 0);
    for (int spin = 0; spin < 5000 && !atomic_load(&c.z_in); spin++) usleep(1000);
    CHECK_INT(sched_submit(c.s, &a), 0);   /* queued ahead of the long one */
    CHECK_INT(sched_submit(c.s, &b), 0);
    atomic_store(&c.z_go, 1);
    sched_wait(c.s, &a);
    sched_wait(c.s, &b);
    const int lb = c.batch_of[LONG_SHORTS];
    int per_batch[LONG_SHORTS + 8] = {0}, shared = 0, most = 0;
    for (int i = 0; i < LONG_SHORTS; i++) {
        shared += c.batch_of[i] == lb;
        if (c.batch_of[i] > 0 && c.batch_of[i] < LONG_SHORTS + 8) {
            const int n = ++per_batch[c.batch_of[i]];
            most = CE_MAX(most, n);
        }
    }
    CHECK_MSG(lb >= 2 && lb <= 4, "the long sequence ran in batch %d", lb);   /* blocker 1, shorts 2, long 3 */
    CHECK_INT(shared, 0);
    CHECK_INT(most, LONG_TOKENS / SHORT_TOKENS);
    CHECK_INT(a.failed + b.failed, 0);
    sched_free(c.s);
    cembed_model_free(m);
}
