/* Unit tests of src/gov: limit discovery on fake cgroup trees, and the
 * adaptive batch size (start at min, +4 per good batch, halve on pressure). */
#include <stdlib.h>
#include <sys/stat.h>

#include "gov/gov.h"
#include "test.h"

TEST(gov_limit_from_cgroup_v2_ancestors_and_v1) {
    char root[256], p[512], self[512];
    snprintf(root, sizeof root, "%s/cg", test_tmpdir());
    mkdir(root, 0755);
    snprintf(p, sizeof p, "%s/a", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/a/b", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/a/memory.max", root);
    test_write_file(p, NULL, "1073741824\n");
    snprintf(p, sizeof p, "%s/a/b/memory.max", root);
    test_write_file(p, NULL, "max\n");
    snprintf(self, sizeof self, "%s/self-v2", test_tmpdir());
    test_write_file(self, NULL, "0::/a/b\n");
    gov_limit l;
    gov_find_limit(root, self, 8ull << 30, &l);
    CHECK_INT(l.bytes, 1073741824);
    CHECK_CONTAINS(l.source, "cgroup v2 memory.max of /a");
    /* RAM smaller than the cgroup limit wins */
    gov_find_limit(root, self, 512u << 20, &l);
    CHECK_INT(l.bytes, 512u << 20);
    CHECK_STR(l.source, "physical RAM");
    /* v1 */
    snprintf(p, sizeof p, "%s/memory", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/memory/job", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/memory/job/memory.limit_in_bytes", root);
    test_write_file(p, NULL, "268435456\n");
    snprintf(self, sizeof self, "%s/self-v1", test_tmpdir());
    test_write_file(self, NULL, "5:cpu,cpuacct:/job\n4:memory:/job\n");
    gov_find_limit(root, self, 8ull << 30, &l);
    CHECK_INT(l.bytes, 268435456);
    CHECK_CONTAINS(l.source, "cgroup v1");
    /* no cgroup file at all */
    gov_find_limit(root, "/nonexistent", 4096, &l);
    CHECK_INT(l.bytes, 4096);
}

/* Fake probes: the policy sees what the test says, and the test sees what
 * the policy did. */
typedef struct fake {
    uint64_t rss, rss_after_trim;   /* a trim sets rss to rss_after_trim when that is not 0 */
    double psi, now;
    int trims;
} fake;
static uint64_t fake_rss(void *c) { return ((fake *)c)->rss; }
static double fake_psi(void *c) { return ((fake *)c)->psi; }
static double fake_now(void *c) { return ((fake *)c)->now; }
static void fake_trim(void *c) {
    fake *f = c;
    f->trims++;
    if (f->rss_after_trim) f->rss = f->rss_after_trim;
}
static void use_fake(gov *g, fake *f) {
    const gov_probes p = {.rss = fake_rss, .psi = fake_psi, .trim = fake_trim, .now = fake_now, .ctx = f};
    gov_set_probes(g, &p);
}

TEST(gov_adaptive_batch_size) {
    gov_limit l = {.bytes = 1000000};
    gov_config c = {.min_batch = 8, .max_batch = 64, .percent = 70, .adaptive = 1};
    gov *g;
    fake f = {0};
    CHECK_INT(gov_new(&c, &l, &g), 0);
    use_fake(g, &f);
    CHECK_INT(gov_budget(g), 700000);
    CHECK_INT(gov_batch_size(g), 8);
    for (int i = 0; i < 20; i++) gov_good_batch(g);
    CHECK_INT(gov_batch_size(g), 64);   /* 8 + 4k, capped */
    CHECK_INT(f.trims, 2);              /* every 10 batches */
    CHECK_INT(gov_pressure(g), 32);
    CHECK_INT(gov_pressure(g), 16);
    for (int i = 0; i < 10; i++) gov_pressure(g);
    CHECK_INT(gov_batch_size(g), 1);
    CHECK(gov_over_budget(g, 600000, 100001));
    CHECK(!gov_over_budget(g, 600000, 100000));
    gov_stats st;
    gov_get_stats(g, &st);
    CHECK_INT(st.pressure_events, 12);
    gov_free(g);
    c.adaptive = 0;
    CHECK_INT(gov_new(&c, &l, &g), 0);
    CHECK_INT(gov_batch_size(g), 64);
    gov_free(g);
    c.percent = 0;
    CHECK_INT(gov_new(&c, &l, &g), CEMBED_EINVAL);
    CHECK_CONTAINS(cembed_last_error(), "EMBEDDING_MAX_MEMORY_PERCENT");
    c.percent = 70;
    c.min_batch = 100;
    CHECK_INT(gov_new(&c, &l, &g), CEMBED_EINVAL);
    CHECK_CONTAINS(cembed_last_error(), "EMBEDDING_MIN_BATCH_SIZE");
}

/* The pressure loop as the scheduler runs it: check before each batch,
 * rebuild smaller while there is pressure, grow again after good batches;
 * PSI acted on once per 10 s; a batch of one goes ahead. */
TEST(gov_pressure_halve_retry_with_fake_probes) {
    gov_limit l = {.bytes = 1000u << 20};
    gov_config c = {.min_batch = 8, .max_batch = 64, .percent = 50, .adaptive = 1};
    gov *g;
    fake f = {.rss = 100u << 20, .now = 1000};
    CHECK_INT(gov_new(&c, &l, &g), 0);
    use_fake(g, &f);
    gov_set_psi(g, "/fake/memory.pressure", 10);
    CHECK_INT(gov_check_batch(g, 10u << 20, 8), 0);   /* 110 MB of a 500 MB budget */
    gov_good_batch(g);
    CHECK_INT(gov_batch_size(g), 12);
    /* RSS near the budget: halve, and the trim does not help at first */
    f.rss = 495u << 20;
    int k = gov_batch_size(g), rounds = 0;
    while (gov_check_batch(g, 10u << 20, k) && k > 1) {
        k = CE_MIN(k, gov_batch_size(g));
        rounds++;
        if (rounds == 1) f.rss_after_trim = 200u << 20;   /* the second trim frees memory */
    }
    /* 12 -> 6 -> 3: the third check (after the second trim brought RSS down) passes */
    CHECK_INT(rounds, 2);
    CHECK_INT(k, 3);
    CHECK_INT(gov_batch_size(g), 3);
    CHECK_INT(f.trims, 2);
    gov_stats st;
    gov_get_stats(g, &st);
    CHECK_INT(st.pressure_events, 2);
    /* a single sequence over the budget: pressure is noted, the batch goes ahead (1 is the floor) */
    f.rss = 600u << 20;
    f.rss_after_trim = 0;
    for (int i = 0; i < 5; i++) gov_check_batch(g, 0, 1);
    CHECK_INT(gov_batch_size(g), 1);
    /* recovery: +4 per good batch */
    f.rss = 100u << 20;
    gov_good_batch(g);
    gov_good_batch(g);
    CHECK_INT(gov_batch_size(g), 9);
    /* PSI over its threshold: pressure once, then not again for 10 s of its avg10 */
    f.psi = 25;
    CHECK_INT(gov_check_batch(g, 0, 9), 1);
    CHECK_INT(gov_batch_size(g), 4);
    CHECK_INT(gov_check_batch(g, 0, 4), 0);
    f.now += 11;
    CHECK_INT(gov_check_batch(g, 0, 4), 1);
    CHECK_INT(gov_batch_size(g), 2);
    f.psi = 5;
    f.now += 11;
    CHECK_INT(gov_check_batch(g, 0, 2), 0);
    gov_get_stats(g, &st);
    CHECK_INT(st.psi_events, 2);
    /* reservations: an RSS over the budget refuses after one trim, a trim that frees memory lets it through */
    int tokens;
    CHECK_INT(gov_plan(g, 100u << 20, 1024, 4096, 256, &tokens), 0);
    f.rss = 490u << 20;
    const int trims = f.trims;
    CHECK_INT(gov_reserve(g, 20u << 20), CEMBED_ELIMIT);
    CHECK_CONTAINS(cembed_last_error(), "budget");
    CHECK_INT(f.trims, trims + 1);
    f.rss_after_trim = 150u << 20;
    CHECK_INT(gov_reserve(g, 20u << 20), 0);
    gov_unreserve(g, 20u << 20);
    gov_free(g);
}

TEST(gov_plan_and_reservations) {
    /* "fixed" is what the process holds, as a real plan measures it (the
     * reservations' RSS gate compares against the real RSS: under ASan, or
     * after other tests, that is hundreds of MB) */
    const uint64_t fixed = ((gov_rss() >> 20) + 16) << 20, budget = fixed + (400u << 20);
    gov_limit lim = {.bytes = 2 * budget};
    snprintf(lim.source, sizeof lim.source, "test");
    gov_config c = {.min_batch = 8, .max_batch = 64, .percent = 50, .adaptive = 1};
    gov *g;
    CHECK_INT(gov_new(&c, &lim, &g), 0);
    /* budget = fixed + 400 MiB, 5% slack: half of what is left for the workspace, capped by max_tokens */
    int tokens;
    const uint64_t left = gov_budget(g) - fixed - gov_budget(g) / 20;   /* gov_budget: budget to 100-byte units */
    CHECK_INT(gov_plan(g, fixed, 10240, 1 << 20, 256, &tokens), 0);
    CHECK_INT(tokens, left / 2 / 10240);
    CHECK_INT(gov_pool(g), left - (uint64_t)tokens * 10240);
    CHECK_INT(gov_plan(g, fixed, 10240, 4096, 256, &tokens), 0);
    CHECK_INT(tokens, 4096);
    CHECK_INT(gov_pool(g), left - 4096u * 10240);
    /* reservations: fit, refuse past the pool, give back */
    const uint64_t pool = gov_pool(g);
    CHECK_INT(gov_reserve(g, pool - 10), 0);
    CHECK_INT(gov_reserve(g, 11), CEMBED_ELIMIT);
    CHECK_CONTAINS(cembed_last_error(), "request pool");
    CHECK_INT(gov_reserve(g, 10), 0);
    gov_unreserve(g, pool);
    CHECK_INT(gov_reserve(g, pool), 0);
    gov_unreserve(g, pool);
    gov_stats st;
    gov_get_stats(g, &st);
    CHECK_INT(st.reserved, 0);
    CHECK_INT(st.reserved_peak, pool);
    CHECK_INT(st.refusals, 1);
    /* a budget that cannot hold the model and one sequence is refused, naming the setting */
    CHECK_INT(gov_plan(g, budget - (20u << 20), 10240, 4096, 256, &tokens), CEMBED_EINVAL);
    CHECK_CONTAINS(cembed_last_error(), "EMBEDDING_MAX_MEMORY_PERCENT");
    gov_free(g);
}

TEST(gov_psi_files) {
    char p[700], self[512], dir[300];
    snprintf(p, sizeof p, "%s/psi", test_tmpdir());
    test_write_file(p, NULL, "some avg10=12.50 avg60=3.00 avg300=1.00 total=99\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=1\n");
    CHECK_NEAR(gov_psi_avg10(p), 12.5, 1e-9);
    test_write_file(p, NULL, "garbage\n");
    CHECK_NEAR(gov_psi_avg10(p), -1, 0);
    CHECK_NEAR(gov_psi_avg10("/nonexistent/psi"), -1, 0);
    /* the cgroup v2 memory.pressure of the process's own cgroup comes first */
    snprintf(dir, sizeof dir, "%s/psiroot", test_tmpdir());
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/svc", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/svc/memory.pressure", dir);
    test_write_file(p, NULL, "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
    snprintf(self, sizeof self, "%s/self", test_tmpdir());
    test_write_file(self, NULL, "0::/svc\n");
    char got[600];
    CHECK_INT(gov_psi_path(dir, self, got, sizeof got), 0);
    CHECK_STR(got, p);
}
