/* The integer settings of every command in one table (as curl keeps its
 * options): the EMBEDDING_* variable, the flag that overrides it, the range,
 * the default, the commands that read it and a help line. The parsers read
 * them through opt_long and opt_flag (range and default from here), every
 * --help lists its command's rows (opt_help), and the README's table is
 * `cembed help variables` (opt_table; tests/integration/cli_errors.sh checks
 * that they agree). Text, boolean and path settings (EMBEDDING_MODEL,
 * EMBEDDING_CACHE, EMBEDDING_METRICS_AUTH, ...) are still parsed where they
 * are used and described in help.c. */
#include <string.h>

#include "options.h"

#define KB 1024L
#define MB (1024L * 1024L)

static const opt_def opts[] = {
    /* the HTTP service */
    {"EMBEDDING_PORT", "--port", 0, 65535, 8000, OPT_SERVE, "listen port (`make run PORT=P`)"},
    {"EMBEDDING_MAX_BODY_BYTES", NULL, KB, 1L << 32, 64 * MB, OPT_SERVE | OPT_WORKER, "bytes of a request body or job"},
    {"EMBEDDING_MAX_CHUNKS", NULL, 1, 10000000, 100000, OPT_SERVE | OPT_WORKER, "texts in one request or job"},
    {"EMBEDDING_MAX_JSON_DEPTH", NULL, 2, 1000, 32, OPT_SERVE | OPT_WORKER, "nesting of a request's JSON"},
    {"EMBEDDING_MAX_CONNECTIONS", NULL, 1, 1000000, 10000, OPT_SERVE, "open connections, all together"},
    {"EMBEDDING_MAX_CONNECTIONS_PER_IP", NULL, 1, 1000000, 256, OPT_SERVE, "open connections from one address"},
    {"EMBEDDING_HEADER_TIMEOUT", NULL, 1, 3600, 10, OPT_SERVE, "seconds a new connection has to send its headers"},
    {"EMBEDDING_IDLE_TIMEOUT", NULL, 1, 3600, 30, OPT_SERVE, "seconds a silent connection is kept"},
    {"EMBEDDING_MAX_QUEUED", NULL, 1, 100000000, 200000, OPT_SERVE, "sequences waiting for the model; then 429"},
    {"EMBEDDING_DRAIN_TIMEOUT", NULL, 1, 86400, 30, OPT_SERVE,
     "seconds SIGTERM waits for requests in flight before cancelling them"},
    /* batches and memory (serve and worker) */
    {"EMBEDDING_MAX_BATCH_SIZE", "--batch-size", 1, 4096, 64, OPT_SERVE | OPT_WORKER, "sequences per forward pass"},
    {"EMBEDDING_MIN_BATCH_SIZE", NULL, 1, 4096, 8, OPT_SERVE | OPT_WORKER,
     "the adaptive batch size never goes below this"},
    {"EMBEDDING_MAX_BATCH_TOKENS", NULL, 2, 1L << 20, 16384, OPT_SERVE | OPT_WORKER, "tokens per forward pass"},
    {"EMBEDDING_MAX_MEMORY_PERCENT", NULL, 1, 100, 70, OPT_SERVE | OPT_WORKER, "the share of the memory limit used"},
    {"EMBEDDING_MEMORY_LIMIT", NULL, 64 * MB, 1L << 50, 0, OPT_SERVE | OPT_WORKER,
     "bytes: the memory limit, for hosts whose limit cannot be read (else the cgroup's, or the RAM)"},
    /* the Redis worker */
    {"EMBEDDING_CLAIM_IDLE_MS", "--claim-idle-ms", 1, 86400000, 60000, OPT_WORKER,
     "another worker's job idle this long is claimed"},
    {"EMBEDDING_MAX_DELIVERIES", "--max-deliveries", 1, 1000, 5, OPT_WORKER, "then a failing job goes to cembed:dead"},
    {"EMBEDDING_RESULT_TTL", "--result-ttl", 1, 1L << 31, 86400, OPT_WORKER, "seconds a result is kept"},
    {"EMBEDDING_BLOCK_MS", NULL, 1, 60000, 2000, OPT_WORKER, "a read waits this long for jobs"},
    /* the vector cache and embed DIR */
    {"EMBEDDING_CACHE_MAX_MB", NULL, 1, 1L << 30, 1024, OPT_SERVE | OPT_WORKER | OPT_EMBED | OPT_CACHE,
     "MB of vectors the cache keeps (least recently used go first)"},
    {"EMBEDDING_PROGRESS_SECONDS", NULL, 0, 86400, 10, OPT_EMBED,
     "embed DIR logs its progress this often when not on a terminal"},
};

static const opt_def *find(const char *env) {
    for (size_t i = 0; i < CE_ARRAY_LEN(opts); i++)
        if (strcmp(opts[i].env, env) == 0) return &opts[i];
    CE_ASSERT(!"an EMBEDDING_* variable missing from app/options.c");
    return NULL;
}

const opt_def *opt_get(const char *env) { return find(env); }

int opt_long(const char *env, long *out) {
    const opt_def *o = find(env);
    *out = o->def;
    return cli_env_long(env, o->lo, o->hi, out);
}

int opt_flag(const char *env, const char *value, long *out) {
    const opt_def *o = find(env);
    if (!value || cli_parse_int(value, o->lo, o->hi, out)) {
        cli_error("%s needs an integer in [%ld, %ld]", o->flag ? o->flag : env, o->lo, o->hi);
        return EXIT_USAGE;
    }
    return 0;
}

/* A number as people read it: a power of two from 2^31 as such, bytes
 * (a variable named *_BYTES or *_LIMIT) in KiB or MiB when whole. */
static void human(const opt_def *o, long v, char *b, size_t n) {
    const size_t len = strlen(o->env);
    const int bytes = (len > 6 && strcmp(o->env + len - 6, "_BYTES") == 0) || (len > 6 && strcmp(o->env + len - 6, "_LIMIT") == 0);
    if (v < o->lo) snprintf(b, n, "detected");   /* a default no value can give: found at run time */
    else if (v >= (1L << 31) && (v & (v - 1)) == 0) snprintf(b, n, "2^%d", __builtin_ctzl((unsigned long)v));
    else if (bytes && v >= MB && v % MB == 0) snprintf(b, n, "%ld MiB", v / MB);
    else if (bytes && v >= KB && v % KB == 0) snprintf(b, n, "%ld KiB", v / KB);
    else snprintf(b, n, "%ld", v);
}

static void range(const opt_def *o, char *b, size_t n) {
    char lo[32], hi[32];
    human(o, o->lo, lo, sizeof lo);
    human(o, o->hi, hi, sizeof hi);
    snprintf(b, n, "%s to %s", lo, hi);
}

void opt_help(unsigned cmds, FILE *f) {
    fputs("\nnumbers (variable [flag]: meaning; range; default):\n", f);
    for (size_t i = 0; i < CE_ARRAY_LEN(opts); i++) {
        const opt_def *o = &opts[i];
        if (!(o->cmds & cmds)) continue;
        char r[80], d[32];
        range(o, r, sizeof r);
        human(o, o->def, d, sizeof d);
        fprintf(f, "  %s%s%s: %s; %s; %s\n", o->env, o->flag ? " " : "", o->flag ? o->flag : "", o->help, r, d);
    }
}

void opt_table(FILE *f) {
    static const char *const names[] = {"serve", "worker", "embed", "cache"};
    fputs("| variable | flag | commands | range | default | meaning |\n|---|---|---|---|---|---|\n", f);
    for (size_t i = 0; i < CE_ARRAY_LEN(opts); i++) {
        const opt_def *o = &opts[i];
        char r[80], d[32], cmds[96] = "";
        range(o, r, sizeof r);
        human(o, o->def, d, sizeof d);
        for (size_t k = 0; k < CE_ARRAY_LEN(names); k++)
            if (o->cmds & (1u << k)) snprintf(cmds + strlen(cmds), sizeof cmds - strlen(cmds), "%s%s", *cmds ? ", " : "", names[k]);
        fprintf(f, "| `%s` | %s%s%s | %s | %s | %s | %s |\n", o->env, o->flag ? "`" : "", o->flag ? o->flag : "",
                o->flag ? "`" : "", cmds, r, d, o->help);
    }
}
