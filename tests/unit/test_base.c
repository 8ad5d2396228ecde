/* Unit tests of src/base: UTF-8, buffers, the counted allocator, pool. */
#include <stdatomic.h>

#include "base/base.h"
#include "base/pool.h"
#include "test.h"

TEST(utf8_decode_valid_and_invalid) {
    uint32_t out[32];
    size_t n = utf8_decode("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10, out);
    CHECK_INT(n, 4);
    CHECK_INT(out[0], 'a');
    CHECK_INT(out[1], 0xE9);
    CHECK_INT(out[2], 0x20AC);
    CHECK_INT(out[3], 0x1F600);
    /* lone continuation, overlong, surrogate, truncated sequence */
    n = utf8_decode("\x80x\xc0\xafy\xed\xa0\x80z\xe2\x82", 11, out);
    CHECK_INT(out[0], 0xFFFD);
    CHECK_INT(out[1], 'x');
    int fffd = 0;
    for (size_t i = 0; i < n; i++) fffd += out[i] == 0xFFFD;
    CHECK(fffd >= 4);
    CHECK_INT(out[n - 1], 0xFFFD);
    for (size_t i = 0; i < n; i++) CHECK(out[i] <= 0x10FFFF && (out[i] < 0xD800 || out[i] > 0xDFFF));
}

TEST(utf8_sanitize_gives_valid_utf8) {
    buf b = {0};
    CHECK_INT(utf8_sanitize("ok \xff\xfe end \xc3\xa9", 13, &b), 0);
    CHECK_STR(b.ptr, "ok \xef\xbf\xbd\xef\xbf\xbd end \xc3\xa9");
    buf_free(&b);
}

TEST(utf8_sanitize_invalid_bytes_then_ascii) {
    /* found by fuzz_record: replacements (1 byte -> 3) followed by ASCII
     * overflowed a buffer sized for the input */
    char in[1000];
    memset(in, 0xff, 300);
    memset(in + 300, 'a', 700);
    buf b = {0};
    CHECK_INT(utf8_sanitize(in, sizeof in, &b), 0);
    CHECK_INT(b.len, 300 * 3 + 700);
    CHECK(memcmp(b.ptr, "\xef\xbf\xbd", 3) == 0);
    CHECK_INT(b.ptr[b.len - 1], 'a');
    buf_free(&b);
}

TEST(buf_printf_grows) {
    buf b = {0};
    for (int i = 0; i < 1000; i++) CHECK_INT(buf_printf(&b, "%d,", i), 0);
    CHECK(b.len > 3000);
    CHECK(strncmp(b.ptr, "0,1,2,", 6) == 0);
    buf_free(&b);
}

TEST(alloc_fail_after_counts_and_fails) {
    base_alloc_fail_after(0);
    void *a = base_malloc(10);
    CHECK(a != NULL);
    base_free(a);
    base_alloc_fail_after(2);
    void *b = base_malloc(10), *c = base_malloc(10);
    CHECK(b != NULL);
    CHECK(c == NULL);
    base_free(b);
    base_alloc_fail_after(0);
}

TEST(error_messages_chain) {
    base_err(CEMBED_EFORMAT, "field %s", "x");
    base_err_prefix(CEMBED_EFORMAT, "file %s", "f.json");
    CHECK_STR(cembed_last_error(), "file f.json: field x");
    CHECK_STR(cembed_strerror(CEMBED_ENOMEM), "out of memory");
    CHECK_STR(cembed_strerror(-999), "unknown error");
}

TEST(cpu_usable_is_positive) { CHECK(cpu_usable() >= 1); }

/* the CPU quota on fake cgroup trees: v2 on an ancestor and on the cgroup
 * (the smaller wins), v1 quota/period through a "cpu,cpuacct" line, none */
TEST(cpu_quota_from_cgroup_v2_ancestors_and_v1) {
    char root[128], d[400], self[400];
    snprintf(root, sizeof root, "%s/cpucg", test_tmpdir());
    snprintf(d, sizeof d, "mkdir -p '%s/a/b' '%s/cpu/x/y'", root, root);
    CHECK_INT(system(d), 0);
    snprintf(d, sizeof d, "%s/a", root);
    test_write_file(d, "cpu.max", "300000 100000\n");
    snprintf(d, sizeof d, "%s/a/b", root);
    test_write_file(d, "cpu.max", "max 100000\n");
    snprintf(self, sizeof self, "%s/self-v2", root);
    test_write_file(root, "self-v2", "0::/a/b\n");
    CHECK_NEAR(cpu_quota(root, self), 3.0, 1e-9);
    test_write_file(d, "cpu.max", "150000 100000\n");
    CHECK_NEAR(cpu_quota(root, self), 1.5, 1e-9);
    snprintf(d, sizeof d, "%s/cpu/x", root);
    test_write_file(d, "cpu.cfs_quota_us", "50000\n");
    test_write_file(d, "cpu.cfs_period_us", "100000\n");
    snprintf(d, sizeof d, "%s/cpu/x/y", root);
    test_write_file(d, "cpu.cfs_quota_us", "-1\n");
    test_write_file(d, "cpu.cfs_period_us", "100000\n");
    snprintf(self, sizeof self, "%s/self-v1", root);
    test_write_file(root, "self-v1", "5:memory:/m\n3:cpu,cpuacct:/x/y\n1:name=systemd:/\n");
    CHECK_NEAR(cpu_quota(root, self), 0.5, 1e-9);
    test_write_file(root, "self-none", "3:cpu,cpuacct:/\n");
    snprintf(self, sizeof self, "%s/self-none", root);
    CHECK_NEAR(cpu_quota(root, self), 0.0, 0);
    CHECK_NEAR(cpu_quota(root, "/nonexistent"), 0.0, 0);
}

static void count_fn(void *ctx, int t, int n) {
    atomic_int *c = ctx;
    atomic_fetch_add(&c[0], 1);
    atomic_fetch_add(&c[1], t);
    (void)n;
}

TEST(pool_runs_every_thread) {
    for (int threads = 1; threads <= 4; threads++) {
        pool *p;
        CHECK_INT(pool_new(threads, &p), 0);
        for (int round = 0; round < 50; round++) {
            atomic_int c[2] = {0, 0};
            pool_run(p, count_fn, c);
            CHECK_INT(c[0], threads);
            CHECK_INT(c[1], threads * (threads - 1) / 2);
        }
        pool_free(p);
    }
}

#include "worker/worker.h"

TEST(redis_urls) {
    redis_addr a;
    CHECK_INT(redis_parse_url("redis://127.0.0.1:6390/3", &a), 0);
    CHECK_STR(a.host, "127.0.0.1");
    CHECK_INT(a.port, 6390);
    CHECK_INT(a.db, 3);
    CHECK_INT(redis_parse_url("redis://:pw@cache.internal", &a), 0);
    CHECK_STR(a.host, "cache.internal");
    CHECK_STR(a.password, "pw");
    CHECK_INT(a.port, 6379);
    CHECK_INT(redis_parse_url("redis://user:pw2@h:1", &a), 0);
    CHECK_STR(a.password, "pw2");
    CHECK_INT(redis_parse_url("http://h", &a), CEMBED_EINVAL);
    CHECK_INT(redis_parse_url("redis://h:0", &a), CEMBED_EINVAL);
    CHECK_INT(redis_parse_url("redis://h:70000", &a), CEMBED_EINVAL);
    CHECK_INT(redis_parse_url("redis://h/x", &a), CEMBED_EINVAL);
    CHECK_CONTAINS(cembed_last_error(), "redis://h/x");
}
