/* Unigram model: not yet implemented; refused with EMODEL. */
#include "tok_internal.h"

struct unigram {
    int unused;
};

int unigram_load(struct json_t *model, vocab *v, unigram **out) {
    (void)model, (void)v;
    *out = NULL;
    return base_err(CEMBED_EMODEL, "tokenizer.json: model type Unigram is not supported");
}

int unigram_word(const unigram *u, const vocab *v, const uint32_t *w, size_t n, tok_ids *o) {
    (void)u, (void)v, (void)w, (void)n, (void)o;
    return CEMBED_EMODEL;
}

void unigram_free(unigram *u) { base_free(u); }
