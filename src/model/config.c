/* Parsers for the small JSON files of a model directory: config.json (each
 * family's keys mapped onto one block description, model.h), and the
 * sentence-transformers modules.json, 1_Pooling/config.json and
 * sentence_bert_config.json. Each takes (ptr, len). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static json_t *load_object(const char *json, size_t len, const char *what) {
    json_error_t e;
    json_t *root = json_loadb(json, len, 0, &e);
    if (!root) {
        base_err(CEMBED_EFORMAT, "%s: not valid JSON: %s (line %d)", what, e.text, e.line);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        base_err(CEMBED_EFORMAT, "%s: not a JSON object", what);
        return NULL;
    }
    return root;
}

/* An integer field in [lo, hi]; absent takes def (def < 0: required). */
static int get_int(json_t *o, const char *key, int def, int lo, int hi, int *out) {
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (def < 0) return base_err(CEMBED_EFORMAT, "config.json: missing \"%s\"", key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return base_err(CEMBED_EFORMAT, "config.json: \"%s\" must be an integer in [%d, %d]", key,
                        lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

/* A number field in [lo, hi]; absent (or null) takes def. */
static int get_num(json_t *o, const char *key, double def, double lo, double hi, float *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = (float)def;
        return 0;
    }
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi)
        return base_err(CEMBED_EFORMAT, "config.json: \"%s\" must be a number in [%g, %g]", key, lo, hi);
    *out = (float)json_number_value(v);
    return 0;
}

/* A boolean field; absent (or null) takes def. */
static int get_bool(json_t *o, const char *key, int def, int *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return base_err(CEMBED_EFORMAT, "config.json: \"%s\" must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* A string field (absent: def), copied into out[n]. */
static const char *get_str(json_t *o, const char *key, const char *def, char *out, size_t n) {
    json_t *v = json_object_get(o, key);
    snprintf(out, n, "%s", json_is_string(v) ? json_string_value(v) : def);
    return out;
}

static int unsupported(const char *what) {
    return base_err(CEMBED_EMODEL, "config.json: %s is not supported", what);
}

/* BERT's keys, shared by JinaBERT-v2 and XLM-RoBERTa. */
static int parse_bert_shape(json_t *o, model_config *c) {
    if (get_int(o, "vocab_size", -1, 1, 1 << 24, &c->vocab_size) ||
        get_int(o, "hidden_size", -1, 1, 16384, &c->hidden) ||
        get_int(o, "num_hidden_layers", -1, 1, 256, &c->layers) ||
        get_int(o, "num_attention_heads", -1, 1, 1024, &c->heads) ||
        get_int(o, "intermediate_size", -1, 1, 65536, &c->intermediate) ||
        get_int(o, "max_position_embeddings", 512, 1, 1 << 20, &c->max_position) ||
        get_int(o, "type_vocab_size", 2, 0, 1 << 16, &c->type_vocab_size) ||
        get_num(o, "layer_norm_eps", 1e-12, 1e-30, 1, &c->layer_norm_eps))
        return CEMBED_EFORMAT;
    get_str(o, "hidden_act", "gelu", c->hidden_act, sizeof c->hidden_act);
    if (strcmp(c->hidden_act, "gelu") != 0)
        return base_err(CEMBED_EMODEL, "config.json: hidden_act \"%.32s\" is not supported (gelu is)", c->hidden_act);
    c->act = ACT_GELU;
    c->qkv_bias = c->o_bias = c->up_bias = c->down_bias = c->norm_bias = c->emb_norm = 1;
    return 0;
}

/* model_type "bert": BERT, or JinaBERT-v2 when positions are ALiBi. */
static int parse_bert(json_t *o, model_config *c) {
    if (parse_bert_shape(o, c)) return CEMBED_EFORMAT;
    char pe[32], ff[32];
    get_str(o, "position_embedding_type", "absolute", pe, sizeof pe);
    if (strcmp(pe, "absolute") == 0) return 0;
    if (strcmp(pe, "alibi") != 0)
        return base_err(CEMBED_EMODEL, "config.json: position_embedding_type \"%.32s\" is not supported "
                        "(absolute and alibi are)", pe);
    c->arch = ARCH_JINA_BERT;
    c->pos = POS_ALIBI;
    /* jina-embeddings-v2-base-code's layer: its auto_map names jina-bert-v2-qk-post-norm */
    char *am = json_dumps(json_object_get(o, "auto_map"), JSON_COMPACT | JSON_ENCODE_ANY);
    c->double_norm = am && strstr(am, "qk-post-norm") != NULL;
    c->qk_norm = c->double_norm ? c->hidden : 0;
    free(am);
    get_str(o, "feed_forward_type", "original", ff, sizeof ff);
    if (strcmp(ff, "geglu") == 0) {
        c->glu = 1;
        c->up_bias = 0;   /* gated_layers has none */
    } else if (strcmp(ff, "original") != 0) {
        return base_err(CEMBED_EMODEL, "config.json: feed_forward_type \"%.32s\" is not supported "
                        "(geglu and original are)", ff);
    }
    return 0;
}

/* XLM-RoBERTa and RoBERTa: BERT whose positions start after padding_idx. */
static int parse_roberta(json_t *o, model_config *c) {
    if (parse_bert_shape(o, c)) return CEMBED_EFORMAT;
    c->arch = ARCH_XLM_ROBERTA;
    int pad;
    if (get_int(o, "pad_token_id", 1, 0, 1 << 24, &pad)) return CEMBED_EFORMAT;
    c->pos_offset = pad + 1;
    if (c->max_position <= c->pos_offset + 1)
        return base_err(CEMBED_EFORMAT, "config.json: max_position_embeddings %d leaves no position after "
                        "pad_token_id %d", c->max_position, pad);
    char pe[32];
    if (strcmp(get_str(o, "position_embedding_type", "absolute", pe, sizeof pe), "absolute") != 0)
        return unsupported("a RoBERTa position_embedding_type other than absolute");
    return 0;
}

/* NomicBERT (nomic-embed-text, CodeRankEmbed): GPT-2 style keys. */
static int parse_nomic(json_t *o, model_config *c) {
    int inner = 0, interleaved = 0, prenorm = 0, causal = 0, rms = 0, parallel = 0;
    float fraction, base;
    json_t *ni = json_object_get(o, "n_inner");
    if (get_int(o, "vocab_size", -1, 1, 1 << 24, &c->vocab_size) ||
        get_int(o, "n_embd", -1, 2, 16384, &c->hidden) || get_int(o, "n_layer", -1, 1, 256, &c->layers) ||
        get_int(o, "n_head", -1, 1, 1024, &c->heads) ||
        (ni && !json_is_null(ni) && get_int(o, "n_inner", -1, 1, 65536, &inner)) ||
        get_int(o, "n_positions", 2048, 1, 1 << 20, &c->max_position) ||
        get_int(o, "type_vocab_size", 2, 0, 1 << 16, &c->type_vocab_size) ||
        get_num(o, "layer_norm_epsilon", 1e-5, 1e-30, 1, &c->layer_norm_eps) ||
        get_num(o, "rotary_emb_fraction", 0, 0, 1, &fraction) ||
        get_num(o, "rotary_emb_base", 10000, 1, 1e12, &base) ||
        get_bool(o, "rotary_emb_interleaved", 0, &interleaved) || get_bool(o, "prenorm", 0, &prenorm) ||
        get_bool(o, "causal", 0, &causal) || get_bool(o, "use_rms_norm", 0, &rms) ||
        get_bool(o, "parallel_block", 0, &parallel) || get_bool(o, "qkv_proj_bias", 1, &c->qkv_bias) ||
        get_bool(o, "mlp_fc1_bias", 1, &c->up_bias) || get_bool(o, "mlp_fc2_bias", 1, &c->down_bias))
        return CEMBED_EFORMAT;
    c->arch = ARCH_NOMIC_BERT;
    c->intermediate = inner ? inner : 4 * c->hidden;
    c->o_bias = c->qkv_bias;
    c->norm_bias = c->emb_norm = 1;
    get_str(o, "activation_function", "swiglu", c->hidden_act, sizeof c->hidden_act);
    if (strcmp(c->hidden_act, "swiglu") == 0) c->act = ACT_SILU;
    else if (strcmp(c->hidden_act, "geglu") == 0) c->act = ACT_GELU;
    else
        return base_err(CEMBED_EMODEL, "config.json: activation_function \"%.32s\" is not supported "
                        "(swiglu and geglu are)", c->hidden_act);
    c->glu = 1;
    json_t *scaling = json_object_get(o, "rotary_scaling_factor");
    if (interleaved) return unsupported("rotary_emb_interleaved true");
    if (prenorm) return unsupported("a pre-norm NomicBERT (prenorm true)");
    if (causal) return unsupported("a causal NomicBERT");
    if (rms) return unsupported("use_rms_norm true");
    if (parallel) return unsupported("parallel_block true");
    if (scaling && !json_is_null(scaling)) return unsupported("rotary_scaling_factor (dynamic NTK rotary)");
    const int dh = c->hidden / c->heads;
    c->rope_dims = (int)(dh * fraction);
    if (c->rope_dims < 2 || c->rope_dims % 2)
        return base_err(CEMBED_EMODEL, "config.json: rotary_emb_fraction %g of head size %d gives %d rotary "
                        "dimensions (an even number >= 2 is needed)", fraction, dh, c->rope_dims);
    c->pos = POS_ROTARY;
    c->rope_base = c->rope_base_local = base;
    return 0;
}

/* ModernBERT: pre-norm, rotary (global and local bases), sliding windows. */
static int parse_modernbert(json_t *o, model_config *c) {
    if (get_int(o, "vocab_size", -1, 1, 1 << 24, &c->vocab_size) ||
        get_int(o, "hidden_size", -1, 2, 16384, &c->hidden) ||
        get_int(o, "num_hidden_layers", -1, 1, 256, &c->layers) ||
        get_int(o, "num_attention_heads", -1, 1, 1024, &c->heads) ||
        get_int(o, "intermediate_size", -1, 1, 65536, &c->intermediate) ||
        get_int(o, "max_position_embeddings", 8192, 1, 1 << 20, &c->max_position) ||
        get_num(o, "norm_eps", 1e-5, 1e-30, 1, &c->layer_norm_eps) ||
        get_bool(o, "norm_bias", 0, &c->norm_bias) || get_bool(o, "attention_bias", 0, &c->qkv_bias) ||
        get_bool(o, "mlp_bias", 0, &c->up_bias) ||
        get_num(o, "global_rope_theta", 160000, 1, 1e12, &c->rope_base) ||
        get_num(o, "local_rope_theta", 10000, 1, 1e12, &c->rope_base_local) ||
        get_int(o, "local_attention", 128, 0, 1 << 20, &c->window) ||
        get_int(o, "global_attn_every_n_layers", 3, 1, 256, &c->global_every))
        return CEMBED_EFORMAT;
    c->arch = ARCH_MODERNBERT;
    c->o_bias = c->qkv_bias;
    c->down_bias = c->up_bias;
    c->prenorm = c->glu = c->emb_norm = c->final_norm = 1;
    c->pos = POS_ROTARY;
    c->rope_dims = c->hidden / c->heads;
    if (c->rope_dims % 2) return unsupported("an odd head size with rotary positions");
    get_str(o, "hidden_activation", "gelu", c->hidden_act, sizeof c->hidden_act);
    if (strcmp(c->hidden_act, "gelu") != 0)
        return base_err(CEMBED_EMODEL, "config.json: hidden_activation \"%.32s\" is not supported (gelu is)",
                        c->hidden_act);
    c->act = ACT_GELU;
    return 0;
}

/* Qwen2 and Qwen3 decoders as embedders: pre-RMSNorm, rotary, grouped-query
 * causal attention (Qwen2: q/k/v biases; Qwen3: per-head q_norm / k_norm),
 * SwiGLU gate/up/down, a final norm; pooling from 1_Pooling (last token). */
static int parse_qwen(json_t *o, model_config *c, int qwen3) {
    int sliding = 0, bias = !qwen3;
    if (get_int(o, "vocab_size", -1, 1, 1 << 24, &c->vocab_size) ||
        get_int(o, "hidden_size", -1, 2, 65536, &c->hidden) ||
        get_int(o, "num_hidden_layers", -1, 1, 512, &c->layers) ||
        get_int(o, "num_attention_heads", -1, 1, 1024, &c->heads) ||
        get_int(o, "num_key_value_heads", c->heads, 1, 1024, &c->kv_heads) ||
        get_int(o, "head_dim", c->hidden / c->heads, 2, 4096, &c->head_dim) ||
        get_int(o, "intermediate_size", -1, 1, 1 << 20, &c->intermediate) ||
        get_int(o, "max_position_embeddings", 32768, 1, 1 << 22, &c->max_position) ||
        get_num(o, "rms_norm_eps", 1e-6, 1e-30, 1, &c->layer_norm_eps) ||
        get_num(o, "rope_theta", 10000, 1, 1e12, &c->rope_base) ||
        get_bool(o, "use_sliding_window", 0, &sliding) || get_bool(o, "attention_bias", bias, &bias) ||
        get_bool(o, "is_causal", 1, &c->causal))
        return CEMBED_EFORMAT;
    c->arch = qwen3 ? ARCH_QWEN3 : ARCH_QWEN2;
    c->norm = NORM_RMS;
    c->prenorm = c->final_norm = c->glu = 1;
    c->act = ACT_SILU;
    c->qkv_bias = bias;
    c->pos = POS_ROTARY;
    c->rope_dims = c->head_dim;
    c->rope_base_local = c->rope_base;
    c->qk_norm = qwen3 ? c->head_dim : 0;
    get_str(o, "hidden_act", "silu", c->hidden_act, sizeof c->hidden_act);
    json_t *scaling = json_object_get(o, "rope_scaling");
    if (strcmp(c->hidden_act, "silu") != 0)
        return base_err(CEMBED_EMODEL, "config.json: hidden_act \"%.32s\" is not supported (silu is)", c->hidden_act);
    if (scaling && !json_is_null(scaling)) return unsupported("rope_scaling (only plain rotary positions run)");
    if (sliding) return unsupported("use_sliding_window true");
    if (c->heads % c->kv_heads)
        return base_err(CEMBED_EFORMAT, "config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                        c->heads, c->kv_heads);
    if (c->head_dim % 2) return unsupported("an odd head_dim with rotary positions");
    return 0;
}

/* "architectures": a *ForSequenceClassification head, and its labels. */
static int parse_head(json_t *o, model_config *c) {
    json_t *arch = json_array_get(json_object_get(o, "architectures"), 0);
    const char *a = json_is_string(arch) ? json_string_value(arch) : "";
    if (!strstr(a, "ForSequenceClassification")) return 0;
    if (c->arch == ARCH_BERT) c->head = HEAD_BERT;
    else if (c->arch == ARCH_XLM_ROBERTA) c->head = HEAD_ROBERTA;
    else
        return base_err(CEMBED_EMODEL, "config.json: %.64s is not supported (BertForSequenceClassification and "
                        "XLMRobertaForSequenceClassification are)", a);
    json_t *labels = json_object_get(o, "id2label");
    c->num_labels = json_is_object(labels) ? (int)json_object_size(labels) : 2;
    if (json_object_get(o, "num_labels") && get_int(o, "num_labels", 2, 1, 1 << 16, &c->num_labels))
        return CEMBED_EFORMAT;
    if (c->num_labels < 1 || c->num_labels > (1 << 16))
        return base_err(CEMBED_EFORMAT, "config.json: id2label must have between 1 and 65536 labels");
    return 0;
}

int model_type_known(const char *t) {
    static const char *known[] = {"bert", "xlm-roberta", "roberta", "nomic_bert", "modernbert", "qwen2", "qwen3"};
    for (size_t i = 0; i < CE_ARRAY_LEN(known); i++)
        if (strcmp(t, known[i]) == 0) return 1;
    return 0;
}

int model_config_parse(const char *json, size_t len, model_config *out) {
    memset(out, 0, sizeof *out);
    json_t *o = load_object(json, len, "config.json");
    if (!o) return CEMBED_EFORMAT;
    int rc;
    const char *type = get_str(o, "model_type", "bert", out->model_type, sizeof out->model_type);
    if (!model_type_known(type)) rc = base_err(CEMBED_EMODEL, "config.json: model_type \"%.32s\" is not supported (%s are)", type, MODEL_TYPES);
    else if (strcmp(type, "bert") == 0) rc = parse_bert(o, out);
    else if (strcmp(type, "xlm-roberta") == 0 || strcmp(type, "roberta") == 0) rc = parse_roberta(o, out);
    else if (strcmp(type, "nomic_bert") == 0) rc = parse_nomic(o, out);
    else if (strcmp(type, "qwen2") == 0 || strcmp(type, "qwen3") == 0) rc = parse_qwen(o, out, type[4] == '3');
    else
        rc = parse_modernbert(o, out);
    if (!rc && !out->kv_heads) out->kv_heads = out->heads;
    if (!rc && !out->head_dim && out->hidden % out->heads == 0) out->head_dim = out->hidden / out->heads;
    if (!rc && !out->head_dim)
        rc = base_err(CEMBED_EFORMAT, "config.json: hidden size %d is not a multiple of the head count %d",
                      out->hidden, out->heads);
    if (!rc) rc = parse_head(o, out);
    json_decref(o);
    return rc;
}

int model_pooling_parse(const char *json, size_t len, pool_mode *out) {
    json_t *o = load_object(json, len, "1_Pooling/config.json");
    if (!o) return CEMBED_EFORMAT;
    static const char *unsupported[] = {"pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                                        "pooling_mode_weightedmean_tokens"};
    int rc = 0;
    int mean = json_is_true(json_object_get(o, "pooling_mode_mean_tokens"));
    int cls = json_is_true(json_object_get(o, "pooling_mode_cls_token"));
    int last = json_is_true(json_object_get(o, "pooling_mode_lasttoken"));
    for (size_t i = 0; i < CE_ARRAY_LEN(unsupported); i++)
        if (json_is_true(json_object_get(o, unsupported[i])))
            rc = base_err(CEMBED_EMODEL, "1_Pooling/config.json: %s is not supported", unsupported[i]);
    if (!rc && mean + cls + last != 1)
        rc = base_err(CEMBED_EMODEL,
                      "1_Pooling/config.json: exactly one of mean, CLS or last-token pooling must be set");
    if (!rc) *out = mean ? POOL_MEAN : cls ? POOL_CLS : POOL_LAST;
    json_decref(o);
    return rc;
}

int model_modules_parse(const char *json, size_t len, int *normalize, char **pooling_path) {
    *normalize = 0;
    *pooling_path = NULL;
    json_error_t e;
    json_t *a = json_loadb(json, len, 0, &e);
    if (!a || !json_is_array(a)) {
        json_decref(a);
        return base_err(CEMBED_EFORMAT, "modules.json: not a JSON array");
    }
    size_t i;
    json_t *m;
    json_array_foreach(a, i, m) {
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *path = json_string_value(json_object_get(m, "path"));
        if (!type) continue;
        if (strstr(type, "Normalize")) *normalize = 1;
        if (strstr(type, "Pooling") && path && !*pooling_path) {
            *pooling_path = base_strndup(path, strlen(path));
            if (!*pooling_path) {
                json_decref(a);
                return base_err(CEMBED_ENOMEM, "modules.json: out of memory");
            }
        }
    }
    json_decref(a);
    return 0;
}

int model_st_config_parse(const char *json, size_t len, int *max_seq_length) {
    *max_seq_length = 0;
    json_t *o = load_object(json, len, "sentence_bert_config.json");
    if (!o) return CEMBED_EFORMAT;
    json_t *v = json_object_get(o, "max_seq_length");
    int rc = 0;
    if (v && (!json_is_integer(v) || json_integer_value(v) < 2 || json_integer_value(v) > (1 << 20)))
        rc = base_err(CEMBED_EFORMAT,
                      "sentence_bert_config.json: \"max_seq_length\" must be an integer >= 2");
    else if (v)
        *max_seq_length = (int)json_integer_value(v);
    json_decref(o);
    return rc;
}

void model_prompts_free(model_prompts *p) {
    for (size_t i = 0; i < p->n; i++) base_free(p->names[i]), base_free(p->texts[i]);
    base_free(p->names);
    base_free(p->texts);
    base_free(p->default_name);
    base_free(p->list);
    memset(p, 0, sizeof *p);
}

int model_prompts_parse(const char *json, size_t len, model_prompts *out) {
    memset(out, 0, sizeof *out);
    json_t *o = load_object(json, len, "config_sentence_transformers.json");
    if (!o) return CEMBED_EFORMAT;
    int rc = 0;
    json_t *prompts = json_object_get(o, "prompts"), *def = json_object_get(o, "default_prompt_name");
    if (prompts && !json_is_null(prompts) && !json_is_object(prompts)) {
        rc = base_err(CEMBED_EFORMAT, "config_sentence_transformers.json: \"prompts\" must be an object");
        goto done;
    }
    const size_t n = prompts ? json_object_size(prompts) : 0;
    if (n > 256) {
        rc = base_err(CEMBED_EFORMAT, "config_sentence_transformers.json: %zu prompts, over the limit of 256", n);
        goto done;
    }
    out->names = base_calloc(n ? n : 1, sizeof *out->names);
    out->texts = base_calloc(n ? n : 1, sizeof *out->texts);
    buf list = {0};
    if (!out->names || !out->texts || buf_append(&list, "", 1)) {
        buf_free(&list);
        rc = base_err(CEMBED_ENOMEM, "out of memory");
        goto done;
    }
    list.len = 0;
    const char *key;
    json_t *v;
    json_object_foreach(prompts, key, v) {
        if (!json_is_string(v) || json_string_length(v) > 4096 || strlen(key) > 256) {
            buf_free(&list);
            rc = base_err(CEMBED_EFORMAT, "config_sentence_transformers.json: prompt \"%.64s\" must be a string of "
                          "at most 4096 bytes (its name at most 256)", key);
            goto done;
        }
        out->names[out->n] = base_strndup(key, strlen(key));
        out->texts[out->n] = base_strndup(json_string_value(v), json_string_length(v));
        out->n++;
        if (!out->names[out->n - 1] || !out->texts[out->n - 1] || (list.len && buf_append(&list, ", ", 2)) ||
            buf_append(&list, key, strlen(key))) {
            buf_free(&list);
            rc = base_err(CEMBED_ENOMEM, "out of memory");
            goto done;
        }
    }
    if (buf_append(&list, "", 1)) {
        buf_free(&list);
        rc = base_err(CEMBED_ENOMEM, "out of memory");
        goto done;
    }
    out->list = list.ptr;
    if (def && !json_is_null(def)) {
        const char *d = json_string_value(def);
        int found = 0;
        for (size_t i = 0; d && i < out->n; i++) found |= strcmp(out->names[i], d) == 0;
        if (!found) {
            rc = base_err(CEMBED_EFORMAT, "config_sentence_transformers.json: \"default_prompt_name\" names no prompt");
            goto done;
        }
        if (!(out->default_name = base_strndup(d, strlen(d)))) rc = base_err(CEMBED_ENOMEM, "out of memory");
    }
done:
    json_decref(o);
    if (rc) model_prompts_free(out);
    return rc;
}
