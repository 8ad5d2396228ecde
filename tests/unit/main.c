/* Unit test runner: runs every TEST (or those whose name contains argv[1])
 * and prints "N passed, N failed, N skipped" last. Tests are registered
 * without a limit (a fixed table once dropped the ones past its end). */
#include <stdlib.h>

#include "base/base.h"
#include "test.h"

static struct test_entry {
    const char *name;
    test_fn fn;
} *tests;
static int n_tests, cap_tests;
int test_failed_checks, test_checks;
const char *test_skip_reason;
static char tmpdir[64];

const char *test_tmpdir(void) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/cembed-unit-XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return tmpdir;
}

void test_register(const char *name, test_fn fn) {
    if (n_tests == cap_tests) { /* constructors run before main: plain realloc, never dropped */
        cap_tests = cap_tests ? 2 * cap_tests : 256;
        struct test_entry *t = realloc(tests, (size_t)cap_tests * sizeof *t);
        if (!t) {
            fprintf(stderr, "cannot register test %s: out of memory\n", name);
            exit(1);
        }
        tests = t;
    }
    tests[n_tests].name = name;
    tests[n_tests++].fn = fn;
}

int main(int argc, char **argv) {
    base_alloc_install_json();
    log_set_level(LOG_ERROR);
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n_tests; i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1])) continue;
        const int before = test_failed_checks, checks = test_checks;
        test_skip_reason = NULL;
        tests[i].fn();
        base_alloc_fail_after(0);
        if (test_failed_checks != before) {
            failed++;
            fprintf(stderr, "FAIL %s\n", tests[i].name);
        } else if (test_skip_reason) {
            skipped++;
            fprintf(stderr, "SKIP %s: %s\n", tests[i].name, test_skip_reason);
        } else if (test_checks == checks) {
            failed++;
            fprintf(stderr, "FAIL %s: it made no check\n", tests[i].name);
        } else {
            passed++;
        }
    }
    if (tmpdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
    }
    free(tests);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
