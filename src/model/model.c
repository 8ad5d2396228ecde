/* Loading a BERT model directory: config, weights by mmap, the
 * sentence-transformers settings. See model.h for the contract. */
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
    const char *prefix;   /* "" or "bert." */
    size_t owned_used, owned_cap;
} loader;

/* Finds NAME (with the prefix), checks its shape and returns F32 data. */
static int tensor(loader *L, const char *name, const char *alt, int64_t d0, int64_t d1,
                  const float **out) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", L->prefix, name);
    const st_tensor *t = st_find(&L->m->st, full);
    if (!t && alt) {
        snprintf(full, sizeof full, "%s%s", L->prefix, alt);
        t = st_find(&L->m->st, full);
    }
    if (!t)
        return base_err(CEMBED_EMODEL, "model.safetensors: missing tensor \"%s%s\"", L->prefix, name);
    int want_ndim = d1 ? 2 : 1;
    if (t->ndim != want_ndim || t->shape[0] != d0 || (d1 && t->shape[1] != d1))
        return base_err(CEMBED_EMODEL,
                        "model.safetensors: tensor \"%s\" has shape [%lld%s%lld], config.json "
                        "implies [%lld%s%lld]",
                        full, (long long)t->shape[0], t->ndim > 1 ? ", " : "",
                        t->ndim > 1 ? (long long)t->shape[1] : 0LL, (long long)d0, d1 ? ", " : "",
                        (long long)d1);
    if (t->dtype == ST_F32 && ((uintptr_t)t->data & 3) == 0) {
        *out = (const float *)t->data;
        return 0;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return base_err(CEMBED_EMODEL, "model.safetensors: tensor \"%s\" is %s (F32, F16 or BF16 needed)",
                        full, st_dtype_name(t->dtype));
    CE_ASSERT(L->owned_used + t->numel <= L->owned_cap);
    float *dst = L->m->owned + L->owned_used;
    L->owned_used += t->numel;
    const uint8_t *s = t->data;
    for (size_t i = 0; i < t->numel; i++) {
        if (t->dtype == ST_F32) {
            memcpy(&dst[i], s + 4 * i, 4);
        } else {
            uint16_t h = (uint16_t)(s[2 * i] | (s[2 * i + 1] << 8));
            if (t->dtype == ST_F16) {
                dst[i] = model_f16_to_f32(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&dst[i], &bits, 4);
            }
        }
    }
    *out = dst;
    return 0;
}

static int load_weights(model *m) {
    const model_config *c = &m->cfg;
    const int64_t H = c->hidden, I = c->intermediate;
    loader L = {.m = m, .prefix = ""};
    if (!st_find(&m->st, "embeddings.word_embeddings.weight") &&
        st_find(&m->st, "bert.embeddings.word_embeddings.weight"))
        L.prefix = "bert.";
    /* room for converting every tensor that is not usable in place */
    size_t need = 0;
    m->dtype = ST_F32;
    for (size_t i = 0; i < m->st.n; i++) {
        const st_tensor *t = &m->st.tensors[i];
        if (t->dtype != ST_F32 || ((uintptr_t)t->data & 3)) need += t->numel;
        if (t->dtype == ST_F16 || t->dtype == ST_BF16) m->dtype = t->dtype;
    }
    if (need) {
        size_t bytes;
        if (base_mul(need, sizeof(float), &bytes) || !(m->owned = base_malloc(bytes)))
            return base_err(CEMBED_ENOMEM, "model.safetensors: cannot allocate %zu floats", need);
        L.owned_cap = need;
    }
    m->layer = base_calloc((size_t)c->layers, sizeof *m->layer);
    if (!m->layer) return base_err(CEMBED_ENOMEM, "out of memory");
    int rc;
    if ((rc = tensor(&L, "embeddings.word_embeddings.weight", NULL, c->vocab_size, H, &m->word_emb)) ||
        (rc = tensor(&L, "embeddings.position_embeddings.weight", NULL, c->max_position, H,
                     &m->pos_emb)) ||
        (rc = tensor(&L, "embeddings.LayerNorm.weight", "embeddings.LayerNorm.gamma", H, 0,
                     &m->emb_ln_g)) ||
        (rc = tensor(&L, "embeddings.LayerNorm.bias", "embeddings.LayerNorm.beta", H, 0,
                     &m->emb_ln_b)))
        return rc;
    if (c->type_vocab_size > 0 &&
        (rc = tensor(&L, "embeddings.token_type_embeddings.weight", NULL, c->type_vocab_size, H,
                     &m->type_emb)))
        return rc;
    for (int l = 0; l < c->layers; l++) {
        bert_layer_w *w = &m->layer[l];
        char a[2][128];
        const char *p = "encoder.layer";
        struct {
            const char *name, *alt;
            int64_t d0, d1;
            const float **dst;
        } spec[] = {
            {"attention.self.query.weight", NULL, H, H, &w->q_w},
            {"attention.self.query.bias", NULL, H, 0, &w->q_b},
            {"attention.self.key.weight", NULL, H, H, &w->k_w},
            {"attention.self.key.bias", NULL, H, 0, &w->k_b},
            {"attention.self.value.weight", NULL, H, H, &w->v_w},
            {"attention.self.value.bias", NULL, H, 0, &w->v_b},
            {"attention.output.dense.weight", NULL, H, H, &w->o_w},
            {"attention.output.dense.bias", NULL, H, 0, &w->o_b},
            {"attention.output.LayerNorm.weight", "attention.output.LayerNorm.gamma", H, 0, &w->ln1_g},
            {"attention.output.LayerNorm.bias", "attention.output.LayerNorm.beta", H, 0, &w->ln1_b},
            {"intermediate.dense.weight", NULL, I, H, &w->i_w},
            {"intermediate.dense.bias", NULL, I, 0, &w->i_b},
            {"output.dense.weight", NULL, H, I, &w->f_w},
            {"output.dense.bias", NULL, H, 0, &w->f_b},
            {"output.LayerNorm.weight", "output.LayerNorm.gamma", H, 0, &w->ln2_g},
            {"output.LayerNorm.bias", "output.LayerNorm.beta", H, 0, &w->ln2_b},
        };
        for (size_t s = 0; s < CE_ARRAY_LEN(spec); s++) {
            snprintf(a[0], sizeof a[0], "%s.%d.%s", p, l, spec[s].name);
            if (spec[s].alt) snprintf(a[1], sizeof a[1], "%s.%d.%s", p, l, spec[s].alt);
            if ((rc = tensor(&L, a[0], spec[s].alt ? a[1] : NULL, spec[s].d0, spec[s].d1,
                             spec[s].dst)))
                return rc;
        }
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

size_t model_release_linear(model *m) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo = (uintptr_t)m->map, hi = lo + m->map_len;
    const size_t H = (size_t)m->cfg.hidden, I = (size_t)m->cfg.intermediate;
    size_t released = 0;
    for (int l = 0; l < m->cfg.layers; l++) {
        const bert_layer_w *w = &m->layer[l];
        const struct { const float *p; size_t n; } t[] = {
            {w->q_w, H * H}, {w->k_w, H * H}, {w->v_w, H * H}, {w->o_w, H * H}, {w->i_w, I * H}, {w->f_w, H * I}};
        for (size_t i = 0; i < CE_ARRAY_LEN(t); i++) {
            uintptr_t a = (uintptr_t)t[i].p, b = a + t[i].n * sizeof(float);
            if (a < lo || b > hi) continue;   /* converted at load: owned memory */
            a = (a + page - 1) & ~(page - 1), b &= ~(page - 1);
            if (b > a && madvise((void *)a, b - a, MADV_DONTNEED) == 0) released += b - a;
        }
    }
    return released;
}

void model_free(model *m) {
    if (!m) return;
    st_free(&m->st);
    model_prompts_free(&m->prompts);
    file_unmap(m->map, m->map_len);
    base_free(m->owned);
    base_free(m->layer);
    memset(m, 0, sizeof *m);
}
