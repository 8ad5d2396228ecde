/* The settings of every command in one table (as curl keeps its options):
 * the EMBEDDING_* variable, the flag that overrides it, the range (numbers)
 * or values (text, choices, booleans, paths), the default, the commands
 * that read it and a help line. Every setting is parsed here, by opt_parse
 * through its row: the variable with opt_long / opt_text / opt_bool, then
 * the flag with opt_flag / opt_take_long / opt_take_text, so the range, the
 * values and the message that names the variable or flag and what it takes
 * come from one place (EMBEDDING_PSI_THRESHOLD, a percentage with
 * decimals, has opt_double). app/runtime.c still reads its three
 * (EMBEDDING_ADAPTIVE_BATCHING, _PSI_THRESHOLD, _PSI_PATH) itself: they go
 * to opt_bool, opt_double and opt_text. Every --help lists its command's rows
 * (opt_help), and the README's table is `cembed help variables` (opt_table;
 * tests/integration/cli_errors.sh checks that they agree). */
#include <stdlib.h>
#include <string.h>

#include "options.h"

#define KB 1024L
#define MB (1024L * 1024L)
/* a number; a text, boolean or path setting */
#define NUM(env, flag, lo, hi, def, cmds, help) {env, flag, lo, hi, def, cmds, help, OPT_NUMBER, NULL, NULL, NULL, NULL}
#define SETTING(type, env, flag, cmds, values, def, help) {env, flag, 0, 0, 0, cmds, help, type, values, def, NULL, NULL}
/* one of values (or of also, words taken but not listed) */
#define CHOICE(env, flag, cmds, values, also, def, help) {env, flag, 0, 0, 0, cmds, help, OPT_CHOICE, values, def, also, NULL}
#define MODEL_CMDS (OPT_SERVE | OPT_WORKER | OPT_EMBED | OPT_TOKENIZE | OPT_RERANK | OPT_INFO)

static const opt_def opts[] = {
    /* the HTTP service */
    NUM("EMBEDDING_PORT", "--port", 0, 65535, 8000, OPT_SERVE, "listen port (`make run PORT=P`)"),
    NUM("EMBEDDING_MAX_BODY_BYTES", NULL, KB, 1L << 32, 64 * MB, OPT_SERVE | OPT_WORKER,
        "bytes of a request body or job"),
    NUM("EMBEDDING_MAX_CHUNKS", NULL, 1, 10000000, 100000, OPT_SERVE | OPT_WORKER, "texts in one request or job"),
    NUM("EMBEDDING_MAX_JSON_DEPTH", NULL, 2, 1000, 32, OPT_SERVE | OPT_WORKER, "nesting of a request's JSON"),
    NUM("EMBEDDING_MAX_CONNECTIONS", NULL, 1, 1000000, 10000, OPT_SERVE, "open connections, all together"),
    NUM("EMBEDDING_MAX_CONNECTIONS_PER_IP", NULL, 1, 1000000, 256, OPT_SERVE, "open connections from one address"),
    NUM("EMBEDDING_HEADER_TIMEOUT", NULL, 1, 3600, 10, OPT_SERVE, "seconds a new connection has to send its headers"),
    NUM("EMBEDDING_IDLE_TIMEOUT", NULL, 1, 3600, 30, OPT_SERVE, "seconds a silent connection is kept"),
    NUM("EMBEDDING_MAX_QUEUED", NULL, 1, 100000000, 200000, OPT_SERVE, "sequences waiting for the model; then 429"),
    NUM("EMBEDDING_DRAIN_TIMEOUT", NULL, 1, 86400, 30, OPT_SERVE,
     "seconds SIGTERM waits for requests in flight before cancelling them"),
    /* batches and memory (serve and worker) */
    NUM("EMBEDDING_MAX_BATCH_SIZE", "--batch-size", 1, 4096, 64, OPT_SERVE | OPT_WORKER, "sequences per forward pass"),
    NUM("EMBEDDING_MIN_BATCH_SIZE", NULL, 1, 4096, 8, OPT_SERVE | OPT_WORKER,
     "the adaptive batch size never goes below this"),
    NUM("EMBEDDING_MAX_BATCH_TOKENS", NULL, 2, 1L << 20, 16384, OPT_SERVE | OPT_WORKER, "tokens per forward pass"),
    NUM("EMBEDDING_MAX_MEMORY_PERCENT", NULL, 1, 100, 70, OPT_SERVE | OPT_WORKER, "the share of the memory limit used"),
    NUM("EMBEDDING_MEMORY_LIMIT", NULL, 64 * MB, 1L << 50, 0, OPT_SERVE | OPT_WORKER,
     "bytes: the memory limit, for hosts whose limit cannot be read (else the cgroup's, or the RAM)"),
    /* the Redis worker */
    NUM("EMBEDDING_CLAIM_IDLE_MS", "--claim-idle-ms", 1, 86400000, 60000, OPT_WORKER,
     "another worker's job idle this long is claimed"),
    NUM("EMBEDDING_MAX_DELIVERIES", "--max-deliveries", 1, 1000, 5, OPT_WORKER,
        "then a failing job goes to cembed:dead"),
    NUM("EMBEDDING_RESULT_TTL", "--result-ttl", 1, 1L << 31, 86400, OPT_WORKER, "seconds a result is kept"),
    NUM("EMBEDDING_BLOCK_MS", NULL, 1, 60000, 2000, OPT_WORKER, "a read waits this long for jobs"),
    /* the vector cache and embed DIR */
    NUM("EMBEDDING_CACHE_MAX_MB", NULL, 1, 1L << 30, 1024, OPT_SERVE | OPT_WORKER | OPT_EMBED | OPT_CACHE,
     "MB of vectors the cache keeps (least recently used go first)"),
    NUM("EMBEDDING_PROGRESS_SECONDS", NULL, 0, 86400, 10, OPT_EMBED,
     "embed DIR logs its progress this often when not on a terminal"),
    /* the model and how it runs (every command that loads one) */
    SETTING(OPT_TEXT, "EMBEDDING_MODEL", "--model", MODEL_CMDS, "a folder or ORG/NAME[@REVISION]",
            "sentence-transformers/all-MiniLM-L6-v2 (the Hub cache, else fetch-model.sh's copy)",
            "the model (serve: several, comma-separated)"),
    {.env = "EMBEDDING_THREADS", .flag = "--threads", .lo = 1, .hi = 1024, .def = 0, .cmds = MODEL_CMDS,
     .help = "compute threads (alias EMBEDDING_ONNX_THREADS); default min(usable CPUs, 8)", .type = OPT_NUMBER,
     .alias = "EMBEDDING_ONNX_THREADS"},
    CHOICE("EMBEDDING_PRECISION", "--precision", MODEL_CMDS, "fp32, bf16, int8", NULL, "int8 (fp32 without AVX2)",
           "arithmetic of the Linear layers"),
    CHOICE("EMBEDDING_GEMM", "--gemm", MODEL_CMDS, "auto, onednn, avx2, scalar, blas", NULL, "auto", "GEMM backend"),
    SETTING(OPT_PATH, "EMBEDDING_WEIGHT_CACHE", NULL, MODEL_CMDS, "a folder, or off", "~/.cache/cembed/weights",
            "prepared (quantized, reordered) weights, written at the first start and mapped by the next"),
    CHOICE("EMBEDDING_LOG_LEVEL", NULL, MODEL_CMDS, "debug, info, warning, error", "off, warn", "info",
           "the least severe log line written"),
    /* the HTTP service's text settings */
    SETTING(OPT_TEXT, "EMBEDDING_HOST", "--host", OPT_SERVE, "an IPv4 address", "127.0.0.1", "listen address"),
    SETTING(OPT_TEXT, "EMBEDDING_API_KEY", "--api-key", OPT_SERVE, "keys, comma-separated", "none",
            "keys a request must send as \"Authorization: Bearer KEY\""),
    SETTING(OPT_PATH, "EMBEDDING_API_KEY_FILE", "--api-key-file", OPT_SERVE, "a file: a key per line, # comments",
            "none", "more keys; reloaded on SIGHUP"),
    SETTING(OPT_BOOL, "EMBEDDING_METRICS_AUTH", NULL, OPT_SERVE, "true, false", "false", "/metrics needs a key too"),
    /* memory and batches (serve and worker) */
    SETTING(OPT_BOOL, "EMBEDDING_ADAPTIVE_BATCHING", NULL, OPT_SERVE | OPT_WORKER, "true, false", "true",
            "the batch size follows the memory left"),
    NUM("EMBEDDING_PSI_THRESHOLD", NULL, 0, 100, 10, OPT_SERVE | OPT_WORKER,
     "memory PSI \"some avg10\" percentage that counts as pressure; 0 turns PSI off"),
    SETTING(OPT_PATH, "EMBEDDING_PSI_PATH", NULL, OPT_SERVE | OPT_WORKER, "a PSI file",
            "the cgroup's memory.pressure, else /proc/pressure/memory", "memory pressure file to watch"),
    /* the vector cache */
    SETTING(OPT_PATH, "EMBEDDING_CACHE", "--cache", OPT_SERVE | OPT_WORKER | OPT_EMBED | OPT_CACHE, "a path, or off",
            "~/.cache/cembed/cache.sqlite", "the persistent vector cache"),
    /* the Redis worker's text settings */
    SETTING(OPT_TEXT, "EMBEDDING_REDIS_URL", "--redis", OPT_WORKER | OPT_ENQUEUE | OPT_RESULT,
            "redis://[:PASSWORD@]HOST[:PORT][/DB]", "redis://127.0.0.1:6379", "the Redis server"),
    SETTING(OPT_TEXT, "EMBEDDING_STREAM", "--stream", OPT_WORKER | OPT_ENQUEUE, "a stream key", "cembed:jobs",
            "the jobs' stream"),
    SETTING(OPT_TEXT, "EMBEDDING_GROUP", "--group", OPT_WORKER, "a group name", "cembed", "the consumer group"),
    SETTING(OPT_TEXT, "EMBEDDING_CONSUMER", "--consumer", OPT_WORKER, "a consumer name", "HOST-PID",
            "this worker's name in the group"),
};

static const opt_def *find(const char *env) {
    for (size_t i = 0; i < CE_ARRAY_LEN(opts); i++)
        if (strcmp(opts[i].env, env) == 0) return &opts[i];
    CE_ASSERT(!"an EMBEDDING_* variable missing from app/options.c");
    return NULL;
}

const opt_def *opt_get(const char *env) { return find(env); }

/* 1 when word is one of list's words (", "-separated; NULL: none) */
static int in_list(const char *list, const char *word) {
    const size_t n = strlen(word);
    for (const char *p = list; p && *p; p += strspn(p, ", ")) {
        const size_t len = strcspn(p, ",");
        if (len == n && memcmp(p, word, n) == 0) return 1;
        p += len;
    }
    return 0;
}

/* What a value of o must be, as said after "must be " or "needs ". */
static void limit_of(const opt_def *o, char *b, size_t n) {
    if (o->type == OPT_NUMBER) snprintf(b, n, "an integer in [%ld, %ld]", o->lo, o->hi);
    else if (o->type == OPT_BOOL) snprintf(b, n, "true or false");
    else if (o->type == OPT_CHOICE) snprintf(b, n, "one of %s", o->values);
    else snprintf(b, n, "%s", o->values);
}

/* 0 when value is one of o's (a number or a boolean into *num), else -1.
 * Text and paths take anything: a variable set empty counts as unset, and
 * an empty flag is the caller's to judge (an empty --api-key is refused). */
static int check(const opt_def *o, const char *value, long *num) {
    switch (o->type) {
    case OPT_NUMBER: return cli_parse_int(value, o->lo, o->hi, num);
    case OPT_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0) *num = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0) *num = 0;
        else return -1;
        return 0;
    case OPT_CHOICE: return in_list(o->values, value) || in_list(o->also, value) ? 0 : -1;
    default: return 0;
    }
}

/* opt_parse with the row found and the name to say (the flag, the variable or its alias). */
static int parse_as(const opt_def *o, const char *name, int flag, const char *value, long *num, const char **text) {
    long n = 0;
    if (!value || check(o, value, &n)) {
        char limit[160];
        limit_of(o, limit, sizeof limit);
        if (flag) cli_error("%s needs %s", name, limit);
        else cli_error("%s=%s: must be %s", name, value ? value : "", limit);
        return EXIT_USAGE;
    }
    if (num) *num = n;
    if (text) *text = value;
    return 0;
}

int opt_parse(const char *env, int flag, const char *value, long *num, const char **text) {
    const opt_def *o = find(env);
    return parse_as(o, flag && o->flag ? o->flag : env, flag, value, num, text);
}

/* The variable name (env's own or its alias) when it is set and not empty. */
static int read_env(const opt_def *o, const char *name, long *num, const char **text) {
    const char *v = getenv(name);
    return v && *v ? parse_as(o, name, 0, v, num, text) : 0;
}

int opt_long(const char *env, long *out) {
    const opt_def *o = find(env);
    CE_ASSERT(o->type == OPT_NUMBER);
    *out = o->def;
    if (o->alias && read_env(o, o->alias, out, NULL)) return EXIT_USAGE;
    return read_env(o, env, out, NULL);
}

int opt_flag(const char *env, const char *value, long *out) {
    const opt_def *o = find(env);
    CE_ASSERT(o->type == OPT_NUMBER);
    return parse_as(o, o->flag ? o->flag : env, 1, value, out, NULL);
}

int opt_text(const char *env, const char **out) {
    const opt_def *o = find(env);
    CE_ASSERT(o->type != OPT_NUMBER && o->type != OPT_BOOL);
    return read_env(o, env, NULL, out);
}

int opt_bool(const char *env, int *out) {
    const opt_def *o = find(env);
    CE_ASSERT(o->type == OPT_BOOL);
    long b = strcmp(o->def_text, "true") == 0;
    const int rc = read_env(o, env, &b, NULL);
    *out = (int)b;
    return rc;
}

int opt_double(const char *env, double *out) {
    const opt_def *o = find(env);
    CE_ASSERT(o->type == OPT_NUMBER);
    *out = (double)o->def;
    const char *v = getenv(env);
    if (!v || !*v) return 0;
    char *end;
    const double d = strtod(v, &end);   /* as runtime.c's own parse did: no errno check (an underflow is 0) */
    if (*end || !(d >= (double)o->lo && d <= (double)o->hi)) {
        cli_error("%s=%s: must be a number in [%ld, %ld]", env, v, o->lo, o->hi);
        return EXIT_USAGE;
    }
    *out = d;
    return 0;
}

/* opt_take_*: the flag's value after argv[*i], parsed as env's. */
static int take(const char *env, int argc, char **argv, int *i, long *num, const char **text) {
    const opt_def *o = find(env);
    CE_ASSERT(o->flag);
    if (strcmp(argv[*i], o->flag) != 0) return 0;
    const char *v = *i + 1 < argc ? argv[++*i] : NULL;
    return parse_as(o, o->flag, 1, v, num, text) ? -1 : 1;
}

int opt_take_long(const char *env, int argc, char **argv, int *i, long *out) {
    CE_ASSERT(find(env)->type == OPT_NUMBER);
    return take(env, argc, argv, i, out, NULL);
}

int opt_take_text(const char *env, int argc, char **argv, int *i, const char **out) {
    CE_ASSERT(find(env)->type != OPT_NUMBER && find(env)->type != OPT_BOOL);
    return take(env, argc, argv, i, NULL, out);
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

/* The range column: a number's "LO to HI", the others' values. */
static void range(const opt_def *o, char *b, size_t n) {
    if (o->type != OPT_NUMBER) {
        snprintf(b, n, "%s", o->values);
        return;
    }
    char lo[32], hi[32];
    human(o, o->lo, lo, sizeof lo);
    human(o, o->hi, hi, sizeof hi);
    snprintf(b, n, "%s to %s", lo, hi);
}

static void default_of(const opt_def *o, char *b, size_t n) {
    if (o->type == OPT_NUMBER) human(o, o->def, b, n);
    else snprintf(b, n, "%s", o->def_text);
}

/* The rows of cmds that are numbers (or not), under heading when there are any. */
static void help_rows(unsigned cmds, int numbers, const char *heading, FILE *f) {
    for (size_t i = 0; i < CE_ARRAY_LEN(opts); i++) {
        const opt_def *o = &opts[i];
        if (!(o->cmds & cmds) || (o->type == OPT_NUMBER) != numbers) continue;
        char r[96], d[96];
        range(o, r, sizeof r);
        default_of(o, d, sizeof d);
        if (heading) fputs(heading, f);
        heading = NULL;
        fprintf(f, "  %s%s%s: %s; %s; %s\n", o->env, o->flag ? " " : "", o->flag ? o->flag : "", o->help, r, d);
    }
}

void opt_help(unsigned cmds, FILE *f) {
    help_rows(cmds, 1, "\nnumbers (variable [flag]: meaning; range; default):\n", f);
    help_rows(cmds, 0, "\nsettings (variable [flag]: meaning; values; default):\n", f);
}

void opt_table(FILE *f) {
    static const char *const names[] = {"serve", "worker", "embed", "cache", "tokenize", "rerank", "info", "enqueue",
                                        "result"};
    fputs("| variable | flag | commands | values | default | meaning |\n|---|---|---|---|---|---|\n", f);
    for (size_t i = 0; i < CE_ARRAY_LEN(opts); i++) {
        const opt_def *o = &opts[i];
        char r[96], d[96], cmds[128] = "";
        range(o, r, sizeof r);
        default_of(o, d, sizeof d);
        for (size_t k = 0; k < CE_ARRAY_LEN(names); k++)
            if (o->cmds & (1u << k))
                snprintf(cmds + strlen(cmds), sizeof cmds - strlen(cmds), "%s%s", *cmds ? ", " : "", names[k]);
        fprintf(f, "| `%s` | %s%s%s | %s | %s | %s | %s |\n", o->env, o->flag ? "`" : "", o->flag ? o->flag : "",
                o->flag ? "`" : "", cmds, r, d, o->help);
    }
}
