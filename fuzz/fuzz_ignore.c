/* libFuzzer target: .gitignore parsing and matching, and the chunker on
 * arbitrary text (line splitting, boundary scoring, window invariants). */
#include <string.h>

#include "chunk/chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    ignore_rules *r;
    if (ignore_parse(text, size, "sub", &r) == 0) {
        static const char *const paths[] = {"sub/a.c", "sub/x/y/z.o", "sub/build", "other/a.c", "sub/[a]", "sub/a b"};
        for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
            int m = ignore_match(r, paths[i], (int)(i & 1));
            CE_ASSERT(m >= -1 && m <= 1);
        }
        ignore_free(r);
    }
    /* the first line as a pattern against the rest */
    char *nl = memchr(text, '\n', size);
    if (nl && size < 4096) {
        char *pat = base_strndup(text, (size_t)(nl - text)), *s = base_strndup(nl + 1, size - (size_t)(nl - text) - 1);
        if (pat && s) ignore_glob(pat, s);
        base_free(pat);
        base_free(s);
    }
    size_t (*lines)[2], n_lines, n_spans;
    if (chunk_split_lines(text, size, &lines, &n_lines)) return 0;
    int *tokens = base_malloc((n_lines + 1) * sizeof *tokens);
    chunk_span *spans;
    const chunk_opts o = {.max_tokens = 16, .max_lines = 8, .overlap = size % 3};
    for (size_t i = 0; tokens && i < n_lines; i++) tokens[i] = (int)((lines[i][1] - lines[i][0]) % 23);
    if (tokens && chunk_lines(text, (const size_t(*)[2])lines, tokens, n_lines, &o, &spans, &n_spans) == 0) {
        for (size_t i = 0; i < n_spans; i++) {
            CE_ASSERT(spans[i].first >= 0 && spans[i].last >= spans[i].first && (size_t)spans[i].last < n_lines);
            CE_ASSERT(spans[i].last - spans[i].first < o.max_lines);
            int t = 0;
            for (int l = spans[i].first; l <= spans[i].last; l++) t += tokens[l];
            CE_ASSERT(t <= o.max_tokens || spans[i].first == spans[i].last);
            if (i) CE_ASSERT(spans[i].first > spans[i - 1].first);
        }
        base_free(spans);
    }
    base_free(tokens);
    base_free(lines);
    return 0;
}
