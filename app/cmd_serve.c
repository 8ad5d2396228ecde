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

/* The keys of --api-key / EMBEDDING_API_KEY (comma-separated) and of the
 * key file. strict (at start): every source given must hold a key.
 * *file_keys: the file's keys. Returns 0, or -1 (printed; keys never are). */
static int load_keys(const char *const *flags, int n_flags, const char *file, int strict, keyset *out,
                     size_t *file_keys) {
    *out = (keyset){0};
    *file_keys = 0;
    size_t added = 0;
    const char *env = getenv("EMBEDDING_API_KEY");
    int rc = env && *env ? add_source(out, "EMBEDDING_API_KEY", env, strlen(env), 1, strict, &added) : 0;
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

int cmd_serve(int argc, char **argv) {
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    cli_common c;
    if (cli_common_init(&c)) return EXIT_USAGE;
    const char *host = getenv("EMBEDDING_HOST");
    if (!host || !*host) host = "127.0.0.1";
    long port, max_body, max_chunks, depth, conns, per_ip, idle, header, queue, drain;
    if (opt_long("EMBEDDING_PORT", &port) || opt_long("EMBEDDING_MAX_BODY_BYTES", &max_body) ||
        opt_long("EMBEDDING_MAX_CHUNKS", &max_chunks) || opt_long("EMBEDDING_MAX_JSON_DEPTH", &depth) ||
        opt_long("EMBEDDING_MAX_CONNECTIONS", &conns) || opt_long("EMBEDDING_MAX_CONNECTIONS_PER_IP", &per_ip) ||
        opt_long("EMBEDDING_IDLE_TIMEOUT", &idle) || opt_long("EMBEDDING_HEADER_TIMEOUT", &header) ||
        opt_long("EMBEDDING_MAX_QUEUED", &queue) || opt_long("EMBEDDING_DRAIN_TIMEOUT", &drain))
        return EXIT_USAGE;
    const char *key_flags[64], *key_file = getenv("EMBEDDING_API_KEY_FILE");
    int n_key_flags = 0, metrics_auth = 0;
    const char *ma = getenv("EMBEDDING_METRICS_AUTH");
    if (ma && *ma) {
        if (strcmp(ma, "true") == 0 || strcmp(ma, "1") == 0) metrics_auth = 1;
        else if (strcmp(ma, "false") != 0 && strcmp(ma, "0") != 0) {
            cli_error("EMBEDDING_METRICS_AUTH=%s: must be true or false", ma);
            return EXIT_USAGE;
        }
    }
    if (key_file && !*key_file) key_file = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if ((strcmp(argv[i], "--api-key") == 0 || strcmp(argv[i], "--api-key-file") == 0) && i + 1 >= argc) {
            cli_error("%s needs a value", argv[i]);
            return EXIT_USAGE;
        }
        if (strcmp(argv[i], "--api-key") == 0) {
            if (n_key_flags == 64) {
                cli_error("--api-key: at most 64 on the command line (use --api-key-file)");
                return EXIT_USAGE;
            }
            key_flags[n_key_flags++] = argv[++i];
        } else if (strcmp(argv[i], "--api-key-file") == 0) {
            key_file = argv[++i];
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0) {
            if (opt_flag("EMBEDDING_PORT", i + 1 < argc ? argv[++i] : NULL, &port)) return EXIT_USAGE;
        } else {
            cli_error("unknown argument %s", argv[i]);
            return EXIT_USAGE;
        }
    }
    keyset keys;
    size_t file_keys;
    if (load_keys(key_flags, n_key_flags, key_file, 1, &keys, &file_keys)) return EXIT_USAGE;
    int listen_fd;   /* bound before the model loads: a port in use is said at once */
    if (http_listen(host, (int)port, &listen_fd)) {
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
        runtime_close(&rt);
        close(listen_fd);
        return status;
    }
    http_opts ho = {
        .host = host, .port = (int)port, .listen_fd = listen_fd, .max_body_bytes = (size_t)max_body, .max_chunks = (size_t)max_chunks,
        .max_depth = (int)depth, .max_connections = (int)conns, .max_connections_per_ip = (int)per_ip,
        .idle_timeout_s = (int)idle, .header_timeout_s = (int)header,
        .drain_timeout_s = (int)drain,
        .sched = {.max_batch = rt.max_batch, .max_batch_tokens = rt.batch_tokens, .max_queued = (size_t)queue,
                  .gov = rt.g},
        .cache = rt.lookup, .cache_writer = rt.writer, .cache_scope = rt.scope,
        .keys = &keys, .metrics_auth = metrics_auth,
        .n_models = rt.n_models, .models = rt.models, .model_ids = c.model_specs, .cache_scopes = rt.scopes,
        .cache_writers = rt.writers,
    };
    http_server *s;
    const size_t n_keys = keys.n;
    const int started = http_server_start(rt.m, &ho, &s);
    keys_free(&keys);   /* the server holds its copy */
    if (started) {
        cli_error("%s", cembed_last_error());
        runtime_close(&rt);
        return EXIT_FAIL;
    }
    if (n_keys)
        log_info("API keys: %zu (every route but /health%s needs one)%s%s", n_keys, metrics_auth ? "" : " and /metrics",
                 key_file ? "; SIGHUP reloads " : "", key_file ? key_file : "");
    log_info("listening on http://%s:%d", host, http_server_port(s));
    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
        if (!key_file) {
            log_info("received SIGHUP: nothing to reload; still serving");
            continue;
        }
        keyset fresh;
        if (load_keys(key_flags, n_key_flags, key_file, 0, &fresh, &file_keys)) {
            log_warn("received SIGHUP: the API key file did not load; the keys stay as they were");
            continue;
        }
        if (file_keys == 0) { /* an emptied file would open the service to everyone (or drop the file's keys) */
            log_warn("received SIGHUP: %s has no keys now; the old keys stay", key_file);
            keys_free(&fresh);
            continue;
        }
        log_info("received SIGHUP: API keys reloaded from %s (%zu keys)", key_file, fresh.n);
        http_server_set_keys(s, &fresh);
    }
    log_info("received %s: draining in-flight requests", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    http_server_stop(s);
    runtime_close(&rt);
    log_info("stopped");
    return EXIT_OK;
}
