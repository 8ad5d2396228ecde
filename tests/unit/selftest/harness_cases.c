/* Cases for the unit-test harness's own test (tests/integration/runner_test.sh),
 * linked with tests/unit/main.c into build/harness_selftest: 600 passing
 * tests (more than the old fixed table held), one that makes no check (a
 * failure) and one that skips. Expected: "600 passed, 1 failed, 1 skipped". */
#include "test.h"

#define T1(n) \
    TEST(n) { CHECK(1); }
#define T10(p) T1(p##0) T1(p##1) T1(p##2) T1(p##3) T1(p##4) T1(p##5) T1(p##6) T1(p##7) T1(p##8) T1(p##9)
#define T100(p) T10(p##0) T10(p##1) T10(p##2) T10(p##3) T10(p##4) T10(p##5) T10(p##6) T10(p##7) T10(p##8) T10(p##9)
T100(a) T100(b) T100(c) T100(d) T100(e) T100(f)

TEST(made_no_check) {}

TEST(cannot_run_here) { TEST_SKIP("no such thing on this machine"); }
