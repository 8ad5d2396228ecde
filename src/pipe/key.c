/* The cache key of a request's item: the model's scope (cache_key) over the
 * item's text, or, where the same text gives another vector, over a marker
 * that no UTF-8 text starts with (0xff, then a byte per kind) followed by
 * what tells the vectors apart:
 *   - a rerank pair: "\xff\xfcpair", the query's length (8 bytes, host
 *     order), the query, the side it is cut from (L or R), the document
 *   - a text cut from the left (another vector than the same text cut from
 *     the right): "\xff\xfdleft", the text
 *   - token ids given instead of text: "\xff\xfeids", the ids (int32, host
 *     order)
 * The keys are stored in the persistent cache: a change here is a change of
 * every key (old vectors are no longer found; they age out). */
#include "pipe/pipe.h"

/* key = the cache key of the bytes parts[0..n) put end to end. 0 or CEMBED_ENOMEM. */
static int key_of(const cache_scope *scope, const str *parts, size_t n, uint8_t key[CACHE_KEY_BYTES]) {
    if (n == 1) { /* one piece: hashed where it is */
        cache_key(scope, parts[0].ptr, parts[0].len, key);
        return 0;
    }
    buf b = {0};
    for (size_t i = 0; i < n; i++)
        if (buf_append(&b, parts[i].ptr, parts[i].len)) {
            buf_free(&b);
            return base_err(CEMBED_ENOMEM, "out of memory");
        }
    cache_key(scope, b.ptr, b.len, key);
    buf_free(&b);
    return 0;
}

int pipe_item_key(const pipe_job *j, size_t k, uint8_t key[CACHE_KEY_BYTES]) {
    const cache_scope *scope = &j->e->scope;
    const req_item *it = &j->req.items[k];
    const str text = str_from(it->text, it->text_len);
    if (j->req.kind == REQ_RERANK) {
        const uint64_t ql = j->req.query_len;
        const str parts[] = {str_from("\xff\xfcpair", 6), str_from((const char *)&ql, sizeof ql),
                             str_from(j->req.query, ql), str_from(j->req.truncate_left ? "L" : "R", 1), text};
        return key_of(scope, parts, CE_ARRAY_LEN(parts), key);
    }
    if (it->text && !(j->truncated[k] && j->req.truncate_left)) return key_of(scope, &text, 1, key);
    if (it->text) {
        const str parts[] = {str_from("\xff\xfdleft", 6), text};
        return key_of(scope, parts, CE_ARRAY_LEN(parts), key);
    }
    const str parts[] = {str_from("\xff\xfeids", 5), str_from((const char *)j->ids[k], j->n_ids[k] * sizeof(int32_t))};
    return key_of(scope, parts, CE_ARRAY_LEN(parts), key);
}
