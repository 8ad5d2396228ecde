/* chunk: the source tree walker and the code chunker of `cembed embed`.
 *
 * Walker: lists the regular files under the given paths in a stable
 * (sorted) order, skipping VCS folders (.git, .hg, .svn, .bzr, _darcs, CVS),
 * symbolic links, what .gitignore files exclude (gitignore(5): comments,
 * negation, directory-only and anchored patterns, *, ?, [...], **; deeper
 * files take precedence, last match wins, nothing inside an excluded folder
 * is re-included) and files over a size limit, counting each kind.
 *
 * Chunker: cuts a file's lines into windows of at most max_tokens tokens
 * (the caller counts each line's tokens: BERT's pre-tokenizer never joins
 * tokens across a newline, so a window's count is the sum of its lines') and
 * max_lines lines, preferring to cut before a definition (a line at column 0
 * after a blank line or a closing brace), then after a blank line, then
 * before any line at column 0; consecutive windows share `overlap` lines.
 * A single line over max_tokens is a window of its own (the engine truncates
 * it). Windows holding only whitespace are dropped.
 *
 * Syntax chunker (chunk/syntax.c, on tree-sitter; chunk/lang.c lists the
 * languages compiled in): a definition (function, method, class, struct,
 * impl ...) is one chunk when it fits; a larger one is split at its children
 * (a class at its methods, a function at its statements) and each part
 * carries the enclosing signature lines as context; small neighbours merge up
 * to the limit, and a split definition's small last part joins the part
 * before it when that fits; comments and attributes stay with the definition
 * they precede. The chunks' line ranges are disjoint and in order, and every line
 * that is not blank is in exactly one of them (context lines are repeated,
 * nothing else). Files whose parse errors are not local (syntax.c's rule)
 * and languages without a grammar go to the line chunker (chunk_file). A chunk's symbol is qualified by its
 * enclosing definitions and the file's module (lang.c's table: a package or
 * namespace declaration, else the path under the walk root:
 * `numpy.linalg.linalg.norm`, `src/vec.c::vec_push`).
 */
#ifndef CEMBED_CHUNK_H
#define CEMBED_CHUNK_H

#include "base/base.h"

/* ---- gitignore ---- */
typedef struct ignore_rules ignore_rules;
/* Parses the text of a .gitignore found in directory base ("" for the walk
 * root; no trailing slash). OUT: *out. Fails with ENOMEM. */
int ignore_parse(const char *text, size_t len, const char *base, ignore_rules **out);
void ignore_free(ignore_rules *r);
/* For path (relative to the walk root, '/'-separated): 1 excluded, 0
 * re-included by a negation, -1 no rule matched. */
int ignore_match(const ignore_rules *r, const char *path, int is_dir);
/* gitignore's wildcard match of a whole string ('*' and '?' stop at '/'). */
int ignore_glob(const char *pat, const char *s);

/* ---- walker ---- */
typedef struct walk_stats {
    size_t files, ignored, vcs_dirs, too_large, symlinks, unreadable;
    uint64_t bytes;
} walk_stats;

typedef struct walk_list {
    char **paths;          /* as the user would write them: ROOT/rel */
    size_t *rel;           /* paths[i] + rel[i]: the path under its walk root (under its
                            * parent when the root holds __init__.py; a file named
                            * directly: as given, or its last component when absolute) */
    uint64_t *sizes;
    size_t n, cap;
} walk_list;

/* Lists the files under each path (a file given directly is listed unless
 * over the limit). OUT: *list, *st. Fails with EIO (a path that does not
 * exist) or ENOMEM. */
int walk_paths(const char *const *paths, size_t n, uint64_t max_file_bytes, walk_list *list, walk_stats *st);
void walk_list_free(walk_list *l);

/* ---- chunker ---- */
typedef struct chunk_opts {
    int max_tokens;        /* content tokens of a window ([CLS]/[SEP] not counted) */
    int max_lines;
    int overlap;           /* lines shared by consecutive windows, < max_lines */
    const char *path;      /* syntax: the file's path under the walk root ('/'-separated),
                            * whose module qualifies the symbols; NULL: only a package or
                            * namespace declaration does */
} chunk_opts;

typedef struct chunk_span {
    int first, last;       /* 0-based line indices, inclusive */
} chunk_span;

/* lines[i] = [start, end) byte range of line i (without its newline),
 * tokens[i] its token count. OUT: *spans, *n (base_malloc'd). ENOMEM only. */
int chunk_lines(const char *text, const size_t (*lines)[2], const int *tokens, size_t n_lines, const chunk_opts *o,
                chunk_span **spans, size_t *n);
/* Splits text into lines. OUT: *lines (base_malloc'd [start,end) pairs), *n. */
int chunk_split_lines(const char *text, size_t len, size_t (**lines)[2], size_t *n);
/* A stand-in token count for a line where no tokenizer is at hand (tests,
 * bench/chunk_speed without --model): a run of letters, digits, '_' and
 * non-ASCII bytes is one token, and so is each other non-space byte, as
 * BERT's pre-tokenizer splits. */
int chunk_estimate_tokens(const char *s, size_t n);
/* 1 if the file content looks binary (a NUL byte in its first 8,000 bytes, as git decides). */
int chunk_is_binary(const char *text, size_t len);


/* ---- languages and the syntax chunker ---- */
typedef struct chunk_lang chunk_lang;   /* static: never freed */
/* The language of a file by its extension; NULL when no grammar for it is built in. */
const chunk_lang *chunk_lang_for_path(const char *path);
const chunk_lang *chunk_lang_by_name(const char *name);
const char *chunk_lang_name(const chunk_lang *l);
/* The languages built in, space-separated; "" without tree-sitter. Cannot fail. */
const char *chunk_langs(void);

#define CHUNK_MAX_CTX 4
typedef struct chunk_piece {
    int first, last;                 /* the chunk's own lines, 0-based inclusive */
    int n_ctx;                       /* context: enclosing signature lines, all before first, outermost first */
    chunk_span ctx[CHUNK_MAX_CTX];
    const char *kind;                /* static: "function", "method", "class", "code" ...; NULL for a line window */
    size_t sym, sym_len;             /* the qualified symbol ("numpy.polynomial.polynomial.Polynomial.fit"): names.ptr + sym */
} chunk_piece;

typedef struct chunk_list {
    chunk_piece *v;
    size_t n, cap;
    buf names;                       /* the symbols' bytes */
    const char *lang;                /* static: the language's name, or NULL */
    int syntax;                      /* 1: cut by the syntax chunker; 0: line windows */
    int n_errors;                    /* syntax: the local parse errors it went past (ERROR and MISSING nodes) */
} chunk_list;
void chunk_list_free(chunk_list *l);

/* Checks what every chunking without overlap promises: chunks in order, disjoint, inside the
 * file; every line that is not blank in one of them; context lines in order
 * and before the chunk. Returns 0 or CEMBED_EINVAL with what is wrong. */
int chunk_list_check(const char *text, const size_t (*lines)[2], size_t n_lines, const chunk_list *l);

/* Cuts a file by its syntax (lines, tokens as chunk_lines; o->overlap is
 * not used). Local parse errors are gone past (out->n_errors counts them).
 * OUT: *out (chunk_list_free it, also on failure). Fails with
 * CEMBED_EFORMAT when the text does not parse (parse errors spread over
 * more than 5% of its lines, or over the parser's work budget: the caller
 * falls back to lines),
 * CEMBED_EINVAL without tree-sitter, CEMBED_ENOMEM. */
int chunk_syntax(const chunk_lang *l, const char *text, size_t len, const size_t (*lines)[2], const int *tokens,
                 size_t n_lines, const chunk_opts *o, chunk_list *out);
/* The syntax chunks of a file when l is not NULL and the file parses, else
 * line windows (out->syntax says which). OUT: *out (chunk_list_free it).
 * ENOMEM only. */
int chunk_file(const chunk_lang *l, const char *text, size_t len, const size_t (*lines)[2], const int *tokens,
               size_t n_lines, const chunk_opts *o, chunk_list *out);

#endif
