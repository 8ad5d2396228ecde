/* `cembed embed` and `cembed tokenize` over JSON lines. Input is read in
 * windows of WINDOW records so memory stays flat for any input size; each
 * window is tokenized, embedded in length-sorted packed batches and written
 * in input order before the next is read. */
#include <errno.h>
#include <string.h>

#include "cli.h"
#include "json/json.h"

#define WINDOW 2048
#define MAX_LINE_BYTES (64u << 20)

typedef struct window {
    size_t n;
    buf ids[WINDOW];        /* id JSON of each record */
    int32_t *tok[WINDOW];
    size_t n_tok[WINDOW];
} window;

typedef struct input {
    const char *name;
    FILE *f;
    char *line;
    size_t cap;
    size_t line_no, index;
    json_record rec;
} input;

static int input_open(input *in, const char *path) {
    memset(in, 0, sizeof *in);
    in->name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    in->f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!in->f) {
        cli_error("%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void input_close(input *in) {
    if (in->f && in->f != stdin) fclose(in->f);
    free(in->line);
    json_record_free(&in->rec);
}

/* Reads the next record. Returns 1 with in->rec filled, 0 at the end, -1 on
 * error (printed with file and line). */
static int input_next(input *in) {
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

static int open_model(const cli_common *c, cembed_model **m) {
    cembed_options o = {.threads = c->threads, .max_batch = c->batch_size, .max_seq_len = c->max_seq_len};
    int rc = cembed_model_open(c->model_dir, &o, m);
    if (rc) {
        cli_error("cannot open model %s: %s", c->model_dir, cembed_last_error());
        return -1;
    }
    return 0;
}

static int write_all(buf *b) {
    if (b->len && fwrite(b->ptr, 1, b->len, stdout) != b->len) {
        cli_error("writing the output: %s", strerror(errno));
        return -1;
    }
    b->len = 0;
    return 0;
}

static int run(int argc, char **argv, int embed) {
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
        cli_error("usage: cembed %s [--model DIR] FILE.jsonl|-", embed ? "embed" : "tokenize");
        return EXIT_USAGE;
    }
    cembed_model *m = NULL;
    input in;
    window *w = calloc(1, sizeof *w);
    float *vec = NULL;
    buf out = {0};
    int status = EXIT_FAIL;
    if (!w || input_open(&in, path)) {
        free(w);
        return EXIT_FAIL;
    }
    if (open_model(&c, &m)) goto done;
    cembed_model_info info;
    cembed_model_get_info(m, &info);
    vec = malloc((size_t)WINDOW * (size_t)info.hidden * sizeof(float));
    if (!vec) goto done;
    size_t total = 0, tokens = 0, truncated = 0;
    double t0 = time_now();
    for (;;) {
        int r = 0;
        w->n = 0;
        while (w->n < WINDOW && (r = input_next(&in)) == 1) {
            size_t k = w->n++;
            int tr;
            w->ids[k].len = 0;
            if (buf_append(&w->ids[k], in.rec.id.ptr, in.rec.id.len) ||
                cembed_tokenize(m, in.rec.text.ptr, in.rec.text.len, &w->tok[k], &w->n_tok[k], &tr, NULL)) {
                cli_error("out of memory");
                w->n--;
                r = -1;
                break;
            }
            tokens += w->n_tok[k];
            truncated += (size_t)tr;
        }
        if (r < 0) goto free_window;
        if (w->n == 0) break;
        if (embed && cembed_embed_ids(m, (const int32_t *const *)w->tok, w->n_tok, w->n, vec)) {
            cli_error("embedding failed: %s", cembed_last_error());
            goto free_window;
        }
        for (size_t k = 0; k < w->n; k++) {
            if (buf_append(&out, "{\"id\":", 6) || buf_append(&out, w->ids[k].ptr, w->ids[k].len) ||
                (embed ? buf_append(&out, ",\"embedding\":", 13) ||
                             json_write_floats(&out, vec + k * (size_t)info.hidden, (size_t)info.hidden)
                       : buf_append(&out, ",\"ids\":", 7) || json_write_ints(&out, w->tok[k], w->n_tok[k])) ||
                buf_append(&out, "}\n", 2)) {
                cli_error("out of memory");
                goto free_window;
            }
            if (out.len > (1u << 20) && write_all(&out)) goto free_window;
        }
        if (write_all(&out)) goto free_window;
        total += w->n;
        for (size_t k = 0; k < w->n; k++) cembed_free(w->tok[k]);
        w->n = 0;
        if (r == 0) break;
        continue;
free_window:
        for (size_t k = 0; k < w->n; k++) cembed_free(w->tok[k]);
        w->n = 0;
        goto done;
    }
    if (fflush(stdout) != 0) {
        cli_error("writing the output: %s", strerror(errno));
        goto done;
    }
    double dt = time_now() - t0;
    log_info("%s %zu texts (%zu tokens, %zu truncated to %d) in %.2f s: %.1f texts/s, %.0f tokens/s",
             embed ? "embedded" : "tokenized", total, tokens, truncated, info.max_seq_len, dt,
             dt > 0 ? (double)total / dt : 0.0, dt > 0 ? (double)tokens / dt : 0.0);
    status = EXIT_OK;
done:
    for (size_t k = 0; k < WINDOW; k++) buf_free(&w->ids[k]);
    free(w);
    free(vec);
    buf_free(&out);
    input_close(&in);
    cembed_model_free(m);
    return status;
}

int cmd_embed(int argc, char **argv) { return run(argc, argv, 1); }
int cmd_tokenize(int argc, char **argv) { return run(argc, argv, 0); }
