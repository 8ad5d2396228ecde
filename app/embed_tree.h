/* `cembed embed` over files and folders (app/cmd_embed_tree.c). */
#ifndef CEMBED_EMBED_TREE_H
#define CEMBED_EMBED_TREE_H

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

#endif
