/* model: a Hugging Face encoder directory on disk -> a block description,
 * validated config and F32 weight views.
 *
 * Every family (BERT, NomicBERT, JinaBERT-v2, XLM-RoBERTa, ModernBERT, and
 * the BERT / XLM-R sequence classifiers) is mapped by config.c onto one
 * block description (model_config: norm placement, positions, attention
 * window, MLP kind, head) and by model.c onto one set of per-layer weights
 * (layer_w) through a tensor-name table per family; the forward pass
 * (nn/bert.c) walks that description and never asks which family it runs.
 *
 * config.json gives the shape; model.safetensors is mapped read-only and
 * every tensor is looked up by its Hugging Face name (with the prefix the
 * checkpoint uses: "", "bert.", "roberta.", "model.") and checked against
 * that shape. The matrices (Linear weights, embedding tables, a
 * classifier's) stay in the map as stored, F32, F16 or BF16 (model_w): the
 * forward pass widens one weight at a time while it prepares it (and drops
 * its file pages after), and one embedding row at a time on lookup, so that
 * a BF16 file never has a whole fp32 copy. Vectors (norms, biases) that are
 * not F32 are converted once at load into owned memory (small). The
 * sentence-transformers files (modules.json, 1_Pooling/config.json,
 * sentence_bert_config.json) set pooling, normalization and max_seq_length.
 */
#ifndef CEMBED_MODEL_H
#define CEMBED_MODEL_H

#include "base/base.h"
#include "model/safetensors.h"

#define MODEL_MAX_CONFIG_BYTES (4u << 20)

/* The families config.json can name; each is a tensor-name table in
 * model.c and a mapping onto the description below in config.c. */
typedef enum { ARCH_BERT, ARCH_NOMIC_BERT, ARCH_JINA_BERT, ARCH_XLM_ROBERTA, ARCH_MODERNBERT, ARCH_QWEN2, ARCH_QWEN3 } model_arch;
/* (engine.c names each one for /info: add the name with the family) */
typedef enum { NORM_LAYER, NORM_RMS } norm_kind;   /* LayerNorm (mean and variance, + bias); RMSNorm (scale only) */
typedef enum { POS_ABSOLUTE, POS_ROTARY, POS_ALIBI } pos_kind;
typedef enum { ACT_GELU, ACT_SILU } act_kind;   /* GELU with erf; SiLU (x sigmoid(x)) */
/* What follows the last layer: nothing (an embedding model), or a
 * sequence classifier on the first token: BERT's pooler (dense + tanh) and
 * classifier, or RoBERTa's classifier.dense (+ tanh) and out_proj. */
typedef enum { HEAD_NONE, HEAD_BERT, HEAD_ROBERTA } head_kind;

typedef struct model_config {
    char model_type[32];
    char hidden_act[32];
    int vocab_size, hidden, layers, heads, intermediate, max_position, type_vocab_size;
    float layer_norm_eps;
    /* the block description */
    int kv_heads;         /* key and value heads (grouped-query attention: fewer than heads) */
    int head_dim;         /* per head; heads * head_dim may differ from hidden (Qwen3) */
    norm_kind norm;
    int causal;           /* a query sees only the keys before it (decoders) */
    model_arch arch;
    int prenorm;          /* LayerNorm before attention and MLP, residual adds after (ModernBERT);
                             else BERT's LN(x + sublayer(x)) */
    pos_kind pos;
    int pos_offset;       /* absolute: position id of the first token (XLM-R: padding_idx + 1) */
    int rope_dims;        /* rotary: leading dimensions of each head rotated (halves, not interleaved) */
    float rope_base;      /* rotary base of global layers */
    float rope_base_local;/* ... of sliding-window layers */
    int window;           /* sliding window: a query sees keys within window / 2 of it; 0: none */
    int global_every;     /* with a window: layers l with l % global_every == 0 see everything */
    int glu;              /* MLP up-projection gives [2I]: act(first I) * second I */
    int qk_norm;          /* a norm of Q and of K after their projection, over chunks of this width: the whole
                             hidden size (Jina's LayerNorm) or one head (Qwen3's RMSNorm); 0: none */
    int double_norm;      /* after the attention's LN(x + o), another: LN2'(x + that) (Jina's qk-post-norm) */
    act_kind act;
    int qkv_bias, o_bias, up_bias, down_bias, norm_bias;   /* which biases the checkpoint has */
    int emb_norm;         /* a LayerNorm after the embeddings (every family here has one) */
    int final_norm;       /* a LayerNorm after the last layer (ModernBERT) */
    head_kind head;
    int num_labels;       /* classifier outputs (head != HEAD_NONE) */
} model_config;

typedef enum { POOL_MEAN, POOL_CLS, POOL_LAST } pool_mode;

/* A matrix as the file stores it, in the map: F32 (maybe unaligned), F16
 * or BF16. p NULL: absent. */
typedef struct model_w {
    const void *p;
    st_dtype dtype;
} model_w;

/* Bytes of one element of w. Cannot fail. */
size_t model_w_elem(model_w w);
/* w's data as floats in place (stored aligned F32), else NULL. */
const float *model_w_f32(model_w w);
/* The view of w from element off on. */
model_w model_w_at(model_w w, size_t off);
/* dst[0..n) = elements [off, off + n) of w widened to fp32 (add: dst +=
 * them). Cannot fail. */
void model_w_read(model_w w, size_t off, size_t n, float *dst, int add);
/* Drops the resident file pages of elements [off, off + n) of w (they are
 * read from the file again if touched). Returns the bytes released. */
size_t model_w_release(model_w w, size_t off, size_t n);

/* One layer's weights, whatever the family: [out, in] matrices. A bias the
 * checkpoint lacks is NULL; a LayerNorm without bias points at zeros. */
typedef struct bert_layer_w {
    model_w qkv_w;                                    /* [3H, H] when the file fuses Q, K, V, else absent */
    model_w q_w, k_w, v_w;                            /* [heads x head_dim, H], K and V [kv_heads x head_dim, H]
                                                         (BERT-likes: [H, H]) */
    const float *q_b, *k_b, *v_b;                     /* their biases, may be NULL */
    model_w o_w;                                      /* attention output */
    const float *o_b, *ln1_g, *ln1_b;                 /* its bias; its LayerNorm (pre-norm: the one
                                                         before attention, NULL where it is the identity) */
    model_w i_w;                                      /* [I, H] (GLU: [2I, H] stacked, or the act half) */
    const float *i_b;
    model_w i2_w;                                     /* GLU split in two tensors: the other half [I, H] */
    const float *i2_b;                                /* ... its bias [I] */
    const float *qn_g, *qn_b, *kn_g, *kn_b;           /* qk_norm: the norms of Q and K [qk_norm] */
    const float *ln1x_g, *ln1x_b;                     /* double_norm: the second LayerNorm after attention */
    model_w f_w;                                      /* [H, I] */
    const float *f_b, *ln2_g, *ln2_b;                 /* [H]; the MLP's LayerNorm */
} bert_layer_w;

/* config_sentence_transformers.json's prompts: texts put before a text
 * (e5's "query: "), by name. */
typedef struct model_prompts {
    size_t n;
    char **names, **texts;
    char *default_name;         /* "default_prompt_name", or NULL */
    char *list;                 /* the names, comma-separated, for messages */
} model_prompts;

typedef struct model {
    model_config cfg;
    pool_mode pooling;
    int normalize;
    int st_max_seq_length;      /* sentence_bert_config.json, 0 when absent */
    model_prompts prompts;
    model_w word_emb, pos_emb, type_emb;         /* [V, H], [max_position, H], [types, H] */
    const float *emb_ln_g, *emb_ln_b;
    bert_layer_w *layer;        /* cfg.layers entries */
    const float *final_g, *final_b;              /* final LayerNorm (cfg.final_norm) */
    model_w head_w;                              /* classifier: dense [H, H] (+ tanh) */
    const float *head_b;
    model_w out_w;                               /* ... and output [num_labels, H] */
    const float *out_b;
    const float *zeros;                          /* H zeros: the bias of a LayerNorm without one */
    float *zeros_owned;
    st_dtype dtype;             /* dtype of the weights on disk */
    size_t file_bytes;
    /* storage */
    const void *map;
    size_t map_len;
    st_file st;
    float *owned;               /* converted F16/BF16 (or unaligned) vectors */
} model;

/* The model_type values config.json may name, for messages. */
#define MODEL_TYPES "bert (with absolute or ALiBi positions: BERT, JinaBERT-v2), nomic_bert, xlm-roberta, roberta, " \
                    "modernbert, qwen2 and qwen3"
/* Whether model_type names a family cembed runs (its config may still ask
 * for a variant it does not: model_config_parse says). Cannot fail. */
int model_type_known(const char *model_type);
/* Parses config.json text into the block description. OUT: *out. Fails
 * with EFORMAT (names the field) or EMODEL (an architecture, activation or
 * variant cembed does not run, with the reason). */
int model_config_parse(const char *json, size_t len, model_config *out);
/* Parses a sentence-transformers 1_Pooling/config.json. Fails with EFORMAT
 * or EMODEL (a pooling mode cembed does not implement). */
int model_pooling_parse(const char *json, size_t len, pool_mode *out);
/* Parses modules.json: OUT *normalize (a Normalize module is listed),
 * *pooling_path (base_malloc'd, NULL if no Pooling module). */
int model_modules_parse(const char *json, size_t len, int *normalize, char **pooling_path);
/* Parses sentence_bert_config.json: OUT *max_seq_length (0 if absent). */
int model_st_config_parse(const char *json, size_t len, int *max_seq_length);

/* Parses config_sentence_transformers.json: "prompts" {NAME: TEXT} and
 * "default_prompt_name" (which must name one). Fails with EFORMAT or ENOMEM. */
int model_prompts_parse(const char *json, size_t len, model_prompts *out);
void model_prompts_free(model_prompts *p);

/* IEEE half to float, subnormals, infinities and NaNs included. Cannot fail. */
float model_f16_to_f32(uint16_t h);

/* Loads DIR (see the top of this file). OUT: *m (free with model_free).
 * Fails with EIO, EFORMAT, EMODEL or ENOMEM; the message names the file and
 * the tensor or field. */
int model_load(const char *dir, model *m);
/* Drops the resident pages of the Linear layers' weights in the file map,
 * for a forward pass that packed its own copy (bf16, int8); touched again,
 * they are read back from the file. Returns the bytes released. Cannot fail. */
size_t model_release_linear(model *m);
/* Bytes of the embedding tables (words, positions, types) as stored in the
 * map: their rows become resident as tokens use them. Cannot fail. */
size_t model_embedding_bytes(const model *m);
/* Drops the resident pages of those tables (used rows are read from the
 * file again). Returns the bytes released. Cannot fail. */
size_t model_release_embeddings(model *m);
void model_free(model *m);

/* Converts the TF.js graph model in src_dir (model.json + weight shards +
 * tokenizer.json) into an HF directory at out_dir: F32 model.safetensors,
 * config.json, tokenizer.json, tokenizer_config.json and the
 * sentence-transformers files (mean pooling, normalize, max_seq_length).
 * Fails with EIO, EFORMAT, EMODEL or ENOMEM. */
int model_convert_tfjs(const char *src_dir, const char *out_dir, int max_seq_length);

#endif
