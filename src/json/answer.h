/* answer: the pieces of every answer's JSON, from plain values (the
 * pipeline, src/pipe, chooses which form and hands them its job's values):
 *   /embed        {"batch_id","model","dimensions","embeddings":[item, ...],"usage"}
 *   stream        item per line, then {"done":true,"batch_id","usage"}
 *   OpenAI        {"object":"list","data":[{"object":"embedding","index","embedding"}, ...],"model","usage"}
 *   /rerank       [{"index","score","text"?}, ...]
 *   /v1/rerank    {"model","results":[{"index","relevance_score","document"?}, ...],"usage"}
 *   /embed_all    [[[...] per token] per input]
 *   /similarity   [cos, ...]
 *   /tokenize     [{"index","ids","tokens":[...],"truncated"}, ...]
 * The HTTP service, the Redis worker and the CLI all write through these,
 * so all write the same bytes. Every writer appends to b and fails only with
 * ENOMEM (nothing when b has room: see pipe_answer_buffer). */
#ifndef CEMBED_ANSWER_H
#define CEMBED_ANSWER_H

#include "base/base.h"

typedef struct embed_item_out {
    size_t index;
    const char *id_json, *metadata_json;   /* compact JSON, or NULL */
    const float *vec;
    size_t dims, tokens;
    int truncated, cached;
} embed_item_out;

typedef struct embed_usage {
    size_t chunks, tokens, cached;
    int batches;
    double queue_ms, compute_ms;
} embed_usage;

/* {"batch_id":...,"model":...,"dimensions":N,"embeddings":[ */
int json_write_embed_head(buf *b, const char *batch_id_json, const char *model, int dims);
/* sep, then {"index","id","embedding","tokens","truncated","cached","metadata"?}, then end */
int json_write_embed_item(buf *b, const embed_item_out *it, const char *sep, const char *end);
/* "usage":{...}} and a newline */
int json_write_embed_usage(buf *b, const embed_usage *u);
/* {"done":true,"batch_id":...,"usage":{...}} and a newline: a stream's last line */
int json_write_stream_done(buf *b, const char *batch_id_json, const embed_usage *u);

/* {"object":"list","data":[ */
int json_write_openai_head(buf *b);
/* sep, then {"object":"embedding","index":N,"embedding":[...] or "base64"} */
int json_write_openai_item(buf *b, size_t index, const float *vec, size_t dims, int base64, const char *sep);
/* ],"model":...,"usage":{"prompt_tokens":N,"total_tokens":N}} and a newline */
int json_write_openai_tail(buf *b, const char *model, size_t tokens);

typedef struct rerank_item_out {
    size_t index;
    double score;
    const char *text;   /* returned with it ("return_text"), or NULL */
    size_t text_len;
} rerank_item_out;

/* {"model":...,"results":[ (/v1/rerank; TEI's /rerank opens with "[") */
int json_write_rerank_v1_head(buf *b, const char *model);
/* sep, then TEI's {"index","score","text"?} or, v1, {"index","relevance_score","document":{"text"}?} */
int json_write_rerank_item(buf *b, const rerank_item_out *it, int v1, const char *sep);
/* ],"usage":{"total_tokens":N}} and a newline */
int json_write_rerank_v1_tail(buf *b, size_t tokens);

/* sep, then [[...], ...]: one input's n token vectors, rows of dims floats */
int json_write_token_vectors(buf *b, const float *rows, size_t n, size_t dims, const char *sep);
/* sep, then a cosine */
int json_write_similarity_item(buf *b, double cos, const char *sep);
/* sep, then {"index":N,"ids":[...],"tokens": ; the tokens follow (pipe_tokens_write), then the close:
 * ,"truncated":...} */
int json_write_tokenize_open(buf *b, size_t index, const int32_t *ids, size_t n, const char *sep);
int json_write_tokenize_close(buf *b, int truncated);

#endif
