/* The response writer: JSON arrays of floats and ints, string literals.
 *
 * Floats are written as printf's "%.9g" writes them (9 significant digits:
 * every float reads back exactly), byte for byte, but without printf for
 * the values vectors hold: a float is m x 2^e (m < 2^24), so for
 * 1e-19 <= |x| < 1e9 the 9 digits are y = m x 5^k x 2^(k + e) with
 * k = 8 - E (E the decimal exponent, 0 <= k <= 27), and m x 5^k < 2^88
 * fits a 128-bit integer: the digits and their rounding (to nearest, ties
 * to even, as glibc rounds) are exact integer arithmetic. Other values go
 * to snprintf. glibc's printf took 80% of a cached `embed DIR` rerun's
 * writer thread (43,670 vectors of 384 floats). */
#include <math.h>
#include <string.h>

#include "json.h"

/* The 9 significant digits of x != 0 (finite) into *q (1e8 <= q < 1e9) and
 * its decimal exponent into *exp10, exactly as correctly rounded printf
 * would; 0, or -1 outside the range this computes (the caller uses
 * snprintf). */
static int digits9(float x, uint32_t *q, int *exp10) {
    int e2;
    const float f = frexpf(fabsf(x), &e2);             /* |x| = f x 2^e2, 0.5 <= f < 1 */
    const uint64_t m = (uint64_t)ldexpf(f, 24);        /* |x| = m x 2^(e2 - 24), exact */
    int E = (int)floor((double)(e2 - 1) * 0.30102999566398120);   /* within one of floor(log10 |x|) */
    for (int tries = 0; tries < 3; tries++) {
        const int k = 8 - E;
        if (k < 0 || k > 27) return -1;
        unsigned __int128 n = m;
        for (int i = 0; i < k; i++) n *= 5;
        const int s = -(k + e2 - 24);                  /* y = n / 2^s (or n x 2^-s) */
        unsigned __int128 y;
        int up = 0;
        if (s <= 0) {
            if (-s > 40) return -1;
            y = n << -s;
        } else {
            if (s > 120) return -1;
            y = n >> s;
            const unsigned __int128 rest = n - (y << s), half = (unsigned __int128)1 << (s - 1);
            up = rest > half || (rest == half && (y & 1));
        }
        if (y < 100000000u) {   /* E was one too high */
            E--;
            continue;
        }
        if (y >= 1000000000u) {   /* one too low */
            E++;
            continue;
        }
        uint32_t v = (uint32_t)y + (uint32_t)up;
        if (v == 1000000000u) {   /* 999999999.5 rounded up: 1.00000000 x 10^(E + 1) */
            v = 100000000u;
            E++;
        }
        *q = v;
        *exp10 = E;
        return 0;
    }
    return -1;
}

/* x as "%.9g" writes it into p; returns the bytes written (at most 16). */
static int write_g9(char *p, float x) {
    uint32_t q;
    int X;
    if (x == 0 || digits9(x, &q, &X)) return snprintf(p, 17, "%.9g", (double)x);
    char d[9];
    for (int i = 8; i >= 0; i--, q /= 10) d[i] = (char)('0' + q % 10);
    int nd = 9;
    while (nd > 1 && d[nd - 1] == '0') nd--;   /* %g drops trailing zeros */
    char *o = p;
    if (x < 0) *o++ = '-';
    if (X >= -4 && X < 9) {
        if (X >= 0) {   /* d[0..X] . d[X+1..nd) */
            for (int i = 0; i <= X; i++) *o++ = i < nd ? d[i] : '0';
            if (nd > X + 1) *o++ = '.';
            for (int i = X + 1; i < nd; i++) *o++ = d[i];
        } else {        /* 0.000ddd */
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -X - 1; i++) *o++ = '0';
            for (int i = 0; i < nd; i++) *o++ = d[i];
        }
    } else {            /* d.ddde-XX */
        *o++ = d[0];
        if (nd > 1) *o++ = '.';
        for (int i = 1; i < nd; i++) *o++ = d[i];
        *o++ = 'e';
        *o++ = X < 0 ? '-' : '+';
        const int a = X < 0 ? -X : X;
        if (a >= 100) *o++ = (char)('0' + a / 100);
        *o++ = (char)('0' + a / 10 % 10);
        *o++ = (char)('0' + a % 10);
    }
    return (int)(o - p);
}

int json_format_float(char *p, float x) { return write_g9(p, x); }

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
        p += write_g9(p, x);
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
