/* The service runtime; see runtime.h. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "runtime.h"

/* The batch and memory settings (EMBEDDING_*), parsed once. */
typedef struct settings {
    long max_batch, min_batch, percent, max_tokens, forced;
    int adaptive;
} settings;

static int read_settings(const cli_common *c, settings *st) {
    *st = (settings){.adaptive = 1};
    if (opt_long("EMBEDDING_MAX_BATCH_SIZE", &st->max_batch) || opt_long("EMBEDDING_MAX_BATCH_TOKENS", &st->max_tokens) ||
        opt_long("EMBEDDING_MIN_BATCH_SIZE", &st->min_batch) || opt_long("EMBEDDING_MAX_MEMORY_PERCENT", &st->percent) ||
        opt_bool("EMBEDDING_ADAPTIVE_BATCHING", &st->adaptive) ||
        opt_long("EMBEDDING_MEMORY_LIMIT", &st->forced))   /* for hosts whose limit cannot be read */
        return EXIT_USAGE;
    if (c->batch_size) st->max_batch = c->batch_size;
    if (st->min_batch > st->max_batch) {
        cli_error("EMBEDDING_MIN_BATCH_SIZE=%ld is above the maximum batch size %ld", st->min_batch, st->max_batch);
        return EXIT_USAGE;
    }
    return 0;
}

/* Memory pressure (PSI): the threshold and the file, cgroup's or EMBEDDING_PSI_PATH. */
static int read_psi(runtime *rt) {
    if (opt_double("EMBEDDING_PSI_THRESHOLD", &rt->psi_threshold)) return EXIT_USAGE;
    if (gov_psi_path("/sys/fs/cgroup", "/proc/self/cgroup", rt->psi_path, sizeof rt->psi_path) == 0) rt->psi = rt->psi_path;
    const char *pp = NULL;   /* where a container shows PSI elsewhere */
    if (opt_text("EMBEDDING_PSI_PATH", &pp)) return EXIT_USAGE;
    if (pp) {
        if (gov_psi_avg10(pp) < 0) {
            cli_error("EMBEDDING_PSI_PATH=%s: not a readable PSI file (\"some avg10=...\")", pp);
            return EXIT_USAGE;
        }
        snprintf(rt->psi_path, sizeof rt->psi_path, "%s", pp);
        rt->psi = rt->psi_path;
    }
    if (rt->psi_threshold == 0) rt->psi = NULL;
    return 0;
}

/* The governor, from the memory limit found (or forced). */
static int open_governor(runtime *rt, const settings *st) {
    gov_limit limit;
    gov_find_limit("/sys/fs/cgroup", "/proc/self/cgroup", gov_physical_ram(), &limit);
    if (st->forced) {
        limit.bytes = (uint64_t)st->forced;
        snprintf(limit.source, sizeof limit.source, "EMBEDDING_MEMORY_LIMIT");
    }
    gov_config gc = {.min_batch = (int)st->min_batch, .max_batch = (int)st->max_batch, .percent = (int)st->percent,
                     .adaptive = st->adaptive};
    if (gov_new(&gc, &limit, &rt->g)) {
        cli_error("%s", cembed_last_error());
        return EXIT_USAGE;
    }
    gov_set_psi(rt->g, rt->psi, rt->psi_threshold);
    log_info("memory limit set to %.2f GB (%ld%% of %.2f GB, %s)", (double)gov_budget(rt->g) / 1e9, st->percent,
             (double)limit.bytes / 1e9, limit.source);
    return 0;
}

/* Every model named (distinct names, each within the batch's tokens). */
static int open_models(runtime *rt, const cli_common *c, const settings *st) {
    cembed_options o = cli_model_options(c, (int)st->max_batch);
    const int n_models = c->n_models > 0 ? c->n_models : 1;
    for (int k = 0; k < n_models; k++) {
        const char *dir = c->n_models > 0 ? c->model_dirs[k] : c->model_dir;
        if (cembed_model_open(dir, &o, &rt->models[k])) {
            cli_error("cannot open model %s: %s", dir, cembed_last_error());
            return EXIT_FAIL;
        }
        rt->n_models = k + 1;
        cembed_model_get_info(rt->models[k], &rt->infos[k]);
        const cembed_model_info *info = &rt->infos[k];
        for (int q = 0; q < k; q++)
            if (strcmp(rt->infos[q].name, info->name) == 0) {
                cli_error("two models are called %s: a request could not tell them apart", info->name);
                return EXIT_USAGE;
            }
        log_info("model loaded with %d threads, %s: %s (%d dimensions, %d tokens max)", info->threads, info->precision,
                 info->path, info->hidden, info->max_seq_len);
        if (st->max_tokens < info->max_seq_len) {
            cli_error("EMBEDDING_MAX_BATCH_TOKENS=%ld is below the sequence limit of %s, %d", st->max_tokens, info->name,
                      info->max_seq_len);
            return EXIT_USAGE;
        }
    }
    rt->m = rt->models[0];
    rt->info = rt->infos[0];
    const cembed_model_info *info = &rt->info;
    log_info("kernels for %s on %s: GEMM %s, attention %s (%s products), element-wise %s", info->precision, info->isa,
             info->gemm, info->kernels, info->attention, info->kernels);
    return 0;
}

/* The persistent cache: raw vectors, shared with `cembed embed`; a cache
 * that cannot be opened is logged and the service runs without it. */
static int open_cache(runtime *rt, const cli_common *c) {
    char cache_buf[4096];
    const char *cache_path;
    uint64_t cache_max;
    if (cli_cache_settings(NULL, 0, cache_buf, sizeof cache_buf, &cache_path, &cache_max)) return EXIT_USAGE;
    if (cache_path && cache_open(cache_path, cache_max, &rt->lookup)) {
        log_warn("cache %s: %s; running without it", cache_path, cembed_last_error());
        cache_path = NULL;
    }
    for (int k = 0; k < rt->n_models && cache_path; k++) {
        const cembed_model_info *mi = &rt->infos[k];
        const char *dir = c->n_models > 0 ? c->model_dirs[k] : c->model_dir;
        if (cache_scope_init(&rt->scopes[k], dir, mi->precision, mi->variant, mi->pooling, mi->max_seq_len) ||
            cache_writer_start(cache_path, cache_max, mi->hidden, &rt->writers[k])) {
            log_warn("cache %s: %s; running without it", cache_path, cembed_last_error());
            for (int q = 0; q < k; q++) cache_writer_stop(rt->writers[q]), rt->writers[q] = NULL;
            cache_close(rt->lookup);
            rt->lookup = NULL;
            cache_path = NULL;
        }
    }
    rt->writer = rt->writers[0];
    rt->scope = rt->scopes[0];
    if (cache_path) log_info("cache: %s (up to %.0f MB)", cache_path, cache_max / 1048576.0);
    return 0;
}

/* A model's batch workspace as the plan counts it: OUT *per_token, the
 * activations of one token, and *scratch, attention's per-thread K^T and V
 * of one sequence of its longest length L, which a batch holds once, not
 * once per token: f(L + 1) - f(L) and f(L) - L x that (f: the bytes of a
 * batch of that many tokens, exact). */
static void workspace_parts(const cembed_model *m, int L, size_t *per_token, size_t *scratch) {
    size_t fl, fl1, unused;
    cembed_workspace_bytes(m, L, &fl, &unused);
    cembed_workspace_bytes(m, L + 1, &fl1, &unused);
    *per_token = fl1 - fl;
    *scratch = fl - (size_t)L * *per_token;
}

/* Warms every model up (touches every weight), then sizes the batch
 * workspace and the request pool from what is left of the budget: one
 * workspace, the largest model's (the scheduler gives one back before
 * another runs): per token its activations, and once the attention
 * scratch of the longest sequence (a batch is planned at >= that many
 * tokens, so it always holds one that long). */
static int plan_memory(runtime *rt, const settings *st) {
    size_t per_token = 0, scratch = 0;
    int longest = 0;
    for (int k = 0; k < rt->n_models; k++) {
        const cembed_model_info *mi = &rt->infos[k];
        const int32_t warm[2] = {mi->cls_id >= 0 ? mi->cls_id : 0, mi->sep_id >= 0 ? mi->sep_id : 0};
        const int32_t *warm_ids[1] = {warm};
        const size_t warm_n[1] = {2};
        float *warm_out = malloc((size_t)mi->hidden * sizeof(float));
        if (!warm_out || cembed_embed_ids(rt->models[k], warm_ids, warm_n, 1, warm_out)) {
            cli_error("warm-up failed: %s", cembed_last_error());
            free(warm_out);
            return EXIT_FAIL;
        }
        free(warm_out);
        size_t per_tok, scr;
        workspace_parts(rt->models[k], mi->max_seq_len, &per_tok, &scr);
        if (k + 1 < rt->n_models) cembed_release_workspace(rt->models[k]);
        per_token = CE_MAX(per_token, per_tok);
        scratch = CE_MAX(scratch, scr);
        longest = CE_MAX(longest, mi->max_seq_len);
    }
    gov_trim(rt->g);
    /* what the process holds now, the embedding rows it will read from the
     * model files, and the attention scratch (in the fixed part: it does
     * not grow with the batch) */
    uint64_t fixed = gov_rss() + scratch;
    for (int k = 0; k < rt->n_models; k++) fixed += cembed_model_lazy_bytes(rt->models[k]);
    if (gov_plan(rt->g, fixed, per_token, (int)st->max_tokens, longest, &rt->batch_tokens)) {
        cli_error("%s", cembed_last_error());
        return EXIT_USAGE;
    }
    gov_stats gs;
    gov_get_stats(rt->g, &gs);
    log_info("memory plan: %.1f MB model and runtime, %.1f MB kept free for what no reservation counts (thread "
             "stacks, library buffers), %.1f MB batch workspace (%d tokens: %.1f MB activations + %.1f MB attention "
             "scratch), %.1f MB for requests", (gs.fixed - scratch) / 1048576.0, gs.slack / 1048576.0,
             (gs.workspace + scratch) / 1048576.0, rt->batch_tokens, gs.workspace / 1048576.0, scratch / 1048576.0,
             gs.pool / 1048576.0);
    if (rt->psi) log_info("memory pressure (PSI) from %s, threshold %.1f%%", rt->psi, rt->psi_threshold);
    return 0;
}

int runtime_open(runtime *rt, const cli_common *c) {
    memset(rt, 0, sizeof *rt);
    settings st;
    int rc = read_settings(c, &st);
    if (rc) return rc;
    rt->max_batch = (int)st.max_batch;
    if ((rc = read_psi(rt)) || (rc = open_governor(rt, &st))) return rc;
    /* Large blocks always come from mmap and go back to the kernel when
     * freed (glibc otherwise raises the threshold and keeps them), and two
     * arenas at most, so that freed memory leaves RSS. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_ARENA_MAX, 2);
    if ((rc = open_models(rt, c, &st)) || (rc = open_cache(rt, c))) return rc;
    return plan_memory(rt, &st);
}

void runtime_close(runtime *rt) {
    for (int k = 0; k < rt->n_models; k++) cache_writer_stop(rt->writers[k]);   /* stores what is queued */
    cache_close(rt->lookup);
    for (int k = 0; k < rt->n_models; k++) cembed_model_free(rt->models[k]);
    gov_free(rt->g);
    memset(rt, 0, sizeof *rt);
}
