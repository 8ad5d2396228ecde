/* gov: the memory governor's state, per DESIGN.md.
 *
 * Limit = min(physical RAM, the cgroup's limit: v2 memory.max, v1
 * memory.limit_in_bytes, found through /proc/self/cgroup); budget = limit x
 * percent / 100. The adaptive batch size starts at min_batch, grows by 4
 * after each good batch up to max_batch, and halves (not below 1) on
 * pressure, which is "measured RSS + the batch's estimated bytes > budget".
 * This file holds the state and the arithmetic; the scheduler asks it before
 * every batch. Thread-safe: one mutex inside.
 */
#ifndef CEMBED_GOV_H
#define CEMBED_GOV_H

#include "base/base.h"

typedef struct gov_config {
    int min_batch, max_batch;   /* sequences */
    int percent;                /* of the memory limit, 1..100 */
    int adaptive;               /* 0: always max_batch */
} gov_config;

typedef struct gov_limit {
    uint64_t bytes;
    char source[160];           /* "cgroup v2 memory.max of /x" | "physical RAM" */
} gov_limit;

/* Finds the memory limit. root is "/sys/fs/cgroup" and self_cgroup
 * "/proc/self/cgroup" outside tests. Cannot fail: RAM is the fallback. */
void gov_find_limit(const char *root, const char *self_cgroup, uint64_t ram_bytes, gov_limit *out);
uint64_t gov_physical_ram(void);
/* Resident bytes of this process (/proc/self/statm): the real RSS probe. */
uint64_t gov_rss(void);

/* What the policy measures and does, apart from the policy, so that tests
 * drive it with fakes. The real ones: RSS from /proc/self/statm, PSI from
 * the file set by gov_set_psi, malloc_trim(0), time_now(). */
typedef struct gov_probes {
    uint64_t (*rss)(void *ctx);
    double (*psi)(void *ctx);   /* "some avg10" percentage, -1 when unknown */
    void (*trim)(void *ctx);    /* give the heap's free memory back to the system */
    double (*now)(void *ctx);   /* seconds */
    void *ctx;
} gov_probes;

typedef struct gov gov;
/* OUT: *out (with the real probes). Fails with EINVAL (names the setting) or ENOMEM. */
int gov_new(const gov_config *c, const gov_limit *limit, gov **out);
void gov_set_probes(gov *g, const gov_probes *p);
/* PSI as pressure: path (copied) at or over threshold percent; NULL or 0 = off. */
void gov_set_psi(gov *g, const char *path, double threshold);
void gov_free(gov *g);
uint64_t gov_budget(const gov *g);
const gov_limit *gov_get_limit(const gov *g);
int gov_batch_size(gov *g);
/* 1 if rss + estimate would pass the budget. */
int gov_over_budget(const gov *g, uint64_t rss, uint64_t estimate);
/* Before a batch of k sequences that would newly touch extra bytes: on
 * pressure (measured RSS + extra over the budget, or PSI at or over its
 * threshold, acted on at most once per 10 s as avg10 moves slowly): log,
 * trim, halve the batch size and return 1: the caller gives its batch
 * workspace back and, when k > 1, rebuilds the batch smaller. Else 0. */
int gov_check_batch(gov *g, uint64_t extra, int k);
/* After a batch that fit: grow by 4 (adaptive); every 10th, the periodic trim. */
void gov_good_batch(gov *g);
/* On pressure: halve. Returns the new size. */
int gov_pressure(gov *g);
/* Trims (the probe) and counts it. */
void gov_trim(gov *g);

/* ---- the plan and reservations ----
 * At start the service measures what it holds with the model loaded and
 * warmed (fixed), keeps a slack (5% of the budget, at least GOV_SLACK_MIN)
 * for memory no reservation sees, and sizes the batch workspace from what is
 * left: half of it, at most max_tokens tokens of per_token bytes, at least one sequence
 * of min_tokens (else EINVAL: the budget cannot hold one batch). The rest
 * is the request pool. A request reserves its bytes from the pool before
 * it allocates them and releases them when freed; a reservation that does
 * not fit now is refused (the caller answers 503 + Retry-After), one that
 * could never fit is too large (413). OUT: *tokens, the batch token cap. */
#define GOV_SLACK_MIN (8u << 20)
int gov_plan(gov *g, uint64_t fixed, uint64_t per_token, int max_tokens, int min_tokens, int *tokens);
uint64_t gov_pool(const gov *g);
/* 0, or ELIMIT (message: needed, free, pool) when bytes do not fit the
 * pool now, or when measured RSS plus bytes would pass the budget (after a
 * malloc_trim). */
int gov_reserve(gov *g, uint64_t bytes);
void gov_unreserve(gov *g, uint64_t bytes);

/* Memory pressure stall information: the "some avg10" percentage of
 * path (a cgroup v2 memory.pressure, or /proc/pressure/memory); -1 when
 * it cannot be read (kernels without PSI). */
double gov_psi_avg10(const char *path);
/* The PSI file for this process: its cgroup v2 memory.pressure if there is
 * one, else the system's. OUT: path[0..n). Returns 0, or -1 without PSI. */
int gov_psi_path(const char *root, const char *self_cgroup, char *path, size_t n);

typedef struct gov_stats {
    uint64_t pressure_events, psi_events, trims, batches, refusals;
    uint64_t fixed, slack, workspace, pool, reserved, reserved_peak;
    int batch_size, batch_tokens;
} gov_stats;
void gov_get_stats(gov *g, gov_stats *out);

#endif
