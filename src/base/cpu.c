/* CPU facts: how many CPUs this process may really use (affinity and the
 * cgroup CPU quota, as containers set them), and the SIMD features that
 * select kernels at run time. */
#include <sched.h>
#include <string.h>

#include "base.h"

static double cgroup_cpu_quota(void) {
    char b[128];
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");   /* v2: "max 100000" or "200000 100000" */
    if (f) {
        double q = 0, p = 0;
        int ok = fgets(b, sizeof b, f) != NULL;
        fclose(f);
        if (ok && strncmp(b, "max", 3) != 0 && sscanf(b, "%lf %lf", &q, &p) == 2 && q > 0 && p > 0)
            return q / p;
        return 0;
    }
    double q = 0, p = 0;   /* v1 */
    f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r");
    if (!f) return 0;
    int ok = fscanf(f, "%lf", &q) == 1;
    fclose(f);
    f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r");
    if (!f) return 0;
    ok = ok && fscanf(f, "%lf", &p) == 1;
    fclose(f);
    return ok && q > 0 && p > 0 ? q / p : 0;
}

int cpu_usable(void) {
    int n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = 1;
    double quota = cgroup_cpu_quota();
    if (quota > 0) {
        int q = (int)quota;
        if ((double)q < quota) q++;
        if (q < n) n = q;
    }
    return n < 1 ? 1 : n;
}

static unsigned feature_mask = ~0u;

unsigned cpu_features(void) {
    static unsigned cached;
    static int done;
    if (!done) {
        __builtin_cpu_init();
        unsigned f = 0;
        if (__builtin_cpu_supports("avx2")) f |= CPU_AVX2;
        if (__builtin_cpu_supports("fma")) f |= CPU_FMA;
        if (__builtin_cpu_supports("avx512f")) f |= CPU_AVX512F;
        if (__builtin_cpu_supports("avx512vnni")) f |= CPU_AVX512VNNI;
#if defined(__GNUC__) && __GNUC__ >= 12
        if (__builtin_cpu_supports("avx512bf16")) f |= CPU_AVX512BF16;
#endif
        cached = f;
        done = 1;
    }
    return cached & feature_mask;
}

void cpu_features_mask(unsigned allowed) { feature_mask = allowed; }
