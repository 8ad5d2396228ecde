/* Internals shared by the tokenizer's files: the vocabulary hash and the
 * normalizer's code-point buffers. */
#ifndef CEMBED_TOK_INTERNAL_H
#define CEMBED_TOK_INTERNAL_H

#include "tok.h"

/* ---- vocab.c: token string -> id, open addressing ---- */
typedef struct vocab {
    char *strings;         /* all token bytes, back to back */
    size_t strings_len, strings_cap;
    uint32_t *off, *len;   /* per id */
    size_t n_ids;
    int32_t *slots;        /* ids, -1 empty; size mask + 1 */
    size_t mask;
} vocab;

int vocab_init(vocab *v, size_t n_ids);
/* Sets token s to id (id < n_ids given to vocab_init; later sets win). */
int vocab_set(vocab *v, str s, int32_t id);
/* Builds (or rebuilds) the hash once every id is set. */
int vocab_build(vocab *v);
int32_t vocab_get(const vocab *v, const char *s, size_t n);   /* -1 if absent */
void vocab_free(vocab *v);

/* ---- normalize.c ---- */
typedef struct norm_opts {
    int clean_text, handle_chinese_chars, lowercase, strip_accents;
} norm_opts;

typedef struct u32vec {
    uint32_t *p;
    size_t n, cap;
} u32vec;
int u32_reserve(u32vec *v, size_t n);
int u32_push(u32vec *v, uint32_t c);

/* Normalizes in[0..n) into *out (replacing its contents); tmp is scratch. */
int norm_apply(const norm_opts *o, const uint32_t *in, size_t n, u32vec *out, u32vec *tmp);

#endif
