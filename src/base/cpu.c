/* CPU facts: how many CPUs this process may really use (affinity and the
 * cgroup CPU quota, as containers set them), and the SIMD features that
 * select kernels at run time, read from CPUID and capped by
 * ONEDNN_MAX_CPU_ISA, so that one variable lowers oneDNN's dispatch and
 * ours together (the tests run every level a machine has that way). */
#include <cpuid.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base.h"

/* CPUs a v2 cpu.max ("max 100000" or "200000 100000") or a v1 quota/period
 * pair grants; 0 for no limit or an unreadable file */
static double read_quota(const char *dir, int v2) {
    char path[900], b[128];
    double q = 0, p = 0;
    snprintf(path, sizeof path, v2 ? "%s/cpu.max" : "%s/cpu.cfs_quota_us", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fgets(b, sizeof b, f) != NULL;
    fclose(f);
    if (!ok || strncmp(b, "max", 3) == 0) return 0;
    if (v2) return sscanf(b, "%lf %lf", &q, &p) == 2 && q > 0 && p > 0 ? q / p : 0;
    if (sscanf(b, "%lf", &q) != 1 || q <= 0) return 0;   /* -1: unlimited */
    snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
    if (!(f = fopen(path, "r"))) return 0;
    ok = fscanf(f, "%lf", &p) == 1;
    fclose(f);
    return ok && p > 0 ? q / p : 0;
}

/* the smallest quota seen so far (0: none) */
static void min_quota(const char *dir, const char *path, int v2, void *ctx) {
    (void)path;
    double *best = ctx;
    const double q = read_quota(dir, v2);
    if (q > 0 && (*best == 0 || q < *best)) *best = q;
}

double cpu_quota(const char *root, const char *self_cgroup) {
    double best = 0;
    cgroup_each_dir(root, self_cgroup, "cpu", min_quota, &best);
    return best;
}

int cpu_usable(void) {
    int n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = 1;
    double quota = cpu_quota("/sys/fs/cgroup", "/proc/self/cgroup");
    if (quota > 0) {
        int q = (int)quota;
        if ((double)q < quota) q++;
        if (q < n) n = q;
    }
    return n < 1 ? 1 : n;
}

/* Feature bits from CPUID leaf 7 (and 1 for FMA), valid only where the OS
 * saves the registers they use (XGETBV: YMM for AVX2, opmask + ZMM for
 * AVX-512, the tile state for AMX). */
static unsigned detect(void) {
    unsigned a, b, c, d, f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return 0;
    const int fma = (c & bit_FMA) != 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    const unsigned long long xcr0 = ((unsigned long long)hi << 32) | lo;
    if ((xcr0 & 0x6) != 0x6) return 0;   /* SSE and AVX state */
    const int zmm = (xcr0 & 0xe0) == 0xe0, tiles = (xcr0 & 0x60000) == 0x60000;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if ((b & bit_AVX2) && fma) f |= CPU_AVX2 | CPU_FMA;
    if (zmm && (b & bit_AVX512F) && (b & bit_AVX512BW) && (b & bit_AVX512VL) && (b & bit_AVX512DQ))
        f |= CPU_AVX512F;
    if ((f & CPU_AVX512F) && (c & bit_AVX512VNNI)) f |= CPU_AVX512VNNI;
    const int amx = tiles && (d & (1u << 24)) && (d & (1u << 25)) && (d & (1u << 22)); /* tile, int8, bf16 */
    unsigned a1, b1, c1, d1;
    if ((f & CPU_AVX512F) && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 5))) f |= CPU_AVX512BF16;
    if ((f & CPU_AVX512BF16) && (f & CPU_AVX512VNNI) && amx) f |= CPU_AMX;
    return f;
}

/* The ISA levels, oneDNN's names, each with the features it adds */
static const struct {
    const char *name;
    unsigned features;
} levels[] = {
    {"SSE41", 0},
    {"AVX2", CPU_AVX2 | CPU_FMA},
    {"AVX512_CORE", CPU_AVX2 | CPU_FMA | CPU_AVX512F},
    {"AVX512_CORE_VNNI", CPU_AVX2 | CPU_FMA | CPU_AVX512F | CPU_AVX512VNNI},
    {"AVX512_CORE_BF16", CPU_AVX2 | CPU_FMA | CPU_AVX512F | CPU_AVX512VNNI | CPU_AVX512BF16},
    {"AVX512_CORE_AMX", CPU_AVX2 | CPU_FMA | CPU_AVX512F | CPU_AVX512VNNI | CPU_AVX512BF16 | CPU_AMX},
};
#define N_LEVELS ((int)(sizeof levels / sizeof *levels))

/* What ONEDNN_MAX_CPU_ISA allows: every feature of the named level (ALL or
 * unset: everything; AVX, SSE41 or an unknown name: none of ours; AVX2_VNNI
 * counts as AVX2). */
static unsigned isa_cap(void) {
    const char *v = getenv("ONEDNN_MAX_CPU_ISA");
    if (!v || !*v || !strcasecmp(v, "ALL")) return ~0u;
    if (!strcasecmp(v, "AVX2_VNNI")) return levels[1].features;
    for (int i = 0; i < N_LEVELS; i++)
        if (!strcasecmp(v, levels[i].name)) return levels[i].features;
    return 0;
}

unsigned cpu_features(void) {
    static unsigned cached;
    static int done;
    if (!done) {
        cached = detect() & isa_cap();
        done = 1;
    }
    return cached;
}

int cpu_bf16_dot_fast(void) {
    unsigned a, b, c, d;
    if (!(cpu_features() & CPU_AVX512BF16) || !__get_cpuid(0, &a, &b, &c, &d)) return 0;
    return b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;   /* "AuthenticAMD" */
}

const char *cpu_isa_name(unsigned features) {
    const char *name = levels[0].name;
    for (int i = 1; i < N_LEVELS; i++)
        if ((features & levels[i].features) == levels[i].features) name = levels[i].name;
    return name;
}

int cpu_isa_levels(const char **names, int max) {
    const unsigned have = detect();
    int n = 0;
    for (int i = 1; i < N_LEVELS && n < max; i++)
        if ((have & levels[i].features) == levels[i].features) names[n++] = levels[i].name;
    return n;
}
