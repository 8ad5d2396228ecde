/* The vocabulary: token bytes -> id in an open-addressing hash (FNV-1a,
 * linear probing, at most half full), and id -> bytes for decoding.
 *
 * The table is sized for every id at vocab_init, so tokens set after a
 * build (added tokens) go straight into it: a second vocab_build then costs
 * nothing, unless an id was set twice (its old string would still find it),
 * which marks the table stale for a full rebuild. Either way a string finds
 * the highest id it was set under. */
#include <string.h>

#include "tok_internal.h"

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

int vocab_init(vocab *v, size_t n_ids) {
    memset(v, 0, sizeof *v);
    v->n_ids = n_ids;
    v->off = base_calloc(n_ids ? n_ids : 1, sizeof *v->off);
    v->len = base_calloc(n_ids ? n_ids : 1, sizeof *v->len);
    if (!v->off || !v->len) {
        vocab_free(v);
        return base_err(CEMBED_ENOMEM, "vocabulary: out of memory");
    }
    for (size_t i = 0; i < n_ids; i++) v->off[i] = UINT32_MAX;
    return 0;
}

static void insert(vocab *v, int32_t id);

int vocab_set(vocab *v, str s, int32_t id) {
    CE_ASSERT(id >= 0 && (size_t)id < v->n_ids);
    const int again = v->off[id] != UINT32_MAX;
    if (v->strings_len + s.len > UINT32_MAX) return base_err(CEMBED_ELIMIT, "vocabulary: over 4 GiB of tokens");
    if (v->strings_cap - v->strings_len < s.len) {
        size_t cap = v->strings_cap ? v->strings_cap * 2 : 1 << 16;
        while (cap - v->strings_len < s.len) cap *= 2;
        char *p = base_realloc(v->strings, cap);
        if (!p) return base_err(CEMBED_ENOMEM, "vocabulary: out of memory");
        v->strings = p;
        v->strings_cap = cap;
    }
    if (s.len) memcpy(v->strings + v->strings_len, s.ptr, s.len);
    v->off[id] = (uint32_t)v->strings_len;
    v->len[id] = (uint32_t)s.len;
    v->strings_len += s.len;
    if (v->slots && again) v->stale = 1;
    else if (v->slots && !v->stale) insert(v, id);
    return 0;
}

/* Puts id into the table; a string already there keeps the higher id. */
static void insert(vocab *v, int32_t id) {
    const char *s = v->strings + v->off[id];
    const size_t n = v->len[id];
    for (size_t i = hash_bytes(s, n) & v->mask;; i = (i + 1) & v->mask) {
        const int32_t o = v->slots[i];
        if (o < 0) {
            v->slots[i] = id;
            return;
        }
        if (v->len[o] == n && memcmp(v->strings + v->off[o], s, n) == 0) {
            v->slots[i] = CE_MAX(o, id);   /* a duplicate string */
            v->n_dups++;
            return;
        }
    }
}

int vocab_build(vocab *v) {
    if (v->slots && !v->stale) return 0;   /* every set since the last build is in */
    base_free(v->slots);
    v->slots = NULL;
    size_t size = 16;
    while (size < v->n_ids * 2) size *= 2;
    v->slots = base_malloc(size * sizeof *v->slots);
    if (!v->slots) return base_err(CEMBED_ENOMEM, "vocabulary: out of memory");
    memset(v->slots, 0xff, size * sizeof *v->slots);
    v->mask = size - 1;
    v->n_dups = 0;
    v->stale = 0;
    for (size_t id = 0; id < v->n_ids; id++)
        if (v->off[id] != UINT32_MAX) insert(v, (int32_t)id);
    return 0;
}

int32_t vocab_get(const vocab *v, const char *s, size_t n) {
    size_t i = hash_bytes(s, n) & v->mask;
    for (;; i = (i + 1) & v->mask) {
        int32_t o = v->slots[i];
        if (o < 0) return -1;
        if (v->len[o] == n && memcmp(v->strings + v->off[o], s, n) == 0) return o;
    }
}

int vocab_equal(const vocab *a, const vocab *b) {
    if (a->n_ids != b->n_ids) return 0;
    for (size_t id = 0; id < a->n_ids; id++) {
        const int set = a->off[id] != UINT32_MAX;
        if (set != (b->off[id] != UINT32_MAX)) return 0;
        if (set && (a->len[id] != b->len[id] || memcmp(a->strings + a->off[id], b->strings + b->off[id], a->len[id])))
            return 0;
    }
    return 1;
}

void vocab_free(vocab *v) {
    base_free(v->strings);
    base_free(v->off);
    base_free(v->len);
    base_free(v->slots);
    memset(v, 0, sizeof *v);
}
