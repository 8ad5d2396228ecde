/* The oneDNN backend of nn/gemm.h: matmul primitives built at load, one per
 * (shape, row tile), weights reordered once, per-thread streams and buffers.
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
 * Data: A is rounded (bf16), quantized (int8: uint8 per row, nn_kernels'
 * quantize_u8; weights int8 as in lowp.c, with 8 bits, [-127, 127], where
 * every tile's kernel is VNNI or AMX, else 7 as there) or copied (fp32) into the thread's src tile [rows, K]; the
 * primitive writes dst [rows, N] (f32, or s32 for int8); the epilogue
 * (bias_act, or dequant_i8 with the row's scale and zero point) writes C.
 * Memory objects and the user scratchpad are made at load for every thread
 * and tile, so a call only executes.
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
static const int tile_rows[TILES] = {64, 32, 16, 8, 4, 2, 1};

typedef struct dshape {
    int N, K;
    int n_tiles;
    int rows[TILES];                 /* usable tiles, largest first */
    dnnl_primitive_t prim[TILES];
    size_t scratch[TILES];           /* user scratchpad bytes */
    dnnl_memory_desc_t src_md[TILES], dst_md[TILES], pad_md[TILES];
    dnnl_memory_desc_t wmd;          /* the weights layout all tiles read */
    char impl[48];                   /* the kernel of the 64-row tile */
    int qmax;                        /* int8 weights in [-qmax, qmax]: 127 when every tile's
                                        kernel sums u8 x s8 products without saturating */
} dshape;

typedef struct dthread {
    dnnl_stream_t st;
    void *src, *dst, *pad;           /* [64, K] in the precision, [64, N] f32/s32, scratchpad */
    float *sa;                       /* int8: per row scale and zero point */
    int32_t *zp;
    dnnl_memory_t msrc[MAX_SHAPES][TILES], mdst[MAX_SHAPES][TILES], mpad[MAX_SHAPES][TILES];
} dthread;

struct nn_dnnl {
    dnnl_engine_t eng;
    nn_precision prec;
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

static void types(nn_precision p, dnnl_data_type_t *ta, dnnl_data_type_t *tb, dnnl_data_type_t *tc) {
    *ta = p == NN_INT8 ? dnnl_u8 : p == NN_BF16 ? dnnl_bf16 : dnnl_f32;
    *tb = p == NN_INT8 ? dnnl_s8 : p == NN_BF16 ? dnnl_bf16 : dnnl_f32;
    *tc = p == NN_INT8 ? dnnl_s32 : dnnl_f32;
}

static size_t elem(dnnl_data_type_t t) { return t == dnnl_bf16 ? 2 : t == dnnl_u8 || t == dnnl_s8 ? 1 : 4; }

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
    for (int i = 0; i < TILES; i++) {
        dnnl_primitive_desc_t pd;
        dnnl_status_t s = make_pd(d->eng, d->ta, d->tb, d->tc, tile_rows[i], sh->K, sh->N, &pd);
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
    /* src, dst tiles and a scratchpad (brgemm keeps small buffers there) */
    return (size_t)TILE_ROWS * ((size_t)max_k + (size_t)max_n) * 4 + (size_t)TILE_ROWS * 8 + ((size_t)1 << 20);
}

static int thread_init(nn_dnnl *d, dthread *th) {
    int max_n = 0, max_k = 0;
    size_t pad = 64;
    for (int s = 0; s < d->n_shapes; s++) {
        max_n = CE_MAX(max_n, d->shapes[s].N);
        max_k = CE_MAX(max_k, d->shapes[s].K);
        for (int i = 0; i < d->shapes[s].n_tiles; i++) pad = CE_MAX(pad, d->shapes[s].scratch[i]);
    }
    DN(dnnl_stream_create(&th->st, d->eng, dnnl_stream_default_flags));
    th->src = base_malloc((size_t)TILE_ROWS * (size_t)max_k * elem(d->ta));
    th->dst = base_malloc((size_t)TILE_ROWS * (size_t)max_n * 4);
    th->pad = base_malloc(pad);
    th->sa = base_malloc(TILE_ROWS * sizeof(float));
    th->zp = base_malloc(TILE_ROWS * sizeof(int32_t));
    if (!th->src || !th->dst || !th->pad || !th->sa || !th->zp)
        return base_err(CEMBED_ENOMEM, "oneDNN: out of memory for a thread's buffers");
    for (int s = 0; s < d->n_shapes; s++)
        for (int i = 0; i < d->shapes[s].n_tiles; i++) {
            const dshape *sh = &d->shapes[s];
            DN(dnnl_memory_create(&th->msrc[s][i], &sh->src_md[i], d->eng, th->src));
            DN(dnnl_memory_create(&th->mdst[s][i], &sh->dst_md[i], d->eng, th->dst));
            DN(dnnl_memory_create(&th->mpad[s][i], &sh->pad_md[i], d->eng, th->pad));
        }
    return 0;
}

void nn_dnnl_free(nn_dnnl *d) {
    if (!d) return;
    for (int t = 0; d->th && t < d->threads; t++) {
        dthread *th = &d->th[t];
        for (int s = 0; s < d->n_shapes; s++)
            for (int i = 0; i < TILES; i++) {
                if (th->msrc[s][i]) dnnl_memory_destroy(th->msrc[s][i]);
                if (th->mdst[s][i]) dnnl_memory_destroy(th->mdst[s][i]);
                if (th->mpad[s][i]) dnnl_memory_destroy(th->mpad[s][i]);
            }
        if (th->st) dnnl_stream_destroy(th->st);
        base_free(th->src);
        base_free(th->dst);
        base_free(th->pad);
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
    d->threads = threads;
    types(prec, &d->ta, &d->tb, &d->tc);
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
    *out = d;
    return 0;
fail:
    nn_dnnl_free(d);
    return rc;
}

const char *nn_dnnl_describe(const nn_dnnl *d) { return d->desc; }

int nn_dnnl_rows(void) { return TILE_ROWS; }

int nn_dnnl_qmax(const nn_dnnl *d) {
    int q = 127;   /* one range for every shape: what the tiles of all of them allow */
    for (int s = 0; s < d->n_shapes; s++) q = CE_MIN(q, d->shapes[s].qmax);
    return q;
}

void nn_dnnl_release(void *dw) {
    if (dw) dnnl_memory_destroy(dw);
}

/* Reorders W [N, K] (bytes of type t; read as oneDNN's [K, N] with tag ba)
 * into shape sh's layout. OUT: *out. */
static int reorder(nn_dnnl *d, const dshape *sh, const void *W, dnnl_data_type_t t, dnnl_memory_t *out) {
    dnnl_memory_desc_t user;
    const dnnl_dims_t dims = {sh->K, sh->N};
    DN(dnnl_memory_desc_init_by_tag(&user, 2, dims, t, dnnl_ba));
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_status_t s = dnnl_memory_create(&from, &user, d->eng, (void *)W);
    if (!s) s = dnnl_memory_create(&to, &sh->wmd, d->eng, DNNL_MEMORY_ALLOCATE);
    if (!s) s = dnnl_reorder_primitive_desc_create(&rpd, &user, d->eng, &sh->wmd, d->eng, NULL);
    if (!s) s = dnnl_primitive_create(&r, rpd);
    if (!s) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        s = dnnl_primitive_execute(r, d->th[0].st, 2, args);
    }
    if (!s) s = dnnl_stream_wait(d->th[0].st);
    if (r) dnnl_primitive_destroy(r);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (from) dnnl_memory_destroy(from);
    if (s != dnnl_success) {
        if (to) dnnl_memory_destroy(to);
        return dnnl_fail(s, "reordering a weight");
    }
    *out = to;
    return 0;
}

int nn_dnnl_prepare(nn_dnnl *d, const float *W, int N, int K, nn_linear *out) {
    serial_omp();
    int shape = -1;
    for (int s = 0; s < d->n_shapes; s++)
        if (d->shapes[s].N == N && d->shapes[s].K == K) shape = s;
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
    } else if (d->prec == NN_BF16) {
        if ((tmp = base_malloc(cells * 2)))
            for (size_t i = 0; i < cells; i++) ((uint16_t *)tmp)[i] = nn_bf16_bits(W[i]);
    }
    int rc = 0;
    if ((d->prec != NN_FP32 && !tmp) || (d->prec == NN_INT8 && (!out->p.scale || !out->p.colsum)))
        rc = base_err(CEMBED_ENOMEM, "out of memory preparing a %d x %d weight", N, K);
    dnnl_memory_t m = NULL;
    if (!rc) rc = reorder(d, sh, d->prec == NN_FP32 ? (const void *)W : tmp, d->tb, &m);
    base_free(tmp);
    if (rc) {   /* the int8 scales and sums (out->dw is not set yet) */
        nn_packed_free(&out->p);
        return rc;
    }
    out->dw = m;
    return 0;
}

void nn_dnnl_run(nn_dnnl *d, const nn_kernels *k, int t, const nn_linear *w, int M, const float *A, int lda,
                 const float *bias, int gelu, float *C, int ldc) {
    serial_omp();
    dthread *th = &d->th[t];
    const dshape *sh = &d->shapes[w->shape];
    const int N = sh->N, K = sh->K;
    for (int r = 0; r < M;) {
        int i = 0;   /* the largest tile that the rest fills, else the smallest (padded) */
        while (i + 1 < sh->n_tiles && sh->rows[i] > M - r) i++;
        const int tile = sh->rows[i], rows = CE_MIN(tile, M - r);
        const float *a = A + (size_t)r * lda;
        float *c = C + (size_t)r * ldc;
        /* fp32 reads A's rows and writes C's where they are dense and fill the tile */
        const int whole = d->prec == NN_FP32 && rows == tile, src_direct = whole && lda == K,
                  dst_direct = whole && ldc == N;
        // src [tile, K] = A rows in the precision (zero rows past `rows`)
        if (d->prec == NN_INT8)
            k->quantize_u8(rows, K, a, lda, th->src, K, th->sa, th->zp);
        else if (d->prec == NN_BF16)
            k->to_bf16(rows, K, a, lda, th->src, K);
        else if (!src_direct)
            for (int j = 0; j < rows; j++) memcpy((float *)th->src + (size_t)j * K, a + (size_t)j * lda, (size_t)K * 4);
        if (rows < tile) memset((char *)th->src + (size_t)rows * K * elem(d->ta), 0, (size_t)(tile - rows) * K * elem(d->ta));
        dnnl_memory_t msrc = th->msrc[w->shape][i], mdst = th->mdst[w->shape][i];
        if (d->prec == NN_FP32) {
            dnnl_status_t hs = dnnl_memory_set_data_handle(msrc, src_direct ? (void *)a : th->src);
            if (!hs) hs = dnnl_memory_set_data_handle(mdst, dst_direct ? (void *)c : th->dst);
            CE_ASSERT(hs == dnnl_success);
        }
        // dst [tile, N] = src @ W^T
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, msrc},
                                   {DNNL_ARG_WEIGHTS, (dnnl_memory_t)w->dw},
                                   {DNNL_ARG_DST, mdst},
                                   {DNNL_ARG_SCRATCHPAD, th->mpad[w->shape][i]}};
        dnnl_status_t s = dnnl_primitive_execute(sh->prim[i], th->st, 4, args);
        CE_ASSERT(s == dnnl_success);
        // C rows = epilogue(dst) (in place when dst is C)
        if (d->prec == NN_INT8)
            k->dequant_i8(rows, N, th->dst, N, th->sa, th->zp, w->p.scale, w->p.colsum, bias, gelu, c, ldc);
        else if (!dst_direct)
            k->bias_act(rows, N, th->dst, N, bias, gelu, c, ldc);
        else if (bias || gelu)
            k->bias_act(rows, N, c, ldc, bias, gelu, c, ldc);
        r += rows;
    }
}

int nn_dnnl_probe(nn_precision p, char *impl, size_t n) {
    serial_omp();
    dnnl_engine_t eng;
    dnnl_status_t s = dnnl_engine_create(&eng, dnnl_cpu, 0);
    if (s != dnnl_success) return dnnl_fail(s, "creating the CPU engine");
    dnnl_data_type_t ta, tb, tc;
    types(p, &ta, &tb, &tc);
    dnnl_primitive_desc_t pd;
    s = make_pd(eng, ta, tb, tc, TILE_ROWS, 384, 384, &pd);
    if (s == dnnl_success) {
        snprintf(impl, n, "%s", impl_of(pd));
        dnnl_primitive_desc_destroy(pd);
    }
    dnnl_engine_destroy(eng);
    return s == dnnl_success ? 0 : dnnl_fail(s, "creating a matmul");
}
