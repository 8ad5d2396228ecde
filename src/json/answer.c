/* Every answer's pieces; see answer.h. */
#include <string.h>

#include "json/answer.h"
#include "json/json.h"

int json_write_embed_head(buf *b, const char *batch_id_json, const char *model, int dims) {
    const char *bid = batch_id_json ? batch_id_json : "null";
    return buf_append(b, "{\"batch_id\":", 12) || buf_append(b, bid, strlen(bid)) || buf_append(b, ",\"model\":", 9) ||
           json_write_string(b, model, strlen(model)) || buf_printf(b, ",\"dimensions\":%d,\"embeddings\":[", dims);
}

int json_write_embed_item(buf *b, const embed_item_out *it, const char *sep, const char *end) {
    return buf_printf(b, "%s{\"index\":%zu,\"id\":%s", sep, it->index, it->id_json ? it->id_json : "null") ||
           buf_append(b, ",\"embedding\":", 13) || json_write_floats(b, it->vec, it->dims) ||
           buf_printf(b, ",\"tokens\":%zu,\"truncated\":%s,\"cached\":%s", it->tokens, it->truncated ? "true" : "false",
                      it->cached ? "true" : "false") ||
           (it->metadata_json && (buf_append(b, ",\"metadata\":", 12) ||
                                  buf_append(b, it->metadata_json, strlen(it->metadata_json)))) ||
           buf_append(b, "}", 1) || buf_append(b, end, strlen(end));
}

int json_write_embed_usage(buf *b, const embed_usage *u) {
    return buf_printf(b, "\"usage\":{\"chunks\":%zu,\"tokens\":%zu,\"cached\":%zu,\"batches\":%d,\"queue_ms\":%.1f,"
                         "\"compute_ms\":%.1f}}\n",
                      u->chunks, u->tokens, u->cached, u->batches, u->queue_ms, u->compute_ms);
}

int json_write_stream_done(buf *b, const char *batch_id_json, const embed_usage *u) {
    const char *bid = batch_id_json ? batch_id_json : "null";
    return buf_append(b, "{\"done\":true,\"batch_id\":", 24) || buf_append(b, bid, strlen(bid)) ||
           buf_append(b, ",", 1) || json_write_embed_usage(b, u);
}

/* ---- OpenAI ---- */

int json_write_openai_head(buf *b) { return buf_append(b, "{\"object\":\"list\",\"data\":[", 25); }

int json_write_openai_item(buf *b, size_t index, const float *vec, size_t dims, int base64, const char *sep) {
    return buf_printf(b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", sep, index) ||
           (base64 ? json_write_base64_floats(b, vec, dims) : json_write_floats(b, vec, dims)) ||
           buf_append(b, "}", 1);
}

int json_write_openai_tail(buf *b, const char *model, size_t tokens) {
    return buf_append(b, "],\"model\":", 10) || json_write_string(b, model, strlen(model)) ||
           buf_printf(b, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}\n", tokens, tokens);
}

/* ---- reranking ---- */

int json_write_rerank_v1_head(buf *b, const char *model) {
    return buf_append(b, "{\"model\":", 9) || json_write_string(b, model, strlen(model)) ||
           buf_append(b, ",\"results\":[", 12);
}

int json_write_rerank_item(buf *b, const rerank_item_out *it, int v1, const char *sep) {
    int rc = buf_printf(b, "%s{\"index\":%zu,\"%s\":%.9g", sep, it->index, v1 ? "relevance_score" : "score",
                        it->score);
    if (!rc && it->text)
        rc = !v1 ? buf_append(b, ",\"text\":", 8) || json_write_string(b, it->text, it->text_len)
                 : buf_append(b, ",\"document\":{\"text\":", 20) || json_write_string(b, it->text, it->text_len) ||
                       buf_append(b, "}", 1);
    return rc || buf_append(b, "}", 1);
}

int json_write_rerank_v1_tail(buf *b, size_t tokens) {
    return buf_printf(b, "],\"usage\":{\"total_tokens\":%zu}}\n", tokens);
}

/* ---- /embed_all, /similarity, /tokenize ---- */

int json_write_token_vectors(buf *b, const float *rows, size_t n, size_t dims, const char *sep) {
    int rc = buf_append(b, sep, strlen(sep)) || buf_append(b, "[", 1);
    for (size_t t = 0; t < n && !rc; t++)
        rc = (t && buf_append(b, ",", 1)) || json_write_floats(b, rows + t * dims, dims);
    return rc || buf_append(b, "]", 1);
}

int json_write_similarity_item(buf *b, double cos, const char *sep) { return buf_printf(b, "%s%.9g", sep, cos); }

int json_write_tokenize_open(buf *b, size_t index, const int32_t *ids, size_t n, const char *sep) {
    return buf_printf(b, "%s{\"index\":%zu,\"ids\":", sep, index) || json_write_ints(b, ids, n) ||
           buf_append(b, ",\"tokens\":", 10);
}

int json_write_tokenize_close(buf *b, int truncated) {
    return buf_printf(b, ",\"truncated\":%s}", truncated ? "true" : "false");
}
