/* Unit tests of src/tok: WordPiece, the BERT normalizer and pre-tokenizer,
 * truncation, added tokens, loader errors and allocation failures. The
 * id-for-id comparison with Hugging Face runs in tests/integration. */
#include <stdlib.h>

#include "test.h"
#include "tok/tok.h"
#include "tok_test.h"

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

void check_load_under_alloc_failures(tok_load_fn load_fn, const char *doc, size_t len) {
    tokenizer *t = NULL;
    base_alloc_fail_after(0);
    CHECK_INT(load_fn(doc, len, &t), 0);
    tok_free(t);
    size_t calls = base_alloc_fail_after(0);
    for (size_t n = 1; n <= calls; n++) {
        base_alloc_fail_after(n);
        int rc = load_fn(doc, len, &t);
        base_alloc_fail_after(0);
        if (rc == 0) tok_free(t);
        else CHECK(t == NULL);
    }
    tok_thread_release();
}

TEST(tok_json_survives_every_allocation_failure) {
    check_load_under_alloc_failures(tok_load_json, tiny_json, sizeof tiny_json - 1);
}

/* ---- the regex engine, byte-level map, BPE, added-token flags, templates ---- */

#include "tok/regex.h"
#include "tok/tok_internal.h"

/* First match of pat in text from 0: "[start,end)" or "none". */
static void re_expect(const char *pat, const char *text, const char *want) {
    tok_re *re = NULL;
    if (tok_re_compile(pat, strlen(pat), &re) != 0) FAIL_AT("compile %s: %s", pat, cembed_last_error());
    if (!re) return;
    uint32_t s[256];
    size_t n = utf8_decode(text, strlen(text), s), ms = 0, me = 0;
    char got[32];
    int r = tok_re_find(re, s, n, 0, &ms, &me);
    if (r == 1) snprintf(got, sizeof got, "[%zu,%zu)", ms, me);
    else snprintf(got, sizeof got, "none");
    if (strcmp(got, want) != 0) FAIL_AT("/%s/ on \"%s\": got %s, want %s", pat, text, got, want);
    tok_re_free(re);
}

TEST(tok_regex_engine) {
    re_expect("a|ab", "ab", "[0,1)");                 /* leftmost-first, not longest */
    re_expect("ab|a", "ab", "[0,2)");
    re_expect("\\s+(?!\\S)", "x   y", "[1,3)");        /* backs off one space before a word */
    re_expect("\\s+(?!\\S)|\\s+", "x   y", "[1,3)");
    re_expect("\\p{N}{1,3}", "x12345", "[1,4)");
    re_expect("(?i:'s|'t)", "it'S", "[2,4)");
    re_expect(" ?\\p{L}+", "12 héllo", "[2,8)");
    re_expect("[^\\s\\p{L}\\p{N}]+", "ab+=-c", "[2,5)");
    re_expect("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+", "\n(abc", "[1,5)");
    re_expect("\\d+", "a\xd9\xa3\xd9\xa4", "[1,3)");     /* Arabic-Indic digits are \d (Nd) */
    re_expect("a*?b", "aab", "[0,3)");
    re_expect("x{2,}", "xxxx", "[0,4)");
    tok_re *re = NULL;
    CHECK(tok_re_compile("(a", 2, &re) != 0);
    CHECK_CONTAINS(cembed_last_error(), "missing )");
    CHECK(tok_re_compile("(a*)*", 5, &re) != 0);
    CHECK(tok_re_compile("a++", 3, &re) != 0);
    CHECK(tok_re_compile("(a+b?)+", 7, &re) != 0);   /* nested repeats backtrack exponentially */
    CHECK_CONTAINS(cembed_last_error(), "repeat inside a repeat");
    CHECK(tok_re_compile("\\p{Xx}", 6, &re) != 0);
    tok_re_thread_release();
}

TEST(tok_byte_level_map) {
    CHECK_INT(tok_byte_char('A'), 'A');
    CHECK_INT(tok_byte_char(' '), 0x120);   /* Ġ */
    CHECK_INT(tok_byte_char('\n'), 0x10A);  /* Ċ */
    CHECK_INT(tok_byte_char(0xAD), 0x143);
    for (int b = 0; b < 256; b++) CHECK_INT(tok_char_byte(tok_byte_char((uint8_t)b)), b);
}

static tokenizer *load_json_str(const char *json) {
    tokenizer *t = NULL;
    if (tok_load_json(json, strlen(json), &t) != 0) FAIL_AT("load: %s", cembed_last_error());
    return t;
}

static void expect_ex(tokenizer *t, const char *text, int max_len, int left, const int32_t *want, size_t n) {
    tok_ids v = {0};
    CHECK_INT(tok_encode_ex(t, text, strlen(text), max_len, left, &v), 0);
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

/* ByteLevel BPE: "Ġ"=256-style chars; merges as strings and as arrays. */
static const char bpe_json[] =
    "{\"added_tokens\":[{\"id\":9,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":10,\"content\":\"</s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":11,\"content\":\"<m>\",\"special\":true,\"normalized\":false,\"lstrip\":true,\"rstrip\":true},"
    "{\"id\":12,\"content\":\"ab\",\"special\":false,\"normalized\":true,\"single_word\":true}],"
    "\"normalizer\":null,"
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true},"
    "\"post_processor\":{\"type\":\"RobertaProcessing\",\"sep\":[\"</s>\",10],\"cls\":[\"<s>\",9]},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"\xc4\xa0\":3,\"\xc4\xa0" "a\":4,\"bc\":5,"
    "\"\xc4\xa0" "abc\":6,\"\xc4\xa0" "ab\":7,\"x\":8},"
    "\"merges\":[\"\xc4\xa0 a\",[\"b\",\"c\"],[\"\xc4\xa0" "a\",\"bc\"]]}}";

TEST(tok_bpe_bytelevel_roberta) {
    tokenizer *t = load_json_str(bpe_json);
    if (!t) return;
    CHECK_INT(tok_cls_id(t), 9);
    CHECK_INT(tok_sep_id(t), 10);
    /* " abc": Ġ a b c -> Ġa b c -> Ġa bc -> Ġabc (rank order) */
    expect_ex(t, "abc", 64, 0, (int32_t[]){9, 6, 10}, 3);
    expect_ex(t, "abc a", 64, 0, (int32_t[]){9, 6, 4, 10}, 4);
    /* <m> strips the spaces around it; "ab" is a single word only */
    expect_ex(t, "a  <m>  a", 64, 0, (int32_t[]){9, 4, 11, 4, 10}, 5);
    expect_ex(t, "x ab x", 64, 0, (int32_t[]){9, 3, 8, 3, 12, 3, 8, 10}, 8);
    expect_ex(t, "xab", 64, 0, (int32_t[]){9, 3, 8, 0, 1, 10}, 6);
    /* truncation before the template: right keeps the start, left the end */
    expect_ex(t, "a a a c", 4, 0, (int32_t[]){9, 4, 4, 10}, 4);
    expect_ex(t, "a a a c", 4, 1, (int32_t[]){9, 3, 2, 10}, 4);
    tok_ids v = {0};
    CHECK_INT(tok_encode_pair(t, "a a a", 5, "c c c", 5, 8, &v), 0);
    CHECK_INT(v.n, 8);   /* <s> Ġa Ġa </s> </s> Ġ c </s> ... longest_first: 2 + 2 */
    CHECK_INT(v.type1_from, 8);   /* RoBERTa: every type id is 0 */
    CHECK_INT(v.ids[3], 10);
    CHECK_INT(v.ids[4], 10);
    tok_ids_free(&v);
    tok_free(t);
}

static const char fallback_json[] =
    "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],"
    "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,"
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"\xe2\x96\x81\":2,\"h\":3,\"i\":4,\"hi\":5,\"\xe2\x96\x81hi\":6,"
    "\"<0xC3>\":7,\"<0xA9>\":8},\"merges\":[\"h i\",\"\xe2\x96\x81 hi\"]}}";

TEST(tok_bpe_byte_fallback_and_unk) {
    tokenizer *t = load_json_str(fallback_json);
    if (!t) return;
    CHECK_INT(tok_cls_id(t), 1);
    CHECK_INT(tok_sep_id(t), -1);
    expect_ex(t, "hi hi", 64, 0, (int32_t[]){1, 6, 6}, 3);
    expect_ex(t, "h\xc3\xa9", 64, 0, (int32_t[]){1, 2, 3, 7, 8}, 5);   /* é -> <0xC3> <0xA9> */
    expect_ex(t, "hzzi", 64, 0, (int32_t[]){1, 2, 3, 0, 4}, 5);        /* zz: one fused <unk> */
    tok_ids v = {0};
    CHECK_INT(tok_encode_pair(t, "hi", 2, "hi hi", 5, 64, &v), 0);
    CHECK_INT(v.n, 4);
    CHECK_INT(v.type1_from, 2);
    tok_ids_free(&v);
    tok_free(t);
}

TEST(tok_template_checks) {
    tokenizer *t = NULL;
    const char *bad =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"post_processor\":{\"type\":"
        "\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":1}},{\"SpecialToken\":{\"id\":\"a\","
        "\"type_id\":0}}],\"pair\":null,\"special_tokens\":{\"a\":{\"id\":\"a\",\"ids\":[0],\"tokens\":[\"a\"]}}}}";
    CHECK(tok_load_json(bad, strlen(bad), &t) != 0);
    CHECK_CONTAINS(cembed_last_error(), "0...0 1...1");
    const char *unk = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}";
    CHECK(tok_load_json(unk, strlen(unk), &t) != 0);
    CHECK_CONTAINS(cembed_last_error(), "merge 0");
    const char *pp = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"post_processor\":{\"type\":\"Foo\"}}";
    CHECK(tok_load_json(pp, strlen(pp), &t) != 0);
    CHECK_CONTAINS(cembed_last_error(), "post_processor Foo");
    tok_thread_release();
}

/* ---- Unigram and Precompiled ---- */

static const char unigram_json[] =
    "{\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"_\",\"prepend_scheme\":\"always\"},"
    "\"post_processor\":null,\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"byte_fallback\":false,\"vocab\":["
    "[\"<unk>\",0],[\"_\",-1],[\"a\",-2],[\"b\",-2],[\"ab\",-3],[\"_a\",-2.5],[\"_ab\",-6],[\"abc\",-4],[\"c\",-3]]}}";

TEST(tok_unigram_viterbi) {
    tokenizer *t = load_json_str(unigram_json);
    if (!t) return;
    /* "_ab": _a + b = -4.5 beats _ab = -6 and _ + ab = -4; ... */
    expect_ex(t, "ab", 64, 0, (int32_t[]){1, 4}, 2);        /* _ + ab = -4 is the best path */
    expect_ex(t, "abc", 64, 0, (int32_t[]){1, 7}, 2);       /* _ + abc = -5 < _a + b + c = -7.5 */
    expect_ex(t, "axxb", 64, 0, (int32_t[]){5, 0, 3}, 3);   /* unknown "xx" fuses into one <unk> */
    expect_ex(t, "a b", 64, 0, (int32_t[]){5, 1, 3}, 3);
    tok_free(t);
}

static void b64_encode(const unsigned char *p, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out[k++] = tab[v >> 18 & 63];
        out[k++] = tab[v >> 12 & 63];
        out[k++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[k++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[k] = 0;
}

/* A hand-built darts-clone array: "A" -> "a", "AB" -> "b", "\xC3\x80" -> "xy". */
TEST(tok_precompiled_charsmap) {
    static uint32_t units[1025];
    memset(units, 0, sizeof units);
    units[0] = 1u << 10;                                    /* root: children at 1 ^ c */
    units[64] = (320u << 10) | (1u << 8) | 0x41;            /* 'A' at 1 ^ 0x41, leaf, base 256 */
    units[256] = (1u << 31) | 0;                            /* value: offset 0, "a" */
    units[322] = (834u << 10) | (1u << 8) | 0x42;           /* 'B' at 256 ^ 0x42, leaf, base 512 */
    units[512] = (1u << 31) | 2;                            /* "b" */
    units[194] = (962u << 10) | 0xC3;                       /* 0xC3 at 1 ^ 0xC3, base 768 */
    units[896] = (1920u << 10) | (1u << 8) | 0x80;          /* 0x80 at 768 ^ 0x80, leaf, base 1024 */
    units[1024] = (1u << 31) | 4;                           /* "xy" */
    static unsigned char blob[4 + sizeof units + 7];
    uint32_t size = sizeof units;
    memcpy(blob, &size, 4);   /* little-endian hosts only, as the tests run */
    memcpy(blob + 4, units, sizeof units);
    memcpy(blob + 4 + sizeof units, "a\0b\0xy\0", 7);
    static char b64[sizeof blob * 2], json[sizeof blob * 2 + 1024];
    b64_encode(blob, sizeof blob, b64);
    snprintf(json, sizeof json,
             "{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"%s\"},\"pre_tokenizer\":null,"
             "\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"<unk>\",0],[\"a\",-1],[\"b\",-1],[\"B\",-1],"
             "[\"xy\",-1],[\"x\",-2],[\"y\",-2]]}}",
             b64);
    tokenizer *t = load_json_str(json);
    if (!t) return;
    expect_ex(t, "A", 64, 0, (int32_t[]){1}, 1);
    expect_ex(t, "AB", 64, 0, (int32_t[]){1, 3}, 2);              /* graphemes "A", "B": "AB" is never a key */
    expect_ex(t, "A\xcc\x80" "b", 64, 0, (int32_t[]){1, 2}, 2);   /* "A"+U+0300 is one grapheme: its prefix "A" replaces it all */
    expect_ex(t, "\xc3\x80", 64, 0, (int32_t[]){4}, 1);
    tok_free(t);
    tokenizer *bad = NULL;
    const char *j = "{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"AAAA\"},\"model\":{\"type\":"
                    "\"Unigram\",\"vocab\":[[\"a\",0]]}}";
    CHECK(tok_load_json(j, strlen(j), &bad) != 0);
    CHECK_CONTAINS(cembed_last_error(), "trie size");
}
