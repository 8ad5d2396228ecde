/* pipe: one request's way from its body to its vectors, the same for
 * `serve`, `worker` and `embed DIR`.
 *
 *   pipe_parse     reserve the parse's bytes, parse (a refusal names the field)
 *   pipe_prepare   reserve what the request holds until answered, tokenize and
 *                  validate, look the cache up, list the misses (a text met
 *                  twice is computed once)
 *   pipe_submit    hand the misses to the scheduler (PIPE_BUSY when its
 *                  queue is full); on_vector per computed vector, on_done at the end
 *   pipe_wait      or block until every vector is there
 *   pipe_write_*   the answer, in pieces (head, item k, tail): answer.c, whose
 *                  bytes are json/answer.c's
 *   pipe_free      everything, in one call, reservations included
 * pipe_run is that sequence for a caller that blocks (worker, embed DIR,
 * JSON lines, tokenize); the HTTP service runs its steps on different
 * threads (request thread, inference thread, I/O thread).
 *
 * Every step returns 0 or the kind of its refusal (j->refusal) with j->msg
 * filled; out of memory (a reservation that does not fit now, or an
 * allocation that failed) is PIPE_NO_MEMORY with j->retry_after, one that
 * could never fit PIPE_TOO_LARGE. The kinds are the pipeline's own words:
 * src/http alone turns them into HTTP statuses (http_status_of). The per-item
 * arrays live in one block (the job's arena); the token ids are the
 * tokenizer's, freed with it.
 */
#ifndef CEMBED_PIPE_H
#define CEMBED_PIPE_H

#include <pthread.h>

#include "base/base.h"
#include "cache/cache.h"
#include "cache/writer.h"
#include "json/request.h"
#include "sched/sched.h"

typedef struct pipe_env {
    cembed_model *m;
    cembed_model_info info;
    sched *s;
    gov *g;                     /* optional: reservations */
    cache *cache;               /* optional: lookups (one at a time, under cache_mu) */
    cache_writer *writer;       /* optional: stores of computed vectors */
    cache_scope scope;
    req_limits lim;
    pthread_mutex_t cache_mu;
    /* /tokenize's token strings (tokens.c): the vocabulary's traits, read on first use */
    int tok_ready;
    int tok_bytes;              /* a byte-level vocabulary (GPT-2's byte characters) */
    size_t tok_longest;         /* bytes of its longest token string */
    pthread_mutex_t tok_mu;
} pipe_env;

void pipe_env_init(pipe_env *e, cembed_model *m, sched *s, gov *g, const req_limits *lim);
void pipe_env_destroy(pipe_env *e);

/* The shapes of an answer. */
typedef enum {
    PIPE_EMBED,     /* {"batch_id","model","dimensions","embeddings":[...],"usage"} */
    PIPE_TEI,       /* [[...], ...] */
    PIPE_OPENAI,    /* {"object":"list","data":[...],"model","usage"} */
    PIPE_TOKENIZE,  /* [{"index","ids","tokens":[{"id","text","special","start","stop"}, ...],"truncated"}, ...] */
    PIPE_STREAM,    /* NDJSON: one line per item in completion order, then {"done":true,...} */
    PIPE_EMBED_ALL, /* [[[...] per token] per input]: every token's vector (TEI's /embed_all) */
    PIPE_SIMILARITY, /* [cos, ...]: item 0 (the source sentence) against each other item */
    PIPE_RERANK,    /* TEI: [{"index","score","text"?}, ...], best first */
    PIPE_RERANK_V1, /* {"model","results":[{"index","relevance_score","document"?}, ...],"usage"}, best first */
} pipe_form;

/* Why a request is refused. The service's refusals (pipe_refusal_transient)
 * say "not now": the same request may pass later; the others are the
 * request's own and pass never. */
typedef enum pipe_refusal {
    PIPE_OK = 0,
    PIPE_BAD_REQUEST,   /* malformed, or a value the model cannot take */
    PIPE_NOT_FOUND,     /* the model it names is not served here */
    PIPE_TOO_LARGE,     /* over a size limit (body, or memory the pool could never give) */
    PIPE_UNPROCESSABLE, /* well-formed, but a text over the model's length without "truncate" */
    PIPE_BUSY,          /* the scheduler's queue is full now (retry_after) */
    PIPE_NO_MEMORY,     /* memory is busy now, or an allocation failed (retry_after) */
    PIPE_UNAVAILABLE,   /* cancelled (its client left, the drain ran out) or the scheduler is stopping */
    PIPE_INTERNAL,      /* the server cannot do it (a model file it needs is unreadable) */
} pipe_refusal;

/* 1 for a refusal of the service's (busy, out of memory, unavailable): the
 * request itself is fine and may be retried. Cannot fail. */
int pipe_refusal_transient(pipe_refusal kind);

typedef struct pipe_job pipe_job;
struct pipe_job {
    pipe_env *e;
    request req;
    pipe_form form;
    /* per item (the arena) */
    int32_t **ids;
    size_t *n_ids;
    int *truncated;
    int *type1;                 /* rerank: item k's first token of the document (type 1) */
    int *miss_type;             /* ... per scheduler row */
    size_t *order;              /* rerank: the items, best score first (set by pipe_write_head) */
    uint8_t *cached;            /* the vector came from the cache (or from a twin in this request) */
    uint8_t (*keys)[CACHE_KEY_BYTES];
    size_t *slot;               /* scheduler row -> item */
    size_t *twin;               /* the item computed for k (k itself, or an earlier copy of its text) */
    size_t *next_copy;          /* from a computed item, the chain of the later copies of its text */
    const int32_t **miss_ids;
    size_t *miss_n;
    float *vec;                 /* rows of hidden floats */
    float **token_vec;          /* PIPE_EMBED_ALL: item k's n_ids[k] token rows */
    float *token_block;
    uint32_t (*spans)[4];       /* PIPE_TOKENIZE: per token (tokens.c), item k's from span_at[k] */
    size_t *span_at;
    int keyed;                  /* keys hold the items' cache keys */
    void *arena;
    size_t tokens, n_cached;
    sched_job sj;
    uint64_t held, parse_held;  /* bytes reserved from the governor */
    int whole_answer;           /* the caller keeps the whole answer in memory (worker): reserve it too */
    int ids_only;               /* PIPE_TOKENIZE for a caller that writes the ids itself: no token strings */
    size_t piece_bytes;         /* the answer writer's buffer: one flush plus the largest piece */
    const char *prompt;         /* put before every text: the request's, its prompt_name's or the model's default */
    /* optional hooks, called on the inference thread */
    void (*on_vector)(void *ctx, size_t k);   /* vec[k] is computed (raw; its twins are filled too) */
    void (*on_done)(void *ctx);               /* the last touch of the job by the scheduler */
    void *ctx;
    /* a refusal */
    pipe_refusal refusal;
    int retry_after;            /* seconds, for a transient refusal */
    int shed;                   /* refused because memory is busy now (PIPE_NO_MEMORY) */
    char msg[512];
};

/* Refuses j: sets j->refusal and j->msg (printf-style); PIPE_NO_MEMORY and
 * PIPE_UNAVAILABLE get a retry_after of 1 unless one is set. Returns kind. */
int pipe_refuse(pipe_job *j, pipe_refusal kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Reserves bytes from the governor into *held (the job's, or a caller's
 * before the job exists: a body), or refuses into j: PIPE_TOO_LARGE when
 * they could never fit the request pool, PIPE_NO_MEMORY + retry_after (and
 * shed) when they do not fit now. Nothing to do without a governor. Needs j->e. */
int pipe_hold(pipe_job *j, uint64_t *held, uint64_t bytes, const char *stage);
/* Gives back up to bytes of *held (never more than it holds). Cannot fail. */
void pipe_release(pipe_job *j, uint64_t *held, uint64_t bytes);
/* Parses body[0..len) of kind into j (zeroed by the caller). */
int pipe_parse(pipe_job *j, pipe_env *e, req_kind kind, const char *body, size_t len);
/* For callers that build the request themselves (embed DIR): n items whose
 * texts the caller sets in j->req.items[k] (owned by j from then on) and,
 * when already tokenized, pipe_set_tokens. */
int pipe_items(pipe_job *j, pipe_env *e, size_t n);
void pipe_set_tokens(pipe_job *j, size_t k, int32_t *ids, size_t n_ids, int truncated);
int pipe_prepare(pipe_job *j, pipe_form form);
/* key = the cache key of item k of j (tokenized: its ids and whether it was
 * cut are known), in j's model's scope (key.c). Returns 0 or CEMBED_ENOMEM. */
int pipe_item_key(const pipe_job *j, size_t k, uint8_t key[CACHE_KEY_BYTES]);
/* 0 once submitted (on_done follows, also at once when every vector was cached). */
int pipe_submit(pipe_job *j);
void pipe_wait(pipe_job *j);
/* Drops the submitted job's sequences no batch has taken (its client left):
 * on_done follows, and the job is refused (PIPE_UNAVAILABLE, "cancelled"). Safe on a job
 * that is done or was never submitted. Returns the sequences dropped. */
size_t pipe_cancel(pipe_job *j);
/* Normalizes vector k as asked (and cuts it to "dimensions"), once, before it is written. */
void pipe_finish_vector(pipe_job *j, size_t k);
/* Sizes b so that writing the answer in pieces (up to PIPE_OUT_FLUSH, then
 * one piece) never allocates: an answer that has begun cannot fail for memory. */
int pipe_answer_buffer(pipe_job *j, buf *b);
int pipe_write_head(pipe_job *j, buf *b);
int pipe_write_item(pipe_job *j, buf *b, size_t k, int first);
/* The answer's end; a stream cut short by a refusal ends with the caller's error line instead. */
int pipe_write_tail(pipe_job *j, buf *b);
/* A parsed (pipe_parse) or filled (pipe_items) job, to its end, blocking:
 * prepare, submit, wait, check for a refusal (cancelled, out of memory while
 * computing), finish every vector (normalized, cut to "dimensions"), and,
 * when out is not NULL, write the whole answer into out (replacing its
 * contents). PIPE_TOKENIZE is prepared only. Returns 0 or the kind of
 * the refusal (j->refusal), j->msg saying why; j is freed by the caller (pipe_free). */
int pipe_run(pipe_job *j, pipe_form form, buf *out);
void pipe_free(pipe_job *j);

/* ---- /tokenize's tokens (tokens.c) ---- */
#define PIPE_TOKEN_SPECIAL 0xFFFFFFFEu   /* span[0] of a token the template added */
#define PIPE_TOKEN_UNFOUND 0xFFFFFFFFu   /* span[0] of a token not found in the text */
/* Reads what the alignment needs of the model's vocabulary, once (any
 * thread). Cannot fail. */
void pipe_tokens_load(pipe_env *e);
/* Bytes of scratch pipe_tokens_align needs for a text of text_len bytes;
 * bytes pipe_tokens_write may append for n_ids tokens of it. Need the tokenizer. */
size_t pipe_tokens_scratch(const pipe_env *e, size_t text_len);
size_t pipe_tokens_bytes(const pipe_env *e, size_t n_ids, size_t text_len);
/* Fills span[k] = {char start, char stop, byte start, byte stop} of token k
 * of ids[0..n) in text[0..len), or span[k][0] = PIPE_TOKEN_SPECIAL or
 * PIPE_TOKEN_UNFOUND; backwards for a text cut from the left. Cannot fail. */
void pipe_tokens_align(const pipe_env *e, const char *text, size_t len, const int32_t *ids, size_t n, int backwards,
                       uint32_t (*span)[4], void *scratch);
/* Appends [{"id","text","special","start","stop"}, ...] (TEI's tokens) to b. Fails with ENOMEM. */
int pipe_tokens_write(buf *b, const pipe_env *e, const char *text, const int32_t *ids, size_t n,
                      const uint32_t (*span)[4]);

/* The answer's writer flushes at this size: reserved as part of a request. */
#define PIPE_OUT_FLUSH (64 * 1024)

#endif
