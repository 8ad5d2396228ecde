/* json: parsing of input records and the response writer.
 *
 * Input record (one JSON line of `cembed embed` / `cembed tokenize`):
 *   {"id": ANY?, "text": STRING}   ("content" is accepted for "text")
 *   STRING                         (id = the record's 0-based index)
 * Invalid UTF-8 in the line is replaced by U+FFFD before parsing, so such a
 * text is embedded rather than refused. Output writing is hand-rolled for
 * speed: floats are printed with 9 significant digits, which round-trips
 * every float exactly.
 */
#ifndef CEMBED_JSON_H
#define CEMBED_JSON_H

#include "base/base.h"

#define JSON_MAX_DEPTH 64

typedef struct json_record {
    buf id;       /* the id as compact JSON text */
    buf text;     /* UTF-8 text, NUL-terminated */
} json_record;

/* Parses one record line[0..len). index is the default id. OUT: *r (its
 * buffers are reused across calls). Fails with EFORMAT (message says what
 * is wrong, without the location: callers add file and line) or ENOMEM. */
int json_parse_record(const char *line, size_t len, size_t index, json_record *r);
void json_record_free(json_record *r);

/* 1 if the JSON text s[0..n) nests arrays and objects at most max deep
 * (strings are skipped); checked before parsing, so a deep body costs one
 * scan and no parser recursion. */
int json_depth_within(const char *s, size_t n, int max);

/* What a parse of s[0..n) will hold, from one scan: an upper bound of the
 * values (strings, keys, numbers, literals, containers), the bytes inside
 * strings, and the deepest nesting. Used to reserve memory before parsing. */
typedef struct json_shape {
    size_t values, string_bytes, longest_string;
    int depth;
} json_shape;
void json_scan(const char *s, size_t n, json_shape *out);

/* One finite float as "%.9g" writes it, into p (room for 17 bytes: at most
 * 16 and, on the snprintf path, a NUL); returns the bytes written, no NUL
 * counted. Cannot fail. */
int json_format_float(char *p, float x);
/* Appends floats as a JSON array: [f,f,...]. */
int json_write_floats(buf *b, const float *v, size_t n);
/* Appends ints as a JSON array. */
int json_write_ints(buf *b, const int32_t *v, size_t n);
/* Appends s as a JSON string literal with escapes; bytes that are not
 * UTF-8 become U+FFFD (valid JSON whatever s holds). */
int json_write_string(buf *b, const char *s, size_t n);



/* Appends the floats' little-endian bytes in base64 (RFC 4648), quoted. */
int json_write_base64_floats(buf *b, const float *v, size_t n);
#endif
