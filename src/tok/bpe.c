/* The BPE model of tokenizer.json, as Hugging Face's BPE::merge_word and
 * Word::merge_all run it: a word starts as one symbol per character (with
 * the continuing-subword prefix on all but the first and the end-of-word
 * suffix on the last; unknown characters become <0xNN> byte tokens with
 * byte_fallback, else unk, fused when fuse_unk), then the adjacent pair of
 * lowest merge rank (leftmost on ties) is merged until none is left.
 *
 * Merges live in an open-addressing hash keyed by the pair of ids, giving
 * (rank, merged id). merge_all's priority queue is a binary heap of
 * (rank, position) with stale entries skipped, as in the original. */
#include <jansson.h>
#include <string.h>

#include "tok_internal.h"

typedef struct merge_slot {
    uint64_t key;   /* a << 32 | b, UINT64_MAX empty */
    uint32_t rank;
    int32_t id;
} merge_slot;

struct bpe {
    merge_slot *slots;
    size_t mask, n_merges;
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;          /* -1: no unk token, unknown characters vanish */
    char prefix[32], suffix[32];
    size_t prefix_len, suffix_len;
    int32_t byte_ids[256];   /* <0xNN>, -1 absent */
    int32_t *char_ids;       /* code point < 65536 -> id of its one-char token (no prefix/suffix), -2 unknown */
};

typedef struct sym {
    int32_t id, prev, next;
    uint32_t len;   /* 0: merged away */
} sym;

typedef struct hent {
    uint32_t rank, pos;
    int32_t id;
} hent;

typedef struct bpe_scratch {
    sym *syms;
    hent *heap;
    size_t cap;
    buf bytes;
} bpe_scratch;

static _Thread_local bpe_scratch tl_bpe;

void bpe_thread_release(void) {
    base_free(tl_bpe.syms);
    base_free(tl_bpe.heap);
    buf_free(&tl_bpe.bytes);
    memset(&tl_bpe, 0, sizeof tl_bpe);
}

int tok_push_id(tok_ids *o, int32_t id) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        int32_t *p = base_realloc(o->ids, cap * sizeof *p);
        if (!p) return CEMBED_ENOMEM;
        o->ids = p;
        o->cap = cap;
    }
    o->ids[o->n++] = id;
    return 0;
}

static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static const merge_slot *merge_get(const bpe *b, int32_t x, int32_t y) {
    uint64_t key = (uint64_t)(uint32_t)x << 32 | (uint32_t)y;
    for (size_t i = mix(key) & b->mask;; i = (i + 1) & b->mask) {
        const merge_slot *s = &b->slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
}

static void merge_put(bpe *b, int32_t x, int32_t y, uint32_t rank, int32_t id) {
    uint64_t key = (uint64_t)(uint32_t)x << 32 | (uint32_t)y;
    for (size_t i = mix(key) & b->mask;; i = (i + 1) & b->mask) {
        merge_slot *s = &b->slots[i];
        if (s->key == key || s->key == UINT64_MAX) {   /* a repeated pair: the later line wins */
            s->key = key;
            s->rank = rank;
            s->id = id;
            return;
        }
    }
}

int bpe_new(bpe **out) {
    bpe *b = base_calloc(1, sizeof *b);
    if (!b) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    b->unk_id = -1;
    *out = b;
    return 0;
}

void bpe_free(bpe *b) {
    if (!b) return;
    base_free(b->slots);
    base_free(b->char_ids);
    base_free(b);
}

static int opt_str(json_t *model, const char *key, char *dst, size_t cap, size_t *len) {
    json_t *v = json_object_get(model, key);
    *len = 0;
    dst[0] = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return base_err(CEMBED_EFORMAT, "tokenizer.json: model.%s must be a short string", key);
    *len = json_string_length(v);
    memcpy(dst, json_string_value(v), *len + 1);
    return 0;
}

/* One merge (a, b) at rank r. */
static int add_merge(bpe *b, const vocab *v, const char *x, size_t xl, const char *y, size_t yl, uint32_t r) {
    int32_t ix = vocab_get(v, x, xl), iy = vocab_get(v, y, yl);
    if (ix < 0 || iy < 0 || yl < b->prefix_len)
        return base_err(CEMBED_EFORMAT, "tokenizer.json: merge %u names a token not in the vocabulary", r);
    char stack[256], *m = xl + yl <= sizeof stack ? stack : base_malloc(xl + yl);
    if (!m) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    memcpy(m, x, xl);
    memcpy(m + xl, y + b->prefix_len, yl - b->prefix_len);
    int32_t id = vocab_get(v, m, xl + yl - b->prefix_len);
    if (m != stack) base_free(m);
    if (id < 0) return base_err(CEMBED_EFORMAT, "tokenizer.json: merge %u makes a token not in the vocabulary", r);
    merge_put(b, ix, iy, r, id);
    return 0;
}

/* The merge table, empty, sized for n merges. */
static int merges_init(bpe *b, size_t n) {
    size_t size = 16;
    while (size < n * 2) size *= 2;
    b->slots = base_malloc(size * sizeof *b->slots);
    if (!b->slots) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    memset(b->slots, 0xff, size * sizeof *b->slots);
    b->mask = size - 1;
    return 0;
}

/* The merges as tok_scan_json read them: pairs of entries, in rank order. */
static int load_scanned_merges(bpe *b, const vocab *v, const tok_scan_list *l) {
    int rc = merges_init(b, l->n / 2);
    for (size_t i = 0; i + 1 < l->n && !rc; i += 2)
        rc = add_merge(b, v, l->bytes + l->off[i], l->len[i], l->bytes + l->off[i + 1], l->len[i + 1], (uint32_t)(i / 2));
    b->n_merges = (uint32_t)(l->n / 2);
    return rc;
}

static int load_merges(bpe *b, const vocab *v, json_t *merges) {
    size_t i;
    int rc0 = merges_init(b, json_array_size(merges));
    if (rc0) return rc0;
    json_t *m;
    uint32_t rank = 0;
    json_array_foreach(merges, i, m) {
        int rc;
        if (json_is_string(m)) {
            const char *s = json_string_value(m), *sp;
            size_t len = json_string_length(m);
            if (len >= 8 && memcmp(s, "#version", 8) == 0) continue;
            sp = memchr(s, ' ', len);
            if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s)))
                return base_err(CEMBED_EFORMAT, "tokenizer.json: merge %zu is not \"a b\"", i);
            rc = add_merge(b, v, s, (size_t)(sp - s), sp + 1, len - (size_t)(sp + 1 - s), rank);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            json_t *x = json_array_get(m, 0), *y = json_array_get(m, 1);
            rc = add_merge(b, v, json_string_value(x), json_string_length(x), json_string_value(y),
                           json_string_length(y), rank);
        } else {
            return base_err(CEMBED_EFORMAT, "tokenizer.json: merge %zu is neither \"a b\" nor [a, b]", i);
        }
        if (rc) return rc;
        rank++;
    }
    b->n_merges = rank;
    return 0;
}

int bpe_load(bpe *b, const vocab *v, json_t *model, const tok_scan_list *scanned) {
    int rc;
    if ((rc = opt_str(model, "continuing_subword_prefix", b->prefix, sizeof b->prefix, &b->prefix_len)) ||
        (rc = opt_str(model, "end_of_word_suffix", b->suffix, sizeof b->suffix, &b->suffix_len)))
        return rc;
    b->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    b->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
    b->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
        return base_err(CEMBED_EMODEL, "tokenizer.json: BPE dropout is not supported");
    json_t *unk = json_object_get(model, "unk_token");
    if (json_is_string(unk)) {
        b->unk_id = vocab_get(v, json_string_value(unk), json_string_length(unk));
        if (b->unk_id < 0) return base_err(CEMBED_EFORMAT, "tokenizer.json: BPE unk_token is not in the vocabulary");
    }
    for (int x = 0; x < 256; x++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", x);
        b->byte_ids[x] = vocab_get(v, s, 6);
    }
    json_t *merges = json_object_get(model, "merges");
    if (merges && !json_is_array(merges)) return base_err(CEMBED_EFORMAT, "tokenizer.json: model.merges must be an array");
    if ((rc = scanned ? load_scanned_merges(b, v, scanned) : load_merges(b, v, merges))) return rc;
    b->char_ids = base_malloc(65536 * sizeof *b->char_ids);
    if (!b->char_ids) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    for (uint32_t c = 0; c < 65536; c++) {
        char u[4];
        int k = (c >= 0xD800 && c < 0xE000) ? 0 : utf8_encode(c, u);
        int32_t id = k ? vocab_get(v, u, (size_t)k) : -1;
        b->char_ids[c] = id >= 0 ? id : -2;
    }
    return 0;
}

/* ---- encoding ---- */

static int scratch_reserve(size_t n) {
    bpe_scratch *s = &tl_bpe;
    if (s->cap >= n) return 0;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n) cap *= 2;
    sym *ns = base_realloc(s->syms, cap * sizeof *ns);
    if (ns) s->syms = ns;
    hent *nh = base_realloc(s->heap, cap * 2 * sizeof *nh);
    if (nh) s->heap = nh;
    if (!ns || !nh) return CEMBED_ENOMEM;
    s->cap = cap;
    return 0;
}

static int hless(hent a, hent b) { return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos; }

static void hpush(hent *h, size_t *n, hent e) {
    size_t i = (*n)++;
    while (i > 0 && hless(e, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

static hent hpop(hent *h, size_t *n) {
    hent top = h[0], e = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && hless(h[c + 1], h[c])) c++;
        if (!hless(h[c], e)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
    return top;
}

static void merge_all(const bpe *b, sym *s, size_t n) {
    hent *h = tl_bpe.heap;
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        const merge_slot *m = merge_get(b, s[i].id, s[i + 1].id);
        if (m) hpush(h, &hn, (hent){m->rank, (uint32_t)i, m->id});
    }
    while (hn) {
        hent top = hpop(h, &hn);
        sym *cur = &s[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        sym *right = &s[cur->next];
        const merge_slot *m = merge_get(b, cur->id, right->id);
        if (!m || m->id != top.id) continue;
        cur->id = top.id;
        cur->len += right->len;
        right->len = 0;
        cur->next = right->next;
        if (cur->next >= 0) s[cur->next].prev = (int32_t)top.pos;
        /* the heap never outgrows 2n: each merge adds at most two entries and removes one symbol */
        if (cur->prev >= 0 && (m = merge_get(b, s[cur->prev].id, cur->id)))
            hpush(h, &hn, (hent){m->rank, (uint32_t)cur->prev, m->id});
        if (cur->next >= 0 && (m = merge_get(b, cur->id, s[cur->next].id)))
            hpush(h, &hn, (hent){m->rank, top.pos, m->id});
    }
}

static int32_t char_token(const bpe *b, const vocab *v, uint32_t c, int first, int last, buf *tmp) {
    if (c < 65536 && (first || !b->prefix_len) && (!last || !b->suffix_len)) {
        int32_t id = b->char_ids[c];
        return id == -2 ? -1 : id;
    }
    tmp->len = 0;
    if (buf_reserve(tmp, 80)) return -3;
    if (!first) memcpy(tmp->ptr, b->prefix, b->prefix_len), tmp->len = b->prefix_len;
    tmp->len += (size_t)utf8_encode(c, tmp->ptr + tmp->len);
    if (last) memcpy(tmp->ptr + tmp->len, b->suffix, b->suffix_len), tmp->len += b->suffix_len;
    return vocab_get(v, tmp->ptr, tmp->len);
}

static void add_sym(sym *s, size_t *n, int32_t id) {
    s[*n] = (sym){id, (int32_t)*n - 1, (int32_t)*n + 1, 1};
    (*n)++;
}

/* The initial symbols of w (merge_word's loop); returns their count or -1. */
static long initial_symbols(const bpe *b, const vocab *v, const uint32_t *w, size_t n, sym *s) {
    size_t k = 0;
    int32_t unk = -1;   /* a pending unk symbol */
    buf *tmp = &tl_bpe.bytes;
    for (size_t i = 0; i < n; i++) {
        int32_t id = char_token(b, v, w[i], i == 0, i + 1 == n, tmp);
        if (id == -3) return -1;
        if (id >= 0) {
            if (unk >= 0) add_sym(s, &k, unk), unk = -1;
            add_sym(s, &k, id);
            continue;
        }
        if (b->byte_fallback) {
            /* the bytes of the piece as looked up, prefix and suffix included */
            char u[80];
            size_t ul = 0;
            if (i > 0) memcpy(u, b->prefix, b->prefix_len), ul = b->prefix_len;
            ul += (size_t)utf8_encode(w[i], u + ul);
            if (i + 1 == n) memcpy(u + ul, b->suffix, b->suffix_len), ul += b->suffix_len;
            size_t j = 0;
            while (j < ul && b->byte_ids[(uint8_t)u[j]] >= 0) j++;
            if (j == ul) {
                for (j = 0; j < ul; j++) add_sym(s, &k, b->byte_ids[(uint8_t)u[j]]);
                continue;
            }
        }
        if (b->unk_id >= 0) {
            if (unk >= 0 && !b->fuse_unk) add_sym(s, &k, unk);
            unk = b->unk_id;
        }
    }
    if (unk >= 0) add_sym(s, &k, unk);
    if (k) s[k - 1].next = -1;
    return (long)k;
}

int bpe_word(const bpe *b, const vocab *v, const uint32_t *w, size_t n, tok_ids *o) {
    if (n == 0) return 0;
    if (b->ignore_merges) {
        buf *t = &tl_bpe.bytes;
        if (buf_reserve(t, n * 4 + 1)) return CEMBED_ENOMEM;
        t->len = 0;
        for (size_t i = 0; i < n; i++) t->len += (size_t)utf8_encode(w[i], t->ptr + t->len);
        int32_t id = vocab_get(v, t->ptr, t->len);
        if (id >= 0) return tok_push_id(o, id);
    }
    /* byte fallback and fused unks: at most (4 + prefix + suffix) symbols a char */
    size_t max_syms = n * (4 + b->prefix_len + b->suffix_len) + 1;
    if (scratch_reserve(max_syms)) return CEMBED_ENOMEM;
    sym *s = tl_bpe.syms;
    long k = initial_symbols(b, v, w, n, s);
    if (k < 0) return CEMBED_ENOMEM;
    merge_all(b, s, (size_t)k);
    for (long i = 0; i < k; i++)
        if (s[i].len && tok_push_id(o, s[i].id)) return CEMBED_ENOMEM;
    return 0;
}
