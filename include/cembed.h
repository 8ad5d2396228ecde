/* cembed public API: open a model directory, tokenize and embed texts.
 *
 * Threads: cembed_tokenize and cembed_model_get_info may run on any number of
 * threads at once; the cembed_embed* calls on one model must not overlap
 * (they share the model's batch workspace: the server's scheduler runs them
 * on its one inference thread).
 *
 * Every function returns 0 on success or a negative CEMBED_E* code; the
 * message of the last failure on the calling thread (file, field, limit) is
 * in cembed_last_error(). Nothing here calls exit() or prints. Objects are
 * opaque and owned by the caller once returned; free them with the matching
 * _free function (NULL is accepted and ignored).
 */
#ifndef CEMBED_H
#define CEMBED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One table of error codes; cembed_strerror() gives the short text. */
#define CEMBED_ERRORS(X)                                              \
    X(CEMBED_OK,       0,  "ok")                                      \
    X(CEMBED_ENOMEM,  -1,  "out of memory")                           \
    X(CEMBED_EIO,     -2,  "input/output error")                      \
    X(CEMBED_EFORMAT, -3,  "malformed file")                          \
    X(CEMBED_EMODEL,  -4,  "unsupported or incomplete model")         \
    X(CEMBED_EINVAL,  -5,  "invalid argument")                        \
    X(CEMBED_ELIMIT,  -6,  "over a limit")                            \
    X(CEMBED_ENOTFOUND, -7, "not found")

enum cembed_status {
#define CEMBED_X_ENUM(name, code, text) name = code,
    CEMBED_ERRORS(CEMBED_X_ENUM)
#undef CEMBED_X_ENUM
};

/* Short text of a code; never NULL. */
const char *cembed_strerror(int code);
/* Detailed message of the last failure on this thread ("" if none). */
const char *cembed_last_error(void);

/* The release, as `cembed --version` and GET /info say it. */
#define CEMBED_VERSION "0.2.0"

typedef struct cembed_model cembed_model;

/* Arithmetic of the encoder's Linear layers: fp32; bf16 (weights and
 * activations rounded to bfloat16, fp32 sums); int8 (weights per output
 * channel, activations per token, exact int32 sums). LayerNorm, GELU and
 * pooling stay fp32; attention too, except that bf16 and int8 run its two
 * products in bf16 (fp32 sums) on CPUs with AVX512_BF16. */
typedef enum { CEMBED_FP32 = 0, CEMBED_BF16 = 1, CEMBED_INT8 = 2 } cembed_precision;

/* The precision to run when the user names none: int8 where this CPU has the
 * SIMD int8 kernels (its vectors stay within cosine 0.995 of fp32 on average,
 * bench/fidelity.py), fp32 where only the scalar reference would run it.
 * Cannot fail. */
int cembed_precision_default(void);

typedef struct cembed_options {
    int threads;        /* compute threads; 0 = min(usable CPUs, 8) */
    int precision;      /* a cembed_precision; 0 = fp32 */
    int max_batch;      /* sequences per forward pass; 0 = 32 */
    int max_seq_len;    /* 0 = the model's limit; else min(this, the model's) */
    const char *gemm;   /* GEMM backend: NULL or "auto" (the table's pick for this CPU),
                           "onednn", "avx2", "scalar", "blas" */
    const char *weight_cache;  /* folder of the cache of prepared weights: the first start
                                  quantizes/reorders the weights and writes them there, later
                                  starts map them; NULL or "off": none (the default) */
} cembed_options;

/* Facts about an open model; strings are owned by the model. */
typedef struct cembed_model_info {
    const char *name;           /* directory basename */
    const char *path;
    const char *architecture;   /* config.json's model_type: "bert", "nomic_bert", "xlm-roberta", "modernbert", ... */
    const char *family;         /* what runs: "bert", "nomic-bert", "jina-bert-v2", "xlm-roberta", "modernbert" */
    const char *kind;           /* "embedding", or "reranker" (a sequence classifier over pairs) */
    int hidden;                 /* floats of one output vector: the embedding dimensions, or a reranker's labels */
    int hidden_size;            /* the encoder's hidden size */
    int layers, heads, intermediate, vocab_size;
    int max_seq_len;            /* truncation limit, [CLS]/[SEP] included */
    const char *pooling;        /* "mean" | "cls" | "last" ("cls" for a reranker: its head reads the first token) */
    int normalize;              /* L2-normalized output */
    float layer_norm_eps;
    const char *weights_dtype;  /* dtype on disk: "F32", "F16", "BF16" */
    size_t weights_bytes;       /* size of model.safetensors */
    int threads;
    int max_batch;              /* sequences per forward pass */
    const char *precision;      /* "fp32" | "bf16" | "int8" */
    const char *isa;            /* the ISA level kernels run at, oneDNN's name ("AVX2", "AVX512_CORE_AMX") */
    const char *kernels;        /* element-wise and attention table: "avx512-bf16" | "avx512" | "avx2" | "scalar" */
    const char *gemm;           /* the GEMMs that run: "onednn brg:avx512_core_vnni" | "avx2" | ... */
    const char *attention;      /* products of attention: "fp32" | "bf16" */
    const char *variant;        /* besides the precision, what the vectors' values depend on: "" or
                                   "attn-bf16" (part of the cache key) */
    int32_t cls_id, sep_id;     /* the single template's first and last special tokens ([CLS], [SEP]; -1 when
                                   it has none there: Qwen's template only appends <|endoftext|>) */
    int special_tokens;         /* how many special tokens the template adds to a text */
    const char *prompt_names;   /* config_sentence_transformers.json's prompts, comma-separated ("" if none) */
    const char *default_prompt; /* its default_prompt_name, or NULL */
} cembed_model_info;

/* The text of the prompt called name (config_sentence_transformers.json);
 * name NULL: the default prompt's, or "" when the model has none. NULL
 * for a name the model does not have. */
const char *cembed_prompt(const cembed_model *m, const char *name);
/* The i-th prompt's name (its text in *text), or NULL past the last. */
const char *cembed_prompt_at(const cembed_model *m, size_t i, const char **text);

/* What precision p (a cembed_precision) runs on this CPU with GEMM backend
 * gemm (NULL: auto), into desc[n]: e.g. "onednn brg:avx512_core_bf16",
 * "avx2", or "unavailable: why". Builds nothing. Cannot fail. */
void cembed_gemm_plan(int precision, const char *gemm, char *desc, size_t n);

/* Appends to b (a growing buffer of the library's; see base/base.h)
 * `"isa":..,"kernels":..,"gemm":..,"attention":..,"gemm_by_precision":{..},
 * "isa_levels":[..],"weight_cache":..,"weight_cache_read":..`: what runs
 * for the model's precision, what each precision would run with the
 * model's GEMM choice, the ISA levels from AVX2 up that this CPU offers
 * (ONEDNN_MAX_CPU_ISA can lower the one in use to any of them), and the
 * file of prepared weights (null: none) and whether this start read it
 * (else it wrote it). Fails with ENOMEM. */
struct buf;
int cembed_kernels_json(const cembed_model *m, struct buf *b);

/* Opens the Hugging Face model directory DIR (config.json, model.safetensors,
 * tokenizer.json or vocab.txt, optional sentence-transformers files).
 * OUT: *out, owned by the caller. Fails with EIO, EFORMAT, EMODEL or ENOMEM. */
int cembed_model_open(const char *dir, const cembed_options *opt, cembed_model **out);
void cembed_model_free(cembed_model *m);
void cembed_model_get_info(const cembed_model *m, cembed_model_info *out);
/* Frees memory the library returned (token ids). NULL is ignored. */
void cembed_free(void *p);

/* Token ids of one text, [CLS] ... [SEP], truncated to the model limit.
 * OUT: *ids (free with cembed_free), *n_ids, *truncated (may be NULL),
 * *n_full: length before truncation (may be NULL). Invalid UTF-8 becomes
 * U+FFFD. Fails only with ENOMEM. */
int cembed_tokenize(const cembed_model *m, const char *text, size_t len,
                    int32_t **ids, size_t *n_ids, int *truncated, size_t *n_full);
/* The same; left = 1 truncates from the start (keeps the text's end). */
int cembed_tokenize_ex(const cembed_model *m, const char *text, size_t len, int left,
                       int32_t **ids, size_t *n_ids, int *truncated, size_t *n_full);

/* The vocabulary: its size, and the string of token id as the tokenizer's
 * vocabulary spells it ("##ing", "Ġthe"), *len bytes, not NUL-terminated,
 * valid while m is open; "" (len 0) for an id outside it. Any thread. */
size_t cembed_vocab_size(const cembed_model *m);
const char *cembed_token_text(const cembed_model *m, int32_t id, size_t *len);

/* A pair (query a, document b) as a cross-encoder reads it: the
 * tokenizer's pair template (BERT: [CLS] a [SEP] b [SEP]; RoBERTa: <s> a
 * </s></s> b </s>), truncated to the model limit the way Hugging Face's
 * longest_first does (tokens come off the longer text first). OUT: *ids
 * (free with cembed_free), *n_ids, *type1_from (where b's tokens start),
 * *truncated and *n_full (may be NULL). Fails only with ENOMEM. */
int cembed_tokenize_pair(const cembed_model *m, const char *a, size_t alen, const char *b, size_t blen, int32_t **ids,
                         size_t *n_ids, int *type1_from, int *truncated, size_t *n_full);

/* One sequence of token ids: its pooled vector (raw: not normalized) into
 * pooled (hidden floats) and every token's last hidden state into tokens
 * (n_ids * hidden floats), for late chunking. Fails with ELIMIT or EINVAL. */
int cembed_embed_tokens(cembed_model *m, const int32_t *ids, size_t n_ids, float *pooled, float *tokens);

/* As cembed_embed_ids_ex, for pairs too: type1_from[i] (NULL: every token
 * is of type 0) is the index in sequence i of its first token of type 1 (a
 * pair's second text). A reranker's rows are its raw logits (normalize is
 * ignored for it). Fails like cembed_embed_ids. */
int cembed_run_ids(cembed_model *m, const int32_t *const *ids, const size_t *n_ids, const int *type1_from, size_t n,
                   float *out, int normalize);

/* Embeds n texts; out holds n * hidden floats, row i for text i.
 * Batches are formed inside (length-sorted, packed). Fails with ENOMEM. */
int cembed_embed(cembed_model *m, const char *const *texts, const size_t *lens,
                 size_t n, float *out);

/* Embeds already tokenized sequences (each [CLS] ... [SEP], within the limit).
 * Fails with ELIMIT (a sequence over the limit), EINVAL (an id outside the
 * vocabulary) or ENOMEM. */
int cembed_embed_ids(cembed_model *m, const int32_t *const *ids, const size_t *n_ids,
                     size_t n, float *out);
/* As cembed_embed_ids, with normalize: -1 the model's setting, 0 the pooled
 * vectors as they are, 1 L2-normalized. */
int cembed_embed_ids_ex(cembed_model *m, const int32_t *const *ids, const size_t *n_ids,
                        size_t n, float *out, int normalize);
/* Memory of the forward pass, for the governor: *batch_bytes = the activation
 * bytes a batch of `tokens` tokens touches; *resident_bytes = those touched
 * since the last release (the high-water mark). Cannot fail. */
void cembed_workspace_bytes(const cembed_model *m, int tokens, size_t *batch_bytes, size_t *resident_bytes);
/* Bytes of the model's weights that may still become resident: the
 * embedding tables stay in the read-only map of the model file and their
 * rows come in as texts use them, so the memory measured after loading
 * lacks them. The governor counts them in the model's fixed part (an upper
 * bound: rows already used count twice). Cannot fail. */
size_t cembed_model_lazy_bytes(const cembed_model *m);
/* Returns the activation pages to the kernel (under memory pressure). Must
 * not overlap an embed call. Cannot fail. */
void cembed_release_workspace(cembed_model *m);

/* Frees the calling thread's tokenizer scratch buffers now; they are also
 * freed when the thread ends. Cannot fail. */
void cembed_thread_release(void);

/* L2-normalizes v[0..n) in place (a zero vector stays zero). Cannot fail. */
void cembed_l2_normalize(float *v, size_t n);

#ifdef __cplusplus
}
#endif
#endif
