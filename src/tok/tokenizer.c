/* Tokenizer loading (tokenizer.json or vocab.txt) and the encode pipeline
 * described in tok.h. */
#include <jansson.h>
#include <pthread.h>
#include <string.h>

#include "tok_internal.h"

typedef struct added_token {
    uint32_t *cps;
    size_t n;
    int32_t id;
    int normalized;
} added_token;

struct tokenizer {
    vocab v;
    norm_opts norm;
    int32_t unk_id, cls_id, sep_id;
    int max_word_chars;
    char prefix[16];          /* continuing-subword prefix, "##" */
    size_t prefix_len;
    added_token *added;
    size_t n_added;
};

/* Per-thread scratch of tok_encode. A pthread key's destructor frees it when
 * a thread ends (server connection threads come and go); the _Thread_local
 * pointer is the fast path. */
typedef struct tok_scratch {
    u32vec raw, norm, tmp;
    buf word;
} tok_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local tok_scratch *scratch_tls;

static void scratch_free(void *p) {
    tok_scratch *ts = p;
    if (!ts) return;
    base_free(ts->raw.p);
    base_free(ts->norm.p);
    base_free(ts->tmp.p);
    buf_free(&ts->word);
    base_free(ts);
}

static void scratch_key_init(void) { CE_ASSERT(pthread_key_create(&scratch_key, scratch_free) == 0); }

static tok_scratch *get_scratch(void) {
    if (!scratch_tls) {
        pthread_once(&scratch_once, scratch_key_init);
        scratch_tls = base_calloc(1, sizeof *scratch_tls);
        if (scratch_tls) pthread_setspecific(scratch_key, scratch_tls);
    }
    return scratch_tls;
}

void tok_free(tokenizer *t) {
    if (!t) return;
    vocab_free(&t->v);
    for (size_t i = 0; i < t->n_added; i++) base_free(t->added[i].cps);
    base_free(t->added);
    base_free(t);
}

size_t tok_vocab_size(const tokenizer *t) { return t->v.n_ids; }
int32_t tok_cls_id(const tokenizer *t) { return t->cls_id; }
int32_t tok_sep_id(const tokenizer *t) { return t->sep_id; }

str tok_id_to_token(const tokenizer *t, int32_t id) {
    if (id < 0 || (size_t)id >= t->v.n_ids || t->v.off[id] == UINT32_MAX) return str_from("", 0);
    return str_from(t->v.strings + t->v.off[id], t->v.len[id]);
}

static int32_t lookup_cstr(const tokenizer *t, const char *s) { return vocab_get(&t->v, s, strlen(s)); }

static int finish(tokenizer *t, const char *unk, const char *cls, const char *sep) {
    if (vocab_build(&t->v)) return CEMBED_ENOMEM;
    if (t->unk_id < 0 && (t->unk_id = lookup_cstr(t, unk)) < 0)
        return base_err(CEMBED_EFORMAT, "tokenizer: unknown token \"%s\" is not in the vocabulary", unk);
    if (t->cls_id < 0 && (t->cls_id = lookup_cstr(t, cls)) < 0)
        return base_err(CEMBED_EFORMAT, "tokenizer: \"%s\" is not in the vocabulary", cls);
    if (t->sep_id < 0 && (t->sep_id = lookup_cstr(t, sep)) < 0)
        return base_err(CEMBED_EFORMAT, "tokenizer: \"%s\" is not in the vocabulary", sep);
    return 0;
}

static tokenizer *tok_new(void) {
    tokenizer *t = base_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->unk_id = t->cls_id = t->sep_id = -1;
    t->max_word_chars = 100;
    memcpy(t->prefix, "##", 3);
    t->prefix_len = 2;
    t->norm = (norm_opts){1, 1, 1, 1};
    return t;
}

/* Reads a boolean-or-null field; null leaves *out. */
static int opt_bool(json_t *o, const char *key, int *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return base_err(CEMBED_EFORMAT, "tokenizer.json: normalizer.%s must be a boolean", key);
    *out = json_is_true(v);
    return 0;
}

static int load_special(tokenizer *t, json_t *pp) {
    if (!pp || json_is_null(pp)) return 0;
    const char *type = json_string_value(json_object_get(pp, "type"));
    if (!type) return base_err(CEMBED_EFORMAT, "tokenizer.json: post_processor has no type");
    if (strcmp(type, "BertProcessing") == 0) {
        json_t *cls = json_object_get(pp, "cls"), *sep = json_object_get(pp, "sep");
        if (json_is_array(cls) && json_is_integer(json_array_get(cls, 1)))
            t->cls_id = (int32_t)json_integer_value(json_array_get(cls, 1));
        if (json_is_array(sep) && json_is_integer(json_array_get(sep, 1)))
            t->sep_id = (int32_t)json_integer_value(json_array_get(sep, 1));
        return 0;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return base_err(CEMBED_EMODEL, "tokenizer.json: post_processor %.32s is not supported", type);
    /* single: [{"SpecialToken": {"id": "[CLS]"}}, {"Sequence": ...}, {"SpecialToken": {"id": "[SEP]"}}] */
    json_t *single = json_object_get(pp, "single"), *special = json_object_get(pp, "special_tokens");
    if (!json_is_array(single) || json_array_size(single) != 3)
        return base_err(CEMBED_EMODEL, "tokenizer.json: only [CLS] $A [SEP] templates are supported");
    for (int k = 0; k < 3; k += 2) {
        const char *name =
            json_string_value(json_object_get(json_object_get(json_array_get(single, (size_t)k), "SpecialToken"), "id"));
        json_t *ids = json_object_get(json_object_get(special, name ? name : ""), "ids");
        if (!name || !json_is_integer(json_array_get(ids, 0)))
            return base_err(CEMBED_EMODEL, "tokenizer.json: template special token %d has no id", k);
        int32_t id = (int32_t)json_integer_value(json_array_get(ids, 0));
        if (k == 0) t->cls_id = id;
        else t->sep_id = id;
    }
    return 0;
}

static int add_token(tokenizer *t, const char *s, int32_t id, int normalized) {
    size_t len = strlen(s);
    added_token *a = &t->added[t->n_added];
    a->cps = base_malloc((len + 1) * sizeof *a->cps);
    if (!a->cps) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    a->n = utf8_decode(s, len, a->cps);
    a->id = id;
    a->normalized = normalized;
    if (a->n == 0) {
        base_free(a->cps);
        return 0;
    }
    t->n_added++;
    return 0;
}

int tok_load_json(const char *text, size_t len, tokenizer **out) {
    *out = NULL;
    json_error_t e;
    json_t *root = json_loadb(text, len, 0, &e);
    if (!root) return base_err(CEMBED_EFORMAT, "tokenizer.json: not valid JSON: %s (line %d)", e.text, e.line);
    tokenizer *t = tok_new();
    int rc = CEMBED_EFORMAT;
    if (!t) {
        rc = base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
        goto fail;
    }
    if (!json_is_object(root)) {
        base_err(rc, "tokenizer.json: not a JSON object");
        goto fail;
    }
    json_t *model = json_object_get(root, "model");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    json_t *vocab_obj = json_object_get(model, "vocab");
    if (!json_is_object(model) || !json_is_object(vocab_obj)) {
        base_err(rc, "tokenizer.json: model.vocab must be an object");
        goto fail;
    }
    if (mtype && strcmp(mtype, "WordPiece") != 0) {
        rc = base_err(CEMBED_EMODEL, "tokenizer.json: model type %.32s is not supported (WordPiece is)", mtype);
        goto fail;
    }
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    const char *pre = json_string_value(json_object_get(model, "continuing_subword_prefix"));
    json_t *mx = json_object_get(model, "max_input_chars_per_word");
    if (pre) {
        if (strlen(pre) >= sizeof t->prefix) {
            base_err(rc, "tokenizer.json: continuing_subword_prefix is too long");
            goto fail;
        }
        snprintf(t->prefix, sizeof t->prefix, "%s", pre);
        t->prefix_len = strlen(pre);
    }
    if (mx && !json_is_null(mx)) {
        if (!json_is_integer(mx) || json_integer_value(mx) < 1 || json_integer_value(mx) > 100000) {
            base_err(rc, "tokenizer.json: model.max_input_chars_per_word must be an integer in [1, 100000]");
            goto fail;
        }
        t->max_word_chars = (int)json_integer_value(mx);
    }
    json_t *normalizer = json_object_get(root, "normalizer");
    if (normalizer && !json_is_null(normalizer)) {
        const char *ntype = json_string_value(json_object_get(normalizer, "type"));
        if (!ntype || strcmp(ntype, "BertNormalizer") != 0) {
            rc = base_err(CEMBED_EMODEL, "tokenizer.json: normalizer %.32s is not supported (BertNormalizer is)",
                          ntype ? ntype : "?");
            goto fail;
        }
        int strip = -1;
        if (opt_bool(normalizer, "clean_text", &t->norm.clean_text) ||
            opt_bool(normalizer, "handle_chinese_chars", &t->norm.handle_chinese_chars) ||
            opt_bool(normalizer, "lowercase", &t->norm.lowercase) || opt_bool(normalizer, "strip_accents", &strip))
            goto fail;
        /* null follows lowercase */
        t->norm.strip_accents = strip < 0 ? t->norm.lowercase : strip;
    } else {
        t->norm = (norm_opts){0, 0, 0, 0};
    }
    json_t *pt = json_object_get(root, "pre_tokenizer");
    const char *ptype = json_string_value(json_object_get(pt, "type"));
    if (!ptype || strcmp(ptype, "BertPreTokenizer") != 0) {
        rc = base_err(CEMBED_EMODEL, "tokenizer.json: pre_tokenizer %.32s is not supported (BertPreTokenizer is)",
                      ptype ? ptype : "null");
        goto fail;
    }
    /* ids: the vocabulary plus added tokens */
    json_t *added = json_object_get(root, "added_tokens");
    size_t n_ids = 0, i;
    const char *key;
    json_t *v, *a;
    json_object_foreach(vocab_obj, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 24)) {
            base_err(rc, "tokenizer.json: vocab id of \"%.40s\" must be an integer in [0, 2^24)", key);
            goto fail;
        }
        if ((size_t)json_integer_value(v) + 1 > n_ids) n_ids = (size_t)json_integer_value(v) + 1;
    }
    if (added && !json_is_array(added)) {
        base_err(rc, "tokenizer.json: added_tokens must be an array");
        goto fail;
    }
    json_array_foreach(added, i, a) {
        json_t *id = json_object_get(a, "id");
        if (!json_is_string(json_object_get(a, "content")) || !json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (1 << 24)) {
            base_err(rc, "tokenizer.json: added_tokens[%zu] needs content and an id in [0, 2^24)", i);
            goto fail;
        }
        if ((size_t)json_integer_value(id) + 1 > n_ids) n_ids = (size_t)json_integer_value(id) + 1;
    }
    if (n_ids == 0) {
        base_err(rc, "tokenizer.json: the vocabulary is empty");
        goto fail;
    }
    if ((rc = vocab_init(&t->v, n_ids))) goto fail;
    rc = CEMBED_EFORMAT;
    json_object_foreach(vocab_obj, key, v) {
        int32_t id = (int32_t)json_integer_value(v);
        if (t->v.off[id] != UINT32_MAX) {
            base_err(rc, "tokenizer.json: vocab id %d is given to two tokens", (int)id);
            goto fail;
        }
        if ((rc = vocab_set(&t->v, str_from(key, strlen(key)), id))) goto fail;
        rc = CEMBED_EFORMAT;
    }
    t->added = base_calloc(json_array_size(added) + 1, sizeof *t->added);
    if (!t->added) {
        rc = base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
        goto fail;
    }
    json_array_foreach(added, i, a) {
        const char *content = json_string_value(json_object_get(a, "content"));
        int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
        if ((rc = vocab_set(&t->v, str_from(content, strlen(content)), id)) ||
            (rc = add_token(t, content, id, json_is_true(json_object_get(a, "normalized")))))
            goto fail;
    }
    if ((rc = load_special(t, json_object_get(root, "post_processor")))) goto fail;
    if ((rc = finish(t, unk ? unk : "[UNK]", "[CLS]", "[SEP]"))) goto fail;
    json_decref(root);
    *out = t;
    return 0;
fail:
    json_decref(root);
    tok_free(t);
    return rc;
}

int tok_load_vocab(const char *text, size_t len, int lowercase, tokenizer **out) {
    *out = NULL;
    tokenizer *t = tok_new();
    if (!t) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    t->norm.lowercase = t->norm.strip_accents = lowercase;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (len && text[len - 1] != '\n') lines++;
    int rc = vocab_init(&t->v, lines ? lines : 1);
    if (rc) goto fail;
    size_t start = 0;
    int32_t id = 0;
    for (size_t i = 0; i <= len && (size_t)id < lines; i++) {
        if (i == len || text[i] == '\n') {
            size_t e = i;
            if (e > start && text[e - 1] == '\r') e--;
            if ((rc = vocab_set(&t->v, str_from(text + start, e - start), id++))) goto fail;
            start = i + 1;
        }
    }
    t->added = base_calloc(5, sizeof *t->added);
    if (!t->added) {
        rc = base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
        goto fail;
    }
    if ((rc = vocab_build(&t->v))) goto fail;
    static const char *specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (size_t k = 0; k < CE_ARRAY_LEN(specials); k++) {
        int32_t sid = lookup_cstr(t, specials[k]);
        if (sid >= 0 && (rc = add_token(t, specials[k], sid, 0))) goto fail;
    }
    if ((rc = finish(t, "[UNK]", "[CLS]", "[SEP]"))) goto fail;
    *out = t;
    return 0;
fail:
    tok_free(t);
    return rc;
}

int tok_load_dir(const char *dir, tokenizer **out) {
    char *path = path_join(dir, "tokenizer.json"), *text = NULL;
    size_t len;
    int rc;
    if (!path) return base_err(CEMBED_ENOMEM, "out of memory");
    if (file_exists(path)) {
        rc = file_read_all(path, TOK_MAX_FILE_BYTES, &text, &len);
        if (!rc) rc = tok_load_json(text, len, out);
        if (rc) base_err_prefix(rc, "%s", dir);
        base_free(text);
        base_free(path);
        return rc;
    }
    base_free(path);
    int lower = 1;
    if ((path = path_join(dir, "tokenizer_config.json")) && file_exists(path) &&
        file_read_all(path, TOK_MAX_FILE_BYTES, &text, &len) == 0) {
        json_t *cfg = json_loadb(text, len, 0, NULL);
        if (json_is_false(json_object_get(cfg, "do_lower_case"))) lower = 0;
        json_decref(cfg);
        base_free(text);
    }
    base_free(path);
    if (!(path = path_join(dir, "vocab.txt"))) return base_err(CEMBED_ENOMEM, "out of memory");
    if (!file_exists(path)) {
        base_free(path);
        return base_err(CEMBED_EIO, "%s: neither tokenizer.json nor vocab.txt", dir);
    }
    rc = file_read_all(path, TOK_MAX_FILE_BYTES, &text, &len);
    if (!rc) rc = tok_load_vocab(text, len, lower, out);
    if (rc) base_err_prefix(rc, "%s", path);
    base_free(text);
    base_free(path);
    return rc;
}

/* ---- encoding ---- */

static int push_id(tok_ids *o, int32_t id) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        int32_t *p = base_realloc(o->ids, cap * sizeof *p);
        if (!p) return CEMBED_ENOMEM;
        o->ids = p;
        o->cap = cap;
    }
    o->ids[o->n++] = id;
    return 0;
}

/* WordPiece on one pre-token w[0..n). */
static int wordpiece(const tokenizer *t, tok_scratch *ts, const uint32_t *w, size_t n, tok_ids *o) {
    if (n > (size_t)t->max_word_chars) return push_id(o, t->unk_id);
    buf *b = &ts->word;
    b->len = 0;
    if (buf_reserve(b, t->prefix_len + n * 4 + 1)) return CEMBED_ENOMEM;
    /* bytes of the word after the prefix; offs[i] = byte offset of char i */
    uint32_t offs[101 + 1];
    uint32_t *off = offs;
    if (n > 100) {
        off = base_malloc((n + 1) * sizeof *off);
        if (!off) return CEMBED_ENOMEM;
    }
    memcpy(b->ptr, t->prefix, t->prefix_len);
    char *bytes = b->ptr + t->prefix_len;
    size_t bl = 0;
    for (size_t i = 0; i < n; i++) {
        off[i] = (uint32_t)bl;
        bl += (size_t)utf8_encode(w[i], bytes + bl);
    }
    off[n] = (uint32_t)bl;
    size_t first = o->n, start = 0;
    int rc = 0;
    while (start < n) {
        size_t end = n;
        int32_t id = -1;
        for (; end > start; end--) {
            const char *s = bytes + off[start];
            size_t len = off[end] - off[start];
            if (start > 0) {
                s -= t->prefix_len;
                len += t->prefix_len;
                /* the prefix sits right before this piece */
                memmove((char *)s, t->prefix, t->prefix_len);
            }
            id = vocab_get(&t->v, s, len);
            if (id >= 0) break;
        }
        if (id < 0) {
            o->n = first;
            rc = push_id(o, t->unk_id);
            goto done;
        }
        if ((rc = push_id(o, id))) goto done;
        start = end;
    }
done:
    if (off != offs) base_free(off);
    return rc;
}

/* Pre-tokenizes a normalized piece and runs WordPiece on each word. */
static int pretok_and_wordpiece(const tokenizer *t, tok_scratch *ts, const uint32_t *s, size_t n, tok_ids *o) {
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i];
        if (uni_is_js_space(c)) {
            i++;
            continue;
        }
        if (uni_is_bert_punct(c)) {
            if (wordpiece(t, ts, &s[i], 1, o)) return CEMBED_ENOMEM;
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && !uni_is_js_space(s[j]) && !uni_is_bert_punct(s[j])) j++;
        if (wordpiece(t, ts, &s[i], j - i, o)) return CEMBED_ENOMEM;
        i = j;
    }
    return 0;
}

/* Finds the leftmost-longest added token (of the given kind) in s[from..n).
 * Returns its index or -1; *at is where it starts. */
static int find_added(const tokenizer *t, const uint32_t *s, size_t n, size_t from, int normalized, size_t *at) {
    for (size_t i = from; i < n; i++) {
        int best = -1;
        for (size_t k = 0; k < t->n_added; k++) {
            const added_token *a = &t->added[k];
            if (a->normalized != normalized || a->n > n - i || (best >= 0 && a->n <= t->added[best].n)) continue;
            if (memcmp(a->cps, s + i, a->n * sizeof *s) == 0) best = (int)k;
        }
        if (best >= 0) {
            *at = i;
            return best;
        }
    }
    return -1;
}

static int encode_normalized(const tokenizer *t, tok_scratch *ts, const uint32_t *s, size_t n, tok_ids *o) {
    size_t pos = 0, at;
    int k;
    while ((k = find_added(t, s, n, pos, 1, &at)) >= 0) {
        if (pretok_and_wordpiece(t, ts, s + pos, at - pos, o) || push_id(o, t->added[k].id)) return CEMBED_ENOMEM;
        pos = at + t->added[k].n;
    }
    return pretok_and_wordpiece(t, ts, s + pos, n - pos, o);
}

static int encode_section(const tokenizer *t, tok_scratch *ts, const uint32_t *s, size_t n, tok_ids *o) {
    if (n == 0) return 0;
    if (norm_apply(&t->norm, s, n, &ts->norm, &ts->tmp)) return CEMBED_ENOMEM;
    return encode_normalized(t, ts, ts->norm.p, ts->norm.n, o);
}

int tok_encode(const tokenizer *t, const char *text, size_t len, int max_len, tok_ids *o) {
    CE_ASSERT(max_len >= 2);
    o->n = 0;
    o->truncated = 0;
    tok_scratch *ts = get_scratch();
    if (!ts || u32_reserve(&ts->raw, len + 1)) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    size_t n = utf8_decode(text, len, ts->raw.p);
    const uint32_t *s = ts->raw.p;
    if (push_id(o, t->cls_id)) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    size_t pos = 0, at;
    int k;
    while ((k = find_added(t, s, n, pos, 0, &at)) >= 0) {
        if (encode_section(t, ts, s + pos, at - pos, o) || push_id(o, t->added[k].id))
            return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
        pos = at + t->added[k].n;
    }
    if (encode_section(t, ts, s + pos, n - pos, o) || push_id(o, t->sep_id))
        return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    o->n_full = o->n;
    if (o->n > (size_t)max_len) {
        o->ids[max_len - 1] = t->sep_id;
        o->n = (size_t)max_len;
        o->truncated = 1;
    }
    if (o->cap > o->n) { /* keep only what is used: callers hold many (a server request, thousands) */
        int32_t *p = base_realloc(o->ids, o->n * sizeof *p);
        if (p) o->ids = p, o->cap = o->n;
    }
    return 0;
}

void tok_ids_free(tok_ids *v) {
    base_free(v->ids);
    memset(v, 0, sizeof *v);
}

void tok_thread_release(void) {
    if (!scratch_tls) return;
    pthread_setspecific(scratch_key, NULL);
    scratch_free(scratch_tls);
    scratch_tls = NULL;
}
