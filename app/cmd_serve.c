/* `cembed serve`: the HTTP service. SIGTERM, SIGINT and SIGHUP are blocked
 * before anything else runs, so every thread inherits the mask, and taken
 * here with sigwait: SIGTERM/SIGINT start a drain (new requests get 503 +
 * Retry-After, the ones in flight complete) and the process exits 0; more of
 * them during the drain change nothing. SIGHUP (what a service manager sends
 * to reload) reloads the API key file, if there is one, and the service goes
 * on; requests in flight are not touched. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "http/http.h"
#include "options.h"
#include "runtime.h"

/* Adds the keys of one source, named in messages; a source that was given
 * but holds no key (an empty --api-key, EMBEDDING_API_KEY=",", a file of
 * comments) is refused when strict, since it would serve every route with
 * no key. *added: the source's keys. Returns 0, or -1 (printed; keys never are). */
static int add_source(keyset *out, const char *what, const char *text, size_t len, int commas, int strict,
                      size_t *added) {
    const size_t n0 = out->n;
    if (keys_add(out, text, len, commas)) {
        cli_error("%s: %s", what, cembed_last_error());
        return -1;
    }
    *added = out->n - n0;
    if (*added == 0 && strict) {
        cli_error("%s holds no API key: refusing to serve every route without one (give a key, or leave it unset)",
                  what);
        return -1;
    }
    return 0;
}

/* The keys of EMBEDDING_API_KEY (env; NULL: unset) and --api-key
 * (comma-separated) and of the key file. strict (at start): every source
 * given must hold a key. *file_keys: the file's keys. Returns 0, or -1
 * (printed; keys never are). */
static int load_keys(const char *env, const char *const *flags, int n_flags, const char *file, int strict,
                     keyset *out, size_t *file_keys) {
    *out = (keyset){0};
    *file_keys = 0;
    size_t added = 0;
    int rc = env ? add_source(out, "EMBEDDING_API_KEY", env, strlen(env), 1, strict, &added) : 0;
    for (int i = 0; i < n_flags && !rc; i++)
        rc = add_source(out, "--api-key", flags[i], strlen(flags[i]), 1, strict, &added);
    if (!rc && file) {
        char *data = NULL, what[4200];
        size_t len = 0;
        snprintf(what, sizeof what, "API key file %s", file);
        if ((rc = file_read_all(file, 1 << 20, &data, &len))) cli_error("%s: %s", what, cembed_last_error());
        else rc = add_source(out, what, data, len, 0, strict, file_keys);
        if (data) explicit_bzero(data, len);
        base_free(data);
    }
    if (rc) keys_free(out);
    return rc ? -1 : 0;
}

/* What serve's flags and variables set. */
typedef struct serve_args {
    const char *host, *key_file, *key_env;   /* key_env: EMBEDDING_API_KEY, or NULL */
    const char *key_flags[64];
    int n_key_flags, metrics_auth;
    long port, max_body, max_chunks, depth, conns, per_ip, idle, header, queue, drain;
} serve_args;

/* The variables, through the table (app/options.c). 0 or EXIT_USAGE (said). */
static int serve_env(serve_args *a) {
    a->host = "127.0.0.1";
    if (opt_text("EMBEDDING_HOST", &a->host) || opt_long("EMBEDDING_PORT", &a->port) ||
        opt_long("EMBEDDING_MAX_BODY_BYTES", &a->max_body) || opt_long("EMBEDDING_MAX_CHUNKS", &a->max_chunks) ||
        opt_long("EMBEDDING_MAX_JSON_DEPTH", &a->depth) || opt_long("EMBEDDING_MAX_CONNECTIONS", &a->conns) ||
        opt_long("EMBEDDING_MAX_CONNECTIONS_PER_IP", &a->per_ip) || opt_long("EMBEDDING_IDLE_TIMEOUT", &a->idle) ||
        opt_long("EMBEDDING_HEADER_TIMEOUT", &a->header) || opt_long("EMBEDDING_MAX_QUEUED", &a->queue) ||
        opt_long("EMBEDDING_DRAIN_TIMEOUT", &a->drain) || opt_text("EMBEDDING_API_KEY", &a->key_env) ||
        opt_text("EMBEDDING_API_KEY_FILE", &a->key_file) || opt_bool("EMBEDDING_METRICS_AUTH", &a->metrics_auth))
        return EXIT_USAGE;
    return 0;
}

/* One of serve's own flags at argv[*i]: 1 taken, 0 not one, -1 wrong (said). */
static int serve_flag(serve_args *a, int argc, char **argv, int *i) {
    const char *key;
    int r = opt_take_text("EMBEDDING_API_KEY", argc, argv, i, &key);
    if (r > 0 && a->n_key_flags == 64) {
        cli_error("--api-key: at most 64 on the command line (use --api-key-file)");
        return -1;
    }
    if (r > 0) a->key_flags[a->n_key_flags++] = key;
    if (!r) r = opt_take_text("EMBEDDING_API_KEY_FILE", argc, argv, i, &a->key_file);
    if (!r) r = opt_take_text("EMBEDDING_HOST", argc, argv, i, &a->host);
    if (!r) r = opt_take_long("EMBEDDING_PORT", argc, argv, i, &a->port);
    return r;
}

/* The flags, over the variables. 0 or EXIT_USAGE (said). */
static int serve_flags(cli_common *c, serve_args *a, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(c, argc, argv, &i);
        if (!r) r = serve_flag(a, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (!r) {
            cli_error("unknown argument %s", argv[i]);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* Serves until SIGTERM or SIGINT; SIGHUP reloads the key file. */
static void serve_until_stopped(http_server *s, const serve_args *a, sigset_t *sigs) {
    int sig = 0;
    size_t file_keys;
    while (sigwait(sigs, &sig) == 0 && sig == SIGHUP) {
        if (!a->key_file) {
            log_info("received SIGHUP: nothing to reload; still serving");
            continue;
        }
        keyset fresh;
        if (load_keys(a->key_env, a->key_flags, a->n_key_flags, a->key_file, 0, &fresh, &file_keys)) {
            log_warn("received SIGHUP: the API key file did not load; the keys stay as they were");
            continue;
        }
        if (file_keys == 0) { /* an emptied file would open the service to everyone (or drop the file's keys) */
            log_warn("received SIGHUP: %s has no keys now; the old keys stay", a->key_file);
            keys_free(&fresh);
            continue;
        }
        log_info("received SIGHUP: API keys reloaded from %s (%zu keys)", a->key_file, fresh.n);
        http_server_set_keys(s, &fresh);
    }
    log_info("received %s: draining in-flight requests", sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* Starts the service on the bound socket with the runtime's models; takes keys (freed). */
static int serve_start(const serve_args *a, const cli_common *c, runtime *rt, int listen_fd, keyset *keys,
                       http_server **s) {
    http_opts ho = {
        .host = a->host, .port = (int)a->port, .listen_fd = listen_fd, .max_body_bytes = (size_t)a->max_body,
        .max_chunks = (size_t)a->max_chunks, .max_depth = (int)a->depth, .max_connections = (int)a->conns,
        .max_connections_per_ip = (int)a->per_ip, .idle_timeout_s = (int)a->idle, .header_timeout_s = (int)a->header,
        .drain_timeout_s = (int)a->drain,
        .sched = {.max_batch = rt->max_batch, .max_batch_tokens = rt->batch_tokens, .max_queued = (size_t)a->queue,
                  .gov = rt->g},
        .cache = rt->lookup, .cache_writer = rt->writer, .cache_scope = rt->scope,
        .keys = keys, .metrics_auth = a->metrics_auth,
        .n_models = rt->n_models, .models = rt->models, .model_ids = c->model_specs, .cache_scopes = rt->scopes,
        .cache_writers = rt->writers,
    };
    const size_t n_keys = keys->n;
    const int started = http_server_start(rt->m, &ho, s);
    keys_free(keys);   /* the server holds its copy */
    if (started) {
        cli_error("%s", cembed_last_error());
        return EXIT_FAIL;
    }
    if (n_keys)
        log_info("API keys: %zu (every route but /health%s needs one)%s%s", n_keys, a->metrics_auth ? "" : " and /metrics",
                 a->key_file ? "; SIGHUP reloads " : "", a->key_file ? a->key_file : "");
    log_info("listening on http://%s:%d", a->host, http_server_port(*s));
    return 0;
}

int cmd_serve(int argc, char **argv) {
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    cli_common c;
    serve_args a = {0};
    if (cli_common_init(&c) || serve_env(&a) || serve_flags(&c, &a, argc, argv)) return EXIT_USAGE;
    keyset keys;
    size_t file_keys;
    if (load_keys(a.key_env, a.key_flags, a.n_key_flags, a.key_file, 1, &keys, &file_keys)) return EXIT_USAGE;
    int listen_fd;   /* bound before the model loads: a port in use is said at once */
    if (http_listen(a.host, (int)a.port, &listen_fd)) {
        cli_error("%s", cembed_last_error());
        keys_free(&keys);
        return EXIT_FAIL;
    }
    runtime rt;
    int status = cli_resolve_models(&c);   /* serve takes several */
    if (status) {
        keys_free(&keys);
        close(listen_fd);
        return status;
    }
    status = runtime_open(&rt, &c);
    if (status) {
        keys_free(&keys);
        runtime_close(&rt);
        close(listen_fd);
        return status;
    }
    http_server *s;
    if ((status = serve_start(&a, &c, &rt, listen_fd, &keys, &s))) {
        runtime_close(&rt);
        return status;
    }
    serve_until_stopped(s, &a, &sigs);
    http_server_stop(s);
    runtime_close(&rt);
    log_info("stopped");
    return EXIT_OK;
}
