/* gemm: the one seam every Linear layer's product goes through,
 *   C[M, N] = A[M, K] @ W[N, K]^T + bias, then GELU when asked,
 * with A and C fp32 whatever the precision (the backend rounds or quantizes
 * A, and scales back).
 *
 * Backends, one per model, chosen for its precision and this CPU
 * (nn_gemm_pick, the table in gemm.c) or named by EMBEDDING_GEMM:
 *   onednn  oneDNN's matmul with its own run-time dispatch (AVX2 jit,
 *           AVX-512 and VNNI brgemm, BF16, AMX), one primitive per shape and
 *           row tile built at load, the weights reordered once into the
 *           layout it asks for, in column panels that fit L2; our kernels
 *           quantize or round A before it and scale back after it (int8:
 *           u8 x s8 -> s32, so every row keeps its own scale); bf16 where
 *           bf16 dot products are slow ("bf16w": Intel without AMX) keeps
 *           bf16 weights and widens them to fp32 a panel at a time;
 *   avx2    our packed kernels (lowp_avx2.c), epilogue in registers;
 *   scalar  the packed reference (lowp.c), for CPUs without AVX2;
 *   blas    OpenBLAS sgemm on the model's own fp32 weights (fp32 only, and
 *           only when named: OpenBLAS picks kernels by the row count, so a
 *           row's last bits depend on its batchmates).
 * Otherwise a row's result never depends on the other rows of a call: int8
 * sums are exact integers everywhere, and the float backends give a row the
 * same operations whatever its position or the row count (oneDNN serves
 * fp32 and bf16 only with its brgemm kernels, whose tiles are kept when they
 * share one kernel and one weight layout; the unit tests check it bit for
 * bit at every ISA level).
 *
 * Threads: the engine's pool splits rows; each pool thread t calls
 * nn_gemm_run with its own index and gets its own buffers and oneDNN
 * stream. oneDNN runs on OpenMP in Debian's build; every thread that calls
 * it sets its OpenMP thread count to 1, so no OpenMP team ever starts and
 * --threads bounds the total.
 */
#ifndef CEMBED_GEMM_H
#define CEMBED_GEMM_H

#include "nn/kernels.h"

typedef enum { NN_GEMM_AUTO, NN_GEMM_SCALAR, NN_GEMM_BLAS, NN_GEMM_OWN, NN_GEMM_ONEDNN } nn_gemm_backend;

typedef struct nn_gemm nn_gemm;
typedef struct nn_dnnl nn_dnnl;

/* One Linear layer's weight, prepared for a backend. Free with nn_linear_free. */
typedef struct nn_linear {
    int N, K;
    int shape;          /* index into the shapes given to nn_gemm_new */
    nn_packed p;        /* scalar/avx2: the packed weight; onednn int8: scale and colsum only */
    const float *w;     /* blas: the model's fp32 weight [N, K] (not owned) */
    void *dw;           /* onednn: the reordered weight (a dnnl_memory_t) */
} nn_linear;

/* The shape of one Linear layer: N outputs, K inputs. */
typedef struct nn_shape {
    int N, K;
} nn_shape;

/* The backend this CPU runs best for precision p (cpu_features(): lowered
 * by ONEDNN_MAX_CPU_ISA). Cannot fail. */
nn_gemm_backend nn_gemm_pick(nn_precision p, const nn_kernels *k);
const char *nn_gemm_backend_name(nn_gemm_backend b);
/* "auto", "onednn", "avx2" (our SIMD kernels), "scalar", "blas" -> *out.
 * Fails with EINVAL naming the accepted values. */
int nn_gemm_backend_parse(const char *s, nn_gemm_backend *out);

/* Builds the GEMMs of one model: precision prec, kernel table k (its
 * element-wise pieces serve every backend), backend want (AUTO: the pick),
 * `threads` callers, the model's distinct shapes. OUT: *out. Fails with
 * EINVAL (a backend that cannot run this precision on this CPU), ENOMEM, or
 * EMODEL (oneDNN refused a primitive; the message names it). */
int nn_gemm_new(const nn_kernels *k, nn_precision prec, nn_gemm_backend want, int threads, const nn_shape *shapes,
                int n_shapes, nn_gemm **out);
void nn_gemm_free(nn_gemm *g);

/* Prepares W [N, K] (row-major; its shape must be one of nn_gemm_new's):
 * packs, quantizes or reorders it into memory of its own, except blas,
 * which keeps a pointer to W. OUT: *out. Fails with ENOMEM or EMODEL. */
int nn_gemm_prepare(nn_gemm *g, const float *W, int N, int K, nn_linear *out);
void nn_linear_free(nn_linear *w);

/* C[M, N] (row stride ldc) = A[M, K] (stride lda) @ W^T + bias (may be
 * NULL), GELU when gelu is set; run by pool thread t (< threads), any M >= 0.
 * Cannot fail. */
void nn_gemm_run(nn_gemm *g, int t, const nn_linear *w, int M, const float *A, int lda, const float *bias, int gelu,
                 float *C, int ldc);

/* ---- the cache of prepared weights (wcache.h; nn_gemm_cache_* in gemm.c) ----
 * Between nn_gemm_new and the first nn_gemm_prepare: nn_gemm_cache_open;
 * then for each weight, in the same order every start, nn_gemm_prepare_cached
 * first and nn_gemm_prepare only when it did not serve it; at the end
 * nn_gemm_cache_close with every weight. Weights served from the cache, or
 * moved into it after it was written, point into its map ("borrowed"): the
 * map lives until nn_gemm_free, which must come after their nn_linear_free.
 * The BLAS backend has nothing to cache. */
/* Opens the cache folder dir (NULL: none) for the n_weights weights of
 * model folder model_dir (model_id: nn_wcache_model_id, taken before the
 * model was loaded). A file whose key or layouts differ is not used (and
 * is replaced at close). Cannot fail: without a usable cache the weights
 * are prepared as without one. */
void nn_gemm_cache_open(nn_gemm *g, const char *dir, const char *model_dir, const char *model_id, int n_weights);
/* The next weight, N x K, from the cache into *out (borrowed). Returns 1
 * when served, 0 when the caller must nn_gemm_prepare it. Cannot fail. */
int nn_gemm_prepare_cached(nn_gemm *g, int N, int K, nn_linear *out);
/* After every weight lin[0..n) is prepared: writes the cache file when it
 * was missing or stale and points the weights into it (their own copies
 * are freed). Cannot fail (a failure to write is logged). */
void nn_gemm_cache_close(nn_gemm *g, nn_linear *lin, int n);
/* The cache file's path (NULL: no cache), and whether this start read it
 * (1) or wrote it (0). */
const char *nn_gemm_cache_path(const nn_gemm *g, int *hit);

nn_gemm_backend nn_gemm_backend_of(const nn_gemm *g);
/* The int8 weights' range [-qmax, qmax]: 127 on oneDNN's VNNI and AMX
 * kernels (32-bit sums), 63 elsewhere (vpmaddubsw's saturating pairs). */
int nn_gemm_qmax(const nn_gemm *g);
/* The scalar backend quantizes as a fast one does (a reference for it);
 * before any nn_gemm_prepare. qmax: 63 or 127. */
void nn_gemm_set_qmax(nn_gemm *g, int qmax);
/* Rows worth handing to one nn_gemm_run: enough that a weight panel read
 * into L2 serves many rows (oneDNN: 256), few enough that the product
 * stays in the caches for what follows. */
int nn_gemm_rows(const nn_gemm *g);
/* What runs, e.g. "onednn brg:avx512_core_vnni", "cembed avx2", "openblas sgemm".
 * Owned by g. */
const char *nn_gemm_describe(const nn_gemm *g);
/* Bytes of per-thread buffers and weights nn_gemm_new + nn_gemm_prepare
 * allocate for these shapes (an upper bound; weights counted once per
 * layer, pass `layers`). */
size_t nn_gemm_bytes(nn_precision prec, int threads, const nn_shape *shapes, int n_shapes, int layers);

/* What precision p would run on this CPU with backend want, without
 * building it, into desc[n] (e.g. "onednn brg:avx512_core_bf16"). Cannot
 * fail (an error is described in desc). */
void nn_gemm_plan(nn_precision p, nn_gemm_backend want, char *desc, size_t n);

/* out[i] = the float of bf16 bits in[i], i < n (exact: a 16-bit shift);
 * the reference (lowp.c) and AVX-512 (kernels_avx512.c), bit for bit alike.
 * The oneDNN backend's bf16w mode widens a weight panel with it. */
typedef void (*nn_widen_bf16_fn)(const uint16_t *in, size_t n, float *out);
void nn_widen_bf16_ref(const uint16_t *in, size_t n, float *out);
void nn_widen_bf16_avx512(const uint16_t *in, size_t n, float *out);

/* ---- oneDNN (gemm_dnnl.c); through nn_gemm_* only ---- */
int nn_dnnl_new(nn_precision prec, int threads, const nn_shape *shapes, int n_shapes, nn_dnnl **out);
void nn_dnnl_free(nn_dnnl *d);
int nn_dnnl_prepare(nn_dnnl *d, const float *W, int N, int K, nn_linear *out);
void nn_dnnl_release(void *dw);
void nn_dnnl_run(nn_dnnl *d, const nn_kernels *k, int t, const nn_linear *w, int M, const float *A, int lda,
                 const float *bias, int gelu, float *C, int ldc);
const char *nn_dnnl_describe(const nn_dnnl *d);
int nn_dnnl_qmax(const nn_dnnl *d);
int nn_dnnl_rows(void);
size_t nn_dnnl_thread_bytes(int max_n, int max_k);
/* The implementation oneDNN picks for precision p at a typical shape, into
 * impl[n]; fails with EMODEL when it has none. */
int nn_dnnl_probe(nn_precision p, char *impl, size_t n);
/* The weight cache's view of the oneDNN backend (gemm_dnnl.c): a shape's
 * layout record (nn_dnnl_layout_bytes bytes) and its check, the shape of
 * N x K (-1: none), a prepared weight's bytes and data, a weight made on
 * bytes in the cache (borrowed), and a prepared one moved onto them. */
size_t nn_dnnl_layout_bytes(void);
/* oneDNN's version and effective ISA as key text. */
void nn_dnnl_key(char *out, size_t n);
void nn_dnnl_layout(const nn_dnnl *d, int s, void *out);
int nn_dnnl_layout_ok(const nn_dnnl *d, int s, const void *layout);
int nn_dnnl_shape_of(const nn_dnnl *d, int N, int K);
size_t nn_dnnl_weight_bytes(const nn_dnnl *d, int s);
const void *nn_dnnl_weight_data(const void *dw);
int nn_dnnl_adopt(nn_dnnl *d, int N, int K, void *buf, nn_linear *out);
int nn_dnnl_rebase(nn_dnnl *d, void *dw, void *buf);

#endif
