/* The BERT normalizer over code points, in the oracle's order: clean text,
 * pad CJK, lowercase, strip accents (see tok.h). Lowercasing is Unicode's
 * full mapping: utf8proc's simple mapping plus the one unconditional
 * special case (U+0130 -> "i" U+0307) and the Final_Sigma context rule. */
#include <string.h>
#include <utf8proc.h>

#include "regex.h"
#include "tok_internal.h"

int u32_reserve(u32vec *v, size_t n) {
    if (v->cap >= n) return 0;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < n) cap *= 2;
    uint32_t *p = base_realloc(v->p, cap * sizeof *p);
    if (!p) return CEMBED_ENOMEM;
    v->p = p;
    v->cap = cap;
    return 0;
}

int u32_push(u32vec *v, uint32_t c) {
    if (v->n == v->cap && u32_reserve(v, v->n + 1)) return CEMBED_ENOMEM;
    v->p[v->n++] = c;
    return 0;
}

static int category(uint32_t c) { return utf8proc_category((utf8proc_int32_t)c); }

static int is_other(uint32_t c) {
    switch (category(c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
        return 1;
    default:
        return 0;
    }
}

static int is_cased(uint32_t c) {
    int k = category(c);
    if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT) return 1;
    /* Other_Lowercase / Other_Uppercase letters and numbers that change case */
    return utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
           utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

static int is_case_ignorable(uint32_t c) {
    switch (c) {   /* Word_Break MidLetter, MidNumLet, Single_Quote */
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4:
    case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52:
    case 0xFE55: case 0xFF07: case 0xFF0E: case 0xFF1A:
        return 1;
    }
    switch (category(c)) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK:
        return 1;
    default:
        return 0;
    }
}

/* Unicode's Final_Sigma: a cased letter before (skipping case-ignorables)
 * and none after. */
static int final_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    int before = 0;
    while (j > 0) {
        uint32_t c = s[--j];
        if (is_case_ignorable(c)) continue;
        before = is_cased(c);
        break;
    }
    if (!before) return 0;
    for (j = i + 1; j < n; j++) {
        if (is_case_ignorable(s[j])) continue;
        return !is_cased(s[j]);
    }
    return 1;
}

static int lowercase(const uint32_t *s, size_t n, u32vec *out) {
    out->n = 0;
    if (u32_reserve(out, n + 8)) return CEMBED_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c < 0x80) {
            if (c >= 'A' && c <= 'Z') c += 32;
            if (u32_push(out, c)) return CEMBED_ENOMEM;
        } else if (c == 0x130) {
            if (u32_push(out, 'i') || u32_push(out, 0x307)) return CEMBED_ENOMEM;
        } else if (c == 0x3A3) {
            if (u32_push(out, final_sigma(s, n, i) ? 0x3C2 : 0x3C3)) return CEMBED_ENOMEM;
        } else {
            if (u32_push(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c))) return CEMBED_ENOMEM;
        }
    }
    return 0;
}

/* NFD (canonical decomposition + canonical ordering), then drop Mn. */
static int strip_accents(const uint32_t *s, size_t n, u32vec *out) {
    out->n = 0;
    if (u32_reserve(out, n + 8)) return CEMBED_ENOMEM;
    size_t run = 0;   /* start of the current run of non-starters */
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c < 0xC0) {
            if (u32_push(out, c)) return CEMBED_ENOMEM;
            run = out->n;
            continue;
        }
        utf8proc_int32_t d[32];
        int last = 0;
        utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)c, d, 32, UTF8PROC_DECOMPOSE, &last);
        if (k < 0 || k > 32) {
            d[0] = (utf8proc_int32_t)c;
            k = 1;
        }
        for (utf8proc_ssize_t j = 0; j < k; j++) {
            uint32_t x = (uint32_t)d[j];
            int ccc = utf8proc_get_property(d[j])->combining_class;
            if (ccc == 0) {
                if (u32_push(out, x)) return CEMBED_ENOMEM;
                run = out->n;
                continue;
            }
            /* insert by combining class after the last non-starter with <= ccc */
            if (u32_push(out, x)) return CEMBED_ENOMEM;
            size_t p = out->n - 1;
            while (p > run && utf8proc_get_property((utf8proc_int32_t)out->p[p - 1])->combining_class > ccc) {
                out->p[p] = out->p[p - 1];
                p--;
            }
            out->p[p] = x;
        }
    }
    size_t w = 0;
    for (size_t i = 0; i < out->n; i++)
        if (out->p[i] < 0x300 || category(out->p[i]) != UTF8PROC_CATEGORY_MN) out->p[w++] = out->p[i];
    out->n = w;
    return 0;
}

int norm_apply(const norm_opts *o, const uint32_t *in, size_t n, u32vec *out, u32vec *tmp) {
    tmp->n = 0;
    if (u32_reserve(tmp, n * 3 + 8)) return CEMBED_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (o->clean_text) {
            if (c == 0 || c == 0xFFFD) continue;
            if (c != '\t' && c != '\n' && c != '\r' && (c < 0x20 || c >= 0x7F) && is_other(c)) continue;
            if (uni_is_js_space(c)) c = ' ';
        }
        if (o->handle_chinese_chars && uni_is_cjk_bmp(c)) {
            tmp->p[tmp->n++] = ' ';
            tmp->p[tmp->n++] = c;
            tmp->p[tmp->n++] = ' ';
        } else {
            tmp->p[tmp->n++] = c;
        }
    }
    if (o->lowercase) {
        if (lowercase(tmp->p, tmp->n, out)) return CEMBED_ENOMEM;
        if (o->strip_accents) {
            u32vec t = *tmp;
            *tmp = *out;
            *out = t;
            if (strip_accents(tmp->p, tmp->n, out)) return CEMBED_ENOMEM;
        }
    } else if (o->strip_accents) {
        if (strip_accents(tmp->p, tmp->n, out)) return CEMBED_ENOMEM;
    } else {
        u32vec t = *tmp;
        *tmp = *out;
        *out = t;
    }
    return 0;
}

/* ---- the generic normalizer steps of tokenizer.json ---- */

static int swap_out(u32vec *out, u32vec *tmp) {
    u32vec t = *out;
    *out = *tmp;
    *tmp = t;
    return 0;
}

/* NFC/NFD/NFKC/NFKD through utf8proc (ASCII is unchanged by all four). */
static int unicode_form(int kind, const uint32_t *s, size_t n, u32vec *out) {
    size_t i = 0;
    while (i < n && s[i] < 0x80) i++;
    out->n = 0;
    if (i == n) {
        if (u32_reserve(out, n + 1)) return CEMBED_ENOMEM;
        memcpy(out->p, s, n * sizeof *s);
        out->n = n;
        return 0;
    }
    int opts = UTF8PROC_STABLE | (kind == NS_NFC || kind == NS_NFKC ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) |
               (kind == NS_NFKC || kind == NS_NFKD ? UTF8PROC_COMPAT : 0);
    utf8proc_int32_t *buf32 = NULL;
    utf8proc_ssize_t cap = (utf8proc_ssize_t)n * 4 + 16;
    for (;;) {
        buf32 = base_malloc((size_t)cap * sizeof *buf32);
        if (!buf32) return CEMBED_ENOMEM;
        /* decompose code point by code point into buf32, then reorder/compose */
        utf8proc_ssize_t w = 0;
        int last = 0, again = 0;
        for (size_t j = 0; j < n; j++) {
            utf8proc_ssize_t r = utf8proc_decompose_char((utf8proc_int32_t)s[j], buf32 + w, cap - w,
                                                         (utf8proc_option_t)(opts & ~UTF8PROC_COMPOSE) |
                                                             UTF8PROC_DECOMPOSE,
                                                         &last);
            if (r < 0) r = 0;
            if (r > cap - w) {
                again = 1;
                break;
            }
            w += r;
        }
        if (again) {
            base_free(buf32);
            cap *= 2;
            continue;
        }
        /* canonical ordering: stable sort of combining runs by class */
        for (utf8proc_ssize_t a = 1; a < w; a++) {
            int ca = utf8proc_get_property(buf32[a])->combining_class;
            utf8proc_ssize_t b = a;
            while (ca && b > 0 && utf8proc_get_property(buf32[b - 1])->combining_class > ca) {
                utf8proc_int32_t t = buf32[b];
                buf32[b] = buf32[b - 1];
                buf32[b - 1] = t;
                b--;
            }
        }
        if (opts & UTF8PROC_COMPOSE) w = utf8proc_normalize_utf32(buf32, w, (utf8proc_option_t)opts);
        if (w < 0 || u32_reserve(out, (size_t)w + 1)) {
            base_free(buf32);
            return CEMBED_ENOMEM;
        }
        for (utf8proc_ssize_t j = 0; j < w; j++) out->p[j] = (uint32_t)buf32[j];
        out->n = (size_t)w;
        base_free(buf32);
        return 0;
    }
}

static int replace_all(const norm_step *st, const uint32_t *s, size_t n, u32vec *out) {
    out->n = 0;
    size_t prev = 0, from = 0;
    for (;;) {
        size_t ms = 0, me = 0;
        int found;
        if (st->re) {
            found = tok_re_find(st->re, s, n, from, &ms, &me);
            if (found < 0) return found;
            if (found && me == ms) {   /* an empty match replaces nothing here */
                from = ms + 1;
                if (from > n) break;
                continue;
            }
        } else {
            found = 0;
            for (size_t i = from; st->pat_n && i + st->pat_n <= n; i++)
                if (memcmp(s + i, st->pat, st->pat_n * sizeof *s) == 0) {
                    ms = i, me = i + st->pat_n, found = 1;
                    break;
                }
        }
        if (!found) break;
        if (u32_reserve(out, out->n + (ms - prev) + st->content_n + 1)) return CEMBED_ENOMEM;
        memcpy(out->p + out->n, s + prev, (ms - prev) * sizeof *s);
        out->n += ms - prev;
        memcpy(out->p + out->n, st->content, st->content_n * sizeof *s);
        out->n += st->content_n;
        prev = from = me;
    }
    if (u32_reserve(out, out->n + (n - prev) + 1)) return CEMBED_ENOMEM;
    memcpy(out->p + out->n, s + prev, (n - prev) * sizeof *s);
    out->n += n - prev;
    return 0;
}

static int one_step(const norm_step *st, const uint32_t *s, size_t n, u32vec *out, u32vec *tmp) {
    size_t a = 0, b = n;
    switch (st->kind) {
    case NS_BERT: return norm_apply(&st->bert, s, n, out, tmp);
    case NS_NFC: case NS_NFD: case NS_NFKC: case NS_NFKD: return unicode_form(st->kind, s, n, out);
    case NS_LOWER: /* Rust's char::to_lowercase, one char at a time: no Final_Sigma context */
        out->n = 0;
        if (u32_reserve(out, n * 2 + 1)) return CEMBED_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == 0x130) out->p[out->n++] = 'i', out->p[out->n++] = 0x307;
            else out->p[out->n++] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)s[i]);
        }
        return 0;
    case NS_STRIP_ACCENTS:
        out->n = 0;
        if (u32_reserve(out, n + 1)) return CEMBED_ENOMEM;
        for (size_t i = 0; i < n; i++) { /* Rust's is_combining_mark: Mn, Mc and Me */
            int k = category(s[i]);
            if (k != UTF8PROC_CATEGORY_MN && k != UTF8PROC_CATEGORY_MC && k != UTF8PROC_CATEGORY_ME)
                out->p[out->n++] = s[i];
        }
        return 0;
    case NS_STRIP:
        if (st->left) while (a < b && tok_uni_space(s[a])) a++;
        if (st->right) while (b > a && tok_uni_space(s[b - 1])) b--;
        out->n = 0;
        if (u32_reserve(out, b - a + 1)) return CEMBED_ENOMEM;
        memcpy(out->p, s + a, (b - a) * sizeof *s);
        out->n = b - a;
        return 0;
    case NS_REPLACE: return replace_all(st, s, n, out);
    case NS_PREPEND:
        out->n = 0;
        if (u32_reserve(out, n + st->content_n + 1)) return CEMBED_ENOMEM;
        if (n) memcpy(out->p, st->content, st->content_n * sizeof *s), out->n = st->content_n;
        memcpy(out->p + out->n, s, n * sizeof *s);
        out->n += n;
        return 0;
    default: return precompiled_apply(st->pc, s, n, out);
    }
}

/* Did the step drop the input's first character? (Metaspace's "first"
 * scheme asks whether a piece still starts at original offset 0.) */
static int cuts_lead(const norm_step *st, const uint32_t *s, size_t n, const u32vec *out) {
    if (n == 0) return 0;
    switch (st->kind) {
    case NS_STRIP: return st->left && tok_uni_space(s[0]);
    case NS_STRIP_ACCENTS: return out->n == 0 || out->p[0] != s[0];
    case NS_BERT: return st->bert.clean_text && (s[0] == 0 || s[0] == 0xFFFD || (s[0] != '\t' && s[0] != '\n' &&
                                                  s[0] != '\r' && (s[0] < 0x20 || s[0] >= 0x7F) && is_other(s[0])));
    case NS_REPLACE: {
        if (st->content_n) return 0;
        if (!st->re) return st->pat_n && n >= st->pat_n && memcmp(s, st->pat, st->pat_n * sizeof *s) == 0;
        size_t ms, me;
        return tok_re_find(st->re, s, n, 0, &ms, &me) == 1 && ms == 0 && me > 0;
    }
    case NS_PRECOMPILED: return out->n == 0 || out->p[0] != s[0];
    default: return 0;
    }
}

int norm_run(const norm_step *steps, size_t n, const uint32_t *in, size_t len, u32vec *out, u32vec *a, u32vec *b,
             int *lead_cut) {
    out->n = 0;
    if (u32_reserve(out, len + 1)) return CEMBED_ENOMEM;
    memcpy(out->p, in, len * sizeof *in);
    out->n = len;
    if (lead_cut) *lead_cut = 0;
    for (size_t i = 0; i < n; i++) {
        if (one_step(&steps[i], out->p, out->n, a, b)) return CEMBED_ENOMEM;
        if (lead_cut && !*lead_cut) *lead_cut = cuts_lead(&steps[i], out->p, out->n, a);
        swap_out(out, a);
    }
    return 0;
}

void norm_step_free(norm_step *s) {
    tok_re_free(s->re);
    base_free(s->pat);
    base_free(s->content);
    precompiled_free(s->pc);
    memset(s, 0, sizeof *s);
}
