/* The Unigram model of tokenizer.json (SentencePiece's, as Hugging Face's
 * Unigram::encode_optimized runs it): a Viterbi pass over the word's UTF-8
 * bytes, character by character. At each character every vocabulary piece
 * that starts there is a candidate edge (shortest first; a later candidate
 * replaces the best only with a strictly higher path score); when no piece
 * is exactly that one character, an unknown edge of score min_score - 10
 * covers it. The best path is read back; consecutive unknown pieces fuse
 * into one string, and each string becomes its id, or its <0xNN> bytes with
 * byte_fallback, or unk.
 *
 * Layout: vocab [[piece, score], ...] gives id = index (the vocab hash of
 * tok_internal.h maps a piece to its last id, as HF's map does); scores are
 * doubles as in HF, so path sums round identically. Pieces that start at a
 * position are found by extending the candidate one character at a time
 * while it is still a prefix of some piece: a set of 64-bit hashes of every
 * piece prefix stands in for HF's trie (a false positive costs one lookup). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define UNK_PENALTY 10.0

struct unigram {
    double *scores;
    size_t n;
    double min_score;
    int32_t unk_id;
    int byte_fallback;
    int32_t byte_ids[256];
    uint64_t *prefixes;   /* hash set of prefix hashes, 0 = empty */
    size_t pmask;
    size_t max_piece;     /* bytes */
};

typedef struct best {
    double score;
    int32_t id;
    int32_t start;   /* byte offset; -1 unreached */
} best;

static _Thread_local struct {
    best *b;
    size_t cap;
    buf bytes, piece;
} tl_uni;

void unigram_thread_release(void) {
    base_free(tl_uni.b);
    buf_free(&tl_uni.bytes);
    buf_free(&tl_uni.piece);
    memset(&tl_uni, 0, sizeof tl_uni);
}

static uint64_t hash64(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ? h : 1;
}

static void prefix_add(unigram *u, uint64_t h) {
    for (size_t i = (h ^ (h >> 29)) & u->pmask;; i = (i + 1) & u->pmask) {
        if (u->prefixes[i] == h) return;
        if (!u->prefixes[i]) {
            u->prefixes[i] = h;
            return;
        }
    }
}

static int prefix_has(const unigram *u, uint64_t h) {
    for (size_t i = (h ^ (h >> 29)) & u->pmask;; i = (i + 1) & u->pmask) {
        if (u->prefixes[i] == h) return 1;
        if (!u->prefixes[i]) return 0;
    }
}

void unigram_free(unigram *u) {
    if (!u) return;
    base_free(u->scores);
    base_free(u->prefixes);
    base_free(u);
}

/* The score HF's Rust loader sees. serde_json (without float_roundtrip)
 * reads a decimal as significand (u64) then one multiply or divide by a
 * power of ten, which can differ from the correctly rounded value by an
 * ULP when the significand has over 15 digits, and Viterbi ties then break
 * differently. tokenizer.json numbers are shortest round-trip decimals
 * (written by serde_json or Python), so the decimal is recovered from d and
 * read again serde's way. */
static double serde_score(double d) {
    if (d == 0.0 || !isfinite(d)) return d;
    char b[40];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(b, sizeof b, "%.*e", p - 1, d);
        if (strtod(b, NULL) == d) break;
    }
    snprintf(b, sizeof b, "%.*e", p - 1, d);
    uint64_t sig = 0;
    const char *c = b + (b[0] == '-');
    for (; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9') sig = sig * 10 + (uint64_t)(*c - '0');
    int e10 = atoi(c + 1) - (p - 1);
    double f = (double)sig;
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    int k = e10 < 0 ? -e10 : e10;
    if (k > 22) return d;   /* far outside scores' range: keep strtod's value */
    f = e10 < 0 ? f / pow10[k] : f * pow10[k];
    return d < 0 ? -f : f;
}

static int fill_vocab(unigram *u, json_t *list, vocab *v, size_t *prefix_count) {
    json_t *e;
    size_t i;
    json_array_foreach(list, i, e) {
        json_t *p = json_array_get(e, 0), *s = json_array_get(e, 1);
        if (!json_is_array(e) || !json_is_string(p) || !json_is_number(s))
            return base_err(CEMBED_EFORMAT, "tokenizer.json: Unigram vocab[%zu] must be [piece, score]", i);
        int rc = vocab_set(v, str_from(json_string_value(p), json_string_length(p)), (int32_t)i);
        if (rc) return rc;
        u->scores[i] = serde_score(json_number_value(s));
        if (u->scores[i] < u->min_score) u->min_score = u->scores[i];
        if (json_string_length(p) > u->max_piece) u->max_piece = json_string_length(p);
        *prefix_count += json_string_length(p);
    }
    return 0;
}

static void fill_prefixes(unigram *u, const vocab *v) {
    for (size_t id = 0; id < v->n_ids && id < u->n; id++) {
        const char *s = v->strings + v->off[id];
        size_t n = v->len[id];
        for (size_t k = 1; k <= n; k++)
            if (k == n || ((unsigned char)s[k] & 0xC0) != 0x80) prefix_add(u, hash64(s, k));
    }
}

int unigram_load(json_t *model, vocab *v, unigram **out) {
    *out = NULL;
    json_t *list = json_object_get(model, "vocab"), *unk = json_object_get(model, "unk_id");
    size_t n = json_array_size(list), total = 0, size = 16;
    if (!json_is_array(list) || n == 0 || n >= (1u << 24))
        return base_err(CEMBED_EFORMAT, "tokenizer.json: Unigram vocab must be a non-empty array under 2^24 pieces");
    unigram *u = base_calloc(1, sizeof *u);
    if (!u || !(u->scores = base_malloc(n * sizeof *u->scores))) {
        unigram_free(u);
        return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    }
    u->n = n;
    u->min_score = INFINITY;
    u->unk_id = -1;
    u->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    int rc = v->n_ids >= n ? 0 : base_err(CEMBED_EFORMAT, "tokenizer.json: Unigram vocabulary larger than its ids");
    if (!rc) rc = fill_vocab(u, list, v, &total);
    if (!rc && json_is_integer(unk)) {
        if (json_integer_value(unk) < 0 || (size_t)json_integer_value(unk) >= n)
            rc = base_err(CEMBED_EFORMAT, "tokenizer.json: Unigram unk_id is outside the vocabulary");
        else u->unk_id = (int32_t)json_integer_value(unk);
    }
    while (size < total * 2 + 2) size *= 2;
    if (!rc && !(u->prefixes = base_calloc(size, sizeof *u->prefixes)))
        rc = base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    if (rc) {
        unigram_free(u);
        return rc;
    }
    u->pmask = size - 1;
    fill_prefixes(u, v);
    *out = u;
    return 0;
}

/* Byte-fallback ids need the vocabulary hash, built after the added tokens. */
void unigram_finish(unigram *u, const vocab *v) {
    for (int x = 0; x < 256; x++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", x);
        u->byte_ids[x] = vocab_get(v, s, 6);
    }
}

/* The Viterbi pass over s[0..n) bytes; fills tl_uni.b[0..n]. */
static void viterbi(const unigram *u, const vocab *v, const char *s, size_t n) {
    best *b = tl_uni.b;
    const double unk_score = u->min_score - UNK_PENALTY;
    for (size_t i = 0; i <= n; i++) b[i] = (best){0.0, -1, -1};
    for (size_t at = 0; at < n;) {
        size_t mb = 1;
        while (at + mb < n && ((unsigned char)s[at + mb] & 0xC0) == 0x80) mb++;
        double here = b[at].score;
        int single = 0;
        for (size_t end = at + 1; end <= n && end - at <= u->max_piece; end++) {
            if (end < n && ((unsigned char)s[end] & 0xC0) == 0x80) continue;
            if (!prefix_has(u, hash64(s + at, end - at))) break;
            int32_t id = vocab_get(v, s + at, end - at);
            if (id < 0 || (size_t)id >= u->n) continue;
            double cand = u->scores[id] + here;
            if (b[end].start < 0 || cand > b[end].score) b[end] = (best){cand, id, (int32_t)at};
            if (end - at == mb) single = 1;
        }
        if (!single) {
            double cand = unk_score + here;
            if (b[at + mb].start < 0 || cand > b[at + mb].score) b[at + mb] = (best){cand, u->unk_id, (int32_t)at};
        }
        at += mb;
    }
}

/* One result string s[0..n): its id, else its bytes, else unk. */
static int emit_piece(const unigram *u, const vocab *v, const char *s, size_t n, tok_ids *o) {
    int32_t id = vocab_get(v, s, n);
    if (id >= 0) return tok_push_id(o, id);
    if (u->byte_fallback) {
        size_t k = 0;
        while (k < n && u->byte_ids[(unsigned char)s[k]] >= 0) k++;
        if (k == n) {
            for (k = 0; k < n; k++)
                if (tok_push_id(o, u->byte_ids[(unsigned char)s[k]])) return CEMBED_ENOMEM;
            return 0;
        }
    }
    return u->unk_id >= 0 ? tok_push_id(o, u->unk_id) : 0;
}

int unigram_word(const unigram *u, const vocab *v, const uint32_t *w, size_t n, tok_ids *o) {
    if (n == 0) return 0;
    buf *bytes = &tl_uni.bytes;
    if (buf_reserve(bytes, n * 4 + 1)) return CEMBED_ENOMEM;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += (size_t)utf8_encode(w[i], bytes->ptr + len);
    if (tl_uni.cap < len + 1) {
        best *p = base_realloc(tl_uni.b, (len + 1) * sizeof *p);
        if (!p) return CEMBED_ENOMEM;
        tl_uni.b = p;
        tl_uni.cap = len + 1;
    }
    const char *s = bytes->ptr;
    viterbi(u, v, s, len);
    /* read the path back to front into (start, id) pairs, reusing b[] slots */
    best *b = tl_uni.b;
    size_t first = o->n, end = len;
    while (end > 0) {
        int32_t st = b[end].start, id = b[end].id;
        if (st < 0) return 0;   /* unreachable without an unk id: HF fails; nothing is emitted */
        size_t s0 = (size_t)st;
        if (u->unk_id >= 0 && id == u->unk_id)   /* fuse the run of unknown pieces */
            while (s0 > 0 && b[s0].id == u->unk_id && b[s0].start >= 0) s0 = (size_t)b[s0].start;
        if (tok_push_id(o, (int32_t)s0) || tok_push_id(o, (int32_t)end)) return CEMBED_ENOMEM;
        end = s0;
    }
    /* o->ids[first..] holds (start, end) pairs in reverse order: turn them into ids */
    size_t pairs = (o->n - first) / 2;
    int32_t *tmp = base_malloc((pairs * 2 + 1) * sizeof *tmp);
    if (!tmp) return CEMBED_ENOMEM;
    memcpy(tmp, o->ids + first, pairs * 2 * sizeof *tmp);
    o->n = first;
    int rc = 0;
    for (size_t k = pairs; k-- > 0 && !rc;)
        rc = emit_piece(u, v, s + tmp[2 * k], (size_t)(tmp[2 * k + 1] - tmp[2 * k]), o);
    base_free(tmp);
    return rc;
}
