/* libFuzzer target: src/tok/scan.c, the fast path for tokenizer.json's
 * vocab and merges, against the jansson-only loader. Whatever the fast
 * path accepts, the slow one must accept too and build the same
 * vocabulary and the same ids for a few texts; the fast path may refuse
 * anything (tok_load_json then loads the slow way). */
#include <string.h>

#include "tok/tok_internal.h"

static int same_ids(tokenizer *a, tokenizer *b, const char *text) {
    tok_ids x = {0}, y = {0};
    int ra = tok_encode(a, text, strlen(text), 64, &x), rb = tok_encode(b, text, strlen(text), 64, &y);
    int same = ra == rb && x.n == y.n && (x.n == 0 || memcmp(x.ids, y.ids, x.n * sizeof *x.ids) == 0);
    tok_ids_free(&x);
    tok_ids_free(&y);
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    tokenizer *fast = NULL, *slow = NULL;
    if (tok_load_json_scanned(s, size, &fast) == 0) {
        CE_ASSERT(tok_load_json_tree(s, size, &slow) == 0);
        CE_ASSERT(vocab_equal(&fast->v, &slow->v));
        CE_ASSERT(same_ids(fast, slow, "ab aab ba \xc3\xa9 x"));
        CE_ASSERT(same_ids(fast, slow, "Hello, world! \xe4\xb8\xad\xf0\x9f\x98\x80"));
    }
    tok_free(fast);
    tok_free(slow);
    tok_thread_release();
    return 0;
}
