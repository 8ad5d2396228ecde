/* `cembed cache stats|prune|clear`: the persistent vector cache. */
#include <string.h>

#include "cache/cache.h"
#include "cli.h"
#include "json/json.h"

int cmd_cache(int argc, char **argv) {
    const char *what = NULL, *flag = NULL;
    long max_mb = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cache") == 0 && i + 1 < argc) {
            flag = argv[++i];
        } else if (strcmp(argv[i], "--max-mb") == 0) {
            if (i + 1 >= argc || cli_parse_int(argv[++i], 0, 1L << 30, &max_mb)) {
                cli_error("--max-mb needs an integer in [0, %ld]", 1L << 30);
                return EXIT_USAGE;
            }
        } else if (!what && (strcmp(argv[i], "stats") == 0 || strcmp(argv[i], "prune") == 0 ||
                             strcmp(argv[i], "clear") == 0)) {
            what = argv[i];
        } else {
            cli_error("unknown argument %s", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!what) {
        cli_error("usage: cembed cache stats|prune|clear [--cache PATH] [--max-mb N]");
        return EXIT_USAGE;
    }
    char b[4096];
    const char *path;
    uint64_t max_bytes;
    int rc = cli_cache_settings(flag, 0, b, sizeof b, &path, &max_bytes);
    if (rc) return rc;
    if (!path) {
        cli_error("the cache is off (EMBEDDING_CACHE=off); name one with --cache PATH");
        return EXIT_USAGE;
    }
    if (max_mb >= 0) max_bytes = (uint64_t)max_mb << 20;
    cache *c;
    if (cache_open(path, max_bytes, &c)) {
        cli_error("%s", cembed_last_error());
        return EXIT_FAIL;
    }
    int status = EXIT_OK;
    if (strcmp(what, "prune") == 0) {
        long long removed = cache_prune(c, max_bytes);
        if (removed < 0) status = EXIT_FAIL;
        else printf("removed %lld vectors (least recently used) to fit %.1f MB\n", removed, max_bytes / 1048576.0);
    } else if (strcmp(what, "clear") == 0) {
        if (cache_clear(c)) status = EXIT_FAIL;
        else printf("cleared %s\n", path);
    }
    cache_stats st;
    char integrity[256];
    if (status == EXIT_OK && (cache_get_stats(c, &st) || cache_integrity(c, integrity, sizeof integrity))) status = EXIT_FAIL;
    if (status == EXIT_OK && strcmp(what, "stats") == 0) {
        buf out = {0};
        if (buf_append(&out, "{\"path\":", 8) || json_write_string(&out, path, strlen(path)) ||
            buf_printf(&out, ",\"vectors\":%llu,\"vector_bytes\":%llu,\"file_bytes\":%llu,\"max_bytes\":%llu,\"integrity\":",
                       (unsigned long long)st.rows, (unsigned long long)st.vector_bytes,
                       (unsigned long long)st.file_bytes, (unsigned long long)max_bytes) ||
            json_write_string(&out, integrity, strlen(integrity)) || buf_append(&out, "}\n", 2))
            status = EXIT_FAIL;
        else
            fwrite(out.ptr, 1, out.len, stdout);
        buf_free(&out);
    }
    if (status != EXIT_OK) cli_error("cache %s: %s", what, cembed_last_error());
    cache_close(c);
    return status;
}
