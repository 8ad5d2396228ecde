/* The GEMM seam (gemm.h): which backend runs each precision on this CPU,
 * and the backends of our own (packed kernels, scalar reference, BLAS).
 *
 * The table (nn_gemm_pick) comes from build/gemm_peak at each ISA level on
 * one core of an AMD EPYC (Zen 5) with ONEDNN_MAX_CPU_ISA set: GFLOP/s of a
 * layer's mix through this seam (quantization and epilogue included), ours
 * (the AVX2 kernels) / oneDNN, and what oneDNN runs:
 *
 *   level              fp32                 bf16                 int8
 *   AVX2               116 / -  (jit*)      117 / -  (none)      229 / 209 (jit)
 *   AVX512_CORE        119 / 222 (brg)      118 / -  (jit*)      228 / 388 (jit)
 *   AVX512_CORE_VNNI   118 / 218 (brg)      119 / -  (jit*)      230 / 744 (brg vnni)
 *   AVX512_CORE_BF16   120 / 222 (brg)      119 / 388 (brg bf16) 230 / 743 (brg vnni)
 *   (*: oneDNN's jit GEMM, refused for fp32 and bf16: batch invariance)
 *
 * So oneDNN for fp32 and int8 from AVX512_CORE up and for bf16 with
 * AVX512_BF16 (AMX, where oneDNN's own dispatch takes it, is above all of
 * these); our AVX2 kernels below that; the scalar reference without AVX2.
 * bf16 on AVX512_CORE where bf16 dot products are slow or absent (Intel
 * without AMX) runs oneDNN's fp32 brgemm on bf16 weights widened a panel at
 * a time ("bf16w", gemm_dnnl.c): on a 2-core Xeon with AVX512_BF16, one
 * thread at hidden 768 (gemm_peak base), 160 GFLOP/s against 84 for
 * brg:avx512_core_bf16.
 */
#include <stdlib.h>
#include <string.h>

#include "base/prof.h"
#include "gemm.h"

struct nn_gemm {
    const nn_kernels *k;
    nn_precision prec;
    nn_gemm_backend backend;
    int threads;
    int qmax;              /* int8 weights in [-qmax, qmax] (kernels.h, nn_quantize_weight_row) */
    nn_dnnl *dnnl;         /* onednn */
    char *scratch;         /* scalar/avx2: per thread nn_lowp_scratch_bytes(max K) */
    size_t scratch_per_thread;
    char desc[160];
};

nn_gemm_backend nn_gemm_pick(nn_precision p, const nn_kernels *k) {
    if (k == nn_kernels_ref()) return NN_GEMM_SCALAR;
    (void)p;   /* every precision: AVX512_CORE (bf16 without fast bf16 dot products runs as bf16w) */
    const unsigned need = CPU_AVX512F;
    return cpu_features() & need ? NN_GEMM_ONEDNN : NN_GEMM_OWN;
}

static const char *const names[] = {"auto", "scalar", "blas", "avx2", "onednn"};

const char *nn_gemm_backend_name(nn_gemm_backend b) { return names[b]; }

int nn_gemm_backend_parse(const char *s, nn_gemm_backend *out) {
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (!strcmp(s, names[i])) {
            *out = (nn_gemm_backend)i;
            return 0;
        }
    return base_err(CEMBED_EINVAL, "GEMM backend \"%s\": must be auto, onednn, avx2, scalar or blas", s);
}

/* What a backend of our own runs, as nn_gemm_describe says it. */
static const char *own_desc(nn_gemm_backend b) {
    return b == NN_GEMM_BLAS ? "openblas sgemm" : b == NN_GEMM_OWN ? "cembed avx2" : "cembed scalar";
}

/* Whether backend b can run precision p with table k; the reason when not. */
static const char *unusable(nn_gemm_backend b, nn_precision p, const nn_kernels *k) {
    if (b == NN_GEMM_BLAS && p != NN_FP32) return "blas runs fp32 only";
    if (b == NN_GEMM_OWN && k->gemm_lowp == nn_gemm_lowp_ref) return "avx2 needs a CPU with AVX2 and FMA";
    return NULL;
}

void nn_gemm_free(nn_gemm *g) {
    if (!g) return;
    nn_dnnl_free(g->dnnl);
    base_free(g->scratch);
    base_free(g);
}

int nn_gemm_new(const nn_kernels *k, nn_precision prec, nn_gemm_backend want, int threads, const nn_shape *shapes,
                int n_shapes, nn_gemm **out) {
    *out = NULL;
    const nn_gemm_backend b = want == NN_GEMM_AUTO ? nn_gemm_pick(prec, k) : want;
    const char *why = unusable(b, prec, k);
    if (why) return base_err(CEMBED_EINVAL, "GEMM backend %s for %s: %s", names[b], nn_precision_name(prec), why);
    nn_gemm *g = base_calloc(1, sizeof *g);
    if (!g) return base_err(CEMBED_ENOMEM, "out of memory");
    *g = (nn_gemm){.k = k, .prec = prec, .backend = b, .threads = threads, .qmax = 63};
    int rc = 0;
    const uint64_t t0 = PROF_START();
    if (b == NN_GEMM_ONEDNN) {
        rc = nn_dnnl_new(prec, threads, shapes, n_shapes, &g->dnnl);
        if (rc && want == NN_GEMM_AUTO) {   /* the table's pick failed here: our kernels serve */
            log_warn("GEMM: %s; using cembed's kernels for %s", cembed_last_error(), nn_precision_name(prec));
            nn_gemm_free(g);
            return nn_gemm_new(k, prec, k->gemm_lowp == nn_gemm_lowp_ref ? NN_GEMM_SCALAR : NN_GEMM_OWN, threads,
                               shapes, n_shapes, out);
        }
        if (!rc) snprintf(g->desc, sizeof g->desc, "%s", nn_dnnl_describe(g->dnnl));
        if (!rc) g->qmax = nn_dnnl_qmax(g->dnnl);
    } else if (b == NN_GEMM_BLAS) {
        rc = nn_gemm_init();
        snprintf(g->desc, sizeof g->desc, "%s", own_desc(b));
    } else {
        int max_k = 0;
        for (int i = 0; i < n_shapes; i++) max_k = CE_MAX(max_k, shapes[i].K);
        g->scratch_per_thread = (nn_lowp_scratch_bytes(max_k) + 63) & ~(size_t)63;
        g->scratch = base_malloc((size_t)threads * g->scratch_per_thread);
        if (!g->scratch) rc = base_err(CEMBED_ENOMEM, "out of memory for the GEMM scratch");
        snprintf(g->desc, sizeof g->desc, "%s", own_desc(b));
    }
    if (rc) {
        nn_gemm_free(g);
        return rc;
    }
    PROF_END(PROF_PRIMITIVES, t0, 0);
    *out = g;
    return 0;
}

int nn_gemm_prepare(nn_gemm *g, const float *W, int N, int K, nn_linear *out) {
    const uint64_t t0 = PROF_START();
    int rc = 0;
    switch (g->backend) {
    case NN_GEMM_ONEDNN: rc = nn_dnnl_prepare(g->dnnl, W, N, K, out); break;
    case NN_GEMM_BLAS: *out = (nn_linear){.N = N, .K = K, .w = W}; break;
    default: *out = (nn_linear){.N = N, .K = K}; rc = nn_pack(W, N, K, g->prec, g->qmax, &out->p); break;
    }
    /* a weight read from the model's map is not read again (BLAS keeps
     * reading it): its pages go now, so that the whole fp32 file is never
     * resident at once */
    if (!rc && g->backend != NN_GEMM_BLAS) file_map_release(W, (size_t)N * (size_t)K * sizeof(float));
    PROF_END(PROF_PREPARE, t0, (double)N * K);
    return rc;
}

void nn_linear_free(nn_linear *w) {
    nn_packed_free(&w->p);
    nn_dnnl_release(w->dw);
    memset(w, 0, sizeof *w);
}

void nn_gemm_run(nn_gemm *g, int t, const nn_linear *w, int M, const float *A, int lda, const float *bias, int gelu,
                 float *C, int ldc) {
    CE_ASSERT(t >= 0 && t < g->threads);
    if (M <= 0) return;
    const uint64_t t0 = PROF_START();
    if (g->backend == NN_GEMM_ONEDNN) {
        nn_dnnl_run(g->dnnl, g->k, t, w, M, A, lda, bias, gelu, C, ldc);
    } else if (g->backend == NN_GEMM_BLAS) {
        // C [M, N] = A [M, K] @ W [N, K]^T, then bias and GELU row by row
        nn_gemm_bt(M, w->N, w->K, A, lda, w->w, w->K, C, ldc);
        if (bias || gelu) g->k->bias_act(M, w->N, C, ldc, bias, gelu, C, ldc);
    } else {
        void *scratch = g->scratch + (size_t)t * g->scratch_per_thread;
        for (int r = 0; r < M; r += NN_LOWP_ROWS)
            g->k->gemm_lowp(CE_MIN(NN_LOWP_ROWS, M - r), A + (size_t)r * lda, lda, &w->p, bias, gelu,
                            C + (size_t)r * ldc, ldc, scratch);
    }
    if (prof_enabled) {
        prof_add(PROF_GEMM_ALL, t0, 0);
        prof_add(PROF_GEMM, prof_now(), 2.0 * M * w->N * w->K);   /* its time is derived: the FLOPs only */
    }
}

nn_gemm_backend nn_gemm_backend_of(const nn_gemm *g) { return g->backend; }

int nn_gemm_qmax(const nn_gemm *g) { return g->qmax; }

void nn_gemm_set_qmax(nn_gemm *g, int qmax) {
    CE_ASSERT(g->backend == NN_GEMM_SCALAR && (qmax == 63 || qmax == 127));
    g->qmax = qmax;
}

int nn_gemm_rows(const nn_gemm *g) {
    switch (g->backend) {
    case NN_GEMM_ONEDNN: return nn_dnnl_rows();
    case NN_GEMM_BLAS: return 2048;   /* OpenBLAS repacks the weight on each call */
    default: return NN_LOWP_ROWS;
    }
}

const char *nn_gemm_describe(const nn_gemm *g) { return g->desc; }

size_t nn_gemm_bytes(nn_precision prec, int threads, const nn_shape *shapes, int n_shapes, int layers) {
    int max_n = 0, max_k = 0;
    size_t weights = 0;
    const size_t per = prec == NN_INT8 ? 1 : prec == NN_BF16 ? 2 : 4;
    for (int i = 0; i < n_shapes; i++) {
        max_n = CE_MAX(max_n, shapes[i].N);
        max_k = CE_MAX(max_k, shapes[i].K);
        /* padded to whole panels of 64 columns and 64 inputs (either layout), int8 scales and sums,
         * oneDNN's column panels aligned to 64 bytes */
        weights += ((size_t)shapes[i].N + 64) * ((size_t)shapes[i].K + 64) * per + ((size_t)shapes[i].N + 64) * 9 + 256;
    }
    const size_t thread = CE_MAX(nn_dnnl_thread_bytes(max_n, max_k), nn_lowp_scratch_bytes(max_k) + 64);
    return (size_t)layers * weights + (size_t)threads * thread;
}

void nn_gemm_plan(nn_precision p, nn_gemm_backend want, char *desc, size_t n) {
    const nn_kernels *k = nn_kernels_best();
    const nn_gemm_backend b = want == NN_GEMM_AUTO ? nn_gemm_pick(p, k) : want;
    const char *why = unusable(b, p, k);
    char impl[64];
    if (why)
        snprintf(desc, n, "unavailable: %s", why);
    else if (b == NN_GEMM_ONEDNN && nn_dnnl_probe(p, impl, sizeof impl))
        snprintf(desc, n, "unavailable: %s", cembed_last_error());
    else if (b == NN_GEMM_ONEDNN && p != NN_INT8 && strncmp(impl, "brg", 3) != 0)
        snprintf(desc, n, "unavailable: oneDNN has only %s for %s here (not batch-invariant)", impl, nn_precision_name(p));
    else if (b == NN_GEMM_ONEDNN)
        snprintf(desc, n, "onednn %s", impl);
    else
        snprintf(desc, n, "%s", own_desc(b));
}
