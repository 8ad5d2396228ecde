/* The response writer: JSON arrays of floats and ints, string literals. */
#include <string.h>

#include "json.h"

int json_write_floats(buf *b, const float *v, size_t n) {
    /* at most 16 bytes a float ("-1.23456789e-38,") */
    if (buf_reserve(b, n * 17 + 3)) return CEMBED_ENOMEM;
    char *p = b->ptr + b->len;
    *p++ = '[';
    for (size_t i = 0; i < n; i++) {
        if (i) *p++ = ',';
        float x = v[i];
        if (x != x || x - x != 0) { /* NaN or inf: not JSON */
            memcpy(p, "null", 4);
            p += 4;
            continue;
        }
        p += snprintf(p, 17, "%.9g", (double)x);
    }
    *p++ = ']';
    *p = 0;
    b->len = (size_t)(p - b->ptr);
    return 0;
}

int json_write_ints(buf *b, const int32_t *v, size_t n) {
    if (buf_reserve(b, n * 12 + 3)) return CEMBED_ENOMEM;
    char *p = b->ptr + b->len;
    *p++ = '[';
    for (size_t i = 0; i < n; i++) {
        if (i) *p++ = ',';
        p += snprintf(p, 12, "%d", (int)v[i]);
    }
    *p++ = ']';
    *p = 0;
    b->len = (size_t)(p - b->ptr);
    return 0;
}

static int write_string_utf8(buf *b, const char *s, size_t n);

int json_write_string(buf *b, const char *s, size_t n) {
    /* JSON text is UTF-8: bytes that are not (a file name on a Linux disk
     * may hold any) are written as U+FFFD, so the output always parses */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) {
            buf clean = {0};
            if (utf8_sanitize(s, n, &clean)) return CEMBED_ENOMEM;
            const int rc = write_string_utf8(b, clean.ptr, clean.len);
            buf_free(&clean);
            return rc;
        }
    return write_string_utf8(b, s, n);
}

static int write_string_utf8(buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buf_reserve(b, n * 6 + 3)) return CEMBED_ENOMEM;
    char *p = b->ptr + b->len;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            *p++ = '\\';
            switch (c) {
            case '\n': *p++ = 'n'; break;
            case '\r': *p++ = 'r'; break;
            case '\t': *p++ = 't'; break;
            default:
                *p++ = 'u', *p++ = '0', *p++ = '0', *p++ = hex[c >> 4], *p++ = hex[c & 15];
            }
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    *p = 0;
    b->len = (size_t)(p - b->ptr);
    return 0;
}

int json_write_base64_floats(buf *b, const float *v, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const size_t bytes = n * 4;
    if (buf_reserve(b, (bytes + 2) / 3 * 4 + 3)) return CEMBED_ENOMEM;
    const unsigned char *s = (const unsigned char *)v;   /* x86 and every target cembed builds on is little-endian */
    char *p = b->ptr + b->len;
    *p++ = '"';
    size_t i = 0;
    for (; i + 3 <= bytes; i += 3) {
        uint32_t w = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *p++ = tab[w >> 18], *p++ = tab[(w >> 12) & 63], *p++ = tab[(w >> 6) & 63], *p++ = tab[w & 63];
    }
    if (i < bytes) {
        uint32_t w = (uint32_t)s[i] << 16 | (i + 1 < bytes ? (uint32_t)s[i + 1] << 8 : 0);
        *p++ = tab[w >> 18], *p++ = tab[(w >> 12) & 63];
        *p++ = i + 1 < bytes ? tab[(w >> 6) & 63] : '=';
        *p++ = '=';
    }
    *p++ = '"';
    *p = 0;
    b->len = (size_t)(p - b->ptr);
    return 0;
}
