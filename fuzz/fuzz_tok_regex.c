/* libFuzzer target: the tokenizer's regex compiler and matcher. The input
 * is split at the first NUL: before it a pattern, after it a text searched
 * with every start position, as the Split pre-tokenizer does. */
#include <string.h>

#include "tok/regex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    const char *nul = memchr(s, 0, size);
    size_t plen = nul ? (size_t)(nul - s) : size;
    if (plen > 256) return 0;   /* bounded repeats unroll: keep programs small */
    tok_re *re = NULL;
    if (tok_re_compile(s, plen, &re) != 0) return 0;
    size_t tlen = nul ? size - plen - 1 : 0;
    uint32_t *cps = base_malloc((tlen + 1) * sizeof *cps);
    if (cps) {
        size_t n = utf8_decode(nul ? nul + 1 : "", tlen, cps), from = 0, ms, me;
        while (from <= n && n <= 512 && tok_re_find(re, cps, n, from, &ms, &me) == 1) {
            CE_ASSERT(ms >= from && me >= ms && me <= n);
            from = me > ms ? me : me + 1;
        }
    }
    base_free(cps);
    tok_re_free(re);
    tok_re_thread_release();
    return 0;
}
