/* The request pipeline; see pipe.h. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pipe/pipe.h"

#define BLOCK 32   /* heap overhead bound of one block */
#define NONE ((size_t)-1)

void pipe_env_init(pipe_env *e, cembed_model *m, sched *s, gov *g, const req_limits *lim) {
    memset(e, 0, sizeof *e);
    e->m = m;
    e->s = s;
    e->g = g;
    e->lim = *lim;
    cembed_model_get_info(m, &e->info);
    pthread_mutex_init(&e->cache_mu, NULL);
    pthread_mutex_init(&e->tok_mu, NULL);
}

void pipe_env_destroy(pipe_env *e) {
    pthread_mutex_destroy(&e->cache_mu);
    pthread_mutex_destroy(&e->tok_mu);
}

/* ---- refusals ---- */

int pipe_refuse(pipe_job *j, pipe_refusal kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->msg, sizeof j->msg, fmt, ap);
    va_end(ap);
    j->refusal = kind;
    if ((kind == PIPE_NO_MEMORY || kind == PIPE_UNAVAILABLE) && !j->retry_after) j->retry_after = 1;
    return kind;
}

int pipe_refusal_transient(pipe_refusal kind) {
    return kind == PIPE_BUSY || kind == PIPE_NO_MEMORY || kind == PIPE_UNAVAILABLE;
}

static int no_memory(pipe_job *j) { return pipe_refuse(j, PIPE_NO_MEMORY, "out of memory; retry later"); }

/* Seconds a refused client should wait: the queue's tokens at the measured
 * speed, at least 1, at most 60. */
static int retry_after(const pipe_env *e) {
    sched_stats st;
    sched_get_stats(e->s, &st);
    const double rate = st.compute_s > 0.5 ? (double)st.tokens / st.compute_s : 2000.0;
    const double t = (double)st.queued_tokens / rate;
    return t < 1 ? 1 : t > 60 ? 60 : (int)t + 1;
}

int pipe_hold(pipe_job *j, uint64_t *held, uint64_t bytes, const char *stage) {
    gov *g = j->e->g;
    if (!g || !gov_pool(g) || bytes == 0) return 0;
    if (gov_reserve(g, bytes) == 0) {
        *held += bytes;
        return 0;
    }
    if (bytes > gov_pool(g))
        return pipe_refuse(
            j, PIPE_TOO_LARGE,
            "the request needs %.1f MB of memory (%s), more than the server's request pool of %.1f MB "
            "(EMBEDDING_MAX_MEMORY_PERCENT of the memory limit, less the model and the batch workspace); "
            "split it into smaller requests",
            bytes / 1048576.0, stage, gov_pool(g) / 1048576.0);
    j->retry_after = retry_after(j->e);
    j->shed = 1;
    return pipe_refuse(j, PIPE_NO_MEMORY, "memory is busy with other requests (%s %s); retry later", stage,
                       cembed_last_error());
}

void pipe_release(pipe_job *j, uint64_t *held, uint64_t bytes) {
    bytes = CE_MIN(bytes, *held);
    if (j->e && j->e->g && bytes) gov_unreserve(j->e->g, bytes);
    *held -= bytes;
}

/* ---- parse ---- */

int pipe_parse(pipe_job *j, pipe_env *e, req_kind kind, const char *body, size_t len) {
    j->e = e;
    if (len > e->lim.max_text_bytes)
        return pipe_refuse(j, PIPE_TOO_LARGE, "body of %zu bytes is over the limit of %zu (max_body_bytes)", len,
                           e->lim.max_text_bytes);
    if (pipe_hold(j, &j->parse_held, request_parse_bound(body, len), "to parse")) return j->refusal;
    const int rc = request_parse(kind, body, len, &e->lim, &j->req);
    if (rc) {
        if (rc == CEMBED_ENOMEM) return pipe_refuse(j, PIPE_NO_MEMORY, "out of memory while parsing; retry later");
        return pipe_refuse(j, rc == CEMBED_ELIMIT ? PIPE_TOO_LARGE : PIPE_BAD_REQUEST, "%s", cembed_last_error());
    }
    if (j->req.dimensions > e->info.hidden)
        return pipe_refuse(j, PIPE_BAD_REQUEST, "\"dimensions\" is %d, the model has %d", j->req.dimensions,
                           e->info.hidden);
    return 0;
}

int pipe_items(pipe_job *j, pipe_env *e, size_t n) {
    j->e = e;
    j->req.normalize = -1;
    j->req.truncate = 1;
    if (n && !(j->req.items = base_calloc(n, sizeof *j->req.items))) return no_memory(j);
    j->req.n_items = n;
    return 0;
}

/* ---- prepare ---- */

/* Bytes the parsed request needs from now until its answer is sent, beyond
 * request_held_bytes: the arena, token ids (the tokenizer keeps exactly the
 * ids of a text, at most the limit: a token takes at least one byte, and
 * [CLS] and [SEP] are added), vectors and the writer's buffer (one flush
 * plus one item; the whole answer for a caller that keeps it). OUT:
 * *transient, the tokenizer's scratch for the longest text (freed after
 * tokenizing). */
static uint64_t need_bytes(pipe_job *j, size_t *transient) {
    const cembed_model_info *i = &j->e->info;
    const uint64_t n = j->req.n_items, H = (uint64_t)i->hidden;
    uint64_t longest = 0, item = 0, ids = 0;
    for (size_t k = 0; k < n; k++) {
        const req_item *it = &j->req.items[k];
        longest = CE_MAX(longest, (uint64_t)it->text_len);
        /* a token takes at least one byte, but for a word's added prefix (Metaspace's) and the template's
         * special tokens; a pair holds the query too */
        const uint64_t t = (it->text ? it->text_len + 8 : it->n_ids + 2) + j->req.query_len;
        ids += CE_MIN(t, (uint64_t)i->max_seq_len) * sizeof(int32_t) + BLOCK;
        uint64_t line = (it->id_json ? strlen(it->id_json) : 0) + (it->metadata_json ? strlen(it->metadata_json) : 0);
        if (j->req.return_text) line = CE_MAX(line, 6 * (uint64_t)it->text_len + 64);   /* escaped: x6 */
        item = CE_MAX(item, line);
    }
    const size_t plen = j->prompt ? strlen(j->prompt) : 0;
    longest += plen + j->req.query_len;
    /* codepoints x3 + ids while encoding; left truncation keeps all the text's ids until it cuts */
    *transient = (size_t)(56 * longest + 64 * 1024) + (j->req.truncate_left ? (size_t)(4 * longest + 8) : 0);
    /* the largest piece: an item's id and metadata (copied raw), its vector (17 bytes a float at most, base64
     * less), its ids for /tokenize (12 a number); the head's batch_id and model name (escaped: x6) */
    const size_t bid = j->req.batch_id_json ? strlen(j->req.batch_id_json) : 0;
    j->piece_bytes = PIPE_OUT_FLUSH + (size_t)item + (size_t)H * 18 + (size_t)i->max_seq_len * 12 +
                     6 * (bid + strlen(i->name)) + 4096;
    uint64_t spans = 0;
    if (j->form == PIPE_TOKENIZE && !j->ids_only) { /* each token's span and its TEI object (tokens.c) */
        j->piece_bytes += pipe_tokens_bytes(j->e, (size_t)i->max_seq_len, (size_t)longest);
        *transient += pipe_tokens_scratch(j->e, (size_t)longest);
        spans = (ids / sizeof(int32_t)) * 4 * sizeof(uint32_t) + n * sizeof(size_t) + BLOCK;
    }
    const uint64_t arena = n * (2 * sizeof(int32_t *) + 8 * sizeof(size_t) + 3 * sizeof(int) + 1 + CACHE_KEY_BYTES) +
                           n * H * sizeof(float) + 2 * BLOCK;
    uint64_t out = j->piece_bytes;
    if (j->form == PIPE_EMBED_ALL) { /* every token's vector, and one input's tokens as the largest piece */
        const uint64_t all = (ids / sizeof(int32_t)) * H * sizeof(float) + n * (sizeof(float *) + BLOCK);
        j->piece_bytes += (size_t)i->max_seq_len * (size_t)H * 18;
        out += all + (uint64_t)i->max_seq_len * H * 18;
    }
    if (j->whole_answer) out += 2 * n * (H * 17 + 512) + j->req.n_items * item;
    return ids + arena + out + spans + n * (plen + BLOCK);   /* the prompted texts replace the texts */
}

/* Carves the per-item arrays from one block. */
static int arena(pipe_job *j, int vectors) {
    const size_t n = j->req.n_items, H = (size_t)j->e->info.hidden;
    const int pairs = j->req.kind == REQ_RERANK;
    const size_t sz[] = {n * sizeof *j->ids, n * sizeof *j->n_ids, n * sizeof *j->truncated, n * sizeof *j->slot,
                         n * sizeof *j->twin, n * sizeof *j->next_copy, n * sizeof *j->miss_ids, n * sizeof *j->miss_n,
                         vectors ? n * H * sizeof(float) : 0, n * CACHE_KEY_BYTES, n,
                         pairs ? n * sizeof *j->type1 : 0, pairs ? n * sizeof *j->miss_type : 0,
                         pairs ? n * sizeof *j->order : 0};
    void **dst[] = {(void **)&j->ids, (void **)&j->n_ids, (void **)&j->truncated, (void **)&j->slot,
                    (void **)&j->twin, (void **)&j->next_copy, (void **)&j->miss_ids, (void **)&j->miss_n, (void **)&j->vec,
                    (void **)&j->keys, (void **)&j->cached, (void **)&j->type1, (void **)&j->miss_type,
                    (void **)&j->order};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sz / sizeof *sz; i++) total += (sz[i] + 63) & ~(size_t)63;
    char *p = j->arena = base_calloc(1, total ? total : 1);
    if (!p) return -1;
    for (size_t i = 0; i < sizeof sz / sizeof *sz; i++) {
        *dst[i] = sz[i] ? p : NULL;
        p += (sz[i] + 63) & ~(size_t)63;
    }
    return 0;
}

void pipe_set_tokens(pipe_job *j, size_t k, int32_t *ids, size_t n_ids, int truncated) {
    j->req.items[k].ids = ids;   /* framed already: pipe_prepare keeps them as they are */
    j->req.items[k].n_ids = n_ids;
    j->req.items[k].ids_are_tokens = 1;
    j->req.items[k].truncated = truncated;
}

/* /tokenize: where each token came from in its text (tokens.c). */
static int align_all(pipe_job *j) {
    const size_t n = j->req.n_items;
    size_t total = 0, longest = 0;
    for (size_t k = 0; k < n; k++) total += j->n_ids[k], longest = CE_MAX(longest, j->req.items[k].text_len);
    j->span_at = base_malloc(n * sizeof *j->span_at + CE_MAX(total, (size_t)1) * sizeof *j->spans);
    void *scratch = base_malloc(pipe_tokens_scratch(j->e, longest));
    if (!j->span_at || !scratch) {
        base_free(scratch);
        return no_memory(j);
    }
    j->spans = (uint32_t(*)[4])(j->span_at + n);
    for (size_t k = 0, at = 0; k < n; at += j->n_ids[k++]) {
        const req_item *it = &j->req.items[k];
        j->span_at[k] = at;
        pipe_tokens_align(j->e, it->text ? it->text : "", it->text_len, j->ids[k], j->n_ids[k],
                          j->truncated[k] && j->req.truncate_left, j->spans + at, scratch);
    }
    base_free(scratch);
    return 0;
}

static int tokenize_all(pipe_job *j) {
    const cembed_model_info *i = &j->e->info;
    for (size_t k = 0; k < j->req.n_items; k++) {
        req_item *it = &j->req.items[k];
        size_t full;
        if (it->ids_are_tokens) { /* tokenized by the caller: take them over */
            j->ids[k] = it->ids;
            j->n_ids[k] = it->n_ids;
            j->truncated[k] = it->truncated;
            it->ids = NULL;
            full = it->n_ids;
        } else if (it->text && j->req.kind == REQ_RERANK) {
            if (cembed_tokenize_pair(j->e->m, j->req.query, j->req.query_len, it->text, it->text_len, &j->ids[k],
                                     &j->n_ids[k], &j->type1[k], &j->truncated[k], &full))
                return no_memory(j);
        } else if (it->text) {
            if (cembed_tokenize_ex(j->e->m, it->text, it->text_len, j->req.truncate_left, &j->ids[k], &j->n_ids[k],
                                   &j->truncated[k], &full))
                return no_memory(j);
        } else { /* token ids: the template's special tokens ([CLS] ids [SEP]; ids <|endoftext|>) unless there */
            const size_t head = i->cls_id >= 0, tail = i->sep_id >= 0;
            const int framed = (head || tail) && it->n_ids >= head + tail && (!head || it->ids[0] == i->cls_id) &&
                               (!tail || it->ids[it->n_ids - 1] == i->sep_id);
            const size_t want = it->n_ids + (framed ? 0 : head + tail), keep = CE_MIN(want, (size_t)i->max_seq_len);
            full = want;
            if (!(j->ids[k] = base_malloc(keep * sizeof(int32_t)))) return no_memory(j);
            size_t o = 0;
            if (head) j->ids[k][o++] = i->cls_id;
            const size_t first = framed ? head : 0, end = it->n_ids - (framed ? tail : 0);
            for (size_t t = first; t < end && o + tail < keep; t++) {
                if (it->ids[t] < 0 || it->ids[t] >= i->vocab_size)
                    return pipe_refuse(j, PIPE_BAD_REQUEST,
                                       "input[%zu][%zu]: token id %d is outside the vocabulary of %d", k, t,
                                       (int)it->ids[t], i->vocab_size);
                j->ids[k][o++] = it->ids[t];
            }
            if (tail) j->ids[k][o++] = i->sep_id;
            j->n_ids[k] = o;
            j->truncated[k] = full > keep;
        }
        if (j->truncated[k] && !j->req.truncate && j->req.kind == REQ_RERANK)
            return pipe_refuse(j, PIPE_UNPROCESSABLE,
                               "%s[%zu] and the query have %zu tokens together, over the model limit of %d; send "
                               "\"truncate\": true or shorten them",
                               j->req.rerank_v1 ? "documents" : "texts", k, full, i->max_seq_len);
        if (j->truncated[k] && !j->req.truncate)
            return pipe_refuse(j, PIPE_UNPROCESSABLE,
                               "chunks[%zu] (id %.200s) has %zu tokens, over the model limit of %d; send \"truncate\": "
                               "true or split it",
                               k, it->id_json ? it->id_json : "null", full, i->max_seq_len);
        j->tokens += j->n_ids[k];
    }
    return 0;
}

/* The cache key of every item (pipe_item_key, key.c); then the hits, read
 * into vec raw, like a computed vector, so both are finished the same way. */
static int cache_lookup(pipe_job *j) {
    pipe_env *e = j->e;
    const size_t n = j->req.n_items;
    for (size_t k = 0; k < n; k++)
        if (pipe_item_key(j, k, j->keys[k])) return no_memory(j);
    j->keyed = 1;
    pthread_mutex_lock(&e->cache_mu);
    /* committed rows and those the writer has not stored yet */
    int hits = cache_writer_lookup(e->writer, e->cache, (const uint8_t(*)[CACHE_KEY_BYTES])j->keys, n,
                                   e->info.hidden, j->vec, j->cached);
    pthread_mutex_unlock(&e->cache_mu);
    if (hits < 0) { /* the cache failing is not the request failing */
        log_warn("cache lookup failed: %s", cembed_last_error());
        memset(j->cached, 0, n);
        hits = 0;
    }
    j->n_cached = (size_t)hits;
    return 0;
}

/* The misses, each text once: twin[k] is the first item with k's key (k
 * itself for the first), found through a hash table of the keys. */
static int find_twins(pipe_job *j) {
    const size_t n = j->req.n_items;
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    size_t *table = base_malloc(cap * sizeof *table);
    if (!table) return -1;
    memset(table, 0xff, cap * sizeof *table);
    for (size_t k = 0; k < n; k++) {
        if (j->cached[k]) continue;
        uint64_t h;
        memcpy(&h, j->keys[k], sizeof h);   /* the key is a hash already */
        for (size_t p = (size_t)h & (cap - 1);; p = (p + 1) & (cap - 1)) {
            if (table[p] == NONE) {
                table[p] = k;
                break;
            }
            if (memcmp(j->keys[table[p]], j->keys[k], CACHE_KEY_BYTES) == 0) {
                j->twin[k] = table[p];
                break;
            }
        }
    }
    base_free(table);
    return 0;
}

/* The prompt: the request's text, else its prompt_name's, else the model's
 * default (none for token-id input, which is final). */
static int choose_prompt(pipe_job *j) {
    const request *r = &j->req;
    if (r->kind == REQ_RERANK) { /* a cross-encoder reads the pair as it is */
        if (r->prompt || r->prompt_name)
            return pipe_refuse(j, PIPE_BAD_REQUEST, "\"prompt\" and \"prompt_name\" do not apply to reranking");
        return 0;
    }
    const int ids_in = r->n_items && !r->items[0].text && !r->items[0].ids_are_tokens;
    if (ids_in && (r->prompt || r->prompt_name))
        return pipe_refuse(j, PIPE_BAD_REQUEST, "\"prompt\" and \"prompt_name\" apply to text input, not to token ids");
    if (r->prompt) {
        j->prompt = r->prompt;
    } else if (!ids_in) {
        j->prompt = cembed_prompt(j->e->m, r->prompt_name);
        if (!j->prompt)
            return pipe_refuse(j, PIPE_BAD_REQUEST, "\"prompt_name\" \"%.64s\" is not one of the model's prompts (%s)",
                               r->prompt_name, *j->e->info.prompt_names ? j->e->info.prompt_names : "it has none");
    }
    if (j->prompt && !*j->prompt) j->prompt = NULL;
    return 0;
}

/* Puts the prompt before every text (tokenized, and keyed in the cache, as one text). */
static int apply_prompt(pipe_job *j) {
    const size_t plen = strlen(j->prompt);
    for (size_t k = 0; k < j->req.n_items; k++) {
        req_item *it = &j->req.items[k];
        if (!it->text || it->ids_are_tokens) continue;
        char *t = base_malloc(plen + it->text_len + 1);
        if (!t) return no_memory(j);
        memcpy(t, j->prompt, plen);
        memcpy(t + plen, it->text, it->text_len + 1);
        base_free(it->text);
        it->text = t;
        it->text_len += plen;
    }
    return 0;
}

/* A reranker scores pairs and an embedding model embeds texts: each
 * refuses the other's routes by name. */
static int check_kind(pipe_job *j) {
    const cembed_model_info *i = &j->e->info;
    const int reranker = strcmp(i->kind, "reranker") == 0;
    if (j->form == PIPE_TOKENIZE) return 0;
    if (j->req.kind == REQ_RERANK && !reranker)
        return pipe_refuse(j, PIPE_BAD_REQUEST,
                           "model \"%s\" is an embedding model; reranking needs a cross-encoder (a "
                           "*ForSequenceClassification model such as BAAI/bge-reranker-base)",
                           i->name);
    if (j->req.kind != REQ_RERANK && reranker)
        return pipe_refuse(j, PIPE_BAD_REQUEST,
                           "model \"%s\" is a reranker: it scores (query, document) pairs with POST /rerank or "
                           "/v1/rerank, and gives no embeddings",
                           i->name);
    if (reranker && i->hidden != 1)
        return pipe_refuse(j, PIPE_BAD_REQUEST,
                           "model \"%s\" is a classifier with %d labels; reranking needs one label (a relevance "
                           "score)",
                           i->name, i->hidden);
    if (j->req.kind == REQ_RERANK && j->req.dimensions)
        return pipe_refuse(j, PIPE_BAD_REQUEST, "\"dimensions\" does not apply to reranking");
    return 0;
}

int pipe_prepare(pipe_job *j, pipe_form form) {
    pipe_env *e = j->e;
    const size_t n = j->req.n_items;
    j->form = form;
    if (check_kind(j) || choose_prompt(j)) return j->refusal;
    if (form == PIPE_TOKENIZE && !j->ids_only) pipe_tokens_load(e);
    /* what the request needs until it is answered, reserved before the parse's bytes are given back */
    size_t transient;
    const uint64_t need = request_held_bytes(&j->req) + need_bytes(j, &transient) + transient;
    if (pipe_hold(j, &j->held, need, "for its tokens and vectors")) {
        pipe_release(j, &j->parse_held, j->parse_held);   /* the parse's share may be enough */
        j->refusal = PIPE_OK, j->shed = 0;
        if (pipe_hold(j, &j->held, need, "for its tokens and vectors")) return j->refusal;
    }
    pipe_release(j, &j->parse_held, j->parse_held);
    if (j->prompt && apply_prompt(j)) return j->refusal;
    if (arena(j, form != PIPE_TOKENIZE)) return no_memory(j);
    int rc = tokenize_all(j);
    if (!rc && form == PIPE_TOKENIZE && !j->ids_only) rc = align_all(j);
    cembed_thread_release();   /* the tokenizer's scratch for this thread */
    pipe_release(j, &j->held, transient);
    if (rc || form == PIPE_TOKENIZE) return rc;
    if (form == PIPE_EMBED_ALL) { /* token vectors: computed every time, never cached */
        size_t total = 0;
        for (size_t k = 0; k < n; k++) total += j->n_ids[k];
        j->token_vec = base_malloc(n * sizeof *j->token_vec);
        j->token_block = base_malloc(CE_MAX(total, (size_t)1) * (size_t)e->info.hidden * sizeof(float));
        if (!j->token_vec || !j->token_block) return no_memory(j);
        for (size_t k = 0, off = 0; k < n; off += j->n_ids[k++]) j->token_vec[k] = j->token_block + off * e->info.hidden;
    } else if (e->cache && cache_lookup(j)) {
        return j->refusal;
    }
    for (size_t k = 0; k < n; k++) j->twin[k] = k, j->next_copy[k] = NONE;
    if (e->cache && find_twins(j)) return no_memory(j);
    for (size_t k = n; k-- > 0;)
        if (j->twin[k] != k) j->next_copy[k] = j->next_copy[j->twin[k]], j->next_copy[j->twin[k]] = k;
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        if (j->cached[k] || j->twin[k] != k) continue;
        j->slot[m] = k;
        if (j->miss_type) j->miss_type[m] = j->type1[k];
        j->miss_ids[m] = j->ids[k];
        j->miss_n[m++] = j->n_ids[k];
    }
    j->sj = (sched_job){.model = e->m, .ids = j->miss_ids, .n_ids = j->miss_n, .type1_from = j->miss_type, .n = m,
                        .out = j->vec, .slot = j->slot, .token_out = j->token_vec};
    return 0;
}

/* ---- compute ---- */

/* The scheduler's callbacks (inference thread). */
static void on_vector(void *ctx, size_t k, const float *vec) {
    pipe_job *j = ctx;
    const size_t H = (size_t)j->e->info.hidden;
    if (j->e->writer && j->keyed) cache_writer_put(j->e->writer, j->keys[k], vec);   /* raw, as computed */
    if (j->on_vector) j->on_vector(j->ctx, k);
    for (size_t t = j->next_copy[k]; t != NONE; t = j->next_copy[t]) {
        memcpy(j->vec + t * H, vec, H * sizeof(float));
        if (j->on_vector) j->on_vector(j->ctx, t);
    }
}

static void check_failed(pipe_job *j) {
    if (j->sj.cancelled)
        pipe_refuse(j, PIPE_UNAVAILABLE,
                    "cancelled before %zu of its %zu vectors were computed (its client left, or the server's "
                    "drain time ran out); retry",
                    j->sj.failed, j->req.n_items);
    else if (j->sj.failed)
        pipe_refuse(j, PIPE_NO_MEMORY, "out of memory while computing %zu of its %zu vectors; retry later",
                    j->sj.failed, j->req.n_items);
}

static void on_done(void *ctx) {
    pipe_job *j = ctx;
    check_failed(j);
    if (j->on_done) j->on_done(j->ctx);
}

int pipe_submit(pipe_job *j) {
    j->sj.on_vector = on_vector;
    j->sj.on_done = j->on_done ? on_done : NULL;   /* a job someone waits for is not touched after the wait */
    j->sj.ctx = j;
    const int rc = sched_submit(j->e->s, &j->sj);
    if (rc == CEMBED_ELIMIT) {
        j->retry_after = retry_after(j->e);
        return pipe_refuse(j, PIPE_BUSY, "%s", cembed_last_error());
    }
    if (rc) return pipe_refuse(j, rc == CEMBED_ENOMEM ? PIPE_NO_MEMORY : PIPE_UNAVAILABLE, "%s", cembed_last_error());
    return 0;
}

size_t pipe_cancel(pipe_job *j) {
    return j->e && j->e->s && j->sj.n ? sched_cancel(j->e->s, &j->sj) : 0;
}

void pipe_wait(pipe_job *j) {
    pipe_env *e = j->e;
    sched_wait(e->s, &j->sj);
    check_failed(j);
    if (j->refusal) return;
    if (e->cache && !e->writer && j->sj.n) { /* no writer thread (embed DIR): store the computed ones here */
        uint8_t (*keys)[CACHE_KEY_BYTES] = base_malloc(j->sj.n * CACHE_KEY_BYTES);
        float *vecs = base_malloc(j->sj.n * (size_t)e->info.hidden * sizeof(float));
        const size_t H = (size_t)e->info.hidden;
        if (keys && vecs) {
            for (size_t i = 0; i < j->sj.n; i++) {
                memcpy(keys[i], j->keys[j->slot[i]], CACHE_KEY_BYTES);
                memcpy(vecs + i * H, j->vec + j->slot[i] * H, H * sizeof(float));
            }
            pthread_mutex_lock(&e->cache_mu);
            if (cache_put_many(e->cache, (const uint8_t(*)[CACHE_KEY_BYTES])keys, j->sj.n, e->info.hidden, vecs))
                log_warn("cache write failed (the vectors are still answered): %s", cembed_last_error());
            pthread_mutex_unlock(&e->cache_mu);
        } else {
            log_warn("cache write skipped: out of memory");
        }
        base_free(keys);
        base_free(vecs);
    }
}

/* ---- the answer ---- */

int pipe_answer_buffer(pipe_job *j, buf *b) {
    if (buf_reserve(b, j->piece_bytes)) return no_memory(j);
    return 0;
}

int pipe_run(pipe_job *j, pipe_form form, buf *out) {
    int rc = pipe_prepare(j, form);
    if (!rc && form != PIPE_TOKENIZE) {
        rc = pipe_submit(j);
        if (!rc) {
            pipe_wait(j);
            rc = j->refusal; /* cancelled, or out of memory while computing */
        }
    }
    if (rc) return rc;
    if (form != PIPE_TOKENIZE)
        for (size_t k = 0; k < j->req.n_items; k++) pipe_finish_vector(j, k);   /* cached and computed alike */
    if (!out) return 0;
    out->len = 0;
    int w = pipe_write_head(j, out);
    for (size_t k = 0; k < j->req.n_items && !w; k++) w = pipe_write_item(j, out, k, k == 0);
    if (w || pipe_write_tail(j, out)) return pipe_refuse(j, PIPE_NO_MEMORY, "out of memory writing the answer");
    return 0;
}

void pipe_free(pipe_job *j) {
    for (size_t k = 0; j->ids && k < j->req.n_items; k++) base_free(j->ids[k]);
    base_free(j->arena);
    base_free(j->token_vec);
    base_free(j->token_block);
    base_free(j->span_at);   /* spans too */
    request_free(&j->req);
    pipe_release(j, &j->parse_held, j->parse_held);
    pipe_release(j, &j->held, j->held);
    j->arena = NULL;
    j->ids = NULL;
}
