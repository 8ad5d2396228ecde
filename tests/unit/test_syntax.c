/* Unit tests of the syntax chunker (src/chunk/syntax.c): for each language
 * built in (thirteen; and tail.py for lone tails; macros.c and macros.cpp for
 * local parse errors, broken.py for errors spread over a file, which goes to
 * lines), a fixture in tests/fixtures/chunk/ and its chunks written out in
 * NAME.chunks ("first-last kind symbol <context-lines...", 1-based lines,
 * under the limit and at the path under a walk root that the file's first
 * line names: the path's module qualifies the symbols), with a stand-in tokenizer (a
 * run of letters and digits, or one punctuation byte, is one token); the
 * invariants (chunk_list_check) on every fixture at several limits and on
 * every cut of each fixture; the fallbacks; out-of-memory at every
 * allocation. Tests of a language that is not built in are skipped. */
#include <stdlib.h>

#include "chunk/chunk.h"
#include "test.h"

typedef struct cut {
    size_t (*lines)[2], n_lines;
    int *tokens;
    chunk_list cl;
} cut;

static int cut_path(const chunk_lang *l, const char *path, const char *text, size_t len, int max_tokens, cut *c) {
    memset(c, 0, sizeof *c);
    if (chunk_split_lines(text, len, &c->lines, &c->n_lines)) return CEMBED_ENOMEM;
    c->tokens = base_malloc((c->n_lines + 1) * sizeof *c->tokens);
    if (!c->tokens) return CEMBED_ENOMEM;
    for (size_t i = 0; i < c->n_lines; i++) c->tokens[i] = chunk_estimate_tokens(text + c->lines[i][0], c->lines[i][1] - c->lines[i][0]);
    const chunk_opts o = {.max_tokens = max_tokens, .max_lines = 80, .overlap = 0, .path = path};
    return chunk_file(l, text, len, (const size_t(*)[2])c->lines, c->tokens, c->n_lines, &o, &c->cl);
}

static int cut_text(const chunk_lang *l, const char *text, size_t len, int max_tokens, cut *c) {
    return cut_path(l, NULL, text, len, max_tokens, c);
}

static void cut_free(cut *c) {
    base_free(c->lines);
    base_free(c->tokens);
    chunk_list_free(&c->cl);
}

/* "first-last kind symbol <a-b <c-d" per chunk, one a line. */
static void describe(const cut *c, buf *b) {
    for (size_t i = 0; i < c->cl.n; i++) {
        const chunk_piece *p = &c->cl.v[i];
        buf_printf(b, "%d-%d %s", p->first + 1, p->last + 1, p->kind ? p->kind : "lines");
        if (p->sym_len) buf_printf(b, " %.*s", (int)p->sym_len, c->cl.names.ptr + p->sym);
        for (int k = 0; k < p->n_ctx; k++) buf_printf(b, " <%d-%d", p->ctx[k].first + 1, p->ctx[k].last + 1);
        buf_append(b, "\n", 1);
    }
}

static char *read_fixture(const char *name, size_t *len) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/chunk/%s", name);
    char *text = NULL;
    if (file_read_all(path, 1 << 20, &text, len)) return NULL;
    return text;
}

static const struct {
    const char *file, *lang;
} fixtures[] = {
    {"polynomial.py", "python"}, {"vec.c", "c"},      {"shapes.js", "javascript"}, {"stack.go", "go"},
    {"shapes.rs", "rust"},       {"Counter.java", "java"}, {"queue.ts", "typescript"}, {"matrix.cpp", "cpp"},
    {"Inventory.cs", "c_sharp"}, {"stack.rb", "ruby"},     {"cart.php", "php"},         {"deploy.sh", "bash"},
    {"List.tsx", "tsx"},         {"tail.py", "python"},   {"macros.c", "c"},           {"macros.cpp", "cpp"},
    {"broken.py", "python"},   /* the last: errors over the file, cut by lines */
};
#define N_FIXTURES (sizeof fixtures / sizeof *fixtures)

/* Each fixture against its NAME.chunks. */
static void expect_fixture(size_t f) {
    const chunk_lang *l = chunk_lang_by_name(fixtures[f].lang);
    if (!l) {
        TEST_SKIP("a grammar is not built in (scripts/fetch-grammars.sh)");
        return;
    }
    CHECK(chunk_lang_for_path(fixtures[f].file) == l);
    size_t len, elen;
    char *text = read_fixture(fixtures[f].file, &len), name[128];
    snprintf(name, sizeof name, "%s.chunks", fixtures[f].file);
    char *want = read_fixture(name, &elen);
    CHECK_MSG(text && want, "%s or %s missing", fixtures[f].file, name);
    if (!text || !want) goto done;
    int max_tokens = 0;
    char path[128] = "";   /* where the file would be under the walk root: its module */
    CHECK_MSG(sscanf(want, "# max_tokens %d path %127s", &max_tokens, path) >= 1 && max_tokens > 0,
              "%s: no '# max_tokens N [path P]' line", name);
    cut c;
    CHECK_INT(cut_path(l, *path ? path : NULL, text, len, max_tokens, &c), 0);
    CHECK_INT(c.cl.syntax, f + 1 < N_FIXTURES);
    CHECK_INT(chunk_list_check(text, (const size_t(*)[2])c.lines, c.n_lines, &c.cl), 0);
    buf got = {0};
    describe(&c, &got);
    buf_append(&got, "", 1);
    const char *expect = strchr(want, '\n') + 1;
    CHECK_MSG(strcmp(got.ptr, expect) == 0, "%s:\n--- got\n%s--- want\n%s", fixtures[f].file, got.ptr, expect);
    buf_free(&got);
    cut_free(&c);
done:
    base_free(text);
    base_free(want);
}

TEST(syntax_python_fixture) { expect_fixture(0); }
TEST(syntax_c_fixture) { expect_fixture(1); }
TEST(syntax_javascript_fixture) { expect_fixture(2); }
TEST(syntax_go_fixture) { expect_fixture(3); }
TEST(syntax_rust_fixture) { expect_fixture(4); }
TEST(syntax_java_fixture) { expect_fixture(5); }
TEST(syntax_typescript_fixture) { expect_fixture(6); }
TEST(syntax_cpp_fixture) { expect_fixture(7); }
TEST(syntax_c_sharp_fixture) { expect_fixture(8); }
TEST(syntax_ruby_fixture) { expect_fixture(9); }
TEST(syntax_php_fixture) { expect_fixture(10); }
TEST(syntax_bash_fixture) { expect_fixture(11); }
TEST(syntax_tsx_fixture) { expect_fixture(12); }
/* The lone tails of split definitions: `return wrapper` (3 tokens) joins
 * the wrapper's last part; `return out` stays alone, the part before it being
 * full. */
TEST(syntax_lone_tail_fixture) { expect_fixture(13); }
/* Local parse errors: _Thread_local, a macro as a loop head (MISSING ";"), a
 * macro before a return type; a function whose declarator is broken has no
 * symbol. */
TEST(syntax_c_local_errors_fixture) { expect_fixture(14); }
/* Q_OBJECT, foreach, a macro before a return type, `extern "C" {` under #ifdef. */
TEST(syntax_cpp_local_errors_fixture) { expect_fixture(15); }
/* Missing colons all over the file: the tree is not used. */
TEST(syntax_spread_errors_fixture) { expect_fixture(16); }

/* A definition that fits is one chunk, decorator included, with its class
 * line as context. */
TEST(syntax_definition_whole_when_it_fits) {
    const chunk_lang *l = chunk_lang_by_name("python");
    if (!l) {
        TEST_SKIP("no python grammar built in");
        return;
    }
    size_t len;
    char *text = read_fixture("polynomial.py", &len);
    CHECK(text != NULL);
    if (!text) return;
    cut c;
    CHECK_INT(cut_text(l, text, len, 254, &c), 0);
    buf got = {0};
    describe(&c, &got);
    buf_append(&got, "", 1);
    CHECK_CONTAINS(got.ptr, "\n26-41 method Polynomial.fit <17-17\n");
    cut_free(&c);
    buf_free(&got);
    base_free(text);
}

/* Qualified names longer than the buffer's first allocation: the enclosing
 * frame's name is read after the buffer grows (ASan saw it read freed memory). */
TEST(syntax_long_nested_names) {
    const chunk_lang *l = chunk_lang_by_name("python");
    if (!l) {
        TEST_SKIP("no python grammar built in");
        return;
    }
    char a[101], b[101], c3[101], src[600], want[320];
    memset(a, 'A', 100), memset(b, 'B', 100), memset(c3, 'C', 100);
    a[100] = b[100] = c3[100] = 0;
    snprintf(src, sizeof src, "class %s:\n    class %s:\n        class %s:\n            def f(self):\n"
             "                x = 1\n                return x\n", a, b, c3);
    snprintf(want, sizeof want, "%s.%s.%s.f", a, b, c3);
    cut c;
    CHECK_INT(cut_text(l, src, strlen(src), 2, &c), 0);
    const chunk_piece *p = c.cl.n ? &c.cl.v[c.cl.n - 1] : NULL;
    CHECK_MSG(p && p->sym_len == strlen(want) && memcmp(c.cl.names.ptr + p->sym, want, p->sym_len) == 0, "%.*s",
              p ? (int)p->sym_len : 0, p && c.cl.names.ptr ? c.cl.names.ptr + p->sym : "");
    cut_free(&c);
}

/* Every fixture at several limits, and every prefix of it (a file cut off
 * anywhere: most do not parse and go to lines), keeps the invariants. */
TEST(syntax_invariants_on_cut_sources) {
    static const int limits[] = {1, 3, 8, 20, 60, 254, 100000};
    size_t runs = 0;
    for (size_t f = 0; f < sizeof fixtures / sizeof *fixtures; f++) {
        const chunk_lang *l = chunk_lang_by_name(fixtures[f].lang);
        size_t len;
        char *text = read_fixture(fixtures[f].file, &len);
        CHECK(text != NULL);
        if (!text) continue;
        for (size_t cutlen = 0; cutlen <= len; cutlen += 1 + cutlen % 7) {
            for (size_t k = 0; k < sizeof limits / sizeof *limits; k++) {
                if (cutlen < len && k % 3 != cutlen % 3) continue;   /* prefixes: a third of the limits each */
                cut c;
                CHECK_INT(cut_text(l, text, cutlen, limits[k], &c), 0);
                const int rc = chunk_list_check(text, (const size_t(*)[2])c.lines, c.n_lines, &c.cl);
                CHECK_MSG(rc == 0, "%s cut at %zu, limit %d: %s", fixtures[f].file, cutlen, limits[k], cembed_last_error());
                cut_free(&c);
                runs++;
            }
        }
        base_free(text);
    }
    CHECK(runs > 100);
}

/* The module rules of lang.c's table: a package or namespace declaration,
 * else the path under the walk root by each language's rule. */
TEST(syntax_module_qualifies_symbols) {
    static const struct {
        const char *lang, *path, *src, *want;
    } cases[] = {
        {"python", "pkg/__init__.py", "def f():\n    pass\n", "pkg.f"},
        {"python", "./numpy/linalg/linalg.py", "def norm(x):\n    pass\n", "numpy.linalg.linalg.norm"},
        {"python", "__init__.py", "def f():\n    pass\n", "f"},
        {"python", NULL, "class A:\n    def f(self):\n        pass\n", "A"},
        {"java", "src/app/Main.java", "class Main {}\n", "src.app.Main"},
        {"java", "src/app/Main.java", "package org.x;\nclass Main {}\n", "org.x.Main"},
        {"c_sharp", "a/B.cs", "namespace N.M;\nclass C {}\n", "N.M.C"},
        {"c_sharp", "a/B.cs", "class C {}\n", "a.B.C"},
        {"php", "src/util.php", "<?php\nfunction f() {}\n", "src\\util\\f"},
        {"go", "cmd/x.go", "package main\n\nfunc F() {}\n", "main.F"},
        {"rust", "src/geo/mod.rs", "fn f() {}\n", "src::geo::f"},
        {"c", "src/x.c", "int f(void) { return 0; }\n", "src/x.c::f"},
        {"cpp", "la/m.hpp", "namespace la { int f(); struct S { int g() { return 1; } }; }\n", "la/m.hpp::la"},
        {"javascript", "web/index.js", "class A { m() {} }\n", "web/index.js::A"},
    };
    if (!chunk_lang_by_name("python")) {
        TEST_SKIP("built without tree-sitter grammars (make grammars)");
        return;
    }
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const chunk_lang *l = chunk_lang_by_name(cases[i].lang);
        if (!l) continue;
        cut c;
        CHECK_INT(cut_path(l, cases[i].path, cases[i].src, strlen(cases[i].src), 100, &c), 0);
        CHECK_INT(c.cl.syntax, 1);
        const chunk_piece *p = c.cl.n ? &c.cl.v[0] : NULL;
        CHECK_MSG(p && p->sym_len == strlen(cases[i].want) && memcmp(c.cl.names.ptr + p->sym, cases[i].want, p->sym_len) == 0,
                  "%s %s: %.*s, want %s", cases[i].lang, cases[i].path ? cases[i].path : "(no path)", p ? (int)p->sym_len : 0,
                  p && c.cl.names.ptr ? c.cl.names.ptr + p->sym : "", cases[i].want);
        cut_free(&c);
    }
}

/* The walker says each file's path under its walk root: the module's. */
TEST(syntax_walk_gives_paths_under_the_root) {
    const char *const roots[] = {"tests/fixtures/chunk/", "tests/fixtures/chunk/vec.c"};
    walk_list wl;
    walk_stats ws;
    CHECK_INT(walk_paths(roots, 2, 1 << 20, &wl, &ws), 0);
    CHECK(wl.n > 13);
    for (size_t i = 0; i + 1 < wl.n; i++) {
        const char *rel = wl.paths[i] + wl.rel[i];
        CHECK(wl.rel[i] == 21 && (strchr(rel, '/') == NULL || strncmp(rel, "pkg/", 4) == 0));
    }
    CHECK_STR(wl.paths[wl.n - 1] + wl.rel[wl.n - 1], "tests/fixtures/chunk/vec.c");   /* named directly: as given */
    walk_list_free(&wl);
    const char *const pkg[] = {"tests/fixtures/chunk/pkg"};   /* a package: its files count from its parent */
    CHECK_INT(walk_paths(pkg, 1, 1 << 20, &wl, &ws), 0);
    CHECK_INT((int)wl.n, 2);
    if (wl.n == 2) {
        CHECK_STR(wl.paths[1] + wl.rel[1], "pkg/mod.py");
        size_t len;
        char *text = NULL;
        cut c = {0};   /* freed below even when no python grammar is built in */
        const chunk_lang *l = chunk_lang_by_name("python");
        if (l && file_read_all(wl.paths[1], 1 << 20, &text, &len) == 0 && cut_path(l, wl.paths[1] + wl.rel[1], text, len, 100, &c) == 0) {
            CHECK_INT((int)c.cl.n, 1);
            CHECK(c.cl.v[0].sym_len == 12 && memcmp(c.cl.names.ptr + c.cl.v[0].sym, "pkg.mod.norm", 12) == 0);
        }
        cut_free(&c);
        base_free(text);
    }
    walk_list_free(&wl);
}

TEST(syntax_falls_back_to_lines) {
    CHECK(chunk_lang_for_path("notes.txt") == NULL);
    CHECK(chunk_lang_for_path("Makefile") == NULL);
    CHECK(chunk_lang_for_path("dir.py/README") == NULL);
    cut c;
    CHECK_INT(cut_text(NULL, "a b c\n\nd e\n", 11, 2, &c), 0);   /* no language: line windows */
    CHECK_INT(c.cl.syntax, 0);
    CHECK(c.cl.n >= 2 && c.cl.v[0].kind == NULL);
    cut_free(&c);
    const chunk_lang *l = chunk_lang_by_name("python");
    if (!l) {
        CHECK_STR(chunk_langs(), "");
        CHECK(chunk_lang_for_path("a.py") == NULL);
        TEST_SKIP("no python grammar built in: the fallback without tree-sitter only");
        return;
    }
    CHECK(strstr(chunk_langs(), "python") != NULL);
    CHECK(chunk_lang_for_path("pkg/mod.py") == l);
    const char *local = "def f(:\n    return )\n";   /* errors within a line each: the tree is used */
    CHECK_INT(cut_text(l, local, strlen(local), 100, &c), 0);
    CHECK_INT(c.cl.syntax, 1);
    CHECK(c.cl.n_errors >= 2);
    CHECK_INT((int)c.cl.n, 1);
    cut_free(&c);
    const char *bad = "class A\n    def f(self)\n        return 1\n    def g(self)\n        return 2\n";   /* no colons */
    CHECK_INT(cut_text(l, bad, strlen(bad), 100, &c), 0);
    CHECK_INT(c.cl.syntax, 0);
    CHECK_STR(c.cl.lang, "python");
    CHECK_INT((int)c.cl.n, 1);
    chunk_list cl;
    const chunk_opts o = {.max_tokens = 100, .max_lines = 10};
    CHECK_INT(chunk_syntax(l, bad, strlen(bad), (const size_t(*)[2])c.lines, c.tokens, c.n_lines, &o, &cl), CEMBED_EFORMAT);
    CHECK_CONTAINS(cembed_last_error(), "parse errors on 4 of its 5 lines");
    chunk_list_free(&cl);
    cut_free(&c);
}

/* Out of memory at each allocation: CEMBED_ENOMEM, nothing leaked (ASan);
 * a file without parse errors and one with (errors_local's allocation). */
static void out_of_memory(const char *file, const char *lang) {
    const chunk_lang *l = chunk_lang_by_name(lang);
    size_t len;
    char *text = read_fixture(file, &len);
    CHECK(text != NULL);
    if (!text) return;
    int rc = -1;
    for (size_t n = 1; n < 10000 && rc != 0; n++) {
        cut c;
        base_alloc_fail_after(n);
        rc = cut_text(l, text, len, 60, &c);
        base_alloc_fail_after(0);
        CHECK_MSG(rc == 0 || rc == CEMBED_ENOMEM, "%s, failing allocation %zu: %d", file, n, rc);
        cut_free(&c);
    }
    CHECK_INT(rc, 0);
    base_free(text);
}

TEST(syntax_out_of_memory) {
    out_of_memory("polynomial.py", "python");
    out_of_memory("macros.c", "c");
}
