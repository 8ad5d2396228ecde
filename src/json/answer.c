/* The /embed answer's pieces; see answer.h. */
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
