/* `cembed embed` over files and folders (app/cmd_embed_tree.c). */
#ifndef CEMBED_EMBED_TREE_H
#define CEMBED_EMBED_TREE_H

#include "chunk/chunk.h"
#include "cli.h"

typedef struct tree_opts {
    const char *out;            /* -o: a file (JSONL), a folder (npy); NULL = stdout */
    int npy;                    /* --format npy */
    const char *cache_path;     /* NULL = no cache */
    uint64_t cache_max_bytes;
    uint64_t max_file_bytes;
    int chunk_tokens, chunk_lines, overlap;
    int list_files;             /* --list-files: print what would be embedded */
    int lines_only;             /* --chunker lines: windows of lines even where a grammar exists */
    double progress_s;          /* seconds between progress log lines off a terminal */
} tree_opts;

/* Returns the exit status: 0, 1 (failure, message printed), 130 (Ctrl-C:
 * what was computed is written and cached). */
int embed_tree(const cli_common *c, const tree_opts *o, const char *const *paths, size_t n);

/* ---- files cut and tokenized ahead of the writer (app/tree_prep.c) ---- */

typedef struct tree_chunk {
    size_t file;            /* index in the walk list */
    int first, last;        /* 1-based lines */
    int n_ctx;              /* context lines put before them (0-based, as chunk_piece) */
    chunk_span ctx[CHUNK_MAX_CTX];
    const char *lang, *kind;   /* static; NULL: unknown language, a line window */
    char *symbol;           /* the qualified symbol, or NULL */
    char *text;             /* the prompt, the context lines, its own lines */
    size_t len;
    int32_t *ids;
    size_t n_ids;
    int truncated;
} tree_chunk;

typedef enum { TREE_CUT, TREE_UNREADABLE, TREE_BINARY, TREE_EMPTY } tree_file_kind;

typedef struct tree_file {
    size_t index;           /* in the walk list */
    tree_file_kind kind;
    int rc;                 /* an error (ENOMEM, or the tokenizer's): msg says it */
    char *msg;              /* the error, or why an unreadable file could not be read */
    int by_syntax, fell_back;   /* cut by syntax; has a grammar but did not parse */
    int past_errors;            /* cut by syntax past local parse errors */
    tree_chunk *v;          /* its chunks, in order */
    size_t n;
} tree_file;

typedef struct tree_prep_opts {
    const cembed_model *m;
    const walk_list *files;
    const char *prompt;     /* put before every chunk's text */
    chunk_opts co;          /* limits; .path is set per file */
    int lines_only;         /* --chunker lines */
    uint64_t max_file_bytes;
    int threads;            /* threads that cut (1-4) */
} tree_prep_opts;

typedef struct tree_prep tree_prep;

/* Starts the threads (o and what it points to must outlive p). OUT: *p. ENOMEM. */
int tree_prep_start(const tree_prep_opts *o, tree_prep **p);
/* The next file in walk order, waiting for it: 1 (*f filled; free it with
 * tree_file_free), or 0 when every file was taken. */
int tree_prep_next(tree_prep *p, tree_file *f);
/* Stops and joins the threads, frees what was cut and not taken. */
void tree_prep_free(tree_prep *p);
void tree_file_free(tree_file *f);
void tree_chunk_free(tree_chunk *c);

#endif
