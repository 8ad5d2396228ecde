/* The run's timers; see prof.h. The table at exit derives three rows from
 * the counters: the GEMM alone (the seam's time less the quantize and
 * epilogue kernels run inside it), GELU (what an epilogue with GELU fused
 * costs beyond the same epilogue without it, at the plain one's rate per
 * element, plus GELU run on its own), and what neither start-up nor the
 * timed pieces cover. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/prof.h"

int prof_enabled;

static _Atomic uint64_t ns[PROF_COUNT], calls[PROF_COUNT];
static _Atomic double work[PROF_COUNT];
static uint64_t t_start;
static char what[200];
static int n_threads = 1;

uint64_t prof_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void prof_add(prof_id id, uint64_t t0, double w) {
    atomic_fetch_add_explicit(&ns[id], prof_now() - t0, memory_order_relaxed);
    atomic_fetch_add_explicit(&calls[id], 1, memory_order_relaxed);
    double old = atomic_load_explicit(&work[id], memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&work[id], &old, old + w, memory_order_relaxed, memory_order_relaxed)) {}
}

void prof_describe(const char *w, int threads) {
    snprintf(what, sizeof what, "%s", w);
    n_threads = threads > 0 ? threads : 1;
}

static double sec(prof_id id) { return (double)atomic_load(&ns[id]) / 1e9; }

/* One row: name, seconds (summed over threads for compute rows), the wall
 * time it stands for, its share of the process and a rate. */
static void row(FILE *f, int tsv, const char *name, double s, double wall, double total, double w, const char *unit,
                double scale) {
    const double rate = s > 0 && w > 0 ? w / s / scale : 0;
    if (tsv) {
        fprintf(f, "prof\t%s\t%.6f\t%.6f\t%.4f\t%.6g\t%s\n", name, s, wall, total > 0 ? wall / total : 0, rate, unit);
        return;
    }
    fprintf(f, "  %-34s %9.4f %9.4f %6.1f%%", name, s, wall, total > 0 ? 100 * wall / total : 0);
    if (rate > 0) fprintf(f, "  %10.2f %s", rate, unit);
    fputc('\n', f);
}

void prof_report(FILE *f) {
    const double total = (double)(prof_now() - t_start) / 1e9, th = n_threads;
    const char *mode = getenv("CEMBED_PROFILE");
    const int tsv = mode && strcmp(mode, "tsv") == 0;
    /* the epilogue with GELU fused: its plain part at the plain epilogue's rate per element, GELU the rest */
    const double plain_rate = work[PROF_DEQUANT] > 0 ? sec(PROF_DEQUANT) / work[PROF_DEQUANT] : 0;
    const double gelu_plain = fmin(sec(PROF_DEQUANT_GELU), plain_rate * work[PROF_DEQUANT_GELU]);
    const double dequant = sec(PROF_DEQUANT) + gelu_plain, gelu = sec(PROF_DEQUANT_GELU) - gelu_plain + sec(PROF_GELU) +
                                                       sec(PROF_GELU_IN_GEMM);
    const double gemm = sec(PROF_GEMM_ALL) - sec(PROF_QUANTIZE) - sec(PROF_DEQUANT) - sec(PROF_DEQUANT_GELU) -
                        sec(PROF_GELU_IN_GEMM);
    const double fwd = sec(PROF_FORWARD);
    const double inner = (sec(PROF_GEMM_ALL) + sec(PROF_GELU) + sec(PROF_ATTENTION) + sec(PROF_LAYERNORM) +
                          sec(PROF_ELEMENTWISE)) / th;
    /* PROF_ENGINE_OTHER spans the GEMM backend's start-up too */
    const double engine = fmax(0, sec(PROF_ENGINE_OTHER) - sec(PROF_PRIMITIVES) - sec(PROF_PREPARE));
    const double start = sec(PROF_OPEN);
    /* the tokenizer loads beside the weights: the wall it adds is what opening waited for it */
    const double tok_wall = fmax(0, start - sec(PROF_LOAD_WEIGHTS) - sec(PROF_ENGINE_OTHER));
    if (!tsv) {
        fprintf(f, "cembed profile: %s, %d threads, %.4f s in the process (after loading its libraries)\n", what,
                n_threads, total);
        fprintf(f, "  %-34s %9s %9s %7s  %s\n", "", "seconds", "wall", "share", "rate");
    } else {
        fprintf(f, "prof\t#what\t%s\t%d\t%.6f\n", what, n_threads, total);
    }
    row(f, tsv, "start-up: weights (map, views)", sec(PROF_LOAD_WEIGHTS), sec(PROF_LOAD_WEIGHTS), total, 0, "", 1);
    row(f, tsv, "start-up: tokenizer (own thread)", sec(PROF_LOAD_TOKENIZER), tok_wall, total, 0, "", 1);
    row(f, tsv, "start-up: GEMM primitives", sec(PROF_PRIMITIVES), sec(PROF_PRIMITIVES), total, 0, "", 1);
    row(f, tsv, "start-up: weights quantize/reorder", sec(PROF_PREPARE), sec(PROF_PREPARE), total, work[PROF_PREPARE],
        "Mweights/s", 1e6);
    row(f, tsv, "start-up: threads, workspace", engine, engine, total, 0, "", 1);
    row(f, tsv, "tokenizing", sec(PROF_TOKENIZE), sec(PROF_TOKENIZE), total, work[PROF_TOKENIZE], "Mtokens/s", 1e6);
    row(f, tsv, "forward pass (wall)", fwd, fwd, total, work[PROF_FORWARD], "tokens/s", 1);
    row(f, tsv, "  GEMM", gemm, gemm / th, total, work[PROF_GEMM], "GFLOP/s/thread", 1e9);
    row(f, tsv, "  attention", sec(PROF_ATTENTION), sec(PROF_ATTENTION) / th, total, work[PROF_ATTENTION],
        "GFLOP/s/thread", 1e9);
    row(f, tsv, "  quantize activations", sec(PROF_QUANTIZE), sec(PROF_QUANTIZE) / th, total, work[PROF_QUANTIZE],
        "Melem/s/thread", 1e6);
    row(f, tsv, "  dequantize + bias", dequant, dequant / th, total, work[PROF_DEQUANT] + work[PROF_DEQUANT_GELU],
        "Melem/s/thread", 1e6);
    row(f, tsv, "  GELU", gelu, gelu / th, total, work[PROF_DEQUANT_GELU] + work[PROF_GELU] + work[PROF_GELU_IN_GEMM],
        "Melem/s/thread", 1e6);
    row(f, tsv, "  LayerNorm + residual", sec(PROF_LAYERNORM), sec(PROF_LAYERNORM) / th, total, work[PROF_LAYERNORM],
        "Melem/s/thread", 1e6);
    row(f, tsv, "  bias, other element-wise", sec(PROF_ELEMENTWISE), sec(PROF_ELEMENTWISE) / th, total,
        work[PROF_ELEMENTWISE], "Melem/s/thread", 1e6);
    row(f, tsv, "  embeddings, pooling, waits", fwd - inner, fwd - inner, total, 0, "", 1);
    row(f, tsv, "output writing", sec(PROF_OUTPUT), sec(PROF_OUTPUT), total, work[PROF_OUTPUT], "MB/s", 1e6);
    const double rest = total - start - sec(PROF_TOKENIZE) - fwd - sec(PROF_OUTPUT);
    row(f, tsv, "the rest (input, arguments, exit)", rest, rest, total, 0, "", 1);
}

static void at_exit(void) { prof_report(stderr); }

__attribute__((constructor)) static void prof_init(void) {
    const char *v = getenv("CEMBED_PROFILE");
    if (!v || !*v || strcmp(v, "0") == 0) return;
    prof_enabled = 1;
    t_start = prof_now();
    atexit(at_exit);
}
