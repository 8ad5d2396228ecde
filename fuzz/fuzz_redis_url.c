/* libFuzzer target: the worker's Redis URL parser. */
#include <string.h>

#include "worker/worker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = base_strndup((const char *)data, size);
    if (!s) return 0;
    redis_addr a;
    if (redis_parse_url(s, &a) == 0) {
        CE_ASSERT(a.port >= 1 && a.port <= 65535 && a.db >= 0);
        CE_ASSERT(strlen(a.host) < sizeof a.host && strlen(a.password) < sizeof a.password);
    }
    base_free(s);
    return 0;
}
