/* The public API of cembed.h: a model directory opened into tokenizer +
 * weights + forward pass, and embedding of text lists in length-sorted
 * packed batches. */
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "base/pool.h"
#include "base/prof.h"
#include "json/json.h"
#include "nn/bert.h"
#include "nn/profile.h"
#include "nn/wcache.h"
#include "tok/tok.h"

/* Tokens of one forward pass when max_batch sequences of the longest length
 * would be more: the workspace is sized for this many (about 9 KiB a token
 * for MiniLM, 36 KiB for Qwen3-0.6B; only what a batch touches becomes
 * resident), and a batch is cut at it; one sequence of the model's full
 * length always fits. The service's memory plan caps batches lower. */
#define ENGINE_MAX_BATCH_TOKENS (1 << 16)
/* Tokens of one forward pass when the caller names no batch size (`cembed
 * embed` without --batch-size, library users): 32 short texts still go
 * together, but full-length ones go 8 at a time, so the workspace stays at
 * 18 MiB for MiniLM instead of 72 (the speed is the same: every GEMM still
 * has 2,048 rows; 1,000 code chunks at int8 and fp32, three runs each,
 * within 2% of 4,096 tokens a pass and 19 MiB lower at peak). */
#define ENGINE_DEFAULT_BATCH_TOKENS 2048
/* Tokens after which the embedding rows read from the model's map are
 * given back (they come in again from the page cache as tokens use them). */
#define ENGINE_EMB_RELEASE_TOKENS 4096

typedef struct seq_ref {
    size_t index;
    const int32_t *ids;
    size_t n;
    int type1_from;
} seq_ref;

struct cembed_model {
    model m;
    tokenizer *tok;
    pool *pool;
    bert *fwd;
    const nn_kernels *k;
    nn_precision prec;
    int attn_bf16;
    nn_gemm_backend gemm;  /* as asked (NN_GEMM_AUTO: the table's pick) */
    int threads, max_batch, max_seq_len;
    int max_tokens;        /* tokens of one forward pass (the workspace's size) */
    char *path, *name;
    int32_t *batch_ids;    /* [max_batch * max_seq_len] */
    int *batch_off;        /* [max_batch + 1] */
    float *batch_out;      /* [max_batch * out_dims] */
    int *batch_type;       /* [max_batch]: each sequence's first token of type 1 */
    int out_dims;          /* floats of one output row: hidden, or a classifier's labels */
    struct seq_ref *order; /* [max_batch]: a batch's sort order, so a single batch allocates nothing */
    int hwm_tokens;        /* largest batch since the workspace was last released */
    int emb_tokens;        /* tokens embedded since the embedding rows were last released */
};

/* After a forward pass of T tokens: the embedding rows go back to the page
 * cache every ENGINE_EMB_RELEASE_TOKENS tokens, so the tables hold what a
 * few batches used, not every row a long run met. */
static void after_forward(cembed_model *cm, int T) {
    cm->emb_tokens += T;
    if (cm->emb_tokens < ENGINE_EMB_RELEASE_TOKENS) return;
    model_release_embeddings(&cm->m);
    cm->emb_tokens = 0;
}

void cembed_model_free(cembed_model *cm) {
    if (!cm) return;
    bert_free(cm->fwd);
    pool_free(cm->pool);
    tok_free(cm->tok);
    model_free(&cm->m);
    base_free(cm->path);
    base_free(cm->name);
    base_free(cm->batch_ids);
    base_free(cm->batch_off);
    base_free(cm->batch_out);
    base_free(cm->batch_type);
    base_free(cm->order);
    base_free(cm);
}

const char *cembed_prompt(const cembed_model *cm, const char *name) {
    const model_prompts *p = &cm->m.prompts;
    if (!name) name = p->default_name;
    if (!name) return "";
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0) return p->texts[i];
    return NULL;
}

const char *cembed_prompt_at(const cembed_model *cm, size_t i, const char **text) {
    const model_prompts *p = &cm->m.prompts;
    if (i >= p->n) return NULL;
    *text = p->texts[i];
    return p->names[i];
}

/* The model's name: its folder's, or ORG/NAME for a Hub cache snapshot
 * (.../models--ORG--NAME/snapshots/COMMIT). */
static char *model_name_of(const char *dir) {
    size_t end = strlen(dir), start;
    while (end > 1 && dir[end - 1] == '/') end--;
    for (start = end; start > 0 && dir[start - 1] != '/'; start--) {}
    const char *snap = start >= 11 ? dir + start - 11 : NULL;   /* "/snapshots/" */
    if (snap && strncmp(snap, "/snapshots/", 11) == 0) {
        size_t e = (size_t)(snap - dir), b = e;
        while (b > 0 && dir[b - 1] != '/') b--;
        const char *sep = b + 8 < e ? strstr(dir + b + 8, "--") : NULL;
        if (strncmp(dir + b, "models--", 8) == 0 && sep && (size_t)(sep - dir) < e) {
            buf name = {0};
            if (buf_append(&name, dir + b + 8, (size_t)(sep - dir) - b - 8) || buf_append(&name, "/", 1) ||
                buf_append(&name, sep + 2, e - (size_t)(sep - dir) - 2) || buf_append(&name, "", 1)) {
                buf_free(&name);
                return NULL;
            }
            return name.ptr;
        }
    }
    return base_strndup(dir + start, end - start);
}

/* The tokenizer is loaded on a thread of its own while the weights load
 * and are quantized (both take tens of milliseconds: start-up is their
 * longer one, not their sum). Its error message is carried back, since
 * base_err's is per thread. */
typedef struct tok_job {
    const char *dir;
    tokenizer *tok;
    int rc;
    char err[512];
    pthread_t th;
    int started;
} tok_job;

static void *tok_load_main(void *arg) {
    tok_job *j = arg;
    const uint64_t t0 = PROF_START();
    j->rc = tok_load_dir(j->dir, &j->tok);
    if (j->rc) snprintf(j->err, sizeof j->err, "%s", cembed_last_error());
    PROF_END(PROF_LOAD_TOKENIZER, t0, 0);
    return NULL;
}

/* Starts loading dir's tokenizer; on a thread when one can start, else now. */
static void tok_job_start(tok_job *j, const char *dir) {
    *j = (tok_job){.dir = dir};
    j->started = pthread_create(&j->th, NULL, tok_load_main, j) == 0;
    if (!j->started) tok_load_main(j);
}

/* Waits for the tokenizer: OUT *tok (the caller owns it). Returns its
 * loader's error, or 0; the message becomes this thread's only when
 * `report` is set (an error the caller met first keeps its own). */
static int tok_job_finish(tok_job *j, tokenizer **tok, int report) {
    if (j->started) pthread_join(j->th, NULL);
    j->started = 0;
    *tok = j->tok;
    j->tok = NULL;
    return j->rc && report ? base_err(j->rc, "%s", j->err) : j->rc;
}

/* Weights, the forward pass and its buffers (all but the tokenizer). */
static int open_engine(cembed_model *cm, const char *dir, const cembed_options *o);

int cembed_model_open(const char *dir, const cembed_options *opt, cembed_model **out) {
    *out = NULL;
    base_err_clear();
    cembed_options o = opt ? *opt : (cembed_options){0};
    if (o.threads < 0 || o.threads > 1024) return base_err(CEMBED_EINVAL, "threads %d: must be in [0, 1024]", o.threads);
    if (o.max_batch < 0 || o.max_batch > 4096)
        return base_err(CEMBED_EINVAL, "batch size %d: must be in [1, 4096]", o.max_batch);
    if (o.precision != CEMBED_FP32 && o.precision != CEMBED_BF16 && o.precision != CEMBED_INT8)
        return base_err(CEMBED_EINVAL, "precision %d: must be fp32, bf16 or int8", o.precision);
    if (o.max_seq_len < 0 || o.max_seq_len == 1)
        return base_err(CEMBED_EINVAL, "max sequence length %d: must be at least 2", o.max_seq_len);
    cembed_model *cm = base_calloc(1, sizeof *cm);
    if (!cm) return base_err(CEMBED_ENOMEM, "out of memory");
    const uint64_t t0 = PROF_START();
    tok_job tj;
    tok_job_start(&tj, dir);
    int rc = open_engine(cm, dir, &o);
    const int trc = tok_job_finish(&tj, &cm->tok, rc == 0);
    if (rc) {
        tok_free(cm->tok);
        cm->tok = NULL;
        goto fail;
    }
    if ((rc = trc)) goto fail;
    if (tok_vocab_size(cm->tok) > (size_t)cm->m.cfg.vocab_size) {
        rc = base_err(CEMBED_EMODEL, "%s: the tokenizer has %zu ids, the model's vocab_size is %d", dir,
                      tok_vocab_size(cm->tok), cm->m.cfg.vocab_size);
        goto fail;
    }
    PROF_END(PROF_OPEN, t0, 0);
    *out = cm;
    return 0;
fail:
    cembed_model_free(cm);
    return rc;
}

static int open_engine(cembed_model *cm, const char *dir, const cembed_options *opt) {
    const cembed_options o = *opt;
    uint64_t t0 = PROF_START();
    /* the weight cache's key holds the model files' identity from before they are read */
    char model_id[8192];
    const int wcache = o.weight_cache && *o.weight_cache && strcmp(o.weight_cache, "off") != 0 &&
                       nn_wcache_model_id(dir, model_id, sizeof model_id) == 0;
    int rc = model_load(dir, &cm->m);
    if (rc) return rc;
    PROF_END(PROF_LOAD_WEIGHTS, t0, 0);
    t0 = PROF_START();
    cm->max_seq_len = cm->m.cfg.max_position - cm->m.cfg.pos_offset;
    if (cm->m.st_max_seq_length > 0) cm->max_seq_len = CE_MIN(cm->max_seq_len, cm->m.st_max_seq_length);
    if (o.max_seq_len > 0) cm->max_seq_len = CE_MIN(cm->max_seq_len, o.max_seq_len);
    cm->threads = o.threads ? o.threads : CE_MIN(cpu_usable(), 8);
    cm->max_batch = o.max_batch ? o.max_batch : 32;
    cm->max_tokens = cm->max_batch * cm->max_seq_len;
    const int cap = o.max_batch ? ENGINE_MAX_BATCH_TOKENS : ENGINE_DEFAULT_BATCH_TOKENS;
    if ((size_t)cm->max_batch * (size_t)cm->max_seq_len > (size_t)cap) cm->max_tokens = CE_MAX(cap, cm->max_seq_len);
    cm->k = nn_kernels_profiled(nn_kernels_best());
    cm->prec = o.precision == CEMBED_INT8 ? NN_INT8 : o.precision == CEMBED_BF16 ? NN_BF16 : NN_FP32;
    cm->attn_bf16 = nn_bf16_attention(cm->prec);
    bert_opts bo = {.k = cm->k, .prec = cm->prec, .gemm = NN_GEMM_AUTO, .attn_bf16 = cm->attn_bf16,
                    .wcache = wcache ? o.weight_cache : NULL, .model_dir = dir, .model_id = model_id};
    if (o.gemm && (rc = nn_gemm_backend_parse(o.gemm, &bo.gemm))) return rc;
    cm->gemm = bo.gemm;
    if ((rc = pool_new(cm->threads, &cm->pool))) return rc;
    if ((rc = bert_new(&cm->m, &bo, cm->pool, cm->max_tokens, cm->max_seq_len, &cm->fwd))) return rc;
    if (bert_packed(cm->fwd)) model_release_linear(&cm->m);   /* the forward pass packed its own copy */
    cm->batch_ids = base_malloc((size_t)cm->max_tokens * sizeof(int32_t));
    cm->batch_off = base_malloc(((size_t)cm->max_batch + 1) * sizeof(int));
    cm->out_dims = bert_out_dims(cm->fwd);
    cm->batch_out = base_malloc((size_t)cm->max_batch * (size_t)cm->out_dims * sizeof(float));
    cm->batch_type = base_malloc((size_t)cm->max_batch * sizeof(int));
    cm->order = base_malloc((size_t)cm->max_batch * sizeof *cm->order);
    cm->path = base_strndup(dir, strlen(dir));
    cm->name = model_name_of(dir);
    if (!cm->batch_ids || !cm->batch_off || !cm->batch_out || !cm->batch_type || !cm->order || !cm->path || !cm->name)
        return base_err(CEMBED_ENOMEM, "out of memory");
    if (prof_enabled) { /* what bert_new spent in the GEMM backend has its own rows */
        char what[200];
        snprintf(what, sizeof what, "%s, %s on %s, GEMM %s", cm->name, nn_precision_name(cm->prec),
                 cpu_isa_name(cpu_features()), bert_gemm_describe(cm->fwd));
        prof_describe(what, cm->threads);
        prof_add(PROF_ENGINE_OTHER, t0, 0);
    }
    return 0;
}

int cembed_precision_default(void) {
    return nn_kernels_best()->gemm_lowp != nn_gemm_lowp_ref ? CEMBED_INT8 : CEMBED_FP32;
}

int cembed_kernels_json(const cembed_model *cm, struct buf *b) {
    static const nn_precision precs[] = {NN_FP32, NN_BF16, NN_INT8};
    int rc = buf_printf(b, "\"isa\":\"%s\",\"kernels\":\"%s\",\"gemm\":", cpu_isa_name(cpu_features()), cm->k->name);
    const char *gemm = bert_gemm_describe(cm->fwd);
    rc = rc || json_write_string(b, gemm, strlen(gemm)) ||
         buf_printf(b, ",\"attention\":\"%s\",\"gemm_by_precision\":{", cm->attn_bf16 ? "bf16" : "fp32");
    for (int i = 0; i < 3 && !rc; i++) {
        char desc[200];
        nn_gemm_plan(precs[i], cm->gemm, desc, sizeof desc);
        rc = buf_printf(b, "%s\"%s\":", i ? "," : "", nn_precision_name(precs[i])) ||
             json_write_string(b, desc, strlen(desc));
    }
    const char *levels[8];
    const int n = cpu_isa_levels(levels, 8);
    rc = rc || buf_append(b, "},\"isa_levels\":[", 16);
    for (int k = 0; k < n && !rc; k++) rc = buf_printf(b, "%s\"%s\"", k ? "," : "", levels[k]);
    rc = rc || buf_append(b, "]", 1);
    int hit = 0;   /* the cache of prepared weights: its file and whether this start read it */
    const char *wc = bert_weight_cache(cm->fwd, &hit);
    rc = rc || buf_append(b, ",\"weight_cache\":", 16) || (wc ? json_write_string(b, wc, strlen(wc)) : buf_append(b, "null", 4)) ||
         buf_printf(b, ",\"weight_cache_read\":%s", hit ? "true" : "false");
    return rc ? base_err(CEMBED_ENOMEM, "out of memory") : 0;
}

void cembed_gemm_plan(int precision, const char *gemm, char *desc, size_t n) {
    nn_gemm_backend b = NN_GEMM_AUTO;
    if (gemm && nn_gemm_backend_parse(gemm, &b)) {
        snprintf(desc, n, "unavailable: %s", cembed_last_error());
        return;
    }
    nn_gemm_plan(precision == CEMBED_INT8 ? NN_INT8 : precision == CEMBED_BF16 ? NN_BF16 : NN_FP32, b, desc, n);
}

static const char *family_name(const model_config *c) {
    static const char *names[] = {[ARCH_BERT] = "bert", [ARCH_NOMIC_BERT] = "nomic-bert",
                                  [ARCH_JINA_BERT] = "jina-bert-v2", [ARCH_XLM_ROBERTA] = "xlm-roberta",
                                  [ARCH_MODERNBERT] = "modernbert", [ARCH_QWEN2] = "qwen2", [ARCH_QWEN3] = "qwen3"};
    _Static_assert(CE_ARRAY_LEN(names) == ARCH_QWEN3 + 1, "a name for every family");
    return names[c->arch];
}

void cembed_model_get_info(const cembed_model *cm, cembed_model_info *o) {
    const model_config *c = &cm->m.cfg;
    *o = (cembed_model_info){
        .name = cm->name,
        .path = cm->path,
        .architecture = c->model_type,
        .family = family_name(c),
        .kind = c->head ? "reranker" : "embedding",
        .hidden = cm->out_dims,
        .hidden_size = c->hidden,
        .layers = c->layers,
        .heads = c->heads,
        .intermediate = c->intermediate,
        .vocab_size = c->vocab_size,
        .max_seq_len = cm->max_seq_len,
        .pooling = c->head || cm->m.pooling == POOL_CLS ? "cls" : cm->m.pooling == POOL_LAST ? "last" : "mean",
        .normalize = cm->m.normalize,
        .layer_norm_eps = c->layer_norm_eps,
        .weights_dtype = st_dtype_name(cm->m.dtype),
        .weights_bytes = cm->m.file_bytes,
        .threads = cm->threads,
        .max_batch = cm->max_batch,
        .precision = nn_precision_name(cm->prec),
        .isa = cpu_isa_name(cpu_features()),
        .kernels = cm->k->name,
        .prompt_names = cm->m.prompts.list ? cm->m.prompts.list : "",
        .default_prompt = cm->m.prompts.default_name,
        .gemm = bert_gemm_describe(cm->fwd),
        .attention = cm->attn_bf16 ? "bf16" : "fp32",
        .variant = cm->attn_bf16 ? "attn-bf16" : "",
        .cls_id = tok_cls_id(cm->tok),
        .sep_id = tok_sep_id(cm->tok),
        .special_tokens = (int)tok_num_special(cm->tok, 0),
    };
}

size_t cembed_vocab_size(const cembed_model *cm) { return tok_vocab_size(cm->tok); }

const char *cembed_token_text(const cembed_model *cm, int32_t id, size_t *len) {
    const str s = tok_id_to_token(cm->tok, id);
    *len = s.len;
    return s.len ? s.ptr : "";
}

int cembed_tokenize(const cembed_model *cm, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                    int *truncated, size_t *n_full) {
    return cembed_tokenize_ex(cm, text, len, 0, ids, n_ids, truncated, n_full);
}

/* Hands the tokenizer's ids to the caller (or frees them when rc failed). */
static int hand_over(int rc, tok_ids *v, int32_t **ids, size_t *n_ids, int *truncated, size_t *n_full) {
    if (rc) {
        tok_ids_free(v);
        return rc;
    }
    *ids = v->ids;
    *n_ids = v->n;
    if (truncated) *truncated = v->truncated;
    if (n_full) *n_full = v->n_full;
    return 0;
}

int cembed_tokenize_ex(const cembed_model *cm, const char *text, size_t len, int left, int32_t **ids, size_t *n_ids,
                       int *truncated, size_t *n_full) {
    tok_ids v = {0};
    const uint64_t t0 = PROF_START();
    const int rc = tok_encode_ex(cm->tok, text, len, cm->max_seq_len, left, &v);
    PROF_END(PROF_TOKENIZE, t0, (double)v.n);
    return hand_over(rc, &v, ids, n_ids, truncated, n_full);
}

int cembed_tokenize_pair(const cembed_model *cm, const char *a, size_t alen, const char *b, size_t blen, int32_t **ids,
                         size_t *n_ids, int *type1_from, int *truncated, size_t *n_full) {
    tok_ids v = {0};
    const uint64_t t0 = PROF_START();
    const int rc = tok_encode_pair(cm->tok, a, alen, b, blen, cm->max_seq_len, &v);
    PROF_END(PROF_TOKENIZE, t0, (double)v.n);
    if (!rc) *type1_from = (int)CE_MIN(v.type1_from, v.n);
    return hand_over(rc, &v, ids, n_ids, truncated, n_full);
}

static int by_len_desc(const void *a, const void *b) {
    const seq_ref *x = a, *y = b;
    if (x->n != y->n) return x->n < y->n ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

int cembed_embed_ids(cembed_model *cm, const int32_t *const *ids, const size_t *n_ids, size_t n, float *out) {
    return cembed_embed_ids_ex(cm, ids, n_ids, n, out, -1);
}

int cembed_embed_ids_ex(cembed_model *cm, const int32_t *const *ids, const size_t *n_ids, size_t n, float *out,
                        int normalize) {
    return cembed_run_ids(cm, ids, n_ids, NULL, n, out, normalize);
}

int cembed_run_ids(cembed_model *cm, const int32_t *const *ids, const size_t *n_ids, const int *type1_from, size_t n,
                   float *out, int normalize) {
    const int D = cm->out_dims;
    if (normalize < 0) normalize = cm->m.normalize;
    for (size_t i = 0; i < n; i++) {
        if (n_ids[i] < 1 || n_ids[i] > (size_t)cm->max_seq_len)
            return base_err(CEMBED_ELIMIT, "sequence %zu has %zu tokens, the limit is %d", i, n_ids[i], cm->max_seq_len);
        for (size_t t = 0; t < n_ids[i]; t++)
            if (ids[i][t] < 0 || ids[i][t] >= cm->m.cfg.vocab_size)
                return base_err(CEMBED_EINVAL, "sequence %zu: token id %d is outside the vocabulary", i, (int)ids[i][t]);
    }
    /* one batch (the scheduler's case) sorts in place: no allocation */
    seq_ref *order = n <= (size_t)cm->max_batch ? cm->order : base_malloc(n * sizeof *order);
    if (!order) return base_err(CEMBED_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        order[i] = (seq_ref){i, ids[i], n_ids[i], type1_from ? type1_from[i] : (int)n_ids[i]};
    qsort(order, n, sizeof *order, by_len_desc);
    for (size_t s = 0; s < n;) {
        int k = 0, T = 0;
        cm->batch_off[0] = 0;
        while (s + (size_t)k < n && k < cm->max_batch &&
               (k == 0 || T + (int)order[s + (size_t)k].n <= cm->max_tokens)) {
            const seq_ref *r = &order[s + (size_t)k];
            memcpy(cm->batch_ids + T, r->ids, r->n * sizeof(int32_t));
            cm->batch_type[k] = r->type1_from;
            T += (int)r->n;
            cm->batch_off[++k] = T;
        }
        if (T > cm->hwm_tokens) cm->hwm_tokens = T;
        const uint64_t t0 = PROF_START();
        bert_forward_ex(cm->fwd, k, cm->batch_ids, cm->batch_off, cm->batch_type, cm->batch_out, normalize, NULL);
        PROF_END(PROF_FORWARD, t0, T);
        after_forward(cm, T);
        for (int i = 0; i < k; i++)
            memcpy(out + order[s + (size_t)i].index * (size_t)D, cm->batch_out + (size_t)i * D, (size_t)D * sizeof(float));
        s += (size_t)k;
    }
    if (order != cm->order) base_free(order);
    return 0;
}

int cembed_embed_tokens(cembed_model *cm, const int32_t *ids, size_t n_ids, float *pooled, float *tokens) {
    if (cm->m.cfg.head) return base_err(CEMBED_EINVAL, "a reranker gives scores, not token vectors");
    if (n_ids < 1 || n_ids > (size_t)cm->max_seq_len)
        return base_err(CEMBED_ELIMIT, "the sequence has %zu tokens, the limit is %d", n_ids, cm->max_seq_len);
    for (size_t t = 0; t < n_ids; t++)
        if (ids[t] < 0 || ids[t] >= cm->m.cfg.vocab_size)
            return base_err(CEMBED_EINVAL, "token id %d is outside the vocabulary", (int)ids[t]);
    memcpy(cm->batch_ids, ids, n_ids * sizeof(int32_t));
    cm->batch_off[0] = 0;
    cm->batch_off[1] = (int)n_ids;
    if ((int)n_ids > cm->hwm_tokens) cm->hwm_tokens = (int)n_ids;
    const uint64_t t0 = PROF_START();
    bert_forward_tokens(cm->fwd, 1, cm->batch_ids, cm->batch_off, pooled, 0, tokens);
    PROF_END(PROF_FORWARD, t0, (double)n_ids);
    after_forward(cm, (int)n_ids);
    return 0;
}

int cembed_embed(cembed_model *cm, const char *const *texts, const size_t *lens, size_t n, float *out) {
    int32_t **ids = base_calloc(n ? n : 1, sizeof *ids);
    size_t *n_ids = base_calloc(n ? n : 1, sizeof *n_ids);
    int rc = 0;
    if (!ids || !n_ids) {
        rc = base_err(CEMBED_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n && !rc; i++) rc = cembed_tokenize(cm, texts[i], lens[i], &ids[i], &n_ids[i], NULL, NULL);
    if (!rc) rc = cembed_embed_ids(cm, (const int32_t *const *)ids, n_ids, n, out);
done:
    for (size_t i = 0; ids && i < n; i++) base_free(ids[i]);
    base_free(ids);
    base_free(n_ids);
    return rc;
}

void cembed_free(void *p) { base_free(p); }

void cembed_thread_release(void) { tok_thread_release(); }

void cembed_workspace_bytes(const cembed_model *cm, int tokens, size_t *batch_bytes, size_t *resident_bytes) {
    *batch_bytes = bert_batch_bytes(cm->fwd, tokens);
    *resident_bytes = bert_batch_bytes(cm->fwd, cm->hwm_tokens);
}

size_t cembed_model_lazy_bytes(const cembed_model *cm) { return model_embedding_bytes(&cm->m); }

void cembed_release_workspace(cembed_model *cm) {
    bert_release(cm->fwd);
    cm->hwm_tokens = 0;
}
