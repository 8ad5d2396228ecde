/* `cembed serve`: the HTTP service. Signals are blocked in every thread and
 * taken here with sigwait, so SIGTERM/SIGINT start a drain (no new requests,
 * the ones in flight complete) and the process exits 0. */
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cli.h"
#include "http/http.h"

int cmd_serve(int argc, char **argv) {
    cli_common c;
    if (cli_common_init(&c)) return EXIT_USAGE;
    const char *host = getenv("EMBEDDING_HOST");
    if (!host || !*host) host = "127.0.0.1";
    long port = 8000, max_batch = 64, min_batch = 8, percent = 70, max_tokens = 16384, max_body = 64L << 20, max_chunks = 100000, depth = 32,
         conns = 64, idle = 30, queue = 200000;
    if (cli_env_long("EMBEDDING_PORT", 0, 65535, &port) || cli_env_long("EMBEDDING_MAX_BATCH_SIZE", 1, 4096, &max_batch) ||
        cli_env_long("EMBEDDING_MAX_BATCH_TOKENS", 2, 1 << 20, &max_tokens) ||
        cli_env_long("EMBEDDING_MAX_BODY_BYTES", 1024, 1L << 32, &max_body) ||
        cli_env_long("EMBEDDING_MAX_CHUNKS", 1, 10000000, &max_chunks) || cli_env_long("EMBEDDING_MAX_JSON_DEPTH", 2, 1000, &depth) ||
        cli_env_long("EMBEDDING_MAX_CONNECTIONS", 1, 10000, &conns) || cli_env_long("EMBEDDING_IDLE_TIMEOUT", 1, 3600, &idle) ||
        cli_env_long("EMBEDDING_MAX_QUEUED", 1, 100000000, &queue) ||
        cli_env_long("EMBEDDING_MIN_BATCH_SIZE", 1, 4096, &min_batch) ||
        cli_env_long("EMBEDDING_MAX_MEMORY_PERCENT", 1, 100, &percent))
        return EXIT_USAGE;
    int adaptive = 1;
    const char *ab = getenv("EMBEDDING_ADAPTIVE_BATCHING");
    if (ab && *ab) {
        if (strcmp(ab, "true") == 0 || strcmp(ab, "1") == 0) adaptive = 1;
        else if (strcmp(ab, "false") == 0 || strcmp(ab, "0") == 0) adaptive = 0;
        else {
            cli_error("EMBEDDING_ADAPTIVE_BATCHING=%s: must be true or false", ab);
            return EXIT_USAGE;
        }
    }
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0) {
            if (i + 1 >= argc || cli_parse_int(argv[++i], 0, 65535, &port)) {
                cli_error("--port needs an integer in [0, 65535]");
                return EXIT_USAGE;
            }
        } else {
            cli_error("unknown argument %s", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (c.batch_size) max_batch = c.batch_size;
    if (min_batch > max_batch) {
        cli_error("EMBEDDING_MIN_BATCH_SIZE=%ld is above the maximum batch size %ld", min_batch, max_batch);
        return EXIT_USAGE;
    }
    gov_limit limit;
    gov_find_limit("/sys/fs/cgroup", "/proc/self/cgroup", gov_physical_ram(), &limit);
    long forced = 0;   /* an operator's override, for hosts whose limit cannot be read */
    if (cli_env_long("EMBEDDING_MEMORY_LIMIT", 64L << 20, 1L << 50, &forced)) return EXIT_USAGE;
    if (forced) {
        limit.bytes = (uint64_t)forced;
        snprintf(limit.source, sizeof limit.source, "EMBEDDING_MEMORY_LIMIT");
    }
    gov_config gc = {.min_batch = (int)min_batch, .max_batch = (int)max_batch, .percent = (int)percent,
                     .adaptive = adaptive};
    gov *g;
    if (gov_new(&gc, &limit, &g)) {
        cli_error("%s", cembed_last_error());
        return EXIT_USAGE;
    }
    log_info("memory limit set to %.2f GB (%ld%% of %.2f GB, %s)", (double)gov_budget(g) / 1e9, percent,
             (double)limit.bytes / 1e9, limit.source);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Large blocks always come from mmap and go back to the kernel when
     * freed (glibc otherwise raises the threshold and keeps them), and two
     * arenas at most, so that freed memory leaves RSS. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_ARENA_MAX, 2);
    double psi_threshold = 10;
    const char *pt = getenv("EMBEDDING_PSI_THRESHOLD");
    if (pt && *pt) {
        char *end;
        psi_threshold = strtod(pt, &end);
        if (*end || !(psi_threshold >= 0 && psi_threshold <= 100)) {
            cli_error("EMBEDDING_PSI_THRESHOLD=%s: must be a percentage in [0, 100] (0 turns PSI off)", pt);
            gov_free(g);
            return EXIT_USAGE;
        }
    }
    char psi_path[600];
    int have_psi = gov_psi_path("/sys/fs/cgroup", "/proc/self/cgroup", psi_path, sizeof psi_path) == 0;
    const char *pp = getenv("EMBEDDING_PSI_PATH");   /* where a container shows PSI elsewhere */
    if (pp && *pp) {
        if (gov_psi_avg10(pp) < 0) {
            cli_error("EMBEDDING_PSI_PATH=%s: not a readable PSI file (\"some avg10=...\")", pp);
            gov_free(g);
            return EXIT_USAGE;
        }
        snprintf(psi_path, sizeof psi_path, "%s", pp);
        have_psi = 1;
    }
    cembed_options o = {.threads = c.threads, .max_batch = (int)max_batch, .max_seq_len = c.max_seq_len};
    cembed_model *m;
    if (cembed_model_open(c.model_dir, &o, &m)) {
        cli_error("cannot open model %s: %s", c.model_dir, cembed_last_error());
        gov_free(g);
        return EXIT_FAIL;
    }
    cembed_model_info info;
    cembed_model_get_info(m, &info);
    log_info("model loaded with %d threads: %s (%d dimensions, %d tokens max)", info.threads, info.path, info.hidden,
             info.max_seq_len);
    if (max_tokens < info.max_seq_len) {
        cli_error("EMBEDDING_MAX_BATCH_TOKENS=%ld is below the model's sequence limit of %d", max_tokens, info.max_seq_len);
        cembed_model_free(m);
        gov_free(g);
        return EXIT_USAGE;
    }
    /* the persistent cache: raw vectors, shared with `cembed embed`; a cache
     * that cannot be opened is logged and the service runs without it */
    char cache_buf[4096];
    const char *cache_path;
    uint64_t cache_max;
    if (cli_cache_settings(NULL, 0, cache_buf, sizeof cache_buf, &cache_path, &cache_max)) {
        cembed_model_free(m);
        gov_free(g);
        return EXIT_USAGE;
    }
    cache *lookup = NULL;
    cache_writer *writer = NULL;
    cache_scope scope = {.normalize = 0, .max_seq_len = info.max_seq_len};
    snprintf(scope.precision, sizeof scope.precision, "fp32");
    snprintf(scope.pooling, sizeof scope.pooling, "%s", info.pooling);
    if (cache_path && (cache_fingerprint_dir(c.model_dir, scope.fingerprint) ||
                       cache_open(cache_path, cache_max, &lookup) ||
                       cache_writer_start(cache_path, cache_max, info.hidden, &writer))) {
        log_warn("cache %s: %s; serving without it", cache_path, cembed_last_error());
        cache_close(lookup);
        lookup = NULL;
        cache_path = NULL;
    }
    if (cache_path) log_info("cache: %s (up to %.0f MB)", cache_path, cache_max / 1048576.0);
    /* warm up (touches every weight), then size the batch workspace and the
     * request pool from what is left of the budget */
    const int32_t warm[2] = {info.cls_id, info.sep_id};
    const int32_t *warm_ids[1] = {warm};
    const size_t warm_n[1] = {2};
    float *warm_out = malloc((size_t)info.hidden * sizeof(float));
    if (!warm_out || cembed_embed_ids(m, warm_ids, warm_n, 1, warm_out)) {
        cli_error("warm-up failed: %s", cembed_last_error());
        free(warm_out);
        cache_writer_stop(writer);
        cache_close(lookup);
        cembed_model_free(m);
        gov_free(g);
        return EXIT_FAIL;
    }
    free(warm_out);
    malloc_trim(0);
    size_t per_token, unused;
    cembed_workspace_bytes(m, 1, &per_token, &unused);
    int batch_tokens;
    const uint64_t fixed = gov_rss();
    if (gov_plan(g, fixed, per_token, (int)max_tokens, info.max_seq_len, &batch_tokens)) {
        cli_error("%s", cembed_last_error());
        cache_writer_stop(writer);
        cache_close(lookup);
        cembed_model_free(m);
        gov_free(g);
        return EXIT_USAGE;
    }
    gov_stats gs;
    gov_get_stats(g, &gs);
    log_info("memory plan: %.1f MB model and runtime, %.1f MB slack, %.1f MB batch workspace (%d tokens), %.1f MB "
             "for requests", gs.fixed / 1048576.0, gs.slack / 1048576.0, gs.workspace / 1048576.0, batch_tokens,
             gs.pool / 1048576.0);
    if (have_psi && psi_threshold > 0) log_info("memory pressure (PSI) from %s, threshold %.1f%%", psi_path, psi_threshold);
    http_opts ho = {
        .host = host, .port = (int)port, .max_body_bytes = (size_t)max_body, .max_chunks = (size_t)max_chunks,
        .max_depth = (int)depth, .max_connections = (int)conns, .idle_timeout_s = (int)idle,
        .sched = {.max_batch = (int)max_batch, .max_batch_tokens = batch_tokens, .max_queued = (size_t)queue,
                  .gov = g, .psi_path = have_psi ? psi_path : NULL, .psi_threshold = psi_threshold},
        .cache = lookup, .cache_writer = writer, .cache_scope = scope,
    };
    http_server *s;
    if (http_server_start(m, &ho, &s)) {
        cli_error("%s", cembed_last_error());
        cache_writer_stop(writer);
        cache_close(lookup);
        cembed_model_free(m);
        gov_free(g);
        return EXIT_FAIL;
    }
    log_info("listening on http://%s:%d", host, http_server_port(s));
    int sig = 0;
    sigwait(&sigs, &sig);
    log_info("received %s: draining in-flight requests", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    http_server_stop(s);
    cache_writer_stop(writer);   /* stores what is queued */
    cache_close(lookup);
    cembed_model_free(m);
    gov_free(g);
    log_info("stopped");
    return EXIT_OK;
}
