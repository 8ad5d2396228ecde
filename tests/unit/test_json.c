/* Unit tests of src/json: input records and the writers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "test.h"

#define PARSE(lit, index, r) json_parse_record(lit, sizeof(lit) - 1, index, r)

TEST(record_forms) {
    json_record r = {0};
    CHECK_INT(PARSE("{\"id\": \"a:1-2\", \"text\": \"hi\"}", 5, &r), 0);
    CHECK_STR(r.id.ptr, "\"a:1-2\"");
    CHECK_STR(r.text.ptr, "hi");
    CHECK_INT(PARSE("\"bare\"", 7, &r), 0);
    CHECK_STR(r.id.ptr, "7");
    CHECK_STR(r.text.ptr, "bare");
    CHECK_INT(PARSE("{\"id\": 12, \"content\": \"c\"}", 0, &r), 0);
    CHECK_STR(r.id.ptr, "12");
    CHECK_STR(r.text.ptr, "c");
    /* invalid UTF-8 inside the text is replaced, not refused */
    CHECK_INT(PARSE("{\"text\": \"a\xff" "b\"}", 0, &r), 0);
    CHECK_STR(r.text.ptr, "a\xef\xbf\xbd" "b");
    json_record_free(&r);
}

TEST(record_errors_say_what) {
    json_record r = {0};
    CHECK_INT(PARSE("{\"text\": 1}", 0, &r), CEMBED_EFORMAT);
    CHECK_CONTAINS(cembed_last_error(), "\"text\" must be a string");
    CHECK_INT(PARSE("{\"id\": 1}", 0, &r), CEMBED_EFORMAT);
    CHECK_CONTAINS(cembed_last_error(), "missing \"text\"");
    CHECK_INT(PARSE("{\"text\": \"a\"", 0, &r), CEMBED_EFORMAT);
    CHECK_CONTAINS(cembed_last_error(), "not valid JSON");
    CHECK_INT(PARSE("[1,2]", 0, &r), CEMBED_EFORMAT);
    CHECK_INT(PARSE("{\"text\": \"a\", \"id\": [1]}", 0, &r), CEMBED_EFORMAT);
    CHECK_CONTAINS(cembed_last_error(), "\"id\"");
    char deep[300];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 100);
    CHECK_INT(json_parse_record(deep, 300, 0, &r), CEMBED_EFORMAT);
    CHECK_CONTAINS(cembed_last_error(), "deeper");
    json_record_free(&r);
}

TEST(float_writer_round_trips) {
    float v[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.1f, 3.14159274f, 1e-38f, -3.4e38f, 1.17549435e-38f, 0.0123456789f};
    buf b = {0};
    CHECK_INT(json_write_floats(&b, v, 10), 0);
    char *p = b.ptr + 1;
    for (int i = 0; i < 10; i++) {
        char *end;
        float back = strtof(p, &end);
        CHECK(memcmp(&back, &v[i], 4) == 0 || (back == 0 && v[i] == 0));
        p = end + 1;
    }
    buf_free(&b);
}

/* json_format_float writes exactly what snprintf "%.9g" writes: random bit
 * patterns over every exponent, the floats around each power of ten (where
 * the decimal exponent and 9-digit rounding change), values whose tenth
 * digit is an exact tie (rounded to even) and the ends of the fast path's
 * range. bench/float_writer --check-all compares all 2^32 patterns. */
static int g9_matches(float x) {
    char want[32], got[32];
    snprintf(want, sizeof want, "%.9g", (double)x);
    const int n = json_format_float(got, x);
    got[n] = 0;
    if (strcmp(want, got) == 0) return 1;
    FAIL_AT("%a: printf %s, json_format_float %s", (double)x, want, got);
    return 0;
}

TEST(float_writer_is_printf_g9) {
    unsigned s = 12345;
    int ok = 1;
    for (int i = 0; i < 400000 && ok; i++) {
        s = s * 1103515245u + 12345u;
        uint32_t bits = (s >> 1) ^ ((uint32_t)i << 16) ^ (s << 31);
        float x;
        memcpy(&x, &bits, 4);
        if (isfinite(x)) ok = g9_matches(x);
    }
    for (int e = -45; e <= 38 && ok; e++) {
        float p10 = (float)pow(10, e);
        for (int d = -300; d <= 300 && ok; d++) {
            uint32_t bits;
            memcpy(&bits, &p10, 4);
            bits += (uint32_t)d;
            float x;
            memcpy(&x, &bits, 4);
            if (isfinite(x)) ok = g9_matches(x) && g9_matches(-x);
        }
    }
    /* exact ties at the tenth digit: integers 1,000,000,0d5 need 30 bits, so
     * take k / 2^j of small odd k (exact decimal expansions) */
    for (uint32_t k = 1; k < 20000 && ok; k += 2)
        for (int j = 0; j < 30 && ok; j++) ok = g9_matches(ldexpf((float)k, -j)) && g9_matches(ldexpf((float)k * 5, j));
    const float edges[] = {1e-19f, 9.99999e-20f, 1e9f, 999999936.0f, 999999999.0f, 0.5f, 1.5f, 2.5f, 123456789.5f,
                           0.1f, 1e-5f, 1e-4f, 9.9999999e-5f, 1.17549435e-38f, 1e-45f, 3.40282347e38f};
    for (size_t i = 0; i < sizeof edges / sizeof *edges && ok; i++) ok = g9_matches(edges[i]) && g9_matches(-edges[i]);
    CHECK(ok);
}

TEST(string_writer_escapes) {
    buf b = {0};
    CHECK_INT(json_write_string(&b, "a\"b\\c\n\x01", 7), 0);
    CHECK_STR(b.ptr, "\"a\\\"b\\\\c\\n\\u0001\"");
    buf_free(&b);
}

/* ---- memory bounds of request parsing (the governor reserves them) ---- */
#include "json/request.h"

/* Parses body and checks the counted allocator: the peak stays under
 * request_parse_bound and what the request keeps under request_held_bytes. */
static void check_parse_bound(const char *what, req_kind kind, buf *body) {
    req_limits lim = {.max_items = 10000000, .max_text_bytes = 1 << 30, .max_depth = 64};
    const size_t bound = request_parse_bound(body->ptr, body->len);
    const size_t live0 = base_alloc_live_bytes();
    base_alloc_peak_reset();
    request r;
    int rc = request_parse(kind, body->ptr, body->len, &lim, &r);
    const size_t peak = base_alloc_peak_reset() - live0, kept = base_alloc_live_bytes() - live0;
    CHECK_MSG(!rc, "%s: %s", what, cembed_last_error());
    CHECK_MSG(peak <= bound, "%s: parse peak %zu > bound %zu", what, peak, bound);
    CHECK_MSG(kept <= request_held_bytes(&r), "%s: kept %zu > held estimate %zu", what, kept, request_held_bytes(&r));
    if (getenv("CEMBED_TEST_VERBOSE"))
        fprintf(stderr, "  %s: body %zu, peak %zu, bound %zu (%.2fx), kept %zu, held %zu\n", what, body->len, peak,
                bound, (double)bound / (double)(peak ? peak : 1), kept, request_held_bytes(&r));
    request_free(&r);
    buf_free(body);
}

TEST(request_parse_memory_bounds) {
    buf b = {0};
    /* the seed's shape: 5,000 code chunks of about 1 KB with id and metadata */
    buf_printf(&b, "{\"batch_id\":\"b\",\"chunks\":[");
    for (int i = 0; i < 5000; i++) {
        buf_printf(&b, "%s{\"id\":\"src/f%d.c:1-40\",\"text\":\"", i ? "," : "", i);
        for (int k = 0; k < 1000 + i % 97; k++) buf_append(&b, k % 13 ? "x" : "\\n", k % 13 ? 1 : 2);
        buf_printf(&b, "\",\"metadata\":{\"path\":\"src/f%d.c\",\"lang\":\"c\",\"n\":%d}}", i, i);
    }
    buf_printf(&b, "]}");
    check_parse_bound("5000 chunk objects", REQ_EMBED, &b);
    /* many tiny strings: the parser's per-value cost dominates */
    buf_printf(&b, "{\"chunks\":[");
    for (int i = 0; i < 200000; i++) buf_printf(&b, "%s\"a\"", i ? "," : "");
    buf_printf(&b, "]}");
    check_parse_bound("200000 one-byte chunks", REQ_EMBED, &b);
    /* one large text, escapes included */
    buf_printf(&b, "{\"inputs\":\"");
    for (int i = 0; i < 1 << 20; i++) buf_append(&b, i % 7 ? "y" : "\\u00e9", i % 7 ? 1 : 6);
    buf_printf(&b, "\"}");
    check_parse_bound("one 1 MB text", REQ_EMBED, &b);
    /* OpenAI token ids */
    buf_printf(&b, "{\"input\":[");
    for (int i = 0; i < 400; i++) {
        buf_printf(&b, "%s[", i ? "," : "");
        for (int k = 0; k < 250; k++) buf_printf(&b, "%s%d", k ? "," : "", 1000 + k);
        buf_printf(&b, "]");
    }
    buf_printf(&b, "]}");
    check_parse_bound("400 token-id lists", REQ_OPENAI, &b);
    /* a large metadata object with numbers and nesting */
    buf_printf(&b, "{\"chunks\":[{\"text\":\"t\",\"metadata\":{");
    for (int i = 0; i < 30000; i++) buf_printf(&b, "%s\"k%d\":[%d,{\"a\":[1,2,[3]]},true,null]", i ? "," : "", i, i);
    buf_printf(&b, "}}]}");
    check_parse_bound("one large metadata object", REQ_EMBED, &b);
    /* numeric ids and short texts */
    buf_printf(&b, "{\"chunks\":[");
    for (int i = 0; i < 50000; i++) buf_printf(&b, "%s{\"id\":%d,\"content\":\"c%d\"}", i ? "," : "", i, i);
    buf_printf(&b, "]}");
    check_parse_bound("50000 small objects", REQ_EMBED, &b);
}

/* POST /: the body chooses the kind (TEI's root). */
TEST(request_auto_kind) {
    const req_limits lim = {.max_items = 100, .max_text_bytes = 1 << 20, .max_depth = 32};
    const struct {
        const char *body;
        req_kind kind;
        size_t items;
        int tei, v1;
    } cases[] = {
        {"{\"inputs\":\"a\"}", REQ_EMBED, 1, 1, 0},
        {"{\"inputs\":[\"a\",\"b\"],\"normalize\":false}", REQ_EMBED, 2, 1, 0},
        {"{\"chunks\":[\"a\"]}", REQ_EMBED, 1, 0, 0},
        {"{\"inputs\":{\"source_sentence\":\"s\",\"sentences\":[\"a\",\"b\"]}}", REQ_SIMILARITY, 3, 0, 0},
        {"{\"source_sentence\":\"s\",\"sentences\":[\"a\"]}", REQ_SIMILARITY, 2, 0, 0},
        {"{\"query\":\"q\",\"texts\":[\"a\",\"b\"]}", REQ_RERANK, 2, 0, 0},
        {"{\"query\":\"q\",\"documents\":[{\"text\":\"a\"}]}", REQ_RERANK, 1, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        request r;
        CHECK_INT(request_parse(REQ_AUTO, cases[i].body, strlen(cases[i].body), &lim, &r), 0);
        CHECK_INT(r.kind, cases[i].kind);
        CHECK_INT(r.n_items, cases[i].items);
        CHECK_INT(r.tei, cases[i].tei);
        CHECK_INT(r.rerank_v1, cases[i].v1);
        request_free(&r);
    }
    request r;
    const char *bad = "{\"source_sentence\":\"s\"}";   /* the field is named as it was sent: at the top */
    CHECK_INT(request_parse(REQ_AUTO, bad, strlen(bad), &lim, &r), CEMBED_EFORMAT);
    CHECK_INT(r.error, CEMBED_EFORMAT);
    CHECK_CONTAINS(cembed_last_error(), "sentences must be a list");
    CHECK(strstr(cembed_last_error(), "inputs.") == NULL);
    request_free(&r);
}
