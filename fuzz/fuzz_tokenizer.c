/* libFuzzer target: tokenizer.json loading, then encoding. The input is
 * split at the first NUL byte: before it a tokenizer.json, after it a text
 * to encode (with a small built-in tokenizer when the JSON is refused), so
 * both the loader and the encode pipeline see arbitrary bytes. */
#include <string.h>

#include "tok/tok.h"

static const char fallback[] =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"[UNK]\"},{\"id\":1,\"content\":\"[CLS]\"},{\"id\":2,\"content\":\"[SEP]\"}],"
    "\"normalizer\":{\"type\":\"BertNormalizer\",\"lowercase\":true},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
    "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"vocab\":{\"[UNK]\":0,\"[CLS]\":1,\"[SEP]\":2,"
    "\"a\":3,\"##a\":4,\"\xc3\xa9\":5,\"\xe4\xb8\xad\":6}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    const char *nul = memchr(s, 0, size);
    size_t json_len = nul ? (size_t)(nul - s) : size;
    const char *text = nul ? nul + 1 : s;
    size_t text_len = nul ? size - json_len - 1 : size;
    tokenizer *t = NULL;
    if (tok_load_json(s, json_len, &t) != 0 && tok_load_json(fallback, sizeof fallback - 1, &t) != 0) return 0;
    tok_ids v = {0};
    for (int max_len = 2; max_len <= 512; max_len *= 16) {
        if (tok_encode(t, text, text_len, max_len, &v) == 0) {
            CE_ASSERT(v.n <= (size_t)max_len || v.n == tok_num_special(t, 0));
            CE_ASSERT(v.type1_from == v.n);
            for (size_t i = 0; i < v.n; i++) CE_ASSERT(v.ids[i] >= 0 && (size_t)v.ids[i] < tok_vocab_size(t));
        }
    }
    tok_ids_free(&v);
    tok_free(t);
    tok_thread_release();
    return 0;
}
