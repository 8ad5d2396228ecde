/* `cembed cache stats|prune|clear`: the persistent vector cache. */
#include <string.h>

#include "cache/cache.h"
#include "cli.h"
#include "json/json.h"
#include "options.h"

/* The arguments: stats|prune|clear into *what, --cache, --max-mb (-1: unset). 0 or EXIT_USAGE (said). */
static int cache_args(int argc, char **argv, const char **what, const char **flag, long *max_mb) {
    for (int i = 1; i < argc; i++) {
        const int r = opt_take_text("EMBEDDING_CACHE", argc, argv, &i, flag);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if (strcmp(argv[i], "--max-mb") == 0) {   /* a flag only: EMBEDDING_CACHE_MAX_MB has no flag */
            if (i + 1 >= argc || cli_parse_int(argv[++i], 0, 1L << 30, max_mb)) {
                cli_error("--max-mb needs an integer in [0, %ld]", 1L << 30);
                return EXIT_USAGE;
            }
        } else if (!*what && (strcmp(argv[i], "stats") == 0 || strcmp(argv[i], "prune") == 0 ||
                              strcmp(argv[i], "clear") == 0)) {
            *what = argv[i];
        } else {
            cli_error("unknown argument %s", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!*what) {
        cli_error("usage: cembed cache stats|prune|clear [--cache PATH] [--max-mb N]");
        return EXIT_USAGE;
    }
    return 0;
}

/* Reads the cache's sizes and integrity (after prune and clear too: a cache
 * they broke fails here); when print, writes them and the path as one JSON
 * line. 0, or -1. */
static int read_stats(cache *c, const char *path, uint64_t max_bytes, int print) {
    cache_stats st;
    char integrity[256];
    if (cache_get_stats(c, &st) || cache_integrity(c, integrity, sizeof integrity)) return -1;
    if (!print) return 0;
    buf out = {0};
    int rc = -1;
    if (buf_append(&out, "{\"path\":", 8) || json_write_string(&out, path, strlen(path)) ||
        buf_printf(&out, ",\"vectors\":%llu,\"vector_bytes\":%llu,\"file_bytes\":%llu,\"max_bytes\":%llu,\"integrity\":",
                   (unsigned long long)st.rows, (unsigned long long)st.vector_bytes,
                   (unsigned long long)st.file_bytes, (unsigned long long)max_bytes) ||
        json_write_string(&out, integrity, strlen(integrity)) || buf_append(&out, "}\n", 2))
        goto done;
    fwrite(out.ptr, 1, out.len, stdout);
    rc = 0;
done:
    buf_free(&out);
    return rc;
}

/* prune or clear (what), saying what was done; stats and every other word: nothing. 0, or -1. */
static int change(cache *c, const char *what, const char *path, uint64_t max_bytes) {
    if (strcmp(what, "prune") == 0) {
        const long long removed = cache_prune(c, max_bytes);
        if (removed < 0) return -1;
        printf("removed %lld vectors (least recently used) to fit %.1f MB\n", removed, max_bytes / 1048576.0);
    } else if (strcmp(what, "clear") == 0) {
        if (cache_clear(c)) return -1;
        printf("cleared %s\n", path);
    }
    return 0;
}

int cmd_cache(int argc, char **argv) {
    const char *what = NULL, *flag = NULL;
    long max_mb = -1;
    int rc = cache_args(argc, argv, &what, &flag, &max_mb);
    if (rc) return rc;
    char b[4096];
    const char *path;
    uint64_t max_bytes;
    if ((rc = cli_cache_settings(flag, 0, b, sizeof b, &path, &max_bytes))) return rc;
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
    const int status = change(c, what, path, max_bytes) || read_stats(c, path, max_bytes, strcmp(what, "stats") == 0)
                           ? EXIT_FAIL : EXIT_OK;
    if (status != EXIT_OK) cli_error("cache %s: %s", what, cembed_last_error());
    cache_close(c);
    return status;
}
