/* Tokenizer loading (tokenizer.json or vocab.txt) and the encode pipeline
 * described in tok.h: added tokens on the raw text, then per section the
 * normalizer, the normalized added tokens, the pre-tokenizer and the model;
 * truncation of the contents, then the post-processor's template. */
#include <jansson.h>
#include <pthread.h>
#include <string.h>

#include "regex.h"
#include "tok_internal.h"

/* Per-thread scratch of tok_encode. A pthread key's destructor frees it when
 * a thread ends (server connection threads come and go); the _Thread_local
 * pointer is the fast path. */
typedef struct tok_scratch {
    u32vec raw, norm, tmp, tmp2, pbuf, pbuf2;
    spanvec sec, sub, psp, psp2;
    tok_ids a, b;
    buf word;
} tok_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local tok_scratch *scratch_tls;

static void scratch_free(void *p) {
    tok_scratch *ts = p;
    if (!ts) return;
    u32vec *vs[] = {&ts->raw, &ts->norm, &ts->tmp, &ts->tmp2, &ts->pbuf, &ts->pbuf2};
    for (size_t i = 0; i < CE_ARRAY_LEN(vs); i++) base_free(vs[i]->p);
    spanvec *ss[] = {&ts->sec, &ts->sub, &ts->psp, &ts->psp2};
    for (size_t i = 0; i < CE_ARRAY_LEN(ss); i++) base_free(ss[i]->p);
    base_free(ts->a.ids);
    base_free(ts->b.ids);
    buf_free(&ts->word);
    base_free(ts);
    tok_re_thread_release();
    pretok_thread_release();
    bpe_thread_release();
    unigram_thread_release();
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
    for (size_t i = 0; i < t->n_norms; i++) norm_step_free(&t->norms[i]);
    base_free(t->norms);
    for (size_t i = 0; i < t->n_pretoks; i++) pretok_step_free(&t->pretoks[i]);
    base_free(t->pretoks);
    bpe_free(t->bpe);
    unigram_free(t->uni);
    for (size_t i = 0; i < t->n_added; i++) base_free(t->added[i].cps);
    base_free(t->added);
    added_free(t->raw_set);
    added_free(t->norm_set);
    base_free(t);
}

size_t tok_vocab_size(const tokenizer *t) { return t->v.n_ids; }
int32_t tok_cls_id(const tokenizer *t) { return t->cls_id; }
int32_t tok_sep_id(const tokenizer *t) { return t->sep_id; }
int32_t tok_pad_id(const tokenizer *t) { return t->pad_id; }
size_t tok_num_special(const tokenizer *t, int pair) { return pair ? t->pair.n_special : t->single.n_special; }

str tok_id_to_token(const tokenizer *t, int32_t id) {
    if (id < 0 || (size_t)id >= t->v.n_ids || t->v.off[id] == UINT32_MAX) return str_from("", 0);
    return str_from(t->v.strings + t->v.off[id], t->v.len[id]);
}

static int32_t lookup_cstr(const tokenizer *t, const char *s) { return vocab_get(&t->v, s, strlen(s)); }

static tokenizer *tok_new(void) {
    tokenizer *t = base_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->unk_id = t->cls_id = t->sep_id = t->pad_id = -1;
    t->max_word_chars = 100;
    memcpy(t->prefix, "##", 3);
    t->prefix_len = 2;
    return t;
}

/* cls/sep: the single template's first and last items when they are special tokens. */
static void set_cls_sep(tokenizer *t) {
    const tpl *s = &t->single;
    t->cls_id = s->n && s->items[0].seq < 0 && s->items[0].n ? t->tpl_ids[s->items[0].off] : -1;
    const tpl_item *last = s->n ? &s->items[s->n - 1] : NULL;
    t->sep_id = last && last->seq < 0 && last->n ? t->tpl_ids[last->off + last->n - 1] : -1;
}

static int add_token(tokenizer *t, const char *s, size_t len, int32_t id, int normalized) {
    added_tok *a = &t->added[t->n_added];
    memset(a, 0, sizeof *a);
    a->cps = base_malloc((len + 1) * sizeof *a->cps);
    if (!a->cps) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    a->n = utf8_decode(s, len, a->cps);
    a->id = id;
    a->normalized = (uint8_t)normalized;
    if (a->n == 0) {
        base_free(a->cps);
        return 0;
    }
    t->n_added++;
    return 0;
}

/* Normalized added tokens are matched by their normalized content (HF's
 * normalized_cache); then both tries are built. */
static int build_added(tokenizer *t) {
    u32vec out = {0}, a = {0}, b = {0};
    int rc = 0;
    for (size_t i = 0; i < t->n_added && !rc; i++) {
        added_tok *k = &t->added[i];
        if (!k->normalized || !t->n_norms) continue;
        if ((rc = norm_run(t->norms, t->n_norms, k->cps, k->n, &out, &a, &b, NULL))) break;
        uint32_t *p = base_realloc(k->cps, (out.n + 1) * sizeof *p);
        if (!p) {
            rc = CEMBED_ENOMEM;
            break;
        }
        memcpy(p, out.p, out.n * sizeof *p);
        k->cps = p;
        k->n = out.n;
    }
    base_free(out.p), base_free(a.p), base_free(b.p);
    if (rc) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    if ((rc = added_build(t->added, t->n_added, 0, &t->raw_set))) return rc;
    return added_build(t->added, t->n_added, 1, &t->norm_set);
}

/* The WordPiece defaults: BERT normalizer options, BERT pre-tokenizer. */
static int wordpiece_steps(tokenizer *t, const norm_opts *o) {
    t->norms = base_calloc(1, sizeof *t->norms);
    t->pretoks = base_calloc(1, sizeof *t->pretoks);
    if (!t->norms || !t->pretoks) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    t->norms[0].kind = NS_BERT;
    t->norms[0].bert = *o;
    t->n_norms = 1;
    t->pretoks[0].kind = PS_BERT;
    t->n_pretoks = 1;
    return 0;
}

static int wordpiece_options(tokenizer *t, json_t *model) {
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    const char *pre = json_string_value(json_object_get(model, "continuing_subword_prefix"));
    json_t *mx = json_object_get(model, "max_input_chars_per_word");
    if (pre) {
        if (strlen(pre) >= sizeof t->prefix)
            return base_err(CEMBED_EFORMAT, "tokenizer.json: continuing_subword_prefix is too long");
        snprintf(t->prefix, sizeof t->prefix, "%s", pre);
        t->prefix_len = strlen(pre);
    }
    if (mx && !json_is_null(mx)) {
        if (!json_is_integer(mx) || json_integer_value(mx) < 1 || json_integer_value(mx) > 100000)
            return base_err(CEMBED_EFORMAT,
                            "tokenizer.json: model.max_input_chars_per_word must be an integer in [1, 100000]");
        t->max_word_chars = (int)json_integer_value(mx);
    }
    if ((t->unk_id = lookup_cstr(t, unk ? unk : "[UNK]")) < 0)
        return base_err(CEMBED_EFORMAT, "tokenizer: unknown token \"%s\" is not in the vocabulary", unk ? unk : "[UNK]");
    return 0;
}

/* Counts ids (vocabulary object and added tokens) and checks their form. */
static int count_ids(json_t *vocab_obj, json_t *added, size_t *n_ids) {
    const char *key;
    json_t *v, *a;
    size_t i;
    json_object_foreach(vocab_obj, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 24))
            return base_err(CEMBED_EFORMAT, "tokenizer.json: vocab id of \"%.40s\" must be an integer in [0, 2^24)", key);
        if ((size_t)json_integer_value(v) + 1 > *n_ids) *n_ids = (size_t)json_integer_value(v) + 1;
    }
    if (added && !json_is_array(added)) return base_err(CEMBED_EFORMAT, "tokenizer.json: added_tokens must be an array");
    json_array_foreach(added, i, a) {
        json_t *id = json_object_get(a, "id");
        if (!json_is_string(json_object_get(a, "content")) || !json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (1 << 24))
            return base_err(CEMBED_EFORMAT, "tokenizer.json: added_tokens[%zu] needs content and an id in [0, 2^24)", i);
        if ((size_t)json_integer_value(id) + 1 > *n_ids) *n_ids = (size_t)json_integer_value(id) + 1;
    }
    if (*n_ids == 0) return base_err(CEMBED_EFORMAT, "tokenizer.json: the vocabulary is empty");
    return 0;
}

static int load_vocab_obj(tokenizer *t, json_t *vocab_obj) {
    const char *key;
    json_t *v;
    json_object_foreach(vocab_obj, key, v) {
        int32_t id = (int32_t)json_integer_value(v);
        if (t->v.off[id] != UINT32_MAX)
            return base_err(CEMBED_EFORMAT, "tokenizer.json: vocab id %d is given to two tokens", (int)id);
        int rc = vocab_set(&t->v, str_from(key, strlen(key)), id);
        if (rc) return rc;
    }
    return 0;
}

static int load_added(tokenizer *t, json_t *added) {
    json_t *a;
    size_t i;
    t->added = base_calloc(json_array_size(added) + 1, sizeof *t->added);
    if (!t->added) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    json_array_foreach(added, i, a) {
        json_t *c = json_object_get(a, "content"), *norm = json_object_get(a, "normalized");
        int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
        int special = json_is_true(json_object_get(a, "special"));
        int rc;
        if (id >= (int32_t)t->v.n_ids) continue;   /* the vocabulary may be grown later (Unigram) */
        if (t->v.off[id] == UINT32_MAX && (rc = vocab_set(&t->v, str_from(json_string_value(c), json_string_length(c)), id)))
            return rc;
        size_t before = t->n_added;
        if ((rc = add_token(t, json_string_value(c), json_string_length(c), id,
                            json_is_boolean(norm) ? json_is_true(norm) : !special)))
            return rc;
        if (t->n_added > before) {
            added_tok *k = &t->added[t->n_added - 1];
            k->lstrip = (uint8_t)json_is_true(json_object_get(a, "lstrip"));
            k->rstrip = (uint8_t)json_is_true(json_object_get(a, "rstrip"));
            k->single_word = (uint8_t)json_is_true(json_object_get(a, "single_word"));
            k->special = (uint8_t)special;
        }
    }
    return 0;
}

/* The scanned vocabulary into t->v (after vocab_init). An id given twice
 * or a token under two ids refuses: jansson keeps the last of duplicate
 * keys, so the slow path decides those files. */
static int scanned_vocab_set(tokenizer *t, const tok_scan *sc) {
    const tok_scan_list *l = &sc->vocab;
    for (size_t i = 0; i < l->n; i++) {
        if (t->v.off[l->val[i]] != UINT32_MAX) return CEMBED_EFORMAT;
        int rc = vocab_set(&t->v, str_from(l->bytes + l->off[i], l->len[i]), l->val[i]);
        if (rc) return rc;
    }
    return 0;
}

/* Checks that the tree holds the placeholders where scan.c cut, and counts
 * the scanned ids into *n_ids. */
static int scanned_check(const tok_scan *sc, json_t *model, json_t *vocab_obj, size_t *n_ids) {
    json_t *merges = json_object_get(model, "merges");
    if (json_object_size(vocab_obj) != 0 || (sc->merges_len && (!json_is_array(merges) || json_array_size(merges) != 0)))
        return CEMBED_EFORMAT;
    for (size_t i = 0; i < sc->vocab.n; i++)
        if ((size_t)sc->vocab.val[i] + 1 > *n_ids) *n_ids = (size_t)sc->vocab.val[i] + 1;
    return 0;
}

static int load_model(tokenizer *t, json_t *root, json_t *model, const tok_scan *sc) {
    const char *mtype = json_string_value(json_object_get(model, "type"));
    json_t *vocab_obj = json_object_get(model, "vocab"), *added = json_object_get(root, "added_tokens");
    int rc;
    if (!json_is_object(model)) return base_err(CEMBED_EFORMAT, "tokenizer.json: model must be an object");
    if (!mtype) mtype = json_is_object(vocab_obj) && json_object_get(model, "merges") ? "BPE" : "WordPiece";
    if (strcmp(mtype, "Unigram") == 0) {
        t->model = M_UNIGRAM;
        size_t n_ids = json_array_size(vocab_obj);
        if ((rc = count_ids(NULL, added, &n_ids)) || (rc = vocab_init(&t->v, n_ids)) ||
            (rc = unigram_load(model, &t->v, &t->uni)) || (rc = load_added(t, added)) || (rc = vocab_build(&t->v)))
            return rc;
        unigram_finish(t->uni, &t->v);
        return 0;
    }
    if (strcmp(mtype, "WordPiece") && strcmp(mtype, "BPE"))
        return base_err(CEMBED_EMODEL, "tokenizer.json: model type %.32s is not supported", mtype);
    t->model = mtype[0] == 'B' ? M_BPE : M_WORDPIECE;
    if (!json_is_object(vocab_obj)) return base_err(CEMBED_EFORMAT, "tokenizer.json: model.vocab must be an object");
    size_t n_ids = 0;
    if ((sc && (rc = scanned_check(sc, model, vocab_obj, &n_ids))) || (rc = count_ids(vocab_obj, added, &n_ids)) ||
        (rc = vocab_init(&t->v, n_ids)) || (sc && (rc = scanned_vocab_set(t, sc))) || (rc = load_vocab_obj(t, vocab_obj)))
        return rc;
    if ((rc = vocab_build(&t->v))) return rc;
    if (sc && t->v.n_dups) return CEMBED_EFORMAT;   /* duplicate keys: the slow path decides */
    const tok_scan_list *merges = sc && sc->merges_len ? &sc->merges : NULL;
    if (t->model == M_BPE && ((rc = bpe_new(&t->bpe)) || (rc = bpe_load(t->bpe, &t->v, model, merges)))) return rc;
    if ((rc = load_added(t, added)) || (rc = vocab_build(&t->v))) return rc;
    return t->model == M_WORDPIECE ? wordpiece_options(t, model) : 0;
}

static int load_pad(tokenizer *t, json_t *root) {
    json_t *pad = json_object_get(json_object_get(root, "padding"), "pad_id");
    if (json_is_integer(pad) && json_integer_value(pad) >= 0 && (size_t)json_integer_value(pad) < t->v.n_ids)
        t->pad_id = (int32_t)json_integer_value(pad);
    else if ((t->pad_id = lookup_cstr(t, "[PAD]")) < 0)
        t->pad_id = lookup_cstr(t, "<pad>");
    return 0;
}

/* A WordPiece model without a post_processor keeps the BERT wrapping
 * ([CLS] A [SEP]) this tokenizer always gave it. */
static int wordpiece_default_template(tokenizer *t, json_t *pp) {
    if (t->model != M_WORDPIECE || (pp && !json_is_null(pp))) return 0;
    int32_t cls = lookup_cstr(t, "[CLS]"), sep = lookup_cstr(t, "[SEP]");
    if (cls < 0) return base_err(CEMBED_EFORMAT, "tokenizer: \"[CLS]\" is not in the vocabulary");
    if (sep < 0) return base_err(CEMBED_EFORMAT, "tokenizer: \"[SEP]\" is not in the vocabulary");
    return tpl_set_bert(t, cls, sep, 0);
}

/* Loads the document as a jansson tree; with sc, the tree is scan.c's
 * skeleton and the vocab and merges come from sc. */
static int load_tree(const char *text, size_t len, const tok_scan *sc, tokenizer **out) {
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
    json_t *pp = json_object_get(root, "post_processor");
    if ((rc = load_model(t, root, json_object_get(root, "model"), sc)) ||
        (rc = load_normalizer(t, json_object_get(root, "normalizer"))) ||
        (rc = load_pre_tokenizer(t, json_object_get(root, "pre_tokenizer"))) || (rc = load_post_processor(t, pp)) ||
        (rc = wordpiece_default_template(t, pp)) || (rc = build_added(t)) || (rc = load_pad(t, root)))
        goto fail;
    set_cls_sep(t);
    json_decref(root);
    *out = t;
    return 0;
fail:
    json_decref(root);
    tok_free(t);
    return rc;
}

int tok_load_json_tree(const char *text, size_t len, tokenizer **out) { return load_tree(text, len, NULL, out); }

int tok_load_json_scanned(const char *text, size_t len, tokenizer **out) {
    tok_scan sc;
    *out = NULL;
    int rc = tok_scan_json(text, len, &sc);
    if (!rc) rc = load_tree(sc.skeleton, sc.skeleton_len, &sc, out);
    tok_scan_free(&sc);
    return rc;
}

int tok_load_json(const char *text, size_t len, tokenizer **out) {
    if (tok_load_json_scanned(text, len, out) == 0) return 0;
    base_err_clear();   /* the slow path gives the result or its own message */
    return load_tree(text, len, NULL, out);
}

int tok_load_vocab(const char *text, size_t len, int lowercase, tokenizer **out) {
    *out = NULL;
    tokenizer *t = tok_new();
    if (!t) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    norm_opts o = {1, 1, lowercase, lowercase};
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (len && text[len - 1] != '\n') lines++;
    int rc = vocab_init(&t->v, lines ? lines : 1);
    if (rc || (rc = wordpiece_steps(t, &o))) goto fail;
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
        if (sid >= 0 && (rc = add_token(t, specials[k], strlen(specials[k]), sid, 0))) goto fail;
    }
    if ((rc = wordpiece_options(t, NULL)) || (rc = wordpiece_default_template(t, NULL)) || (rc = build_added(t)) ||
        (rc = load_pad(t, NULL)))
        goto fail;
    set_cls_sep(t);
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

static int push_id(tok_ids *o, int32_t id) { return tok_push_id(o, id); }

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


static int model_word(const tokenizer *t, tok_scratch *ts, const uint32_t *w, size_t n, tok_ids *o) {
    switch (t->model) {
    case M_WORDPIECE: return wordpiece(t, ts, w, n, o);
    case M_BPE: return bpe_word(t->bpe, &t->v, w, n, o);
    default: return unigram_word(t->uni, &t->v, w, n, o);
    }
}

/* A normalized piece free of added tokens: pre-tokenize, then the model on each word. */
static int encode_piece(const tokenizer *t, tok_scratch *ts, const uint32_t *s, size_t n, uint32_t first,
                        tok_ids *o) {
    if (n == 0) return 0;
    ts->pbuf.n = ts->psp.n = 0;
    if (u32_reserve(&ts->pbuf, n + 1) || span_push(&ts->psp, 0, (uint32_t)n, first)) return CEMBED_ENOMEM;
    memcpy(ts->pbuf.p, s, n * sizeof *s);
    ts->pbuf.n = n;
    if (pretok_run(t->pretoks, t->n_pretoks, &ts->pbuf, &ts->psp, &ts->pbuf2, &ts->psp2)) return CEMBED_ENOMEM;
    for (size_t k = 0; k < ts->psp.n; k++)
        if (model_word(t, ts, ts->pbuf.p + ts->psp.p[k].off, ts->psp.p[k].len, o)) return CEMBED_ENOMEM;
    return 0;
}

/* A raw section between non-normalized added tokens: normalize, split out
 * the normalized added tokens, encode the rest. */
static int encode_section(const tokenizer *t, tok_scratch *ts, const uint32_t *s, size_t n, uint32_t first,
                          tok_ids *o) {
    if (n == 0) return 0;
    int cut = 0;
    if (norm_run(t->norms, t->n_norms, s, n, &ts->norm, &ts->tmp, &ts->tmp2, &cut)) return CEMBED_ENOMEM;
    first = first && !cut;
    if (!t->norm_set) return encode_piece(t, ts, ts->norm.p, ts->norm.n, first, o);
    if (added_split(t->norm_set, t->added, ts->norm.p, ts->norm.n, &ts->sub)) return CEMBED_ENOMEM;
    for (size_t k = 0; k < ts->sub.n; k++) {
        span sp = ts->sub.p[k];
        int rc = sp.first ? push_id(o, t->added[sp.first - 1].id)
                          : encode_piece(t, ts, ts->norm.p + sp.off, sp.len, first && sp.off == 0, o);
        if (rc) return CEMBED_ENOMEM;
    }
    return 0;
}

/* The ids of one text, without special tokens, into o. */
static int encode_content(const tokenizer *t, tok_scratch *ts, const char *text, size_t len, tok_ids *o) {
    o->n = 0;
    if (u32_reserve(&ts->raw, len + 1)) return CEMBED_ENOMEM;
    size_t n = utf8_decode(text, len, ts->raw.p);
    const uint32_t *s = ts->raw.p;
    if (!t->raw_set) return encode_section(t, ts, s, n, 1, o);
    if (added_split(t->raw_set, t->added, s, n, &ts->sec)) return CEMBED_ENOMEM;
    for (size_t k = 0; k < ts->sec.n; k++) {
        span sp = ts->sec.p[k];
        int rc = sp.first ? push_id(o, t->added[sp.first - 1].id)
                          : encode_section(t, ts, s + sp.off, sp.len, sp.off == 0, o);
        if (rc) return CEMBED_ENOMEM;
    }
    return 0;
}

static int reserve_ids(tok_ids *o, size_t n) {
    if (o->cap >= n) return 0;
    int32_t *p = base_realloc(o->ids, n * sizeof *p);
    if (!p) return CEMBED_ENOMEM;
    o->ids = p;
    o->cap = n;
    return 0;
}

/* Writes template p with contents a (b for pairs) cut to na (nb) ids, the
 * first ids (right truncation) or the last (left), into o. */
static int assemble(const tokenizer *t, const tpl *p, const tok_ids *a, size_t na, const tok_ids *b, size_t nb,
                    int left, tok_ids *o) {
    if (reserve_ids(o, na + nb + p->n_special + 1)) return CEMBED_ENOMEM;
    o->n = 0;
    o->type1_from = SIZE_MAX;
    for (size_t i = 0; i < p->n; i++) {
        const tpl_item *it = &p->items[i];
        if (it->type == 1 && o->type1_from == SIZE_MAX) o->type1_from = o->n;
        if (it->seq < 0) {
            memcpy(o->ids + o->n, t->tpl_ids + it->off, it->n * sizeof *o->ids);
            o->n += it->n;
            continue;
        }
        const tok_ids *c = it->seq == 0 ? a : b;
        size_t keep = it->seq == 0 ? na : nb;
        if (keep) memcpy(o->ids + o->n, c->ids + (left ? c->n - keep : 0), keep * sizeof *o->ids);
        o->n += keep;
    }
    if (o->type1_from == SIZE_MAX) o->type1_from = o->n;
    return 0;
}

static void shrink(tok_ids *o) {
    if (o->cap > o->n && o->n) { /* keep only what is used: callers hold many (a server request, thousands) */
        int32_t *p = base_realloc(o->ids, o->n * sizeof *p);
        if (p) o->ids = p, o->cap = o->n;
    }
}

int tok_encode_ex(const tokenizer *t, const char *text, size_t len, int max_len, int left, tok_ids *o) {
    tok_scratch *ts = get_scratch();
    if (!ts || encode_content(t, ts, text, len, &ts->a)) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    size_t ns = t->single.n_special, budget = max_len > (int)ns ? (size_t)max_len - ns : 0;
    size_t na = ts->a.n < budget ? ts->a.n : budget;
    if (assemble(t, &t->single, &ts->a, na, NULL, 0, left, o)) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    o->n_full = ts->a.n + ns;
    o->truncated = na < ts->a.n;
    shrink(o);
    return 0;
}

int tok_encode(const tokenizer *t, const char *text, size_t len, int max_len, tok_ids *o) {
    CE_ASSERT(max_len >= 2);
    return tok_encode_ex(t, text, len, max_len, 0, o);
}

/* HF's TruncationStrategy::LongestFirst: the lengths both sequences keep. */
static void longest_first(size_t max, size_t *n1, size_t *n2) {
    if (*n1 + *n2 <= max) return;
    size_t a = *n1, b = *n2;
    int swap = a > b;
    if (swap) a = *n2, b = *n1;
    b = a > max ? a : (a > max - a ? a : max - a);
    if (a + b > max) {
        a = max / 2;
        b = a + max % 2;
    }
    *n1 = swap ? b : a;
    *n2 = swap ? a : b;
}

int tok_encode_pair(const tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, int max_len,
                    tok_ids *o) {
    tok_scratch *ts = get_scratch();
    if (!ts || encode_content(t, ts, a, alen, &ts->a) || encode_content(t, ts, b, blen, &ts->b))
        return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    size_t ns = t->pair.n_special, budget = max_len > (int)ns ? (size_t)max_len - ns : 0;
    size_t na = ts->a.n, nb = ts->b.n;
    longest_first(budget, &na, &nb);
    if (na > ts->a.n) na = ts->a.n;
    if (nb > ts->b.n) nb = ts->b.n;
    if (assemble(t, &t->pair, &ts->a, na, &ts->b, nb, 0, o)) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    o->n_full = ts->a.n + ts->b.n + ns;
    o->truncated = na < ts->a.n || nb < ts->b.n;
    shrink(o);
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
