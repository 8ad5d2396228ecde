/* Unit tests of src/json: input records and the writers. */
#include <stdlib.h>

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

TEST(string_writer_escapes) {
    buf b = {0};
    CHECK_INT(json_write_string(&b, "a\"b\\c\n\x01", 7), 0);
    CHECK_STR(b.ptr, "\"a\\\"b\\\\c\\n\\u0001\"");
    buf_free(&b);
}
