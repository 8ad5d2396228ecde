/* Unit tests of src/model: safetensors validation, config parsing, model
 * loading (with every allocation failed in turn). */
#include <stdlib.h>
#include <unistd.h>

#include "model/model.h"
#include "test.h"
#include "tiny_model.h"

/* A safetensors image from a header string and data bytes. */
static uint8_t *st_image(const char *header, size_t data_len, size_t *len) {
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    uint8_t *p = calloc(1, *len);
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(p + 8, header, h);
    return p;
}

static int parse_header(const char *header, size_t data_len) {
    size_t len;
    uint8_t *img = st_image(header, data_len, &len);
    st_file f;
    int rc = st_parse(img, len, &f);
    if (rc == 0) st_free(&f);
    free(img);
    return rc;
}

TEST(safetensors_valid) {
    size_t len;
    uint8_t *img = st_image("{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                            "\"data_offsets\":[0,24]},\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]}}",
                            32, &len);
    st_file f;
    CHECK_INT(st_parse(img, len, &f), 0);
    CHECK_INT(f.n, 2);
    const st_tensor *a = st_find(&f, "a");
    CHECK(a != NULL);
    if (a) {
        CHECK_INT(a->ndim, 2);
        CHECK_INT(a->shape[1], 3);
        CHECK_INT(a->nbytes, 24);
    }
    CHECK(st_find(&f, "c") == NULL);
    st_free(&f);
    free(img);
}

TEST(safetensors_rejects_broken_headers) {
    struct {
        const char *header;
        size_t data;
        const char *msg;
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "outside the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "bytes for shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "outside"},
        {"{\"a\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8, "missing shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "overflow"},
        {"{\"a\":", 8, "not valid JSON"},
        {"[1,2,3]", 0, "not a JSON object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[4,8]}}", 8, "JSON"},
        {"{\"a\":[1]}", 8, "not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = parse_header(cases[i].header, cases[i].data);
        if (rc != CEMBED_EFORMAT) FAIL_AT("case %zu: rc %d", i, rc);
        CHECK_CONTAINS(cembed_last_error(), cases[i].msg);
    }
    /* header length past the end, and a file too short for one */
    uint8_t small[12] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    st_file f;
    CHECK_INT(st_parse(small, sizeof small, &f), CEMBED_EFORMAT);
    CHECK_CONTAINS(cembed_last_error(), "header length");
    CHECK_INT(st_parse(small, 5, &f), CEMBED_EFORMAT);
}

TEST(config_parse_and_errors) {
    model_config c;
    const char *ok = "{\"model_type\":\"bert\",\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,"
                     "\"num_attention_heads\":4,\"intermediate_size\":128,\"layer_norm_eps\":1e-5}";
    CHECK_INT(model_config_parse(ok, strlen(ok), &c), 0);
    CHECK_INT(c.hidden, 64);
    CHECK_INT(c.max_position, 512);
    CHECK_NEAR(c.layer_norm_eps, 1e-5, 1e-12);
    const char *bad[][2] = {
        {"{\"model_type\":\"gpt2\"}", "not supported"},
        {"{\"vocab_size\":100}", "missing \"hidden_size\""},
        {"{\"vocab_size\":100,\"hidden_size\":\"64\"}", "\"hidden_size\" must be an integer"},
        {"{\"vocab_size\":100,\"hidden_size\":65,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8}", "not a multiple"},
        {"{\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"hidden_act\":\"relu\"}", "hidden_act"},
        {"not json", "not valid JSON"},
        {"{\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"intermediate_size\":8,\"layer_norm_eps\":-1}", "layer_norm_eps"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(model_config_parse(bad[i][0], strlen(bad[i][0]), &c) != 0);
        CHECK_CONTAINS(cembed_last_error(), bad[i][1]);
    }
}

TEST(pooling_and_modules_parse) {
    pool_mode p;
    const char *cls = "{\"pooling_mode_cls_token\": true, \"pooling_mode_mean_tokens\": false}";
    CHECK_INT(model_pooling_parse(cls, strlen(cls), &p), 0);
    CHECK_INT(p, POOL_CLS);
    const char *maxp = "{\"pooling_mode_max_tokens\": true}";
    CHECK_INT(model_pooling_parse(maxp, strlen(maxp), &p), CEMBED_EMODEL);
    CHECK_CONTAINS(cembed_last_error(), "pooling_mode_max_tokens");
    int norm;
    char *path;
    const char *mods = "[{\"type\":\"sentence_transformers.models.Pooling\",\"path\":\"1_P\"},"
                       "{\"type\":\"sentence_transformers.models.Normalize\",\"path\":\"2\"}]";
    CHECK_INT(model_modules_parse(mods, strlen(mods), &norm, &path), 0);
    CHECK_INT(norm, 1);
    CHECK_STR(path, "1_P");
    base_free(path);
    int msl;
    CHECK_INT(model_st_config_parse("{\"max_seq_length\": 128}", 23, &msl), 0);
    CHECK_INT(msl, 128);
    CHECK_INT(model_st_config_parse("{\"max_seq_length\": 1}", 21, &msl), CEMBED_EFORMAT);
}

static char tiny_dir[128];

static const char *tiny(void) {
    if (!tiny_dir[0]) {
        snprintf(tiny_dir, sizeof tiny_dir, "%s/tiny", test_tmpdir());
        tiny_spec sp = {.vocab = 64, .hidden = 32, .layers = 2, .heads = 2, .inter = 48, .max_pos = 40,
                        .normalize = 1};
        if (tiny_model_write(tiny_dir, &sp, 7) != 0) FAIL_AT("cannot write the tiny model");
    }
    return tiny_dir;
}

TEST(model_load_tiny) {
    model m;
    CHECK_INT(model_load(tiny(), &m), 0);
    CHECK_INT(m.cfg.layers, 2);
    CHECK_INT(m.normalize, 1);
    CHECK_INT(m.pooling, POOL_MEAN);
    CHECK(m.layer[1].ln2_b != NULL);
    model_free(&m);
}

TEST(model_load_survives_every_allocation_failure) {
    const char *dir = tiny();
    model m;
    base_alloc_fail_after(0);
    CHECK_INT(model_load(dir, &m), 0);
    model_free(&m);
    size_t calls = base_alloc_fail_after(0);
    CHECK(calls > 5);
    for (size_t n = 1; n <= calls; n++) {
        base_alloc_fail_after(n);
        int rc = model_load(dir, &m);
        base_alloc_fail_after(0);
        if (rc == 0) model_free(&m);
        else if (rc != CEMBED_ENOMEM && rc != CEMBED_EFORMAT && rc != CEMBED_EIO)
            FAIL_AT("allocation %zu: unexpected rc %d (%s)", n, rc, cembed_last_error());
    }
}

TEST(model_load_reports_missing_and_misshapen_tensors) {
    char dir[160];
    snprintf(dir, sizeof dir, "%s-bad", tiny());
    tiny_spec sp = {.vocab = 64, .hidden = 32, .layers = 2, .heads = 2, .inter = 48, .max_pos = 40};
    CHECK_INT(tiny_model_write(dir, &sp, 1), 0);
    /* config says 3 layers: layer 2 is missing */
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"vocab_size\": 64, \"hidden_size\": 32, \"num_hidden_layers\": 3, \"num_attention_heads\": 2,"
               " \"intermediate_size\": 48, \"max_position_embeddings\": 40}");
    fclose(f);
    model m;
    CHECK_INT(model_load(dir, &m), CEMBED_EMODEL);
    CHECK_CONTAINS(cembed_last_error(), "missing tensor \"encoder.layer.2.");
    /* config says intermediate 50: shapes disagree */
    f = fopen(path, "w");
    fprintf(f, "{\"vocab_size\": 64, \"hidden_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 2,"
               " \"intermediate_size\": 50, \"max_position_embeddings\": 40}");
    fclose(f);
    CHECK_INT(model_load(dir, &m), CEMBED_EMODEL);
    CHECK_CONTAINS(cembed_last_error(), "has shape [48, 32]");
}

TEST(model_load_converts_f16_and_bf16) {
    model m32, mh;
    CHECK_INT(model_load(tiny(), &m32), 0);
    const char *dtypes[] = {"F16", "BF16"};
    const st_dtype halves[] = {ST_F16, ST_BF16};
    for (int d = 0; d < 2; d++) {
        char dir[192];
        snprintf(dir, sizeof dir, "%s-%s", tiny(), dtypes[d]);
        CHECK_INT(tiny_model_rewrite(tiny(), dir, halves[d], halves[d]), 0);
        CHECK_INT(model_load(dir, &mh), 0);
        CHECK_STR(st_dtype_name(mh.dtype), dtypes[d]);
        size_t n = (size_t)m32.cfg.intermediate * m32.cfg.hidden, bad = 0;
        CHECK_INT(mh.layer[1].i_w.dtype, d == 0 ? ST_F16 : ST_BF16);   /* kept as stored */
        float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
        model_w_read(m32.layer[1].i_w, 0, n, a, 0);
        model_w_read(mh.layer[1].i_w, 0, n, b, 0);
        for (size_t i = 0; i < n; i++) bad += b[i] != tiny_half_round(a[i], halves[d]);
        free(a), free(b);
        CHECK_INT(bad, 0);
        CHECK(mh.emb_ln_b[3] != 0);
        model_free(&mh);
    }
    model_free(&m32);
}

/* Each family's keys map onto the block description; what cembed cannot
 * run is refused by name (also by `pull`, before the weights). */
TEST(config_families_and_refusals) {
    model_config c;
    const char *nomic = "{\"model_type\":\"nomic_bert\",\"vocab_size\":100,\"n_embd\":64,\"n_layer\":2,\"n_head\":4,"
                        "\"n_inner\":96,\"n_positions\":2048,\"rotary_emb_fraction\":0.5,\"rotary_emb_base\":1000,"
                        "\"activation_function\":\"swiglu\",\"qkv_proj_bias\":false,\"mlp_fc1_bias\":false,"
                        "\"mlp_fc2_bias\":false,\"layer_norm_epsilon\":1e-12}";
    CHECK_INT(model_config_parse(nomic, strlen(nomic), &c), 0);
    CHECK_INT(c.arch, ARCH_NOMIC_BERT);
    CHECK_INT(c.pos, POS_ROTARY);
    CHECK_INT(c.rope_dims, 8);
    CHECK_INT(c.glu, 1);
    CHECK_INT(c.act, ACT_SILU);
    CHECK_INT(c.qkv_bias + c.up_bias + c.down_bias, 0);
    const char *mb = "{\"model_type\":\"modernbert\",\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":3,"
                     "\"num_attention_heads\":2,\"intermediate_size\":96,\"local_attention\":16,"
                     "\"global_attn_every_n_layers\":3,\"architectures\":[\"ModernBertModel\"]}";
    CHECK_INT(model_config_parse(mb, strlen(mb), &c), 0);
    CHECK(c.prenorm && c.final_norm && c.glu && c.window == 16 && c.global_every == 3 && !c.norm_bias);
    CHECK_NEAR(c.rope_base, 160000, 1e-3);
    CHECK_NEAR(c.rope_base_local, 10000, 1e-3);
    const char *jina = "{\"model_type\":\"bert\",\"vocab_size\":100,\"hidden_size\":96,\"num_hidden_layers\":2,"
                       "\"num_attention_heads\":6,\"intermediate_size\":128,\"position_embedding_type\":\"alibi\","
                       "\"feed_forward_type\":\"geglu\"}";
    CHECK_INT(model_config_parse(jina, strlen(jina), &c), 0);
    CHECK(c.arch == ARCH_JINA_BERT && c.pos == POS_ALIBI && c.glu && !c.qk_norm);
    const char *xlmr = "{\"model_type\":\"xlm-roberta\",\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,"
                       "\"num_attention_heads\":4,\"intermediate_size\":128,\"max_position_embeddings\":514,"
                       "\"pad_token_id\":1,\"architectures\":[\"XLMRobertaForSequenceClassification\"],"
                       "\"id2label\":{\"0\":\"LABEL_0\"}}";
    CHECK_INT(model_config_parse(xlmr, strlen(xlmr), &c), 0);
    CHECK(c.arch == ARCH_XLM_ROBERTA && c.pos_offset == 2 && c.head == HEAD_ROBERTA && c.num_labels == 1);
    const char *bad[][2] = {
        {"{\"model_type\":\"nomic_bert\",\"vocab_size\":100,\"n_embd\":64,\"n_layer\":2,\"n_head\":4,"
         "\"rotary_emb_fraction\":1.0,\"rotary_emb_interleaved\":true}", "rotary_emb_interleaved"},
        {"{\"model_type\":\"nomic_bert\",\"vocab_size\":100,\"n_embd\":64,\"n_layer\":2,\"n_head\":4,"
         "\"rotary_emb_fraction\":1.0,\"rotary_scaling_factor\":2.0}", "rotary_scaling_factor"},
        {"{\"model_type\":\"nomic_bert\",\"vocab_size\":100,\"n_embd\":64,\"n_layer\":2,\"n_head\":4,"
         "\"rotary_emb_fraction\":1.0,\"prenorm\":true}", "pre-norm"},
        {"{\"model_type\":\"nomic_bert\",\"vocab_size\":100,\"n_embd\":64,\"n_layer\":2,\"n_head\":4,"
         "\"rotary_emb_fraction\":1.0,\"activation_function\":\"relu\"}", "activation_function"},
        {"{\"model_type\":\"bert\",\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"intermediate_size\":8,\"position_embedding_type\":\"alibi\","
         "\"feed_forward_type\":\"reglu\"}", "feed_forward_type"},
        {"{\"model_type\":\"bert\",\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"intermediate_size\":8,\"position_embedding_type\":\"relative_key\"}",
         "position_embedding_type"},
        {"{\"model_type\":\"modernbert\",\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"intermediate_size\":8,\"architectures\":[\"ModernBertForSequenceClassification\"]}",
         "ModernBertForSequenceClassification"},
        {"{\"model_type\":\"gpt2\"}", "not supported"},
        {"{\"model_type\":\"qwen3\",\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"intermediate_size\":8,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}}",
         "rope_scaling"},
        {"{\"model_type\":\"qwen2\",\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"intermediate_size\":8,\"use_sliding_window\":true}", "use_sliding_window"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(model_config_parse(bad[i][0], strlen(bad[i][0]), &c) == CEMBED_EMODEL);
        CHECK_CONTAINS(cembed_last_error(), bad[i][1]);
    }
    CHECK(model_type_known("modernbert") && !model_type_known("gpt2"));
    const char *q3 = "{\"model_type\":\"qwen3\",\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,"
                     "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":32,\"intermediate_size\":96,"
                     "\"rope_theta\":1000000,\"rms_norm_eps\":1e-6,\"architectures\":[\"Qwen3ForCausalLM\"]}";
    CHECK_INT(model_config_parse(q3, strlen(q3), &c), 0);
    CHECK(c.arch == ARCH_QWEN3 && c.kv_heads == 2 && c.head_dim == 32 && c.qk_norm == 32 && c.norm == NORM_RMS &&
          c.causal && c.prenorm && c.final_norm && c.glu && c.act == ACT_SILU && !c.qkv_bias && c.head == HEAD_NONE);
}
