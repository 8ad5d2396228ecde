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

static const char *env_or(const char *name, const char *def) {
    const char *v = getenv(name);
    return v && *v ? v : def;
}

/* --name VALUE string flags shared by the three commands; 1 consumed, 0 not one, -1 missing value */
static int str_flag(int argc, char **argv, int *i, const char *name, const char **dst) {
    if (strcmp(argv[*i], name) != 0) return 0;
    if (*i + 1 >= argc) return cli_error("%s needs a value", name), -1;
    *dst = argv[++*i];
    return 1;
}

int cmd_worker(int argc, char **argv) {
    cli_common c;
    if (cli_common_init(&c)) return EXIT_USAGE;
    char host[256] = "worker", consumer[320];
    gethostname(host, sizeof host - 1);
    snprintf(consumer, sizeof consumer, "%s-%d", host, (int)getpid());
    const char *url = env_or("EMBEDDING_REDIS_URL", NULL), *cons = env_or("EMBEDDING_CONSUMER", consumer);
    worker_opts o = {.stream = env_or("EMBEDDING_STREAM", "cembed:jobs"), .group = env_or("EMBEDDING_GROUP", "cembed"),
                     .results_stream = "cembed:results", .dead_stream = "cembed:dead", .errors_hash = "cembed:errors",
                     .result_prefix = "cembed:result", .max_depth = 32};
    long idle, deliveries, ttl, block, max_body, max_chunks, queue = 200000, depth;
    if (opt_long("EMBEDDING_CLAIM_IDLE_MS", &idle) || opt_long("EMBEDDING_MAX_DELIVERIES", &deliveries) ||
        opt_long("EMBEDDING_RESULT_TTL", &ttl) || opt_long("EMBEDDING_BLOCK_MS", &block) ||
        opt_long("EMBEDDING_MAX_BODY_BYTES", &max_body) || opt_long("EMBEDDING_MAX_CHUNKS", &max_chunks) ||
        opt_long("EMBEDDING_MAX_JSON_DEPTH", &depth))
        return EXIT_USAGE;
    o.max_depth = (int)depth;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        const char *v = NULL;
        if ((r = str_flag(argc, argv, &i, "--redis", &url)) || (r = str_flag(argc, argv, &i, "--stream", &o.stream)) ||
            (r = str_flag(argc, argv, &i, "--group", &o.group)) || (r = str_flag(argc, argv, &i, "--consumer", &cons))) {
            if (r < 0) return EXIT_USAGE;
            continue;
        }
        long *dst = NULL;
        const char *var = NULL;
        if (strcmp(argv[i], "--claim-idle-ms") == 0) dst = &idle, var = "EMBEDDING_CLAIM_IDLE_MS";
        else if (strcmp(argv[i], "--max-deliveries") == 0) dst = &deliveries, var = "EMBEDDING_MAX_DELIVERIES";
        else if (strcmp(argv[i], "--result-ttl") == 0) dst = &ttl, var = "EMBEDDING_RESULT_TTL";
        if (!dst) return cli_error("unknown argument %s", argv[i]), EXIT_USAGE;
        v = i + 1 < argc ? argv[++i] : NULL;
        if (opt_flag(var, v, dst)) return EXIT_USAGE;
    }
    if (!url) return cli_error("usage: cembed worker [--model DIR] --redis redis://HOST[:PORT][/DB] [--stream S] "
                               "[--group G] [--consumer C] [--claim-idle-ms N] [--max-deliveries N] [--result-ttl S]"),
                  EXIT_USAGE;
    if (redis_parse_url(url, &o.addr)) return cli_error("%s", cembed_last_error()), EXIT_USAGE;
    o.consumer = cons;
    o.claim_idle_ms = idle;
    o.max_deliveries = (int)deliveries;
    o.result_ttl_s = ttl;
    o.block_ms = block;
    o.max_body_bytes = (size_t)max_body;
    o.max_chunks = (size_t)max_chunks;
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    runtime rt;
    int status = cli_resolve_model(&c);
    if (status) return status;
    status = runtime_open(&rt, &c);
    sched *s = NULL;
    sched_opts so = {.max_batch = rt.max_batch, .max_batch_tokens = rt.batch_tokens, .max_queued = (size_t)queue,
                     .gov = rt.g};
    if (!status && sched_new(rt.m, &so, &s)) {
        cli_error("%s", cembed_last_error());
        status = EXIT_FAIL;
    }
    if (!status) {
        worker_env env = {.m = rt.m, .s = s, .g = rt.g, .cache = rt.lookup, .writer = rt.writer, .scope = rt.scope};
        if (worker_run(&env, &o, &stop_flag)) {
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

static redisContext *connect_url(const char *url) {
    redis_addr a;
    redisContext *rc = NULL;
    if (redis_parse_url(url, &a) || redis_open(&a, 0, &rc)) cli_error("%s", cembed_last_error());
    return rc;
}

int cmd_enqueue(int argc, char **argv) {
    const char *url = env_or("EMBEDDING_REDIS_URL", NULL), *stream = env_or("EMBEDDING_STREAM", "cembed:jobs"), *path = NULL;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = str_flag(argc, argv, &i, "--redis", &url)) || (r = str_flag(argc, argv, &i, "--stream", &stream))) {
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

int cmd_result(int argc, char **argv) {
    const char *url = env_or("EMBEDDING_REDIS_URL", NULL), *id = NULL;
    int wait = 0, kind = WORKER_KEY_STRING;
    long timeout = 600;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = str_flag(argc, argv, &i, "--redis", &url))) {
            if (r < 0) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--wait") == 0) {
            wait = 1;
        } else if (strcmp(argv[i], "--int") == 0) {
            kind = WORKER_KEY_INT;
        } else if (strcmp(argv[i], "--entry") == 0) {
            kind = WORKER_KEY_ENTRY;
        } else if (strcmp(argv[i], "--timeout") == 0) {
            if (i + 1 >= argc || cli_parse_int(argv[++i], 1, 86400 * 7, &timeout))
                return cli_error("--timeout needs seconds in [1, 604800]"), EXIT_USAGE;
        } else if (!id) {
            id = argv[i];
        } else {
            return cli_error("unknown argument %s", argv[i]), EXIT_USAGE;
        }
    }
    if (!url || !id)
        return cli_error("usage: cembed result --redis URL [--wait [--timeout S]] [--int | --entry] BATCH_ID"),
               EXIT_USAGE;
    long digits;
    if (kind == WORKER_KEY_INT && cli_parse_int(id, LONG_MIN, LONG_MAX, &digits))
        return cli_error("--int: %s is not an integer batch_id", id), EXIT_USAGE;
    redisContext *rc = connect_url(url);
    if (!rc) return EXIT_FAIL;
    buf key = {0};
    if (worker_result_key("cembed:result", kind, id, strlen(id), &key)) {
        redisFree(rc);
        return cli_error("out of memory"), EXIT_FAIL;
    }
    int status = EXIT_FAIL;
    for (double t0 = time_now();;) {
        redisReply *r = redisCommand(rc, "GET %b", key.ptr, key.len);
        if (!r) {
            cli_error("redis: %s", rc->errstr);
            break;
        }
        if (r->type == REDIS_REPLY_STRING) {
            fwrite(r->str, 1, r->len, stdout);
            status = EXIT_OK;
        }
        freeReplyObject(r);
        if (status == EXIT_OK) break;
        if (!wait || time_now() - t0 > (double)timeout) {
            cli_error("no result for batch %s%s", id, wait ? " before the timeout" : "");
            status = 3;   /* not there (yet): distinct from a failure */
            break;
        }
        usleep(100000);
    }
    redisFree(rc);
    buf_free(&key);
    return status;
}
