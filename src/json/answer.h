/* answer: the pieces of the /embed answer (the seed's form), shared by the
 * HTTP service and the Redis worker so that both write the same JSON. */
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

#endif
