/* The memory governor's state; see gov.h. */
#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "gov/gov.h"

uint64_t gov_physical_ram(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

uint64_t gov_rss(void) {
    long total = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &total, &resident) != 2) resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Reads a limit file: a number of bytes, or "max" / a huge v1 value = none. */
static int read_limit(const char *path, uint64_t *out) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char b[64] = {0};
    int ok = fgets(b, sizeof b, f) != NULL;
    fclose(f);
    if (!ok || strncmp(b, "max", 3) == 0) return -1;
    unsigned long long v = strtoull(b, NULL, 10);
    if (v == 0 || v >= (1ULL << 60)) return -1;   /* v1 "unlimited" is 2^63 rounded to pages */
    *out = v;
    return 0;
}

/* keeps the smallest memory limit of a cgroup directory, and where it was */
static void min_limit(const char *dir, const char *path, int v2, void *ctx) {
    gov_limit *out = ctx;
    char file[900];
    uint64_t v;
    snprintf(file, sizeof file, v2 ? "%s/memory.max" : "%s/memory.limit_in_bytes", dir);
    if (read_limit(file, &v) == 0 && v < out->bytes) {
        out->bytes = v;
        snprintf(out->source, sizeof out->source, "cgroup %s %s of %.100s", v2 ? "v2" : "v1",
                 v2 ? "memory.max" : "memory.limit_in_bytes", path);
    }
}

void gov_find_limit(const char *root, const char *self_cgroup, uint64_t ram, gov_limit *out) {
    out->bytes = ram;
    snprintf(out->source, sizeof out->source, "physical RAM");
    /* the limit may be set on this cgroup or on any ancestor: the smallest counts */
    cgroup_each_dir(root, self_cgroup, "memory", min_limit, out);
}

struct gov {
    gov_config c;
    gov_limit limit;
    uint64_t budget;
    pthread_mutex_t mu;
    int size;
    gov_stats stats;
    gov_probes p;
    char psi_path[600];
    double psi_threshold, last_psi;
    double grow_logged;         /* time_now() of the last batch growth logged at info */
};

/* ---- the real probes ---- */

static uint64_t real_rss(void *ctx) { return (void)ctx, gov_rss(); }
static double real_psi(void *ctx) {
    const gov *g = ctx;
    return g->psi_path[0] ? gov_psi_avg10(g->psi_path) : -1;
}
static void real_trim(void *ctx) { (void)ctx, malloc_trim(0); }
static double real_now(void *ctx) { return (void)ctx, time_now(); }

void gov_set_probes(gov *g, const gov_probes *p) { g->p = *p; }

void gov_set_psi(gov *g, const char *path, double threshold) {
    snprintf(g->psi_path, sizeof g->psi_path, "%s", path && threshold > 0 ? path : "");
    g->psi_threshold = path ? threshold : 0;
}

void gov_trim(gov *g) {
    g->p.trim(g->p.ctx);
    pthread_mutex_lock(&g->mu);
    g->stats.trims++;
    pthread_mutex_unlock(&g->mu);
}

int gov_plan(gov *g, uint64_t fixed, uint64_t per_token, int max_tokens, int min_tokens, int *tokens) {
    *tokens = 0;
    /* slack for what no reservation sees: thread stacks, the HTTP library's
     * and SQLite's buffers, the heap's fragmentation */
    const uint64_t slack = CE_MAX(GOV_SLACK_MIN, g->budget / 20);
    const uint64_t left = g->budget > fixed + slack ? g->budget - fixed - slack : 0;
    uint64_t t = per_token ? left / 2 / per_token : (uint64_t)max_tokens;
    if (t > (uint64_t)max_tokens) t = (uint64_t)max_tokens;
    if (t < (uint64_t)min_tokens)
        return base_err(CEMBED_EINVAL,
                        "the memory budget of %.1f MB leaves %.1f MB after the model (%.1f MB); one batch of %d tokens "
                        "needs %.1f MB and requests need as much again: raise EMBEDDING_MAX_MEMORY_PERCENT or the "
                        "memory limit",
                        g->budget / 1048576.0, left / 1048576.0, fixed / 1048576.0, min_tokens,
                        (double)per_token * min_tokens / 1048576.0);
    pthread_mutex_lock(&g->mu);
    g->stats.fixed = fixed;
    g->stats.slack = slack;
    g->stats.workspace = t * per_token;
    g->stats.pool = left - g->stats.workspace;
    g->stats.batch_tokens = (int)t;
    pthread_mutex_unlock(&g->mu);
    *tokens = (int)t;
    return 0;
}

uint64_t gov_pool(const gov *g) { return g->stats.pool; }

int gov_reserve(gov *g, uint64_t bytes) {
    /* measured RSS gates too: memory that no reservation sees (the heap's
     * fragmentation, libraries) must not carry the process past its budget;
     * before refusing on it, give the heap's free memory back and look again */
    const uint64_t limit = g->budget - CE_MIN(g->budget, g->stats.slack);   /* the slack stays free */
    uint64_t rss = g->p.rss(g->p.ctx);
    if (rss + bytes > limit) {
        gov_trim(g);
        rss = g->p.rss(g->p.ctx);
    }
    if (rss + bytes > limit) {
        pthread_mutex_lock(&g->mu);
        g->stats.refusals++;
        pthread_mutex_unlock(&g->mu);
        return base_err(CEMBED_ELIMIT, "needs %.1f MB of memory; the process holds %.1f MB of its %.1f MB budget now "
                        "(%.1f MB kept as slack)", bytes / 1048576.0, rss / 1048576.0, g->budget / 1048576.0,
                        g->stats.slack / 1048576.0);
    }
    pthread_mutex_lock(&g->mu);
    const uint64_t pool = g->stats.pool, used = g->stats.reserved;
    int ok = bytes <= pool - CE_MIN(pool, used);
    if (ok) {
        g->stats.reserved += bytes;
        g->stats.reserved_peak = CE_MAX(g->stats.reserved_peak, g->stats.reserved);
    } else {
        g->stats.refusals++;
    }
    pthread_mutex_unlock(&g->mu);
    if (ok) return 0;
    return base_err(CEMBED_ELIMIT, "needs %.1f MB of memory; %.1f MB of the %.1f MB request pool is free now",
                    bytes / 1048576.0, (pool - CE_MIN(pool, used)) / 1048576.0, pool / 1048576.0);
}

void gov_unreserve(gov *g, uint64_t bytes) {
    pthread_mutex_lock(&g->mu);
    CE_ASSERT(bytes <= g->stats.reserved);
    g->stats.reserved -= bytes;
    pthread_mutex_unlock(&g->mu);
}

double gov_psi_avg10(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    /* a PSI file is two short lines: read one bounded piece, so that a path
     * that never ends (/dev/zero, a pipe) cannot hold the caller */
    char b[1024];
    const size_t n = fread(b, 1, sizeof b - 1, f);
    fclose(f);
    b[n] = 0;
    if (memchr(b, 0, n)) return -1;   /* not text */
    double v = -1;
    for (const char *line = b; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, "some ", 5) == 0) {
            const char *p = strstr(line, "avg10=");
            char *end;
            if (p && (v = strtod(p + 6, &end)) >= 0 && end != p + 6) break;
            v = -1;
        }
    return v;
}

int gov_psi_path(const char *root, const char *self_cgroup, char *path, size_t n) {
    FILE *f = fopen(self_cgroup, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "0::", 3) != 0) continue;
        snprintf(path, n, "%s%s/memory.pressure", root, strcmp(line + 3, "/") == 0 ? "" : line + 3);
        if (gov_psi_avg10(path) >= 0) {
            fclose(f);
            return 0;
        }
    }
    if (f) fclose(f);
    snprintf(path, n, "/proc/pressure/memory");
    return gov_psi_avg10(path) >= 0 ? 0 : -1;
}

int gov_new(const gov_config *c, const gov_limit *limit, gov **out) {
    *out = NULL;
    if (c->min_batch < 1 || c->max_batch < c->min_batch)
        return base_err(CEMBED_EINVAL, "batch sizes: EMBEDDING_MIN_BATCH_SIZE %d must be in [1, EMBEDDING_MAX_BATCH_SIZE %d]",
                        c->min_batch, c->max_batch);
    if (c->percent < 1 || c->percent > 100)
        return base_err(CEMBED_EINVAL, "EMBEDDING_MAX_MEMORY_PERCENT %d must be in [1, 100]", c->percent);
    gov *g = base_calloc(1, sizeof *g);
    if (!g) return base_err(CEMBED_ENOMEM, "out of memory");
    g->c = *c;
    g->limit = *limit;
    g->budget = limit->bytes / 100 * (uint64_t)c->percent;
    g->size = c->adaptive ? c->min_batch : c->max_batch;
    g->p = (gov_probes){.rss = real_rss, .psi = real_psi, .trim = real_trim, .now = real_now, .ctx = g};
    pthread_mutex_init(&g->mu, NULL);
    *out = g;
    return 0;
}

void gov_free(gov *g) {
    if (!g) return;
    pthread_mutex_destroy(&g->mu);
    base_free(g);
}

uint64_t gov_budget(const gov *g) { return g->budget; }
const gov_limit *gov_get_limit(const gov *g) { return &g->limit; }

int gov_batch_size(gov *g) {
    pthread_mutex_lock(&g->mu);
    int s = g->size;
    pthread_mutex_unlock(&g->mu);
    return s;
}

int gov_over_budget(const gov *g, uint64_t rss, uint64_t estimate) { return rss + estimate > g->budget; }

void gov_good_batch(gov *g) {
    pthread_mutex_lock(&g->mu);
    const int before = g->size;
    if (g->c.adaptive && g->size < g->c.max_batch) g->size = CE_MIN(g->size + 4, g->c.max_batch);
    const int after = g->size, trim = ++g->stats.batches % 10 == 0;
    /* growth comes after every batch: at info at most once per 10 s (and on reaching the maximum), else debug */
    const double now = time_now();
    const int loud = after != before && (now - g->grow_logged >= 10.0 || after == g->c.max_batch);
    if (loud) g->grow_logged = now;
    pthread_mutex_unlock(&g->mu);
    if (after != before) log_msg(loud ? LOG_INFO : LOG_DEBUG, "increased batch size to %d", after);
    if (trim) { /* the seed's periodic collection */
        gov_trim(g);
        log_debug("memory after chunk %llu: %.1f MB RSS (periodic trim)", (unsigned long long)g->stats.batches,
                  (double)g->p.rss(g->p.ctx) / 1048576.0);
    }
}

int gov_check_batch(gov *g, uint64_t extra, int k) {
    const uint64_t rss = g->p.rss(g->p.ctx);
    if (gov_over_budget(g, rss, extra)) {
        log_warn("memory pressure detected, forcing trim: RSS %.1f MB + batch %.1f MB > budget %.1f MB",
                 rss / 1048576.0, extra / 1048576.0, g->budget / 1048576.0);
    } else if (g->psi_threshold > 0 && g->p.now(g->p.ctx) - g->last_psi > 10) {
        const double psi = g->p.psi(g->p.ctx);
        if (psi < g->psi_threshold) return 0;
        g->last_psi = g->p.now(g->p.ctx);
        pthread_mutex_lock(&g->mu);
        g->stats.psi_events++;
        pthread_mutex_unlock(&g->mu);
        log_warn("memory pressure detected, forcing trim: PSI some avg10 %.1f%% >= %.1f%% (%s)", psi,
                 g->psi_threshold, g->psi_path[0] ? g->psi_path : "probe");
    } else {
        return 0;
    }
    gov_trim(g);
    const int size = gov_pressure(g);
    log_warn("reduced batch size to %d", size);
    if (k > 1)
        log_info("retrying chunk %llu with smaller batch size (%d texts instead of %d)",
                 (unsigned long long)g->stats.batches + 1, CE_MIN(size, k), k);
    return 1;
}

int gov_pressure(gov *g) {
    pthread_mutex_lock(&g->mu);
    g->stats.pressure_events++;
    g->size = CE_MAX(1, g->size / 2);
    int s = g->size;
    pthread_mutex_unlock(&g->mu);
    return s;
}

void gov_get_stats(gov *g, gov_stats *out) {
    pthread_mutex_lock(&g->mu);
    *out = g->stats;
    out->batch_size = g->size;
    pthread_mutex_unlock(&g->mu);
}
