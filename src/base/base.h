/* base: the bottom module. Errors with a per-thread message, assertions that
 * stay on in release builds, string slices, a counted allocator that tests
 * can make fail on the Nth call, logging, whole-file reads and read-only
 * maps, and CPU facts. Everything else in cembed includes this. */
#ifndef CEMBED_BASE_H
#define CEMBED_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cembed.h"

/* ---- assertions: on in every build; print expression, file and line ---- */
#define CE_ASSERT(x)                                                          \
    do {                                                                      \
        if (!(x)) base_assert_fail(#x, __FILE__, __LINE__);                   \
    } while (0)
_Noreturn void base_assert_fail(const char *expr, const char *file, int line);

#define CE_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CE_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CE_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- errors ---- */
/* Records a formatted message for cembed_last_error() and returns code. */
int base_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with "prefix: ". Returns code. */
int base_err_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void base_err_clear(void);

/* ---- string slices: {ptr, len}, not NUL-terminated ---- */
typedef struct str {
    const char *ptr;
    size_t len;
} str;
#define STR_LIT(s) ((str){(s), sizeof(s) - 1})
static inline str str_from(const char *p, size_t n) { return (str){p, n}; }
int str_eq(str a, str b);
int str_eq_cstr(str a, const char *c);

/* ---- counted allocator ----
 * Every allocation of the library goes through these, so that tests can count
 * them and fail the Nth one (SQLite's OOM tests). base_malloc(0) returns a
 * unique non-NULL pointer. Free with base_free. */
void *base_malloc(size_t n);
void *base_calloc(size_t count, size_t size);
void *base_realloc(void *p, size_t n);
void base_free(void *p);
char *base_strndup(const char *s, size_t n);
/* Makes the allocation n calls from now (1 = the next one) and every later
 * one fail; 0 disarms. Returns how many allocations were made since the
 * last call. Routes jansson through the same allocator. */
size_t base_alloc_fail_after(size_t n);
void base_alloc_install_json(void);
/* Allocations of this thread that failed so far: a library that reports
 * out-of-memory as something else (jansson's parser) is told apart by it. */
size_t base_alloc_failures(void);
/* Bytes held now through these functions (jansson's included), and the most
 * held since the last reset; reset returns that peak and restarts it from
 * the live figure. Tests check memory estimates against them; /metrics
 * reports them. */
size_t base_alloc_live_bytes(void);
size_t base_alloc_peak_reset(void);
/* Overflow-checked a*b; returns 0 and sets *out, or -1 on overflow. */
static inline int base_mul(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

/* ---- growable byte buffer ---- */
typedef struct buf {
    char *ptr;
    size_t len, cap;
} buf;
int buf_reserve(buf *b, size_t extra);   /* 0 or CEMBED_ENOMEM */
int buf_append(buf *b, const void *p, size_t n);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(buf *b);

/* ---- logging to stderr ---- */
enum { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_OFF };
void log_set_level(int level);
int log_level_from(str name);   /* -1 if unknown */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* ---- files ---- */
/* Opens PATH (open(2) flags; created 0644 with O_CREAT) only when it is a
 * regular file, never waiting on a FIFO: OUT: *fd (close it), *st when not
 * NULL. Fails with EIO naming the path and what it is ("a FIFO, not a
 * regular file") or errno's text. */
struct stat;
int file_open_regular(const char *path, int flags, int *fd, struct stat *st);
/* Reads all of PATH; OUT: *data (NUL-terminated, base_malloc'd), *len.
 * Fails with EIO (message names the path and errno) or ENOMEM or ELIMIT when
 * the file is larger than max_bytes. */
int file_read_all(const char *path, size_t max_bytes, char **data, size_t *len);
/* Maps PATH read-only. OUT: *map, *len. Fails with EIO. An empty file gives
 * *map = NULL, *len = 0. */
int file_map(const char *path, const void **map, size_t *len);
void file_unmap(const void *map, size_t len);
/* Drops the resident pages wholly inside [p, p + len) when the range lies in
 * a map file_map made (they are read from the file again if touched); other
 * memory is left alone. Returns the bytes released. Cannot fail. */
size_t file_map_release(const void *p, size_t len);
/* Writes data to PATH atomically (temporary file + rename). */
int file_write_all(const char *path, const void *data, size_t len);
int file_exists(const char *path);
/* mkdir -p: creates path and whichever of its parents are missing (0755).
 * Returns 0, or -1 with errno set. */
int file_mkdirs(const char *path);
/* Joins dir and name with '/'; returns a base_malloc'd string or NULL. */
char *path_join(const char *dir, const char *name);

/* ---- cgroups (cgroup.c) ---- */
/* Called for a cgroup directory: dir (under the hierarchy's mount), path
 * (the cgroup's own, "/a/b"), v2 (unified hierarchy, else v1). */
typedef void (*cgroup_dir_fn)(const char *dir, const char *path, int v2, void *ctx);
/* Calls fn for the cgroup of the process whose /proc/PID/cgroup is
 * self_cgroup and for every ancestor up to the root, in the v2 hierarchy
 * (mounted at root) and in the v1 one holding controller (mounted at
 * root/controller). Cannot fail: an unreadable file calls nothing. */
void cgroup_each_dir(const char *root, const char *self_cgroup, const char *controller, cgroup_dir_fn fn, void *ctx);

/* ---- CPU facts ---- */
/* CPUs this process may use: affinity mask, capped by the cgroup CPU quota
 * (cpu_quota of /proc/self/cgroup), rounded up, at least 1. */
int cpu_usable(void);
/* The CPUs the cgroup CPU quota grants the process whose /proc/PID/cgroup
 * is self_cgroup, with the hierarchy mounted at root: the smallest of v2
 * cpu.max and v1 cpu.cfs_quota_us / cpu.cfs_period_us on its cgroup and
 * every ancestor; 0 when none is set. Cannot fail. */
double cpu_quota(const char *root, const char *self_cgroup);
/* Feature bits for kernel dispatch. CPU_AVX512F stands for the AVX512_CORE
 * set (F, BW, VL, DQ); CPU_AMX for AMX tiles with int8 and bf16. */
enum { CPU_AVX2 = 1, CPU_FMA = 2, CPU_AVX512F = 4, CPU_AVX512VNNI = 8, CPU_AVX512BF16 = 16, CPU_AMX = 32 };
/* The features this CPU and OS offer, capped at the level named by
 * ONEDNN_MAX_CPU_ISA (read once). Cannot fail. */
unsigned cpu_features(void);
/* Whether this CPU's AVX512_BF16 dot products (vdpbf16ps) outrun fp32 FMAs:
 * AMD's (Zen 4, Zen 5) do; Intel's do not (one core of a Sapphire Rapids
 * class Xeon: 86 GFLOP/s against 175 for zmm FMAs, bench/gemm_peak.c), so
 * bf16 there saves memory, not time. 0 without CPU_AVX512BF16. */
int cpu_bf16_dot_fast(void);
/* oneDNN's name of the highest level a feature set covers ("AVX2",
 * "AVX512_CORE_VNNI", ...; "SSE41" below AVX2). Static string. */
const char *cpu_isa_name(unsigned features);
/* The levels from AVX2 up that this machine offers, ignoring the cap, into
 * names[0..max) (static strings). Returns how many. */
int cpu_isa_levels(const char **names, int max);

/* ---- UTF-8 (utf8.c) ---- */
/* Decodes UTF-8; each maximal invalid subsequence becomes U+FFFD.
 * out must hold len code points. Returns the count. Cannot fail. */
size_t utf8_decode(const char *s, size_t len, uint32_t *out);
/* Encodes one code point; returns bytes written (1..4) to out[4]. */
int utf8_encode(uint32_t cp, char *out);
/* Copies s into out (replacing its contents) as valid UTF-8, invalid
 * sequences replaced by U+FFFD; NUL-terminated. Fails with ENOMEM. */
int utf8_sanitize(const char *s, size_t len, buf *out);

/* ---- monotonic time ---- */
double time_now(void);   /* seconds */

#endif
