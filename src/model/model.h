/* model: a Hugging Face BERT directory on disk -> validated config and F32
 * weight views.
 *
 * config.json gives the shape (hidden, layers, heads, ...); model.safetensors
 * is mapped read-only and every tensor BERT needs is looked up by its HF name
 * (an optional "bert." prefix, LayerNorm weight/bias or gamma/beta) and
 * checked against that shape. F32 tensors are used in place from the map;
 * F16 and BF16 tensors are converted once at load into owned memory. The
 * sentence-transformers files (modules.json, 1_Pooling/config.json,
 * sentence_bert_config.json) set pooling, normalization and max_seq_length.
 */
#ifndef CEMBED_MODEL_H
#define CEMBED_MODEL_H

#include "base/base.h"
#include "model/safetensors.h"

#define MODEL_MAX_CONFIG_BYTES (4u << 20)

typedef struct model_config {
    char model_type[32];
    char hidden_act[32];
    int vocab_size, hidden, layers, heads, intermediate, max_position, type_vocab_size;
    float layer_norm_eps;
} model_config;

typedef enum { POOL_MEAN, POOL_CLS } pool_mode;

typedef struct bert_layer_w {
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;   /* [H, H] (out, in), [H] */
    const float *o_w, *o_b, *ln1_g, *ln1_b;           /* attention output + LayerNorm */
    const float *i_w, *i_b;                           /* [I, H], [I] */
    const float *f_w, *f_b, *ln2_g, *ln2_b;           /* [H, I], [H], LayerNorm */
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
    const float *word_emb, *pos_emb, *type_emb, *emb_ln_g, *emb_ln_b;
    bert_layer_w *layer;        /* cfg.layers entries */
    st_dtype dtype;             /* dtype of the weights on disk */
    size_t file_bytes;
    /* storage */
    const void *map;
    size_t map_len;
    st_file st;
    float *owned;               /* converted F16/BF16 tensors */
} model;

/* Parses config.json text. OUT: *out. Fails with EFORMAT (names the field)
 * or EMODEL (an architecture or activation cembed does not run). */
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
/* Drops the resident pages of the Linear layers' F32 weights in the file map
 * (not those converted into owned memory), for a forward pass that packed its
 * own copy (bf16, int8); touched again, they are read back from the file.
 * Returns the bytes released. Cannot fail. */
size_t model_release_linear(model *m);
void model_free(model *m);

/* Converts the TF.js graph model in src_dir (model.json + weight shards +
 * tokenizer.json) into an HF directory at out_dir: F32 model.safetensors,
 * config.json, tokenizer.json, tokenizer_config.json and the
 * sentence-transformers files (mean pooling, normalize, max_seq_length).
 * Fails with EIO, EFORMAT, EMODEL or ENOMEM. */
int model_convert_tfjs(const char *src_dir, const char *out_dir, int max_seq_length);

#endif
