/* Chunking speed of the syntax and line chunkers over source trees, on one
 * core. Tokens per line come from the model's tokenizer (--model DIR, as
 * `cembed embed` counts them) or are estimated the way BERT's pre-tokenizer
 * splits (a run of letters and digits, or one punctuation byte, is one token).
 *
 * usage: build/bench_chunk_speed [--lines] [--model DIR] [--max-tokens N] [--print | --texts] PATH...
 * Prints files, bytes, chunks and seconds (tokenizing lines, then chunking);
 * --print every chunk as "path:first-last kind symbol [context lines] =TOKENS"
 * (its own lines' tokens, context not counted);
 * --texts every chunk as "path:first-last HASH" where HASH is the FNV-1a hash
 * of the text `cembed embed` would embed (context lines, then the chunk's):
 * the cache key's content, to count what an edit re-embeds. */
#include <string.h>

#include "chunk/chunk.h"
#include "cembed.h"

static uint64_t fnv(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t text_hash(const char *text, const size_t (*lines)[2], const chunk_piece *p) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int k = 0; k < p->n_ctx; k++)
        for (int i = p->ctx[k].first; i <= p->ctx[k].last; i++)
            h = fnv(fnv(h, text + lines[i][0], lines[i][1] - lines[i][0]), "\n", 1);
    return fnv(h, text + lines[p->first][0], lines[p->last][1] - lines[p->first][0]);
}

int main(int argc, char **argv) {
    int lines_only = 0, print = 0, texts = 0, max_tokens = 254, n_paths = 0;
    const char *paths[256], *model_dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--lines") == 0) lines_only = 1;
        else if (strcmp(argv[i], "--print") == 0) print = 1;
        else if (strcmp(argv[i], "--texts") == 0) texts = 1;
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) model_dir = argv[++i];
        else if (strcmp(argv[i], "--max-tokens") == 0 && i + 1 < argc) max_tokens = atoi(argv[++i]);
        else if (n_paths < 256) paths[n_paths++] = argv[i];
    }
    walk_list wl = {0};
    walk_stats ws;
    if (walk_paths(paths, (size_t)n_paths, 1u << 20, &wl, &ws)) return fprintf(stderr, "%s\n", cembed_last_error()), 1;
    chunk_opts o = {.max_tokens = max_tokens, .max_lines = 80, .overlap = 0};
    size_t chunks = 0, syntax_files = 0, fallback = 0;
    uint64_t bytes = 0, tokens = 0;   /* the chunks' texts, context lines and [CLS] [SEP] included */
    cembed_model *m = NULL;
    const cembed_options mo = {.threads = 1};
    if (model_dir && cembed_model_open(model_dir, &mo, &m)) return fprintf(stderr, "%s\n", cembed_last_error()), 1;
    double t_tok = 0, t_chunk = 0;
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
        const double ta = time_now();
        for (size_t i = 0; i < n_lines; i++) {
            int32_t *ids;
            size_t n, full;
            if (!m) tok[i] = chunk_estimate_tokens(text + lines[i][0], lines[i][1] - lines[i][0]);
            else if (cembed_tokenize(m, text + lines[i][0], lines[i][1] - lines[i][0], &ids, &n, NULL, &full) == 0)
                tok[i] = (int)full - 2, cembed_free(ids);
        }
        const double tb = time_now();
        const chunk_lang *l = lines_only ? NULL : chunk_lang_for_path(wl.paths[f]);
        o.path = wl.paths[f] + wl.rel[f];
        chunk_list cl;
        const int rc = chunk_file(l, text, len, (const size_t(*)[2])lines, tok, n_lines, &o, &cl);
        t_tok += tb - ta;
        t_chunk += time_now() - tb;
        for (size_t i = 0; texts && !rc && i < cl.n; i++)
            printf("%s:%d-%d %016llx\n", wl.paths[f], cl.v[i].first + 1, cl.v[i].last + 1,
                   (unsigned long long)text_hash(text, (const size_t(*)[2])lines, &cl.v[i]));
        for (size_t i = 0; !rc && i < cl.n; i++) {
            const chunk_piece *p = &cl.v[i];
            tokens += 2;
            for (int k = 0; k < p->n_ctx; k++)
                for (int j = p->ctx[k].first; j <= p->ctx[k].last; j++) tokens += (uint64_t)tok[j];
            for (int j = p->first; j <= p->last; j++) tokens += (uint64_t)tok[j];
        }
        if (rc == 0) {
            chunks += cl.n;
            syntax_files += (size_t)cl.syntax;
            fallback += l && !cl.syntax;
            for (size_t i = 0; print && i < cl.n; i++) {
                const chunk_piece *p = &cl.v[i];
                printf("%s:%d-%d %s %.*s", wl.paths[f], p->first + 1, p->last + 1, p->kind ? p->kind : "lines",
                       (int)p->sym_len, cl.names.ptr ? cl.names.ptr + p->sym : "");
                long own = 0;
                for (int j = p->first; j <= p->last; j++) own += tok[j];
                for (int k = 0; k < p->n_ctx; k++) printf(" [%d-%d]", p->ctx[k].first + 1, p->ctx[k].last + 1);
                printf(" =%ld\n", own);
            }
        }
        chunk_list_free(&cl);
        base_free(tok);
        base_free(lines);
        base_free(text);
    }
    const double dt = time_now() - t0;
    fprintf(stderr,
            "%zu files (%zu by syntax, %zu fell back to lines), %.1f MB, %zu chunks of %llu tokens in %.2f s: %.2f s %s line "
            "tokens, %.2f s chunking (languages: %s)\n",
            wl.n, syntax_files, fallback, (double)bytes / 1e6, chunks, (unsigned long long)tokens, dt, t_tok, m ? "tokenizing" : "estimating",
            t_chunk, *chunk_langs() ? chunk_langs() : "none");
    cembed_model_free(m);
    walk_list_free(&wl);
    return 0;
}
