/* The answer of a computed job, in pieces (pipe_write_head, item k, tail):
 * which form the job asked for, and the job's values each piece needs (its
 * vectors finished, the rerank's order, the usage). The bytes themselves are
 * src/json/answer.c's. See pipe.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json/answer.h"
#include "json/json.h"
#include "pipe/pipe.h"

static int wants_normalize(const pipe_job *j) {
    if (j->req.kind == REQ_RERANK) return 0;   /* logits */
    return j->req.normalize < 0 ? j->e->info.normalize : j->req.normalize;
}

void pipe_finish_vector(pipe_job *j, size_t k) {
    const size_t H = (size_t)j->e->info.hidden;
    float *v = j->vec + k * H;
    if (wants_normalize(j)) cembed_l2_normalize(v, H);
    if (j->req.dimensions) cembed_l2_normalize(v, (size_t)j->req.dimensions);
}

/* A pair's score: the logit, or its sigmoid (sentence-transformers'
 * CrossEncoder default for one label) unless raw scores are asked. */
static double rerank_score(const pipe_job *j, size_t k) {
    const double x = j->vec[k * (size_t)j->e->info.hidden];
    return j->req.raw_scores ? x : 1.0 / (1.0 + exp(-x));
}

/* The rerank's order: best logit first, ties by index. */
static int by_score(const void *a, const void *b, void *ctx) {
    const pipe_job *j = ctx;
    const size_t x = *(const size_t *)a, y = *(const size_t *)b;
    const float sx = j->vec[x * (size_t)j->e->info.hidden], sy = j->vec[y * (size_t)j->e->info.hidden];
    if (sx != sy) return sx > sy ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int write_rerank_item(pipe_job *j, buf *b, size_t k, int first) {
    if (j->req.top_n && k >= j->req.top_n) return 0;
    const size_t idx = j->order[k];
    const req_item *it = &j->req.items[idx];
    const rerank_item_out o = {.index = idx, .score = rerank_score(j, idx),
                               .text = j->req.return_text ? it->text : NULL, .text_len = it->text_len};
    return json_write_rerank_item(b, &o, j->form == PIPE_RERANK_V1, first ? "" : ",");
}

/* {"index","ids","tokens":[TEI's tokens],"truncated"}; without the template's special tokens (the first
 * and last only) when "add_special_tokens" is false. */
static int write_tokenize_item(pipe_job *j, buf *b, size_t k, int first) {
    const uint32_t(*span)[4] = (const uint32_t(*)[4])(j->spans + j->span_at[k]);
    size_t from = 0, to = j->n_ids[k];
    if (j->req.skip_special) {
        if (to > from && span[from][0] == PIPE_TOKEN_SPECIAL) from++;
        if (to > from && span[to - 1][0] == PIPE_TOKEN_SPECIAL) to--;
    }
    return json_write_tokenize_open(b, k, j->ids[k] + from, to - from, first ? "" : ",") ||
           pipe_tokens_write(b, j->e, j->req.items[k].text, j->ids[k] + from, to - from, span + from) ||
           json_write_tokenize_close(b, j->truncated[k]);
}

/* Item k's cosine with item 0 (the source sentence), over the first
 * "dimensions" when given (both were cut the same way). */
static double similarity(const pipe_job *j, size_t k, size_t D) {
    const size_t H = (size_t)j->e->info.hidden;
    const float *s0 = j->vec, *v = j->vec + k * H;
    double dot = 0, n0 = 0, n1 = 0;
    for (size_t i = 0; i < D; i++) dot += (double)s0[i] * v[i], n0 += (double)s0[i] * s0[i], n1 += (double)v[i] * v[i];
    return dot / (sqrt(n0) * sqrt(n1) + 1e-30);
}

static embed_usage usage_of(const pipe_job *j) {
    return (embed_usage){.chunks = j->req.n_items, .tokens = j->tokens, .cached = j->n_cached,
                         .batches = j->sj.batches, .queue_ms = j->sj.queue_ms, .compute_ms = j->sj.compute_ms};
}

int pipe_write_head(pipe_job *j, buf *b) {
    if (j->order) { /* every score is in: best first */
        for (size_t k = 0; k < j->req.n_items; k++) j->order[k] = k;
        qsort_r(j->order, j->req.n_items, sizeof *j->order, by_score, j);
    }
    switch (j->form) {
    case PIPE_RERANK_V1: return json_write_rerank_v1_head(b, j->e->info.name);
    case PIPE_STREAM: return 0;
    case PIPE_RERANK:
    case PIPE_EMBED_ALL:
    case PIPE_SIMILARITY:
    case PIPE_TOKENIZE:
    case PIPE_TEI: return buf_append(b, "[", 1);
    case PIPE_OPENAI: return json_write_openai_head(b);
    default:
        return json_write_embed_head(b, j->req.batch_id_json, j->e->info.name,
                                     j->req.dimensions ? j->req.dimensions : j->e->info.hidden);
    }
}

int pipe_write_item(pipe_job *j, buf *b, size_t k, int first) {
    const size_t H = (size_t)j->e->info.hidden, D = j->req.dimensions ? (size_t)j->req.dimensions : H;
    const float *v = j->vec ? j->vec + k * H : NULL;
    const char *sep = first ? "" : ",";
    switch (j->form) {
    case PIPE_RERANK:
    case PIPE_RERANK_V1: return write_rerank_item(j, b, k, first);
    case PIPE_TOKENIZE: return write_tokenize_item(j, b, k, first);
    case PIPE_TEI: return buf_append(b, sep, strlen(sep)) || json_write_floats(b, v, D);
    case PIPE_SIMILARITY:   /* item 0, the source sentence, is not answered */
        return k == 0 ? 0 : json_write_similarity_item(b, similarity(j, k, D), k == 1 ? "" : ",");
    case PIPE_EMBED_ALL: return json_write_token_vectors(b, j->token_vec[k], j->n_ids[k], H, sep);
    case PIPE_OPENAI: return json_write_openai_item(b, k, v, D, j->req.base64, sep);
    default: {
        const req_item *it = &j->req.items[k];
        const embed_item_out o = {.index = k, .id_json = it->id_json, .metadata_json = it->metadata_json, .vec = v,
                                  .dims = D, .tokens = j->n_ids[k], .truncated = j->truncated[k],
                                  .cached = j->cached && j->cached[k]};
        const int stream = j->form == PIPE_STREAM;
        return json_write_embed_item(b, &o, stream ? "" : sep, stream ? "\n" : "");
    }
    }
}

int pipe_write_tail(pipe_job *j, buf *b) {
    const embed_usage u = usage_of(j);
    switch (j->form) {
    case PIPE_STREAM: return json_write_stream_done(b, j->req.batch_id_json, &u);
    case PIPE_EMBED_ALL:
    case PIPE_SIMILARITY:
    case PIPE_TOKENIZE:
    case PIPE_RERANK:
    case PIPE_TEI: return buf_append(b, "]\n", 2);
    case PIPE_RERANK_V1: return json_write_rerank_v1_tail(b, j->tokens);
    case PIPE_OPENAI: return json_write_openai_tail(b, j->e->info.name, j->tokens);
    default: return buf_append(b, "],", 2) || json_write_embed_usage(b, &u);
    }
}
