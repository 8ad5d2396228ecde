/* The oneDNN backend of nn/gemm.h: matmul primitives built at load, one per
 * (shape, row tile), weights reordered once in column panels, per-thread
 * streams and buffers.
 *
 * oneDNN 2.6's fast kernels (brgemm on AVX-512, VNNI, BF16, AMX) need the
 * row count when the primitive is made; a run-time row count falls back to a
 * generic jit GEMM several times slower. So each shape gets primitives for
 * tiles of 64, 32, 16, 8, 4, 2 and 1 rows, and a call of M rows runs 64-row
 * tiles, then the binary digits of the rest: no padding, at most 6 small
 * calls. A tile is kept only when it reads the weights in the same layout
 * as the 64-row one (one reordered copy serves all) and, for fp32 and bf16,
 * runs the same kernel (so a row's sums are the same whichever tile it falls
 * in); a shape whose small tiles do not qualify pads the rest into the
 * smallest tile that does.
 *
 * L2: a weight of a base-size model (FFN up of hidden 768 in fp32: 19 MB)
 * is far past a core's L2, and a tile run over all N columns streams all
 * of it from L3 for 64 rows. So the weight is cut into column panels of a
 * width fixed by its shape (panel_width: the widest multiple of 64 dividing
 * N, padded to 64, that keeps a panel within PANEL_BYTES as the kernel reads
 * it), each reordered into its own copy of the tile's layout, and a call
 * runs up to CALL_ROWS rows (nn_gemm_rows) panel by panel, every tile on a
 * panel while it is in L2. Neither the panels nor the tiles depend on M, so
 * a row's bits never depend on its batchmates.
 *
 * bf16w: where bf16 dot products are slower than fp32 FMAs (Intel without
 * AMX: vdpbf16ps at half the FMA rate; cpu_bf16_dot_fast) or missing, bf16
 * keeps its weights in bf16 (half the memory) but computes in fp32: a panel
 * is reordered into the fp32 primitive's layout and rounded element by
 * element to bf16; a call widens each panel (a 16-bit shift, the layout
 * kept) into the thread's fp32 panel buffer and runs the fp32 tiles on it.
 * Activations stay fp32, more accurate than bf16 x bf16. AMX and AMD keep
 * oneDNN's bf16 kernels.
 *
 * Data: A is rounded (bf16), quantized (int8: uint8 per row, nn_kernels'
 * quantize_u8; weights int8 as in lowp.c, with 8 bits, [-127, 127], where
 * every tile's kernel is VNNI or AMX, else 7 as there) or copied (fp32,
 * where a tile cannot read A's rows in place) into the thread's src rows
 * [CALL_ROWS, K]; the primitive writes dst [tile, pw] (f32, or s32 for
 * int8); the epilogue (bias_act, or dequant_i8 with the row's scale and
 * zero point) writes the panel's columns of C. Memory objects and the user
 * scratchpad are made at load for every thread and tile, so a call only
 * executes.
 */
#include <dnnl.h>
#include <string.h>

#include "gemm.h"

/* libgomp's, which Debian's oneDNN runs on (declared here: clang builds
 * have no omp.h) */
void omp_set_num_threads(int n);

#define TILES 7
#define MAX_SHAPES 8
#define TILE_ROWS 64
#ifndef CALL_ROWS
#define CALL_ROWS 256                 /* rows one call converts at a time; nn_gemm_rows */
#endif
#ifndef PANEL_BYTES
#define PANEL_BYTES ((size_t)1 << 20) /* a weight panel, as the kernel reads it: half this L2 */
#endif
static const int tile_rows[TILES] = {64, 32, 16, 8, 4, 2, 1};

typedef struct dshape {
    int N, K;
    int pw, panels;                  /* panel width (a multiple of 64), panels (pw x panels >= N) */
    int n_tiles;
    int rows[TILES];                 /* usable tiles, largest first */
    dnnl_primitive_t prim[TILES];    /* [rows, K] x [K, pw] */
    size_t scratch[TILES];           /* user scratchpad bytes */
    dnnl_memory_desc_t src_md[TILES], dst_md[TILES], pad_md[TILES];
    dnnl_memory_desc_t wmd;          /* the layout of one panel, all tiles read it */
    size_t wbytes;                   /* one panel as stored (bf16w: half of wmd's size), 64-aligned */
    char impl[48];                   /* the kernel of the 64-row tile */
    int qmax;                        /* int8 weights in [-qmax, qmax]: 127 when every tile's
                                        kernel sums u8 x s8 products without saturating */
} dshape;

typedef struct dthread {
    dnnl_stream_t st;
    void *src, *dst, *pad;           /* [CALL_ROWS + 64, K] in the precision, [64, pw] f32/s32, scratchpad */
    float *wide;                     /* bf16w: the panel being run, widened to fp32 */
    float *sa;                       /* int8: per row scale and zero point */
    int32_t *zp;
    dnnl_memory_t msrc[MAX_SHAPES][TILES], mdst[MAX_SHAPES][TILES], mpad[MAX_SHAPES][TILES];
    dnnl_memory_t mwide[MAX_SHAPES];
} dthread;

/* A prepared weight (nn_linear.dw): its panels, each in the shape's layout,
 * at buf + p * wbytes; bf16w: bf16 bits of the fp32 layout, no memories. */
typedef struct dweight {
    void *mem, *buf;                 /* the allocation, buf 64-aligned in it; mem NULL: buf is borrowed
                                        (the weight cache's map) */
    int panels;
    size_t wbytes;                   /* one panel's bytes (the shape's) */
    dnnl_memory_t m[];
} dweight;

struct nn_dnnl {
    dnnl_engine_t eng;
    nn_precision prec;
    int bf16w;                       /* bf16 weights run as fp32 (widened a panel at a time) */
    nn_widen_bf16_fn widen;
    dnnl_data_type_t ta, tb, tc;
    int threads, n_shapes;
    dshape shapes[MAX_SHAPES];
    dthread *th;
    char desc[160];
};

static int dnnl_fail(dnnl_status_t s, const char *what) {
    return base_err(s == dnnl_out_of_memory ? CEMBED_ENOMEM : CEMBED_EMODEL, "oneDNN: %s failed (status %d)", what,
                    (int)s);
}
#define DN(call)                                          \
    do {                                                  \
        dnnl_status_t s_ = (call);                        \
        if (s_ != dnnl_success) return dnnl_fail(s_, #call); \
    } while (0)

/* OpenMP stays at one thread in every thread that enters oneDNN */
static void serial_omp(void) {
    static _Thread_local int done;
    if (!done) {
        omp_set_num_threads(1);
        done = 1;
    }
}

/* Whether bf16 runs with bf16 weights widened to fp32 (bf16w): where bf16
 * dot products are slower than fp32 FMAs (Intel without AMX; cpu.c), or
 * absent (AVX512_CORE) */
static int bf16_widened(void) { return !(cpu_features() & CPU_AMX) && !cpu_bf16_dot_fast(); }

static void types(nn_precision p, int bf16w, dnnl_data_type_t *ta, dnnl_data_type_t *tb, dnnl_data_type_t *tc) {
    if (bf16w) p = NN_FP32;
    *ta = p == NN_INT8 ? dnnl_u8 : p == NN_BF16 ? dnnl_bf16 : dnnl_f32;
    *tb = p == NN_INT8 ? dnnl_s8 : p == NN_BF16 ? dnnl_bf16 : dnnl_f32;
    *tc = p == NN_INT8 ? dnnl_s32 : dnnl_f32;
}

static size_t elem(dnnl_data_type_t t) { return t == dnnl_bf16 ? 2 : t == dnnl_u8 || t == dnnl_s8 ? 1 : 4; }

/* The panel width of an N x K weight whose kernel reads e-byte elements:
 * the widest multiple of 64 that divides N (rounded up to 64) and keeps a
 * panel within PANEL_BYTES, at least 64. It depends on the shape only, so a
 * row's sums never depend on the call. */
static int panel_width(int N, int K, size_t e) {
    const int np = (N + 63) / 64 * 64;
    int pw = 64;
    for (int w = 128; w <= np; w += 64)
        if (np % w == 0 && (size_t)w * (size_t)K * e <= PANEL_BYTES) pw = w;
    return pw;
}

/* The primitive descriptor of a [rows, K] x [K, N] matmul; OUT: *pd. */
static dnnl_status_t make_pd(dnnl_engine_t eng, dnnl_data_type_t ta, dnnl_data_type_t tb, dnnl_data_type_t tc,
                             int rows, int K, int N, dnnl_primitive_desc_t *pd) {
    dnnl_memory_desc_t a, b, c;
    const dnnl_dims_t da = {rows, K}, db = {K, N}, dc = {rows, N};
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_tag(&a, 2, da, ta, dnnl_ab)) ||
        (s = dnnl_memory_desc_init_by_tag(&b, 2, db, tb, dnnl_format_tag_any)) ||
        (s = dnnl_memory_desc_init_by_tag(&c, 2, dc, tc, dnnl_ab)))
        return s;
    dnnl_matmul_desc_t md;
    if ((s = dnnl_matmul_desc_init(&md, &a, &b, NULL, &c))) return s;
    dnnl_primitive_attr_t attr;
    if ((s = dnnl_primitive_attr_create(&attr))) return s;
    s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (!s) s = dnnl_primitive_desc_create(pd, &md, attr, eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    return s;
}

static const char *impl_of(const_dnnl_primitive_desc_t pd) {
    const char *impl = "?";
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success) impl = "?";
    return impl;
}

/* Whether a kernel multiplies u8 by s8 with VNNI (vpdpbusd) or AMX, which
 * add the products in 32 bits. The others (vpmaddubsw) add pairs in
 * saturating 16 bits: 2 x 255 x 127 would overflow there, 2 x 255 x 63 does
 * not, so weights keep 7 bits for them as for our AVX2 kernels. */
static int exact_u8s8(const char *impl) { return strstr(impl, "vnni") || strstr(impl, "amx"); }

/* The tiles of one shape: primitives for each row count, keeping those that
 * share the 64-row tile's weight layout (and kernel, for fp32 and bf16). */
static int build_shape(nn_dnnl *d, dshape *sh) {
    sh->pw = panel_width(sh->N, sh->K, elem(d->tb));
    sh->panels = (sh->N + sh->pw - 1) / sh->pw;
    for (int i = 0; i < TILES; i++) {
        dnnl_primitive_desc_t pd;
        dnnl_status_t s = make_pd(d->eng, d->ta, d->tb, d->tc, tile_rows[i], sh->K, sh->pw, &pd);
        if (s != dnnl_success) {
            if (i == 0) return dnnl_fail(s, "creating a matmul");
            continue;
        }
        const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        const char *impl = impl_of(pd);
        int keep = 1;
        if (i == 0) sh->qmax = 127;
        if (i == 0) {
            /* float sums must not depend on a row's batchmates: the generic
             * jit GEMM blocks rows by the call's row count (unit tests) */
            if (d->prec != NN_INT8 && strncmp(impl, "brg", 3) != 0) {
                dnnl_primitive_desc_destroy(pd);
                return base_err(CEMBED_EINVAL, "oneDNN runs %s here with %s, whose sums depend on the other rows of a "
                                "call (batch invariance); it is used only with its brgemm kernels", nn_precision_name(d->prec), impl);
            }
            sh->wmd = *w;
            sh->wbytes = (dnnl_memory_desc_get_size(w) / (d->bf16w ? 2 : 1) + 63) & ~(size_t)63;
            snprintf(sh->impl, sizeof sh->impl, "%s", impl);
        } else {
            keep = dnnl_memory_desc_equal(w, &sh->wmd) && (d->prec == NN_INT8 || strcmp(impl, sh->impl) == 0);
        }
        if (keep) {
            if (!exact_u8s8(impl)) sh->qmax = 63;
            const int n = sh->n_tiles;
            sh->src_md[n] = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
            sh->dst_md[n] = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
            sh->pad_md[n] = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
            sh->scratch[n] = dnnl_memory_desc_get_size(&sh->pad_md[n]);
            s = dnnl_primitive_create(&sh->prim[n], pd);
            if (s == dnnl_success) sh->rows[sh->n_tiles++] = tile_rows[i];
        }
        dnnl_primitive_desc_destroy(pd);
        if (s != dnnl_success) return dnnl_fail(s, "creating a matmul primitive");
    }
    return 0;
}

size_t nn_dnnl_thread_bytes(int max_n, int max_k) {
    /* src rows of a call and dst tile, int8 row scales, a scratchpad (brgemm
     * keeps small buffers there), bf16w's widened panel (K padded) */
    const size_t k = (size_t)max_k + 64, n = (size_t)max_n + 64;
    return (CALL_ROWS + TILE_ROWS) * (k * 4 + 8) + TILE_ROWS * n * 4 + ((size_t)1 << 20) + 2 * PANEL_BYTES +
           k * 64 * 4;
}

static int thread_init(nn_dnnl *d, dthread *th) {
    int max_pw = 0, max_k = 0;
    size_t pad = 64, wide = 64;
    for (int s = 0; s < d->n_shapes; s++) {
        max_pw = CE_MAX(max_pw, d->shapes[s].pw);
        max_k = CE_MAX(max_k, d->shapes[s].K);
        wide = CE_MAX(wide, dnnl_memory_desc_get_size(&d->shapes[s].wmd));
        for (int i = 0; i < d->shapes[s].n_tiles; i++) pad = CE_MAX(pad, d->shapes[s].scratch[i]);
    }
    DN(dnnl_stream_create(&th->st, d->eng, dnnl_stream_default_flags));
    th->src = base_malloc((size_t)(CALL_ROWS + TILE_ROWS) * (size_t)max_k * elem(d->ta));
    th->dst = base_malloc((size_t)TILE_ROWS * (size_t)max_pw * 4);
    th->pad = base_malloc(pad);
    th->wide = d->bf16w ? base_malloc(wide) : NULL;
    th->sa = base_malloc((CALL_ROWS + TILE_ROWS) * sizeof(float));
    th->zp = base_malloc((CALL_ROWS + TILE_ROWS) * sizeof(int32_t));
    if (!th->src || !th->dst || !th->pad || !th->sa || !th->zp || (d->bf16w && !th->wide))
        return base_err(CEMBED_ENOMEM, "oneDNN: out of memory for a thread's buffers");
    for (int s = 0; s < d->n_shapes; s++) {
        const dshape *sh = &d->shapes[s];
        if (d->bf16w) DN(dnnl_memory_create(&th->mwide[s], &sh->wmd, d->eng, th->wide));
        for (int i = 0; i < sh->n_tiles; i++) {
            DN(dnnl_memory_create(&th->msrc[s][i], &sh->src_md[i], d->eng, th->src));
            DN(dnnl_memory_create(&th->mdst[s][i], &sh->dst_md[i], d->eng, th->dst));
            DN(dnnl_memory_create(&th->mpad[s][i], &sh->pad_md[i], d->eng, th->pad));
        }
    }
    return 0;
}

void nn_dnnl_free(nn_dnnl *d) {
    if (!d) return;
    for (int t = 0; d->th && t < d->threads; t++) {
        dthread *th = &d->th[t];
        for (int s = 0; s < d->n_shapes; s++)
            for (int i = 0; i < TILES; i++) {
                if (i == 0 && th->mwide[s]) dnnl_memory_destroy(th->mwide[s]);
                if (th->msrc[s][i]) dnnl_memory_destroy(th->msrc[s][i]);
                if (th->mdst[s][i]) dnnl_memory_destroy(th->mdst[s][i]);
                if (th->mpad[s][i]) dnnl_memory_destroy(th->mpad[s][i]);
            }
        if (th->st) dnnl_stream_destroy(th->st);
        base_free(th->src);
        base_free(th->dst);
        base_free(th->pad);
        base_free(th->wide);
        base_free(th->sa);
        base_free(th->zp);
    }
    base_free(d->th);
    for (int s = 0; s < d->n_shapes; s++)
        for (int i = 0; i < d->shapes[s].n_tiles; i++) dnnl_primitive_destroy(d->shapes[s].prim[i]);
    if (d->eng) dnnl_engine_destroy(d->eng);
    base_free(d);
}

int nn_dnnl_new(nn_precision prec, int threads, const nn_shape *shapes, int n_shapes, nn_dnnl **out) {
    *out = NULL;
    CE_ASSERT(n_shapes > 0 && n_shapes <= MAX_SHAPES && threads > 0);
    serial_omp();
    nn_dnnl *d = base_calloc(1, sizeof *d);
    if (!d) return base_err(CEMBED_ENOMEM, "oneDNN: out of memory");
    d->prec = prec;
    d->bf16w = prec == NN_BF16 && bf16_widened();
    d->widen = cpu_features() & CPU_AVX512F ? nn_widen_bf16_avx512 : nn_widen_bf16_ref;
    d->threads = threads;
    types(prec, d->bf16w, &d->ta, &d->tb, &d->tc);
    int rc = 0;
    dnnl_status_t s = dnnl_engine_create(&d->eng, dnnl_cpu, 0);
    if (s != dnnl_success) {
        rc = dnnl_fail(s, "creating the CPU engine");
        goto fail;
    }
    for (int i = 0; i < n_shapes; i++) {
        dshape *sh = &d->shapes[d->n_shapes++];
        sh->N = shapes[i].N;
        sh->K = shapes[i].K;
        if ((rc = build_shape(d, sh))) goto fail;
    }
    d->th = base_calloc((size_t)threads, sizeof *d->th);
    if (!d->th) {
        rc = base_err(CEMBED_ENOMEM, "oneDNN: out of memory");
        goto fail;
    }
    for (int t = 0; t < threads; t++)
        if ((rc = thread_init(d, &d->th[t]))) goto fail;
    /* "onednn IMPL", each distinct kernel once */
    size_t len = (size_t)snprintf(d->desc, sizeof d->desc, "onednn");
    for (int i = 0; i < d->n_shapes && len < sizeof d->desc; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= strcmp(d->shapes[j].impl, d->shapes[i].impl) == 0;
        if (!seen) len += (size_t)snprintf(d->desc + len, sizeof d->desc - len, "%s%s", i ? "," : " ", d->shapes[i].impl);
    }
    if (d->bf16w && len < sizeof d->desc) snprintf(d->desc + len, sizeof d->desc - len, " bf16w");
    *out = d;
    return 0;
fail:
    nn_dnnl_free(d);
    return rc;
}

const char *nn_dnnl_describe(const nn_dnnl *d) { return d->desc; }

int nn_dnnl_rows(void) { return CALL_ROWS; }

int nn_dnnl_qmax(const nn_dnnl *d) {
    int q = 127;   /* one range for every shape: what the tiles of all of them allow */
    for (int s = 0; s < d->n_shapes; s++) q = CE_MIN(q, d->shapes[s].qmax);
    return q;
}

void nn_dnnl_release(void *dw) {
    dweight *w = dw;
    if (!w) return;
    for (int p = 0; p < w->panels; p++)
        if (w->m[p]) dnnl_memory_destroy(w->m[p]);
    base_free(w->mem);
    base_free(w);
}

/* The panels of a weight: memory (data: bytes already in the layout, e.g.
 * in the weight cache's map, not owned; NULL: allocated), and for the
 * native types a memory object per panel in shape sh's layout. OUT: *out. */
static int weight_new(nn_dnnl *d, const dshape *sh, void *data, dweight **out) {
    dweight *w = base_calloc(1, sizeof *w + (size_t)sh->panels * sizeof(dnnl_memory_t));
    if (w && !data) w->mem = base_malloc((size_t)sh->panels * sh->wbytes + 64);
    if (!w || (!data && !w->mem)) {
        base_free(w);
        return base_err(CEMBED_ENOMEM, "out of memory preparing a %d x %d weight", sh->N, sh->K);
    }
    w->buf = data ? data : (void *)(((uintptr_t)w->mem + 63) & ~(uintptr_t)63);
    w->panels = sh->panels;
    w->wbytes = sh->wbytes;
    *out = w;
    for (int p = 0; p < sh->panels && !d->bf16w; p++) {
        dnnl_status_t s = dnnl_memory_create(&w->m[p], &sh->wmd, d->eng, (char *)w->buf + (size_t)p * sh->wbytes);
        if (s != dnnl_success) {
            nn_dnnl_release(w);
            *out = NULL;
            return dnnl_fail(s, "creating a weight panel");
        }
    }
    return 0;
}

/* Reorders panel p of W [N, K] (e-byte elements of type t; a panel is pw
 * rows, read as oneDNN's [K, pw] with tag ba, zeros past row N) into w:
 * the shape's layout, or for bf16w its fp32 layout rounded to bf16. */
static dnnl_status_t reorder_panel(nn_dnnl *d, const dshape *sh, dnnl_primitive_t r, dnnl_memory_t from,
                                   dnnl_memory_t to, const char *W, size_t e, void *tail, int p, dweight *w) {
    const size_t row = (size_t)sh->K * e;
    const int n0 = p * sh->pw, nv = CE_MIN(sh->pw, sh->N - n0);
    const void *src = W + (size_t)n0 * row;
    if (nv < sh->pw) {   /* the last panel, short: its rows, then zeros */
        memcpy(tail, src, (size_t)nv * row);
        memset((char *)tail + (size_t)nv * row, 0, (size_t)(sh->pw - nv) * row);
        src = tail;
    }
    dnnl_status_t s = dnnl_memory_set_data_handle(from, (void *)src);
    if (!s && !d->bf16w) s = dnnl_memory_set_data_handle(to, (char *)w->buf + (size_t)p * sh->wbytes);
    if (!s) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        s = dnnl_primitive_execute(r, d->th[0].st, 2, args);
    }
    if (!s) s = dnnl_stream_wait(d->th[0].st);
    if (!s && d->bf16w) {   /* round the fp32 layout to bf16, element by element */
        void *h = NULL;
        s = dnnl_memory_get_data_handle(to, &h);
        uint16_t *b = (uint16_t *)((char *)w->buf + (size_t)p * sh->wbytes);
        const size_t n = dnnl_memory_desc_get_size(&sh->wmd) / 4;
        for (size_t i = 0; !s && i < n; i++) b[i] = nn_bf16_bits(((const float *)h)[i]);
    }
    return s;
}

/* Reorders W [N, K] (elements of type t) panel by panel into w. */
static int reorder(nn_dnnl *d, const dshape *sh, const void *W, dnnl_data_type_t t, dweight *w) {
    dnnl_memory_desc_t user;
    const dnnl_dims_t dims = {sh->K, sh->pw};
    DN(dnnl_memory_desc_init_by_tag(&user, 2, dims, t, dnnl_ba));
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    void *tail = base_malloc((size_t)sh->pw * (size_t)sh->K * elem(t));
    dnnl_status_t s = tail ? dnnl_memory_create(&from, &user, d->eng, DNNL_MEMORY_NONE) : dnnl_out_of_memory;
    /* native: the panels' own memories; bf16w: an fp32 panel, then rounded */
    if (!s) s = dnnl_memory_create(&to, &sh->wmd, d->eng, d->bf16w ? DNNL_MEMORY_ALLOCATE : DNNL_MEMORY_NONE);
    if (!s) s = dnnl_reorder_primitive_desc_create(&rpd, &user, d->eng, &sh->wmd, d->eng, NULL);
    if (!s) s = dnnl_primitive_create(&r, rpd);
    for (int p = 0; p < sh->panels && !s; p++) s = reorder_panel(d, sh, r, from, to, W, elem(t), tail, p, w);
    if (r) dnnl_primitive_destroy(r);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (from) dnnl_memory_destroy(from);
    if (to) dnnl_memory_destroy(to);
    base_free(tail);
    return s == dnnl_success ? 0 : dnnl_fail(s, "reordering a weight");
}

int nn_dnnl_prepare(nn_dnnl *d, const float *W, int N, int K, nn_linear *out) {
    serial_omp();
    const int shape = nn_dnnl_shape_of(d, N, K);
    CE_ASSERT(shape >= 0);
    const dshape *sh = &d->shapes[shape];
    *out = (nn_linear){.N = N, .K = K, .shape = shape, .p = {.prec = d->prec, .N = N, .K = K}};
    const size_t cells = (size_t)N * (size_t)K;
    void *tmp = NULL;
    if (d->prec == NN_INT8) {
        tmp = base_malloc(cells);
        out->p.scale = base_malloc((size_t)N * sizeof(float));
        out->p.colsum = base_malloc((size_t)N * sizeof(int32_t));
        const nn_quantize_weight_fn quantize_row = nn_quantize_weight_best();
        if (tmp && out->p.scale && out->p.colsum)
            for (int n = 0; n < N; n++)
                quantize_row(W + (size_t)n * K, K, nn_dnnl_qmax(d), (int8_t *)tmp + (size_t)n * K, &out->p.scale[n],
                             &out->p.colsum[n]);
    } else if (d->prec == NN_BF16 && !d->bf16w) {
        if ((tmp = base_malloc(cells * 2)))
            for (size_t i = 0; i < cells; i++) ((uint16_t *)tmp)[i] = nn_bf16_bits(W[i]);
    }
    int rc = 0;
    if ((d->tb != dnnl_f32 && !tmp) || (d->prec == NN_INT8 && (!out->p.scale || !out->p.colsum)))
        rc = base_err(CEMBED_ENOMEM, "out of memory preparing a %d x %d weight", N, K);
    dweight *w = NULL;
    if (!rc) rc = weight_new(d, sh, NULL, &w);
    if (!rc) rc = reorder(d, sh, d->tb == dnnl_f32 ? (const void *)W : tmp, d->tb, w);
    base_free(tmp);
    if (rc) {   /* the int8 scales and sums (out->dw is not set yet) */
        nn_dnnl_release(w);
        nn_packed_free(&out->p);
        return rc;
    }
    out->dw = w;
    return 0;
}

/* One row tile of a call: rows [r, r + rows) run as tile index i. */
typedef struct dtile {
    int r, rows, i;
} dtile;

/* Converts rows [0, M) of A (M <= CALL_ROWS) into th->src in the precision
 * (fp32: only rows whose tile cannot read A itself), zero rows up to the
 * last tile's end, and lists the tiles: 64-row tiles, then the binary
 * digits of the rest, padded into the smallest tile when none fits.
 * Returns the number of tiles. */
static int plan_tiles(nn_dnnl *d, const nn_kernels *k, dthread *th, const dshape *sh, int M, const float *A, int lda,
                      dtile *tiles) {
    const int K = sh->K;
    const size_t e = elem(d->ta);
    int n = 0, r = 0;
    while (r < M) {
        int i = 0;   /* the largest tile that the rest fills, else the smallest (padded) */
        while (i + 1 < sh->n_tiles && sh->rows[i] > M - r) i++;
        tiles[n++] = (dtile){r, CE_MIN(sh->rows[i], M - r), i};
        r += sh->rows[i];
    }
    if (d->prec == NN_INT8)
        k->quantize_u8(M, K, A, lda, th->src, K, th->sa, th->zp);
    else if (d->ta == dnnl_bf16)
        k->to_bf16(M, K, A, lda, th->src, K);
    else   /* fp32: A's own rows where they are dense and fill the tile */
        for (int t = 0; t < n; t++)
            if (lda != K || tiles[t].rows < sh->rows[tiles[t].i])
                for (int j = tiles[t].r; j < tiles[t].r + tiles[t].rows; j++)
                    memcpy((float *)th->src + (size_t)j * K, A + (size_t)j * lda, (size_t)K * 4);
    if (r > M) memset((char *)th->src + (size_t)M * K * e, 0, (size_t)(r - M) * K * e);
    return n;
}

/* Rows [0, M) of a call, M <= CALL_ROWS: panel by panel (bf16w: widened
 * into the thread's buffer), each panel through every tile, then the
 * epilogue into the panel's columns of C. */
static void run_rows(nn_dnnl *d, const nn_kernels *k, dthread *th, const nn_linear *w, int M, const float *A,
                     int lda, const float *bias, int gelu, float *C, int ldc) {
    const dshape *sh = &d->shapes[w->shape];
    const dweight *dw = w->dw;
    const int K = sh->K, pw = sh->pw, s = w->shape;
    dtile tiles[CALL_ROWS / TILE_ROWS + TILES];
    const int n = plan_tiles(d, k, th, sh, M, A, lda, tiles);
    for (int p = 0; p < sh->panels; p++) {
        const int n0 = p * pw, nv = CE_MIN(pw, sh->N - n0);
        dnnl_memory_t wm = d->bf16w ? th->mwide[s] : dw->m[p];
        if (d->bf16w)
            d->widen((const uint16_t *)((const char *)dw->buf + (size_t)p * sh->wbytes),
                          dnnl_memory_desc_get_size(&sh->wmd) / 4, th->wide);
        for (int t = 0; t < n; t++) {
            const dtile *ti = &tiles[t];
            const int direct = d->ta == dnnl_f32 && lda == K && ti->rows == sh->rows[ti->i];
            void *src = direct ? (void *)(A + (size_t)ti->r * lda) : (char *)th->src + (size_t)ti->r * K * elem(d->ta);
            dnnl_memory_t msrc = th->msrc[s][ti->i];
            dnnl_status_t st = dnnl_memory_set_data_handle(msrc, src);
            CE_ASSERT(st == dnnl_success);
            // dst [tile, pw] = src @ panel^T
            dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, msrc},
                                       {DNNL_ARG_WEIGHTS, wm},
                                       {DNNL_ARG_DST, th->mdst[s][ti->i]},
                                       {DNNL_ARG_SCRATCHPAD, th->mpad[s][ti->i]}};
            st = dnnl_primitive_execute(sh->prim[ti->i], th->st, 4, args);
            CE_ASSERT(st == dnnl_success);
            // C[rows, n0 .. n0 + nv) = epilogue(dst)
            float *c = C + (size_t)ti->r * ldc + n0;
            const float *b = bias ? bias + n0 : NULL;
            if (d->prec == NN_INT8)
                k->dequant_i8(ti->rows, nv, th->dst, pw, th->sa + ti->r, th->zp + ti->r, w->p.scale + n0,
                              w->p.colsum + n0, b, gelu, c, ldc);
            else
                k->bias_act(ti->rows, nv, th->dst, pw, b, gelu, c, ldc);
        }
    }
}

void nn_dnnl_run(nn_dnnl *d, const nn_kernels *k, int t, const nn_linear *w, int M, const float *A, int lda,
                 const float *bias, int gelu, float *C, int ldc) {
    serial_omp();
    for (int r = 0; r < M; r += CALL_ROWS)
        run_rows(d, k, &d->th[t], w, CE_MIN(CALL_ROWS, M - r), A + (size_t)r * lda, lda, bias, gelu,
                 C + (size_t)r * ldc, ldc);
}

int nn_dnnl_probe(nn_precision p, char *impl, size_t n) {
    serial_omp();
    dnnl_engine_t eng;
    dnnl_status_t s = dnnl_engine_create(&eng, dnnl_cpu, 0);
    if (s != dnnl_success) return dnnl_fail(s, "creating the CPU engine");
    dnnl_data_type_t ta, tb, tc;
    const int bf16w = p == NN_BF16 && bf16_widened();
    types(p, bf16w, &ta, &tb, &tc);
    dnnl_primitive_desc_t pd;
    s = make_pd(eng, ta, tb, tc, TILE_ROWS, 384, 384, &pd);
    if (s == dnnl_success) {
        snprintf(impl, n, "%s%s", impl_of(pd), bf16w ? " bf16w" : "");
        dnnl_primitive_desc_destroy(pd);
    }
    dnnl_engine_destroy(eng);
    return s == dnnl_success ? 0 : dnnl_fail(s, "creating a matmul");
}

/* ---- the weight cache (gemm.c's nn_gemm_cache_*) ---- */

/* A shape's layout as the cache stores it: the panels and oneDNN's
 * description of one (a plain struct in oneDNN 2.x, compared with
 * dnnl_memory_desc_equal). */
typedef struct dlayout {
    uint32_t pw, panels, bf16w, md_bytes;
    uint64_t wbytes;
    dnnl_memory_desc_t md;
} dlayout;

size_t nn_dnnl_layout_bytes(void) { return sizeof(dlayout); }

void nn_dnnl_key(char *out, size_t n) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(out, n, "dnnl=%d.%d.%d %s cpu_runtime=%u isa=%d\n", v->major, v->minor, v->patch, v->hash,
             v->cpu_runtime, (int)dnnl_get_effective_cpu_isa());
}

void nn_dnnl_layout(const nn_dnnl *d, int s, void *out) {
    const dshape *sh = &d->shapes[s];
    dlayout l;
    memset(&l, 0, sizeof l);
    l.pw = (uint32_t)sh->pw, l.panels = (uint32_t)sh->panels, l.bf16w = (uint32_t)d->bf16w;
    l.md_bytes = sizeof l.md, l.wbytes = sh->wbytes, l.md = sh->wmd;
    memcpy(out, &l, sizeof l);
}

int nn_dnnl_layout_ok(const nn_dnnl *d, int s, const void *blob) {
    const dshape *sh = &d->shapes[s];
    dlayout l;
    memcpy(&l, blob, sizeof l);
    return l.pw == (uint32_t)sh->pw && l.panels == (uint32_t)sh->panels && l.bf16w == (uint32_t)d->bf16w &&
           l.md_bytes == sizeof l.md && l.wbytes == sh->wbytes && dnnl_memory_desc_equal(&l.md, &sh->wmd);
}

int nn_dnnl_shape_of(const nn_dnnl *d, int N, int K) {
    for (int s = 0; s < d->n_shapes; s++)
        if (d->shapes[s].N == N && d->shapes[s].K == K) return s;
    return -1;
}

size_t nn_dnnl_weight_bytes(const nn_dnnl *d, int s) { return (size_t)d->shapes[s].panels * d->shapes[s].wbytes; }

const void *nn_dnnl_weight_data(const void *dw) { return ((const dweight *)dw)->buf; }

/* Points w's panels (and their memories) at buf, which holds the same bytes. */
static int point_at(nn_dnnl *d, dweight *w, void *data) {
    for (int p = 0; p < w->panels && !d->bf16w; p++) {
        const dnnl_status_t st = dnnl_memory_set_data_handle(w->m[p], (char *)data + (size_t)p * w->wbytes);
        if (st != dnnl_success) return dnnl_fail(st, "pointing a weight panel into the weight cache");
    }
    w->buf = data;
    return 0;
}

int nn_dnnl_adopt(nn_dnnl *d, int N, int K, void *data, nn_linear *out) {
    const int s = nn_dnnl_shape_of(d, N, K);
    CE_ASSERT(s >= 0);
    dweight *w;
    const int rc = weight_new(d, &d->shapes[s], data, &w);
    if (rc) return rc;
    *out = (nn_linear){.N = N, .K = K, .shape = s, .p = {.prec = d->prec, .N = N, .K = K, .borrowed = 1}, .dw = w};
    return 0;
}

int nn_dnnl_rebase(nn_dnnl *d, void *dw, void *data) {
    dweight *w = dw;
    const int rc = point_at(d, w, data);
    if (!rc) {
        base_free(w->mem);
        w->mem = NULL;
    }
    return rc;
}
