/* Input records; see json.h. Parsed with jansson from (ptr, len). */
#include <jansson.h>
#include <string.h>

#include "json.h"

static _Thread_local buf clean;

void json_scan(const char *s, size_t n, json_shape *out) {
    *out = (json_shape){0};
    int d = 0, in_str = 0;
    char prev = ',';   /* the last structural character outside strings; 'v' after a value */
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = 0;
                prev = 'v';
                out->string_bytes += i - start;
                out->longest_string = CE_MAX(out->longest_string, i - start);
            }
        } else if (c == '"') {
            in_str = 1;
            start = i + 1;
            out->values++;
        } else if (c == '[' || c == '{') {
            out->values++;
            prev = c;
            if (++d > out->depth) out->depth = d;
        } else if (c == ']' || c == '}' || c == ',' || c == ':') {
            if (c == ']' || c == '}') d--;
            prev = c;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && prev != 'v') {
            out->values++;   /* a number or literal starts */
            prev = 'v';
        }
    }
    if (in_str) { /* unterminated: the parser will refuse it, after reading it */
        out->string_bytes += n - start;
        out->longest_string = CE_MAX(out->longest_string, n - start);
    }
}

int json_depth_within(const char *s, size_t n, int max) {
    json_shape sh;
    json_scan(s, n, &sh);
    return sh.depth <= max;
}

int json_parse_record(const char *line, size_t len, size_t index, json_record *r) {
    r->id.len = 0;
    r->text.len = 0;
    if (utf8_sanitize(line, len, &clean)) return base_err(CEMBED_ENOMEM, "out of memory");
    if (!json_depth_within(clean.ptr, clean.len, JSON_MAX_DEPTH))
        return base_err(CEMBED_EFORMAT, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
    json_error_t e;
    json_t *v = json_loadb(clean.ptr, clean.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v) return base_err(CEMBED_EFORMAT, "not valid JSON: %s (column %d)", e.text, e.column);
    int rc = 0;
    json_t *text = NULL, *id = NULL;
    if (json_is_string(v)) {
        text = v;
    } else if (json_is_object(v)) {
        text = json_object_get(v, "text");
        if (!text) text = json_object_get(v, "content");
        id = json_object_get(v, "id");
        if (!text) {
            rc = base_err(CEMBED_EFORMAT, "missing \"text\"");
            goto done;
        }
        if (!json_is_string(text)) {
            rc = base_err(CEMBED_EFORMAT, "\"text\" must be a string");
            goto done;
        }
        if (id && !json_is_string(id) && !json_is_integer(id)) {
            rc = base_err(CEMBED_EFORMAT, "\"id\" must be a string or an integer");
            goto done;
        }
    } else {
        rc = base_err(CEMBED_EFORMAT, "a record must be a JSON object with \"text\" or a string");
        goto done;
    }
    if (buf_append(&r->text, json_string_value(text), json_string_length(text))) goto nomem;
    if (id && json_is_string(id)) {
        if (json_write_string(&r->id, json_string_value(id), json_string_length(id))) goto nomem;
    } else if (id) {
        if (buf_printf(&r->id, "%lld", (long long)json_integer_value(id))) goto nomem;
    } else {
        if (buf_printf(&r->id, "%zu", index)) goto nomem;
    }
done:
    json_decref(v);
    return rc;
nomem:
    json_decref(v);
    return base_err(CEMBED_ENOMEM, "out of memory");
}

void json_record_free(json_record *r) {
    buf_free(&r->id);
    buf_free(&r->text);
}
