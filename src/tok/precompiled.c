/* Precompiled normalizer (SentencePiece's precompiled_charsmap): not yet
 * implemented; loading one is refused with EMODEL. */
#include "tok_internal.h"

struct precompiled {
    int unused;
};

int precompiled_load(const char *b64, size_t len, precompiled **out) {
    (void)b64, (void)len;
    *out = NULL;
    return base_err(CEMBED_EMODEL, "tokenizer.json: normalizer Precompiled is not supported");
}

int precompiled_apply(const precompiled *pc, const uint32_t *s, size_t n, u32vec *out) {
    (void)pc, (void)s, (void)n, (void)out;
    return CEMBED_EMODEL;
}

void precompiled_free(precompiled *pc) { base_free(pc); }
