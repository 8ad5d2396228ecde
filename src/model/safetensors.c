/* safetensors parser and F32 writer; the format is described in
 * safetensors.h. The header JSON is parsed with jansson from (ptr, len). */
#include <jansson.h>
#include <string.h>

#include "safetensors.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_N_DTYPES] = {
    [ST_F64] = {"F64", 8}, [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1}, [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1},
};

const char *st_dtype_name(st_dtype t) { return (unsigned)t < ST_N_DTYPES ? dtypes[t].name : "?"; }
size_t st_dtype_size(st_dtype t) { return (unsigned)t < ST_N_DTYPES ? dtypes[t].size : 0; }

void st_free(st_file *f) {
    if (!f) return;
    base_free(f->tensors);
    base_free(f->names);
    *f = (st_file){0};
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

static int cmp_begin(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* Reads a JSON integer that must be a non-negative exact value. */
static int json_uint(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -1;
    *out = (uint64_t)x;
    return 0;
}

static int parse_entry(const char *name, json_t *v, const uint8_t *base, size_t data_len,
                       st_tensor *t) {
    if (!json_is_object(v)) return base_err(CEMBED_EFORMAT, "tensor \"%s\": not an object", name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd)) return base_err(CEMBED_EFORMAT, "tensor \"%s\": missing dtype", name);
    t->dtype = ST_N_DTYPES;
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (strcmp(json_string_value(jd), dtypes[i].name) == 0) t->dtype = (st_dtype)i;
    if (t->dtype == ST_N_DTYPES)
        return base_err(CEMBED_EFORMAT, "tensor \"%s\": unknown dtype \"%.32s\"", name,
                        json_string_value(jd));
    if (!json_is_array(js)) return base_err(CEMBED_EFORMAT, "tensor \"%s\": missing shape", name);
    if (json_array_size(js) > ST_MAX_DIMS)
        return base_err(CEMBED_EFORMAT, "tensor \"%s\": %zu dimensions, the limit is %d", name,
                        json_array_size(js), ST_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    size_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (json_uint(json_array_get(js, (size_t)i), &d) != 0 || d > (uint64_t)INT64_MAX)
            return base_err(CEMBED_EFORMAT, "tensor \"%s\": shape[%d] is not a non-negative integer",
                            name, i);
        t->shape[i] = (int64_t)d;
        if (base_mul(numel, (size_t)d, &numel))
            return base_err(CEMBED_EFORMAT, "tensor \"%s\": shape overflows", name);
    }
    t->numel = numel;
    uint64_t b, e;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || json_uint(json_array_get(jo, 0), &b) ||
        json_uint(json_array_get(jo, 1), &e))
        return base_err(CEMBED_EFORMAT, "tensor \"%s\": data_offsets must be [begin, end]", name);
    if (b > e || e > data_len)
        return base_err(CEMBED_EFORMAT,
                        "tensor \"%s\": data_offsets [%llu, %llu] outside the data (%zu bytes)",
                        name, (unsigned long long)b, (unsigned long long)e, data_len);
    size_t want;
    if (base_mul(numel, dtypes[t->dtype].size, &want) || want != e - b)
        return base_err(CEMBED_EFORMAT,
                        "tensor \"%s\": %llu bytes for shape of %zu %s elements (want %zu)", name,
                        (unsigned long long)(e - b), numel, dtypes[t->dtype].name, want);
    t->data = base + b;
    t->nbytes = (size_t)(e - b);
    return 0;
}

int st_parse(const uint8_t *data, size_t len, st_file *out) {
    *out = (st_file){0};
    if (len < 8) return base_err(CEMBED_EFORMAT, "file of %zu bytes is too short for a header", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    if (hlen < 2 || hlen > len - 8 || hlen > ST_MAX_HEADER)
        return base_err(CEMBED_EFORMAT, "header length %llu does not fit a file of %zu bytes",
                        (unsigned long long)hlen, len);
    const uint8_t *base = data + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return base_err(CEMBED_EFORMAT, "header is not valid JSON: %s (at byte %d)", jerr.text,
                               jerr.position);
    int rc = CEMBED_EFORMAT;
    st_tensor **order = NULL;
    if (!json_is_object(root)) {
        base_err(rc, "header is not a JSON object");
        goto fail;
    }
    size_t n = 0, names_len = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue;
        n++;
        names_len += strlen(key) + 1;
    }
    out->tensors = base_calloc(n ? n : 1, sizeof *out->tensors);
    out->names = base_malloc(names_len ? names_len : 1);
    order = base_calloc(n ? n : 1, sizeof *order);
    if (!out->tensors || !out->names || !order) {
        rc = base_err(CEMBED_ENOMEM, "safetensors header: out of memory");
        goto fail;
    }
    char *np = out->names;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                base_err(rc, "__metadata__ is not an object");
                goto fail;
            }
            continue;
        }
        st_tensor *t = &out->tensors[out->n];
        if (parse_entry(key, v, base, data_len, t) != 0) goto fail;
        size_t kl = strlen(key) + 1;
        memcpy(np, key, kl);
        t->name = np;
        np += kl;
        order[out->n] = t;
        out->n++;
    }
    /* no two non-empty ranges may overlap */
    qsort(order, out->n, sizeof *order, cmp_begin);
    for (size_t i = 1; i < out->n; i++) {
        const st_tensor *a = order[i - 1], *b = order[i];
        if (a->nbytes && b->nbytes && a->data + a->nbytes > b->data) {
            base_err(rc, "tensors \"%s\" and \"%s\" overlap", a->name, b->name);
            goto fail;
        }
    }
    base_free(order);
    json_decref(root);
    return 0;
fail:
    base_free(order);
    json_decref(root);
    st_free(out);
    return rc;
}

int st_write_f32(const char *path, size_t n, const char *const *names, const int *ndims,
                 const int64_t (*dims)[ST_MAX_DIMS], const float *const *data) {
    buf h = {0}, all = {0};
    int rc = CEMBED_ENOMEM;
    size_t offset = 0;
    if (buf_append(&h, "{\"__metadata__\":{\"format\":\"pt\"}", 31)) goto fail;
    for (size_t i = 0; i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < ndims[i]; d++) numel *= (size_t)dims[i][d];
        if (buf_printf(&h, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", names[i])) goto fail;
        for (int d = 0; d < ndims[i]; d++)
            if (buf_printf(&h, "%s%lld", d ? "," : "", (long long)dims[i][d])) goto fail;
        if (buf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", offset, offset + numel * 4)) goto fail;
        offset += numel * 4;
    }
    if (buf_append(&h, "}", 1)) goto fail;
    while (h.len % 8) /* pad so the data buffer is 8-aligned */
        if (buf_append(&h, " ", 1)) goto fail;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    if (buf_reserve(&all, 8 + h.len + offset + 1) || buf_append(&all, len8, 8) ||
        buf_append(&all, h.ptr, h.len))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < ndims[i]; d++) numel *= (size_t)dims[i][d];
        if (buf_append(&all, data[i], numel * 4)) goto fail;
    }
    rc = file_write_all(path, all.ptr, all.len);
    buf_free(&h);
    buf_free(&all);
    return rc;
fail:
    buf_free(&h);
    buf_free(&all);
    return base_err(rc, "%s: out of memory", path);
}
