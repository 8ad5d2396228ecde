/* Writes a tiny random BERT model directory (config.json, F32
 * model.safetensors, vocab.txt, sentence-transformers files) for tests that
 * need a whole model without the real one, and rewrites a model's weights
 * as F16 or BF16 (tiny_model_rewrite). */
#ifndef CEMBED_TINY_MODEL_H
#define CEMBED_TINY_MODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/model.h"

typedef struct tiny_spec {
    int vocab, hidden, layers, heads, inter, max_pos;
    int pooling_cls, normalize;
} tiny_spec;

static float tiny_rand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return ((float)((*s >> 8) & 0xffff) / 65535.0f - 0.5f) * 0.4f;
}

/* Returns 0 or -1. */
static int tiny_model_write(const char *dir, const tiny_spec *sp, unsigned seed) {
    mkdir(dir, 0755);
    char path[512];
    const int H = sp->hidden, I = sp->inter, V = sp->vocab;
    size_t cap = 5 + (size_t)sp->layers * 16, n = 0;
    const char **names = calloc(cap, sizeof *names);
    char **owned = calloc(cap, sizeof *owned);
    int *ndims = calloc(cap, sizeof *ndims);
    int64_t(*dims)[ST_MAX_DIMS] = calloc(cap, sizeof *dims);
    float **data = calloc(cap, sizeof *data);
#define ADD(nm, d0, d1, is_gamma)                                                       \
    do {                                                                                \
        owned[n] = strdup(nm);                                                          \
        names[n] = owned[n];                                                            \
        ndims[n] = (d1) ? 2 : 1;                                                        \
        dims[n][0] = (d0);                                                              \
        dims[n][1] = (d1);                                                              \
        size_t cnt = (size_t)(d0) * ((d1) ? (size_t)(d1) : 1);                          \
        data[n] = malloc(cnt * sizeof(float));                                          \
        for (size_t q = 0; q < cnt; q++) data[n][q] = (is_gamma) ? 1.0f + tiny_rand(&seed) : tiny_rand(&seed); \
        n++;                                                                            \
    } while (0)
    ADD("embeddings.word_embeddings.weight", V, H, 0);
    ADD("embeddings.position_embeddings.weight", sp->max_pos, H, 0);
    ADD("embeddings.token_type_embeddings.weight", 2, H, 0);
    ADD("embeddings.LayerNorm.weight", H, 0, 1);
    ADD("embeddings.LayerNorm.bias", H, 0, 0);
    for (int l = 0; l < sp->layers; l++) {
        char nm[128];
#define L_ADD(suffix, d0, d1, g) \
    snprintf(nm, sizeof nm, "encoder.layer.%d.%s", l, suffix); \
    ADD(nm, d0, d1, g)
        L_ADD("attention.self.query.weight", H, H, 0);
        L_ADD("attention.self.query.bias", H, 0, 0);
        L_ADD("attention.self.key.weight", H, H, 0);
        L_ADD("attention.self.key.bias", H, 0, 0);
        L_ADD("attention.self.value.weight", H, H, 0);
        L_ADD("attention.self.value.bias", H, 0, 0);
        L_ADD("attention.output.dense.weight", H, H, 0);
        L_ADD("attention.output.dense.bias", H, 0, 0);
        L_ADD("attention.output.LayerNorm.weight", H, 0, 1);
        L_ADD("attention.output.LayerNorm.bias", H, 0, 0);
        L_ADD("intermediate.dense.weight", I, H, 0);
        L_ADD("intermediate.dense.bias", I, 0, 0);
        L_ADD("output.dense.weight", H, I, 0);
        L_ADD("output.dense.bias", H, 0, 0);
        L_ADD("output.LayerNorm.weight", H, 0, 1);
        L_ADD("output.LayerNorm.bias", H, 0, 0);
#undef L_ADD
    }
#undef ADD
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = st_write_f32(path, n, names, ndims, (const int64_t(*)[ST_MAX_DIMS])dims, (const float *const *)data);
    for (size_t i = 0; i < n; i++) {
        free(owned[i]);
        free(data[i]);
    }
    free(names);
    free(owned);
    free(ndims);
    free(dims);
    free(data);
    if (rc) return -1;
    FILE *f;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!(f = fopen(path, "w"))) return -1;
    fprintf(f,
            "{\"model_type\": \"bert\", \"vocab_size\": %d, \"hidden_size\": %d, \"num_hidden_layers\": %d,"
            " \"num_attention_heads\": %d, \"intermediate_size\": %d, \"max_position_embeddings\": %d,"
            " \"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12, \"hidden_act\": \"gelu\"}\n",
            V, H, sp->layers, sp->heads, I, sp->max_pos);
    fclose(f);
    /* vocab: specials, letters, a few words and ## pieces, padded to V */
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    if (!(f = fopen(path, "w"))) return -1;
    static const char *words[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat",
                                  "##s", "##ing", "un", "##aff", "##able", ".", ",", "(", ")", "a", "b", "c"};
    int w = 0;
    for (; w < (int)(sizeof words / sizeof *words) && w < V; w++) fprintf(f, "%s\n", words[w]);
    for (; w < V; w++) fprintf(f, "tok%d\n", w);
    fclose(f);
    snprintf(path, sizeof path, "%s/modules.json", dir);
    if (!(f = fopen(path, "w"))) return -1;
    fprintf(f, "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
               "{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"}%s]\n",
            sp->normalize ? ",{\"idx\":2,\"name\":\"2\",\"path\":\"2_Normalize\",\"type\":\"sentence_transformers.models.Normalize\"}" : "");
    fclose(f);
    snprintf(path, sizeof path, "%s/1_Pooling", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/1_Pooling/config.json", dir);
    if (!(f = fopen(path, "w"))) return -1;
    fprintf(f, "{\"pooling_mode_cls_token\": %s, \"pooling_mode_mean_tokens\": %s}\n",
            sp->pooling_cls ? "true" : "false", sp->pooling_cls ? "false" : "true");
    fclose(f);
    return 0;
}

static inline uint16_t tiny_f32_to_bf16(float x) {   /* round to nearest even (no NaNs here) */
    uint32_t b;
    memcpy(&b, &x, 4);
    return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1)) >> 16);
}

/* x rounded to the half type (F16 or BF16) and back. */
static inline float tiny_half_round(float x, st_dtype half) {
    if (half == ST_F16) return (float)(_Float16)x;
    const uint32_t b = (uint32_t)tiny_f32_to_bf16(x) << 16;
    memcpy(&x, &b, 4);
    return x;
}

/* Rewrites src's model.safetensors into dst (the other files copied):
 * every tensor in dtype `out` (F32, F16 or BF16) with values rounded to
 * `half` first. Returns 0 or -1. */
static inline int tiny_model_rewrite(const char *src, const char *dst, st_dtype half, st_dtype out) {
    char cmd[2200], path[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", dst, src, dst);
    if (system(cmd) != 0) return -1;
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    const void *map;
    size_t len;
    st_file f;
    if (file_map(path, &map, &len)) return -1;
    if (st_parse(map, len, &f)) {
        file_unmap(map, len);
        return -1;
    }
    buf h = {0}, data = {0};
    const size_t es = out == ST_F32 ? 4 : 2;
    buf_append(&h, "{", 1);
    float *row = NULL;
    for (size_t i = 0; i < f.n; i++) {
        const st_tensor *t = &f.tensors[i];
        buf_printf(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", t->name, st_dtype_name(out));
        for (int d = 0; d < t->ndim; d++) buf_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        buf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", data.len, data.len + t->numel * es);
        row = realloc(row, t->numel * sizeof(float));
        model_w_read((model_w){t->data, t->dtype}, 0, t->numel, row, 0);
        for (size_t k = 0; k < t->numel; k++) {
            const float x = tiny_half_round(row[k], half);
            uint16_t v;
            if (out == ST_F32) {
                buf_append(&data, &x, 4);
                continue;
            }
            if (out == ST_F16) {
                const _Float16 hx = (_Float16)x;
                memcpy(&v, &hx, 2);
            } else {
                v = tiny_f32_to_bf16(x);
            }
            buf_append(&data, &v, 2);
        }
    }
    free(row);
    buf_append(&h, "}", 1);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    buf all = {0};
    buf_append(&all, len8, 8);
    buf_append(&all, h.ptr, h.len);
    buf_append(&all, data.ptr, data.len);
    snprintf(path, sizeof path, "%s/model.safetensors", dst);
    const int rc = file_write_all(path, all.ptr, all.len) ? -1 : 0;
    buf_free(&h), buf_free(&data), buf_free(&all);
    st_free(&f);
    file_unmap(map, len);
    return rc;
}

#endif
