/* The file of prepared weights (wcache.h): its header parser, the key's
 * identity parts (the model's files, the running binary), opening a valid
 * file as a private map, and writing a new one atomically.
 *
 * The binary's identity is its GNU build-id note (found with
 * dl_iterate_phdr in the object holding this code), or, without one, the
 * executable's size and mtime: a rebuilt cembed never trusts a layout
 * another build wrote. File names: FNV-1a of (weights path, name) then of
 * the whole key, in hex, so a changed key gives a new file of the same
 * prefix, and writing it deletes the old one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "wcache.h"

#define FIXED_BYTES 40
#define WEIGHT_REC (8 + 16 * NN_WCACHE_PARTS)
#define MAX_SHAPES 64
#define MAX_WEIGHTS (1u << 20)
#define MAX_FIELD (1u << 16)          /* key and layout bytes */
#define UNUSED_DAYS 30                /* a file unused this long goes when another is written */
#define TMP_HOURS 1                   /* a temporary file this old was left by a crash */
static const char magic[8] = {'C', 'E', 'M', 'B', 'W', 'C', '\r', '\n'};

struct nn_wcache {
    char *dir, *file;        /* the folder; the file's path */
    char *prefix;            /* the file name's first part (this model and name) */
    char *key;
    char *model_dir, *model_id;
    void *map;
    size_t len;
    nn_wcache_view view;
    int hit;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}
#define FNV0 0xcbf29ce484222325ull

static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Header bytes for these counts, checksum included; 0 past the limits. */
static size_t header_bytes(uint32_t key_len, uint32_t n_shapes, uint32_t n_weights, uint32_t layout_bytes) {
    if (key_len > MAX_FIELD || layout_bytes > MAX_FIELD || n_shapes > MAX_SHAPES || n_weights > MAX_WEIGHTS) return 0;
    return FIXED_BYTES + pad8(key_len) + (size_t)n_shapes * (8 + pad8(layout_bytes)) + (size_t)n_weights * WEIGHT_REC + 8;
}

/* A part of `bytes` bytes starts at a multiple of this. */
static uint64_t part_align(uint64_t bytes) { return bytes >= 4096 ? 4096 : 64; }

/* Checks weight record w of v against the image: shape, parts in the file after the header, aligned. */
static int check_weight(const nn_wcache_view *v, const uint8_t *w, size_t hdr) {
    if (rd32(w) >= v->n_shapes || rd32(w + 4) > NN_WCACHE_PARTS) return base_err(CEMBED_EFORMAT, "bad weight record");
    for (uint32_t k = 0; k < rd32(w + 4); k++) {
        const uint64_t off = rd64(w + 8 + 8 * k), bytes = rd64(w + 8 + 8 * NN_WCACHE_PARTS + 8 * k);
        if (off < hdr || off > v->len || bytes > v->len - off || off % part_align(bytes))
            return base_err(CEMBED_EFORMAT, "a weight part [%llu, +%llu) is outside the %zu-byte file or misaligned",
                            (unsigned long long)off, (unsigned long long)bytes, v->len);
    }
    return 0;
}

int nn_wcache_parse(const uint8_t *p, size_t len, nn_wcache_view *v) {
    *v = (nn_wcache_view){.base = p, .len = len};
    if (len < FIXED_BYTES || memcmp(p, magic, sizeof magic) != 0) return base_err(CEMBED_EFORMAT, "not a weight cache");
    if (rd32(p + 8) != NN_WCACHE_VERSION) return base_err(CEMBED_EFORMAT, "version %u", rd32(p + 8));
    if (rd64(p + 16) != len) return base_err(CEMBED_EFORMAT, "%zu bytes, the header says %llu", len,
                                             (unsigned long long)rd64(p + 16));
    v->key_len = rd32(p + 24), v->n_shapes = rd32(p + 28), v->n_weights = rd32(p + 32), v->layout_bytes = rd32(p + 36);
    const size_t hdr = header_bytes(v->key_len, v->n_shapes, v->n_weights, v->layout_bytes);
    if (!hdr || hdr != rd32(p + 12) || hdr > len) return base_err(CEMBED_EFORMAT, "bad header size");
    if (rd64(p + hdr - 8) != fnv(FNV0, p, hdr - 8)) return base_err(CEMBED_EFORMAT, "header checksum");
    v->key = (const char *)p + FIXED_BYTES;
    v->shapes = p + FIXED_BYTES + pad8(v->key_len);
    v->weights = v->shapes + (size_t)v->n_shapes * (8 + pad8(v->layout_bytes));
    for (uint32_t i = 0; i < v->n_weights; i++) {
        const int rc = check_weight(v, v->weights + (size_t)i * WEIGHT_REC, hdr);
        if (rc) return rc;
    }
    return 0;
}

void nn_wcache_shape_at(const nn_wcache_view *v, uint32_t i, nn_wc_shape *out) {
    const uint8_t *s = v->shapes + (size_t)i * (8 + pad8(v->layout_bytes));
    *out = (nn_wc_shape){rd32(s), rd32(s + 4), s + 8};
}

void nn_wcache_weight_at(const nn_wcache_view *v, uint32_t i, nn_wc_weight *out) {
    const uint8_t *w = v->weights + (size_t)i * WEIGHT_REC;
    *out = (nn_wc_weight){.shape = rd32(w), .n_parts = rd32(w + 4)};
    for (uint32_t k = 0; k < out->n_parts; k++) {
        out->part[k] = v->base + rd64(w + 8 + 8 * k);
        out->bytes[k] = rd64(w + 8 + 8 * NN_WCACHE_PARTS + 8 * k);
    }
}

/* ---- identity ---- */

static char binary_id[128];
static pthread_once_t binary_once = PTHREAD_ONCE_INIT;

/* The build-id note among an object's PT_NOTE segments, as hex into binary_id. */
static int note_id(struct dl_phdr_info *info) {
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const uint8_t *n = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = n + ph->p_memsz;
        while (n + 12 <= end) {
            const uint32_t namesz = rd32(n), descsz = rd32(n + 4), type = rd32(n + 8);
            const uint8_t *desc = n + 12 + ((namesz + 3) & ~3u);
            if (desc + descsz > end) break;
            if (type == NT_GNU_BUILD_ID && namesz == 4 && memcmp(n + 12, "GNU", 4) == 0 && descsz <= 60) {
                size_t o = (size_t)snprintf(binary_id, sizeof binary_id, "build-id ");
                for (uint32_t k = 0; k < descsz; k++) o += (size_t)snprintf(binary_id + o, sizeof binary_id - o, "%02x", desc[k]);
                return 1;
            }
            n = desc + ((descsz + 3) & ~3u);
        }
    }
    return 0;
}

/* dl_iterate_phdr: the object whose loaded segments hold this code */
static int find_self(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    const uintptr_t self = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        const uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && self >= lo && self < lo + ph->p_memsz) return note_id(info) ? 1 : -1;
    }
    return 0;
}

static void binary_init(void) {
    if (dl_iterate_phdr(find_self, (void *)(uintptr_t)&nn_wcache_parse) == 1) return;
    struct stat st;
    if (stat("/proc/self/exe", &st) == 0)
        snprintf(binary_id, sizeof binary_id, "exe %lld %lld.%09ld", (long long)st.st_size,
                 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    else
        snprintf(binary_id, sizeof binary_id, "unknown");
}

/* The running binary's identity (computed once). */
static const char *binary(void) {
    pthread_once(&binary_once, binary_init);
    return binary_id;
}

/* "name=PATH\nname_stat=DEV INO SIZE MTIME\n" of dir/file into b; -1 when it cannot be stat'ed. */
static int file_id(const char *dir, const char *file, const char *name, buf *b) {
    char *p = path_join(dir, file), *real = p ? realpath(p, NULL) : NULL;
    struct stat st;
    const int ok = real && stat(real, &st) == 0;
    int rc = ok ? buf_printf(b, "%s=%s\n%s_stat=%llu %llu %lld %lld.%09ld\n", name, real, name,
                             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (long long)st.st_size,
                             (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec) : -1;
    base_free(p);
    free(real);
    return rc ? -1 : 0;
}

int nn_wcache_model_id(const char *dir, char *out, size_t n) {
    buf b = {0};
    int rc = file_id(dir, "model.safetensors", "weights", &b) || file_id(dir, "config.json", "config", &b) ? -1 : 0;
    if (!rc && b.len + 1 > n) rc = -1;
    if (!rc) memcpy(out, b.ptr, b.len), out[b.len] = 0;
    buf_free(&b);
    return rc;
}

/* ---- opening ---- */

static atomic_int warned;

/* A warning the first time the folder cannot be used, debug after. */
static void unusable(const char *dir, const char *what, int e) {
    if (atomic_exchange(&warned, 1)) log_debug("weight cache %s: %s: %s", dir, what, strerror(e));
    else log_warn("weight cache %s: %s: %s; running without it", dir, what, strerror(e));
}

/* Maps a cache file: its pages mapped read-only up front (one call, no
 * fault per page later, and the weights in the RSS measured after loading,
 * which the governor counts; populating a writable private map would copy
 * every page), then made writable, so that a write (oneDNN padding a
 * memory) copies only its page. A plain map and MADV_WILLNEED measured
 * the same at MiniLM size (README). */
static void *map_file(int fd, size_t len) {
    void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p != MAP_FAILED && mprotect(p, len, PROT_READ | PROT_WRITE)) {
        munmap(p, len);
        return MAP_FAILED;
    }
    return p;
}

/* Maps wc->file when it is a valid file of wc's key; touches its mtime. */
static void try_map(nn_wcache *wc) {
    int fd = open(wc->file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) return;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < FIXED_BYTES) goto out;
    void *p = map_file(fd, (size_t)st.st_size);
    if (p == MAP_FAILED) goto out;
    nn_wcache_view v;
    const size_t key_len = strlen(wc->key);
    const int bad = nn_wcache_parse(p, (size_t)st.st_size, &v);
    if (bad || v.key_len != key_len || memcmp(v.key, wc->key, key_len)) {
        log_debug("weight cache %s: not used (%s)", wc->file, bad ? cembed_last_error() : "another key");
        munmap(p, (size_t)st.st_size);
        goto out;
    }
    futimens(fd, NULL);   /* used now: kept another 30 days */
    wc->map = p, wc->len = (size_t)st.st_size, wc->view = v, wc->hit = 1;
out:
    close(fd);
}

void nn_wcache_open(const char *dir, const char *model_dir, const char *model_id, const char *name,
                    const char *backend_key, nn_wcache **out) {
    *out = NULL;
    char now[8192];
    if (!dir || !*dir || nn_wcache_model_id(model_dir, now, sizeof now) || strcmp(now, model_id) != 0) return;
    nn_wcache *wc = base_calloc(1, sizeof *wc);
    buf key = {0}, file = {0};
    if (!wc || buf_printf(&key, "%sbinary=%s\n%s", model_id, binary(), backend_key) || buf_append(&key, "", 1))
        goto fail;
    const char *wp = strstr(model_id, "weights="), *we = wp ? strchr(wp, '\n') : NULL;
    uint64_t h = fnv(fnv(FNV0, wp, we ? (size_t)(we - wp) : 0), name, strlen(name));
    if (buf_printf(&file, "%s/%016llx-", dir, (unsigned long long)h)) goto fail;
    wc->prefix = base_strndup(file.ptr + strlen(dir) + 1, file.len - strlen(dir) - 1);
    if (buf_printf(&file, "%016llx.wcache", (unsigned long long)fnv(FNV0, key.ptr, key.len - 1)) || buf_append(&file, "", 1))
        goto fail;
    wc->key = key.ptr, wc->file = file.ptr;
    wc->dir = base_strndup(dir, strlen(dir));
    wc->model_dir = base_strndup(model_dir, strlen(model_dir));
    wc->model_id = base_strndup(model_id, strlen(model_id));
    if (!wc->prefix || !wc->dir || !wc->model_dir || !wc->model_id) goto fail_owned;
    try_map(wc);
    *out = wc;
    return;
fail:
    buf_free(&key);
    buf_free(&file);
fail_owned:
    nn_wcache_free(wc);
}

const nn_wcache_view *nn_wcache_hit(const nn_wcache *wc) { return wc && wc->hit ? &wc->view : NULL; }

const char *nn_wcache_path(const nn_wcache *wc) { return wc ? wc->file : NULL; }

void nn_wcache_populate(nn_wcache *wc) {
    if (!wc || !wc->map || madvise(wc->map, wc->len, MADV_POPULATE_READ) == 0) return;
    volatile const char *c = wc->map;   /* kernels before 5.14: a read per page */
    for (size_t o = 0; o < wc->len; o += 4096) (void)c[o];
}

void nn_wcache_free(nn_wcache *wc) {
    if (!wc) return;
    if (wc->map) munmap(wc->map, wc->len);
    base_free(wc->dir);
    base_free(wc->file);
    base_free(wc->prefix);
    base_free(wc->key);
    base_free(wc->model_dir);
    base_free(wc->model_id);
    base_free(wc);
}

/* ---- writing ---- */

static int write_all(int fd, const void *p, size_t n) {
    for (const char *c = p; n;) {
        const ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w, n -= (size_t)w;
    }
    return 0;
}

static int write_zeros(int fd, size_t n) {
    static const char z[4096];
    for (size_t k; n; n -= k)
        if (write_all(fd, z, (k = CE_MIN(n, sizeof z)))) return -1;
    return 0;
}

/* The header of a file of these shapes and weights into h, each part's
 * offset into off[i * NN_WCACHE_PARTS + k]; OUT *file_bytes. -1: out of
 * memory or past the format's limits. */
static int build_header(const nn_wcache *wc, const nn_wc_shape *shapes, uint32_t n_shapes, uint32_t layout_bytes,
                        const nn_wc_weight *weights, uint32_t n_weights, buf *h, uint64_t *off, uint64_t *file_bytes) {
    const uint32_t key_len = (uint32_t)strlen(wc->key);
    const size_t hdr = header_bytes(key_len, n_shapes, n_weights, layout_bytes);
    if (!hdr) return -1;
    uint64_t pos = (hdr + 4095) & ~(uint64_t)4095;
    for (uint32_t i = 0; i < n_weights; i++)
        for (uint32_t k = 0; k < weights[i].n_parts; k++) {
            const uint64_t a = part_align(weights[i].bytes[k]);
            off[i * NN_WCACHE_PARTS + k] = pos = (pos + a - 1) & ~(a - 1);
            pos += weights[i].bytes[k];
        }
    *file_bytes = pos;
    uint8_t u[FIXED_BYTES - 8];
    const uint32_t fields[6] = {NN_WCACHE_VERSION, (uint32_t)hdr, key_len, n_shapes, n_weights, layout_bytes};
    memcpy(u, fields, 8), memcpy(u + 8, &pos, 8), memcpy(u + 16, fields + 2, 16);
    static const char zeros[8];
    int rc = buf_append(h, magic, 8) || buf_append(h, u, sizeof u) || buf_append(h, wc->key, key_len) ||
             buf_append(h, zeros, pad8(key_len) - key_len);
    for (uint32_t i = 0; i < n_shapes && !rc; i++)
        rc = buf_append(h, &shapes[i].N, 4) || buf_append(h, &shapes[i].K, 4) ||
             buf_append(h, shapes[i].layout, layout_bytes) || buf_append(h, zeros, pad8(layout_bytes) - layout_bytes);
    for (uint32_t i = 0; i < n_weights && !rc; i++) {
        uint64_t rec[1 + 2 * NN_WCACHE_PARTS] = {0};
        const uint32_t sn[2] = {weights[i].shape, weights[i].n_parts};
        memcpy(rec, sn, 8);
        for (uint32_t k = 0; k < weights[i].n_parts; k++)
            rec[1 + k] = off[i * NN_WCACHE_PARTS + k], rec[1 + NN_WCACHE_PARTS + k] = weights[i].bytes[k];
        rc = buf_append(h, rec, sizeof rec);
    }
    const uint64_t sum = rc ? 0 : fnv(FNV0, h->ptr, h->len);
    return rc || buf_append(h, &sum, 8) || h->len != hdr ? -1 : 0;
}

/* Whether cache file `name` in folder fd names a weights file that no longer exists. */
static int model_gone(int dfd, const char *name) {
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    static _Thread_local char head[FIXED_BYTES + 8192];
    const ssize_t n = read(fd, head, sizeof head - 1);
    close(fd);
    if (n < FIXED_BYTES || memcmp(head, magic, 8) != 0) return 0;
    head[CE_MIN((size_t)n, FIXED_BYTES + (size_t)rd32((const uint8_t *)head + 24))] = 0;
    const char *w = strstr(head + FIXED_BYTES, "weights=");
    if (!w) return 0;
    w += 8;
    char path[4096];
    const size_t len = strcspn(w, "\n");
    if (!w[len] || len >= sizeof path) return 0;
    memcpy(path, w, len);
    path[len] = 0;
    struct stat st;
    return stat(path, &st) != 0 && errno == ENOENT;
}

/* Deletes the files this one replaces (same prefix), those whose model is
 * gone or that were unused for UNUSED_DAYS, and stale temporary files. */
static void cleanup(const nn_wcache *wc) {
    DIR *d = opendir(wc->dir);
    if (!d) return;
    const char *mine = strrchr(wc->file, '/') + 1;
    const time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        const char *name = e->d_name;
        const size_t n = strlen(name);
        const int tmp = strstr(name, ".wcache.tmp.") != NULL, file = n > 7 && strcmp(name + n - 7, ".wcache") == 0;
        struct stat st;
        if ((!tmp && !file) || strcmp(name, mine) == 0 || fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW)) continue;
        const double age = difftime(now, st.st_mtime);
        const int go = tmp ? age > TMP_HOURS * 3600.0
                           : strncmp(name, wc->prefix, strlen(wc->prefix)) == 0 || age > UNUSED_DAYS * 86400.0 ||
                                 model_gone(dirfd(d), name);
        if (go && unlinkat(dirfd(d), name, 0) == 0) log_debug("weight cache: deleted %s/%s", wc->dir, name);
    }
    closedir(d);
}

/* Writes the header and parts to fd (parts at their offsets). */
static int write_file(int fd, const buf *h, const nn_wc_weight *weights, uint32_t n_weights, const uint64_t *off) {
    if (write_all(fd, h->ptr, h->len)) return -1;
    uint64_t pos = h->len;
    for (uint32_t i = 0; i < n_weights; i++)
        for (uint32_t k = 0; k < weights[i].n_parts; k++) {
            const uint64_t o = off[i * NN_WCACHE_PARTS + k];
            if (write_zeros(fd, o - pos) || write_all(fd, weights[i].part[k], weights[i].bytes[k])) return -1;
            pos = o + weights[i].bytes[k];
        }
    return fsync(fd);
}

int nn_wcache_write(nn_wcache *wc, const nn_wc_shape *shapes, uint32_t n_shapes, uint32_t layout_bytes,
                    const nn_wc_weight *weights, uint32_t n_weights, const nn_wcache_view **view) {
    *view = NULL;
    static atomic_uint seq;
    char now[8192], tmp[4200];
    buf h = {0};
    uint64_t *off = base_calloc((size_t)n_weights * NN_WCACHE_PARTS + 1, sizeof *off), bytes = 0;
    int fd = -1, rc = -1;
    if (nn_wcache_model_id(wc->model_dir, now, sizeof now) || strcmp(now, wc->model_id) != 0) {
        log_debug("weight cache: the model's files changed while it loaded; not written");
        goto out;
    }
    if (!off || build_header(wc, shapes, n_shapes, layout_bytes, weights, n_weights, &h, off, &bytes)) goto out;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", wc->file, (long)getpid(), atomic_fetch_add(&seq, 1));
    if (file_mkdirs(wc->dir) || (fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        unusable(wc->dir, "cannot write there", errno);
        goto out;
    }
    if (write_file(fd, &h, weights, n_weights, off) || rename(tmp, wc->file)) {
        unusable(wc->dir, "writing", errno);
        unlink(tmp);
        goto out;
    }
    cleanup(wc);
    /* not populated: the caller frees its own copy of each weight as it
     * points it here (nn_wcache_populate after), so the weights are never
     * resident twice */
    void *p = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) goto out;
    if (nn_wcache_parse(p, (size_t)bytes, &wc->view)) {
        munmap(p, (size_t)bytes);
        goto out;
    }
    wc->map = p, wc->len = (size_t)bytes, wc->hit = 1;
    *view = &wc->view;
    log_debug("weight cache: wrote %s (%llu bytes)", wc->file, (unsigned long long)bytes);
    rc = 0;
out:
    if (fd >= 0) close(fd);
    buf_free(&h);
    base_free(off);
    return rc;
}
