/* UTF-8 decoding with replacement (each maximal invalid subsequence becomes
 * one U+FFFD, as the WHATWG decoder does), encoding, and repair of byte
 * strings into valid UTF-8 before they reach a strict JSON parser. */
#include "base.h"

size_t utf8_decode(const char *s, size_t len, uint32_t *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) {
            out[n++] = c;
            i++;
            continue;
        }
        int need;
        uint32_t cp, min;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2, cp = c & 0x0F, min = 0x800;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;   /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3, cp = c & 0x07, min = 0x10000;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            out[n++] = 0xFFFD;
            i++;
            continue;
        }
        (void)min;
        size_t j = 1;
        for (; j <= (size_t)need; j++) {
            if (i + j >= len) break;
            unsigned b = p[i + j];
            unsigned l = j == 1 ? lo : 0x80, h = j == 1 ? hi : 0xBF;
            if (b < l || b > h) break;
            cp = (cp << 6) | (b & 0x3F);
        }
        if (j <= (size_t)need) { /* maximal subpart of an ill-formed sequence */
            out[n++] = 0xFFFD;
            i += j;
            continue;
        }
        out[n++] = cp;
        i += (size_t)need + 1;
    }
    return n;
}

int utf8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int utf8_sanitize(const char *s, size_t len, buf *out) {
    out->len = 0;
    if (buf_reserve(out, len + 1)) return CEMBED_ENOMEM;
    size_t i = 0;
    while (i < len) {
        /* fast path: ASCII */
        if ((unsigned char)s[i] < 0x80) {
            out->ptr[out->len++] = s[i++];
            continue;
        }
        size_t j = i;
        while (j < len && (unsigned char)s[j] >= 0x80) j++;
        /* decode the non-ASCII run, re-encode (invalid bytes -> U+FFFD) */
        for (size_t k = i; k < j;) {
            uint32_t cp[4];
            size_t step = 1;
            while (step < 4 && k + step < j && ((unsigned char)s[k + step] & 0xC0) == 0x80) step++;
            size_t n = utf8_decode(s + k, step, cp);
            for (size_t c = 0; c < n; c++) {
                char e[4];
                int w = utf8_encode(cp[c], e);
                if (buf_append(out, e, (size_t)w)) return CEMBED_ENOMEM;
            }
            k += step;
        }
        i = j;
    }
    if (buf_reserve(out, 1)) return CEMBED_ENOMEM;
    out->ptr[out->len] = 0;
    return 0;
}
