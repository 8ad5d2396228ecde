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
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/prof.h"
#include "gemm.h"
#include "wcache.h"

#define MAX_GEMM_SHAPES 8
enum { WC_NONE, WC_READ, WC_WRITE };   /* no cache; weights read from its file; the file to write */

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
    nn_shape shapes[MAX_GEMM_SHAPES];
    int n_shapes;
    nn_wcache *wc;         /* the cache of prepared weights, or NULL */
    int wc_state, wc_weights, wc_next, wc_stale;   /* WC_*; weights it holds; the next to read; a weight it missed */
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
    nn_wcache_free(g->wc);
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
    CE_ASSERT(n_shapes > 0 && n_shapes <= MAX_GEMM_SHAPES);
    memcpy(g->shapes, shapes, (size_t)n_shapes * sizeof *shapes);
    g->n_shapes = n_shapes;
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

/* ---- the cache of prepared weights ----
 * A shape's layout record: oneDNN's (gemm_dnnl.c), or for our packed
 * kernels the padded sizes and element bytes. A weight's parts: the
 * weight's bytes, then for int8 its scales and column sums. */

typedef struct own_layout {
    uint32_t Np, Kp, elem, pad;
} own_layout;

static uint32_t layout_bytes(const nn_gemm *g) {
    return (uint32_t)(g->backend == NN_GEMM_ONEDNN ? nn_dnnl_layout_bytes() : sizeof(own_layout));
}

static size_t elem_bytes(nn_precision p) { return p == NN_INT8 ? 1 : p == NN_BF16 ? 2 : 4; }

static void layout_of(const nn_gemm *g, int s, void *out) {
    if (g->backend == NN_GEMM_ONEDNN) {
        nn_dnnl_layout(g->dnnl, s, out);
        return;
    }
    const nn_packed p = nn_packed_shape(g->prec, g->shapes[s].N, g->shapes[s].K);
    const own_layout l = {(uint32_t)p.Np, (uint32_t)p.Kp, (uint32_t)elem_bytes(g->prec), 0};
    memcpy(out, &l, sizeof l);
}

static int layout_ok(const nn_gemm *g, int s, const void *layout) {
    if (g->backend == NN_GEMM_ONEDNN) return nn_dnnl_layout_ok(g->dnnl, s, layout);
    own_layout want;
    layout_of(g, s, &want);
    return memcmp(&want, layout, sizeof want) == 0;
}

/* The parts a weight of shape s has (bytes of each) in g's layout. */
static uint32_t parts_of(const nn_gemm *g, int s, uint64_t bytes[NN_WCACHE_PARTS]) {
    const nn_packed p = nn_packed_shape(g->prec, g->shapes[s].N, g->shapes[s].K);
    const int dn = g->backend == NN_GEMM_ONEDNN;
    bytes[0] = dn ? nn_dnnl_weight_bytes(g->dnnl, s) : (uint64_t)p.Np * (uint64_t)p.Kp * elem_bytes(g->prec);
    bytes[1] = bytes[2] = (uint64_t)(dn ? p.N : p.Np) * 4;
    return g->prec == NN_INT8 ? 3 : 1;
}

static int shape_index(const nn_gemm *g, int N, int K) {
    for (int s = 0; s < g->n_shapes; s++)
        if (g->shapes[s].N == N && g->shapes[s].K == K) return s;
    return -1;
}

/* Whether the mapped file v holds n_weights weights of g's shapes and layouts. */
static int cache_fits(const nn_gemm *g, const nn_wcache_view *v, int n_weights) {
    if (v->n_weights != (uint32_t)n_weights || v->n_shapes != (uint32_t)g->n_shapes || v->layout_bytes != layout_bytes(g))
        return 0;
    for (uint32_t s = 0; s < v->n_shapes; s++) {
        nn_wc_shape sh;
        nn_wcache_shape_at(v, s, &sh);
        if (sh.N != (uint32_t)g->shapes[s].N || sh.K != (uint32_t)g->shapes[s].K || !layout_ok(g, (int)s, sh.layout))
            return 0;
    }
    for (uint32_t i = 0; i < v->n_weights; i++) {
        nn_wc_weight w;
        uint64_t want[NN_WCACHE_PARTS];
        nn_wcache_weight_at(v, i, &w);
        const uint32_t n = parts_of(g, (int)w.shape, want);
        if (w.n_parts != n) return 0;
        for (uint32_t k = 0; k < n; k++)
            if (w.bytes[k] != want[k]) return 0;
    }
    return 1;
}

void nn_gemm_cache_open(nn_gemm *g, const char *dir, const char *model_dir, const char *model_id, int n_weights) {
    if (!dir || g->backend == NN_GEMM_BLAS || g->wc) return;
    char name[64], key[512], dn[160] = "";
    snprintf(name, sizeof name, "%s-%s", nn_precision_name(g->prec), names[g->backend]);
    if (g->backend == NN_GEMM_ONEDNN) nn_dnnl_key(dn, sizeof dn);
    snprintf(key, sizeof key, "precision=%s\nbackend=%s\nqmax=%d\ngemm=%s\n%scpu=%s\nlayout=%u\nweights=%d\n",
             nn_precision_name(g->prec), names[g->backend], g->qmax, g->desc, dn, cpu_isa_name(cpu_features()),
             layout_bytes(g), n_weights);
    nn_wcache_open(dir, model_dir, model_id, name, key, &g->wc);
    g->wc_weights = n_weights;
    const nn_wcache_view *v = nn_wcache_hit(g->wc);
    g->wc_state = v && cache_fits(g, v, n_weights) ? WC_READ : g->wc ? WC_WRITE : WC_NONE;
    if (v && g->wc_state == WC_WRITE) log_debug("weight cache %s: other layouts; replaced", nn_wcache_path(g->wc));
}

int nn_gemm_prepare_cached(nn_gemm *g, int N, int K, nn_linear *out) {
    if (g->wc_state != WC_READ) return 0;
    const int i = g->wc_next++;
    nn_wc_weight w;
    const nn_wcache_view *v = nn_wcache_hit(g->wc);
    if (i < (int)v->n_weights) nn_wcache_weight_at(v, (uint32_t)i, &w);
    const int s = shape_index(g, N, K);
    if (i >= (int)v->n_weights || s < 0 || w.shape != (uint32_t)s) {
        g->wc_stale = 1;   /* another order: prepared as without a cache */
        return 0;
    }
    const uint64_t t0 = PROF_START();
    if (g->backend == NN_GEMM_ONEDNN) {
        if (nn_dnnl_adopt(g->dnnl, N, K, (void *)w.part[0], out)) {
            g->wc_stale = 1;
            return 0;
        }
    } else {
        *out = (nn_linear){.N = N, .K = K, .shape = s, .p = nn_packed_shape(g->prec, N, K)};
        out->p.w = (void *)w.part[0];
        out->p.borrowed = 1;
    }
    if (g->prec == NN_INT8) out->p.scale = (float *)w.part[1], out->p.colsum = (int32_t *)w.part[2];
    PROF_END(PROF_PREPARE, t0, 0);
    return 1;
}

/* The parts of prepared weight l for writing. */
static void parts_from(const nn_gemm *g, const nn_linear *l, nn_wc_weight *w) {
    *w = (nn_wc_weight){.shape = (uint32_t)shape_index(g, l->N, l->K)};
    w->n_parts = parts_of(g, (int)w->shape, w->bytes);
    w->part[0] = g->backend == NN_GEMM_ONEDNN ? nn_dnnl_weight_data(l->dw) : l->p.w;
    w->part[1] = l->p.scale;
    w->part[2] = l->p.colsum;
}

/* Points prepared weight l at w's parts in the new file, freeing its own copies. */
static void move_into(nn_gemm *g, nn_linear *l, const nn_wc_weight *w) {
    if (g->backend == NN_GEMM_ONEDNN && nn_dnnl_rebase(g->dnnl, l->dw, (void *)w->part[0])) return;
    if (g->backend != NN_GEMM_ONEDNN) {
        base_free(l->p.w);
        l->p.w = (void *)w->part[0];
    }
    if (g->prec == NN_INT8) {
        base_free(l->p.scale);
        base_free(l->p.colsum);
        l->p.scale = (float *)w->part[1], l->p.colsum = (int32_t *)w->part[2];
    }
    l->p.borrowed = 1;
}

/* Writes the file of lin[0..n) and moves them into it. */
static void cache_write(nn_gemm *g, nn_linear *lin, int n) {
    const uint64_t t0 = PROF_START();
    const uint32_t lb = layout_bytes(g);
    nn_wc_shape sh[MAX_GEMM_SHAPES];
    char *layouts = base_calloc((size_t)g->n_shapes, lb);
    nn_wc_weight *w = base_calloc((size_t)n, sizeof *w);
    const nn_wcache_view *v = NULL;
    if (!layouts || !w) goto out;
    for (int s = 0; s < g->n_shapes; s++) {
        layout_of(g, s, layouts + (size_t)s * lb);
        sh[s] = (nn_wc_shape){(uint32_t)g->shapes[s].N, (uint32_t)g->shapes[s].K, layouts + (size_t)s * lb};
    }
    for (int i = 0; i < n; i++) parts_from(g, &lin[i], &w[i]);
    if (nn_wcache_write(g->wc, sh, (uint32_t)g->n_shapes, lb, w, (uint32_t)n, &v) == 0) {
        for (int i = 0; i < n; i++) {
            nn_wc_weight mw;
            nn_wcache_weight_at(v, (uint32_t)i, &mw);
            move_into(g, &lin[i], &mw);
        }
        malloc_trim(0);   /* the freed copies leave the heap before the map's pages come in */
        nn_wcache_populate(g->wc);
    }
out:
    base_free(layouts);
    base_free(w);
    PROF_END(PROF_PREPARE, t0, 0);
}

void nn_gemm_cache_close(nn_gemm *g, nn_linear *lin, int n) {
    if (g->wc_state == WC_WRITE && n == g->wc_weights) cache_write(g, lin, n);
    else if (g->wc_state == WC_READ && (g->wc_stale || g->wc_next != n)) {   /* the file and the model disagree */
        log_warn("weight cache %s: does not match the model; deleted", nn_wcache_path(g->wc));
        unlink(nn_wcache_path(g->wc));
    }
}

const char *nn_gemm_cache_path(const nn_gemm *g, int *hit) {
    if (hit) *hit = g->wc_state == WC_READ;
    return g->wc_state == WC_NONE ? NULL : nn_wcache_path(g->wc);
}
