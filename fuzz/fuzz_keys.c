/* libFuzzer target: the API key file parser (keys_add), both forms (lines,
 * and the comma-separated EMBEDDING_API_KEY): every key kept is printable
 * and matches itself, and nothing else survives a failure. */
#include <string.h>

#include "http/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int commas = 0; commas < 2; commas++) {
        keyset k = {0};
        if (keys_add(&k, (const char *)data, size, commas) == 0) {
            for (size_t i = 0; i < k.n; i++) {
                const size_t n = strlen(k.keys[i]);
                CE_ASSERT(n >= 1 && n <= 512);
                for (size_t t = 0; t < n; t++) CE_ASSERT(k.keys[i][t] > 0x20 && k.keys[i][t] < 0x7f);
                CE_ASSERT(keys_match(&k, k.keys[i], n));
                CE_ASSERT(!keys_match(&k, k.keys[i], n - 1) || n == 1 || k.n > 1);
            }
        } else {
            CE_ASSERT(k.n == 0);
        }
        keys_free(&k);
    }
    return 0;
}
