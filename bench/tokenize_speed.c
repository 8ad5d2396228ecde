/* tokenize_speed: tokens per second of cembed's tokenizer on JSON lines,
 * one thread, best of REPS passes (the first pass warms the caches).
 *
 * usage: tokenize_speed TOKENIZER.json TEXTS.jsonl [REPS]
 * prints: cembed <texts> texts <tokens> tokens <seconds> s <tokens/s> tokens/s */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tok/tok.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tokenize_speed TOKENIZER.json TEXTS.jsonl [REPS]\n");
        return 2;
    }
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    char *json = NULL, *text = NULL;
    size_t jlen, tlen;
    tokenizer *t = NULL;
    double t0 = now();
    if (file_read_all(argv[1], TOK_MAX_FILE_BYTES, &json, &jlen) || tok_load_json(json, jlen, &t) ||
        file_read_all(argv[2], 1u << 30, &text, &tlen)) {
        fprintf(stderr, "tokenize_speed: %s\n", cembed_last_error());
        return 1;
    }
    double load_s = now() - t0;
    json_t **rows = NULL;
    size_t n = 0, cap = 0;
    for (char *p = text, *e; p < text + tlen; p = e + 1) {
        e = memchr(p, '\n', (size_t)(text + tlen - p));
        if (!e) e = text + tlen;
        json_t *r = e > p ? json_loadb(p, (size_t)(e - p), 0, NULL) : NULL;
        if (!r) continue;
        if (n == cap) rows = realloc(rows, (cap = cap ? cap * 2 : 1024) * sizeof *rows);
        rows[n++] = json_incref(json_object_get(r, "text"));
        json_decref(r);
    }
    tok_ids v = {0};
    double best = 1e30;
    size_t tokens = 0;
    for (int r = 0; r < reps; r++) {
        tokens = 0;
        double s = now();
        for (size_t i = 0; i < n; i++) {
            if (tok_encode_ex(t, json_string_value(rows[i]), json_string_length(rows[i]), 1 << 30, 0, &v)) return 1;
            tokens += v.n;
        }
        double d = now() - s;
        if (d < best) best = d;
    }
    printf("cembed %zu texts %zu tokens %.3f s %.0f tokens/s (load %.2f s)\n", n, tokens, best, tokens / best, load_s);
    tok_free(t);
    return 0;
}
