/* Request bodies; the shapes are in request.h. Parsed with jansson from
 * (ptr, len) after a nesting-depth check, so a deep body costs nothing. */
#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "json/json.h"
#include "json/request.h"

/* Refuses with code (EFORMAT, ELIMIT or ENOMEM), kept in r->error; the message is built here, once. */
static int fail(request *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(request *r, int code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->error = code;
    return base_err(code, "%s", msg);
}

static char *dump(json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return s;
}

static int set_text(request *r, req_item *it, json_t *s, const req_limits *lim, const char *field) {
    size_t n = json_string_length(s);
    if (n > lim->max_text_bytes)
        return fail(r, CEMBED_ELIMIT, "%s: %zu bytes, over the limit of %zu", field, n, lim->max_text_bytes);
    it->text = base_strndup(json_string_value(s), n);
    if (!it->text) return fail(r, CEMBED_ENOMEM, "out of memory");
    it->text_len = n;
    return 0;
}

static int alloc_items(request *r, size_t n, const req_limits *lim, const char *field) {
    if (n == 0) return fail(r, CEMBED_EFORMAT, "%s: the list is empty", field);
    if (n > lim->max_items)
        return fail(r, CEMBED_ELIMIT, "%s: %zu items, over the limit of %zu per request", field, n, lim->max_items);
    r->items = base_calloc(n, sizeof *r->items);
    if (!r->items) return fail(r, CEMBED_ENOMEM, "out of memory");
    r->n_items = n;
    return 0;
}

static int get_bool(request *r, json_t *o, const char *key, int def, int *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return fail(r, CEMBED_EFORMAT, "\"%s\" must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* A string or a list of strings (TEI "inputs", OpenAI "input" text form). */
static int parse_string_list(request *r, json_t *v, const req_limits *lim, const char *field) {
    char name[64];
    if (json_is_string(v)) {
        if (alloc_items(r, 1, lim, field)) return -1;
        return set_text(r, &r->items[0], v, lim, field);
    }
    if (!json_is_array(v)) return fail(r, CEMBED_EFORMAT, "\"%s\" must be a string or a list of strings", field);
    if (alloc_items(r, json_array_size(v), lim, field)) return -1;
    for (size_t i = 0; i < r->n_items; i++) {
        json_t *s = json_array_get(v, i);
        snprintf(name, sizeof name, "%s[%zu]", field, i);
        if (!json_is_string(s)) return fail(r, CEMBED_EFORMAT, "%s must be a string", name);
        if (set_text(r, &r->items[i], s, lim, name)) return -1;
    }
    return 0;
}

static int parse_ids(request *r, req_item *it, json_t *a, const char *field) {
    size_t n = json_array_size(a);
    if (n == 0) return fail(r, CEMBED_EFORMAT, "%s: the token list is empty", field);
    it->ids = base_malloc(n * sizeof *it->ids);
    if (!it->ids) return fail(r, CEMBED_ENOMEM, "out of memory");
    it->n_ids = n;   /* counted as held from now on, also when a later id is refused */
    for (size_t k = 0; k < n; k++) {
        json_t *x = json_array_get(a, k);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT32_MAX)
            return fail(r, CEMBED_EFORMAT, "%s[%zu] must be a non-negative token id", field, k);
        it->ids[k] = (int32_t)json_integer_value(x);
    }
    return 0;
}

/* A string field of at most max bytes into *out (NULL when absent or null). */
static int get_string(request *r, json_t *o, const char *key, size_t max, char **out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return fail(r, CEMBED_EFORMAT, "\"%s\" must be a string", key);
    if (json_string_length(v) > max)
        return fail(r, CEMBED_EFORMAT, "\"%s\" has %zu bytes, over the limit of %zu", key, json_string_length(v), max);
    if (!(*out = base_strndup(json_string_value(v), json_string_length(v)))) return fail(r, CEMBED_ENOMEM, "out of memory");
    return 0;
}

/* "dimensions", the prompt and the truncation side: the same in every form. */
static int parse_common(request *r, json_t *o) {
    json_t *dims = json_object_get(o, "dimensions"), *dir = json_object_get(o, "truncation_direction");
    if (dims && !json_is_null(dims)) {
        if (!json_is_integer(dims) || json_integer_value(dims) < 1 || json_integer_value(dims) > 65536) {
            char v[64] = "not an integer";
            if (json_is_integer(dims)) snprintf(v, sizeof v, "%lld", (long long)json_integer_value(dims));
            return fail(r, CEMBED_EFORMAT,
                        "\"dimensions\" is %s: it must be an integer from 1 to the model's dimensions (at most 65536)", v);
        }
        r->dimensions = (int)json_integer_value(dims);
    }
    if (dir && !json_is_null(dir)) {
        const char *d = json_string_value(dir);
        if (!d || (strcasecmp(d, "right") != 0 && strcasecmp(d, "left") != 0))
            return fail(r, CEMBED_EFORMAT, "\"truncation_direction\" must be \"right\" or \"left\"");
        r->truncate_left = strcasecmp(d, "left") == 0;
    }
    if (get_string(r, o, "prompt_name", 256, &r->prompt_name) || get_string(r, o, "prompt", 4096, &r->prompt) ||
        get_string(r, o, "model", 512, &r->model))
        return -1;
    if (r->prompt_name && r->prompt)
        return fail(r, CEMBED_EFORMAT, "\"prompt\" and \"prompt_name\" exclude each other: send one");
    return 0;
}

static int parse_embed(request *r, json_t *o, const req_limits *lim) {
    json_t *bid = json_object_get(o, "batch_id"), *chunks = json_object_get(o, "chunks"),
           *inputs = json_object_get(o, "inputs");
    if (bid && !json_is_null(bid)) {
        if (!json_is_string(bid) && !json_is_integer(bid))
            return fail(r, CEMBED_EFORMAT, "\"batch_id\" must be a string or an integer");
        if (!(r->batch_id_json = dump(bid))) return fail(r, CEMBED_ENOMEM, "out of memory");
        /* the value itself: a string's bytes (escapes decoded), an integer's digits */
        r->batch_id_is_string = json_is_string(bid);
        r->batch_id_len = r->batch_id_is_string ? json_string_length(bid) : strlen(r->batch_id_json);
        r->batch_id = base_strndup(r->batch_id_is_string ? json_string_value(bid) : r->batch_id_json, r->batch_id_len);
        if (!r->batch_id) return fail(r, CEMBED_ENOMEM, "out of memory");
    }
    if (get_bool(r, o, "normalize", -1, &r->normalize) || get_bool(r, o, "truncate", 1, &r->truncate) ||
        get_bool(r, o, "stream", 0, &r->stream) || parse_common(r, o))
        return -1;
    if (!chunks && inputs) {
        r->tei = 1;
        return parse_string_list(r, inputs, lim, "inputs");
    }
    if (!chunks) return fail(r, CEMBED_EFORMAT, "missing \"chunks\" (or \"inputs\")");
    if (!json_is_array(chunks)) return fail(r, CEMBED_EFORMAT, "\"chunks\" must be a list");
    if (alloc_items(r, json_array_size(chunks), lim, "chunks")) return -1;
    char name[64];
    for (size_t i = 0; i < r->n_items; i++) {
        json_t *c = json_array_get(chunks, i);
        req_item *it = &r->items[i];
        snprintf(name, sizeof name, "chunks[%zu]", i);
        if (json_is_string(c)) {
            if (set_text(r, it, c, lim, name)) return -1;
            continue;
        }
        if (!json_is_object(c)) return fail(r, CEMBED_EFORMAT, "%s must be a string or an object", name);
        json_t *text = json_object_get(c, "text"), *id = json_object_get(c, "id"), *meta = json_object_get(c, "metadata");
        if (!text) text = json_object_get(c, "content");
        if (!text) return fail(r, CEMBED_EFORMAT, "%s: missing \"text\" (or \"content\")", name);
        if (!json_is_string(text)) return fail(r, CEMBED_EFORMAT, "%s.text must be a string", name);
        if (id && !json_is_null(id)) {
            if (!json_is_string(id) && !json_is_integer(id))
                return fail(r, CEMBED_EFORMAT, "%s.id must be a string or an integer", name);
            if (!(it->id_json = dump(id))) return fail(r, CEMBED_ENOMEM, "out of memory");
        }
        if (meta && !json_is_null(meta) && !(it->metadata_json = dump(meta)))
            return fail(r, CEMBED_ENOMEM, "out of memory");
        if (set_text(r, it, text, lim, name)) return -1;
    }
    return 0;
}

/* {"inputs": {"source_sentence", "sentences"}}, or top = 1: the two at the top of o. */
static int parse_similarity(request *r, json_t *o, const req_limits *lim, int top) {
    if (get_bool(r, o, "truncate", 1, &r->truncate) || parse_common(r, o)) return -1;
    json_t *in = top ? o : json_object_get(o, "inputs");
    if (!json_is_object(in))
        return fail(r, CEMBED_EFORMAT, "\"inputs\" must be {\"source_sentence\": STRING, \"sentences\": [STRING, ...]}");
    const char *at = top ? "" : "inputs.";
    json_t *src = json_object_get(in, "source_sentence"), *list = json_object_get(in, "sentences");
    char name[64];
    if (!json_is_string(src)) return fail(r, CEMBED_EFORMAT, "%ssource_sentence must be a string", at);
    if (!json_is_array(list)) return fail(r, CEMBED_EFORMAT, "%ssentences must be a list of strings", at);
    if (json_array_size(list) == 0) return fail(r, CEMBED_EFORMAT, "%ssentences: the list is empty", at);
    if (json_array_size(list) >= lim->max_items)
        return fail(r, CEMBED_ELIMIT, "%ssentences: %zu items, over the limit of %zu per request", at,
                    json_array_size(list), lim->max_items - 1);
    snprintf(name, sizeof name, "%ssentences", at);
    if (alloc_items(r, json_array_size(list) + 1, lim, name)) return -1;
    snprintf(name, sizeof name, "%ssource_sentence", at);
    if (set_text(r, &r->items[0], src, lim, name)) return -1;
    for (size_t i = 1; i < r->n_items; i++) {
        json_t *s = json_array_get(list, i - 1);
        snprintf(name, sizeof name, "%ssentences[%zu]", at, i - 1);
        if (!json_is_string(s)) return fail(r, CEMBED_EFORMAT, "%s must be a string", name);
        if (set_text(r, &r->items[i], s, lim, name)) return -1;
    }
    return 0;
}

/* /rerank and /v1/rerank: a query and its documents (see request.h). */
static int parse_rerank(request *r, json_t *o, const req_limits *lim) {
    json_t *q = json_object_get(o, "query"), *texts = json_object_get(o, "texts"), *docs = json_object_get(o, "documents");
    json_t *top = json_object_get(o, "top_n");
    if (get_bool(r, o, "truncate", 1, &r->truncate) || parse_common(r, o) || get_bool(r, o, "raw_scores", 0, &r->raw_scores))
        return -1;
    if (!json_is_string(q)) return fail(r, CEMBED_EFORMAT, "\"query\" must be a string");
    if (json_string_length(q) > lim->max_text_bytes)
        return fail(r, CEMBED_ELIMIT, "query: %zu bytes, over the limit of %zu", json_string_length(q),
                    lim->max_text_bytes);
    if (!(r->query = base_strndup(json_string_value(q), json_string_length(q))))
        return fail(r, CEMBED_ENOMEM, "out of memory");
    r->query_len = json_string_length(q);
    r->rerank_v1 = texts == NULL && docs != NULL;
    if (get_bool(r, o, r->rerank_v1 ? "return_documents" : "return_text", 0, &r->return_text)) return -1;
    if (top && !json_is_null(top)) {
        if (!json_is_integer(top) || json_integer_value(top) < 1)
            return fail(r, CEMBED_EFORMAT, "\"top_n\" must be an integer of at least 1");
        r->top_n = (size_t)json_integer_value(top);
    }
    const char *field = r->rerank_v1 ? "documents" : "texts";
    json_t *list = r->rerank_v1 ? docs : texts;
    if (!list) return fail(r, CEMBED_EFORMAT, "missing \"texts\" (or \"documents\")");
    if (!json_is_array(list)) return fail(r, CEMBED_EFORMAT, "\"%s\" must be a list", field);
    if (alloc_items(r, json_array_size(list), lim, field)) return -1;
    char name[64];
    for (size_t i = 0; i < r->n_items; i++) {
        json_t *d = json_array_get(list, i);
        snprintf(name, sizeof name, "%s[%zu]", field, i);
        if (json_is_object(d) && r->rerank_v1) d = json_object_get(d, "text");
        if (!json_is_string(d))
            return fail(r, CEMBED_EFORMAT, "%s must be a string%s", name, r->rerank_v1 ? " or {\"text\": STRING}" : "");
        if (set_text(r, &r->items[i], d, lim, name)) return -1;
    }
    return 0;
}

/* POST /: what the body asks for (see req_kind). */
static int parse_auto(request *r, json_t *o, const req_limits *lim) {
    json_t *in = json_object_get(o, "inputs");
    if (json_object_get(o, "query")) {
        r->kind = REQ_RERANK;
        return parse_rerank(r, o, lim);
    }
    const int top = json_object_get(o, "source_sentence") || json_object_get(o, "sentences");
    if (top || json_is_object(in)) {
        r->kind = REQ_SIMILARITY;
        return parse_similarity(r, o, lim, top);
    }
    r->kind = REQ_EMBED;
    return parse_embed(r, o, lim);
}

static int parse_openai(request *r, json_t *o, const req_limits *lim) {
    json_t *in = json_object_get(o, "input"), *fmt = json_object_get(o, "encoding_format");
    if (parse_common(r, o)) return -1;
    if (fmt && !json_is_null(fmt)) {
        const char *f = json_string_value(fmt);
        if (!f || (strcmp(f, "float") != 0 && strcmp(f, "base64") != 0))
            return fail(r, CEMBED_EFORMAT, "\"encoding_format\" must be \"float\" or \"base64\"");
        r->base64 = strcmp(f, "base64") == 0;
    }
    if (!in) return fail(r, CEMBED_EFORMAT, "missing \"input\"");
    /* token ids: [INT, ...] (one input) or [[INT, ...], ...] */
    if (json_is_array(in) && json_array_size(in) > 0 && json_is_integer(json_array_get(in, 0))) {
        if (alloc_items(r, 1, lim, "input")) return -1;
        return parse_ids(r, &r->items[0], in, "input");
    }
    if (json_is_array(in) && json_array_size(in) > 0 && json_is_array(json_array_get(in, 0))) {
        if (alloc_items(r, json_array_size(in), lim, "input")) return -1;
        char name[64];
        for (size_t i = 0; i < r->n_items; i++) {
            snprintf(name, sizeof name, "input[%zu]", i);
            json_t *a = json_array_get(in, i);
            if (!json_is_array(a)) return fail(r, CEMBED_EFORMAT, "%s must be a list of token ids", name);
            if (parse_ids(r, &r->items[i], a, name)) return -1;
        }
        return 0;
    }
    return parse_string_list(r, in, lim, "input");
}

int request_parse(req_kind kind, const char *body, size_t len, const req_limits *lim, request *r) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->normalize = -1;
    r->truncate = 1;
    if (len == 0) return fail(r, CEMBED_EFORMAT, "the request body is empty (a JSON object is needed)");
    if (!json_depth_within(body, len, lim->max_depth))
        return fail(r, CEMBED_EFORMAT, "JSON nested deeper than the limit of %d levels", lim->max_depth);
    json_error_t e;
    const size_t failures = base_alloc_failures();
    json_t *o = json_loadb(body, len, 0, &e);
    if (!o && (json_error_code(&e) == json_error_out_of_memory || base_alloc_failures() != failures))
        return fail(r, CEMBED_ENOMEM, "out of memory parsing the request; retry later");
    if (!o && json_error_code(&e) == json_error_null_character)
        return fail(r, CEMBED_EFORMAT,
                    "malformed JSON: a string holds \\u0000 (a NUL character), which text may not contain "
                    "(line %d, column %d)", e.line, e.column);
    if (!o) return fail(r, CEMBED_EFORMAT, "malformed JSON: %s (line %d, column %d)", e.text, e.line, e.column);
    int rc = 0;
    if (!json_is_object(o)) {
        rc = fail(r, CEMBED_EFORMAT, "the request body must be a JSON object");
    } else if (kind == REQ_EMBED) {
        rc = parse_embed(r, o, lim);
    } else if (kind == REQ_SIMILARITY) {
        rc = parse_similarity(r, o, lim, 0);
    } else if (kind == REQ_AUTO) {
        rc = parse_auto(r, o, lim);
    } else if (kind == REQ_OPENAI) {
        rc = parse_openai(r, o, lim);
    } else if (kind == REQ_RERANK) {
        rc = parse_rerank(r, o, lim);
    } else {
        json_t *in = json_object_get(o, "inputs");
        const char *field = "inputs";
        if (!in) in = json_object_get(o, "input"), field = "input";
        if (!in) in = json_object_get(o, "text"), field = "text";
        int add_special = 1;
        rc = parse_common(r, o) || get_bool(r, o, "add_special_tokens", 1, &add_special);
        r->skip_special = !add_special;
        if (!rc) rc = in ? parse_string_list(r, in, lim, field) : fail(r, CEMBED_EFORMAT, "missing \"inputs\"");
    }
    json_decref(o);
    return rc ? (r->error ? r->error : CEMBED_EFORMAT) : 0;
}

void request_free(request *r) {
    for (size_t i = 0; i < r->n_items; i++) {
        base_free(r->items[i].id_json);
        base_free(r->items[i].metadata_json);
        base_free(r->items[i].text);
        base_free(r->items[i].ids);
    }
    base_free(r->items);
    base_free(r->batch_id_json);
    base_free(r->batch_id);
    base_free(r->prompt_name);
    base_free(r->prompt);
    base_free(r->model);
    base_free(r->query);
    memset(r, 0, sizeof *r);
}

/* A heap block costs its size rounded up to 16 plus 8 bytes of header;
 * BLOCK bounds that overhead. */
#define BLOCK 32
/* Measured with the counted allocator (tests/unit/test_json.c) at about
 * 150 bytes per value at worst; a quarter more for safety. */
#define PARSE_PER_VALUE 192

size_t request_parse_bound(const char *body, size_t len) {
    json_shape sh;
    json_scan(body, len, &sh);
    /* per value: jansson's json_t (string, integer, array or object), an
     * object's hash pair with its key or an array slot with growth, and a
     * req_item; strings: the tree's copy and ours (texts, or the dumps of
     * id and metadata, which are no larger than their source), plus the
     * lexer's buffer and a dump's growth, each at most twice the longest
     * string or the non-string bytes */
    const size_t per_value = PARSE_PER_VALUE;
    return sh.values * per_value + 2 * sh.string_bytes + 4 * sh.longest_string +
           2 * (len - CE_MIN(len, sh.string_bytes)) + 64 * 1024;
}

size_t request_held_bytes(const request *r) {
    size_t n = r->n_items * sizeof(req_item) + BLOCK;
    if (r->batch_id_json) n += strlen(r->batch_id_json) + r->batch_id_len + 2 * BLOCK;
    if (r->prompt_name) n += strlen(r->prompt_name) + BLOCK;
    if (r->prompt) n += strlen(r->prompt) + BLOCK;
    if (r->model) n += strlen(r->model) + BLOCK;
    if (r->query) n += r->query_len + BLOCK;
    for (size_t i = 0; i < r->n_items; i++) {
        const req_item *it = &r->items[i];
        if (it->id_json) n += strlen(it->id_json) + BLOCK;
        if (it->metadata_json) n += strlen(it->metadata_json) + BLOCK;
        if (it->text) n += it->text_len + BLOCK;
        if (it->ids) n += it->n_ids * sizeof(int32_t) + BLOCK;
    }
    return n;
}
