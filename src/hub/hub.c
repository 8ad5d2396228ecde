/* The Hugging Face Hub client; see hub.h. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub/curl_lib.h"
#include "hub/hub.h"
#include "model/model.h"

/* ---- options ---- */

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int truthy(const char *v) {
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "on") == 0 || strcasecmp(v, "yes") == 0 ||
                 strcasecmp(v, "true") == 0);
}

/* url as it may be shown: a password in it (scheme://user:password@host)
 * becomes "***". */
static void shown_url(const char *url, char *out, size_t n) {
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *end = host + strcspn(host, "/?#");
    const char *at = NULL;
    for (const char *p = host; p < end; p++)
        if (*p == '@') at = p;
    const char *colon = at ? memchr(host, ':', (size_t)(at - host)) : NULL;
    if (!colon) {
        snprintf(out, n, "%s", url);
        return;
    }
    const size_t keep = CE_MIN((size_t)(colon - url), n - 1), tail = strlen(at);
    memcpy(out, url, keep);   /* scheme://user, then ":***", then @host... as room allows */
    size_t k = keep;
    for (const char *p = ":***"; *p && k + 1 < n; p++) out[k++] = *p;
    const size_t t = CE_MIN(tail, n - 1 - k);
    memcpy(out + k, at, t);
    out[k + t] = 0;
}

int hub_opts_from_env(hub_opts *o) {
    memset(o, 0, sizeof *o);
    const char *ep = env("HF_ENDPOINT");
    snprintf(o->endpoint, sizeof o->endpoint, "%s", ep ? ep : "https://huggingface.co");
    for (size_t n = strlen(o->endpoint); n > 0 && o->endpoint[n - 1] == '/'; n--) o->endpoint[n - 1] = 0;
    shown_url(o->endpoint, o->shown, sizeof o->shown);
    if (strncmp(o->endpoint, "http://", 7) != 0 && strncmp(o->endpoint, "https://", 8) != 0)
        return base_err(CEMBED_EINVAL, "HF_ENDPOINT=%s: must be an http:// or https:// URL", o->shown);
    const char *home = env("HOME") ? env("HOME") : "/root";
    char hf_home[1024];
    if (env("HF_HOME")) snprintf(hf_home, sizeof hf_home, "%s", env("HF_HOME"));
    else if (env("XDG_CACHE_HOME")) snprintf(hf_home, sizeof hf_home, "%s/huggingface", env("XDG_CACHE_HOME"));
    else snprintf(hf_home, sizeof hf_home, "%s/.cache/huggingface", home);
    const char *hc = env("HF_HUB_CACHE") ? env("HF_HUB_CACHE") : env("HUGGINGFACE_HUB_CACHE");
    if (hc) snprintf(o->cache, sizeof o->cache, "%s", hc);
    else snprintf(o->cache, sizeof o->cache, "%s/hub", hf_home);
    const char *tok = env("HF_TOKEN") ? env("HF_TOKEN") : env("HUGGING_FACE_HUB_TOKEN");
    const char *tok_name = env("HF_TOKEN") ? "HF_TOKEN" : "HUGGING_FACE_HUB_TOKEN";
    if (tok) {
        if (strlen(tok) >= sizeof o->token) /* never cut: a cut token is a wrong one */
            return base_err(CEMBED_EINVAL, "%s is %zu bytes; a token is at most %zu", tok_name, strlen(tok),
                            sizeof o->token - 1);
        snprintf(o->token, sizeof o->token, "%s", tok);
    } else { /* the token `huggingface-cli login` saved */
        char path[1100], *data = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s", env("HF_TOKEN_PATH") ? env("HF_TOKEN_PATH") : "");
        if (!path[0]) snprintf(path, sizeof path, "%s/token", hf_home);
        if (file_exists(path)) {
            if (file_read_all(path, 4096, &data, &len)) return base_err_prefix(CEMBED_EINVAL, "the saved Hub token");
            while (len && isspace((unsigned char)data[len - 1])) len--;
            if (len >= sizeof o->token) {
                base_free(data);
                return base_err(CEMBED_EINVAL, "the Hub token in %s is %zu bytes; a token is at most %zu", path, len,
                                sizeof o->token - 1);
            }
            snprintf(o->token, sizeof o->token, "%.*s", (int)len, data);
        }
        base_free(data);
    }
    long timeout = 10;   /* huggingface_hub's default */
    const char *ts = env("HF_HUB_DOWNLOAD_TIMEOUT");
    if (ts) {
        char *end;
        timeout = strtol(ts, &end, 10);
        if (*end || timeout < 1 || timeout > 3600)
            return base_err(CEMBED_EINVAL, "HF_HUB_DOWNLOAD_TIMEOUT=%s: must be whole seconds from 1 to 3600", ts);
    }
    o->timeout_s = (int)timeout;
    for (const char *p = o->token; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return base_err(CEMBED_EINVAL, "HF_TOKEN holds a character a token cannot have (a space or a control)");
    o->offline = truthy(env("HF_HUB_OFFLINE"));
    o->progress = isatty(STDERR_FILENO) && !truthy(env("HF_HUB_DISABLE_PROGRESS_BARS")) && !env("CEMBED_NO_PROGRESS");
    return 0;
}

/* ---- repo ids ---- */

static int id_char(char c) { return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.'; }

int hub_is_repo_id(const char *spec) {
    const char *slash = strchr(spec, '/'), *at = strchr(spec, '@');
    const char *end = at ? at : spec + strlen(spec);
    if (!slash || slash > end || slash == spec || slash + 1 == end || spec[0] == '.' || slash[1] == '.') return 0;
    for (const char *p = spec; p < end; p++)
        if (p != slash && !id_char(*p)) return 0;
    if (end - spec > 96) return 0;
    return !at || hub_is_revision(at + 1);
}

int hub_is_revision(const char *rev) {
    /* git check-ref-format's rules, within the characters a Hub name uses:
     * components split by '/', none empty, none starting with '.' or ending
     * with ".lock", no "..", not ending with '.' */
    const size_t n = strlen(rev);
    if (n == 0 || n > 255 || rev[n - 1] == '.') return 0;
    if (strstr(rev, "..")) return 0;
    for (const char *c = rev;;) {
        const char *e = c + strcspn(c, "/");
        if (e == c || *c == '.') return 0;
        for (const char *p = c; p < e; p++)
            if (!id_char(*p)) return 0;
        if (e - c >= 5 && memcmp(e - 5, ".lock", 5) == 0) return 0;
        if (!*e) return 1;
        c = e + 1;
    }
}

int hub_split(const char *spec, char *repo, size_t rn, char *rev, size_t vn) {
    const char *at0 = strchr(spec, '@');
    if (at0 && !hub_is_revision(at0 + 1))
        return base_err(CEMBED_EINVAL, "\"%.200s\": the revision \"%.100s\" is not a Git branch, tag or commit id "
                        "(components of letters, digits, '-', '_' and '.' between single slashes)", spec, at0 + 1);
    if (!hub_is_repo_id(spec))
        return base_err(CEMBED_EINVAL, "\"%.200s\" is not a Hub repo id (ORG/NAME or ORG/NAME@REVISION)", spec);
    const char *at = strchr(spec, '@');
    snprintf(repo, rn, "%.*s", (int)(at ? (size_t)(at - spec) : strlen(spec)), spec);
    snprintf(rev, vn, "%s", at ? at + 1 : "main");
    return 0;
}

static int is_commit(const char *s) {
    if (strlen(s) != 40) return 0;
    for (const char *p = s; *p; p++)
        if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p)) return 0;
    return 1;
}

/* ---- the API's answer ---- */

/* The files cembed reads (the pooling folder by its sentence-transformers name: N_Pooling/config.json). */
static int wanted(const char *name) {
    static const char *const names[] = {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt",
                                        "tokenizer_config.json", "special_tokens_map.json", "modules.json",
                                        "sentence_bert_config.json", "config_sentence_transformers.json"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(name, names[i]) == 0) return 1;
    const char *slash = strchr(name, '/');
    return slash && isdigit((unsigned char)name[0]) && strcmp(slash, "/config.json") == 0 &&
           !strchr(slash + 1, '/') && slash - name < 64;
}

static int hex_of_len(const char *s, size_t n) {
    if (strlen(s) != n) return 0;
    for (const char *p = s; *p; p++)
        if (!isxdigit((unsigned char)*p)) return 0;
    return 1;
}

void hub_info_free(hub_info *i) {
    base_free(i->files);
    memset(i, 0, sizeof *i);
}

int hub_info_parse(const char *json, size_t len, hub_info *out) {
    memset(out, 0, sizeof *out);
    json_error_t e;
    json_t *o = json_loadb(json, len, 0, &e);
    if (!o) return base_err(CEMBED_EFORMAT, "the Hub's answer is not JSON: %s", e.text);
    int rc = 0;
    const char *sha = json_string_value(json_object_get(o, "sha"));
    json_t *sib = json_object_get(o, "siblings");
    if (!json_is_object(o) || !sha || !is_commit(sha) || !json_is_array(sib)) {
        rc = base_err(CEMBED_EFORMAT, "the Hub's answer has no commit \"sha\" or no \"siblings\" list");
        goto done;
    }
    snprintf(out->sha, sizeof out->sha, "%s", sha);
    json_t *cfg = json_object_get(o, "config");
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    if (mt) snprintf(out->model_type, sizeof out->model_type, "%s", mt);
    json_t *g = json_object_get(o, "gated");
    out->gated = json_is_string(g) || json_is_true(g);
    out->is_private = json_is_true(json_object_get(o, "private"));
    const size_t n = json_array_size(sib);
    if (n > 100000) {
        rc = base_err(CEMBED_EFORMAT, "the Hub's answer lists %zu files", n);
        goto done;
    }
    out->files = base_calloc(n ? n : 1, sizeof *out->files);
    if (!out->files) {
        rc = base_err(CEMBED_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t k = 0; k < n; k++) {
        json_t *s = json_array_get(sib, k);
        const char *name = json_string_value(json_object_get(s, "rfilename"));
        if (!name || strlen(name) >= sizeof out->files->name || !wanted(name)) continue;
        hub_file *f = &out->files[out->n_files];
        snprintf(f->name, sizeof f->name, "%s", name);
        json_t *lfs = json_object_get(s, "lfs");
        const char *blob = json_string_value(json_object_get(s, "blobId"));
        const char *sha256 = json_string_value(json_object_get(lfs, "sha256"));
        json_t *size = json_object_get(lfs ? lfs : s, "size");
        if (json_is_integer(size) && json_integer_value(size) >= 0) f->size = (uint64_t)json_integer_value(size);
        if (sha256 && hex_of_len(sha256, 64)) {
            snprintf(f->etag, sizeof f->etag, "%s", sha256);
            f->lfs = 1;
        } else if (blob && hex_of_len(blob, 40)) {
            snprintf(f->etag, sizeof f->etag, "%s", blob);
        } else if (blob || sha256) {
            rc = base_err(CEMBED_EFORMAT, "the Hub's answer gives %s a malformed blob id or sha256", name);
            goto done;
        } /* else none (a mirror that ignores ?blobs=true): hub_resolve asks the file's ETag */
        out->has_safetensors |= strcmp(name, "model.safetensors") == 0;
        out->has_config |= strcmp(name, "config.json") == 0;
        out->has_tokenizer |= strcmp(name, "tokenizer.json") == 0 || strcmp(name, "vocab.txt") == 0;
        out->n_files++;
    }
done:
    json_decref(o);
    if (rc) hub_info_free(out);
    return rc;
}

/* ---- the cache's layout ---- */

static void repo_dir(const hub_opts *o, const char *repo, char *out, size_t n) {
    snprintf(out, n, "%s/models--", o->cache);
    size_t l = strlen(out);
    for (const char *p = repo; *p && l + 3 < n; p++) {
        if (*p == '/') out[l++] = '-', out[l++] = '-';
        else out[l++] = *p;
    }
    out[l] = 0;
}

/* The commit refs/REV names, into sha[41]; 0 or -1. */
static int read_ref(const char *rdir, const char *rev, char *sha) {
    char path[4400], *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/refs/%s", rdir, rev);
    if (!file_exists(path) || file_read_all(path, 128, &data, &len)) return -1;
    while (len && isspace((unsigned char)data[len - 1])) len--;
    snprintf(sha, 41, "%.*s", (int)CE_MIN(len, 40), data);
    base_free(data);
    return is_commit(sha) ? 0 : -1;
}

/* A snapshot cembed can open: config.json, model.safetensors and a tokenizer. */
static int snapshot_complete(const char *snap) {
    char p[4500], q[4500];
    snprintf(p, sizeof p, "%s/config.json", snap);
    snprintf(q, sizeof q, "%s/model.safetensors", snap);
    if (!file_exists(p) || !file_exists(q)) return 0;
    snprintf(p, sizeof p, "%s/tokenizer.json", snap);
    snprintf(q, sizeof q, "%s/vocab.txt", snap);
    return file_exists(p) || file_exists(q);
}

/* ---- HTTP ---- */

typedef struct transfer {
    FILE *f;                /* a download, or */
    buf *mem;               /* an API answer */
    uint64_t limit, got;    /* the bytes this answer may bring (its declared size); the bytes it brought */
    int over;               /* it brought more: stopped there */
    const hub_opts *o;
    const char *name;
    uint64_t base, total;   /* bytes already on disk when it began; the file's size */
    double last;
    /* a HEAD's headers (the blob id fallback) */
    char etag[72], linked_etag[72];   /* as hub_file's */
    uint64_t linked_size, length;
} transfer;

/* The API's answer may be this large (a repo of many files is a few MB). */
#define HUB_API_MAX (16u << 20)
/* A small file whose size the Hub did not give may be this large. */
#define HUB_SMALL_MAX (64u << 20)
/* A transfer slower than this for the timeout's seconds is stalled. */
#define HUB_LOW_SPEED 1024L

static size_t on_data(char *p, size_t sz, size_t n, void *ctx) {
    transfer *t = ctx;
    const size_t len = sz * n;
    if (t->got + len > t->limit) { /* more than it declared: a broken or hostile server */
        t->over = 1;
        return 0;
    }
    t->got += len;
    if (t->f) return fwrite(p, 1, len, t->f);
    if (buf_append(t->mem, p, len)) return 0;
    return len;
}

/* Copies a header's value (quotes and a weak W/ taken off) into out. */
static void header_value(const char *v, size_t len, char *out, size_t n) {
    while (len && (*v == ' ' || *v == '\t')) v++, len--;
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ')) len--;
    if (len >= 2 && v[0] == 'W' && v[1] == '/') v += 2, len -= 2;
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') v++, len -= 2;
    snprintf(out, n, "%.*s", (int)CE_MIN(len, n - 1), v);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ctx) {
    transfer *t = ctx;
    const size_t len = sz * n;
    const char *colon = memchr(p, ':', len);
    if (!colon) return len;
    const size_t kl = (size_t)(colon - p), vl = len - kl - 1;
    char v[72];
    header_value(colon + 1, vl, v, sizeof v);
    if (kl == 4 && strncasecmp(p, "etag", 4) == 0) snprintf(t->etag, sizeof t->etag, "%s", v);
    else if (kl == 13 && strncasecmp(p, "x-linked-etag", 13) == 0) snprintf(t->linked_etag, sizeof t->linked_etag, "%s", v);
    else if (kl == 13 && strncasecmp(p, "x-linked-size", 13) == 0) t->linked_size = strtoull(v, NULL, 10);
    else if (kl == 14 && strncasecmp(p, "content-length", 14) == 0) t->length = strtoull(v, NULL, 10);
    return len;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)ultotal, (void)ulnow, (void)dltotal;
    transfer *t = ctx;
    if (!t->f || !t->total) return 0;
    const double now = time_now();
    const uint64_t have = t->base + (uint64_t)dlnow;
    if (now - t->last < (t->o->progress ? 0.2 : 5.0) && have < t->total) return 0;
    t->last = now;
    const double frac = (double)have / (double)t->total;
    if (t->o->progress) {
        char bar[26];
        const int fill = (int)(frac * 25);
        for (int i = 0; i < 25; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[25] = 0;
        fprintf(stderr, "\r%-28.28s [%s] %7.1f / %.1f MB\033[K%s", t->name, bar, have / 1e6, t->total / 1e6,
                have >= t->total ? "\n" : "");
    } else {
        log_info("downloading %s: %.1f of %.1f MB", t->name, have / 1e6, t->total / 1e6);
    }
    return 0;
}

static CURL *easy(const hub_opts *o, const char *url, transfer *t) {
    const curl_lib *cu = curl_lib_loaded();
    CURL *c = cu->easy_init();
    if (!c) return NULL;
    cu->easy_setopt(c, CURLOPT_URL, url);
    cu->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    cu->easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    cu->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    cu->easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* a server that does not answer, or drips (under 1 KB/s for the
     * timeout), is an error rather than a wait without end */
    cu->easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)o->timeout_s);
    cu->easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, HUB_LOW_SPEED);
    cu->easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)o->timeout_s);
    cu->easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    cu->easy_setopt(c, CURLOPT_USERAGENT, "cembed/" CEMBED_VERSION);
    cu->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    cu->easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    cu->easy_setopt(c, CURLOPT_WRITEDATA, t);
    cu->easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    cu->easy_setopt(c, CURLOPT_XFERINFODATA, t);
    cu->easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    if (o->token[0]) {
        /* libcurl sends it to this URL's host only, never across a redirect to another (UNRESTRICTED_AUTH off) */
        cu->easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        cu->easy_setopt(c, CURLOPT_XOAUTH2_BEARER, o->token);
    }
    return c;
}

/* Explains a failed request: what the status means for this repo. */
static int http_error(const hub_opts *o, const char *repo, const char *rev, const char *what, CURLcode cc, long status) {
    const curl_lib *cu = curl_lib_loaded();
    if (status == 401 || status == 403) {
        if (o->token[0])
            return base_err(CEMBED_EIO, "%s: the Hub refused HF_TOKEN for %s (HTTP %ld): the token has no access to "
                            "this repo (a gated model must be accepted on its page first)", what, repo, status);
        return base_err(CEMBED_EIO, "%s: %s is gated or private (HTTP %ld): set HF_TOKEN to a token with access to it",
                        what, repo, status);
    }
    if (status == 404)
        return base_err(CEMBED_EIO, "%s: no model %s at revision %s on %s (HTTP 404)", what, repo, rev, o->shown);
    if (status >= 400) return base_err(CEMBED_EIO, "%s: HTTP %ld from %s", what, status, o->shown);
    if (cc == CURLE_OPERATION_TIMEDOUT)
        return base_err(CEMBED_EIO, "%s: %s did not answer, or sent under %ld bytes/s, for %d s (HF_HUB_DOWNLOAD_TIMEOUT; "
                        "HF_HUB_OFFLINE=1 uses the cache only)", what, o->shown, HUB_LOW_SPEED, o->timeout_s);
    return base_err(CEMBED_EIO, "%s: %s (%s; HF_HUB_OFFLINE=1 uses the cache only)", what, cu->easy_strerror(cc),
                    o->shown);
}

/* GET the API's answer about repo@rev. */
static int api_info(const hub_opts *o, const char *repo, const char *rev, hub_info *info) {
    const curl_lib *cu = curl_lib_loaded();
    char url[2048];
    char *erev = cu->easy_escape(NULL, rev, 0);
    if (!erev) return base_err(CEMBED_ENOMEM, "out of memory");
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s?blobs=true", o->endpoint, repo, erev);
    cu->free(erev);
    buf b = {0};
    transfer t = {.mem = &b, .limit = HUB_API_MAX, .o = o};
    CURL *c = easy(o, url, &t);
    if (!c) return base_err(CEMBED_ENOMEM, "out of memory");
    cu->easy_setopt(c, CURLOPT_TIMEOUT, 10L * o->timeout_s);   /* the whole answer, however it trickles */
    const CURLcode cc = cu->easy_perform(c);
    long status = 0;
    cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    cu->easy_cleanup(c);
    int rc = t.over ? base_err(CEMBED_EIO, "asking the Hub about the model: %s sent more than %u MB for %s@%s; "
                               "refused", o->shown, HUB_API_MAX >> 20, repo, rev)
           : cc != CURLE_OK ? http_error(o, repo, rev, "asking the Hub about the model", cc, status)
                            : hub_info_parse(b.ptr ? b.ptr : "", b.len, info);
    buf_free(&b);
    return rc;
}

/* sha256 (LFS) or git's blob sha1 of a file, as lowercase hex into out. */
static int file_digest(const char *path, int lfs, uint64_t size, char *out) {
    int fd;
    if (file_open_regular(path, O_RDONLY, &fd, NULL)) return -1;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, lfs ? EVP_sha256() : EVP_sha1(), NULL) == 1;
    if (ok && !lfs) { /* git hashes "blob SIZE\0" and then the bytes */
        char head[40];
        const int hl = snprintf(head, sizeof head, "blob %llu", (unsigned long long)size);
        ok = EVP_DigestUpdate(ctx, head, (size_t)hl + 1) == 1;
    }
    static _Thread_local unsigned char chunk[1 << 16];
    size_t got;
    while (ok && (got = fread(chunk, 1, sizeof chunk, f)) > 0) ok = EVP_DigestUpdate(ctx, chunk, got) == 1;
    ok = ok && !ferror(f);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdl = 0;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdl) == 1;
    EVP_MD_CTX_free(ctx);
    fclose(f);
    if (!ok) return -1;
    for (unsigned int i = 0; i < mdl; i++) sprintf(out + 2 * i, "%02x", md[i]);
    return 0;
}

static uint64_t size_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* The blob id of a file the API's answer gave none (a mirror that ignores
 * ?blobs=true), as huggingface_hub finds it: a HEAD of its resolve URL, not
 * followed, whose X-Linked-Etag (LFS: the sha256) or ETag (git's blob id)
 * names it, and X-Linked-Size or Content-Length its size. */
static int head_etag(const hub_opts *o, const char *repo, const char *rev, const char *commit, hub_file *f) {
    const curl_lib *cu = curl_lib_loaded();
    char url[2048];
    snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", o->endpoint, repo, commit, f->name);
    transfer t = {.o = o, .limit = 0};
    CURL *c = easy(o, url, &t);
    if (!c) return base_err(CEMBED_ENOMEM, "out of memory");
    cu->easy_setopt(c, CURLOPT_NOBODY, 1L);
    cu->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);   /* the redirect's own headers name an LFS file */
    cu->easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    cu->easy_setopt(c, CURLOPT_HEADERDATA, &t);
    const CURLcode cc = cu->easy_perform(c);
    long status = 0;
    cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    cu->easy_cleanup(c);
    if (cc != CURLE_OK) return http_error(o, repo, rev, f->name, cc, status);
    if (hex_of_len(t.linked_etag, 64)) {
        snprintf(f->etag, sizeof f->etag, "%s", t.linked_etag);
        f->lfs = 1;
        if (!f->size) f->size = t.linked_size;
    } else if (hex_of_len(t.etag, 40) && status < 300) {
        snprintf(f->etag, sizeof f->etag, "%s", t.etag);
        if (!f->size) f->size = t.length;
    } else {
        return base_err(CEMBED_EIO, "%s of %s: %s gave neither a blob id in the API's answer nor a checkable ETag "
                        "(a git blob id or sha256) for it", f->name, repo, o->shown);
    }
    for (char *p = f->etag; *p; p++) *p = (char)tolower((unsigned char)*p);
    return 0;
}

/* Downloads one file into blobs/ETAG: to ETAG.incomplete first (kept across
 * runs, so an interrupted download resumes with Range), checked, renamed. */
static int download(const hub_opts *o, const char *repo, const char *rev, const char *rdir, const char *commit,
                    const hub_file *f) {
    const curl_lib *cu = curl_lib_loaded();
    char url[2048], part[4500], blob[4400];
    snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", o->endpoint, repo, commit, f->name);
    snprintf(blob, sizeof blob, "%s/blobs/%s", rdir, f->etag);
    snprintf(part, sizeof part, "%s.incomplete", blob);
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        uint64_t have = size_of(part);
        if (f->size && have > f->size) { /* more than the file: start over */
            unlink(part);
            have = 0;
        }
        if (f->size && have == f->size) break;
        int fd;
        if (file_open_regular(part, O_WRONLY | O_CREAT | O_APPEND, &fd, NULL)) return CEMBED_EIO;
        FILE *out = fdopen(fd, "ab");
        if (!out) {
            close(fd);
            return base_err(CEMBED_EIO, "%s: %s", part, strerror(errno));
        }
        transfer t = {.f = out, .o = o, .name = f->name, .base = have, .total = f->size,
                      .limit = f->size ? f->size - have : HUB_SMALL_MAX};
        CURL *c = easy(o, url, &t);
        if (!c) {
            fclose(out);
            return base_err(CEMBED_ENOMEM, "out of memory");
        }
        if (have) {
            cu->easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)have);
            log_info("resuming %s of %s at %.1f MB", f->name, repo, have / 1e6);
        }
        const CURLcode cc = cu->easy_perform(c);
        long status = 0;
        cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        cu->easy_cleanup(c);
        const int wrote = fclose(out) == 0;
        if (t.over) { /* never kept, never retried: the server does not send the file it described */
            unlink(part);
            return base_err(CEMBED_EIO, "%s of %s: %s sent more than its %s%llu bytes; stopped there, nothing kept",
                            f->name, repo, o->shown, f->size ? "declared " : "limit of ",
                            (unsigned long long)(f->size ? f->size : HUB_SMALL_MAX));
        }
        if (cc == CURLE_OK && wrote && (!f->size || size_of(part) == f->size)) break;
        if (cc == CURLE_RANGE_ERROR) { /* the server does not resume: from the start */
            unlink(part);
        } else if (cc == CURLE_HTTP_RETURNED_ERROR && status != 429 && status < 500) {
            return http_error(o, repo, rev, f->name, cc, status);
        } else if (cc == CURLE_OPERATION_TIMEDOUT && attempt >= 1) { /* stalled twice: the server, not a blip */
            return http_error(o, repo, rev, f->name, cc, status);
        }
        if (attempt == 5) {
            rc = cc == CURLE_OK ? base_err(CEMBED_EIO, "%s: got %llu bytes of %llu", f->name,
                                           (unsigned long long)size_of(part), (unsigned long long)f->size)
                                : http_error(o, repo, rev, f->name, cc, status);
            return rc;
        }
        log_warn("downloading %s of %s: %s; retrying (%d of 5)", f->name, repo,
                 cc == CURLE_OK ? "short" : cu->easy_strerror(cc), attempt + 1);
        usleep((useconds_t)(200000u << attempt));
    }
    char got[2 * EVP_MAX_MD_SIZE + 1];
    if (file_digest(part, f->lfs, size_of(part), got)) return base_err(CEMBED_EIO, "%s: cannot read it back", part);
    if (strcmp(got, f->etag) != 0) {
        unlink(part);   /* never kept: the next try downloads it again */
        return base_err(CEMBED_EIO, "%s of %s is corrupted: its %s is %s, the Hub says %s (removed; run again)",
                        f->name, repo, f->lfs ? "sha256" : "git blob id", got, f->etag);
    }
    if (rename(part, blob) != 0) return base_err(CEMBED_EIO, "%s: %s", blob, strerror(errno));
    return 0;
}

/* snapshots/COMMIT/NAME -> ../../blobs/ETAG (one more ../ per folder in NAME). */
static int link_file(const char *rdir, const char *commit, const hub_file *f) {
    char path[4400], target[600] = "";
    snprintf(path, sizeof path, "%s/snapshots/%s/%s", rdir, commit, f->name);
    char *slash = strrchr(path, '/');
    *slash = 0;
    if (file_mkdirs(path)) return base_err(CEMBED_EIO, "%s: %s", path, strerror(errno));
    *slash = '/';
    int depth = 2;
    for (const char *p = f->name; *p; p++) depth += *p == '/';
    for (int i = 0; i < depth; i++) strcat(target, "../");
    strcat(target, "blobs/");
    strcat(target, f->etag);
    unlink(path);
    if (symlink(target, path) != 0) return base_err(CEMBED_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

/* Refuses what the engine cannot run, from the config's bytes, before the weights. */
static int check_config(const char *snap, const char *repo) {
    char path[4500], *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/config.json", snap);
    if (file_read_all(path, 1 << 20, &data, &len)) return base_err_prefix(CEMBED_EIO, "%s", path);
    model_config cfg;
    const int rc = model_config_parse(data, len, &cfg);
    base_free(data);
    if (rc) return base_err_prefix(CEMBED_EMODEL, "%s cannot run here", repo);
    return 0;
}

static int sort_files(const void *a, const void *b) {
    /* config.json first (checked before anything large), the weights last */
    const hub_file *x = a, *y = b;
    const int kx = strcmp(x->name, "config.json") == 0 ? 0 : x->lfs ? 2 : 1;
    const int ky = strcmp(y->name, "config.json") == 0 ? 0 : y->lfs ? 2 : 1;
    return kx != ky ? kx - ky : strcmp(x->name, y->name);
}

int hub_resolve(const hub_opts *o, const char *repo, const char *rev, int do_download, char *dir, size_t n) {
    char rdir[2200], commit[48] = "", snap[4400];
    repo_dir(o, repo, rdir, sizeof rdir);
    if (is_commit(rev)) snprintf(commit, sizeof commit, "%s", rev);
    else if (read_ref(rdir, rev, commit)) commit[0] = 0;
    if (commit[0]) {
        snprintf(snap, sizeof snap, "%s/snapshots/%s", rdir, commit);
        /* a pinned commit found complete needs no network; a branch is asked about (it may have moved) */
        if (snapshot_complete(snap) && (o->offline || is_commit(rev) || !do_download)) {
            snprintf(dir, n, "%s", snap);
            return 0;
        }
    }
    if (o->offline)
        return base_err(CEMBED_EIO, "HF_HUB_OFFLINE=1 and %s@%s is not in the Hub cache (%s): run `cembed pull %s` "
                        "where the Hub can be reached, or unset HF_HUB_OFFLINE", repo, rev, o->cache, repo);
    if (!do_download)
        return base_err(CEMBED_EIO, "%s@%s is not in the Hub cache (%s): run `cembed pull %s@%s`", repo, rev, o->cache,
                        repo, rev);
    hub_info info;
    int rc = curl_lib_open();
    if (!rc) rc = api_info(o, repo, rev, &info);
    if (rc) {
        if (commit[0] && snapshot_complete(snap)) { /* the Hub is unreachable; the cache has this revision */
            log_warn("%s; using the cached %s@%s (%.12s)", cembed_last_error(), repo, rev, commit);
            snprintf(dir, n, "%s", snap);
            return 0;
        }
        return rc;
    }
    if (!info.has_safetensors || !info.has_config || !info.has_tokenizer) {
        rc = base_err(CEMBED_EMODEL, "%s@%s cannot run here: it has no %s (cembed reads safetensors weights, "
                      "config.json and tokenizer.json or vocab.txt; nothing was downloaded)", repo, rev,
                      !info.has_safetensors ? "model.safetensors" : !info.has_config ? "config.json"
                                                                                    : "tokenizer.json or vocab.txt");
        goto done;
    }
    if (info.model_type[0] && !model_type_known(info.model_type)) {
        rc = base_err(CEMBED_EMODEL, "%s@%s cannot run here: its architecture is %s; cembed runs %s; nothing was "
                      "downloaded", repo, rev, info.model_type, MODEL_TYPES);
        goto done;
    }
    for (size_t k = 0; k < info.n_files && !rc; k++)
        if (!info.files[k].etag[0]) rc = head_etag(o, repo, rev, info.sha, &info.files[k]);
    if (rc) goto done;
    snprintf(snap, sizeof snap, "%s/snapshots/%s", rdir, info.sha);
    char blobs[2300];
    snprintf(blobs, sizeof blobs, "%s/blobs", rdir);
    if (file_mkdirs(blobs) || file_mkdirs(snap)) {
        rc = base_err(CEMBED_EIO, "cannot create %s: %s", snap, strerror(errno));
        goto done;
    }
    qsort(info.files, info.n_files, sizeof *info.files, sort_files);
    uint64_t total = 0;
    for (size_t k = 0; k < info.n_files; k++) total += info.files[k].size;
    log_info("%s@%s: commit %.12s, %zu files, %.1f MB", repo, rev, info.sha, info.n_files, total / 1e6);
    for (size_t k = 0; k < info.n_files && !rc; k++) {
        const hub_file *f = &info.files[k];
        char blob[2400], linked[4800];
        snprintf(blob, sizeof blob, "%s/%s", blobs, f->etag);
        snprintf(linked, sizeof linked, "%s/%s", snap, f->name);
        if (!file_exists(linked)) {
            if (!file_exists(blob)) rc = download(o, repo, rev, rdir, info.sha, f);
            if (!rc) rc = link_file(rdir, info.sha, f);
        }
        if (!rc && strcmp(f->name, "config.json") == 0) rc = check_config(snap, repo);
    }
    if (!rc && strcmp(rev, info.sha) != 0) {
        char refs[2300], ref[2600];
        snprintf(refs, sizeof refs, "%s/refs", rdir);
        snprintf(ref, sizeof ref, "%s/%s", refs, rev);
        char *slash = strrchr(ref, '/');
        *slash = 0;
        if (file_mkdirs(ref) != 0) rc = base_err(CEMBED_EIO, "%s: %s", ref, strerror(errno));
        *slash = '/';
        if (!rc && file_write_all(ref, info.sha, strlen(info.sha)))
            rc = base_err_prefix(CEMBED_EIO, "%s", ref);
    }
    if (!rc) snprintf(dir, n, "%s", snap);
done:
    hub_info_free(&info);
    return rc;
}
