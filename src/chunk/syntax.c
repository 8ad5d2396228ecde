/* The syntax chunker; see chunk.h for its rules.
 *
 * Everything works on whole lines, because a chunk is a line range and the
 * caller counts tokens per line. A walk over the tree places each node at
 * the first line not yet covered (`from`): a node that fits (its lines plus
 * the context its chunk would carry) is one unit; one that does not is
 * split at its children, and a definition being split pushes a frame (its
 * header lines: from its first line to the line before its body, or the body's
 * first line when the body opens on a line that also holds the signature)
 * whose lines become the context of the parts after it. A leaf that is still
 * too large is cut by the line chunker. Units go into one gathering chunk
 * while they fit and see the same context (the frames that start before the
 * chunk's first line); a definition of half the limit or more is a chunk of
 * its own, and a definition that is split starts a new chunk, so that chunk
 * boundaries, and with them cache keys, stay where the code does not change.
 * Comments and attributes are not placed at all: the next sibling's unit
 * starts at `from` and takes them in. Blank lines at a chunk's ends are
 * trimmed; a chunk of blank lines only is dropped. The last part of a split
 * definition, when small (a lone `return x`), goes into the chunk before it
 * if that is a part of the same definition and still fits.
 */
#include <string.h>

#include "chunk/chunk.h"
#include "chunk/lang.h"

void chunk_list_free(chunk_list *l) {
    base_free(l->v);
    buf_free(&l->names);
    memset(l, 0, sizeof *l);
}

static int list_push(chunk_list *l, const chunk_piece *p) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        chunk_piece *v = base_realloc(l->v, cap * sizeof *v);
        if (!v) return base_err(CEMBED_ENOMEM, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *p;
    return 0;
}

int chunk_file(const chunk_lang *l, const char *text, size_t len, const size_t (*lines)[2], const int *tokens,
               size_t n_lines, const chunk_opts *o, chunk_list *out) {
    if (l) {
        int rc = chunk_syntax(l, text, len, lines, tokens, n_lines, o, out);
        if (rc != CEMBED_EFORMAT && rc != CEMBED_EINVAL) return rc;
        chunk_list_free(out);
    }
    memset(out, 0, sizeof *out);
    out->lang = l ? chunk_lang_name(l) : NULL;
    chunk_span *spans = NULL;
    size_t n = 0;
    int rc = chunk_lines(text, lines, tokens, n_lines, o, &spans, &n);
    for (size_t i = 0; i < n && !rc; i++) rc = list_push(out, &(chunk_piece){.first = spans[i].first, .last = spans[i].last});
    base_free(spans);
    return rc;
}

static int blank(const char *text, const size_t *l) {
    for (size_t k = l[0]; k < l[1]; k++)
        if (text[k] != ' ' && text[k] != '\t' && text[k] != '\f' && text[k] != '\v' && text[k] != '\r') return 0;
    return 1;
}

int chunk_list_check(const char *text, const size_t (*lines)[2], size_t n_lines, const chunk_list *l) {
    size_t next = 0;   /* the first line no chunk holds yet */
    for (size_t i = 0; i < l->n; i++) {
        const chunk_piece *p = &l->v[i];
        if (p->first < (int)next || p->last < p->first || (size_t)p->last >= n_lines)
            return base_err(CEMBED_EINVAL, "chunk %zu: lines %d-%d after line %zu of %zu", i, p->first, p->last, next, n_lines);
        for (; next < (size_t)p->first; next++)
            if (!blank(text, lines[next])) return base_err(CEMBED_EINVAL, "line %zu is in no chunk", next);
        for (int k = 0; k < p->n_ctx; k++)
            if (p->ctx[k].first > p->ctx[k].last || p->ctx[k].last >= p->first || (k && p->ctx[k].first <= p->ctx[k - 1].last))
                return base_err(CEMBED_EINVAL, "chunk %zu: context %d-%d", i, p->ctx[k].first, p->ctx[k].last);
        if (p->sym + p->sym_len > l->names.len) return base_err(CEMBED_EINVAL, "chunk %zu: symbol out of range", i);
        next = (size_t)p->last + 1;
    }
    for (; next < n_lines; next++)
        if (!blank(text, lines[next])) return base_err(CEMBED_EINVAL, "line %zu is in no chunk", next);
    return 0;
}

#ifndef CEMBED_TS

int chunk_syntax(const chunk_lang *l, const char *text, size_t len, const size_t (*lines)[2], const int *tokens,
                 size_t n_lines, const chunk_opts *o, chunk_list *out) {
    (void)l, (void)text, (void)len, (void)lines, (void)tokens, (void)n_lines, (void)o;
    memset(out, 0, sizeof *out);
    return base_err(CEMBED_EINVAL, "built without tree-sitter: no syntax chunker");
}

#else

#include <tree_sitter/api.h>

#define MAX_FRAMES 16   /* enclosing definitions kept as context */
#define MAX_NEST 200    /* a tree nested deeper is cut by lines there */
#define MAX_SYMS 240    /* bytes of a chunk's ", "-joined symbols */

typedef struct frame {   /* a definition being split */
    int a, b;            /* its header lines */
    const char *kind;
    size_t sym, sym_len; /* its qualified name, in walker.qual */
} frame;

typedef struct gather {  /* the chunk being gathered */
    int on, first, last, sealed;
    int n_eff;           /* the frames before first: its context */
    frame eff[MAX_FRAMES];
    int n_defs, mixed;   /* whole definitions in it; of more than one kind */
    int body;            /* it holds lines past the innermost frame's header */
    const char *kind;
    int enc_depth;       /* the innermost definition it is part of (its name: walker.enc) */
    const char *enc_kind;
    int tail;            /* it ends a split definition whose chunks start at out->v[tail_from] */
    size_t tail_from;
} gather;

typedef struct walker {
    const chunk_lang *L;
    const char *text;
    const size_t (*lines)[2];
    int n_lines, max_tok, max_lines, no_flush, err;
    long *cum;           /* cum[i]: tokens of lines [0, i) */
    frame st[MAX_FRAMES];
    int depth;
    buf qual;            /* the frames' qualified names */
    buf syms;            /* the gathered chunk's definitions, ", "-joined */
    buf enc;             /* the qualified name of the definition it is a part of (a copy: frames pop) */
    buf mod;             /* the file's module, which qualifies its outermost definitions */
    gather g;
    chunk_list *out;
} walker;

static int node_first(const walker *w, TSNode n) { return (int)CE_MIN(ts_node_start_point(n).row, (uint32_t)w->n_lines - 1); }

/* A node that ends at column 0 ends with the previous line's newline. */
static int node_last(const walker *w, TSNode n) {
    const TSPoint s = ts_node_start_point(n), e = ts_node_end_point(n);
    const uint32_t row = e.column == 0 && e.row > s.row ? e.row - 1 : e.row;
    return (int)CE_MIN(row, (uint32_t)w->n_lines - 1);
}

static int blank_line(const walker *w, int i) {
    for (size_t k = w->lines[i][0]; k < w->lines[i][1]; k++)
        if (w->text[k] != ' ' && w->text[k] != '\t' && w->text[k] != '\f' && w->text[k] != '\v') return 0;
    return 1;
}

static long range_tok(const walker *w, int a, int b) { return a > b ? 0 : w->cum[b + 1] - w->cum[a]; }

/* The context lines of a chunk starting at first under frames f[0..n): each
 * frame's header (cut before first), at most a third of the limit: first
 * lines only, then the innermost frames only, and at least the innermost
 * frame's first line when it takes at most half the limit. OUT: spans, *n_out.
 * Returns its tokens. */
static long ctx_make(const walker *w, const frame *f, int n, int first, chunk_span *spans, int *n_out) {
    const long budget = w->max_tok / 3;
    int lo = n > CHUNK_MAX_CTX ? n - CHUNK_MAX_CTX : 0;
    long tok = 0;
    for (int i = lo; i < n; i++) tok += range_tok(w, f[i].a, CE_MIN(f[i].b, first - 1));
    const int short_headers = tok > budget;
    if (short_headers) {
        tok = 0;
        for (int i = lo; i < n; i++) tok += range_tok(w, f[i].a, CE_MIN(f[i].a, first - 1));
    }
    for (; tok > budget && lo < n; lo++) tok -= range_tok(w, f[lo].a, CE_MIN(short_headers ? f[lo].a : f[lo].b, first - 1));
    *n_out = 0;
    for (int i = lo; i < n; i++) {
        const int b = CE_MIN(short_headers ? f[i].a : f[i].b, first - 1);
        if (f[i].a > b) continue;
        if (*n_out && f[i].a <= spans[*n_out - 1].last)   /* nested headers that share lines (C: a struct as a return type) */
            spans[*n_out - 1].last = CE_MAX(spans[*n_out - 1].last, b);
        else
            spans[(*n_out)++] = (chunk_span){f[i].a, b};
    }
    if (!*n_out && n && f[n - 1].a < first && range_tok(w, f[n - 1].a, f[n - 1].a) <= w->max_tok / 2)
        spans[(*n_out)++] = (chunk_span){f[n - 1].a, f[n - 1].a};   /* the innermost signature's first line at least */
    tok = 0;
    for (int i = 0; i < *n_out; i++) tok += range_tok(w, spans[i].first, spans[i].last);
    return tok;
}

/* How many frames start before line first (they are in start order). */
static int eff_count(const walker *w, int first) {
    int k = 0;
    while (k < w->depth && w->st[k].a < first) k++;
    return k;
}

static int fits(const walker *w, const frame *f, int n, int first, int last) {
    chunk_span spans[CHUNK_MAX_CTX];
    int ns;
    return last - first + 1 <= w->max_lines && range_tok(w, first, last) + ctx_make(w, f, n, first, spans, &ns) <= w->max_tok;
}

static const char *str_of(const buf *b, size_t off) { return b->ptr ? b->ptr + off : ""; }

#define TAIL_FRACTION 8   /* a last part under 1/8 of the limit joins the part before it */

/* 1 if lines [a, b], the last part of a split definition, are a lone tail
 * that the chunk before it (a part of the same definition) takes in: under
 * the limit with its context, and within max_lines. */
static int tail_merged(walker *w, int a, int b) {
    const gather *g = &w->g;
    chunk_list *o = w->out;
    if (!g->tail || g->n_defs || o->n <= g->tail_from || range_tok(w, a, b) * TAIL_FRACTION >= w->max_tok) return 0;
    chunk_piece *prev = &o->v[o->n - 1];
    long tok = range_tok(w, prev->first, b);
    for (int k = 0; k < prev->n_ctx; k++) tok += range_tok(w, prev->ctx[k].first, prev->ctx[k].last);
    if (tok > w->max_tok || b - prev->first + 1 > w->max_lines) return 0;
    prev->last = b;
    return 1;
}

/* Writes the gathered chunk, blank lines at its ends trimmed (or puts a lone
 * tail into the chunk before it). */
static void flush(walker *w) {
    gather *g = &w->g;
    if (!g->on || w->err) goto reset;
    int a = g->first, b = g->last;
    while (a <= b && blank_line(w, a)) a++;
    while (b >= a && blank_line(w, b)) b--;
    if (a > b || tail_merged(w, a, b)) goto reset;
    chunk_piece p = {.first = a, .last = b};
    ctx_make(w, g->eff, g->n_eff, g->first, p.ctx, &p.n_ctx);
    const char *sym = "";
    size_t sym_len = 0;
    if (g->n_defs) {
        p.kind = g->mixed ? "definitions" : g->kind;
        sym = str_of(&w->syms, 0), sym_len = w->syms.len;
    } else if (g->enc_depth) {   /* a part of a definition */
        p.kind = g->enc_kind;
        sym = str_of(&w->enc, 0), sym_len = w->enc.len;
    } else {
        p.kind = "code";
    }
    p.sym = w->out->names.len;
    p.sym_len = sym_len;
    if ((sym_len && buf_append(&w->out->names, sym, sym_len)) || list_push(w->out, &p)) w->err = CEMBED_ENOMEM;
reset:
    memset(g, 0, sizeof *g);
    w->syms.len = 0;
}

static void qual_append(walker *w, buf *b, TSNode d);

/* 1 if the gathered chunk is open and would have the same context under
 * the current frames. */
static int same_ctx(const walker *w) {
    const gather *g = &w->g;
    int same = g->on && !g->sealed && eff_count(w, g->first) == g->n_eff;
    for (int i = 0; same && i < g->n_eff; i++) same = w->st[i].a == g->eff[i].a && w->st[i].b == g->eff[i].b;
    return same;
}

/* The gathered chunk takes lines [first, last] under the current frames if it
 * fits and sees the same context; else it is written and a new one starts.
 * kind/name: a whole definition (NULL: not one). alone: a chunk of its own. */
static void unit(walker *w, int first, int last, const char *kind, const TSNode *def, int alone) {
    gather *g = &w->g;
    if (g->on && (alone || !same_ctx(w) || !fits(w, g->eff, g->n_eff, g->first, last))) flush(w);
    if (!g->on) {
        g->on = 1;
        g->first = first;
        g->n_eff = eff_count(w, first);
        memcpy(g->eff, w->st, (size_t)g->n_eff * sizeof *g->eff);
    }
    g->last = last;
    g->sealed = alone;
    g->body |= !w->depth || last > w->st[w->depth - 1].b;
    if (w->depth > g->enc_depth) {
        const frame *f = &w->st[w->depth - 1];
        g->enc_depth = w->depth;
        g->enc_kind = f->kind;
        w->enc.len = 0;
        if (buf_append(&w->enc, str_of(&w->qual, f->sym), f->sym_len)) w->err = CEMBED_ENOMEM;
    }
    if (!kind) return;
    g->mixed |= g->n_defs && strcmp(g->kind, kind) != 0;
    g->kind = kind;
    g->n_defs++;
    if (w->syms.len >= MAX_SYMS || !def) return;
    const size_t at = w->syms.len;
    if (at && buf_append(&w->syms, ", ", 2)) w->err = CEMBED_ENOMEM;
    const size_t named = w->syms.len;
    qual_append(w, &w->syms, *def);
    if (w->syms.len == named) w->syms.len = at;   /* a nameless definition: no ", " either */
}

/* Lines [from, to] by the line chunker, each window a chunk of its own; the
 * gathered chunk's lines go with them when it has the same context (so a
 * signature starts the first window of its long docstring). */
static void by_lines(walker *w, int from, int to) {
    chunk_span ctx[CHUNK_MAX_CTX], *spans = NULL;
    int nc;
    const long cost = ctx_make(w, w->st, eff_count(w, from), from, ctx, &nc);
    if (same_ctx(w)) {
        from = w->g.first;
        memset(&w->g, 0, sizeof w->g);
        w->syms.len = 0;
    }
    flush(w);
    const chunk_opts o = {.max_tokens = (int)CE_MAX(1, w->max_tok - cost), .max_lines = w->max_lines, .overlap = 0};
    const int *tok = NULL;
    size_t n = 0;
    int *t = base_malloc((size_t)(to - from + 1) * sizeof *t);
    if (!t) {
        w->err = CEMBED_ENOMEM;
        return;
    }
    for (int i = from; i <= to; i++) t[i - from] = (int)(w->cum[i + 1] - w->cum[i]);
    tok = t;
    if (chunk_lines(w->text, w->lines + from, tok, (size_t)(to - from + 1), &o, &spans, &n)) w->err = CEMBED_ENOMEM;
    for (size_t i = 0; i < n && !w->err; i++) unit(w, from + spans[i].first, from + spans[i].last, NULL, NULL, 1);
    flush(w);
    base_free(spans);
    base_free(t);
}

static TSNode field(TSNode n, const char *name) { return ts_node_child_by_field_name(n, name, (uint32_t)strlen(name)); }

/* The definition a wrapper (decorators, export, template) holds, or n. */
static TSNode unwrap(const walker *w, TSNode n) {
    for (int k = 0; k < 3 && lang_is_wrapper(w->L, ts_node_type(n)); k++) {
        TSNode d = field(n, "definition");
        if (ts_node_is_null(d)) d = field(n, "declaration");
        const uint32_t nc = ts_node_named_child_count(n);
        if (ts_node_is_null(d) && nc) d = ts_node_named_child(n, nc - 1);
        if (ts_node_is_null(d)) break;
        n = d;
    }
    return n;
}

/* 1 if a parse error lies in definition d outside its body: its name is not
 * to be trusted (`void run RUN_ARGS {` reads as a function RUN_ARGS, a
 * Q_OBJECT line as a method `public`), nor told apart from a right one
 * (`GGML_API void f(void) {`). */
static int header_broken(TSNode d) {
    if (!ts_node_has_error(d)) return 0;
    TSNode body = field(d, "body");
    const uint32_t nc = ts_node_child_count(d);
    for (uint32_t i = 0; i < nc; i++) {
        TSNode c = ts_node_child(d, i);
        if (!ts_node_eq(c, body) && ts_node_has_error(c)) return 1;
    }
    return 0;
}

/* A definition's name: its "name" field, else down its "declarator"s (C),
 * else its "type" (a Rust impl), else its first named child's name (a Go
 * type declaration); none when a parse error lies in its header or on that
 * path. OUT: *len (the text up to a newline, at most 100 bytes). */
static const char *def_name(const walker *w, TSNode n, size_t *len) {
    *len = 0;
    if (header_broken(n)) return "";
    for (int k = 0; k < 8 && !ts_node_is_null(n); k++) {
        if (ts_node_is_error(n) || ts_node_is_missing(n)) return "";   /* a broken declarator: no name, not a wrong one */
        const char *t = ts_node_type(n);
        const size_t tl = strlen(t);
        TSNode f;
        if ((tl >= 10 && strcmp(t + tl - 10, "identifier") == 0) || strcmp(t, "operator_name") == 0 ||
            strcmp(t, "destructor_name") == 0 || strcmp(t, "property_name") == 0 || strcmp(t, "name") == 0 ||
            strcmp(t, "constant") == 0 || strcmp(t, "word") == 0)
            break;
        if (!ts_node_is_null(f = field(n, "name")) || !ts_node_is_null(f = field(n, "declarator"))) n = f;
        else if (!ts_node_is_null(f = field(n, "type"))) { n = f; break; }
        else if (ts_node_named_child_count(n)) n = ts_node_named_child(n, ts_node_named_child_count(n) - 1);
        else return "";
    }
    if (ts_node_is_null(n) || ts_node_is_error(n) || ts_node_is_missing(n)) return "";
    const uint32_t a = ts_node_start_byte(n), b = ts_node_end_byte(n);
    const char *s = w->text + a, *nl = memchr(s, '\n', b - a);
    *len = CE_MIN((size_t)((nl ? nl : w->text + b) - s), (size_t)100);
    return s;
}

/* The type a Go method's receiver names (`func (s *Stack) Push`), or NULL. */
static const char *receiver(const walker *w, TSNode d, size_t *len) {
    TSNode r = field(d, "receiver");
    for (int k = 0; k < 6 && !ts_node_is_null(r); k++) {
        if (strcmp(ts_node_type(r), "type_identifier") == 0) {
            *len = ts_node_end_byte(r) - ts_node_start_byte(r);
            return w->text + ts_node_start_byte(r);
        }
        TSNode t = field(r, "type");
        r = !ts_node_is_null(t) ? t : ts_node_named_child_count(r) ? ts_node_named_child(r, 0) : t;
    }
    return NULL;
}

/* Appends definition d's qualified name to b: the innermost frame's (at the
 * top, the file's module, unless d declares it), its receiver's type, its own
 * name, joined by the language's separators; nothing when d has no name or
 * the frame it is in has none. */
static void qual_append(walker *w, buf *b, TSNode d) {
    size_t len, rlen = 0;
    const char *name = def_name(w, d, &len), *recv = receiver(w, d, &rlen);
    const frame *up = w->depth ? &w->st[w->depth - 1] : NULL;
    if (!len || (up && !up->sym_len)) return;   /* no name (a parse error in it or above it): no symbol */
    const lang_module *m = &w->L->mod;
    const int own = !up && lang_is_module_decl(w->L, ts_node_type(d));
    const char *sep = up ? m->sep : m->mod_sep;
    const size_t pre_len = up ? up->sym_len : own ? 0 : w->mod.len;
    if (buf_reserve(b, pre_len + strlen(sep) + rlen + strlen(m->sep) + len + 1)) {
        w->err = CEMBED_ENOMEM;
        return;
    }
    const char *pre = up ? str_of(&w->qual, up->sym) : str_of(&w->mod, 0);   /* after the reserve: b may be w->qual */
    if (pre_len) buf_append(b, pre, pre_len), buf_append(b, sep, strlen(sep));
    if (recv) buf_append(b, recv, rlen), buf_append(b, m->sep, strlen(m->sep));
    buf_append(b, name, len);
}

#define MAX_MODULE 200   /* bytes of a module's name */

/* Appends a path component to the module, after sep when it is not the first. */
static void mod_part(walker *w, const char *s, size_t n, const char *sep) {
    if (!n || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.') || w->mod.len >= MAX_MODULE) return;
    if ((w->mod.len && buf_append(&w->mod, sep, strlen(sep))) || buf_append(&w->mod, s, n)) w->err = CEMBED_ENOMEM;
}

/* The module that path names by the language's rule: its components ('.'
 * and '..' skipped) joined by dir_sep, the extension dropped, and the file's
 * name too for dirs_only or a name that stands for its folder; without
 * dir_sep, the path as it is. */
static void path_module(walker *w, const char *path) {
    const lang_module *m = &w->L->mod;
    const char *end = path + strlen(path), *last = path, *stop = end;
    for (const char *s = path; s < end; s++)
        if (*s == '/') last = s + 1;
    if (m->dir_sep) {
        const char *dot = NULL;
        for (const char *s = last + 1; s < end; s++)
            if (*s == '.') dot = s;
        const size_t stem = (size_t)((dot ? dot : end) - last);
        const int folder = m->drop && stem == strlen(m->drop) && memcmp(last, m->drop, stem) == 0;
        stop = m->dirs_only || folder ? last : last + stem;
    }
    for (const char *s = path; s < stop;) {
        const char *e = s;
        while (e < stop && *e != '/') e++;
        mod_part(w, s, (size_t)(e - s), m->dir_sep ? m->dir_sep : "/");
        s = e + 1;
    }
}

/* The file's module: the name in its first top-level module declaration
 * (none when that declaration has a body: its definitions are qualified by
 * it as by any enclosing definition), else the module of its path (none
 * without one). */
static void module_of(walker *w, TSNode root, const char *path) {
    TSTreeCursor cur = ts_tree_cursor_new(root);
    int found = 0;
    for (int more = ts_tree_cursor_goto_first_child(&cur); more && !found; more = ts_tree_cursor_goto_next_sibling(&cur)) {
        TSNode c = ts_tree_cursor_current_node(&cur);
        if (!ts_node_is_named(c) || !lang_is_module_decl(w->L, ts_node_type(c))) continue;
        found = 1;
        TSNode name = field(c, "name");
        const uint32_t nc = ts_node_named_child_count(c);
        if (ts_node_is_null(name) && nc) name = ts_node_named_child(c, nc - 1);
        if (!ts_node_is_null(field(c, "body")) || ts_node_is_null(name)) break;
        const uint32_t a = ts_node_start_byte(name), b = ts_node_end_byte(name);
        const char *s = w->text + a, *nl = memchr(s, '\n', b - a);
        mod_part(w, s, CE_MIN((size_t)((nl ? nl : w->text + b) - s), (size_t)MAX_MODULE), "");
    }
    ts_tree_cursor_delete(&cur);
    if (!found && path) path_module(w, path);
}

/* "function" inside a class, struct, impl, trait or interface is a method. */
static const char *def_kind(const walker *w, const char *kind) {
    if (!kind || strcmp(kind, "function") != 0 || !w->depth) return kind;
    static const char *const holders[] = {"class", "struct", "impl", "trait", "interface", "record"};
    for (size_t i = 0; i < sizeof holders / sizeof *holders; i++)
        if (strcmp(w->st[w->depth - 1].kind, holders[i]) == 0) return "method";
    return kind;
}

/* A definition's header ends before its body, or on the body's first line
 * when something precedes the body there (`int f(void) {`). */
static int header_end(const walker *w, TSNode n) {
    const int a = node_first(w, n);
    TSNode body = field(n, "body");
    if (ts_node_is_null(body)) return a;
    const int bs = node_first(w, body);
    if (bs <= a) return a;
    for (size_t k = w->lines[bs][0]; k < ts_node_start_byte(body) && k < w->lines[bs][1]; k++)
        if (w->text[k] != ' ' && w->text[k] != '\t') return bs;
    return bs - 1;
}

static int split(walker *w, TSNode n, int from, int nest);

/* Lines [from, last] that no child holds (comments at a block's end). */
static void rest(walker *w, int from, int last) {
    if (fits(w, w->st, eff_count(w, from), from, last)) unit(w, from, last, NULL, NULL, 0);
    else if (last > from) by_lines(w, from, last);
    else unit(w, from, last, NULL, NULL, 1);
}

/* Places node n at line from: a unit, or split, or cut by lines. Returns
 * the first line after it. */
static int place(walker *w, TSNode n, int from, int nest) {
    const int last = node_last(w, n);
    if (last < from) return from;   /* on lines already placed */
    gather *g = &w->g;
    if (!ts_node_is_named(n) && g->on && fits(w, g->eff, g->n_eff, g->first, last)) {
        g->last = last;   /* a closing `}` or `end` ends the chunk before it, whatever its context */
        return last + 1;
    }
    TSNode d = unwrap(w, n);
    const char *kind = ts_node_is_named(d) ? def_kind(w, lang_def_kind(w->L, ts_node_type(d))) : NULL;
    const int k = eff_count(w, from);
    if (fits(w, w->st, k, from, last)) {
        unit(w, from, last, kind, kind ? &d : NULL, kind && range_tok(w, from, last) >= w->max_tok / 2);
    } else if (last > from && ts_node_child_count(n) && nest < MAX_NEST) {
        /* a split definition starts a chunk, unless the chunk holds only the enclosing header */
        if (kind && !w->no_flush && g->body) flush(w);
        split(w, n, from, nest + 1);
    } else if (last > from) {
        by_lines(w, from, last);
    } else {
        unit(w, from, last, kind, kind ? &d : NULL, 1);   /* one line over the limit */
    }
    return last + 1;
}

/* Pushes the frame of definition n (when it is one). Returns 1 if pushed. */
static int push(walker *w, TSNode n) {
    const char *kind = ts_node_is_named(n) ? def_kind(w, lang_def_kind(w->L, ts_node_type(n))) : NULL;
    if (!kind || w->depth == MAX_FRAMES) return 0;
    frame *f = &w->st[w->depth];
    *f = (frame){.a = node_first(w, n), .b = header_end(w, n), .kind = kind, .sym = w->qual.len};
    qual_append(w, &w->qual, n);
    f->sym_len = w->qual.len - f->sym;
    w->depth++;
    return 1;
}

static int split(walker *w, TSNode n, int from, int nest) {
    const int pushed = push(w, n), saved = w->no_flush;
    const size_t first_chunk = w->out->n;   /* this definition's chunks start here */
    w->no_flush = lang_is_wrapper(w->L, ts_node_type(n));   /* decorators stay with the definition */
    int held = -1;   /* the last line of comments waiting for the next sibling */
    TSTreeCursor cur = ts_tree_cursor_new(n);
    for (int more = ts_tree_cursor_goto_first_child(&cur); more && !w->err; more = ts_tree_cursor_goto_next_sibling(&cur)) {
        TSNode c = ts_tree_cursor_current_node(&cur);
        if (lang_is_attached(w->L, ts_node_type(c))) {
            held = CE_MAX(held, node_last(w, c));
            continue;
        }
        from = place(w, c, from, nest);
    }
    ts_tree_cursor_delete(&cur);
    const int last = CE_MAX(node_last(w, n), held);
    if (from <= last) rest(w, from, last), from = last + 1;
    w->no_flush = saved;
    if (pushed && w->g.on) w->g.tail = 1, w->g.tail_from = first_chunk;   /* checked when it is written */
    if (pushed) w->qual.len = w->st[--w->depth].sym;
    return from;
}

/* The parse runs past errors (a macro tree-sitter does not know, `extern
 * "C" {` under #ifdef: most real C files have some) and stops only past a
 * work budget of PARSE_CHECKS_PER_KB progress checks (each 100 parser
 * operations) per KiB. Measured over 1,894 real files (numpy, the 3.11
 * standard library, this repository, llama.cpp's C/C++ and Python): at most
 * 22 checks per KiB and 5,039 for one file (517 KiB); the budget leaves 4.5x
 * that; the files with errors need no more (at most 16 per KiB, 35 us a check
 * against 34 for those without). In recovery one check can cost a
 * millisecond or more (a 133-byte tsx input took 1.4 s under the old
 * 1,000-check floor), so the budget is kept near what real code needs, and
 * once every version of the parse has been in error recovery (tree-sitter's
 * has_error) what is left of it is at most PARSE_ERR_CHECKS_MIN +
 * PARSE_ERR_CHECKS_PER_KB per KiB: real files went on for at most 381
 * checks (10.8 per KiB) after that point, and that tsx input stops at 30 ms
 * instead of 290. */
#define PARSE_CHECKS_MIN 200
#define PARSE_CHECKS_PER_KB 100
#define PARSE_ERR_CHECKS_MIN 20
#define PARSE_ERR_CHECKS_PER_KB 25
typedef struct parse_budget {
    const char *text;
    uint32_t len;
    uint64_t checks, max;
} parse_budget;

static const char *read_text(void *payload, uint32_t at, TSPoint pos, uint32_t *n) {
    const parse_budget *b = payload;
    (void)pos;
    *n = at < b->len ? b->len - at : 0;
    return at < b->len ? b->text + at : "";
}

static bool stop_parse(TSParseState *s) {
    parse_budget *b = s->payload;
    const uint64_t after_err = b->checks + PARSE_ERR_CHECKS_MIN + b->len / 1024 * PARSE_ERR_CHECKS_PER_KB;
    if (s->has_error && after_err < b->max) b->max = after_err;
    return ++b->checks > b->max;
}

static TSTree *parse(TSParser *p, const char *text, size_t len) {
    parse_budget b = {.text = text, .len = (uint32_t)len, .max = PARSE_CHECKS_MIN + len / 1024 * PARSE_CHECKS_PER_KB};
    const TSInput in = {.payload = &b, .read = read_text, .encoding = TSInputEncodingUTF8};
    return ts_parser_parse_with_options(p, NULL, in, (TSParseOptions){.payload = &b, .progress_callback = stop_parse});
}

/* A tree is used when its parse errors are local. An ERROR node keeps the
 * complete constructs it holds (the functions after an unbalanced `{`, a
 * whole file under `extern "C" {`) and is placed like any node; what has lost
 * its structure is the tokens lying directly in an ERROR node that spans
 * several lines (comments aside: they are leaves wherever they are; an error
 * within one line cannot move a chunk's boundary). The file goes to lines
 * when such tokens are on more than LOOSE_MIN_LINES lines and more than
 * 1/LOOSE_FRACTION of its lines that are not blank. Measured (README, "Syntax
 * chunks"): none for the small errors of real C (a macro, `_Thread_local`, a
 * foreach head), at most 2% of the lines for the files under `extern "C" {`
 * (2 lines in a small header), 7% for Python files missing half their colons
 * or with an unterminated docstring, whose definitions' nesting is lost. */
#define LOOSE_FRACTION 20
#define LOOSE_MIN_LINES 2

/* Marks the lines holding tokens that lie directly in multi-line ERROR
 * nodes in loose[] and counts the ERROR and MISSING nodes (OUT: *n).
 * Iterative: a tree can be deeper than the stack. */
static void mark_loose(const walker *w, TSNode root, unsigned char *loose, int *n) {
    TSTreeCursor cur = ts_tree_cursor_new(root);
    for (;;) {
        TSNode c = ts_tree_cursor_current_node(&cur);
        *n += ts_node_is_error(c) || ts_node_is_missing(c);
        const uint32_t nc = ts_node_child_count(c);
        if (ts_node_is_error(c) && node_last(w, c) > node_first(w, c))
            for (uint32_t i = 0; i < nc; i++) {
                TSNode k = ts_node_child(c, i);
                if (!ts_node_child_count(k) && !ts_node_is_extra(k) && ts_node_end_byte(k) > ts_node_start_byte(k))
                    loose[node_first(w, k)] = 1;
            }
        if (ts_node_has_error(c) && ts_tree_cursor_goto_first_child(&cur)) continue;
        while (!ts_tree_cursor_goto_next_sibling(&cur))
            if (!ts_tree_cursor_goto_parent(&cur)) goto done;
    }
done:
    ts_tree_cursor_delete(&cur);
}

/* 0 if the tree's parse errors are local (out->n_errors: how many), else
 * CEMBED_EFORMAT saying how far they spread; CEMBED_ENOMEM. */
static int errors_local(const walker *w, TSNode root, chunk_list *out) {
    if (!ts_node_has_error(root)) return 0;
    unsigned char *loose = base_calloc((size_t)w->n_lines, 1);
    if (!loose) return base_err(CEMBED_ENOMEM, "out of memory");
    mark_loose(w, root, loose, &out->n_errors);
    int n = 0, text_lines = 0;
    for (int i = 0; i < w->n_lines; i++) n += loose[i], text_lines += !blank_line(w, i);
    base_free(loose);
    if (n > LOOSE_MIN_LINES && n * LOOSE_FRACTION > text_lines)
        return base_err(CEMBED_EFORMAT, "does not parse as %s: parse errors on %d of its %d lines", w->L->name, n, text_lines);
    return 0;
}

int chunk_syntax(const chunk_lang *l, const char *text, size_t len, const size_t (*lines)[2], const int *tokens,
                 size_t n_lines, const chunk_opts *o, chunk_list *out) {
    CE_ASSERT(o->max_tokens >= 1 && o->max_lines >= 1);
    memset(out, 0, sizeof *out);
    out->lang = l->name;
    out->syntax = 1;
    if (n_lines == 0) return 0;
    if (len >= UINT32_MAX || n_lines >= INT32_MAX / 2) return base_err(CEMBED_EINVAL, "too large for the syntax chunker");
    walker w = {.L = l, .text = text, .lines = lines, .n_lines = (int)n_lines, .max_tok = o->max_tokens,
                .max_lines = o->max_lines, .out = out};
    TSParser *p = ts_parser_new();
    TSTree *tree = NULL;
    int rc = 0;
    if (!(w.cum = base_malloc((n_lines + 1) * sizeof *w.cum))) {
        rc = base_err(CEMBED_ENOMEM, "out of memory");
        goto done;
    }
    w.cum[0] = 0;
    for (size_t i = 0; i < n_lines; i++) w.cum[i + 1] = w.cum[i] + tokens[i];
    if (!ts_parser_set_language(p, l->grammar())) {
        rc = base_err(CEMBED_EINVAL, "the %s grammar's ABI is not the tree-sitter runtime's", l->name);
        goto done;
    }
    if (!(tree = parse(p, text, len))) {
        rc = base_err(CEMBED_EFORMAT, "does not parse as %s: over the parser's work budget", l->name);
        goto done;
    }
    if ((rc = errors_local(&w, ts_tree_root_node(tree), out))) goto done;
    module_of(&w, ts_tree_root_node(tree), o->path);
    const int from = split(&w, ts_tree_root_node(tree), 0, 0);
    if (from < w.n_lines) rest(&w, from, w.n_lines - 1);
    flush(&w);
    if (w.err) rc = base_err(CEMBED_ENOMEM, "out of memory");
done:
    if (tree) ts_tree_delete(tree);
    ts_parser_delete(p);
    base_free(w.cum);
    buf_free(&w.qual);
    buf_free(&w.syms);
    buf_free(&w.enc);
    buf_free(&w.mod);
    return rc;
}

#endif
