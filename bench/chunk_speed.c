/* Chunking speed of the syntax and line chunkers over source trees, on one
 * core, without a model: tokens per line are estimated the way BERT's
 * pre-tokenizer splits (a run of letters and digits, or one punctuation
 * byte, is about one token; CJK and long words are a few more in truth).
 *
 * usage: build/bench_chunk_speed [--lines] [--max-tokens N] [--print] PATH...
 * Prints files, bytes, chunks, seconds (read, split, estimate, chunk), and
 * with --print every chunk as "path:first-last kind symbol [ctx lines]". */
#include <ctype.h>
#include <string.h>

#include "chunk/chunk.h"

static int estimate(const char *s, size_t n) {
    int t = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '_' || c >= 0x80) {
            while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_' || (unsigned char)s[i] >= 0x80)) i++;
            t++;
        } else {
            t += !isspace(c);
            i++;
        }
    }
    return t;
}

int main(int argc, char **argv) {
    int lines_only = 0, print = 0, max_tokens = 254, n_paths = 0;
    const char *paths[256];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--lines") == 0) lines_only = 1;
        else if (strcmp(argv[i], "--print") == 0) print = 1;
        else if (strcmp(argv[i], "--max-tokens") == 0 && i + 1 < argc) max_tokens = atoi(argv[++i]);
        else if (n_paths < 256) paths[n_paths++] = argv[i];
    }
    walk_list wl = {0};
    walk_stats ws;
    if (walk_paths(paths, (size_t)n_paths, 1u << 20, &wl, &ws)) return fprintf(stderr, "%s\n", cembed_last_error()), 1;
    const chunk_opts o = {.max_tokens = max_tokens, .max_lines = 80, .overlap = 0};
    size_t chunks = 0, syntax_files = 0, fallback = 0;
    uint64_t bytes = 0;
    const double t0 = time_now();
    for (size_t f = 0; f < wl.n; f++) {
        char *text;
        size_t len, (*lines)[2], n_lines;
        if (file_read_all(wl.paths[f], 1u << 20, &text, &len)) continue;
        bytes += len;
        if (chunk_is_binary(text, len) || chunk_split_lines(text, len, &lines, &n_lines)) {
            base_free(text);
            continue;
        }
        int *tok = base_malloc((n_lines + 1) * sizeof *tok);
        for (size_t i = 0; i < n_lines; i++) tok[i] = estimate(text + lines[i][0], lines[i][1] - lines[i][0]);
        const chunk_lang *l = lines_only ? NULL : chunk_lang_for_path(wl.paths[f]);
        chunk_list cl;
        if (chunk_file(l, text, len, (const size_t(*)[2])lines, tok, n_lines, &o, &cl) == 0) {
            chunks += cl.n;
            syntax_files += (size_t)cl.syntax;
            fallback += l && !cl.syntax;
            for (size_t i = 0; print && i < cl.n; i++) {
                const chunk_piece *p = &cl.v[i];
                printf("%s:%d-%d %s %.*s", wl.paths[f], p->first + 1, p->last + 1, p->kind ? p->kind : "lines",
                       (int)p->sym_len, cl.names.ptr ? cl.names.ptr + p->sym : "");
                for (int k = 0; k < p->n_ctx; k++) printf(" [%d-%d]", p->ctx[k].first + 1, p->ctx[k].last + 1);
                printf("\n");
            }
        }
        chunk_list_free(&cl);
        base_free(tok);
        base_free(lines);
        base_free(text);
    }
    const double dt = time_now() - t0;
    fprintf(stderr, "%zu files (%zu by syntax, %zu fell back to lines), %.1f MB, %zu chunks in %.2f s (languages: %s)\n",
            wl.n, syntax_files, fallback, (double)bytes / 1e6, chunks, dt, *chunk_langs() ? chunk_langs() : "none");
    walk_list_free(&wl);
    return 0;
}
