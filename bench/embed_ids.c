/* embed_ids: cembed's side of bench/arch.sh. Reads token-id sequences (one
 * per line: a JSON array of ints, or an object whose first array is the ids,
 * e.g. {"id": "s0", "ids": [...]}), embeds them all with cembed_run_ids (the
 * engine sorts them by length and packs batches of --batch sequences, as the
 * server's scheduler does), and prints one JSON line: tokens, seconds,
 * tokens_per_s, setup_seconds, and what ran (precision, gemm, kernels).
 * One warm-up call on the first --warmup sequences (default --batch; 0: none,
 * for one sequence of 8,192 tokens whose warm-up would double the wall time)
 * runs before the timed call.
 * --out FILE writes the vectors as float32 rows in file order (normalized
 * for an embedding model, raw logits for a reranker) for bench/arch_peers/cosine.py.
 *
 * usage: build/bench_embed_ids --model DIR --ids FILE [--threads 2]
 *          [--precision fp32|bf16|int8] [--gemm auto|onednn|avx2|scalar]
 *          [--batch 32] [--warmup N] [--max-seq-len N] [--out FILE.f32]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cembed.h"

struct seqs {
    int32_t **ids;
    size_t *n, count, cap;
    long tokens;
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The ints of the first [...] of line (len bytes) into *ids / *n. */
static int parse_line(const char *line, size_t len, int32_t **ids, size_t *n) {
    const char *p = memchr(line, '[', len), *end = line + len;
    if (!p) return -1;
    size_t cap = 64, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    for (p++; p < end && *p != ']';) {
        char *q;
        long x = strtol(p, &q, 10);
        if (q == p) { p++; continue; }
        if (k == cap && !(v = realloc(v, (cap *= 2) * sizeof *v))) return -1;
        v[k++] = (int32_t)x;
        p = q;
    }
    *ids = v;
    *n = k;
    return k ? 0 : -1;
}

static int read_seqs(const char *path, struct seqs *s) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) > 0) {
        if (len < 2) continue;
        if (s->count == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 256;
            s->ids = realloc(s->ids, s->cap * sizeof *s->ids);
            s->n = realloc(s->n, s->cap * sizeof *s->n);
            if (!s->ids || !s->n) break;
        }
        if (parse_line(line, (size_t)len, &s->ids[s->count], &s->n[s->count]) != 0) break;
        s->tokens += (long)s->n[s->count++];
    }
    int bad = !feof(f) || s->count == 0;
    free(line);
    fclose(f);
    return bad ? -1 : 0;
}

static int precision_of(const char *name) {
    if (!strcmp(name, "fp32")) return CEMBED_FP32;
    if (!strcmp(name, "bf16")) return CEMBED_BF16;
    if (!strcmp(name, "int8")) return CEMBED_INT8;
    return -1;
}

static int write_out(const char *path, const float *v, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int bad = fwrite(v, sizeof *v, n, f) != n;
    return fclose(f) != 0 || bad ? -1 : 0;
}

static int usage(void) {
    fputs("usage: bench_embed_ids --model DIR --ids FILE [--threads 2] [--precision fp32|bf16|int8]\n"
          "         [--gemm auto|onednn|avx2|scalar] [--batch 32] [--warmup N] [--max-seq-len N]\n"
          "         [--out FILE.f32]\n", stderr);
    return 2;
}

static int run(cembed_model *m, const struct seqs *s, const char *out, int warmup, double t_open) {
    cembed_model_info info;
    cembed_model_get_info(m, &info);
    float *v = malloc(s->count * (size_t)info.hidden * sizeof *v);
    if (!v) return 1;
    size_t warm = s->count < (size_t)warmup ? s->count : (size_t)warmup;
    double t0 = now();
    int rc = warm ? cembed_run_ids(m, (const int32_t *const *)s->ids, s->n, NULL, warm, v, 1) : 0;
    double t1 = now();
    if (rc == 0) rc = cembed_run_ids(m, (const int32_t *const *)s->ids, s->n, NULL, s->count, v, 1);
    double dt = now() - t1;
    if (rc != 0) {
        fprintf(stderr, "bench_embed_ids: %s\n", cembed_last_error());
        free(v);
        return 1;
    }
    printf("{\"peer\":\"cembed\",\"family\":\"%s\",\"precision\":\"%s\",\"gemm\":\"%s\",\"kernels\":\"%s\","
           "\"attention\":\"%s\",\"threads\":%d,\"seqs\":%zu,\"tokens\":%ld,\"seconds\":%.4f,"
           "\"tokens_per_s\":%.1f,\"setup_seconds\":%.3f}\n",
           info.family, info.precision, info.gemm, info.kernels, info.attention, info.threads, s->count,
           s->tokens, dt, (double)s->tokens / dt, t_open + (t1 - t0));
    rc = out && write_out(out, v, s->count * (size_t)info.hidden) != 0;
    if (rc) fprintf(stderr, "bench_embed_ids: cannot write %s\n", out);
    free(v);
    return rc;
}

int main(int argc, char **argv) {
    const char *model = NULL, *ids = NULL, *out = NULL;
    int warmup = -1;
    cembed_options opt = {.threads = 2, .precision = CEMBED_FP32, .max_batch = 32};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--ids")) ids = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--threads")) opt.threads = atoi(v);
        else if (!strcmp(a, "--batch")) opt.max_batch = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--max-seq-len")) opt.max_seq_len = atoi(v);
        else if (!strcmp(a, "--gemm")) opt.gemm = v;
        else if (!strcmp(a, "--precision") && (opt.precision = precision_of(v)) >= 0) continue;
        else return usage();
    }
    if (!model || !ids || argc % 2 == 0) return usage();
    struct seqs s = {0};
    if (read_seqs(ids, &s) != 0) {
        fprintf(stderr, "bench_embed_ids: cannot read id sequences from %s\n", ids);
        return 1;
    }
    double t = now();
    cembed_model *m = NULL;
    if (cembed_model_open(model, &opt, &m) != 0) {
        fprintf(stderr, "bench_embed_ids: %s\n", cembed_last_error());
        return 1;
    }
    if (warmup < 0) warmup = opt.max_batch ? opt.max_batch : 32;
    int rc = run(m, &s, out, warmup, now() - t);
    cembed_model_free(m);
    for (size_t i = 0; i < s.count; i++) free(s.ids[i]);
    free(s.ids);
    free(s.n);
    return rc;
}
