/* Parsers for the small JSON files of a model directory: config.json (BERT
 * shape), and the sentence-transformers modules.json, 1_Pooling/config.json
 * and sentence_bert_config.json. Each takes (ptr, len). */
#include <jansson.h>
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

int model_config_parse(const char *json, size_t len, model_config *out) {
    memset(out, 0, sizeof *out);
    json_t *o = load_object(json, len, "config.json");
    if (!o) return CEMBED_EFORMAT;
    int rc = CEMBED_EFORMAT;
    json_t *mt = json_object_get(o, "model_type");
    const char *type = json_is_string(mt) ? json_string_value(mt) : "bert";
    snprintf(out->model_type, sizeof out->model_type, "%s", type);
    if (strcmp(type, "bert") != 0) {
        rc = base_err(CEMBED_EMODEL, "config.json: model_type \"%.32s\" is not supported (bert is)",
                      type);
        goto done;
    }
    if (get_int(o, "vocab_size", -1, 1, 1 << 24, &out->vocab_size) ||
        get_int(o, "hidden_size", -1, 1, 16384, &out->hidden) ||
        get_int(o, "num_hidden_layers", -1, 1, 256, &out->layers) ||
        get_int(o, "num_attention_heads", -1, 1, 1024, &out->heads) ||
        get_int(o, "intermediate_size", -1, 1, 65536, &out->intermediate) ||
        get_int(o, "max_position_embeddings", 512, 1, 1 << 20, &out->max_position) ||
        get_int(o, "type_vocab_size", 2, 0, 1 << 16, &out->type_vocab_size))
        goto done;
    if (out->hidden % out->heads != 0) {
        base_err(rc, "config.json: hidden_size %d is not a multiple of num_attention_heads %d",
                 out->hidden, out->heads);
        goto done;
    }
    json_t *eps = json_object_get(o, "layer_norm_eps");
    out->layer_norm_eps = 1e-12f;
    if (eps) {
        if (!json_is_number(eps) || json_number_value(eps) <= 0 || json_number_value(eps) > 1) {
            base_err(rc, "config.json: \"layer_norm_eps\" must be a number in (0, 1]");
            goto done;
        }
        out->layer_norm_eps = (float)json_number_value(eps);
    }
    json_t *act = json_object_get(o, "hidden_act");
    const char *a = json_is_string(act) ? json_string_value(act) : "gelu";
    snprintf(out->hidden_act, sizeof out->hidden_act, "%s", a);
    if (strcmp(a, "gelu") != 0) {
        rc = base_err(CEMBED_EMODEL, "config.json: hidden_act \"%.32s\" is not supported (gelu is)", a);
        goto done;
    }
    json_t *pe = json_object_get(o, "position_embedding_type");
    if (pe && (!json_is_string(pe) || strcmp(json_string_value(pe), "absolute") != 0)) {
        rc = base_err(CEMBED_EMODEL, "config.json: only absolute position embeddings are supported");
        goto done;
    }
    rc = 0;
done:
    json_decref(o);
    return rc;
}

int model_pooling_parse(const char *json, size_t len, pool_mode *out) {
    json_t *o = load_object(json, len, "1_Pooling/config.json");
    if (!o) return CEMBED_EFORMAT;
    static const char *unsupported[] = {"pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                                        "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"};
    int rc = 0;
    int mean = json_is_true(json_object_get(o, "pooling_mode_mean_tokens"));
    int cls = json_is_true(json_object_get(o, "pooling_mode_cls_token"));
    for (size_t i = 0; i < CE_ARRAY_LEN(unsupported); i++)
        if (json_is_true(json_object_get(o, unsupported[i])))
            rc = base_err(CEMBED_EMODEL, "1_Pooling/config.json: %s is not supported", unsupported[i]);
    if (!rc && mean + cls != 1)
        rc = base_err(CEMBED_EMODEL,
                      "1_Pooling/config.json: exactly one of mean or CLS pooling must be set");
    if (!rc) *out = mean ? POOL_MEAN : POOL_CLS;
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
