/* The Precompiled normalizer: SentencePiece's precompiled_charsmap as
 * Hugging Face's tokenizers apply it (spm_precompiled + normalizers/
 * precompiled.rs).
 *
 * Layout of the base64-decoded blob:
 *   u32 LE  trie_size: bytes of the double array that follows
 *   u32 LE  units[trie_size / 4]: a darts-clone double array over UTF-8 bytes
 *   bytes   normalized strings, each ending with NUL; a key's value is the
 *           offset of its replacement here
 * A unit packs: bits 0-7 the label (bit 31 too, set on value units), bit 8
 * "has a leaf", bit 9 "offset << 8", bits 10-30 the offset. Walking key byte
 * c from node position p: p ^= offset(unit[p]) once at the root, then per
 * byte p ^= c, check label(unit[p]) == c, p ^= offset(unit[p]), and when
 * has_leaf, value(unit[p]) is a match of the prefix read so far.
 *
 * Application (the part that looks odd but is what HF does): the text is
 * cut into extended grapheme clusters; a cluster under 6 bytes whose bytes
 * have any prefix in the trie is replaced whole by the replacement of the
 * SHORTEST such prefix; otherwise each character is replaced by its own
 * match, or kept. */
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

struct precompiled {
    uint32_t *units;
    size_t n_units;
    char *norm;
    size_t norm_len;
};

static int b64val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Decodes base64 (padding optional); OUT: *out (caller frees), *n. */
static int b64_decode(const char *s, size_t len, unsigned char **out, size_t *n) {
    unsigned char *o = base_malloc(len / 4 * 3 + 3);
    if (!o) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '=' || s[i] == '\n' || s[i] == '\r') continue;
        int v = b64val((unsigned char)s[i]);
        if (v < 0) {
            base_free(o);
            return base_err(CEMBED_EFORMAT, "tokenizer.json: precompiled_charsmap is not base64");
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (unsigned char)(acc >> bits);
        }
    }
    *out = o;
    *n = k;
    return 0;
}

int precompiled_load(const char *b64, size_t len, precompiled **out) {
    *out = NULL;
    unsigned char *raw = NULL;
    size_t n = 0;
    int rc = b64_decode(b64, len, &raw, &n);
    if (rc) return rc;
    uint32_t trie_size = n >= 4 ? (uint32_t)raw[0] | (uint32_t)raw[1] << 8 | (uint32_t)raw[2] << 16 | (uint32_t)raw[3] << 24 : 0;
    precompiled *pc = NULL;
    if (n < 4 || trie_size % 4 || trie_size > n - 4 || trie_size < 4) {
        rc = base_err(CEMBED_EFORMAT, "tokenizer.json: precompiled_charsmap's trie size is wrong");
        goto done;
    }
    pc = base_calloc(1, sizeof *pc);
    if (pc) pc->units = base_malloc(trie_size), pc->norm = base_malloc(n - 4 - trie_size + 1);
    if (!pc || !pc->units || !pc->norm) {
        precompiled_free(pc);
        pc = NULL;
        rc = base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
        goto done;
    }
    pc->n_units = trie_size / 4;
    for (size_t i = 0; i < pc->n_units; i++) {
        const unsigned char *p = raw + 4 + i * 4;
        pc->units[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    pc->norm_len = n - 4 - trie_size;
    memcpy(pc->norm, raw + 4 + trie_size, pc->norm_len);
    pc->norm[pc->norm_len] = 0;
    *out = pc;
done:
    base_free(raw);
    return rc;
}

void precompiled_free(precompiled *pc) {
    if (!pc) return;
    base_free(pc->units);
    base_free(pc->norm);
    base_free(pc);
}

static size_t unit_offset(uint32_t u) { return (size_t)((u >> 10) << ((u & (1u << 9)) >> 6)); }
static uint32_t unit_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }

/* The replacement for the shortest prefix of key[0..n) in the trie, or NULL. */
static const char *transform(const precompiled *pc, const unsigned char *key, size_t n, size_t *rlen) {
    size_t pos = unit_offset(pc->units[0]);
    for (size_t i = 0; i < n && key[i]; i++) {
        pos ^= key[i];
        if (pos >= pc->n_units) return NULL;
        uint32_t u = pc->units[pos];
        if (unit_label(u) != key[i]) return NULL;
        pos ^= unit_offset(u);
        if (pos >= pc->n_units) return NULL;
        if ((u >> 8) & 1) {
            size_t v = pc->units[pos] & 0x7FFFFFFFu;
            if (v >= pc->norm_len) return NULL;
            *rlen = strlen(pc->norm + v);
            return pc->norm + v;
        }
    }
    return NULL;
}

static int push_utf8(u32vec *out, const char *s, size_t n) {
    if (u32_reserve(out, out->n + n + 1)) return CEMBED_ENOMEM;
    out->n += utf8_decode(s, n, out->p + out->n);
    return 0;
}

int precompiled_apply(const precompiled *pc, const uint32_t *s, size_t n, u32vec *out) {
    out->n = 0;
    if (u32_reserve(out, n + 1)) return CEMBED_ENOMEM;
    utf8proc_int32_t state = 0;
    for (size_t g = 0; g < n;) {
        size_t e = g + 1;
        while (e < n && !utf8proc_grapheme_break_stateful((utf8proc_int32_t)s[e - 1], (utf8proc_int32_t)s[e], &state))
            e++;
        state = 0;
        unsigned char bytes[64];
        size_t bl = 0, rl = 0;
        for (size_t i = g; i < e && bl + 4 <= sizeof bytes; i++) bl += (size_t)utf8_encode(s[i], (char *)bytes + bl);
        const char *r = NULL;
        if (bl < 6 && (r = transform(pc, bytes, bl, &rl))) {
            if (push_utf8(out, r, rl)) return CEMBED_ENOMEM;
            g = e;
            continue;
        }
        for (size_t i = g; i < e; i++) {
            char u[4];
            int k = utf8_encode(s[i], u);
            if ((r = transform(pc, (const unsigned char *)u, (size_t)k, &rl))) {
                if (push_utf8(out, r, rl)) return CEMBED_ENOMEM;
            } else {
                if (u32_reserve(out, out->n + 1)) return CEMBED_ENOMEM;
                out->p[out->n++] = s[i];
            }
        }
        g = e;
    }
    return 0;
}
