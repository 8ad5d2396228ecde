/* Pre-tokenizers over code points, as Hugging Face's tokenizers run them:
 * each step maps every current piece to a list of pieces (copied into a new
 * buffer), so steps chain as a Sequence does.
 *
 * Splitting follows NormalizedString::split: the matches of a pattern (a
 * regex, a string, or a character predicate) cut a piece into an ordered
 * cover of (range, is_match); invert flips is_match; the behavior then keeps
 * or merges matches (Removed drops them, Isolated keeps them alone,
 * MergedWithPrevious/Next glues each one onto its neighbour, Contiguous
 * merges runs of equal kind), and empty pieces disappear. */
#include <string.h>
#include <utf8proc.h>

#include "regex.h"
#include "tok_internal.h"

const char tok_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct mrange {
    uint32_t s, e;
    int m;
} mrange;

typedef struct mvec {
    mrange *p;
    size_t n, cap;
} mvec;

static _Thread_local mvec tl_m, tl_m2;
static _Thread_local u32vec tl_tmp, tl_pieces;
static _Thread_local spanvec tl_sp;

void pretok_thread_release(void) {
    base_free(tl_m.p), base_free(tl_m2.p), base_free(tl_tmp.p), base_free(tl_pieces.p), base_free(tl_sp.p);
    memset(&tl_m, 0, sizeof tl_m), memset(&tl_m2, 0, sizeof tl_m2), memset(&tl_tmp, 0, sizeof tl_tmp);
    memset(&tl_pieces, 0, sizeof tl_pieces), memset(&tl_sp, 0, sizeof tl_sp);
}

static int m_push(mvec *v, uint32_t s, uint32_t e, int m) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        mrange *p = base_realloc(v->p, cap * sizeof *p);
        if (!p) return CEMBED_ENOMEM;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = (mrange){s, e, m};
    return 0;
}

int span_push(spanvec *v, uint32_t off, uint32_t len, uint32_t first) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        span *p = base_realloc(v->p, cap * sizeof *p);
        if (!p) return CEMBED_ENOMEM;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = (span){off, len, first};
    return 0;
}

uint32_t tok_byte_char(uint8_t b) {
    static uint32_t map[256];
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        uint32_t m[256], next = 256;
        for (int i = 0; i < 256; i++) {
            int keep = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
            m[i] = keep ? (uint32_t)i : next++;
        }
        memcpy(map, m, sizeof map);
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    return map[b];
}

int tok_char_byte(uint32_t c) {
    if (c > 0x1FF) return -1;
    for (int b = 0; b < 256; b++)
        if (tok_byte_char((uint8_t)b) == c) return b;
    return -1;
}

/* ---- matchers: fill *mv with the (range, is_match) cover of s[0..n) ---- */

static int cover_regex(const tok_re *re, const uint32_t *s, size_t n, mvec *mv) {
    size_t prev = 0, from = 0, ms, me, last_end = (size_t)-1;
    while (from <= n) {
        int r = tok_re_find(re, s, n, from, &ms, &me);
        if (r < 0) return r;
        if (r == 0) break;
        if (me == ms && ms == last_end) {   /* no empty match right after a match */
            from = ms + 1;
            continue;
        }
        if (prev != ms && m_push(mv, (uint32_t)prev, (uint32_t)ms, 0)) return CEMBED_ENOMEM;
        if (m_push(mv, (uint32_t)ms, (uint32_t)me, 1)) return CEMBED_ENOMEM;
        prev = last_end = me;
        from = me > ms ? me : me + 1;
    }
    if (prev != n && m_push(mv, (uint32_t)prev, (uint32_t)n, 0)) return CEMBED_ENOMEM;
    return 0;
}

static int cover_string(const uint32_t *pat, size_t pn, const uint32_t *s, size_t n, mvec *mv) {
    size_t prev = 0;
    for (size_t i = 0; pn && i + pn <= n;) {
        if (s[i] == pat[0] && memcmp(s + i, pat, pn * sizeof *s) == 0) {
            if (prev != i && m_push(mv, (uint32_t)prev, (uint32_t)i, 0)) return CEMBED_ENOMEM;
            if (m_push(mv, (uint32_t)i, (uint32_t)(i + pn), 1)) return CEMBED_ENOMEM;
            prev = i += pn;
        } else {
            i++;
        }
    }
    if (prev != n && m_push(mv, (uint32_t)prev, (uint32_t)n, 0)) return CEMBED_ENOMEM;
    return 0;
}

static int is_rust_punct(uint32_t c) {
    if (c < 0x80) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
                         (c >= 0x7B && c <= 0x7E);
    int k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

static int is_rust_numeric(uint32_t c) {
    int k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

/* pred: 0 whitespace, 1 punctuation, 2 numeric, 3 the char `ch` */
static int cover_pred(int pred, uint32_t ch, const uint32_t *s, size_t n, mvec *mv) {
    size_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        int m = pred == 0 ? tok_uni_space(c) : pred == 1 ? is_rust_punct(c) : pred == 2 ? is_rust_numeric(c) : c == ch;
        if (!m) continue;
        if (prev != i && m_push(mv, (uint32_t)prev, (uint32_t)i, 0)) return CEMBED_ENOMEM;
        if (m_push(mv, (uint32_t)i, (uint32_t)i + 1, 1)) return CEMBED_ENOMEM;
        prev = i + 1;
    }
    if (prev != n && m_push(mv, (uint32_t)prev, (uint32_t)n, 0)) return CEMBED_ENOMEM;
    return 0;
}

/* Applies invert and behavior to in, into out (pieces marked m = 1 kept). */
static int apply_behavior(const mvec *in, int behavior, int invert, mvec *out) {
    out->n = 0;
    int prev_match = 0;
    if (behavior == SB_NEXT) {
        for (size_t k = in->n; k-- > 0;) {
            mrange r = in->p[k];
            int m = r.m != invert;
            if (m && !prev_match && out->n) out->p[out->n - 1].s = r.s;
            else if (m_push(out, r.s, r.e, 1)) return CEMBED_ENOMEM;
            prev_match = m;
        }
        for (size_t i = 0, j = out->n; i + 1 < j; i++, j--) {
            mrange t = out->p[i];
            out->p[i] = out->p[j - 1];
            out->p[j - 1] = t;
        }
        return 0;
    }
    for (size_t k = 0; k < in->n; k++) {
        mrange r = in->p[k];
        int m = r.m != invert;
        switch (behavior) {
        case SB_REMOVED:
            if (!m && m_push(out, r.s, r.e, 1)) return CEMBED_ENOMEM;
            break;
        case SB_ISOLATED:
            if (m_push(out, r.s, r.e, 1)) return CEMBED_ENOMEM;
            break;
        case SB_PREV:
            if (m && !prev_match && out->n) out->p[out->n - 1].e = r.e;
            else if (m_push(out, r.s, r.e, 1)) return CEMBED_ENOMEM;
            break;
        default: /* SB_CONTIGUOUS */
            if (m == prev_match && out->n) out->p[out->n - 1].e = r.e;
            else if (m_push(out, r.s, r.e, 1)) return CEMBED_ENOMEM;
            break;
        }
        prev_match = m;
    }
    return 0;
}

static int copy_piece(const uint32_t *s, uint32_t len, uint32_t first, u32vec *ob, spanvec *os) {
    if (!len) return 0;
    if (u32_reserve(ob, ob->n + len) || span_push(os, (uint32_t)ob->n, len, first)) return CEMBED_ENOMEM;
    memcpy(ob->p + ob->n, s, len * sizeof *s);
    ob->n += len;
    return 0;
}

/* Splits s[0..n) by the step's pattern and behavior into ob/os. */
static int split_piece(const pretok_step *st, const uint32_t *s, size_t n, uint32_t first, u32vec *ob, spanvec *os) {
    mvec *mv = &tl_m, *kept = &tl_m2;
    mv->n = 0;
    int rc, behavior = st->behavior, invert = st->invert;
    switch (st->kind) {
    case PS_SPLIT: rc = st->re ? cover_regex(st->re, s, n, mv) : cover_string(st->pat, st->pat_n, s, n, mv); break;
    case PS_BYTELEVEL: rc = cover_regex(st->re, s, n, mv), behavior = SB_ISOLATED, invert = 0; break;
    case PS_WHITESPACE: rc = cover_regex(st->re, s, n, mv), behavior = SB_REMOVED, invert = 1; break;
    case PS_WSPLIT: rc = cover_pred(0, 0, s, n, mv), behavior = SB_REMOVED, invert = 0; break;
    case PS_PUNCT: rc = cover_pred(1, 0, s, n, mv), invert = 0; break;
    case PS_DIGITS:
        rc = cover_pred(2, 0, s, n, mv), invert = 0;
        behavior = st->individual_digits ? SB_ISOLATED : SB_CONTIGUOUS;
        break;
    default: /* PS_METASPACE */
        rc = cover_pred(3, st->replacement, s, n, mv), behavior = SB_NEXT, invert = 0;
        break;
    }
    if (rc || apply_behavior(mv, behavior, invert, kept)) return CEMBED_ENOMEM;
    for (size_t k = 0; k < kept->n; k++) {
        mrange r = kept->p[k];
        if (copy_piece(s + r.s, r.e - r.s, first && r.s == 0, ob, os)) return CEMBED_ENOMEM;
    }
    return 0;
}

/* BertPreTokenizer: whitespace (JS \s, the WordPiece oracle's set) removed,
 * BERT punctuation isolated. */
static int bert_piece(const uint32_t *s, size_t n, uint32_t first, u32vec *ob, spanvec *os) {
    size_t i = 0;
    while (i < n) {
        if (uni_is_js_space(s[i])) {
            i++;
            continue;
        }
        size_t j = i + 1;
        if (!uni_is_bert_punct(s[i]))
            while (j < n && !uni_is_js_space(s[j]) && !uni_is_bert_punct(s[j])) j++;
        if (copy_piece(s + i, (uint32_t)(j - i), first && i == 0, ob, os)) return CEMBED_ENOMEM;
        i = j;
    }
    return 0;
}

/* ByteLevel: optional prefix space, optional GPT-2 split, then each piece's
 * UTF-8 bytes become the byte chars. */
static int bytelevel_piece(const pretok_step *st, const uint32_t *s, size_t n, uint32_t first, u32vec *ob,
                           spanvec *os, u32vec *tmp) {
    tmp->n = 0;
    if (u32_reserve(tmp, n + 1)) return CEMBED_ENOMEM;
    if (st->add_prefix_space && (n == 0 || s[0] != ' ')) tmp->p[tmp->n++] = ' ';
    memcpy(tmp->p + tmp->n, s, n * sizeof *s);
    tmp->n += n;
    u32vec *pieces = &tl_pieces;
    spanvec *sp = &tl_sp;
    pieces->n = sp->n = 0;
    int rc = 0;
    if (st->use_regex) rc = split_piece(st, tmp->p, tmp->n, first, pieces, sp);
    else rc = copy_piece(tmp->p, (uint32_t)tmp->n, first, pieces, sp);
    for (size_t k = 0; !rc && k < sp->n; k++) {
        const uint32_t *p = pieces->p + sp->p[k].off;
        if ((rc = u32_reserve(ob, ob->n + sp->p[k].len * 4))) break;
        uint32_t off = (uint32_t)ob->n;
        for (uint32_t i = 0; i < sp->p[k].len; i++) {
            char u[4];
            int nb = utf8_encode(p[i], u);
            for (int b = 0; b < nb; b++) ob->p[ob->n++] = tok_byte_char((uint8_t)u[b]);
        }
        rc = span_push(os, off, (uint32_t)(ob->n - off), sp->p[k].first);
    }
    return rc;
}

/* Metaspace: ' ' -> replacement, prefix by scheme, split before each replacement. */
static int metaspace_piece(const pretok_step *st, const uint32_t *s, size_t n, uint32_t first, u32vec *ob,
                           spanvec *os, u32vec *tmp) {
    tmp->n = 0;
    if (u32_reserve(tmp, n + 1)) return CEMBED_ENOMEM;
    int starts = n > 0 && (s[0] == ' ' || s[0] == st->replacement);
    if (!starts && (st->prepend_scheme == 0 || (st->prepend_scheme == 1 && first)))
        tmp->p[tmp->n++] = st->replacement;
    for (size_t i = 0; i < n; i++) tmp->p[tmp->n++] = s[i] == ' ' ? st->replacement : s[i];
    if (!st->split) return copy_piece(tmp->p, (uint32_t)tmp->n, first, ob, os);
    return split_piece(st, tmp->p, tmp->n, first, ob, os);
}

static int run_step(const pretok_step *st, const u32vec *in, const spanvec *isp, u32vec *ob, spanvec *os) {
    u32vec *tmp = &tl_tmp;
    int rc = 0;
    ob->n = 0;
    os->n = 0;
    for (size_t k = 0; !rc && k < isp->n; k++) {
        const uint32_t *s = in->p + isp->p[k].off;
        size_t n = isp->p[k].len;
        uint32_t first = isp->p[k].first;
        switch (st->kind) {
        case PS_BERT: rc = bert_piece(s, n, first, ob, os); break;
        case PS_BYTELEVEL: rc = bytelevel_piece(st, s, n, first, ob, os, tmp); break;
        case PS_METASPACE: rc = metaspace_piece(st, s, n, first, ob, os, tmp); break;
        default: rc = split_piece(st, s, n, first, ob, os); break;
        }
    }
    return rc ? CEMBED_ENOMEM : 0;
}

int pretok_run(const pretok_step *steps, size_t n, u32vec *text, spanvec *sp, u32vec *tb, spanvec *ts) {
    for (size_t i = 0; i < n; i++) {
        if (run_step(&steps[i], text, sp, tb, ts)) return CEMBED_ENOMEM;
        u32vec t = *text;
        *text = *tb;
        *tb = t;
        spanvec u = *sp;
        *sp = *ts;
        *ts = u;
    }
    return 0;
}

void pretok_step_free(pretok_step *s) {
    tok_re_free(s->re);
    base_free(s->pat);
    memset(s, 0, sizeof *s);
}
