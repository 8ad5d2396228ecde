/* Error codes from the one X-macro table in cembed.h, and the per-thread
 * message that says which file, field or limit a failure was about. */
#include <string.h>

#include "base.h"

static _Thread_local char err_msg[1024];

const char *cembed_strerror(int code) {
    switch (code) {
#define CEMBED_X_CASE(name, c, text) case c: return text;
        CEMBED_ERRORS(CEMBED_X_CASE)
#undef CEMBED_X_CASE
    }
    return "unknown error";
}

const char *cembed_last_error(void) { return err_msg; }

void base_err_clear(void) { err_msg[0] = 0; }

int base_err(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    return code;
}

int base_err_prefix(int code, const char *fmt, ...) {
    char line[sizeof err_msg];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n > sizeof line - 1) n = (int)sizeof line - 1;
    const char *rest = err_msg[0] ? err_msg : cembed_strerror(code);
    size_t room = sizeof line - (size_t)n;
    if (room > 2) {
        line[n] = ':';
        line[n + 1] = ' ';
        size_t k = strlen(rest);
        if (k > room - 3) k = room - 3;
        memcpy(line + n + 2, rest, k);
        line[n + 2 + k] = 0;
    }
    memcpy(err_msg, line, sizeof err_msg);
    return code;
}

void base_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "cembed: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

int str_eq(str a, str b) { return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0); }
int str_eq_cstr(str a, const char *c) { return str_eq(a, str_from(c, strlen(c))); }
