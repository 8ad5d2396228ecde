/* `cembed embed PATH...` over source files: walk, chunk, look up the cache,
 * embed what is missing, write JSON lines (or .npy + metadata), with a
 * progress bar on a terminal and periodic log lines elsewhere. Files are
 * read, cut and tokenized ahead on helper threads (app/tree_prep.c) and
 * taken back in walk order; work goes in windows of WINDOW chunks, so
 * memory is flat for any tree and Ctrl-C stops after the window in hand with everything computed so far
 * written and cached. Files in a language with a grammar are cut by syntax
 * (src/chunk/syntax.c: a chunk's text is its context lines, the enclosing
 * signatures, then its own lines), the rest in windows of lines. The cache
 * key is the chunk's text, so a definition that did not change stays cached
 * when its file is edited elsewhere. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache.h"
#include "chunk/chunk.h"
#include "cli.h"
#include "embed_tree.h"
#include "json/json.h"
#include "pipe/pipe.h"

#define WINDOW 64

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct run {
    const tree_opts *o;
    cembed_model *m;
    cembed_model_info info;
    cache *c;
    cache_scope scope;
    walk_list files;
    walk_stats ws;
    FILE *out, *meta;       /* JSONL (or metadata JSONL for npy), and the .npy */
    FILE *npy;
    buf line;
    tree_chunk win[WINDOW];
    size_t n_win;
    sched *s;               /* the pipeline's scheduler: one inference thread, as in serve */
    pipe_env pe;
    int have_pe;
    /* counts */
    size_t files_done, binary, empty, chunks, cached, computed, truncated, tokens, rows;
    size_t by_syntax, fell_back;   /* files cut by syntax; files with a grammar that did not parse */
    size_t past_errors;            /* files cut by syntax past local parse errors */
    size_t unreadable;          /* listed files that could not be read (also in ws.unreadable): not embedded */
    uint64_t bytes_done;
    double t0, last_report;
    int tty, chunk_tokens;
    const char *prompt;     /* put before every chunk (--prompt-name, or the model's default) */
} run;

/* ---- progress ---- */

static void fmt_eta(double s, char *b, size_t n) {
    if (s < 0 || s > 1e7) snprintf(b, n, "--");
    else if (s >= 3600) snprintf(b, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60) snprintf(b, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(b, n, "%ds", (int)s);
}

static void progress(run *r, int final) {
    const double now = time_now(), dt = now - r->t0;
    if (!final && now - r->last_report < (r->tty ? 0.2 : r->o->progress_s)) return;
    r->last_report = now;
    const double rate = dt > 0 ? (double)r->chunks / dt : 0;
    const double frac = r->ws.bytes ? (double)r->bytes_done / (double)r->ws.bytes : 1;
    char eta[32];
    fmt_eta(frac > 0 ? dt * (1 - frac) / frac : -1, eta, sizeof eta);
    const double hits = r->chunks ? 100.0 * (double)r->cached / (double)r->chunks : 0;
    if (r->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[30] = 0;
        fprintf(stderr, "\r[%s] %zu/%zu files  %zu chunks  %.1f chunks/s  cache %.0f%%  ETA %s\033[K%s", bar,
                r->files_done, r->files.n, r->chunks, rate, hits, final ? "0s" : eta, final ? "\n" : "");
        fflush(stderr);
    } else if (!final) {
        log_info("progress: %zu/%zu files, %zu chunks (%zu cached), %.1f chunks/s, ETA %s", r->files_done, r->files.n,
                 r->chunks, r->cached, rate, eta);
    }
}

/* ---- output ---- */

static int npy_header(run *r, size_t rows) {
    char h[128];
    /* magic, version 1.0, header length (2 bytes, set below), the dict */
    int n = snprintf(h, sizeof h, "\x93NUMPY\x01%c%c%c{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %d), }",
                     0, 0, 0, rows, r->info.hidden);
    memset(h + n, ' ', sizeof h - (size_t)n);
    h[sizeof h - 1] = '\n';
    h[8] = (char)(sizeof h - 10);   /* header length, little-endian u16 */
    h[9] = 0;
    return fseek(r->npy, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof h, r->npy) != sizeof h;
}

/* ,"language","kind","symbol","context" of a chunk, those it has. */
static int write_meta(buf *b, const tree_chunk *p) {
    int rc = 0;
    if (p->lang) rc = rc || buf_append(b, ",\"language\":", 12) || json_write_string(b, p->lang, strlen(p->lang));
    if (p->kind) rc = rc || buf_append(b, ",\"kind\":", 8) || json_write_string(b, p->kind, strlen(p->kind));
    if (p->symbol) rc = rc || buf_append(b, ",\"symbol\":", 10) || json_write_string(b, p->symbol, strlen(p->symbol));
    for (int k = 0; k < p->n_ctx && !rc; k++)   /* the context lines, 1-based [first, last] ranges */
        rc = buf_printf(b, "%s[%d,%d]%s", k ? "," : ",\"context\":[", p->ctx[k].first + 1, p->ctx[k].last + 1,
                        k == p->n_ctx - 1 ? "]" : "");
    return rc;
}

static int write_window(run *r, const pipe_job *j) {
    const size_t H = (size_t)r->info.hidden;
    for (size_t k = 0; k < r->n_win; k++) {
        const tree_chunk *p = &r->win[k];
        const char *path = r->files.paths[p->file];
        buf *b = &r->line;
        b->len = 0;
        char id[32];
        snprintf(id, sizeof id, ":%d-%d", p->first, p->last);
        /* the id is path:first-last as one JSON string */
        buf tmp = {0};
        int rc = buf_append(&tmp, path, strlen(path)) || buf_append(&tmp, id, strlen(id));
        rc = rc || buf_append(b, "{\"id\":", 6) || json_write_string(b, tmp.ptr, tmp.len) ||
             buf_append(b, ",\"path\":", 8) || json_write_string(b, path, strlen(path)) ||
             buf_printf(b, ",\"start_line\":%d,\"end_line\":%d,\"tokens\":%zu", p->first, p->last, p->n_ids);
        rc = rc || write_meta(b, p);
        buf_free(&tmp);
        if (r->npy) {
            rc = rc || buf_printf(b, ",\"row\":%zu}\n", r->rows);
            rc = rc || fwrite(j->vec + k * H, sizeof(float), H, r->npy) != H;
        } else {
            rc = rc || buf_append(b, ",\"embedding\":", 13) || json_write_floats(b, j->vec + k * H, H) ||
                 buf_append(b, "}\n", 2);
        }
        FILE *f = r->npy ? r->meta : r->out;
        if (rc || fwrite(b->ptr, 1, b->len, f) != b->len) return base_err(CEMBED_EIO, "writing the output: %s", strerror(errno));
        r->rows++;
    }
    return 0;
}

/* Embeds the window through the pipeline (cache hits, the rest computed
 * once per distinct text and cached), then writes every row in order. */
static int flush_window(run *r) {
    if (!r->n_win) return 0;
    pipe_job j = {0};
    int rc = pipe_items(&j, &r->pe, r->n_win);
    for (size_t k = 0; k < r->n_win; k++) {
        tree_chunk *p = &r->win[k];
        if (!rc) { /* the text and its tokens go to the job */
            j.req.items[k].text = p->text;
            j.req.items[k].text_len = p->len;
            pipe_set_tokens(&j, k, p->ids, p->n_ids, p->truncated);
            p->text = NULL;
            p->ids = NULL;
        } else {
            tree_chunk_free(p);
        }
    }
    if (!rc) rc = pipe_run(&j, PIPE_EMBED, NULL);
    if (!rc) {
        rc = write_window(r, &j);
        r->computed += j.sj.n;
        r->cached += r->n_win - j.sj.n;
        r->chunks += r->n_win;
    } else {
        rc = base_err(rc == PIPE_NO_MEMORY ? CEMBED_ENOMEM : CEMBED_EINVAL, "%s", j.msg);
    }
    pipe_free(&j);
    for (size_t k = 0; k < r->n_win; k++) tree_chunk_free(&r->win[k]);
    r->n_win = 0;
    return rc;
}

/* Takes file f's chunks into the window, flushing it whenever it fills
 * (after Ctrl-C: only the window in hand); counts the file. */
static int take_file(run *r, tree_file *f) {
    const char *path = r->files.paths[f->index];
    int rc = 0;
    switch (f->kind) {
    case TREE_UNREADABLE:
        log_warn("skipping %s: cannot read it: %s", path, f->msg ? f->msg : "out of memory");
        r->ws.unreadable++;
        r->unreadable++;
        return 0;
    case TREE_BINARY: r->binary++; return 0;
    case TREE_EMPTY: r->empty++; return 0;
    case TREE_CUT: break;
    }
    if (f->rc) return base_err(f->rc, "%s: %s", path, f->msg ? f->msg : "out of memory");
    r->by_syntax += (size_t)f->by_syntax;
    r->fell_back += (size_t)f->fell_back;
    r->past_errors += (size_t)f->past_errors;
    for (size_t s = 0; s < f->n && !rc && !interrupted; s++) {
        r->truncated += (size_t)f->v[s].truncated;
        r->tokens += f->v[s].n_ids;
        r->win[r->n_win] = f->v[s];
        f->v[s] = (tree_chunk){0};   /* the window owns it now */
        if (++r->n_win == WINDOW) {
            rc = flush_window(r);
            progress(r, 0);
        }
    }
    return rc;
}

static FILE *open_out(const char *dir, const char *name, char **path) {
    *path = path_join(dir, name);
    return *path ? fopen(*path, "wb") : NULL;
}

/* The files that would be embedded, one per line, and nothing else. */
static int list_files(run *r) {
    for (size_t i = 0; i < r->files.n; i++) printf("%s\n", r->files.paths[i]);
    log_info("%zu files; skipped %zu ignored, %zu over %llu bytes, %zu symlinks, %zu VCS folders", r->files.n,
             r->ws.ignored, r->ws.too_large, (unsigned long long)r->o->max_file_bytes, r->ws.symlinks, r->ws.vcs_dirs);
    return EXIT_OK;   /* main flushes stdout and reports a failed write */
}

/* The model, each chunk's token room (the model's limit less the template's
 * special tokens and the prompt's, or --chunk-tokens), the cache, the
 * scheduler and the pipeline. 0, or -1 (said). */
static int open_engine(run *r, const cli_common *cc) {
    const tree_opts *o = r->o;
    cembed_options mo = cli_model_options(cc, cc->batch_size);
    if (cembed_model_open(cc->model_dir, &mo, &r->m)) {
        cli_error("cannot open model %s: %s", cc->model_dir, cembed_last_error());
        return -1;
    }
    if (cli_require_embedding(r->m)) return -1;
    cembed_model_get_info(r->m, &r->info);
    r->chunk_tokens = CE_MAX(r->info.max_seq_len - r->info.special_tokens, 1);
    if (o->chunk_tokens && o->chunk_tokens < r->chunk_tokens) r->chunk_tokens = o->chunk_tokens;
    if (!(r->prompt = cli_prompt(cc, r->m))) return -1;
    if (*r->prompt) { /* the prompt's tokens come out of every chunk's room */
        int32_t *pids;
        size_t pn;
        if (cembed_tokenize(r->m, r->prompt, strlen(r->prompt), &pids, &pn, NULL, NULL)) return cli_error("out of memory"), -1;
        cembed_free(pids);
        r->chunk_tokens = CE_MAX(1, r->chunk_tokens - (int)(pn - 2));
        log_info("prompt \"%s\" before every chunk", r->prompt);
    }
    if (o->cache_path && (cache_scope_init(&r->scope, cc->model_dir, r->info.precision, r->info.variant,
                                           r->info.pooling, r->info.max_seq_len) ||
                          cache_open(o->cache_path, o->cache_max_bytes, &r->c))) {
        cli_error("cache: %s (use --no-cache to run without it)", cembed_last_error());
        return -1;
    }
    const sched_opts so = {.max_batch = WINDOW, .max_batch_tokens = WINDOW * r->info.max_seq_len};
    const req_limits lim = {.max_items = WINDOW, .max_text_bytes = SIZE_MAX, .max_depth = 1};
    if (sched_new(r->m, &so, &r->s)) return cli_error("%s", cembed_last_error()), -1;
    pipe_env_init(&r->pe, r->m, r->s, NULL, &lim);
    r->have_pe = 1;
    r->pe.cache = r->c;
    if (r->c) r->pe.scope = r->scope;
    return 0;
}

/* --format npy: OUT/vectors.npy and OUT/metadata.jsonl; else JSON lines to
 * --output or stdout. 0, or -1 (said). */
static int open_outputs(run *r, char **npy_path, char **meta_path) {
    const tree_opts *o = r->o;
    if (o->npy) {
        mkdir(o->out, 0755);
        r->npy = open_out(o->out, "vectors.npy", npy_path);
        r->meta = r->npy ? open_out(o->out, "metadata.jsonl", meta_path) : NULL;
        if (!r->npy || !r->meta || npy_header(r, 0)) {
            cli_error("%s: %s", *npy_path ? *npy_path : o->out, strerror(errno));
            return -1;
        }
        return 0;
    }
    r->out = o->out ? fopen(o->out, "wb") : stdout;
    if (!r->out) {
        cli_error("%s: %s", o->out, strerror(errno));
        return -1;
    }
    return 0;
}

/* Every file, then the last window (after Ctrl-C too: the window in hand is
 * computed and kept), then the outputs flushed. 0, or -1 (said). */
static int embed_files(run *r, const char *npy_path) {
    r->tty = isatty(STDERR_FILENO) && !getenv("CEMBED_NO_PROGRESS");
    struct sigaction sa = {.sa_handler = on_sigint, .sa_flags = SA_RESETHAND};   /* a second Ctrl-C kills */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    log_info("embedding %zu files (%.1f MB) with %s, %d threads; cache %s", r->files.n, (double)r->ws.bytes / 1e6,
             r->info.name, r->info.threads, r->o->cache_path ? r->o->cache_path : "off");
    r->t0 = r->last_report = time_now();
    const tree_prep_opts po = {.m = r->m, .files = &r->files, .prompt = r->prompt, .lines_only = r->o->lines_only,
                               .max_file_bytes = r->o->max_file_bytes, .threads = r->info.threads,
                               .co = {.max_tokens = r->chunk_tokens, .max_lines = r->o->chunk_lines, .overlap = r->o->overlap}};
    tree_prep *tp = NULL;
    int rc = tree_prep_start(&po, &tp);
    tree_file f;
    while (!rc && !interrupted && tree_prep_next(tp, &f)) {
        rc = take_file(r, &f);
        tree_file_free(&f);
        r->files_done++;
        r->bytes_done += r->files.sizes[f.index];
        progress(r, 0);
    }
    tree_prep_free(tp);   /* the threads stop before the last window is computed */
    if (!rc) rc = flush_window(r);
    if (rc) return cli_error("%s", cembed_last_error()), -1;
    if (r->npy && (npy_header(r, r->rows) || fflush(r->npy) || fflush(r->meta))) {
        cli_error("%s: %s", npy_path, strerror(errno));
        return -1;
    }
    if (r->out && fflush(r->out) != 0) {
        cli_error("writing the output: %s", strerror(errno));
        return -1;
    }
    progress(r, 1);
    return 0;
}

/* The closing log lines; the exit status (130 when interrupted). */
static int report(const run *r) {
    const tree_opts *o = r->o;
    const double dt = time_now() - r->t0;
    log_info("files: %zu embedded, %zu skipped (%zu ignored, %zu binary, %zu over %llu bytes, %zu empty, %zu unreadable, "
             "%zu symlinks, %zu VCS folders)",
             r->files_done - r->binary - r->empty - r->unreadable, r->ws.ignored + r->binary + r->ws.too_large + r->empty +
             r->ws.unreadable + r->ws.symlinks, r->ws.ignored, r->binary, r->ws.too_large,
             (unsigned long long)o->max_file_bytes, r->empty, r->ws.unreadable, r->ws.symlinks, r->ws.vcs_dirs);
    log_info("chunker: %s; %zu files cut by syntax (%zu past local parse errors), %zu with a grammar that did not parse "
             "cut by lines",
             o->lines_only ? "lines" : *chunk_langs() ? "syntax" : "lines (built without tree-sitter)", r->by_syntax,
             r->past_errors, r->fell_back);
    log_info("chunks: %zu (%zu cached, %zu computed, %zu truncated to %d tokens), %zu tokens in %.2f s: %.1f chunks/s",
             r->chunks, r->cached, r->computed, r->truncated, r->info.max_seq_len, r->tokens, dt,
             dt > 0 ? (double)r->chunks / dt : 0.0);
    if (!interrupted) return EXIT_OK;
    log_warn("interrupted after %zu of %zu files: %zu chunks written%s; run again to finish", r->files_done, r->files.n,
             r->chunks, r->c ? " and cached" : "");
    return 130;
}

int embed_tree(const cli_common *cc, const tree_opts *o, const char *const *paths, size_t n_paths) {
    run *r = base_calloc(1, sizeof *r);
    if (!r) return cli_error("out of memory"), EXIT_FAIL;
    r->o = o;
    int status = EXIT_FAIL;
    char *npy_path = NULL, *meta_path = NULL;
    if (walk_paths(paths, n_paths, o->max_file_bytes, &r->files, &r->ws)) {
        cli_error("%s", cembed_last_error());
        base_free(r);
        return EXIT_FAIL;
    }
    if (o->list_files) status = list_files(r);
    else if (!open_engine(r, cc) && !open_outputs(r, &npy_path, &meta_path) && !embed_files(r, npy_path))
        status = report(r);
    if (r->out && r->out != stdout) fclose(r->out);
    if (r->npy) fclose(r->npy);
    if (r->meta) fclose(r->meta);
    base_free(npy_path);
    base_free(meta_path);
    for (size_t k = 0; k < r->n_win; k++) tree_chunk_free(&r->win[k]);
    sched_free(r->s);
    if (r->have_pe) pipe_env_destroy(&r->pe);
    buf_free(&r->line);
    cache_close(r->c);
    cembed_model_free(r->m);
    walk_list_free(&r->files);
    base_free(r);
    return status;
}
