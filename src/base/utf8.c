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
    /* each input byte becomes at most 3 output bytes (an invalid byte -> U+FFFD) */
    size_t cap;
    if (base_mul(len, 3, &cap) || cap + 1 < cap || buf_reserve(out, cap + 1)) return CEMBED_ENOMEM;
    char *o = out->ptr;
    size_t i = 0;
    while (i < len) {
        if ((unsigned char)s[i] < 0x80) {
            *o++ = s[i++];
            continue;
        }
        /* one sequence: a lead byte and its continuation bytes (at most 4) */
        size_t step = 1;
        while (step < 4 && i + step < len && ((unsigned char)s[i + step] & 0xC0) == 0x80) step++;
        uint32_t cp[4];
        size_t n = utf8_decode(s + i, step, cp);
        for (size_t c = 0; c < n; c++) o += utf8_encode(cp[c], o);
        i += step;
    }
    *o = 0;
    out->len = (size_t)(o - out->ptr);
    return 0;
}
