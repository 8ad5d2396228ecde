/* The normalizer, pre_tokenizer and post_processor objects of
 * tokenizer.json, read into the step lists and templates of
 * tok_internal.h. Sequences are flattened; a type this tokenizer does not
 * implement is refused with EMODEL naming it, so a model never silently
 * tokenizes differently from Hugging Face's tokenizers. */
#include <jansson.h>
#include <string.h>

#include "regex.h"
#include "tok_internal.h"

#define MAX_STEPS 64

static int to_cps(const char *s, size_t len, uint32_t **out, size_t *n) {
    *out = base_malloc((len + 1) * sizeof **out);
    if (!*out) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory");
    *n = utf8_decode(s, len, *out);
    return 0;
}

static const char *type_of(json_t *j) { return json_string_value(json_object_get(j, "type")); }

static int jbool(json_t *o, const char *key, int dflt) {
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A "pattern": {"String": s} or {"Regex": r}: sets *re or *pat. */
static int load_pattern(json_t *pat, const char *where, tok_re **re, uint32_t **cps, size_t *n) {
    json_t *s = json_object_get(pat, "String"), *r = json_object_get(pat, "Regex");
    if (json_is_string(s)) return to_cps(json_string_value(s), json_string_length(s), cps, n);
    if (json_is_string(r)) {
        int rc = tok_re_compile(json_string_value(r), json_string_length(r), re);
        if (rc) base_err_prefix(rc, "tokenizer.json: %s pattern", where);
        return rc;
    }
    return base_err(CEMBED_EFORMAT, "tokenizer.json: %s pattern must be {\"String\"} or {\"Regex\"}", where);
}

static norm_step *add_norm(tokenizer *t) {
    if (t->n_norms == MAX_STEPS) return NULL;
    norm_step *p = base_realloc(t->norms, (t->n_norms + 1) * sizeof *p);
    if (!p) return NULL;
    t->norms = p;
    memset(&p[t->n_norms], 0, sizeof *p);
    return &p[t->n_norms++];
}

static int norm_one(tokenizer *t, json_t *j) {
    const char *type = type_of(j);
    if (!type) return base_err(CEMBED_EFORMAT, "tokenizer.json: a normalizer has no type");
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "normalizers"), *x;
        size_t i;
        if (!json_is_array(list)) return base_err(CEMBED_EFORMAT, "tokenizer.json: Sequence needs normalizers");
        json_array_foreach(list, i, x) {
            int rc = norm_one(t, x);
            if (rc) return rc;
        }
        return 0;
    }
    norm_step *st = add_norm(t);
    if (!st) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory or over %d normalizers", MAX_STEPS);
    static const struct { const char *name; int kind; } simple[] = {
        {"NFC", NS_NFC}, {"NFD", NS_NFD}, {"NFKC", NS_NFKC}, {"NFKD", NS_NFKD}, {"Lowercase", NS_LOWER},
        {"StripAccents", NS_STRIP_ACCENTS},
    };
    for (size_t k = 0; k < CE_ARRAY_LEN(simple); k++)
        if (strcmp(type, simple[k].name) == 0) return st->kind = simple[k].kind, 0;
    if (strcmp(type, "BertNormalizer") == 0) {
        st->kind = NS_BERT;
        st->bert.clean_text = jbool(j, "clean_text", 1);
        st->bert.handle_chinese_chars = jbool(j, "handle_chinese_chars", 1);
        st->bert.lowercase = jbool(j, "lowercase", 1);
        st->bert.strip_accents = jbool(j, "strip_accents", st->bert.lowercase);   /* null follows lowercase */
        return 0;
    }
    if (strcmp(type, "Strip") == 0) {
        st->kind = NS_STRIP;
        st->left = jbool(j, "strip_left", 1);
        st->right = jbool(j, "strip_right", 1);
        return 0;
    }
    if (strcmp(type, "Replace") == 0 || strcmp(type, "Prepend") == 0) {
        int prepend = type[0] == 'P';
        json_t *c = json_object_get(j, prepend ? "prepend" : "content");
        st->kind = prepend ? NS_PREPEND : NS_REPLACE;
        if (!json_is_string(c)) return base_err(CEMBED_EFORMAT, "tokenizer.json: %s needs a string", type);
        int rc = to_cps(json_string_value(c), json_string_length(c), &st->content, &st->content_n);
        if (rc || prepend) return rc;
        return load_pattern(json_object_get(j, "pattern"), "Replace", &st->re, &st->pat, &st->pat_n);
    }
    if (strcmp(type, "Precompiled") == 0) {
        json_t *m = json_object_get(j, "precompiled_charsmap");
        st->kind = NS_PRECOMPILED;
        if (json_is_null(m) || (json_is_string(m) && json_string_length(m) == 0)) {
            t->n_norms--;   /* no map: the identity */
            return 0;
        }
        if (!json_is_string(m)) return base_err(CEMBED_EFORMAT, "tokenizer.json: precompiled_charsmap must be a string");
        return precompiled_load(json_string_value(m), json_string_length(m), &st->pc);
    }
    t->n_norms--;
    return base_err(CEMBED_EMODEL, "tokenizer.json: normalizer %.40s is not supported", type);
}

int load_normalizer(tokenizer *t, json_t *j) {
    if (!j || json_is_null(j)) return 0;
    return norm_one(t, j);
}

static pretok_step *add_pretok(tokenizer *t) {
    if (t->n_pretoks == MAX_STEPS) return NULL;
    pretok_step *p = base_realloc(t->pretoks, (t->n_pretoks + 1) * sizeof *p);
    if (!p) return NULL;
    t->pretoks = p;
    memset(&p[t->n_pretoks], 0, sizeof *p);
    return &p[t->n_pretoks++];
}

static int behavior_of(json_t *j, int dflt, int *out) {
    const char *b = json_string_value(json_object_get(j, "behavior"));
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    *out = dflt;
    if (!b) return 0;
    for (int k = 0; k < 5; k++)
        if (strcmp(b, names[k]) == 0) return *out = k, 0;
    return base_err(CEMBED_EMODEL, "tokenizer.json: split behavior %.40s is not supported", b);
}

static int metaspace(pretok_step *st, json_t *j) {
    json_t *r = json_object_get(j, "replacement");
    const char *scheme = json_string_value(json_object_get(j, "prepend_scheme"));
    uint32_t cps[8];
    st->kind = PS_METASPACE;
    st->replacement = 0x2581;
    if (json_is_string(r)) {
        if (utf8_decode(json_string_value(r), json_string_length(r), cps) != 1 || json_string_length(r) > 4)
            return base_err(CEMBED_EFORMAT, "tokenizer.json: Metaspace replacement must be one character");
        st->replacement = cps[0];
    }
    st->split = jbool(j, "split", 1);
    if (scheme) {
        if (strcmp(scheme, "always") == 0) st->prepend_scheme = 0;
        else if (strcmp(scheme, "first") == 0) st->prepend_scheme = 1;
        else if (strcmp(scheme, "never") == 0) st->prepend_scheme = 2;
        else return base_err(CEMBED_EMODEL, "tokenizer.json: Metaspace prepend_scheme %.20s", scheme);
    } else {
        st->prepend_scheme = jbool(j, "add_prefix_space", 1) ? 0 : 2;
    }
    return 0;
}

static int pretok_one(tokenizer *t, json_t *j) {
    const char *type = type_of(j);
    if (!type) return base_err(CEMBED_EFORMAT, "tokenizer.json: a pre_tokenizer has no type");
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "pretokenizers"), *x;
        size_t i;
        if (!json_is_array(list)) return base_err(CEMBED_EFORMAT, "tokenizer.json: Sequence needs pretokenizers");
        json_array_foreach(list, i, x) {
            int rc = pretok_one(t, x);
            if (rc) return rc;
        }
        return 0;
    }
    pretok_step *st = add_pretok(t);
    if (!st) return base_err(CEMBED_ENOMEM, "tokenizer: out of memory or over %d pre-tokenizers", MAX_STEPS);
    if (strcmp(type, "BertPreTokenizer") == 0) return st->kind = PS_BERT, 0;
    if (strcmp(type, "WhitespaceSplit") == 0) return st->kind = PS_WSPLIT, 0;
    if (strcmp(type, "Punctuation") == 0) {
        st->kind = PS_PUNCT;
        return behavior_of(j, SB_ISOLATED, &st->behavior);
    }
    if (strcmp(type, "Digits") == 0) {
        st->kind = PS_DIGITS;
        st->individual_digits = jbool(j, "individual_digits", 0);
        return 0;
    }
    if (strcmp(type, "Metaspace") == 0) return metaspace(st, j);
    if (strcmp(type, "Whitespace") == 0) {
        static const char pat[] = "\\w+|[^\\w\\s]+";
        st->kind = PS_WHITESPACE;
        return tok_re_compile(pat, sizeof pat - 1, &st->re);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        st->kind = PS_BYTELEVEL;
        st->add_prefix_space = jbool(j, "add_prefix_space", 1);
        st->use_regex = jbool(j, "use_regex", 1);
        return st->use_regex ? tok_re_compile(tok_gpt2_pattern, strlen(tok_gpt2_pattern), &st->re) : 0;
    }
    if (strcmp(type, "Split") == 0) {
        st->kind = PS_SPLIT;
        st->invert = jbool(j, "invert", 0);
        int rc = behavior_of(j, SB_ISOLATED, &st->behavior);
        if (rc) return rc;
        return load_pattern(json_object_get(j, "pattern"), "Split", &st->re, &st->pat, &st->pat_n);
    }
    t->n_pretoks--;
    return base_err(CEMBED_EMODEL, "tokenizer.json: pre_tokenizer %.40s is not supported", type);
}

int load_pre_tokenizer(tokenizer *t, json_t *j) {
    if (!j || json_is_null(j)) return 0;
    return pretok_one(t, j);
}

/* ---- post-processors as templates ---- */

static int tpl_add(tokenizer *t, tpl *p, int seq, uint32_t type, const int32_t *ids, size_t n) {
    if (p->n == TPL_MAX_ITEMS || t->n_tpl_ids + n > TPL_MAX_IDS)
        return base_err(CEMBED_EMODEL, "tokenizer.json: post_processor template too long");
    tpl_item *it = &p->items[p->n++];
    it->seq = seq;
    it->type = type;
    it->off = (uint32_t)t->n_tpl_ids;
    it->n = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= t->v.n_ids)
            return base_err(CEMBED_EFORMAT, "tokenizer.json: post_processor id %d is outside the vocabulary", (int)ids[i]);
        t->tpl_ids[t->n_tpl_ids++] = ids[i];
    }
    p->n_special += n;
    return 0;
}

int tpl_set_bert(tokenizer *t, int32_t cls, int32_t sep, int roberta) {
    memset(&t->single, 0, sizeof t->single);
    memset(&t->pair, 0, sizeof t->pair);
    t->n_tpl_ids = 0;
    uint32_t b = roberta ? 0 : 1;
    if (tpl_add(t, &t->single, -1, 0, &cls, 1) || tpl_add(t, &t->single, 0, 0, NULL, 0) ||
        tpl_add(t, &t->single, -1, 0, &sep, 1) || tpl_add(t, &t->pair, -1, 0, &cls, 1) ||
        tpl_add(t, &t->pair, 0, 0, NULL, 0) || tpl_add(t, &t->pair, -1, 0, &sep, 1) ||
        (roberta && tpl_add(t, &t->pair, -1, 0, &sep, 1)) || tpl_add(t, &t->pair, 1, b, NULL, 0) ||
        tpl_add(t, &t->pair, -1, b, &sep, 1))
        return CEMBED_EFORMAT;
    return 0;
}

static int tpl_plain(tokenizer *t) {
    memset(&t->single, 0, sizeof t->single);
    memset(&t->pair, 0, sizeof t->pair);
    t->n_tpl_ids = 0;
    if (tpl_add(t, &t->single, 0, 0, NULL, 0) || tpl_add(t, &t->pair, 0, 0, NULL, 0) ||
        tpl_add(t, &t->pair, 1, 1, NULL, 0))
        return CEMBED_EFORMAT;
    return 0;
}

/* [name, id] of Bert/RobertaProcessing. */
static int named_id(json_t *pair, const char *what, int32_t *id) {
    json_t *v = json_array_get(pair, 1);
    if (!json_is_integer(v)) return base_err(CEMBED_EFORMAT, "tokenizer.json: post_processor %s needs [token, id]", what);
    *id = (int32_t)json_integer_value(v);
    return 0;
}

static int template_list(tokenizer *t, tpl *p, json_t *list, json_t *specials) {
    json_t *x;
    size_t i;
    if (!json_is_array(list)) return base_err(CEMBED_EFORMAT, "tokenizer.json: template must be an array");
    json_array_foreach(list, i, x) {
        json_t *sp = json_object_get(x, "SpecialToken"), *sq = json_object_get(x, "Sequence");
        json_t *o = sp ? sp : sq;
        json_t *tid = json_object_get(o, "type_id");
        const char *id = json_string_value(json_object_get(o, "id"));
        if (!o || !id || !json_is_integer(tid) || json_integer_value(tid) < 0 || json_integer_value(tid) > 255)
            return base_err(CEMBED_EFORMAT, "tokenizer.json: template piece %zu is malformed", i);
        uint32_t type = (uint32_t)json_integer_value(tid);
        int rc;
        if (sq) {
            if (strcmp(id, "A") && strcmp(id, "B")) return base_err(CEMBED_EFORMAT, "tokenizer.json: sequence %.8s", id);
            rc = tpl_add(t, p, id[0] == 'A' ? 0 : 1, type, NULL, 0);
        } else {
            json_t *ids = json_object_get(json_object_get(specials, id), "ids"), *v;
            int32_t buf32[TPL_MAX_IDS];
            size_t k, n = json_array_size(ids);
            if (!json_is_array(ids) || n > TPL_MAX_IDS)
                return base_err(CEMBED_EFORMAT, "tokenizer.json: template token %.40s has no ids", id);
            json_array_foreach(ids, k, v) buf32[k] = json_is_integer(v) ? (int32_t)json_integer_value(v) : -1;
            rc = tpl_add(t, p, -1, type, buf32, n);
        }
        if (rc) return rc;
    }
    return 0;
}

static int load_template(tokenizer *t, json_t *pp) {
    json_t *specials = json_object_get(pp, "special_tokens");
    memset(&t->single, 0, sizeof t->single);
    memset(&t->pair, 0, sizeof t->pair);
    t->n_tpl_ids = 0;
    int rc = template_list(t, &t->single, json_object_get(pp, "single"), specials);
    if (rc) return rc;
    json_t *pair = json_object_get(pp, "pair");
    if (pair && !json_is_null(pair)) return template_list(t, &t->pair, pair, specials);
    /* no pair template: the single one, then $B with type id 1 */
    t->pair = t->single;
    return tpl_add(t, &t->pair, 1, 1, NULL, 0);
}

/* Type ids must read 0...0 1...1 (tok_ids.type1_from describes them). */
static int check_types(const tpl *p, const char *which) {
    uint32_t prev = 0;
    int seen_a = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->items[i].type > 1 || p->items[i].type < prev)
            return base_err(CEMBED_EMODEL, "tokenizer.json: %s template type ids are not 0...0 1...1", which);
        prev = p->items[i].type;
        seen_a += p->items[i].seq == 0;
    }
    if (seen_a != 1) return base_err(CEMBED_EMODEL, "tokenizer.json: %s template must hold $A once", which);
    return 0;
}

static int post_one(tokenizer *t, json_t *pp, int *done) {
    const char *type = type_of(pp);
    int32_t cls = -1, sep = -1;
    int rc;
    if (!type) return base_err(CEMBED_EFORMAT, "tokenizer.json: post_processor has no type");
    if (strcmp(type, "ByteLevel") == 0) return 0;
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(pp, "processors"), *x;
        size_t i;
        json_array_foreach(list, i, x) if ((rc = post_one(t, x, done))) return rc;
        return 0;
    }
    if (*done) return base_err(CEMBED_EMODEL, "tokenizer.json: two post_processors that add tokens");
    *done = 1;
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
        if ((rc = named_id(json_object_get(pp, "cls"), "cls", &cls)) ||
            (rc = named_id(json_object_get(pp, "sep"), "sep", &sep)))
            return rc;
        return tpl_set_bert(t, cls, sep, type[0] == 'R');
    }
    if (strcmp(type, "TemplateProcessing") == 0) return load_template(t, pp);
    return base_err(CEMBED_EMODEL, "tokenizer.json: post_processor %.40s is not supported", type);
}

int load_post_processor(tokenizer *t, json_t *pp) {
    int done = 0, rc;
    if ((rc = tpl_plain(t))) return rc;
    if (pp && !json_is_null(pp) && (rc = post_one(t, pp, &done))) return rc;
    if ((rc = check_types(&t->single, "single")) || (rc = check_types(&t->pair, "pair"))) return rc;
    int seen_b = 0;
    for (size_t i = 0; i < t->pair.n; i++) seen_b += t->pair.items[i].seq == 1;
    if (seen_b != 1) return base_err(CEMBED_EMODEL, "tokenizer.json: pair template must hold $B once");
    return 0;
}
