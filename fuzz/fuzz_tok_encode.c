/* libFuzzer target: encoding arbitrary bytes with two small BPE tokenizers
 * and a small Unigram one (NFKD, StripAccents, Strip, WhitespaceSplit,
 * Punctuation, Metaspace, byte fallback, BertProcessing)
 * (byte-level with the GPT-2 regex, added tokens with every flag and the
 * RoBERTa template; Metaspace with byte fallback, fused unk and a pair
 * template), single and pair, every truncation mode. The first input byte
 * picks max_len; the rest is split at its middle into the pair. */
#include <string.h>

#include "tok/tok.h"

static const char bytelevel_json[] =
    "{\"added_tokens\":[{\"id\":9,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":10,\"content\":\"</s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":11,\"content\":\"<m>\",\"special\":true,\"normalized\":false,\"lstrip\":true,\"rstrip\":true},"
    "{\"id\":12,\"content\":\"ab\",\"special\":false,\"normalized\":true,\"single_word\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Lowercase\"}]},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}]},"
    "\"post_processor\":{\"type\":\"RobertaProcessing\",\"sep\":[\"</s>\",10],\"cls\":[\"<s>\",9]},"
    "\"model\":{\"type\":\"BPE\",\"ignore_merges\":true,\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"\xc4\xa0\":3,"
    "\"\xc4\xa0" "a\":4,\"bc\":5,\"\xc4\xa0" "abc\":6,\"\xc4\xa0" "ab\":7,\"x\":8},"
    "\"merges\":[\"\xc4\xa0 a\",[\"b\",\"c\"],[\"\xc4\xa0" "a\",\"bc\"]]}}";

static const char metaspace_json[] =
    "{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"},"
    "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\",\"prepend_scheme\":\"first\"},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],"
    "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,"
    "\"continuing_subword_prefix\":\"##\",\"end_of_word_suffix\":\"</w>\","
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"\xe2\x96\x81\":2,\"h\":3,\"##i\":4,\"hi\":5,\"<0xC3>\":7,\"<0xA9>\":8,"
    "\"i</w>\":9,\"##i</w>\":10,\"hi</w>\":11},\"merges\":[\"h ##i\",\"h ##i</w>\"]}}";

static const char unigram_json[] =
    "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKD\"},{\"type\":\"StripAccents\"},"
    "{\"type\":\"Strip\"}]},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"WhitespaceSplit\"},"
    "{\"type\":\"Punctuation\"},{\"type\":\"Metaspace\",\"replacement\":\"_\",\"prepend_scheme\":\"first\"}]},"
    "\"post_processor\":{\"type\":\"BertProcessing\",\"cls\":[\"<s>\",1],\"sep\":[\"</s>\",2]},"
    "\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"byte_fallback\":true,\"vocab\":[[\"<unk>\",0],[\"<s>\",0],"
    "[\"</s>\",0],[\"_\",-1],[\"a\",-2],[\"b\",-2],[\"ab\",-3],[\"_a\",-2.5],[\"_ab\",-6],[\"abc\",-4],[\"c\",-3],"
    "[\"<0xC3>\",-5],[\"<0xA9>\",-5],[\"<0xE4>\",-5]]}}";

static tokenizer *tok_a, *tok_b, *tok_c;

static void check(const tokenizer *t, const tok_ids *v, int max_len, int pair) {
    CE_ASSERT(v->n <= (size_t)max_len || v->n == tok_num_special(t, pair));
    CE_ASSERT(v->type1_from <= v->n);
    for (size_t i = 0; i < v->n; i++) CE_ASSERT(v->ids[i] >= 0 && (size_t)v->ids[i] < tok_vocab_size(t));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok_a) {
        CE_ASSERT(tok_load_json(bytelevel_json, sizeof bytelevel_json - 1, &tok_a) == 0);
        CE_ASSERT(tok_load_json(metaspace_json, sizeof metaspace_json - 1, &tok_b) == 0);
        CE_ASSERT(tok_load_json(unigram_json, sizeof unigram_json - 1, &tok_c) == 0);
    }
    if (size == 0) return 0;
    int max_len = 2 + data[0] % 64;
    const char *s = (const char *)data + 1;
    size_t n = size - 1, half = n / 2;
    tok_ids v = {0};
    const tokenizer *ts[3] = {tok_a, tok_b, tok_c};
    for (int k = 0; k < 3; k++) {
        for (int left = 0; left < 2; left++)
            if (tok_encode_ex(ts[k], s, n, max_len, left, &v) == 0) check(ts[k], &v, max_len, 0);
        if (tok_encode_pair(ts[k], s, half, s + half, n - half, max_len, &v) == 0) check(ts[k], &v, max_len, 1);
    }
    tok_ids_free(&v);
    tok_thread_release();
    return 0;
}
