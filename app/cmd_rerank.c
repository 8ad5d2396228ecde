/* `cembed rerank --model M QUERY FILE`: scores every document of FILE (JSON
 * lines, as `embed` reads them) against QUERY with a cross-encoder and
 * writes {"index", "id", "score"} lines, best first. Documents are read and
 * scored in windows of WINDOW pairs, so memory holds one window's tokens
 * and one score and id per document; the scores are sorted at the end. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "cli.h"

#define WINDOW 512

typedef struct scored {
    size_t index;
    float score;
    char *id;       /* the record's id as JSON */
} scored;

static int by_score(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

typedef struct rerank_run {
    cembed_model *m;
    const char *query;
    scored *all;
    size_t n, cap;
    int32_t *tok[WINDOW];
    size_t n_tok[WINDOW];
    int type1[WINDOW];
    size_t in_window;
    float logits[WINDOW];
    size_t truncated;
} rerank_run;

/* Scores the window's pairs into the last in_window entries of all. */
static int score_window(rerank_run *r) {
    int rc = 0;
    if (r->in_window &&
        cembed_run_ids(r->m, (const int32_t *const *)r->tok, r->n_tok, r->type1, r->in_window, r->logits, 0)) {
        cli_error("scoring failed: %s", cembed_last_error());
        rc = -1;
    }
    for (size_t k = 0; k < r->in_window; k++) {
        if (!rc) r->all[r->n - r->in_window + k].score = r->logits[k];
        cembed_free(r->tok[k]);
    }
    r->in_window = 0;
    return rc;
}

/* Adds the record in hand: its id kept, its pair tokenized into the window. */
static int add_document(rerank_run *r, const json_record *rec) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 1024;
        scored *p = realloc(r->all, cap * sizeof *p);
        if (!p) return -1;
        r->all = p, r->cap = cap;
    }
    scored *s = &r->all[r->n];
    if (!(s->id = strndup(rec->id.ptr, rec->id.len))) return -1;
    s->index = r->n++;
    const size_t k = r->in_window++;
    int tr;
    if (cembed_tokenize_pair(r->m, r->query, strlen(r->query), rec->text.ptr ? rec->text.ptr : "", rec->text.len,
                             &r->tok[k], &r->n_tok[k], &r->type1[k], &tr, NULL)) {
        r->in_window--;
        return -1;
    }
    r->truncated += (size_t)tr;
    return r->in_window == WINDOW ? score_window(r) : 0;
}

/* The sorted scores, top_n of them (0: all), as JSON lines on stdout. */
static int write_scores(rerank_run *r, size_t top_n, int raw) {
    qsort(r->all, r->n, sizeof *r->all, by_score);
    buf out = {0};
    int rc = 0;
    const size_t n = top_n && top_n < r->n ? top_n : r->n;
    for (size_t k = 0; k < n && !rc; k++) {
        const scored *s = &r->all[k];
        const double score = raw ? s->score : 1.0 / (1.0 + exp(-(double)s->score));
        rc = buf_printf(&out, "{\"index\":%zu,\"id\":%s,\"score\":%.9g}\n", s->index, s->id, score);
        if (!rc && out.len > (1u << 20)) {
            rc = fwrite(out.ptr, 1, out.len, stdout) != out.len;
            out.len = 0;
        }
    }
    if (!rc && out.len) rc = fwrite(out.ptr, 1, out.len, stdout) != out.len;
    if (!rc) rc = fflush(stdout) != 0;
    if (rc) cli_error("writing the output: %s", errno ? strerror(errno) : "out of memory");
    buf_free(&out);
    return rc ? -1 : 0;
}

static int rerank(cli_common *c, const char *query, const char *path, size_t top_n, int raw) {
    rerank_run r = {.query = query};
    cli_input in;
    int status = EXIT_FAIL, got;
    if (cli_input_open(&in, path)) return EXIT_FAIL;
    const cembed_options o = cli_model_options(c, c->batch_size);
    if (cli_open_model(c, &o, &r.m)) goto done;
    cembed_model_info info;
    cembed_model_get_info(r.m, &info);
    if (strcmp(info.kind, "reranker") != 0 || info.hidden != 1) {
        cli_error("%s is %s; rerank needs a cross-encoder with one label (e.g. BAAI/bge-reranker-base)", info.name,
                  strcmp(info.kind, "reranker") ? "an embedding model" : "a classifier with several labels");
        goto done;
    }
    const double t0 = time_now();
    while ((got = cli_input_next(&in)) == 1)
        if (add_document(&r, &in.rec)) {
            if (!*cembed_last_error()) cli_error("out of memory");
            goto done;
        }
    if (got < 0 || score_window(&r) || write_scores(&r, top_n, raw)) goto done;
    log_info("reranked %zu documents (%zu truncated to %d tokens) in %.2f s", r.n, r.truncated, info.max_seq_len,
             time_now() - t0);
    status = EXIT_OK;
done:
    for (size_t k = 0; k < r.in_window; k++) cembed_free(r.tok[k]);
    for (size_t k = 0; k < r.n; k++) free(r.all[k].id);
    free(r.all);
    cli_input_close(&in);
    cembed_model_free(r.m);
    return status;
}

int cmd_rerank(int argc, char **argv) {
    cli_common c;
    if (cli_common_init(&c)) return EXIT_USAGE;
    const char *pos[2] = {NULL, NULL};
    int n_pos = 0, raw = 0;
    long top_n = 0;
    for (int i = 1; i < argc; i++) {
        const int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if (strcmp(argv[i], "--raw-scores") == 0) {
            raw = 1;
        } else if (strcmp(argv[i], "--top-n") == 0) {
            if (i + 1 >= argc || cli_parse_int(argv[i + 1], 1, 1L << 40, &top_n)) {
                cli_error("--top-n needs a positive integer");
                return EXIT_USAGE;
            }
            i++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("rerank: unknown flag %s (rerank [--model M] [--raw-scores] [--top-n N] QUERY FILE|-)", argv[i]);
            return EXIT_USAGE;
        } else if (n_pos < 2) {
            pos[n_pos++] = argv[i];
        } else {
            cli_error("rerank takes a QUERY and one FILE (JSON lines, or - for stdin)");
            return EXIT_USAGE;
        }
    }
    if (n_pos != 2) {
        cli_error("usage: cembed rerank [--model M] [--raw-scores] [--top-n N] QUERY FILE|-");
        return EXIT_USAGE;
    }
    return rerank(&c, pos[0], pos[1], (size_t)top_n, raw);
}
