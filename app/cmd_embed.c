/* `cembed embed` and `cembed tokenize` over JSON lines. Input is read in
 * windows of WINDOW records so memory stays flat for any input size; each
 * window goes through the request pipeline (src/pipe: the prompt, the
 * tokenizer, the scheduler's packed batches, as the service runs them) and
 * is written in input order before the next is read. */
#include <errno.h>
#include <string.h>

#include "base/prof.h"
#include "cache/cache.h"
#include "chunk/chunk.h"
#include "cli.h"
#include "embed_tree.h"
#include "json/json.h"
#include "options.h"
#include "pipe/pipe.h"
#include "sched/sched.h"

#define WINDOW 2048
#define MAX_LINE_BYTES (64u << 20)

int cli_input_open(cli_input *in, const char *path) {
    memset(in, 0, sizeof *in);
    in->name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    in->f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!in->f) {
        cli_error("%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

void cli_input_close(cli_input *in) {
    if (in->f && in->f != stdin) fclose(in->f);
    free(in->line);
    json_record_free(&in->rec);
}

int cli_input_next(cli_input *in) {
    for (;;) {
        errno = 0;
        ssize_t n = getline(&in->line, &in->cap, in->f);
        if (n < 0) {
            if (ferror(in->f)) {
                cli_error("%s: read error: %s", in->name, strerror(errno));
                return -1;
            }
            return 0;
        }
        in->line_no++;
        size_t len = (size_t)n;
        while (len && (in->line[len - 1] == '\n' || in->line[len - 1] == '\r')) len--;
        size_t k = 0;
        while (k < len && (in->line[k] == ' ' || in->line[k] == '\t')) k++;
        if (k == len) continue; /* blank line */
        if (len > MAX_LINE_BYTES) {
            cli_error("%s:%zu: line of %zu bytes is over the limit of %u", in->name, in->line_no, len,
                      MAX_LINE_BYTES);
            return -1;
        }
        int rc = json_parse_record(in->line, len, in->index, &in->rec);
        if (rc) {
            cli_error("%s:%zu: %s", in->name, in->line_no, cembed_last_error());
            return -1;
        }
        in->index++;
        return 1;
    }
}

static int open_model(cli_common *c, cembed_model **m, int embed) {
    const cembed_options o = cli_model_options(c, c->batch_size);
    return cli_open_model(c, &o, m) || (embed && cli_require_embedding(*m)) ? -1 : 0;
}

static int write_all(buf *b) {
    if (b->len && fwrite(b->ptr, 1, b->len, stdout) != b->len) {
        cli_error("writing the output: %s", strerror(errno));
        return -1;
    }
    b->len = 0;
    return 0;
}

/* Reads up to WINDOW records into j (the id and the text of each; the
 * prompt is put before every text by the pipeline). Returns how many were
 * read, or -1 (said). */
static long read_window(cli_input *in, pipe_env *pe, const char *prompt, pipe_job *j) {
    if (pipe_items(j, pe, WINDOW) || !(j->req.prompt = base_strndup(prompt, strlen(prompt)))) {
        cli_error("out of memory");
        return -1;
    }
    size_t n = 0;
    int r = 1;
    while (n < WINDOW && (r = cli_input_next(in)) == 1) {
        req_item *it = &j->req.items[n++];
        it->text_len = in->rec.text.len;
        if (!(it->id_json = base_strndup(in->rec.id.ptr, in->rec.id.len)) ||
            !(it->text = base_strndup(in->rec.text.ptr, in->rec.text.len))) {
            cli_error("out of memory");
            r = -1;
            break;
        }
    }
    j->req.n_items = n;
    return r < 0 ? -1 : (long)n;
}

/* One line per record, in input order: {"id", "embedding"} or {"id", "ids"}. */
static int write_window(const pipe_job *j, int embed, buf *out) {
    const size_t H = (size_t)j->e->info.hidden;
    const uint64_t t_out = PROF_START();
    size_t written = 0;
    for (size_t k = 0; k < j->req.n_items; k++) {
        const char *id = j->req.items[k].id_json;
        if (buf_append(out, "{\"id\":", 6) || buf_append(out, id, strlen(id)) ||
            (embed ? buf_append(out, ",\"embedding\":", 13) || json_write_floats(out, j->vec + k * H, H)
                   : buf_append(out, ",\"ids\":", 7) || json_write_ints(out, j->ids[k], j->n_ids[k])) ||
            buf_append(out, "}\n", 2)) {
            cli_error("out of memory");
            return -1;
        }
        if (out->len > (1u << 20) && (written += out->len, write_all(out))) return -1;
    }
    written += out->len;
    const int rc = write_all(out);
    PROF_END(PROF_OUTPUT, t_out, (double)written);
    return rc;
}

typedef struct run_totals {
    size_t texts, tokens, truncated;
} run_totals;

/* Every window of in through the pipeline and out. 0, or -1 (said). */
static int run_windows(cli_input *in, pipe_env *pe, int embed, const char *prompt, run_totals *t) {
    buf out = {0};
    int rc = 0;
    for (long n = 1; n > 0 && !rc;) {
        pipe_job j = {.ids_only = 1};   /* tokenize writes the ids, not the tokens' strings */
        n = read_window(in, pe, prompt, &j);
        if (n < 0) rc = -1;
        else if (n > 0 && pipe_run(&j, embed ? PIPE_EMBED : PIPE_TOKENIZE, NULL)) {
            cli_error("%s failed: %s", embed ? "embedding" : "tokenizing", j.msg);
            rc = -1;
        } else if (n > 0 && !(rc = write_window(&j, embed, &out))) {
            t->texts += (size_t)n;
            t->tokens += j.tokens;
            for (size_t k = 0; k < (size_t)n; k++) t->truncated += (size_t)j.truncated[k];
        }
        pipe_free(&j);
    }
    buf_free(&out);
    return rc;
}

/* JSON lines in, JSON lines out (the first form of `embed`, and `tokenize`). */
static int run(cli_common c, const char *path, int embed) {
    cembed_model *m = NULL;
    sched *s = NULL;
    pipe_env pe;
    int have_pe = 0, status = EXIT_FAIL;
    cli_input in;
    if (cli_input_open(&in, path)) return EXIT_FAIL;
    if (open_model(&c, &m, embed)) goto done;
    cembed_model_info info;
    cembed_model_get_info(m, &info);
    const char *prompt = embed ? cli_prompt(&c, m) : "";   /* put before every text, as the service does */
    if (!prompt) goto done;
    const sched_opts so = {.max_batch = info.max_batch, .max_batch_tokens = info.max_batch * info.max_seq_len};
    const req_limits lim = {.max_items = WINDOW, .max_text_bytes = SIZE_MAX, .max_depth = 1};
    if (sched_new(m, &so, &s)) {
        cli_error("%s", cembed_last_error());
        goto done;
    }
    pipe_env_init(&pe, m, s, NULL, &lim);
    have_pe = 1;
    run_totals t = {0};
    const double t0 = time_now();
    if (run_windows(&in, &pe, embed, prompt, &t)) goto done;
    if (fflush(stdout) != 0) {
        cli_error("writing the output: %s", strerror(errno));
        goto done;
    }
    const double dt = time_now() - t0;
    log_info("%s %zu texts (%zu tokens, %zu truncated to %d) in %.2f s: %.1f texts/s, %.0f tokens/s",
             embed ? "embedded" : "tokenized", t.texts, t.tokens, t.truncated, info.max_seq_len, dt,
             dt > 0 ? (double)t.texts / dt : 0.0, dt > 0 ? (double)t.tokens / dt : 0.0);
    status = EXIT_OK;
done:
    if (have_pe) pipe_env_destroy(&pe);
    sched_free(s);
    cli_input_close(&in);
    cembed_model_free(m);
    return status;
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* The cache's path from --cache (flag) / --no-cache (off) / EMBEDDING_CACHE
 * (env), "off" in either meaning none (a file named off: ./off), else the
 * user's cache folder; NULL when off. */
static const char *cache_path(const char *flag, const char *env, int off, char *b, size_t n) {
    if (off) return NULL;
    if (flag) return strcmp(flag, "off") == 0 ? NULL : flag;
    if (env) return strcmp(env, "off") == 0 ? NULL : env;
    return cache_default_path(b, n) == 0 ? b : NULL;
}

int cli_cache_settings(const char *flag, int off, char *b, size_t n, const char **path, uint64_t *max_bytes) {
    long mb;
    const char *env = NULL;
    if (opt_long("EMBEDDING_CACHE_MAX_MB", &mb) || opt_text("EMBEDDING_CACHE", &env)) return EXIT_USAGE;
    *max_bytes = (uint64_t)mb << 20;
    *path = cache_path(flag, env, off, b, n);
    return 0;
}

/* What embed's own flags set (the common ones are in cli_common). */
typedef struct embed_args {
    tree_opts o;
    const char *cache_flag;
    int no_cache, jsonl, n_paths;
    const char **paths;   /* argc + 1 of them */
    long chunk_tokens, chunk_lines, overlap, max_file_bytes;
} embed_args;

/* --chunk-tokens, --chunk-lines, --overlap, --max-file-bytes at argv[*i]
 * (flags only: no variable sets them): 1 taken, 0 not one, -1 wrong (said). */
static int embed_int_flag(embed_args *e, int argc, char **argv, int *i) {
    const struct {
        const char *flag;
        long lo, hi;
        long *dst;
    } ints[] = {{"--chunk-tokens", 1, 1 << 20, &e->chunk_tokens}, {"--chunk-lines", 1, 100000, &e->chunk_lines},
                {"--overlap", 0, 99999, &e->overlap}, {"--max-file-bytes", 1, 1L << 40, &e->max_file_bytes}};
    for (size_t k = 0; k < CE_ARRAY_LEN(ints); k++) {
        if (strcmp(argv[*i], ints[k].flag) != 0) continue;
        if (*i + 1 >= argc || cli_parse_int(argv[*i + 1], ints[k].lo, ints[k].hi, ints[k].dst)) {
            cli_error("%s needs an integer in [%ld, %ld]", ints[k].flag, ints[k].lo, ints[k].hi);
            return -1;
        }
        ++*i;
        return 1;
    }
    return 0;
}

/* --chunker syntax|lines and --format jsonl|npy at argv[*i]: 1 taken, 0 not one, -1 wrong (said). */
static int embed_choice_flag(embed_args *e, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (strcmp(a, "--chunker") == 0) {
        const char *ch = *i + 1 < argc ? argv[++*i] : "";
        if (strcmp(ch, "lines") == 0) e->o.lines_only = 1;
        else if (strcmp(ch, "syntax") != 0) {
            cli_error("--chunker needs syntax or lines (syntax: built in for %s)", *chunk_langs() ? chunk_langs() : "no language");
            return -1;
        }
        return 1;
    }
    if (strcmp(a, "--format") != 0) return 0;
    if (*i + 1 >= argc) return cli_error("%s needs a value", a), -1;
    const char *f = argv[++*i];
    if (strcmp(f, "npy") == 0) e->o.npy = 1;
    else if (strcmp(f, "jsonl") != 0) return cli_error("--format %s: must be jsonl or npy", f), -1;
    return 1;
}

/* The switches and text flags of embed at argv[*i]: 1 taken, 0 not one, -1 wrong (said). */
static int embed_flag(cli_common *c, embed_args *e, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    const int r = opt_take_text("EMBEDDING_CACHE", argc, argv, i, &e->cache_flag);
    if (r) return r;
    if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
        if (*i + 1 >= argc) return cli_error("%s needs a value", a), -1;
        e->o.out = argv[++*i];
    } else if (strcmp(a, "--prompt-name") == 0) {
        if (*i + 1 >= argc)
            return cli_error("--prompt-name needs a name (one of the model's config_sentence_transformers.json prompts)"),
                   -1;
        c->prompt_name = argv[++*i];
    } else if (strcmp(a, "--no-cache") == 0) {
        e->no_cache = 1;
    } else if (strcmp(a, "--jsonl") == 0) {
        e->jsonl = 1;
    } else if (strcmp(a, "--list-files") == 0) {
        e->o.list_files = 1;
    } else {
        return embed_choice_flag(e, argc, argv, i);
    }
    return 1;
}

/* Every argument: flags over the variables, and the paths. 0 or EXIT_USAGE (said). */
static int embed_parse(cli_common *c, embed_args *e, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(c, argc, argv, &i);
        if (!r) r = embed_int_flag(e, argc, argv, &i);
        if (!r) r = embed_flag(c, e, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if (argv[i][0] == '-' && argv[i][1]) return cli_error("unknown flag %s", argv[i]), EXIT_USAGE;
        e->paths[e->n_paths++] = argv[i];
    }
    if (e->n_paths == 0) {
        cli_error("usage: cembed embed [--model DIR] [-o OUT] [--format jsonl|npy] [--cache PATH | --no-cache] "
                  "[--chunker syntax|lines] [--chunk-tokens N] [--chunk-lines N] [--overlap N] [--max-file-bytes N] [--list-files] "
                  "PATH...\n"
                  "       cembed embed [--model DIR] FILE.jsonl|-     (JSON lines {\"id\", \"text\"} in)");
        return EXIT_USAGE;
    }
    return 0;
}

/* JSON lines in: "-", --jsonl, or .jsonl / .ndjson files */
static int is_jsonl_input(const embed_args *e) {
    int all_jsonl = 1;
    for (int i = 0; i < e->n_paths; i++)
        all_jsonl &= strcmp(e->paths[i], "-") == 0 || has_suffix(e->paths[i], ".jsonl") || has_suffix(e->paths[i], ".ndjson");
    return e->jsonl || all_jsonl;
}

/* One JSON lines input to JSON lines of vectors (-o: into that file). */
static int embed_jsonl(cli_common *c, const embed_args *e) {
    if (e->n_paths != 1) {
        cli_error("one JSON lines input, please (got %d)", e->n_paths);
        return EXIT_USAGE;
    }
    if (e->o.npy) {
        cli_error("--format npy is for source trees (vectors.npy + metadata.jsonl by path and line); JSON lines "
                  "input writes JSON lines {\"id\", \"embedding\"}: leave out --format npy");
        return EXIT_USAGE;
    }
    if (e->o.out && !freopen(e->o.out, "wb", stdout)) {
        cli_error("%s: %s", e->o.out, strerror(errno));
        return EXIT_FAIL;
    }
    return run(*c, e->paths[0], 1);
}

/* Files and folders: the chunking, progress and cache settings, then embed_tree. */
static int embed_files(cli_common *c, embed_args *e) {
    tree_opts *o = &e->o;
    if (o->npy && !o->out) {
        cli_error("--format npy needs -o DIR (vectors.npy and metadata.jsonl are written there)");
        return EXIT_USAGE;
    }
    o->chunk_tokens = (int)e->chunk_tokens;
    o->chunk_lines = (int)e->chunk_lines;
    o->overlap = (int)e->overlap;
    o->max_file_bytes = (uint64_t)e->max_file_bytes;
    if (o->overlap >= o->chunk_lines) {
        cli_error("--overlap %d must be below --chunk-lines %d", o->overlap, o->chunk_lines);
        return EXIT_USAGE;
    }
    long every;
    int status = opt_long("EMBEDDING_PROGRESS_SECONDS", &every);
    if (status) return status;
    o->progress_s = (double)every;
    char b[4096];
    if ((status = cli_cache_settings(e->cache_flag, e->no_cache, b, sizeof b, &o->cache_path, &o->cache_max_bytes)))
        return status;
    if (!o->list_files && (status = cli_resolve_model(c))) return status;
    return embed_tree(c, o, e->paths, (size_t)e->n_paths);
}

int cmd_embed(int argc, char **argv) {
    cli_common c;
    if (cli_common_init(&c)) return EXIT_USAGE;
    embed_args e = {.chunk_tokens = 0, .chunk_lines = 80, .overlap = 0, .max_file_bytes = 1L << 20};
    e.paths = base_calloc((size_t)argc + 1, sizeof *e.paths);
    if (!e.paths) return EXIT_FAIL;
    int status = embed_parse(&c, &e, argc, argv);
    if (!status) status = is_jsonl_input(&e) ? embed_jsonl(&c, &e) : embed_files(&c, &e);
    base_free(e.paths);
    return status;
}

int cmd_tokenize(int argc, char **argv) {
    cli_common c;
    if (cli_common_init(&c)) return EXIT_USAGE;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("unknown flag %s", argv[i]);
            return EXIT_USAGE;
        }
        if (path) {
            cli_error("one input file, please (got %s and %s)", path, argv[i]);
            return EXIT_USAGE;
        }
        path = argv[i];
    }
    if (!path) {
        cli_error("usage: cembed tokenize [--model DIR] FILE.jsonl|-");
        return EXIT_USAGE;
    }
    return run(c, path, 0);
}
