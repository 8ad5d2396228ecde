/* Added tokens as Hugging Face's AddedVocabulary finds them: a trie over
 * code points (edges in one open-addressing hash keyed by (node, char))
 * gives the leftmost-longest non-overlapping matches; then each match is
 * filtered and widened by its token's flags exactly as find_matches does:
 * single_word drops a match touching a word character (\w) on either side,
 * lstrip takes the whitespace before it (not past the previous match), and
 * rstrip the whitespace after it. */
#include <string.h>

#include "regex.h"
#include "tok_internal.h"

typedef struct edge {
    uint64_t key;   /* node << 32 | char; UINT64_MAX empty */
    int32_t child;
} edge;

struct added_set {
    edge *edges;
    size_t mask;
    int32_t *term;   /* node -> token index, -1 */
    size_t n_nodes;
};

static uint64_t mix(uint64_t k) {
    k ^= k >> 31;
    k *= 0x9E3779B97F4A7C15ull;
    k ^= k >> 29;
    return k;
}

static int32_t child(const added_set *a, int32_t node, uint32_t c) {
    uint64_t key = (uint64_t)(uint32_t)node << 32 | c;
    for (size_t i = mix(key) & a->mask;; i = (i + 1) & a->mask) {
        if (a->edges[i].key == key) return a->edges[i].child;
        if (a->edges[i].key == UINT64_MAX) return -1;
    }
}

static int32_t child_add(added_set *a, int32_t node, uint32_t c) {
    uint64_t key = (uint64_t)(uint32_t)node << 32 | c;
    for (size_t i = mix(key) & a->mask;; i = (i + 1) & a->mask) {
        if (a->edges[i].key == key) return a->edges[i].child;
        if (a->edges[i].key == UINT64_MAX) {
            a->edges[i].key = key;
            a->term[a->n_nodes] = -1;
            return a->edges[i].child = (int32_t)a->n_nodes++;
        }
    }
}

void added_free(added_set *a) {
    if (!a) return;
    base_free(a->edges);
    base_free(a->term);
    base_free(a);
}

int added_build(const added_tok *toks, size_t n, int normalized, added_set **out) {
    *out = NULL;
    size_t chars = 0;
    for (size_t k = 0; k < n; k++)
        if (toks[k].normalized == normalized) chars += toks[k].n;
    if (!chars) return 0;
    added_set *a = base_calloc(1, sizeof *a);
    size_t size = 16;
    while (size < chars * 2) size *= 2;
    if (a) a->edges = base_malloc(size * sizeof *a->edges), a->term = base_malloc((chars + 1) * sizeof *a->term);
    if (!a || !a->edges || !a->term) {
        added_free(a);
        return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    }
    memset(a->edges, 0xff, size * sizeof *a->edges);
    a->mask = size - 1;
    a->term[0] = -1;
    a->n_nodes = 1;
    for (size_t k = 0; k < n; k++) {
        if (toks[k].normalized != normalized || !toks[k].n) continue;
        int32_t node = 0;
        for (size_t i = 0; i < toks[k].n; i++) node = child_add(a, node, toks[k].cps[i]);
        a->term[node] = (int32_t)k;   /* the same content twice: the later token wins */
    }
    *out = a;
    return 0;
}

/* Longest token starting at s[i]: its index, *end set; -1 if none. */
static int longest_at(const added_set *a, const uint32_t *s, size_t n, size_t i, size_t *end) {
    int32_t node = 0, best = -1;
    for (size_t j = i; j < n; j++) {
        if ((node = child(a, node, s[j])) < 0) break;
        if (a->term[node] >= 0) best = a->term[node], *end = j + 1;
    }
    return best;
}

int added_split(const added_set *a, const added_tok *toks, const uint32_t *s, size_t n, spanvec *sp) {
    sp->n = 0;
    size_t start_offset = 0, i = 0;
    while (a && i < n) {
        size_t end = 0;
        int k = longest_at(a, s, n, i, &end);
        if (k < 0) {
            i++;
            continue;
        }
        size_t start = i, stop = end;
        i = end;   /* the search goes on after this match, kept or not */
        const added_tok *t = &toks[k];
        if (t->single_word && ((start > 0 && tok_uni_word(s[start - 1])) || (stop < n && tok_uni_word(s[stop]))))
            continue;
        if (t->lstrip) {
            size_t ns = start;
            while (ns > 0 && tok_uni_space(s[ns - 1])) ns--;
            start = ns > start_offset ? ns : start_offset;
        }
        if (t->rstrip)
            while (stop < n && tok_uni_space(s[stop])) stop++;
        if (start_offset < start && span_push(sp, (uint32_t)start_offset, (uint32_t)(start - start_offset), 0))
            return CEMBED_ENOMEM;
        if (span_push(sp, (uint32_t)start, (uint32_t)(stop - start), (uint32_t)k + 1)) return CEMBED_ENOMEM;
        start_offset = stop;
    }
    if (start_offset < n && span_push(sp, (uint32_t)start_offset, (uint32_t)(n - start_offset), 0))
        return CEMBED_ENOMEM;
    return 0;
}
