/* A minimal unit-test harness: TEST(name) defines a test, the runner in
 * main.c runs them all and ends with "N passed, N failed, N skipped".
 * Failed checks print both values with file and line and fail the current
 * test; a test that makes no check fails too (it tested nothing), and one
 * that cannot run here says TEST_SKIP(reason) and counts as skipped. */
#ifndef CEMBED_TEST_H
#define CEMBED_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);
extern int test_failed_checks;
extern int test_checks;         /* checks made, passed or not */
extern const char *test_skip_reason;
/* A temporary directory for this run, removed at exit. */
const char *test_tmpdir(void);

#define TEST(name)                                                           \
    static void test_##name(void);                                           \
    __attribute__((constructor)) static void reg_##name(void) {              \
        test_register(#name, test_##name);                                   \
    }                                                                        \
    static void test_##name(void)

/* Ends the current test as skipped (return from the test after it). */
#define TEST_SKIP(reason) (test_skip_reason = (reason))

#define FAIL_AT(...)                                                         \
    do {                                                                     \
        test_checks++;                                                       \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                    \
        fprintf(stderr, __VA_ARGS__);                                        \
        fputc('\n', stderr);                                                 \
        test_failed_checks++;                                                \
    } while (0)

#define CHECK(x)                                                             \
    do {                                                                     \
        test_checks++;                                                       \
        if (!(x)) FAIL_AT("check failed: %s", #x);                           \
    } while (0)
/* A check with its own message: fails (printing it) when cond is false. */
#define CHECK_MSG(cond, ...)                                                 \
    do {                                                                     \
        test_checks++;                                                       \
        if (!(cond)) FAIL_AT(__VA_ARGS__);                                   \
    } while (0)
#define CHECK_INT(a, b)                                                      \
    do {                                                                     \
        long long va_ = (long long)(a), vb_ = (long long)(b);                \
        test_checks++;                                                       \
        if (va_ != vb_) FAIL_AT("%s == %s: %lld != %lld", #a, #b, va_, vb_); \
    } while (0)
#define CHECK_STR(a, b)                                                      \
    do {                                                                     \
        const char *sa_ = (a), *sb_ = (b);                                   \
        test_checks++;                                                       \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0)                           \
            FAIL_AT("%s == %s: \"%s\" != \"%s\"", #a, #b, sa_ ? sa_ : "(null)", \
                    sb_ ? sb_ : "(null)");                                   \
    } while (0)
#define CHECK_CONTAINS(hay, needle)                                          \
    do {                                                                     \
        const char *h_ = (hay), *n_ = (needle);                              \
        test_checks++;                                                       \
        if (!h_ || !strstr(h_, n_)) FAIL_AT("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                \
    do {                                                                     \
        double da_ = (a), db_ = (b);                                         \
        test_checks++;                                                       \
        if (!(fabs(da_ - db_) <= (tol)))                                     \
            FAIL_AT("%s ~ %s: %.9g != %.9g (tol %g)", #a, #b, da_, db_, (double)(tol)); \
    } while (0)

/* Writes text to dir/name (name NULL: to dir itself); a failure fails the test. */
static inline void test_write_file(const char *dir, const char *name, const char *text) {
    char p[1200];
    snprintf(p, sizeof p, name ? "%s/%s" : "%s", dir, name ? name : "");
    FILE *f = fopen(p, "w");
    if (!f) {
        FAIL_AT("cannot write %s", p);
        return;
    }
    fputs(text, f);
    fclose(f);
}

#endif
