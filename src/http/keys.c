/* API keys; see keys.h. */
#include <string.h>

#include "http/keys.h"

#define KEY_MAX 512

void keys_free(keyset *k) {
    for (size_t i = 0; i < k->n; i++) {
        explicit_bzero(k->keys[i], strlen(k->keys[i]));
        base_free(k->keys[i]);
    }
    base_free(k->keys);
    k->n = 0;
    k->keys = NULL;
}

int keys_add(keyset *k, const char *text, size_t len, int commas) {
    const size_t n0 = k->n;
    size_t line = 1;
    for (size_t p = 0; p < len;) {
        size_t e = p;
        while (e < len && text[e] != '\n' && !(commas && text[e] == ',')) e++;
        size_t a = p, b = e;
        while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
        const int skip = a == b || text[a] == '#';
        int bad = !skip && b - a > KEY_MAX;
        for (size_t i = a; !skip && !bad && i < b; i++) bad = (unsigned char)text[i] <= 0x20 || (unsigned char)text[i] >= 0x7f;
        if (bad) {
            while (k->n > n0) base_free(k->keys[--k->n]);
            return base_err(CEMBED_EFORMAT, "API key %s %zu: a key is 1 to %d printable characters without spaces",
                            commas ? "item" : "line", line, KEY_MAX);
        }
        if (!skip) {
            char **keys = base_realloc(k->keys, (k->n + 1) * sizeof *keys);
            char *key = keys ? base_strndup(text + a, b - a) : NULL;
            if (keys) k->keys = keys;
            if (!key) {
                while (k->n > n0) base_free(k->keys[--k->n]);
                return base_err(CEMBED_ENOMEM, "out of memory");
            }
            k->keys[k->n++] = key;
        }
        line++;
        p = e + 1;
    }
    return 0;
}

int keys_match(const keyset *k, const char *key, size_t len) {
    unsigned ok = 0;
    for (size_t i = 0; i < k->n; i++) {
        const char *s = k->keys[i];
        const size_t sl = strlen(s);
        /* every byte of the longest key is compared, whatever matched before */
        unsigned diff = (unsigned)(sl ^ len);
        for (size_t t = 0; t < KEY_MAX; t++) {
            const unsigned char x = t < sl ? (unsigned char)s[t] : 0, y = t < len ? (unsigned char)key[t] : 0;
            diff |= x ^ y;
        }
        ok |= diff == 0;
    }
    return (int)ok & (len <= KEY_MAX);
}
