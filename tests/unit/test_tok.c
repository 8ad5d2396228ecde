/* Unit tests of src/tok: WordPiece, the BERT normalizer and pre-tokenizer,
 * truncation, added tokens, loader errors and allocation failures. The
 * id-for-id comparison with Hugging Face runs in tests/integration. */
#include <stdlib.h>

#include "test.h"
#include "tok/tok.h"

static const char vocab_txt[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\non\nmat\n##s\n##ing\nun\n##aff\n##able\n.\n,\n(\n)\n"
    "a\nb\nc\ncafe\n中\n文\nx\n##x\n";

static tokenizer *load(void) {
    tokenizer *t = NULL;
    if (tok_load_vocab(vocab_txt, sizeof vocab_txt - 1, 1, &t) != 0) FAIL_AT("load: %s", cembed_last_error());
    return t;
}

static void expect(tokenizer *t, const char *text, int max_len, const int32_t *want, size_t n) {
    tok_ids v = {0};
    CHECK_INT(tok_encode(t, text, strlen(text), max_len, &v), 0);
    int same = v.n == n;
    for (size_t i = 0; same && i < n; i++) same = v.ids[i] == want[i];
    if (!same) {
        fprintf(stderr, "  text \"%s\": got", text);
        for (size_t i = 0; i < v.n; i++) fprintf(stderr, " %d", (int)v.ids[i]);
        fprintf(stderr, "\n");
        FAIL_AT("ids differ");
    }
    tok_ids_free(&v);
}

TEST(tok_wordpiece_basics) {
    tokenizer *t = load();
    if (!t) return;
    expect(t, "The cats sat.", 64, (int32_t[]){2, 5, 6, 10, 7, 15, 3}, 7);
    expect(t, "unaffable", 64, (int32_t[]){2, 12, 13, 14, 3}, 5);
    expect(t, "dog", 64, (int32_t[]){2, 1, 3}, 3);                 /* no piece matches: [UNK] */
    expect(t, "", 64, (int32_t[]){2, 3}, 2);
    expect(t, "  \t\n ", 64, (int32_t[]){2, 3}, 2);
    expect(t, "(a,b)", 64, (int32_t[]){2, 17, 19, 16, 20, 18, 3}, 7);
    tok_free(t);
}

TEST(tok_normalizer) {
    tokenizer *t = load();
    if (!t) return;
    expect(t, "CAFÉ", 64, (int32_t[]){2, 22, 3}, 3);                     /* lowercase + strip accents */
    expect(t, "cafe\xcc\x81", 64, (int32_t[]){2, 22, 3}, 3);             /* combining acute removed */
    expect(t, "中文", 64, (int32_t[]){2, 23, 24, 3}, 4);                  /* CJK split per character */
    expect(t, "a\x01" "b\xe2\x80\x8b" "c", 64, (int32_t[]){2, 1, 3}, 3);  /* controls, ZWSP dropped: "abc" */
    expect(t, "the\xc2\xa0" "cat", 64, (int32_t[]){2, 5, 6, 3}, 4);       /* NBSP is whitespace */
    expect(t, "the\xff" "cat", 64, (int32_t[]){2, 1, 3}, 3);              /* invalid byte -> U+FFFD -> dropped */
    tok_free(t);
}

TEST(tok_long_words_and_truncation) {
    tokenizer *t = load();
    if (!t) return;
    char w[102];
    memset(w, 'x', 100);
    w[100] = 0;
    tok_ids v = {0};
    CHECK_INT(tok_encode(t, w, 100, 512, &v), 0);
    CHECK_INT(v.n, 102);   /* x + 99 ##x + [CLS] [SEP] */
    w[100] = 'x';
    w[101] = 0;
    CHECK_INT(tok_encode(t, w, 101, 512, &v), 0);
    CHECK_INT(v.n, 3);     /* over 100 characters: [UNK] */
    CHECK_INT(v.ids[1], 1);
    CHECK_INT(tok_encode(t, "the cat sat on the mat", 22, 4, &v), 0);
    CHECK_INT(v.n, 4);
    CHECK_INT(v.truncated, 1);
    CHECK_INT(v.n_full, 8);
    CHECK_INT(v.ids[0], 2);
    CHECK_INT(v.ids[1], 5);
    CHECK_INT(v.ids[2], 6);
    CHECK_INT(v.ids[3], 3);
    tok_ids_free(&v);
    tok_free(t);
}

TEST(tok_added_tokens_in_text) {
    tokenizer *t = load();
    if (!t) return;
    expect(t, "the [SEP] cat[MASK]", 64, (int32_t[]){2, 5, 3, 6, 4, 3}, 6);
    /* lowercase "[sep]" is not the added token: "[" "sep" "]", and "[", "]" are not in the vocab */
    expect(t, "[sep]", 64, (int32_t[]){2, 1, 1, 1, 3}, 5);
    tok_free(t);
}

static const char tiny_json[] =
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"[PAD]\",\"special\":true},"
    "{\"id\":1,\"content\":\"[UNK]\",\"special\":true},{\"id\":2,\"content\":\"[CLS]\",\"special\":true},"
    "{\"id\":3,\"content\":\"[SEP]\",\"special\":true}],"
    "\"normalizer\":{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,"
    "\"strip_accents\":null,\"lowercase\":true},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"[CLS]\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"[SEP]\",\"type_id\":0}}],"
    "\"special_tokens\":{\"[CLS]\":{\"id\":\"[CLS]\",\"ids\":[2],\"tokens\":[\"[CLS]\"]},"
    "\"[SEP]\":{\"id\":\"[SEP]\",\"ids\":[3],\"tokens\":[\"[SEP]\"]}}},"
    "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\","
    "\"max_input_chars_per_word\":100,\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2,\"[SEP]\":3,\"hello\":4,"
    "\"world\":5,\"##s\":6}}}";

TEST(tok_json_loader) {
    tokenizer *t = NULL;
    CHECK_INT(tok_load_json(tiny_json, sizeof tiny_json - 1, &t), 0);
    if (!t) return;
    expect(t, "Hello worlds", 16, (int32_t[]){2, 4, 5, 6, 3}, 5);
    tok_free(t);
}

TEST(tok_json_errors) {
    tokenizer *t = NULL;
    const char *cases[][2] = {
        {"{", "not valid JSON"},
        {"[]", "not a JSON object"},
        {"{\"model\":{\"type\":\"WordLevel\",\"vocab\":{}}}", "WordLevel is not supported"},
        {"{\"model\":{\"vocab\":{\"a\":\"x\"}},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}", "vocab id"},
        {"{\"model\":{\"vocab\":{\"a\":0,\"[UNK]\":1}},\"pre_tokenizer\":{\"type\":\"CharDelimiterSplit\"}}", "CharDelimiterSplit"},
        {"{\"model\":{\"vocab\":{\"a\":0}},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}", "[UNK]"},
        {"{\"model\":{\"vocab\":{\"a\":0,\"b\":0}},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}", "two tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK(tok_load_json(cases[i][0], strlen(cases[i][0]), &t) != 0);
        CHECK(t == NULL);
        CHECK_CONTAINS(cembed_last_error(), cases[i][1]);
    }
}

TEST(tok_json_survives_every_allocation_failure) {
    tokenizer *t = NULL;
    base_alloc_fail_after(0);
    CHECK_INT(tok_load_json(tiny_json, sizeof tiny_json - 1, &t), 0);
    tok_free(t);
    size_t calls = base_alloc_fail_after(0);
    for (size_t n = 1; n <= calls; n++) {
        base_alloc_fail_after(n);
        int rc = tok_load_json(tiny_json, sizeof tiny_json - 1, &t);
        base_alloc_fail_after(0);
        if (rc == 0) tok_free(t);
        else CHECK(t == NULL);
    }
    tok_thread_release();
}
