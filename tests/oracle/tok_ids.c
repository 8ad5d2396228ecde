/* tok_ids: encodes JSON lines with cembed's tokenizer from one
 * tokenizer.json, for the comparison with Hugging Face's tokenizers
 * (tests/oracle/hf_tok_ids.mjs writes the same format).
 *
 * usage: tok_ids TOKENIZER.json TEXTS.jsonl MODE MAXLEN
 *   MODE: single (no truncation: MAXLEN 0), right, left (MAXLEN ids), pair
 *   (line i with line i+1, longest_first to MAXLEN ids; MAXLEN 0: none).
 *   Prints one {"ids": [...], "type1": k} per encoding; k is the index of the
 *   first type-1 id (the length when none). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok.h"

static void print_ids(const tok_ids *v) {
    fputs("{\"ids\":[", stdout);
    for (size_t i = 0; i < v->n; i++) printf(i ? ",%d" : "%d", (int)v->ids[i]);
    printf("],\"type1\":%zu}\n", v->type1_from);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: tok_ids TOKENIZER.json TEXTS.jsonl single|right|left|pair MAXLEN\n");
        return 2;
    }
    char *text = NULL, *json = NULL;
    size_t tlen, jlen;
    tokenizer *t = NULL;
    if (file_read_all(argv[1], TOK_MAX_FILE_BYTES, &json, &jlen) || tok_load_json(json, jlen, &t)) {
        fprintf(stderr, "tok_ids: %s: %s\n", argv[1], cembed_last_error());
        return 1;
    }
    if (file_read_all(argv[2], 1u << 30, &text, &tlen)) {
        fprintf(stderr, "tok_ids: %s: %s\n", argv[2], cembed_last_error());
        return 1;
    }
    const char *mode = argv[3];
    int max_len = atoi(argv[4]);
    if (max_len <= 0) max_len = 1 << 30;
    json_t **rows = NULL;
    size_t n = 0, cap = 0;
    for (char *p = text, *e; p < text + tlen; p = e + 1) {
        e = memchr(p, '\n', (size_t)(text + tlen - p));
        if (!e) e = text + tlen;
        if (e == p) continue;
        json_t *r = json_loadb(p, (size_t)(e - p), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!r) continue;
        if (n == cap) rows = realloc(rows, (cap = cap ? cap * 2 : 1024) * sizeof *rows);
        rows[n++] = json_is_string(r) ? r : json_incref(json_object_get(r, "text"));
        if (!json_is_string(r)) json_decref(r);
    }
    tok_ids v = {0};
    for (size_t i = 0; i < n; i++) {
        const char *a = json_string_value(rows[i]);
        size_t al = json_string_length(rows[i]);
        int rc;
        if (strcmp(mode, "pair") == 0) {
            json_t *b = rows[(i + 1) % n];
            rc = tok_encode_pair(t, a, al, json_string_value(b), json_string_length(b), max_len, &v);
        } else {
            rc = tok_encode_ex(t, a, al, max_len, strcmp(mode, "left") == 0, &v);
        }
        if (rc) {
            fprintf(stderr, "tok_ids: line %zu: %s\n", i + 1, cembed_last_error());
            return 1;
        }
        print_ids(&v);
    }
    tok_ids_free(&v);
    tok_free(t);
    for (size_t i = 0; i < n; i++) json_decref(rows[i]);
    free(rows);
    base_free(text);
    base_free(json);
    tok_thread_release();
    return 0;
}
