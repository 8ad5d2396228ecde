/* `cembed serve`: the HTTP service. SIGTERM, SIGINT and SIGHUP are blocked
 * before anything else runs, so every thread inherits the mask, and taken
 * here with sigwait: SIGTERM/SIGINT start a drain (new requests get 503 +
 * Retry-After, the ones in flight complete) and the process exits 0; more of
 * them during the drain change nothing. SIGHUP (what a service manager sends
 * to reload) is logged and the service goes on. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "http/http.h"
#include "runtime.h"

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
    long port = 8000, max_body = 64L << 20, max_chunks = 100000, depth = 32, conns = 10000, per_ip = 256, idle = 30,
         header = 10, queue = 200000;
    if (cli_env_long("EMBEDDING_PORT", 0, 65535, &port) ||
        cli_env_long("EMBEDDING_MAX_BODY_BYTES", 1024, 1L << 32, &max_body) ||
        cli_env_long("EMBEDDING_MAX_CHUNKS", 1, 10000000, &max_chunks) || cli_env_long("EMBEDDING_MAX_JSON_DEPTH", 2, 1000, &depth) ||
        cli_env_long("EMBEDDING_MAX_CONNECTIONS", 1, 1000000, &conns) ||
        cli_env_long("EMBEDDING_MAX_CONNECTIONS_PER_IP", 1, 1000000, &per_ip) ||
        cli_env_long("EMBEDDING_IDLE_TIMEOUT", 1, 3600, &idle) || cli_env_long("EMBEDDING_HEADER_TIMEOUT", 1, 3600, &header) ||
        cli_env_long("EMBEDDING_MAX_QUEUED", 1, 100000000, &queue))
        return EXIT_USAGE;
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
    runtime rt;
    int status = cli_resolve_model(&c);
    if (status) return status;
    status = runtime_open(&rt, &c);
    if (status) {
        runtime_close(&rt);
        return status;
    }
    http_opts ho = {
        .host = host, .port = (int)port, .max_body_bytes = (size_t)max_body, .max_chunks = (size_t)max_chunks,
        .max_depth = (int)depth, .max_connections = (int)conns, .max_connections_per_ip = (int)per_ip,
        .idle_timeout_s = (int)idle, .header_timeout_s = (int)header,
        .sched = {.max_batch = rt.max_batch, .max_batch_tokens = rt.batch_tokens, .max_queued = (size_t)queue,
                  .gov = rt.g},
        .cache = rt.lookup, .cache_writer = rt.writer, .cache_scope = rt.scope,
    };
    http_server *s;
    if (http_server_start(rt.m, &ho, &s)) {
        cli_error("%s", cembed_last_error());
        runtime_close(&rt);
        return EXIT_FAIL;
    }
    log_info("listening on http://%s:%d", host, http_server_port(s));
    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) log_info("received SIGHUP: nothing to reload; still serving");
    log_info("received %s: draining in-flight requests", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    http_server_stop(s);
    runtime_close(&rt);
    log_info("stopped");
    return EXIT_OK;
}
