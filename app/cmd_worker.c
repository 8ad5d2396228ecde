/* `cembed worker`, `cembed enqueue`, `cembed result`: embedding jobs through
 * a Redis Stream (src/worker/worker.h has the protocol). */
#include <errno.h>
#include <limits.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "runtime.h"
#include "sched/sched.h"
#include "worker/worker.h"

static volatile sig_atomic_t stop_flag;
static void on_stop(int sig) {
    (void)sig;
    stop_flag = 1;
}

/* What worker's variables and flags set: the job options and the numbers they take. */
typedef struct worker_args {
    worker_opts o;
    const char *url;
    char consumer[320];   /* the default consumer name: HOST-PID */
    long idle, deliveries, ttl, block, max_body, max_chunks, depth;
} worker_args;

/* The variables, through the table (app/options.c). 0 or EXIT_USAGE (said). */
static int worker_vars(worker_args *w) {
    char host[256] = "worker";
    gethostname(host, sizeof host - 1);
    snprintf(w->consumer, sizeof w->consumer, "%s-%d", host, (int)getpid());
    w->o = (worker_opts){.stream = "cembed:jobs", .group = "cembed", .consumer = w->consumer,
                         .results_stream = "cembed:results", .dead_stream = "cembed:dead",
                         .errors_hash = "cembed:errors", .result_prefix = "cembed:result", .max_depth = 32};
    if (opt_text("EMBEDDING_REDIS_URL", &w->url) || opt_text("EMBEDDING_CONSUMER", &w->o.consumer) ||
        opt_text("EMBEDDING_STREAM", &w->o.stream) || opt_text("EMBEDDING_GROUP", &w->o.group) ||
        opt_long("EMBEDDING_CLAIM_IDLE_MS", &w->idle) || opt_long("EMBEDDING_MAX_DELIVERIES", &w->deliveries) ||
        opt_long("EMBEDDING_RESULT_TTL", &w->ttl) || opt_long("EMBEDDING_BLOCK_MS", &w->block) ||
        opt_long("EMBEDDING_MAX_BODY_BYTES", &w->max_body) || opt_long("EMBEDDING_MAX_CHUNKS", &w->max_chunks) ||
        opt_long("EMBEDDING_MAX_JSON_DEPTH", &w->depth))
        return EXIT_USAGE;
    return 0;
}

/* One of worker's own flags at argv[*i]: 1 taken, 0 not one, -1 wrong (said). */
static int worker_flag(worker_args *w, int argc, char **argv, int *i) {
    int r = opt_take_text("EMBEDDING_REDIS_URL", argc, argv, i, &w->url);
    if (!r) r = opt_take_text("EMBEDDING_STREAM", argc, argv, i, &w->o.stream);
    if (!r) r = opt_take_text("EMBEDDING_GROUP", argc, argv, i, &w->o.group);
    if (!r) r = opt_take_text("EMBEDDING_CONSUMER", argc, argv, i, &w->o.consumer);
    if (!r) r = opt_take_long("EMBEDDING_CLAIM_IDLE_MS", argc, argv, i, &w->idle);
    if (!r) r = opt_take_long("EMBEDDING_MAX_DELIVERIES", argc, argv, i, &w->deliveries);
    if (!r) r = opt_take_long("EMBEDDING_RESULT_TTL", argc, argv, i, &w->ttl);
    return r;
}

/* The variables, then the flags over them, into w->o. 0 or EXIT_USAGE (said). */
static int worker_settings(cli_common *c, worker_args *w, int argc, char **argv) {
    if (cli_common_init(c) || worker_vars(w)) return EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(c, argc, argv, &i);
        if (!r) r = worker_flag(w, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (!r) return cli_error("unknown argument %s", argv[i]), EXIT_USAGE;
    }
    if (!w->url) return cli_error("usage: cembed worker [--model DIR] --redis redis://HOST[:PORT][/DB] [--stream S] "
                                  "[--group G] [--consumer C] [--claim-idle-ms N] [--max-deliveries N] [--result-ttl S]"),
                     EXIT_USAGE;
    if (redis_parse_url(w->url, &w->o.addr)) return cli_error("%s", cembed_last_error()), EXIT_USAGE;
    w->o.max_depth = (int)w->depth;
    w->o.claim_idle_ms = w->idle;
    w->o.max_deliveries = (int)w->deliveries;
    w->o.result_ttl_s = w->ttl;
    w->o.block_ms = w->block;
    w->o.max_body_bytes = (size_t)w->max_body;
    w->o.max_chunks = (size_t)w->max_chunks;
    return 0;
}

/* Opens the runtime and the scheduler and works jobs until SIGTERM/SIGINT. */
static int work(cli_common *c, const worker_opts *o) {
    runtime rt;
    int status = cli_resolve_model(c);
    if (status) return status;
    status = runtime_open(&rt, c);
    sched *s = NULL;
    sched_opts so = {.max_batch = rt.max_batch, .max_batch_tokens = rt.batch_tokens, .max_queued = 200000,
                     .gov = rt.g};
    if (!status && sched_new(rt.m, &so, &s)) {
        cli_error("%s", cembed_last_error());
        status = EXIT_FAIL;
    }
    if (!status) {
        worker_env env = {.m = rt.m, .s = s, .g = rt.g, .cache = rt.lookup, .writer = rt.writer, .scope = rt.scope};
        if (worker_run(&env, o, &stop_flag)) {
            cli_error("%s", cembed_last_error());
            status = EXIT_FAIL;
        } else {
            log_info("stopped");
        }
    }
    sched_free(s);
    runtime_close(&rt);
    return status;
}

int cmd_worker(int argc, char **argv) {
    cli_common c;
    worker_args w = {0};
    const int rc = worker_settings(&c, &w, argc, argv);
    if (rc) return rc;
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return work(&c, &w.o);
}

static redisContext *connect_url(const char *url) {
    redis_addr a;
    redisContext *rc = NULL;
    if (redis_parse_url(url, &a) || redis_open(&a, 0, &rc)) cli_error("%s", cembed_last_error());
    return rc;
}

int cmd_enqueue(int argc, char **argv) {
    const char *url = NULL, *stream = "cembed:jobs", *path = NULL;
    if (opt_text("EMBEDDING_REDIS_URL", &url) || opt_text("EMBEDDING_STREAM", &stream)) return EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = opt_take_text("EMBEDDING_REDIS_URL", argc, argv, &i, &url)) ||
            (r = opt_take_text("EMBEDDING_STREAM", argc, argv, &i, &stream))) {
            if (r < 0) return EXIT_USAGE;
        } else if (!path) {
            path = argv[i];
        } else {
            return cli_error("unknown argument %s", argv[i]), EXIT_USAGE;
        }
    }
    if (!url || !path) return cli_error("usage: cembed enqueue --redis URL [--stream S] FILE.json|-"), EXIT_USAGE;
    char *body = NULL;
    size_t len = 0;
    if (strcmp(path, "-") == 0) {
        buf b = {0};
        char chunk[65536];
        for (size_t n; (n = fread(chunk, 1, sizeof chunk, stdin)) > 0;)
            if (buf_append(&b, chunk, n)) return cli_error("out of memory"), EXIT_FAIL;
        body = b.ptr, len = b.len;
    } else if (file_read_all(path, 1u << 30, &body, &len)) {
        return cli_error("%s", cembed_last_error()), EXIT_FAIL;
    }
    redisContext *rc = connect_url(url);
    if (!rc) {
        base_free(body);
        return EXIT_FAIL;
    }
    redisReply *r = redisCommand(rc, "XADD %s * body %b", stream, body ? body : "", len);
    int status = r && r->type == REDIS_REPLY_STRING ? EXIT_OK : EXIT_FAIL;
    if (status == EXIT_OK) printf("%s\n", r->str);
    else cli_error("redis XADD: %s", r ? r->str : rc->errstr);
    if (r) freeReplyObject(r);
    redisFree(rc);
    base_free(body);
    return status;
}

/* `cembed result`'s arguments. */
typedef struct result_args {
    const char *url, *id;
    int wait, kind;
    long timeout;
} result_args;

/* Parses result's arguments into *a. Returns 0 or an exit status (usage). */
static int result_parse(int argc, char **argv, result_args *a) {
    *a = (result_args){.kind = WORKER_KEY_STRING, .timeout = 600};
    if (opt_text("EMBEDDING_REDIS_URL", &a->url)) return EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = opt_take_text("EMBEDDING_REDIS_URL", argc, argv, &i, &a->url))) {
            if (r < 0) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--wait") == 0) {
            a->wait = 1;
        } else if (strcmp(argv[i], "--int") == 0) {
            a->kind = WORKER_KEY_INT;
        } else if (strcmp(argv[i], "--entry") == 0) {
            a->kind = WORKER_KEY_ENTRY;
        } else if (strcmp(argv[i], "--timeout") == 0) {
            if (i + 1 >= argc || cli_parse_int(argv[++i], 1, 86400 * 7, &a->timeout))
                return cli_error("--timeout needs seconds in [1, 604800]"), EXIT_USAGE;
        } else if (!a->id) {
            a->id = argv[i];
        } else {
            return cli_error("unknown argument %s", argv[i]), EXIT_USAGE;
        }
    }
    if (!a->url || !a->id)
        return cli_error("usage: cembed result --redis URL [--wait [--timeout S]] [--int | --entry] BATCH_ID"),
               EXIT_USAGE;
    long digits;
    if (a->kind == WORKER_KEY_INT && cli_parse_int(a->id, LONG_MIN, LONG_MAX, &digits))
        return cli_error("--int: %s is not an integer batch_id", a->id), EXIT_USAGE;
    return 0;
}

/* GETs key until it is there (once without --wait) and writes it to
 * stdout. Returns EXIT_OK, EXIT_FAIL, or 3: not there (yet). */
static int result_poll(redisContext *rc, const buf *key, const result_args *a) {
    for (double t0 = time_now();;) {
        redisReply *r = redisCommand(rc, "GET %b", key->ptr, key->len);
        if (!r) return cli_error("redis: %s", rc->errstr), EXIT_FAIL;
        const int found = r->type == REDIS_REPLY_STRING;
        if (found) fwrite(r->str, 1, r->len, stdout);
        freeReplyObject(r);
        if (found) return EXIT_OK;
        if (!a->wait || time_now() - t0 > (double)a->timeout) {
            cli_error("no result for batch %s%s", a->id, a->wait ? " before the timeout" : "");
            return 3;   /* distinct from a failure */
        }
        usleep(100000);
    }
}

int cmd_result(int argc, char **argv) {
    result_args a;
    int status = result_parse(argc, argv, &a);
    if (status) return status;
    redisContext *rc = connect_url(a.url);
    if (!rc) return EXIT_FAIL;
    buf key = {0};
    if (worker_result_key("cembed:result", a.kind, a.id, strlen(a.id), &key))
        status = (cli_error("out of memory"), EXIT_FAIL);
    else
        status = result_poll(rc, &key, &a);
    redisFree(rc);
    buf_free(&key);
    return status;
}
