/* request: the bodies of POST /embed, POST /v1/embeddings and POST /tokenize.
 *
 * /embed (the seed's form):
 *   {"batch_id": STRING?, "chunks": [CHUNK, ...], "normalize": BOOL?, "truncate": BOOL?, "stream": BOOL?}
 *   CHUNK = STRING | {"id": STRING|INT?, "text": STRING | "content": STRING, "metadata": ANY?}
 * /embed (TEI form): {"inputs": STRING | [STRING, ...], "normalize"?, "truncate"?}
 * Both /embed forms also take "dimensions" (as OpenAI's), and every form
 * "prompt_name" (a prompt of the model's config_sentence_transformers.json)
 * or "prompt" (the text itself), and "truncation_direction" ("right" keeps
 * the start of an over-long text, "left" its end; TEI's "Right"/"Left" too).
 * /v1/embeddings (OpenAI): {"input": STRING | [STRING, ...] | [INT, ...] | [[INT, ...], ...],
 *   "model": STRING?, "encoding_format": "float"|"base64"?, "dimensions": INT?}
 * /tokenize: {"inputs"|"input"|"text": STRING | [STRING, ...], "add_special_tokens": BOOL? (TEI's; true)}
 * /similarity (TEI): {"inputs": {"source_sentence": STRING, "sentences": [STRING, ...]}}: items are the
 *   source sentence, then the sentences (at the top, {"source_sentence", "sentences"}, too)
 * /rerank (TEI): {"query": STRING, "texts": [STRING, ...], "raw_scores": BOOL?, "return_text": BOOL?,
 *   "truncate"?, "truncation_direction"?}
 * /v1/rerank (Cohere, Jina, infinity, vLLM): {"model"?, "query": STRING, "documents": [STRING |
 *   {"text": STRING}, ...], "top_n": INT?, "return_documents": BOOL?}
 *   Items are the documents; each is scored as the pair (query, document).
 *
 * Every refusal names the field and the limit (message via cembed_last_error,
 * the code in req->error: EFORMAT malformed, ELIMIT over a limit, ENOMEM);
 * no HTTP status is made here (src/pipe and src/http map the codes).
 */
#ifndef CEMBED_REQUEST_H
#define CEMBED_REQUEST_H

#include "base/base.h"

/* REQ_AUTO (POST /, TEI's and Inference Endpoints' root): the body says which: "query" a rerank,
 * "source_sentence" and "sentences" (at the top or inside "inputs") a similarity, anything else an
 * embedding; request.kind is then the one parsed. */
typedef enum { REQ_EMBED, REQ_OPENAI, REQ_TOKENIZE, REQ_SIMILARITY, REQ_RERANK, REQ_AUTO } req_kind;

typedef struct req_limits {
    size_t max_items;          /* chunks per request */
    size_t max_text_bytes;     /* bytes of one text */
    int max_depth;             /* JSON nesting */
} req_limits;

typedef struct req_item {
    char *id_json;             /* compact JSON of "id", or NULL */
    char *metadata_json;       /* compact JSON of "metadata", or NULL */
    char *text;                /* UTF-8, NUL-terminated; NULL when ids given */
    size_t text_len;
    int32_t *ids;              /* OpenAI token-id input, or NULL */
    size_t n_ids;
    int ids_are_tokens;        /* ids are the text's tokens, framed, from a caller that tokenized (pipe) */
    int truncated;             /* with ids_are_tokens */
} req_item;

typedef struct request {
    req_kind kind;
    int tei;                   /* "inputs" form: answer a bare list of vectors */
    char *batch_id_json;       /* compact JSON of "batch_id"; NULL if absent */
    char *batch_id;            /* its value: a string's bytes (valid UTF-8, escapes decoded, no NUL), an
                                  integer's digits; NULL if absent */
    size_t batch_id_len;
    int batch_id_is_string;
    req_item *items;
    size_t n_items;
    int normalize;             /* -1 = the model's setting */
    int truncate, stream;
    int base64;                /* OpenAI encoding_format */
    int dimensions;            /* 0 = all */
    char *prompt_name;         /* "prompt_name", or NULL */
    char *prompt;              /* "prompt", or NULL */
    char *model;               /* "model" (which of the served models), or NULL */
    int truncate_left;         /* "truncation_direction": "left" */
    int skip_special;          /* /tokenize "add_special_tokens": false: the template's tokens left out of the answer */
    /* rerank */
    char *query;               /* "query": the first text of every pair */
    size_t query_len;
    int rerank_v1;             /* the /v1/rerank form ("documents"): answer {"results": [...]} */
    int raw_scores;            /* TEI: the logit itself, not its sigmoid */
    int return_text;           /* the document's text in each result */
    size_t top_n;              /* results to answer, best first; 0 = all */
    int error;                 /* a refusal's CEMBED_E* code */
} request;

/* Parses body[0..len) of the given kind. OUT: *r (free with request_free,
 * also after a failure). Returns 0, or EFORMAT / ELIMIT / ENOMEM (also in
 * r->error) with the message naming the field. */
int request_parse(req_kind kind, const char *body, size_t len, const req_limits *lim, request *r);
void request_free(request *r);

/* Memory, for the governor's reservations (heap bytes, malloc's rounding
 * included): an upper bound of what request_parse holds at its peak for
 * body[0..len) (the parser's tree, the copies it keeps, the lexer's
 * buffers; the body itself not included), from one scan of the body; and
 * what a parsed request holds afterwards. */
size_t request_parse_bound(const char *body, size_t len);
size_t request_held_bytes(const request *r);

#endif
