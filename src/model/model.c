/* Loading an encoder model directory: config, weights by mmap through the
 * family's name table, the sentence-transformers settings. See model.h for
 * the contract. */
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model.h"

/* Reads DIR/NAME if it exists. OUT: *data (NULL when absent), *len. */
static int read_optional(const char *dir, const char *name, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    char *p = path_join(dir, name);
    if (!p) return base_err(CEMBED_ENOMEM, "out of memory");
    int rc = 0;
    if (file_exists(p)) rc = file_read_all(p, MODEL_MAX_CONFIG_BYTES, data, len);
    base_free(p);
    return rc;
}

float model_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 1024));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 1023) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

typedef struct loader {
    model *m;
    const char *prefix;   /* "", "bert.", "roberta.", "model." */
    size_t owned_used, owned_cap;
} loader;

size_t model_w_elem(model_w w) { return w.dtype == ST_F32 ? 4 : 2; }

const float *model_w_f32(model_w w) {
    return w.dtype == ST_F32 && ((uintptr_t)w.p & 3) == 0 ? (const float *)w.p : NULL;
}

model_w model_w_at(model_w w, size_t off) {
    return (model_w){(const uint8_t *)w.p + off * model_w_elem(w), w.dtype};
}

static float bf16_to_f32(uint16_t h) {
    const uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void model_w_read(model_w w, size_t off, size_t n, float *dst, int add) {
    const uint8_t *s = (const uint8_t *)w.p + off * model_w_elem(w);
    if (w.dtype == ST_F32) {
        if (!add) {
            memcpy(dst, s, n * sizeof(float));
            return;
        }
        for (size_t i = 0; i < n; i++) {
            float f;
            memcpy(&f, s + 4 * i, 4);
            dst[i] += f;
        }
        return;
    }
    /* one loop per (dtype, add): the compiler vectorizes the BF16 shift */
    const int bf = w.dtype == ST_BF16;
    for (size_t i = 0; i < n; i++) {
        const uint16_t h = (uint16_t)(s[2 * i] | (s[2 * i + 1] << 8));
        const float f = bf ? bf16_to_f32(h) : model_f16_to_f32(h);
        dst[i] = add ? dst[i] + f : f;
    }
}

size_t model_w_release(model_w w, size_t off, size_t n) {
    if (!w.p) return 0;
    return file_map_release((const uint8_t *)w.p + off * model_w_elem(w), n * model_w_elem(w));
}

/* Converts vector t to F32 in owned memory (or points into the map). */
static const float *as_f32(loader *L, const st_tensor *t) {
    const model_w w = {t->data, t->dtype};
    if (model_w_f32(w)) return model_w_f32(w);
    CE_ASSERT(L->owned_used + t->numel <= L->owned_cap);
    float *dst = L->m->owned + L->owned_used;
    L->owned_used += t->numel;
    model_w_read(w, 0, t->numel, dst, 0);
    return dst;
}

/* Finds NAME (prefixed unless it starts with '/', which means "no prefix"),
 * or ALT, checks its shape and stores it at out: a matrix (d1 > 0) as a
 * model_w, a vector as F32 data. optional: an absent tensor leaves it NULL
 * and is no error. */
static int tensor_opt(loader *L, const char *name, const char *alt, int64_t d0, int64_t d1, int optional,
                      void *out) {
    char full[256];
    const int bare = name[0] == '/';
    snprintf(full, sizeof full, "%s%s", bare ? "" : L->prefix, name + bare);
    const st_tensor *t = st_find(&L->m->st, full);
    if (!t && alt) {
        snprintf(full, sizeof full, "%s%s", bare ? "" : L->prefix, alt);
        t = st_find(&L->m->st, full);
    }
    if (d1) *(model_w *)out = (model_w){NULL, ST_F32};
    else *(const float **)out = NULL;
    if (!t && optional) return 0;
    if (!t)
        return base_err(CEMBED_EMODEL, "model.safetensors: missing tensor \"%s%s\"", bare ? "" : L->prefix,
                        name + bare);
    int want_ndim = d1 ? 2 : 1;
    if (t->ndim != want_ndim || t->shape[0] != d0 || (d1 && t->shape[1] != d1))
        return base_err(CEMBED_EMODEL,
                        "model.safetensors: tensor \"%s\" has shape [%lld%s%lld], config.json "
                        "implies [%lld%s%lld]",
                        full, (long long)t->shape[0], t->ndim > 1 ? ", " : "",
                        t->ndim > 1 ? (long long)t->shape[1] : 0LL, (long long)d0, d1 ? ", " : "",
                        (long long)d1);
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return base_err(CEMBED_EMODEL, "model.safetensors: tensor \"%s\" is %s (F32, F16 or BF16 needed)",
                        full, st_dtype_name(t->dtype));
    if (d1) *(model_w *)out = (model_w){t->data, t->dtype};
    else *(const float **)out = as_f32(L, t);
    return 0;
}

/* The sizes a name table speaks in, resolved from the config. */
typedef enum { D_0, D_H, D_2H, D_3H, D_I, D_2I, D_V, D_POS, D_TYPES, D_LABELS, D_Q, D_KV, D_DH } dim;

static int64_t dim_of(const model_config *c, dim d) {
    switch (d) {
    case D_0: return 0;
    case D_H: return c->hidden;
    case D_2H: return 2 * (int64_t)c->hidden;
    case D_3H: return 3 * (int64_t)c->hidden;
    case D_I: return c->intermediate;
    case D_2I: return 2 * (int64_t)c->intermediate;
    case D_V: return c->vocab_size;
    case D_POS: return c->max_position;
    case D_TYPES: return c->type_vocab_size;
    case D_Q: return (int64_t)c->heads * c->head_dim;
    case D_KV: return (int64_t)c->kv_heads * c->head_dim;
    case D_DH: return c->head_dim;
    default: return c->num_labels;
    }
}

/* When a tensor is loaded: always, if the config says it exists (else it
 * is used if present: a checkpoint never carries a weight for nothing),
 * or only if present. */
enum { NEED, IF_QKV_BIAS, IF_O_BIAS, IF_UP_BIAS, IF_DOWN_BIAS, IF_NORM_BIAS, IF_QK_NORM, MAYBE };

/* One row of a family's name table: a layer tensor (off: its field in
 * bert_layer_w) or, in the model tables, a field of model. */
typedef struct tspec {
    const char *name, *alt;
    dim d0, d1;
    int when;
    size_t off;
} tspec;

#define LW(f) offsetof(bert_layer_w, f)
#define MW(f) offsetof(model, f)

static const tspec bert_attention[] = {
    {"attention.self.query.weight", NULL, D_H, D_H, NEED, LW(q_w)},
    {"attention.self.query.bias", NULL, D_H, D_0, IF_QKV_BIAS, LW(q_b)},
    {"attention.self.key.weight", NULL, D_H, D_H, NEED, LW(k_w)},
    {"attention.self.key.bias", NULL, D_H, D_0, IF_QKV_BIAS, LW(k_b)},
    {"attention.self.value.weight", NULL, D_H, D_H, NEED, LW(v_w)},
    {"attention.self.value.bias", NULL, D_H, D_0, IF_QKV_BIAS, LW(v_b)},
    {"attention.output.dense.weight", NULL, D_H, D_H, NEED, LW(o_w)},
    {"attention.output.dense.bias", NULL, D_H, D_0, IF_O_BIAS, LW(o_b)},
    {"attention.output.LayerNorm.weight", "attention.output.LayerNorm.gamma", D_H, D_0, NEED, LW(ln1_g)},
    {"attention.output.LayerNorm.bias", "attention.output.LayerNorm.beta", D_H, D_0, IF_NORM_BIAS, LW(ln1_b)},
    {NULL, NULL, D_0, D_0, 0, 0},
};
static const tspec bert_mlp[] = {
    {"intermediate.dense.weight", NULL, D_I, D_H, NEED, LW(i_w)},
    {"intermediate.dense.bias", NULL, D_I, D_0, IF_UP_BIAS, LW(i_b)},
    {"output.dense.weight", NULL, D_H, D_I, NEED, LW(f_w)},
    {"output.dense.bias", NULL, D_H, D_0, IF_DOWN_BIAS, LW(f_b)},
    {"output.LayerNorm.weight", "output.LayerNorm.gamma", D_H, D_0, NEED, LW(ln2_g)},
    {"output.LayerNorm.bias", "output.LayerNorm.beta", D_H, D_0, IF_NORM_BIAS, LW(ln2_b)},
    {NULL, NULL, D_0, D_0, 0, 0},
};
/* JinaBERT-v2's GLU: gated_layers [2I, H] = (act half; plain half) */
static const tspec jina_mlp[] = {
    {"mlp.gated_layers.weight", NULL, D_2I, D_H, NEED, LW(i_w)},
    {"mlp.gated_layers.bias", NULL, D_2I, D_0, IF_UP_BIAS, LW(i_b)},
    {"mlp.wo.weight", NULL, D_H, D_I, NEED, LW(f_w)},
    {"mlp.wo.bias", NULL, D_H, D_0, IF_DOWN_BIAS, LW(f_b)},
    {"mlp.layernorm.weight", NULL, D_H, D_0, NEED, LW(ln2_g)},
    {"mlp.layernorm.bias", NULL, D_H, D_0, IF_NORM_BIAS, LW(ln2_b)},
    {NULL, NULL, D_0, D_0, 0, 0},
};
/* JinaBERT-v2 qk-post-norm (base-code): LayerNorms of Q and K, a second
 * LayerNorm after attention, up_gated_layer [2I, H] = (plain half; act
 * half), split into the two views the engine stacks act half first */
static const tspec jina_code_layer[] = {
    {"attention.self.layer_norm_q.weight", NULL, D_H, D_0, NEED, LW(qn_g)},
    {"attention.self.layer_norm_q.bias", NULL, D_H, D_0, IF_NORM_BIAS, LW(qn_b)},
    {"attention.self.layer_norm_k.weight", NULL, D_H, D_0, NEED, LW(kn_g)},
    {"attention.self.layer_norm_k.bias", NULL, D_H, D_0, IF_NORM_BIAS, LW(kn_b)},
    {"layer_norm_1.weight", NULL, D_H, D_0, NEED, LW(ln1x_g)},
    {"layer_norm_1.bias", NULL, D_H, D_0, IF_NORM_BIAS, LW(ln1x_b)},
    {"mlp.up_gated_layer.weight", NULL, D_2I, D_H, NEED, LW(i2_w)},
    {"mlp.down_layer.weight", NULL, D_H, D_I, NEED, LW(f_w)},
    {"mlp.down_layer.bias", NULL, D_H, D_0, IF_DOWN_BIAS, LW(f_b)},
    {"layer_norm_2.weight", NULL, D_H, D_0, NEED, LW(ln2_g)},
    {"layer_norm_2.bias", NULL, D_H, D_0, IF_NORM_BIAS, LW(ln2_b)},
    {NULL, NULL, D_0, D_0, 0, 0},
};
/* NomicBERT: fused Wqkv; SwiGLU y = fc2(fc11(x) * act(fc12(x))) */
static const tspec nomic_layer[] = {
    {"attn.Wqkv.weight", NULL, D_3H, D_H, NEED, LW(qkv_w)},
    {"attn.Wqkv.bias", NULL, D_3H, D_0, IF_QKV_BIAS, LW(q_b)},
    {"attn.out_proj.weight", NULL, D_H, D_H, NEED, LW(o_w)},
    {"attn.out_proj.bias", NULL, D_H, D_0, IF_O_BIAS, LW(o_b)},
    {"norm1.weight", NULL, D_H, D_0, NEED, LW(ln1_g)},
    {"norm1.bias", NULL, D_H, D_0, IF_NORM_BIAS, LW(ln1_b)},
    {"mlp.fc12.weight", NULL, D_I, D_H, NEED, LW(i_w)},
    {"mlp.fc12.bias", NULL, D_I, D_0, IF_UP_BIAS, LW(i_b)},
    {"mlp.fc11.weight", NULL, D_I, D_H, NEED, LW(i2_w)},
    {"mlp.fc11.bias", NULL, D_I, D_0, IF_UP_BIAS, LW(i2_b)},
    {"mlp.fc2.weight", NULL, D_H, D_I, NEED, LW(f_w)},
    {"mlp.fc2.bias", NULL, D_H, D_0, IF_DOWN_BIAS, LW(f_b)},
    {"norm2.weight", NULL, D_H, D_0, NEED, LW(ln2_g)},
    {"norm2.bias", NULL, D_H, D_0, IF_NORM_BIAS, LW(ln2_b)},
    {NULL, NULL, D_0, D_0, 0, 0},
};
/* ModernBERT: pre-norm (attn_norm is the identity in layer 0), GeGLU Wi
 * [2I, H] = (act half; gate half) */
static const tspec modernbert_layer[] = {
    {"attn_norm.weight", NULL, D_H, D_0, MAYBE, LW(ln1_g)},
    {"attn_norm.bias", NULL, D_H, D_0, IF_NORM_BIAS, LW(ln1_b)},
    {"attn.Wqkv.weight", NULL, D_3H, D_H, NEED, LW(qkv_w)},
    {"attn.Wqkv.bias", NULL, D_3H, D_0, IF_QKV_BIAS, LW(q_b)},
    {"attn.Wo.weight", NULL, D_H, D_H, NEED, LW(o_w)},
    {"attn.Wo.bias", NULL, D_H, D_0, IF_O_BIAS, LW(o_b)},
    {"mlp_norm.weight", NULL, D_H, D_0, NEED, LW(ln2_g)},
    {"mlp_norm.bias", NULL, D_H, D_0, IF_NORM_BIAS, LW(ln2_b)},
    {"mlp.Wi.weight", NULL, D_2I, D_H, NEED, LW(i_w)},
    {"mlp.Wi.bias", NULL, D_2I, D_0, IF_UP_BIAS, LW(i_b)},
    {"mlp.Wo.weight", NULL, D_H, D_I, NEED, LW(f_w)},
    {"mlp.Wo.bias", NULL, D_H, D_0, IF_DOWN_BIAS, LW(f_b)},
    {NULL, NULL, D_0, D_0, 0, 0},
};

/* Qwen2 / Qwen3: pre-RMSNorm, separate q/k/v (Qwen2 with biases; Qwen3 with
 * per-head q_norm / k_norm), SwiGLU down(act(gate) * up) */
static const tspec qwen_layer[] = {
    {"input_layernorm.weight", NULL, D_H, D_0, NEED, LW(ln1_g)},
    {"self_attn.q_proj.weight", NULL, D_Q, D_H, NEED, LW(q_w)},
    {"self_attn.q_proj.bias", NULL, D_Q, D_0, IF_QKV_BIAS, LW(q_b)},
    {"self_attn.k_proj.weight", NULL, D_KV, D_H, NEED, LW(k_w)},
    {"self_attn.k_proj.bias", NULL, D_KV, D_0, IF_QKV_BIAS, LW(k_b)},
    {"self_attn.v_proj.weight", NULL, D_KV, D_H, NEED, LW(v_w)},
    {"self_attn.v_proj.bias", NULL, D_KV, D_0, IF_QKV_BIAS, LW(v_b)},
    {"self_attn.o_proj.weight", NULL, D_H, D_Q, NEED, LW(o_w)},
    {"self_attn.q_norm.weight", NULL, D_DH, D_0, IF_QK_NORM, LW(qn_g)},
    {"self_attn.k_norm.weight", NULL, D_DH, D_0, IF_QK_NORM, LW(kn_g)},
    {"post_attention_layernorm.weight", NULL, D_H, D_0, NEED, LW(ln2_g)},
    {"mlp.gate_proj.weight", NULL, D_I, D_H, NEED, LW(i_w)},
    {"mlp.up_proj.weight", NULL, D_I, D_H, NEED, LW(i2_w)},
    {"mlp.down_proj.weight", NULL, D_H, D_I, NEED, LW(f_w)},
    {NULL, NULL, D_0, D_0, 0, 0},
};
static const tspec qwen_model[] = {
    {"embed_tokens.weight", NULL, D_V, D_H, NEED, MW(word_emb)},
    {"norm.weight", NULL, D_H, D_0, NEED, MW(final_g)},
    {NULL, NULL, D_0, D_0, 0, 0},
};

static const tspec bert_model[] = {
    {"embeddings.word_embeddings.weight", NULL, D_V, D_H, NEED, MW(word_emb)},
    {"embeddings.position_embeddings.weight", NULL, D_POS, D_H, NEED, MW(pos_emb)},
    {"embeddings.token_type_embeddings.weight", NULL, D_TYPES, D_H, NEED, MW(type_emb)},
    {"embeddings.LayerNorm.weight", "embeddings.LayerNorm.gamma", D_H, D_0, NEED, MW(emb_ln_g)},
    {"embeddings.LayerNorm.bias", "embeddings.LayerNorm.beta", D_H, D_0, IF_NORM_BIAS, MW(emb_ln_b)},
    {NULL, NULL, D_0, D_0, 0, 0},
};
static const tspec nomic_model[] = {
    {"embeddings.word_embeddings.weight", NULL, D_V, D_H, NEED, MW(word_emb)},
    {"embeddings.token_type_embeddings.weight", NULL, D_TYPES, D_H, NEED, MW(type_emb)},
    {"emb_ln.weight", NULL, D_H, D_0, NEED, MW(emb_ln_g)},
    {"emb_ln.bias", NULL, D_H, D_0, IF_NORM_BIAS, MW(emb_ln_b)},
    {NULL, NULL, D_0, D_0, 0, 0},
};
static const tspec modernbert_model[] = {
    {"embeddings.tok_embeddings.weight", NULL, D_V, D_H, NEED, MW(word_emb)},
    {"embeddings.norm.weight", NULL, D_H, D_0, NEED, MW(emb_ln_g)},
    {"embeddings.norm.bias", NULL, D_H, D_0, IF_NORM_BIAS, MW(emb_ln_b)},
    {"final_norm.weight", NULL, D_H, D_0, NEED, MW(final_g)},
    {"final_norm.bias", NULL, D_H, D_0, IF_NORM_BIAS, MW(final_b)},
    {NULL, NULL, D_0, D_0, 0, 0},
};
/* Heads: BERT's pooler sits under the prefix, the classifiers beside it. */
static const tspec bert_head[] = {
    {"pooler.dense.weight", NULL, D_H, D_H, NEED, MW(head_w)},
    {"pooler.dense.bias", NULL, D_H, D_0, NEED, MW(head_b)},
    {"/classifier.weight", NULL, D_LABELS, D_H, NEED, MW(out_w)},
    {"/classifier.bias", NULL, D_LABELS, D_0, NEED, MW(out_b)},
    {NULL, NULL, D_0, D_0, 0, 0},
};
static const tspec roberta_head[] = {
    {"/classifier.dense.weight", NULL, D_H, D_H, NEED, MW(head_w)},
    {"/classifier.dense.bias", NULL, D_H, D_0, NEED, MW(head_b)},
    {"/classifier.out_proj.weight", NULL, D_LABELS, D_H, NEED, MW(out_w)},
    {"/classifier.out_proj.bias", NULL, D_LABELS, D_0, NEED, MW(out_b)},
    {NULL, NULL, D_0, D_0, 0, 0},
};

/* The name tables of a family: model-level tensors, then per-layer ones
 * under layer_fmt (e.g. "encoder.layer.%d."). */
typedef struct family {
    const char *probe;   /* a tensor every checkpoint of the family has, to find the prefix */
    const tspec *model, *layer[2];
    const char *layer_fmt;
} family;

static family family_of(const model_config *c) {
    switch (c->arch) {
    case ARCH_NOMIC_BERT:
        return (family){"embeddings.word_embeddings.weight", nomic_model, {nomic_layer, NULL}, "encoder.layers.%d."};
    case ARCH_QWEN2:
    case ARCH_QWEN3:
        return (family){"embed_tokens.weight", qwen_model, {qwen_layer, NULL}, "layers.%d."};
    case ARCH_MODERNBERT:
        return (family){"embeddings.tok_embeddings.weight", modernbert_model, {modernbert_layer, NULL}, "layers.%d."};
    case ARCH_JINA_BERT:
        return (family){"embeddings.word_embeddings.weight", bert_model,
                        {bert_attention, c->qk_norm ? jina_code_layer : c->glu ? jina_mlp : bert_mlp}, "encoder.layer.%d."};
    default:
        return (family){"embeddings.word_embeddings.weight", bert_model, {bert_attention, bert_mlp}, "encoder.layer.%d."};
    }
}

/* Whether a tensor loaded `when` may be absent. */
static int optional_when(const model_config *c, int when) {
    const int flag[] = {1, c->qkv_bias, c->o_bias, c->up_bias, c->down_bias, c->norm_bias, c->qk_norm > 0, 0};
    return !flag[when];
}

/* Loads every row of table t into the struct at base (layer l, or -1). */
static int load_table(loader *L, const tspec *t, const char *layer_fmt, int l, void *base) {
    const model_config *c = &L->m->cfg;
    for (; t->name; t++) {
        char name[160], alt[160];
        const int optional = optional_when(c, t->when);
        /* JinaBERT and ModernBERT have no position embeddings, MiniLM-style
         * configs may have no token types */
        if (t->d0 == D_POS && c->pos != POS_ABSOLUTE) continue;
        if (t->d0 == D_TYPES && c->type_vocab_size == 0) continue;
        snprintf(name, sizeof name, "%s", t->name);
        if (l >= 0) {
            int n = snprintf(name, sizeof name, layer_fmt, l);
            snprintf(name + n, sizeof name - (size_t)n, "%s", t->name);
            if (t->alt) {
                n = snprintf(alt, sizeof alt, layer_fmt, l);
                snprintf(alt + n, sizeof alt - (size_t)n, "%s", t->alt);
            }
        } else if (t->alt) {
            snprintf(alt, sizeof alt, "%s", t->alt);
        }
        int rc = tensor_opt(L, name, t->alt ? alt : NULL, dim_of(c, t->d0), dim_of(c, t->d1), optional,
                            (char *)base + t->off);
        if (rc) return rc;
    }
    return 0;
}

/* The checkpoint's prefix: "" or that of a *Model saved inside a *For...
 * class ("bert.", "roberta.", "model."). */
static const char *find_prefix(const st_file *st, const char *probe) {
    static const char *prefixes[] = {"", "bert.", "roberta.", "model.", "encoder."};
    char name[160];
    for (size_t i = 0; i < CE_ARRAY_LEN(prefixes); i++) {
        snprintf(name, sizeof name, "%s%s", prefixes[i], probe);
        if (st_find(st, name)) return prefixes[i];
    }
    return "";
}

/* A fused Q, K, V bias [3H] gives the three views the engine reads. */
static void split_qkv_bias(model *m) {
    const size_t H = (size_t)m->cfg.hidden;
    for (int l = 0; l < m->cfg.layers; l++) {
        bert_layer_w *w = &m->layer[l];
        if (w->qkv_w.p && w->q_b) w->k_b = w->q_b + H, w->v_b = w->q_b + 2 * H;
    }
}

static int load_weights(model *m) {
    const model_config *c = &m->cfg;
    const family f = family_of(c);
    loader L = {.m = m, .prefix = find_prefix(&m->st, f.probe)};
    /* room for converting every vector that is not usable in place (the
     * matrices stay as stored) */
    size_t need = 0;
    m->dtype = ST_F32;
    for (size_t i = 0; i < m->st.n; i++) {
        const st_tensor *t = &m->st.tensors[i];
        if (t->ndim == 1 && (t->dtype != ST_F32 || ((uintptr_t)t->data & 3))) need += t->numel;
        if (t->dtype == ST_F16 || t->dtype == ST_BF16) m->dtype = t->dtype;
    }
    if (need) {
        size_t bytes;
        if (base_mul(need, sizeof(float), &bytes) || !(m->owned = base_malloc(bytes)))
            return base_err(CEMBED_ENOMEM, "model.safetensors: cannot allocate %zu floats", need);
        L.owned_cap = need;
    }
    m->layer = base_calloc((size_t)c->layers, sizeof *m->layer);
    m->zeros_owned = base_calloc((size_t)CE_MAX(c->hidden, c->head_dim), sizeof(float));
    if (!m->layer || !m->zeros_owned) return base_err(CEMBED_ENOMEM, "out of memory");
    m->zeros = m->zeros_owned;
    int rc = load_table(&L, f.model, NULL, -1, m);
    for (int l = 0; l < c->layers && !rc; l++)
        for (int k = 0; k < 2 && f.layer[k] && !rc; k++) rc = load_table(&L, f.layer[k], f.layer_fmt, l, &m->layer[l]);
    if (!rc && c->head) rc = load_table(&L, c->head == HEAD_BERT ? bert_head : roberta_head, NULL, -1, m);
    if (rc) return rc;
    split_qkv_bias(m);
    if (c->double_norm) /* up_gated_layer: the act half is the second */
        for (int l = 0; l < c->layers; l++) {
            bert_layer_w *w = &m->layer[l];
            w->i_w = model_w_at(w->i2_w, (size_t)c->intermediate * (size_t)c->hidden);
        }
    /* a LayerNorm without bias adds zeros */
    if (m->emb_ln_g && !m->emb_ln_b) m->emb_ln_b = m->zeros;
    if (c->final_norm && !m->final_b) m->final_b = m->zeros;
    for (int l = 0; l < c->layers; l++) {
        bert_layer_w *w = &m->layer[l];
        if (w->ln1_g && !w->ln1_b) w->ln1_b = m->zeros;
        if (!w->ln2_b) w->ln2_b = m->zeros;
        if (!c->qk_norm) w->qn_g = w->kn_g = w->qn_b = w->kn_b = NULL;   /* a norm the config does not name */
        if (w->qn_g && !w->qn_b) w->qn_b = m->zeros;
        if (w->kn_g && !w->kn_b) w->kn_b = m->zeros;
        if (w->ln1x_g && !w->ln1x_b) w->ln1x_b = m->zeros;
    }
    return 0;
}

static int load_st_settings(const char *dir, model *m) {
    char *data;
    size_t len;
    int rc;
    m->pooling = POOL_MEAN;
    m->normalize = 0;
    char *pool_path = NULL;
    if ((rc = read_optional(dir, "modules.json", &data, &len))) return rc;
    int have_modules = data != NULL;
    if (data) {
        rc = model_modules_parse(data, len, &m->normalize, &pool_path);
        base_free(data);
        if (rc) return rc;
    }
    /* the pooling folder must lie inside the model's: no absolute path, no ".." */
    if (pool_path && (pool_path[0] == '/' || !strcmp(pool_path, "..") || !strncmp(pool_path, "../", 3) ||
                      strstr(pool_path, "/../") || (strlen(pool_path) >= 3 && !strcmp(pool_path + strlen(pool_path) - 3, "/..")))) {
        rc = base_err(CEMBED_EFORMAT, "modules.json: the Pooling module's path \"%.200s\" leaves the model folder", pool_path);
        base_free(pool_path);
        return rc;
    }
    char pool_cfg[512];
    snprintf(pool_cfg, sizeof pool_cfg, "%s/config.json", pool_path ? pool_path : "1_Pooling");
    base_free(pool_path);
    if ((rc = read_optional(dir, pool_cfg, &data, &len))) return rc;
    if (data) {
        rc = model_pooling_parse(data, len, &m->pooling);
        base_free(data);
        if (rc) return rc;
    } else if (!have_modules) {
        /* a bare HF BertModel: sentence-transformers' default is mean pooling */
        m->pooling = POOL_MEAN;
    }
    if ((rc = read_optional(dir, "sentence_bert_config.json", &data, &len))) return rc;
    if (data) {
        rc = model_st_config_parse(data, len, &m->st_max_seq_length);
        base_free(data);
        if (rc) return rc;
    }
    if ((rc = read_optional(dir, "config_sentence_transformers.json", &data, &len))) return rc;
    if (data) {
        rc = model_prompts_parse(data, len, &m->prompts);
        base_free(data);
    }
    return rc;
}

/* The embedding tables that lie in the map, [3] (absent ones p NULL), and
 * their elements. */
static void emb_tables(const model *m, model_w p[3], size_t n[3]) {
    const model_config *c = &m->cfg;
    const uintptr_t lo = (uintptr_t)m->map, hi = lo + m->map_len;
    p[0] = m->word_emb, n[0] = (size_t)c->vocab_size * (size_t)c->hidden;
    p[1] = m->pos_emb, n[1] = (size_t)c->max_position * (size_t)c->hidden;
    p[2] = m->type_emb, n[2] = (size_t)c->type_vocab_size * (size_t)c->hidden;
    for (int i = 0; i < 3; i++)
        if ((uintptr_t)p[i].p < lo || (uintptr_t)p[i].p >= hi) p[i].p = NULL, n[i] = 0;
}

int model_load(const char *dir, model *m) {
    memset(m, 0, sizeof *m);
    char *data = NULL, *path = NULL;
    size_t len;
    int rc = read_optional(dir, "config.json", &data, &len);
    if (rc) return base_err_prefix(rc, "%s", dir);
    if (!data) return base_err(CEMBED_EIO, "%s: no config.json (is this a model directory?)", dir);
    rc = model_config_parse(data, len, &m->cfg);
    base_free(data);
    if (rc) return base_err_prefix(rc, "%s", dir);

    if (!(path = path_join(dir, "model.safetensors"))) return base_err(CEMBED_ENOMEM, "out of memory");
    rc = file_map(path, &m->map, &m->map_len);
    if (rc) goto fail;
    m->file_bytes = m->map_len;
    if ((rc = st_parse(m->map, m->map_len, &m->st))) {
        base_err_prefix(rc, "%s", path);
        goto fail;
    }
    if ((rc = load_weights(m))) {
        base_err_prefix(rc, "%s", dir);
        goto fail;
    }
    /* the embedding rows are read one by one: no read-around, so that a
     * row's page comes in alone and the table holds only what was used */
    model_w emb[3];
    size_t emb_n[3];
    emb_tables(m, emb, emb_n);
    for (int i = 0; i < 3; i++)
        if (emb[i].p) {
            const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)emb[i].p & ~(page - 1);
            madvise((void *)a, (uintptr_t)emb[i].p + emb_n[i] * model_w_elem(emb[i]) - a, MADV_RANDOM);
        }
    if ((rc = load_st_settings(dir, m))) {
        base_err_prefix(rc, "%s", dir);
        goto fail;
    }
    base_free(path);
    return 0;
fail:
    base_free(path);
    model_free(m);
    return rc;
}

size_t model_embedding_bytes(const model *m) {
    model_w p[3];
    size_t n[3], bytes = 0;
    emb_tables(m, p, n);
    for (int i = 0; i < 3; i++) bytes += n[i] * model_w_elem(p[i]);
    return bytes;
}

size_t model_release_embeddings(model *m) {
    model_w p[3];
    size_t n[3], released = 0;
    emb_tables(m, p, n);
    for (int i = 0; i < 3; i++) released += model_w_release(p[i], 0, n[i]);
    return released;
}

size_t model_release_linear(model *m) {
    const size_t H = (size_t)m->cfg.hidden, I = (size_t)m->cfg.intermediate;
    const size_t up = (m->cfg.glu && !m->layer[0].i2_w.p ? 2 : 1) * I;
    const size_t Q = (size_t)m->cfg.heads * (size_t)m->cfg.head_dim, KV = (size_t)m->cfg.kv_heads * (size_t)m->cfg.head_dim;
    size_t released = 0;
    for (int l = 0; l < m->cfg.layers; l++) {
        const bert_layer_w *w = &m->layer[l];
        const struct { model_w w; size_t n; } t[] = {
            {w->q_w, Q * H}, {w->k_w, KV * H}, {w->v_w, KV * H}, {w->qkv_w, 3 * H * H}, {w->o_w, H * Q},
            {w->i_w, up * H}, {w->i2_w, I * H}, {w->f_w, H * I}};
        for (size_t i = 0; i < CE_ARRAY_LEN(t); i++) released += model_w_release(t[i].w, 0, t[i].n);
    }
    return released;
}

void model_free(model *m) {
    if (!m) return;
    st_free(&m->st);
    model_prompts_free(&m->prompts);
    file_unmap(m->map, m->map_len);
    base_free(m->owned);
    base_free(m->zeros_owned);
    base_free(m->layer);
    memset(m, 0, sizeof *m);
}
