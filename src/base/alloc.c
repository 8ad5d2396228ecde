/* The counted allocator. A thin layer over malloc that counts calls and can
 * be armed to fail from the Nth call on, so tests can walk every allocation
 * of a loader and check it fails cleanly (no crash, no leak under ASan). */
#include <jansson.h>
#include <malloc.h>
#include <stdatomic.h>
#include <string.h>

#include "base.h"

static atomic_size_t alloc_calls;
static atomic_size_t alloc_fail_at;   /* 0 = never */
static atomic_size_t live_bytes, peak_bytes;

/* Live bytes are malloc_usable_size of each block, so they match what the
 * heap holds for us (not what was asked for). */
static void *counted(void *p) {
    if (!p) return NULL;
    size_t now = atomic_fetch_add(&live_bytes, malloc_usable_size(p)) + malloc_usable_size(p);
    size_t peak = atomic_load(&peak_bytes);
    while (now > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, now)) {}
    return p;
}

size_t base_alloc_live_bytes(void) { return atomic_load(&live_bytes); }

size_t base_alloc_peak_reset(void) {
    size_t peak = atomic_exchange(&peak_bytes, atomic_load(&live_bytes));
    return peak;
}

static _Thread_local size_t failures;   /* this thread's allocations that returned NULL */

size_t base_alloc_failures(void) { return failures; }

static int should_fail(void) {
    size_t n = atomic_fetch_add(&alloc_calls, 1) + 1;
    size_t at = atomic_load(&alloc_fail_at);
    if (at != 0 && n >= at) failures++;
    return at != 0 && n >= at;
}

static void *noted(void *p) {
    if (!p) failures++;
    return p;
}

size_t base_alloc_fail_after(size_t n) {
    size_t made = atomic_exchange(&alloc_calls, 0);
    atomic_store(&alloc_fail_at, n);
    return made;
}

void *base_malloc(size_t n) {
    if (should_fail()) return NULL;
    return counted(noted(malloc(n ? n : 1)));
}

void *base_calloc(size_t count, size_t size) {
    if (should_fail()) return NULL;
    return counted(noted(calloc(count ? count : 1, size ? size : 1)));
}

void *base_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n ? n : 1);
    if (!noted(q)) return NULL;
    atomic_fetch_sub(&live_bytes, old);
    return counted(q);
}

void base_free(void *p) {
    if (!p) return;
    atomic_fetch_sub(&live_bytes, malloc_usable_size(p));
    free(p);
}

char *base_strndup(const char *s, size_t n) {
    char *d = base_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

void base_alloc_install_json(void) { json_set_alloc_funcs(base_malloc, base_free); }

int buf_reserve(buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return 0;
    size_t need = b->len + extra;
    if (need < b->len) return CEMBED_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap * 2 > cap ? cap * 2 : need;
    char *p = base_realloc(b->ptr, cap);
    if (!p) return CEMBED_ENOMEM;
    b->ptr = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf *b, const void *p, size_t n) {
    if (buf_reserve(b, n + 1)) return CEMBED_ENOMEM;
    memcpy(b->ptr + b->len, p, n);
    b->len += n;
    b->ptr[b->len] = 0;
    return 0;
}

int buf_printf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n + 1)) return CEMBED_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void buf_free(buf *b) {
    base_free(b->ptr);
    *b = (buf){0};
}
