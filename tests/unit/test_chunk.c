/* Unit tests of src/chunk: gitignore patterns and the chunker. (The walker
 * is tested against git itself in tests/integration/embed_tree_test.py.) */
#include <stdlib.h>

#include "chunk/chunk.h"
#include "test.h"

TEST(ignore_glob_patterns) {
    struct {
        const char *pat, *s;
        int want;
    } cases[] = {
        {"*.o", "a.o", 1},          {"*.o", "dir/a.o", 0},       {"a?c", "abc", 1},          {"a?c", "a/c", 0},
        {"[abc].txt", "b.txt", 1},  {"[!abc].txt", "b.txt", 0},  {"[a-c]x", "cx", 1},        {"[a-c]x", "dx", 0},
        {"**/foo", "foo", 1},       {"**/foo", "a/b/foo", 1},    {"**/foo", "a/xfoo", 0},    {"a/**/b", "a/b", 1},
        {"a/**/b", "a/x/y/b", 1},   {"a/**/b", "ab", 0},         {"abc/**", "abc/x/y", 1},   {"abc/**", "abc", 0},
        {"\\*lit", "*lit", 1},      {"\\*lit", "xlit", 0},       {"*", "anything", 1},       {"*", "a/b", 0},
        {"foo*bar", "foobazbar", 1}, {"foo*bar", "foo/bar", 0},  {"[", "[", 1},              {"doc/*.txt", "doc/a.txt", 1},
        {"doc/*.txt", "doc/x/a.txt", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK_MSG(ignore_glob(cases[i].pat, cases[i].s) == cases[i].want, "glob %s vs %s: want %d", cases[i].pat,
                  cases[i].s, cases[i].want);
}

TEST(ignore_rules_semantics) {
    const char *text = "# comment\n"
                       "*.log\n"
                       "!keep.log\n"
                       "build/\n"
                       "/top.txt\n"
                       "docs/*.md\n"
                       "trailing   \n"
                       "\\#hash\n"
                       "\n";
    ignore_rules *r;
    CHECK_INT(ignore_parse(text, strlen(text), "", &r), 0);
    CHECK_INT(ignore_match(r, "x.log", 0), 1);
    CHECK_INT(ignore_match(r, "deep/x.log", 0), 1);
    CHECK_INT(ignore_match(r, "keep.log", 0), 0);      /* negated: re-included */
    CHECK_INT(ignore_match(r, "build", 1), 1);
    CHECK_INT(ignore_match(r, "build", 0), -1);        /* directory-only pattern, a file */
    CHECK_INT(ignore_match(r, "a/build", 1), 1);
    CHECK_INT(ignore_match(r, "top.txt", 0), 1);
    CHECK_INT(ignore_match(r, "a/top.txt", 0), -1);    /* anchored */
    CHECK_INT(ignore_match(r, "docs/a.md", 0), 1);
    CHECK_INT(ignore_match(r, "x/docs/a.md", 0), -1);  /* a middle slash anchors too */
    CHECK_INT(ignore_match(r, "trailing", 0), 1);
    CHECK_INT(ignore_match(r, "#hash", 0), 1);
    CHECK_INT(ignore_match(r, "main.c", 0), -1);
    ignore_free(r);
    /* rules of a sub-folder see paths relative to it */
    CHECK_INT(ignore_parse("/gen\n*.tmp\n", 10, "sub/dir", &r), 0);
    CHECK_INT(ignore_match(r, "sub/dir/gen", 1), 1);
    CHECK_INT(ignore_match(r, "sub/dir/x/gen", 1), -1);
    CHECK_INT(ignore_match(r, "sub/dir/x/a.tmp", 0), 1);
    CHECK_INT(ignore_match(r, "other/a.tmp", 0), -1);
    CHECK_INT(ignore_match(r, "sub/dirx/a.tmp", 0), -1);
    ignore_free(r);
}

/* Chunks text with one token per non-space character run (a stand-in for
 * the tokenizer) and checks the invariants every chunking must keep. */
static chunk_span *chunk_text(const char *text, const chunk_opts *o, size_t *n, size_t (**lines)[2], size_t *n_lines,
                              int **tokens) {
    CHECK_INT(chunk_split_lines(text, strlen(text), lines, n_lines), 0);
    *tokens = malloc((*n_lines + 1) * sizeof **tokens);
    for (size_t i = 0; i < *n_lines; i++) {
        int t = 0;
        for (size_t k = (*lines)[i][0]; k < (*lines)[i][1]; k++)
            t += text[k] != ' ' && (k == (*lines)[i][0] || text[k - 1] == ' ');
        (*tokens)[i] = t;
    }
    chunk_span *s;
    CHECK_INT(chunk_lines(text, (const size_t(*)[2]) * lines, *tokens, *n_lines, o, &s, n), 0);
    return s;
}

TEST(chunker_fits_and_prefers_boundaries) {
    buf b = {0};
    /* 30 functions of 6 lines each, blank line between, 3 tokens a line */
    for (int f = 0; f < 30; f++) {
        buf_printf(&b, "def f%d(x) :\n", f);
        for (int k = 0; k < 4; k++) buf_printf(&b, "    y = x\n");
        buf_printf(&b, "    return y\n\n");
    }
    buf_append(&b, "", 1);
    chunk_opts o = {.max_tokens = 40, .max_lines = 80, .overlap = 0};
    size_t n, (*lines)[2], n_lines;
    int *tokens;
    chunk_span *s = chunk_text(b.ptr, &o, &n, &lines, &n_lines, &tokens);
    CHECK(n > 1);
    int covered = 0;
    for (size_t i = 0; i < n; i++) {
        int t = 0;
        for (int l = s[i].first; l <= s[i].last; l++) t += tokens[l];
        CHECK(t <= o.max_tokens);
        /* every chunk starts at a definition: the cut went before "def" */
        if (strncmp(b.ptr + lines[s[i].first][0], "def ", 4) != 0) FAIL_AT("chunk %zu starts at line %d", i, s[i].first);
        if (i) CHECK(s[i].first > s[i - 1].last);
        covered += s[i].last - s[i].first + 1;
    }
    /* no non-blank line is lost (blank lines between chunks may be) */
    int nonblank = 0;
    for (size_t l = 0; l < n_lines; l++) nonblank += lines[l][1] > lines[l][0];
    CHECK(covered >= nonblank);
    free(tokens);
    base_free(lines);
    base_free(s);
    /* overlap: consecutive windows share lines; a line over the limit stands alone */
    b.len = 0;
    for (int k = 0; k < 50; k++) buf_printf(&b, "a b c d\n");
    buf_printf(&b, "w w w w w w w w w w w w w w w w w w w w\n");
    for (int k = 0; k < 5; k++) buf_printf(&b, "a b\n");
    buf_append(&b, "", 1);
    o = (chunk_opts){.max_tokens = 12, .max_lines = 10, .overlap = 1};
    s = chunk_text(b.ptr, &o, &n, &lines, &n_lines, &tokens);
    int alone = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && s[i].last < 50) CHECK_INT(s[i].first, s[i - 1].last);   /* one shared line */
        alone |= s[i].first == 50 && s[i].last == 50;
    }
    CHECK(alone);
    CHECK_INT(s[n - 1].last, 55);
    free(tokens);
    base_free(lines);
    base_free(s);
    /* whitespace only: no chunk; no trailing newline: the last line counts */
    o = (chunk_opts){.max_tokens = 10, .max_lines = 10, .overlap = 0};
    s = chunk_text("  \n\t\n\n", &o, &n, &lines, &n_lines, &tokens);
    CHECK_INT(n, 0);
    free(tokens), base_free(lines), base_free(s);
    s = chunk_text("x\r\ny", &o, &n, &lines, &n_lines, &tokens);
    CHECK_INT(n_lines, 2);
    CHECK_INT(lines[0][1], 1);   /* \r is not part of the line */
    CHECK_INT(n, 1);
    free(tokens), base_free(lines), base_free(s);
    CHECK(chunk_is_binary("a\0b", 3));
    CHECK(!chunk_is_binary("abc", 3));
    buf_free(&b);
}
