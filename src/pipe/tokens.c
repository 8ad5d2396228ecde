/* The tokens of POST /tokenize as Text Embeddings Inference answers them:
 * per token {"id", "text", "special", "start", "stop"}, where a token the
 * template added ([CLS], </s>, <|endoftext|>) is special, with its vocabulary
 * string as text and null offsets, and any other token has the character
 * offsets [start, stop) of the text it came from and that text.
 *
 * The tokenizer keeps no offsets, so they are found afterwards: the text
 * and each token's string are put in one comparable form, and each token is
 * looked for where the previous one ended (from the text's end backwards
 * when the text was cut from the left). The forms:
 *   - byte-level BPE (a vocabulary of GPT-2's byte characters, "Ġthe"): the
 *     token's characters back to bytes, compared with the text's bytes
 *     exactly;
 *   - otherwise code points, both sides case-folded without accents
 *     (NFD, marks stripped: BERT's uncased normalizer), WordPiece's "##"
 *     and Metaspace's "▁" undone.
 * Whitespace between tokens is skipped; a token that carries its leading
 * space (byte-level's Ġ, Metaspace's ▁) covers it, as in Hugging Face's
 * offsets (a tokenizer that trims them, RoBERTa's trim_offsets, differs by
 * that space).
 * A token that cannot be found so ([UNK], byte-fallback <0x..> pieces, a
 * normalizer's rewrite this form does not undo) gets null offsets and its
 * vocabulary string as text, and the search goes on after it.
 *
 * The token strings are the engine's own tokenizer's (cembed_token_text):
 * no second copy of the vocabulary outside the memory governor's count.
 * What the alignment needs of the vocabulary (byte-level or not, its
 * longest token) is read from it on the first /tokenize. */
#include <string.h>
#include <utf8proc.h>

#include "json/json.h"
#include "pipe/pipe.h"

#define WINDOW 4096     /* units searched past a token's expected place */
#define PER_CHAR 4      /* units a text character may expand to (case fold, accents) */

/* The vocabulary string of id, from the engine's tokenizer. */
static str token_str(const pipe_env *e, int32_t id) {
    size_t len;
    const char *p = cembed_token_text(e->m, id, &len);
    return str_from(p, len);
}

void pipe_tokens_load(pipe_env *e) {
    pthread_mutex_lock(&e->tok_mu);
    if (!e->tok_ready) {
        /* byte-level: the vocabulary holds GPT-2's space and newline characters as tokens ("Ġ", "Ċ"),
         * or many words starting with the space's ("Ġthe") */
        size_t byte_level = 0, longest = 0, alone = 0;
        const size_t n = cembed_vocab_size(e->m);
        for (size_t id = 0; id < n; id++) {
            const str s = token_str(e, (int32_t)id);
            longest = CE_MAX(longest, s.len);
            byte_level += s.len >= 2 && (uint8_t)s.ptr[0] == 0xC4 && (uint8_t)s.ptr[1] == 0xA0;
            alone += s.len == 2 && (uint8_t)s.ptr[0] == 0xC4 && ((uint8_t)s.ptr[1] == 0xA0 || (uint8_t)s.ptr[1] == 0x8A);
        }
        e->tok_bytes = alone == 2 || byte_level * 100 > n;
        e->tok_longest = longest;
        e->tok_ready = 1;
    }
    pthread_mutex_unlock(&e->tok_mu);
}

/* ---- the comparable form ---- */

typedef struct stream {
    uint32_t *u;        /* units: bytes, or folded code points (' ' for any whitespace) */
    uint32_t *ch;       /* each unit's character index in the text */
    uint32_t *at;       /* ... and that character's first byte */
    size_t n;
} stream;

static int is_space(uint32_t c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return 1;
    const int k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF;
}

/* c folded into out[0..PER_CHAR): returns how many units. */
static size_t fold(uint32_t c, uint32_t *out) {
    if (is_space(c)) return out[0] = ' ', 1;
    utf8proc_int32_t d[16];
    const utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)c, d, 16,
                                                       UTF8PROC_DECOMPOSE | UTF8PROC_STRIPMARK | UTF8PROC_CASEFOLD, NULL);
    if (n <= 0 || n > 16) return out[0] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c), 1;
    const size_t m = CE_MIN((size_t)n, (size_t)PER_CHAR);
    for (size_t i = 0; i < m; i++) out[i] = (uint32_t)d[i];
    return m;
}

/* The text's stream; bytes_mode: its bytes as they are. */
static void text_stream(const char *s, size_t len, int bytes_mode, stream *st) {
    st->n = 0;
    uint32_t chars = 0;
    for (size_t i = 0; i < len; chars++) {
        utf8proc_int32_t c;
        utf8proc_ssize_t w = utf8proc_iterate((const uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &c);
        if (w <= 0) w = 1, c = 0xFFFD;
        uint32_t u[PER_CHAR];
        size_t m = 0;
        if (bytes_mode)
            for (utf8proc_ssize_t b = 0; b < w; b++) u[m++] = (uint8_t)s[i + (size_t)b];
        else
            m = fold((uint32_t)c, u);
        for (size_t k = 0; k < m; k++) {
            st->u[st->n] = bytes_mode && u[k] < 0x80 && is_space(u[k]) ? ' ' : u[k];
            st->ch[st->n] = chars;
            st->at[st->n++] = (uint32_t)i;
        }
        i += (size_t)w;
    }
}

/* The byte GPT-2's byte-level alphabet writes as c, or -1: the printable
 * bytes (! to ~, ¡ to ¬, ® to ÿ) are themselves, the others in order are
 * U+0100 onwards. */
static int char_byte(uint32_t c) {
    const int self = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
    if (self) return (int)c;
    if (c < 0x100 || c >= 0x100 + 68) return -1;
    uint32_t n = c - 0x100;
    for (int b = 0; b < 256; b++) {
        const int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        if (!printable && n-- == 0) return b;
    }
    return -1;
}

/* A token's units into u[0..max): returns how many, 0 for a token never looked for. */
static size_t token_units(const pipe_env *e, str t, uint32_t *u, size_t max) {
    if (!e->tok_bytes && t.len > 2 && t.ptr[0] == '#' && t.ptr[1] == '#') t.ptr += 2, t.len -= 2;   /* WordPiece */
    size_t n = 0;
    for (size_t i = 0; i < t.len && n + PER_CHAR <= max;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t w = utf8proc_iterate((const uint8_t *)t.ptr + i, (utf8proc_ssize_t)(t.len - i), &c);
        if (w <= 0) w = 1, c = 0xFFFD;
        if (e->tok_bytes) {
            const int b = char_byte((uint32_t)c);
            if (b >= 0) u[n++] = b < 0x80 && is_space((uint32_t)b) ? ' ' : (uint32_t)b;
            else
                for (utf8proc_ssize_t k = 0; k < w; k++) u[n++] = (uint8_t)t.ptr[i + (size_t)k];
        } else {
            n += fold(c == 0x2581 ? ' ' : (uint32_t)c, u + n);   /* Metaspace's ▁ is a space */
        }
        i += (size_t)w;
    }
    return n;
}

static int match_at(const stream *st, size_t p, const uint32_t *u, size_t m) {
    if (p + m > st->n) return 0;
    for (size_t i = 0; i < m; i++)
        if (st->u[p + i] != u[i]) return 0;
    return 1;
}

/* Finds u[a..b) from *cur on (backwards: ending at *cur or before), after
 * the stream's whitespace unless skip_ws is 0. Returns where, or -1. */
static size_t search(const stream *st, size_t cur, const uint32_t *u, size_t len, int backwards, int skip_ws) {
    size_t p = cur;
    if (!backwards) {
        while (skip_ws && p < st->n && st->u[p] == ' ') p++;
        for (size_t q = p; q < st->n && q <= p + WINDOW; q++)
            if (match_at(st, q, u, len)) return q;
    } else {
        while (skip_ws && p > 0 && st->u[p - 1] == ' ') p--;
        for (size_t end = p; end >= len && end + WINDOW >= p; end--)
            if (match_at(st, end - len, u, len)) return end - len;
    }
    return (size_t)-1;
}

/* The span of st's units [from, last]: {char start, char stop, byte start, byte stop}. */
static void span_of(const stream *st, size_t from, size_t last, size_t text_len, uint32_t span[4]) {
    span[0] = st->ch[from];
    span[1] = st->ch[last] + 1;
    span[2] = st->at[from];
    size_t q = last + 1;   /* the byte after the last character of the last unit */
    while (q < st->n && st->ch[q] == st->ch[last]) q++;
    span[3] = q < st->n ? st->at[q] : (uint32_t)text_len;
}

/* Finds token u[0..m) near *cur; fills span and moves *cur. A token that
 * holds spaces (byte-level's Ġ and Ċ, Metaspace's ▁) is looked for with
 * them first, as Hugging Face's offsets then cover them, then without (a
 * space the tokenizer added). */
static int find(const stream *st, size_t *cur, const uint32_t *u, size_t m, int backwards, uint32_t span[4],
                size_t text_len) {
    size_t a = 0, b = m;
    size_t found = search(st, *cur, u, m, backwards, u[0] != ' ');
    if (found == (size_t)-1) {
        while (a < b && u[a] == ' ') a++;
        while (b > a && u[b - 1] == ' ') b--;
        if (a == b || (a == 0 && b == m)) return 0;
        found = search(st, *cur, u + a, b - a, backwards, 1);
    }
    if (found == (size_t)-1) return 0;
    const size_t last = found + (b - a) - 1;
    span_of(st, found, last, text_len, span);
    *cur = backwards ? found : last + 1;
    return 1;
}

/* A byte-fallback piece "<0xNN>" (SentencePiece's, for a character not in
 * the vocabulary): an ASCII byte is that character; the bytes of a longer
 * character each get the span of the next such character in the text. */
static int byte_piece(str t) {
    if (t.len != 6 || memcmp(t.ptr, "<0x", 3) != 0 || t.ptr[5] != '>') return -1;
    unsigned v = 0;
    for (int i = 3; i < 5; i++) {
        const char c = t.ptr[i];
        const unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 99;
        if (d > 15) return -1;
        v = v * 16 + d;
    }
    return (int)v;
}

static int find_byte(const stream *st, size_t *cur, int byte, int backwards, uint32_t span[4], const uint32_t prev[4],
                     size_t text_len) {
    /* a continuation takes the character its lead byte found; backwards, the lead byte and
     * the continuations before the last take the character the last found */
    if ((byte >= 0x80 && byte < 0xC0) || (backwards && byte >= 0x80 && prev[0] < PIPE_TOKEN_SPECIAL)) {
        if (prev[0] >= PIPE_TOKEN_SPECIAL) return 0;
        memcpy(span, prev, 4 * sizeof *span);
        return 1;
    }
    if (byte < 0x80) {
        const uint32_t u = is_space((uint32_t)byte) ? ' ' : (uint32_t)byte;
        return find(st, cur, &u, 1, backwards, span, text_len);
    }
    size_t p = *cur;   /* a lead byte: the next character past ASCII */
    if (!backwards) {
        while (p < st->n && st->u[p] < 0x80) p++;
        if (p >= st->n) return 0;
        size_t last = p;
        while (last + 1 < st->n && st->ch[last + 1] == st->ch[p]) last++;
        span_of(st, p, last, text_len, span);
        *cur = last + 1;
    } else {
        while (p > 0 && st->u[p - 1] < 0x80) p--;
        if (p == 0) return 0;
        size_t first = p - 1;
        while (first > 0 && st->ch[first - 1] == st->ch[p - 1]) first--;
        span_of(st, first, p - 1, text_len, span);
        *cur = first;
    }
    return 1;
}

size_t pipe_tokens_scratch(const pipe_env *e, size_t text_len) {
    return (text_len * PER_CHAR + 1) * 3 * sizeof(uint32_t) + (e->tok_longest * PER_CHAR + 8) * sizeof(uint32_t);
}

void pipe_tokens_align(const pipe_env *e, const char *text, size_t len, const int32_t *ids, size_t n, int backwards,
                       uint32_t (*span)[4], void *scratch) {
    const size_t cap = len * PER_CHAR + 1, ucap = e->tok_longest * PER_CHAR + 8;
    stream st = {.u = scratch, .ch = (uint32_t *)scratch + cap, .at = (uint32_t *)scratch + 2 * cap};
    uint32_t *u = (uint32_t *)scratch + 3 * cap;
    text_stream(text, len, e->tok_bytes, &st);
    size_t cur = backwards ? st.n : 0;
    for (size_t i = 0; i < n; i++) {
        const size_t k = backwards ? n - 1 - i : i;
        const int special = (k == 0 && ids[k] == e->info.cls_id) || (k == n - 1 && ids[k] == e->info.sep_id);
        span[k][0] = special ? PIPE_TOKEN_SPECIAL : PIPE_TOKEN_UNFOUND;
        if (special) continue;
        const str t = token_str(e, ids[k]);
        const int byte = e->tok_bytes ? -1 : byte_piece(t);
        const uint32_t none[4] = {PIPE_TOKEN_UNFOUND, 0, 0, 0};
        const uint32_t *prev = none;   /* the span a byte piece may share with its neighbour */
        if (!backwards && k > 0) prev = span[k - 1];
        if (backwards && k + 1 < n && byte >= 0x80) {
            const int next = byte_piece(token_str(e, ids[k + 1]));
            if (next >= 0x80 && next < 0xC0) prev = span[k + 1];
        }
        int ok;
        if (byte >= 0) {
            ok = find_byte(&st, &cur, byte, backwards, span[k], prev, len);
        } else {
            const size_t m = token_units(e, t, u, ucap);
            ok = m && find(&st, &cur, u, m, backwards, span[k], len);
        }
        if (!ok) span[k][0] = PIPE_TOKEN_UNFOUND;
    }
}

size_t pipe_tokens_bytes(const pipe_env *e, size_t n_ids, size_t text_len) {
    /* {"id":2147483647,"text":,"special":false,"start":4294967295,"stop":4294967295} and the texts escaped
     * (x6): a found token's text is at most its units' characters (4 bytes each), and two tokens share a
     * character only where it folds into several units (ﬁ: f, i) */
    const size_t found = CE_MIN(text_len, n_ids * e->tok_longest * PER_CHAR * 4);
    return n_ids * (96 + 6 * e->tok_longest) + 2 * 6 * found;
}

int pipe_tokens_write(buf *b, const pipe_env *e, const char *text, const int32_t *ids, size_t n,
                      const uint32_t (*span)[4]) {
    int rc = buf_append(b, "[", 1);
    for (size_t k = 0; k < n && !rc; k++) {
        const int found = span[k][0] < PIPE_TOKEN_SPECIAL, special = span[k][0] == PIPE_TOKEN_SPECIAL;
        const str t = found ? str_from(text + span[k][2], span[k][3] - span[k][2]) : token_str(e, ids[k]);
        rc = buf_printf(b, "%s{\"id\":%d,\"text\":", k ? "," : "", (int)ids[k]) || json_write_string(b, t.ptr, t.len);
        if (!rc && found)
            rc = buf_printf(b, ",\"special\":false,\"start\":%u,\"stop\":%u}", span[k][0], span[k][1]);
        else if (!rc)
            rc = buf_printf(b, ",\"special\":%s,\"start\":null,\"stop\":null}", special ? "true" : "false");
    }
    return rc || buf_append(b, "]", 1);
}
