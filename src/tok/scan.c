/* A fast path for the two large members of tokenizer.json: model.vocab
 * (an object "token": id) and model.merges (an array of "a b" strings or
 * ["a", "b"] pairs). Together they are nearly all of the file (30k-250k
 * entries), and building them as a jansson tree (a node, a hash entry and
 * a copy per entry, freed again right after) was most of loading a
 * tokenizer, which runs on every start of the process.
 *
 * tok_scan_split walks the document's structure down to those two values
 * (strings skipped with their escapes, brackets counted) and gives their
 * byte ranges and a skeleton: the document with the vocab replaced by {}
 * and the merges by [], small enough for jansson. tok_scan_vocab and
 * tok_scan_merges then read the two ranges into flat lists.
 *
 * The readers are strict where jansson is strict and refuse whatever they
 * do not handle: invalid UTF-8, control characters, \u0000, lone
 * surrogates, numbers other than plain non-negative integers below 2^24,
 * escaped keys on the way down, a key met twice. A refusal is not an
 * error of the file: the caller then loads the whole document the slow
 * way, which gives jansson's result or its message, so both paths accept
 * the same files and build the same tokenizer.
 *
 * Layout read (JSON, RFC 8259):
 *   { ..., "model": { ..., "vocab": { "tok": 17, ... }, "merges": [ "a b" | ["a", "b"], ... ], ... }, ... }
 */
#include <string.h>

#include "tok_internal.h"

#define REFUSE CEMBED_EFORMAT   /* not an error of the file: load it the slow way */

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && is_ws(s[i])) i++;
    return i;
}

/* Skips the string opening at s[*i]; *i after its closing quote. */
static int skip_string(const char *s, size_t n, size_t *i) {
    size_t k = *i + 1;
    for (;;) {
        const char *q = k < n ? memchr(s + k, '"', n - k) : NULL;
        if (!q) return REFUSE;
        size_t e = (size_t)(q - s), bs = 0;   /* a quote after an odd run of backslashes is escaped */
        while (e - bs > k && s[e - bs - 1] == '\\') bs++;
        k = e + 1;
        if (bs % 2 == 0) break;
    }
    *i = k;
    return 0;
}

/* Skips one value at s[*i] (whitespace already skipped): a string, a
 * bracketed value (brackets counted outside strings) or a scalar. Its
 * validity is left to jansson, which reads every skipped value. */
static int skip_value(const char *s, size_t n, size_t *i) {
    size_t k = *i;
    if (k >= n) return REFUSE;
    if (s[k] == '"') return skip_string(s, n, i);
    if (s[k] == '{' || s[k] == '[') {
        long depth = 0;
        do {
            while (k < n && s[k] != '"' && s[k] != '{' && s[k] != '}' && s[k] != '[' && s[k] != ']') k++;
            if (k >= n) return REFUSE;
            if (s[k] == '"') {
                if (skip_string(s, n, &k)) return REFUSE;
                continue;
            }
            depth += s[k] == '{' || s[k] == '[' ? 1 : -1;
            k++;
        } while (depth > 0);
        *i = k;
        return 0;
    }
    while (k < n && !is_ws(s[k]) && s[k] != ',' && s[k] != '}' && s[k] != ']') k++;
    if (k == *i) return REFUSE;
    *i = k;
    return 0;
}

/* Walks the object at s[*i], calling member(key) for each member with *i
 * at its value; member moves *i past the value. Unescaped keys only (an
 * escaped one refuses: it might spell "vocab"). */
typedef int (*member_fn)(tok_scan *sc, const char *key, size_t key_len, const char *s, size_t n, size_t *i);

static int walk_object(tok_scan *sc, const char *s, size_t n, size_t *i, member_fn member) {
    size_t k = skip_ws(s, n, *i);
    int rc;
    if (k >= n || s[k] != '{') return REFUSE;
    k = skip_ws(s, n, k + 1);
    if (k < n && s[k] == '}') return *i = k + 1, 0;
    for (;;) {
        if (k >= n || s[k] != '"') return REFUSE;
        const size_t key = k + 1;
        if (skip_string(s, n, &k)) return REFUSE;
        const size_t key_len = k - 1 - key;
        if (memchr(s + key, '\\', key_len)) return REFUSE;
        k = skip_ws(s, n, k);
        if (k >= n || s[k] != ':') return REFUSE;
        k = skip_ws(s, n, k + 1);
        if ((rc = member(sc, s + key, key_len, s, n, &k))) return rc;
        k = skip_ws(s, n, k);
        if (k < n && s[k] == '}') return *i = k + 1, 0;
        if (k >= n || s[k] != ',') return REFUSE;
        k = skip_ws(s, n, k + 1);
    }
}

static int key_is(const char *key, size_t len, const char *name) {
    return len == strlen(name) && memcmp(key, name, len) == 0;
}

static int read_vocab(const char *s, size_t n, size_t *i, tok_scan_list *l);
static int read_merges(const char *s, size_t n, size_t *i, tok_scan_list *l);

static int model_member(tok_scan *sc, const char *key, size_t len, const char *s, size_t n, size_t *i) {
    const size_t at = *i;
    int rc;
    if (key_is(key, len, "vocab")) {   /* an array is Unigram's: the slow path reads it */
        if (sc->vocab_len || at >= n || s[at] != '{') return REFUSE;
        if ((rc = read_vocab(s, n, i, &sc->vocab))) return rc;
        sc->vocab_at = at, sc->vocab_len = *i - at;
        return 0;
    }
    if (key_is(key, len, "merges") && at < n && s[at] == '[') {
        if (sc->merges_len) return REFUSE;
        if ((rc = read_merges(s, n, i, &sc->merges))) return rc;
        sc->merges_at = at, sc->merges_len = *i - at;
        return 0;
    }
    return key_is(key, len, "merges") && sc->merges_len ? REFUSE : skip_value(s, n, i);
}

static int root_member(tok_scan *sc, const char *key, size_t len, const char *s, size_t n, size_t *i) {
    if (!key_is(key, len, "model")) return skip_value(s, n, i);
    if (sc->seen_model++ || *i >= n || s[*i] != '{') return REFUSE;
    return walk_object(sc, s, n, i, model_member);
}

/* The skeleton: s with the vocab as {} and the merges as []. */
static int make_skeleton(tok_scan *sc, const char *s, size_t n) {
    size_t cut[2][2] = {{sc->vocab_at, sc->vocab_len}, {sc->merges_at, sc->merges_len}};
    if (sc->merges_len && sc->merges_at < sc->vocab_at) {
        cut[0][0] = sc->merges_at, cut[0][1] = sc->merges_len;
        cut[1][0] = sc->vocab_at, cut[1][1] = sc->vocab_len;
    }
    sc->skeleton = base_malloc(n + 1);
    if (!sc->skeleton) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    size_t from = 0, o = 0;
    for (int c = 0; c < 2; c++) {
        if (!cut[c][1]) continue;
        memcpy(sc->skeleton + o, s + from, cut[c][0] - from);
        o += cut[c][0] - from;
        sc->skeleton[o++] = s[cut[c][0]];
        sc->skeleton[o++] = s[cut[c][0]] == '{' ? '}' : ']';
        from = cut[c][0] + cut[c][1];
    }
    memcpy(sc->skeleton + o, s + from, n - from);
    sc->skeleton_len = o + n - from;
    return 0;
}

int tok_scan_json(const char *s, size_t n, tok_scan *sc) {
    memset(sc, 0, sizeof *sc);
    size_t i = 0;
    int rc = walk_object(sc, s, n, &i, root_member);
    if (rc) return rc;
    if (skip_ws(s, n, i) != n || !sc->vocab_len) return REFUSE;
    return make_skeleton(sc, s, n);
}

void tok_scan_free(tok_scan *sc) {
    tok_scan_list *l[2] = {&sc->vocab, &sc->merges};
    for (int k = 0; k < 2; k++) {
        base_free(l[k]->bytes);
        base_free(l[k]->off);
        base_free(l[k]->len);
        base_free(l[k]->val);
    }
    base_free(sc->skeleton);
    memset(sc, 0, sizeof *sc);
}

/* ---- the strict readers ---- */

static int list_bytes(tok_scan_list *l, size_t more) {
    if (l->bytes_cap - l->n_bytes >= more) return 0;
    size_t cap = l->bytes_cap ? l->bytes_cap : 1 << 16;
    while (cap - l->n_bytes < more) cap *= 2;
    char *p = base_realloc(l->bytes, cap);
    if (!p) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    l->bytes = p;
    l->bytes_cap = cap;
    return 0;
}

static int list_entry(tok_scan_list *l, size_t off, size_t len, int32_t val) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        uint32_t *o = base_realloc(l->off, cap * sizeof *o);
        if (o) l->off = o;
        uint32_t *n = o ? base_realloc(l->len, cap * sizeof *n) : NULL;
        if (n) l->len = n;
        int32_t *v = n ? base_realloc(l->val, cap * sizeof *v) : NULL;
        if (!v) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
        l->val = v;
        l->cap = cap;
    }
    if (off > UINT32_MAX || len > UINT32_MAX) return REFUSE;
    l->off[l->n] = (uint32_t)off;
    l->len[l->n] = (uint32_t)len;
    l->val[l->n++] = val;
    return 0;
}

static int hex4(const char *s, uint32_t *out) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return REFUSE;
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* The length of the valid UTF-8 sequence at s[0..n) (lead byte >= 0x80),
 * or 0: overlong forms, surrogates and code points over U+10FFFF refused. */
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
    const unsigned c = s[0];
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len || len > n) return 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c == 0xE0) lo = 0xA0;
    else if (c == 0xED) hi = 0x9F;
    else if (c == 0xF0) lo = 0x90;
    else if (c == 0xF4) hi = 0x8F;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < len; k++)
        if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    return len;
}

/* One escape at s[*i] (after the backslash) into out; *w bytes written. */
static int read_escape(const char *s, size_t n, size_t *i, char *out, int *w) {
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *e = *i < n ? memchr(from, s[*i], sizeof from - 1) : NULL;
    if (e && s[*i]) {
        out[0] = to[e - from];
        *w = 1;
        *i += 1;
        return 0;
    }
    uint32_t cp, lo;
    if (*i + 5 > n || s[*i] != 'u' || hex4(s + *i + 1, &cp) || cp == 0 || (cp >= 0xDC00 && cp < 0xE000)) return REFUSE;
    *i += 5;
    if (cp >= 0xD800 && cp < 0xDC00) {   /* a high surrogate: its low half must follow */
        if (*i + 6 > n || s[*i] != '\\' || s[*i + 1] != 'u' || hex4(s + *i + 2, &lo) || lo < 0xDC00 || lo >= 0xE000)
            return REFUSE;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        *i += 6;
    }
    *w = utf8_encode(cp, out);
    return 0;
}

/* The string at s[*i] (its opening quote), unescaped, appended to l's
 * bytes; OUT *off, *len where it lies there, *i after its closing quote. */
static int read_string(const char *s, size_t n, size_t *i, tok_scan_list *l, size_t *off, size_t *len) {
    if (*i >= n || s[*i] != '"') return REFUSE;
    size_t k = *i + 1;
    const size_t start = l->n_bytes;
    for (;;) {
        const size_t run = k;   /* plain bytes are copied in runs */
        while (k < n && s[k] != '"' && s[k] != '\\') {
            const unsigned char c = (unsigned char)s[k];
            const size_t w = c < 0x20 ? 0 : c < 0x80 ? 1 : utf8_valid_len((const unsigned char *)s + k, n - k);
            if (!w) return REFUSE;
            k += w;
        }
        if (k >= n) return REFUSE;
        int rc = list_bytes(l, k - run + 4), w;
        if (rc) return rc;
        memcpy(l->bytes + l->n_bytes, s + run, k - run);
        l->n_bytes += k - run;
        if (s[k] == '"') break;
        k++;
        if (read_escape(s, n, &k, l->bytes + l->n_bytes, &w)) return REFUSE;
        l->n_bytes += (size_t)w;
    }
    *i = k + 1;
    *off = start;
    *len = l->n_bytes - start;
    return 0;
}

/* A plain integer in [0, 2^24) (no sign, fraction, exponent or leading zero). */
static int read_id(const char *s, size_t n, size_t *i, int32_t *out) {
    size_t k = *i;
    int32_t v = 0;
    if (k >= n || s[k] < '0' || s[k] > '9') return REFUSE;
    if (s[k] == '0') k++;
    else
        for (; k < n && s[k] >= '0' && s[k] <= '9'; k++)
            if ((v = v * 10 + (s[k] - '0')) >= (1 << 24)) return REFUSE;
    if (k < n && ((s[k] >= '0' && s[k] <= '9') || s[k] == '.' || s[k] == 'e' || s[k] == 'E')) return REFUSE;
    *i = k;
    *out = v;
    return 0;
}

/* After a member or element: *i past the ',' (0) or the closer (1). */
static int next_or_end(const char *s, size_t n, size_t *i, char closer, int *end) {
    size_t k = skip_ws(s, n, *i);
    if (k >= n || (s[k] != ',' && s[k] != closer)) return REFUSE;
    *end = s[k] == closer;
    *i = skip_ws(s, n, k + 1);
    return 0;
}

/* {"token": id, ...} at s[*i] into *l (entries in order, val = id). */
static int read_vocab(const char *s, size_t n, size_t *pi, tok_scan_list *l) {
    size_t i = *pi, off, len;
    int end = 0, rc;
    if (i >= n || s[i] != '{') return REFUSE;
    i = skip_ws(s, n, i + 1);
    if (i < n && s[i] == '}') return *pi = i + 1, 0;
    while (!end) {
        int32_t id;
        if ((rc = read_string(s, n, &i, l, &off, &len))) return rc;
        i = skip_ws(s, n, i);
        if (i >= n || s[i] != ':') return REFUSE;
        i = skip_ws(s, n, i + 1);
        if (read_id(s, n, &i, &id) || (rc = list_entry(l, off, len, id)) || (rc = next_or_end(s, n, &i, '}', &end)))
            return rc ? rc : REFUSE;
    }
    *pi = i;
    return 0;
}

/* One merge, "a b" or ["a", "b"]: two entries (a, then b); "#version"
 * lines are skipped as the slow path skips them. */
static int read_merge(const char *s, size_t n, size_t *i, tok_scan_list *l) {
    size_t off, len, off2, len2;
    int rc;
    if (*i < n && s[*i] == '[') {
        size_t k = skip_ws(s, n, *i + 1);
        if ((rc = read_string(s, n, &k, l, &off, &len))) return rc;
        k = skip_ws(s, n, k);
        if (k >= n || s[k] != ',') return REFUSE;
        k = skip_ws(s, n, k + 1);
        if ((rc = read_string(s, n, &k, l, &off2, &len2))) return rc;
        k = skip_ws(s, n, k);
        if (k >= n || s[k] != ']') return REFUSE;
        *i = k + 1;
    } else {
        if ((rc = read_string(s, n, i, l, &off, &len))) return rc;
        const char *m = l->bytes + off, *sp = memchr(m, ' ', len);
        if (len >= 8 && memcmp(m, "#version", 8) == 0) return 0;
        if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - m))) return REFUSE;
        off2 = off + (size_t)(sp + 1 - m);
        len2 = len - (size_t)(sp + 1 - m);
        len = (size_t)(sp - m);
    }
    if ((rc = list_entry(l, off, len, 0)) || (rc = list_entry(l, off2, len2, 0))) return rc;
    return 0;
}

/* ["a b" | ["a", "b"], ...] at s[*i] into *l: two entries per merge. */
static int read_merges(const char *s, size_t n, size_t *pi, tok_scan_list *l) {
    size_t i = *pi;
    int end = 0, rc;
    if (i >= n || s[i] != '[') return REFUSE;
    i = skip_ws(s, n, i + 1);
    if (i < n && s[i] == ']') return *pi = i + 1, 0;
    while (!end)
        if ((rc = read_merge(s, n, &i, l)) || (rc = next_or_end(s, n, &i, ']', &end))) return rc;
    *pi = i;
    return 0;
}

