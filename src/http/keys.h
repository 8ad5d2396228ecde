/* keys: the API keys a server accepts (--api-key, EMBEDDING_API_KEY, a key
 * file of one key per line), compared in constant time. */
#ifndef CEMBED_HTTP_KEYS_H
#define CEMBED_HTTP_KEYS_H

#include "base/base.h"

typedef struct keyset {
    size_t n;
    char **keys;
} keyset;

/* Adds the keys of text[0..len): one per line (or comma-separated when
 * commas = 1); blank lines and lines starting with # are skipped, spaces
 * around a key trimmed. A key is 1 to 512 printable ASCII characters
 * without spaces. Returns 0, or EFORMAT naming the line (never the key) or
 * ENOMEM; on failure the set is as it was. */
int keys_add(keyset *k, const char *text, size_t len, int commas);
void keys_free(keyset *k);
/* 1 if key[0..len) is one of the set. Takes the same time whichever key
 * matches, or none, and however much of one matches. */
int keys_match(const keyset *k, const char *key, size_t len);

#endif
