/* The encoder forward pass; see bert.h. It walks the block description of
 * model.h, whatever the family. Per layer, with T tokens, H hidden, I
 * intermediate (the MLP's up-projection gives U = I, or 2I for a GLU), and
 * three activation regions x [T,H], a [T,max(3H,U)], c [T,H]:
 *   (pre-norm: c = LN1(x), the input of qkv instead of x)
 *   a   = x @ Wqkv^T + bqkv             (qkv, one GEMM of N = 3H; rotary on
 *                                        Q and K of each row after it)
 *   c   = attention(a) per sequence, per head (ALiBi, sliding window)
 *   a   = c @ Wo^T;  x = LN(a + bo + x)   (pre-norm: x += a; c = LN2(x))
 *   a   = act(x @ Wi^T + bi)             (GLU: a = act(a[:, :I]) * a[:, I:])
 *   c   = a @ Wf^T;  x = LN(c + bf + x)   (pre-norm: x += c)
 * then the final LayerNorm where the family has one, pooling (mean, first
 * or last token), or a classifier head on the first token.
 * The GEMMs go through the seam of nn/gemm.h (oneDNN or our kernels, on
 * weights prepared once at bert_new) in chunks of nn_gemm_rows rows, bias
 * and GELU included; residual + LayerNorm follow on the chunk while it is in
 * L2. Attention runs the table's fp32 kernel, or its bf16 one when the
 * options ask (int8 and bf16 on CPUs with AVX512_BF16).
 * Two schedules (bert_forward): with at least two sequences per thread, each
 * thread takes whole sequences through every layer, and the batch's last
 * (shortest) ones, as many rows as the longest, are shared items that
 * whichever threads are free run phase by phase (co_run), so that no thread
 * idles while another finishes its last whole sequence; otherwise the whole
 * batch is shared items, in one pool_run (OpenBLAS, which wants large calls:
 * each phase splits its rows across the threads, with a barrier between
 * phases). */
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bert.h"

struct bert {
    const model *m;
    const model_config *c;
    const nn_kernels *k;
    pool *p;
    int max_tokens, max_seq_len;
    int H, I, U, heads, dh, wa;   /* U: width of the up-projection; wa: width of region a */
    int kvh, Dq, Dkv, cw;      /* key-value heads; widths of Q (heads x dh) and of K, V; cw: width of region c */
    nn_precision prec;
    nn_gemm *g;
    int blas;                  /* the GEMMs read the model's fp32 weights */
    void (*attention)(const float *q, const float *k, const float *v, int ld, int L, int i0, int i1, int dh, float scale,
                      const nn_attn_mask *mask, float *out, int ldo, float *scratch);
    float *wown;               /* BLAS: the fp32 weights it reads that the map cannot give in place (stacked
                                  from several tensors, or widened from F16/BF16), every layer's */
    float *bqkv, *bup;         /* per layer: [3H] (NULL: no bias), [U] */
    const float *head_w, *out_w;   /* the classifier's matrices in fp32 (in the map, or head_own) */
    float *head_own;
    nn_linear *lin;            /* per layer qkv, o, i, f */
    float *rope[2];            /* rotary: cos and sin [max_seq_len, rope_dims / 2] of the global and local bases */
    float *slopes;             /* ALiBi: [heads] */
    float *x, *a, *c_buf;      /* workspace */
    float *scratch;            /* per thread attention scratch */
    size_t scratch_per_thread;
    int32_t *pos;              /* position of each token */
    uint8_t *type;             /* token type of each token (0 or 1) */
};

static int q_width(const model_config *c) { return c->heads * c->head_dim; }
static int kv_width(const model_config *c) { return c->kv_heads * c->head_dim; }

/* The four shapes of a layer's Linear layers: qkv, o, i, f. */
static void layer_shapes(const model_config *c, nn_shape sh[4]) {
    sh[0] = (nn_shape){q_width(c) + 2 * kv_width(c), c->hidden};
    sh[1] = (nn_shape){c->hidden, q_width(c)};
    sh[2] = (nn_shape){(c->glu ? 2 : 1) * c->intermediate, c->hidden};
    sh[3] = (nn_shape){c->hidden, c->intermediate};
}

static int up_width(const model_config *c) { return (c->glu ? 2 : 1) * c->intermediate; }

/* Floats of the rotary tables: cos and sin for two bases. */
static size_t rope_floats(const model_config *c, int max_seq_len) {
    return c->pos == POS_ROTARY ? (c->window ? 2 : 1) * 2 * (size_t)max_seq_len * (size_t)(c->rope_dims / 2) : 0;
}

size_t bert_workspace_bytes(const model_config *c, nn_precision prec, int max_tokens, int max_seq_len, int threads) {
    size_t H = (size_t)c->hidden, U = (size_t)up_width(c), T = (size_t)max_tokens;
    size_t QKV = (size_t)q_width(c) + 2 * (size_t)kv_width(c), wa = CE_MAX(QKV, U), cw = CE_MAX(H, (size_t)q_width(c));
    size_t floats = T * (H + wa + cw) +
                    (size_t)threads * CE_MAX(nn_attention_scratch(max_seq_len, c->head_dim), H) +
                    rope_floats(c, max_seq_len) + (size_t)c->heads + (size_t)c->layers * (QKV + U);
    size_t bytes = floats * sizeof(float) + T * (sizeof(int32_t) + 1);
    nn_shape sh[4];
    layer_shapes(c, sh);
    return bytes + nn_gemm_bytes(prec, threads, sh, 4, c->layers);
}

/* Floats at the start of each thread's attention scratch that bert_new
 * touches once (so that the memory measured after loading holds them) and
 * bert_release keeps: the part that does not grow with L, and K^T and V of
 * the 32 tokens that round32(L) may add; beyond it a head of L tokens
 * touches at most 2 L dh floats. */
static size_t scratch_kept(const bert *b) {
    return CE_MIN(nn_attention_scratch_fixed(b->dh) + 2 * 32 * (size_t)b->dh, b->scratch_per_thread);
}

void bert_free(bert *b) {
    if (!b) return;
    base_free(b->wown);
    base_free(b->head_own);
    base_free(b->bqkv);
    base_free(b->bup);
    for (int i = 0; b->lin && i < 4 * b->c->layers; i++) nn_linear_free(&b->lin[i]);
    base_free(b->lin);
    nn_gemm_free(b->g);
    base_free(b->rope[0]);
    base_free(b->slopes);
    base_free(b->x);
    base_free(b->a);
    base_free(b->c_buf);
    base_free(b->scratch);
    base_free(b->pos);
    base_free(b->type);
    base_free(b);
}

static void copy_or_zero(float *dst, const float *src, size_t n) {
    if (src) memcpy(dst, src, n * sizeof(float));
    else memset(dst, 0, n * sizeof(float));
}

/* Floats of buffer a layer's fp32 weight `which` (qkv, o, up, f) needs:
 * 0 where the map holds it in place as one aligned F32 tensor. */
static size_t weight_buf_floats(const bert *b, size_t l, int which) {
    const bert_layer_w *w = &b->m->layer[l];
    const size_t H = (size_t)b->H;
    switch (which) {
    case 0: return model_w_f32(w->qkv_w) ? 0 : (size_t)(b->Dq + 2 * b->Dkv) * H;
    case 1: return model_w_f32(w->o_w) ? 0 : H * (size_t)b->Dq;
    case 2: return !w->i2_w.p && model_w_f32(w->i_w) ? 0 : (size_t)b->U * H;
    default: return model_w_f32(w->f_w) ? 0 : H * (size_t)b->I;
    }
}

/* Writes the parts of a weight into dst as fp32 (widened from F16/BF16,
 * stacked) and drops their file pages. Returns dst. */
static const float *widen(float *dst, const model_w *parts, const size_t *n, int k) {
    size_t off = 0;
    for (int i = 0; i < k; i++) {
        model_w_read(parts[i], 0, n[i], dst + off, 0);
        model_w_release(parts[i], 0, n[i]);
        off += n[i];
    }
    return dst;
}

/* The biases of layer l's qkv and up (which 0 and 2) into bqkv and bup. */
static void layer_bias(bert *b, size_t l, int which) {
    const bert_layer_w *w = &b->m->layer[l];
    const size_t I = (size_t)b->I, U = (size_t)b->U, Q = (size_t)b->Dq, KV = (size_t)b->Dkv;
    if (which == 0 && b->bqkv) { /* a bias the file lacks for this layer is zeros */
        float *bd = b->bqkv + l * (Q + 2 * KV);
        copy_or_zero(bd, w->q_b, Q);
        copy_or_zero(bd + Q, w->k_b, KV);
        copy_or_zero(bd + Q + KV, w->v_b, KV);
    }
    if (which == 2 && b->bup) {
        float *bd = b->bup + l * U;
        copy_or_zero(bd, w->i_b, w->i2_w.p ? I : U);
        if (w->i2_w.p) copy_or_zero(bd + I, w->i2_b, I);
    }
}

/* Layer l's weight `which` as one fp32 [N, K] matrix: in place from the map,
 * or written into dst (weight_buf_floats of it): qkv as the file's fused one
 * or Q, K, V stacked; up as the file's or a GLU's two halves stacked (act
 * half first). */
static const float *weight_f32(bert *b, size_t l, int which, float *dst) {
    const bert_layer_w *w = &b->m->layer[l];
    const size_t H = (size_t)b->H, I = (size_t)b->I, U = (size_t)b->U, Q = (size_t)b->Dq, KV = (size_t)b->Dkv;
    const int in_place = weight_buf_floats(b, l, which) == 0;
    if (which == 0) {
        if (in_place) return model_w_f32(w->qkv_w);
        if (w->qkv_w.p) return widen(dst, &w->qkv_w, (size_t[]){(Q + 2 * KV) * H}, 1);
        return widen(dst, (model_w[]){w->q_w, w->k_w, w->v_w}, (size_t[]){Q * H, KV * H, KV * H}, 3);
    }
    if (which == 2) {
        if (in_place) return model_w_f32(w->i_w);
        if (!w->i2_w.p) return widen(dst, &w->i_w, (size_t[]){U * H}, 1);
        return widen(dst, (model_w[]){w->i_w, w->i2_w}, (size_t[]){I * H, I * H}, 2);
    }
    const model_w *t = which == 1 ? &w->o_w : &w->f_w;
    return in_place ? model_w_f32(*t) : widen(dst, t, (size_t[]){which == 1 ? H * Q : H * I}, 1);
}

/* Prepares layer l's four weights. dst: room for the fp32 ones the map
 * cannot give in place, one weight at a time (BLAS: *dst moves past each
 * one, which it keeps reading). */
static int prepare_layer(bert *b, size_t l, float **dst) {
    nn_linear *lin = b->lin + 4 * l;
    const int N[4] = {b->Dq + 2 * b->Dkv, b->H, b->U, b->H}, K[4] = {b->H, b->Dq, b->H, b->I};
    for (int k = 0; k < 4; k++) {
        layer_bias(b, l, k);
        if (nn_gemm_prepare_cached(b->g, N[k], K[k], &lin[k])) continue;   /* from the weight cache */
        const float *W = weight_f32(b, l, k, *dst);
        int rc = nn_gemm_prepare(b->g, W, N[k], K[k], &lin[k]);
        if (rc) return rc;
        if (b->blas) *dst += weight_buf_floats(b, l, k);
    }
    return 0;
}

/* Floats of the widening buffer: every layer's (BLAS keeps them), else the
 * largest one weight's. */
static size_t widen_floats(const bert *b) {
    size_t n = 0;
    for (size_t l = 0; l < (size_t)b->c->layers; l++)
        for (int k = 0; k < 4; k++)
            n = b->blas ? n + weight_buf_floats(b, l, k) : CE_MAX(n, weight_buf_floats(b, l, k));
    return n;
}

/* The classifier's matrices in fp32: in place, or widened into head_own. */
static int classifier_f32(bert *b) {
    const model *m = b->m;
    const size_t H = (size_t)b->H, n = (size_t)b->c->num_labels;
    b->head_w = model_w_f32(m->head_w), b->out_w = model_w_f32(m->out_w);
    if (!b->c->head || (b->head_w && b->out_w)) return 0;
    if (!(b->head_own = base_malloc((H * H + n * H) * sizeof(float)))) return CEMBED_ENOMEM;
    if (!b->head_w) model_w_read(m->head_w, 0, H * H, b->head_own, 0), b->head_w = b->head_own;
    if (!b->out_w) model_w_read(m->out_w, 0, n * H, b->head_own + H * H, 0), b->out_w = b->head_own + H * H;
    return 0;
}

/* cos and sin of position p times each rotary frequency, computed as
 * Hugging Face computes them: inv_freq = 1 / base^(2i / d) and the angle
 * p * inv_freq in float, its cos and sin rounded once. */
static void rope_table(float *t, int max_seq_len, int dims, float base) {
    const int half = dims / 2;
    float *cs = t, *sn = t + (size_t)max_seq_len * half;
    for (int i = 0; i < half; i++) {
        const float inv = 1.0f / powf(base, (float)(2 * i) / (float)dims);
        for (int p = 0; p < max_seq_len; p++) {
            const float ang = (float)p * inv;
            cs[(size_t)p * half + i] = (float)cos((double)ang);
            sn[(size_t)p * half + i] = (float)sin((double)ang);
        }
    }
}

/* ALiBi's head slopes (Press et al.): for n a power of two, 2^(-8k/n) for
 * k = 1..n; otherwise those of the power of two below, then every other
 * slope of twice that power. */
static void alibi_slopes(float *out, int n) {
    int p = 1;
    while (p * 2 <= n) p *= 2;
    for (int k = 0; k < p; k++) out[k] = (float)pow(2.0, -8.0 * (k + 1) / p);
    for (int k = 0; k < n - p; k++) out[p + k] = (float)pow(2.0, -8.0 * (2 * k + 1) / (2 * p));
}

static int alloc_workspace(bert *b, const model_config *c, int threads) {
    const size_t H = (size_t)b->H, T = (size_t)b->max_tokens, L = (size_t)c->layers, U = (size_t)b->U;
    const size_t QKV = (size_t)(b->Dq + 2 * b->Dkv), wf = widen_floats(b);
    b->wown = wf ? base_malloc(wf * sizeof(float)) : NULL;
    /* biases as one block per layer when any layer has one (a checkpoint may
     * carry them where its config says none: they are used, the missing ones are zeros) */
    int any_qkv_b = 0, any_up_b = 0;
    for (size_t l = 0; l < L; l++) {
        const bert_layer_w *w = &b->m->layer[l];
        any_qkv_b |= w->q_b || w->k_b || w->v_b;
        any_up_b |= w->i_b || w->i2_b;
    }
    b->bqkv = any_qkv_b ? base_malloc(L * QKV * sizeof(float)) : NULL;
    b->bup = any_up_b ? base_malloc(L * U * sizeof(float)) : NULL;
    b->lin = base_calloc(4 * L, sizeof *b->lin);
    b->x = base_malloc(T * H * sizeof(float));
    b->a = base_malloc(T * (size_t)b->wa * sizeof(float));
    b->c_buf = base_malloc(T * (size_t)b->cw * sizeof(float));
    b->scratch = base_malloc((size_t)threads * b->scratch_per_thread * sizeof(float));
    b->pos = base_malloc(T * sizeof(int32_t));
    b->type = base_malloc(T);
    const size_t rf = rope_floats(c, b->max_seq_len);
    if (rf) b->rope[0] = base_malloc(rf * sizeof(float));
    if (c->pos == POS_ALIBI) b->slopes = base_malloc((size_t)c->heads * sizeof(float));
    if ((wf && !b->wown) || classifier_f32(b) || (any_qkv_b && !b->bqkv) || (any_up_b && !b->bup) ||
        !b->lin || !b->x || !b->a || !b->c_buf || !b->scratch || !b->pos || !b->type || (rf && !b->rope[0]) ||
        (c->pos == POS_ALIBI && !b->slopes))
        return CEMBED_ENOMEM;
    if (rf) { /* a second table only for sliding-window layers' base */
        b->rope[1] = c->window ? b->rope[0] + rf / 2 : b->rope[0];
        rope_table(b->rope[0], b->max_seq_len, c->rope_dims, c->rope_base);
        if (c->window) rope_table(b->rope[1], b->max_seq_len, c->rope_dims, c->rope_base_local);
    }
    if (b->slopes) alibi_slopes(b->slopes, c->heads);
    return 0;
}

int bert_new(const model *m, const bert_opts *o, pool *p, int max_tokens, int max_seq_len, bert **out) {
    *out = NULL;
    const model_config *c = &m->cfg;
    CE_ASSERT(max_tokens >= max_seq_len && max_seq_len >= 1 && max_seq_len <= c->max_position - c->pos_offset);
    bert *b = base_calloc(1, sizeof *b);
    if (!b) return base_err(CEMBED_ENOMEM, "forward pass: out of memory");
    b->m = m;
    b->c = c;
    b->k = o->k;
    b->prec = o->prec;
    b->attention = o->attn_bf16 && o->k->attention_bf16 ? o->k->attention_bf16 : o->k->attention;
    b->p = p;
    b->max_tokens = max_tokens;
    b->max_seq_len = max_seq_len;
    b->H = c->hidden;
    b->I = c->intermediate;
    b->U = up_width(c);
    b->heads = c->heads;
    b->kvh = c->kv_heads;
    b->dh = c->head_dim;
    b->Dq = q_width(c);
    b->Dkv = kv_width(c);
    b->wa = CE_MAX(b->Dq + 2 * b->Dkv, b->U);
    b->cw = CE_MAX(b->H, b->Dq);
    const size_t L = (size_t)c->layers;
    const int threads = pool_threads(p);
    nn_shape sh[4];
    layer_shapes(c, sh);
    int rc = nn_gemm_new(o->k, o->prec, o->gemm, threads, sh, 4, &b->g);
    if (rc) {
        bert_free(b);
        return rc;
    }
    if (o->int8_qmax) nn_gemm_set_qmax(b->g, o->int8_qmax);
    if (o->wcache) nn_gemm_cache_open(b->g, o->wcache, o->model_dir, o->model_id, 4 * c->layers);
    b->blas = nn_gemm_backend_of(b->g) == NN_GEMM_BLAS;
    /* attention's scratch, which the classifier head reuses for its hidden row */
    b->scratch_per_thread = CE_MAX(nn_attention_scratch(max_seq_len, b->dh), (size_t)b->H);
    if (alloc_workspace(b, c, threads)) {
        size_t want = bert_workspace_bytes(c, o->prec, max_tokens, max_seq_len, threads);
        bert_free(b);
        return base_err(CEMBED_ENOMEM, "forward pass: cannot allocate the %zu-byte workspace", want);
    }
    for (int t = 0; t < threads; t++) memset(b->scratch + (size_t)t * b->scratch_per_thread, 0, scratch_kept(b) * sizeof(float));
    float *dst = b->wown;
    for (size_t l = 0; l < L && !rc; l++) {
        if (!b->blas) dst = b->wown;   /* one weight at a time */
        rc = prepare_layer(b, l, &dst);
    }
    if (!rc) nn_gemm_cache_close(b->g, b->lin, 4 * c->layers);
    if (!rc && !b->blas) {   /* the widened copies served their purpose */
        base_free(b->wown);
        b->wown = NULL;
    }
    if (rc) {
        bert_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

const char *bert_gemm_describe(const bert *b) { return nn_gemm_describe(b->g); }

const char *bert_weight_cache(const bert *b, int *hit) { return nn_gemm_cache_path(b->g, hit); }

int bert_int8_qmax(const bert *b) { return nn_gemm_qmax(b->g); }

int bert_packed(const bert *b) { return !b->blas; }

size_t bert_batch_bytes(const bert *b, int tokens) {
    /* the activations of every token, and each thread's K^T and V of the
     * longest sequence such a batch can hold (O(L x dh): no score matrix) */
    const size_t longest = (size_t)CE_MIN(tokens, b->max_seq_len);
    return ((size_t)tokens * (size_t)(b->H + b->wa + b->cw) + (size_t)pool_threads(b->p) * 2 * longest * (size_t)b->dh) *
           sizeof(float);
}

static void release_region(void *p, size_t bytes) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1), hi = ((uintptr_t)p + bytes) & ~(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* Resident bytes of the pages [p, p + bytes) lies on (mincore). */
static size_t resident_region(const void *p, size_t bytes) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = (uintptr_t)p & ~(page - 1), hi = ((uintptr_t)p + bytes + page - 1) & ~(page - 1);
    size_t n = (hi - lo) / page, res = 0;
    unsigned char vec[256];
    for (size_t i = 0; i < n; i += sizeof vec) {
        const size_t m = CE_MIN(n - i, sizeof vec);
        if (mincore((void *)(lo + i * page), m * page, vec)) return 0;
        for (size_t j = 0; j < m; j++) res += vec[j] & 1;
    }
    return res * page;
}

size_t bert_resident_bytes(const bert *b) {
    const size_t T = (size_t)b->max_tokens;
    return resident_region(b->x, T * (size_t)b->H * sizeof(float)) +
           resident_region(b->a, T * (size_t)b->wa * sizeof(float)) +
           resident_region(b->c_buf, T * (size_t)b->cw * sizeof(float)) +
           resident_region(b->scratch, (size_t)pool_threads(b->p) * b->scratch_per_thread * sizeof(float));
}

void bert_release(bert *b) {
    const size_t T = (size_t)b->max_tokens, H = (size_t)b->H;
    release_region(b->x, T * H * sizeof(float));
    release_region(b->a, T * (size_t)b->wa * sizeof(float));
    release_region(b->c_buf, T * (size_t)b->cw * sizeof(float));
    const size_t kept = scratch_kept(b);
    for (int t = 0; t < pool_threads(b->p); t++)
        release_region(b->scratch + (size_t)t * b->scratch_per_thread + kept,
                       (b->scratch_per_thread - kept) * sizeof(float));
}

/* ---- phases ---- */

/* After the GEMM: nothing but its bias (and GELU), x = LN(C + x) (post-norm
 * residual), or x += C (pre-norm residual); EPI_QKV also rotates Q and K;
 * EPI_GLU applies the gated unit to C's two halves. */
enum epilogue { EPI_BIAS, EPI_BIAS_GELU, EPI_ADD_LN, EPI_ADD, EPI_QKV, EPI_GLU };

/* One Linear layer: C[rows, N] = A[rows, K] @ W[N, K]^T + bias, then the
 * epilogue. Row strides: lda, ldc (region a always has rows of wa floats,
 * so a sequence's rows are the same bytes whatever the layer writes there).
 * g, beta: the LayerNorm of EPI_ADD_LN; norm: a LayerNorm to apply to A's
 * rows first (pre-norm: A is then region c, filled from x). */
typedef struct gemm_op {
    const float *A, *bias, *g, *beta;
    const float *g2, *beta2;        /* EPI_ADD_LN: a second LayerNorm, x = LN2(x + LN(C + x)) (double_norm) */
    const float *norm_g, *norm_b;
    const nn_linear *W;
    float *C;
    int lda, ldc;
    enum epilogue epi;
    int layer;
} gemm_op;

typedef struct job {
    bert *b;
    int T, n_seq;
    const int32_t *ids;
    const int *offsets;
    float *out;
    int ld_out;        /* floats per output row: hidden, or the head's labels */
    float *tokens;     /* optional: every token's last hidden state, T rows */
    int normalize;
    gemm_op op;        /* the GEMM phase's layer */
    int layer;         /* the post-attention phase's layer */
    atomic_int next;   /* attention: next work item (att_item); whole-sequence mode: next sequence */
    int chunked;       /* some sequence is longer than ATT_CHUNK */
    /* shared items (co_run) for sequences [co_s0, n_seq): rows per GEMM item,
     * row items and attention items per phase, the next ticket, items done */
    int co_s0, co_rows, co_nr, co_na;
    atomic_int co_ticket, co_done;
} job;

/* Queries of one attention work item at most: a long sequence's heads are
 * split so that every thread gets a share of them (a multiple of
 * NN_ATT_QS: each row's result is the same bits as in one call). */
#define ATT_CHUNK (8 * NN_ATT_QS)

/* Rows of a shared GEMM item (co_run) when a batch is shared items only, at
 * least: oneDNN's largest tile at int8; twice that where the weights are 2
 * or 4 bytes, which a call streams from L3 (bf16: widens) once per item. */
#define CO_ROWS 64
static int co_rows_min(const bert *b) { return b->prec == NN_INT8 ? CO_ROWS : 2 * CO_ROWS; }

static void row_range(int T, int t, int n, int *r0, int *r1) {
    *r0 = (int)((long long)T * t / n);
    *r1 = (int)((long long)T * (t + 1) / n);
}

/* x[r0..r1) = LN(word + position + type embeddings) */
static void embed_rows(bert *b, const int32_t *ids, int r0, int r1) {
    const model *m = b->m;
    const int H = b->H;
    for (int r = r0; r < r1; r++) {
        /* the tables as stored (F32, F16, BF16), a row widened at a time */
        float *x = b->x + (size_t)r * H;
        model_w_read(m->word_emb, (size_t)ids[r] * H, (size_t)H, x, 0);
        if (m->pos_emb.p) model_w_read(m->pos_emb, (size_t)b->pos[r] * H, (size_t)H, x, 1);
        if (m->type_emb.p) model_w_read(m->type_emb, (size_t)b->type[r] * H, (size_t)H, x, 1);
    }
    if (r1 > r0 && m->emb_ln_g)
        b->k->add_layernorm(NULL, NULL, b->x + (size_t)r0 * H, m->emb_ln_g, m->emb_ln_b, m->cfg.layer_norm_eps,
                            r1 - r0, H);
}

/* x[0..n) = the model's norm of itself: LayerNorm (g, beta) or RMSNorm (g). */
static void norm_row(const bert *b, float *x, const float *g, const float *beta, int n) {
    if (b->c->norm == NORM_RMS) b->k->rms_norm(x, g, b->c->layer_norm_eps, 1, n);
    else b->k->add_layernorm(NULL, NULL, x, g, beta, b->c->layer_norm_eps, 1, n);
}

/* Whether layer l attends through a sliding window. */
static int windowed(const model_config *c, int l) { return c->window > 0 && l % c->global_every != 0; }

/* Rotates Q and K of rows [r0, r1) of region a (the qkv GEMM's output) by
 * each row's position: on the first rope_dims of every head, halves
 * (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin). */
static void rope_rows(bert *b, int l, int r0, int r1) {
    const int half = b->c->rope_dims / 2, dh = b->dh, ms = b->max_seq_len;
    const float *cs = b->rope[windowed(b->c, l)], *sn = cs + (size_t)ms * half;
    for (int r = r0; r < r1; r++) {
        const float *cr = cs + (size_t)b->pos[r] * half, *sr = sn + (size_t)b->pos[r] * half;
        float *row = b->a + (size_t)r * b->wa;
        for (int h = 0; h < b->heads + b->kvh; h++) {   /* the heads of Q, then of K */
            float *x = row + (h < b->heads ? h * dh : b->Dq + (h - b->heads) * dh);
            for (int i = 0; i < half; i++) {
                const float x1 = x[i], x2 = x[i + half];
                x[i] = x1 * cr[i] - x2 * sr[i];
                x[i + half] = x2 * cr[i] + x1 * sr[i];
            }
        }
    }
}

/* After the qkv GEMM: Q's and K's LayerNorms (qk_norm), then rotary. */
static void qk_rows(bert *b, int l, int r0, int r1) {
    const bert_layer_w *w = &b->m->layer[l];
    const int n = b->c->qk_norm;   /* the whole of Q and of K (Jina), or each head (Qwen3) */
    if (w->qn_g)
        for (int r = r0; r < r1; r++) {
            float *row = b->a + (size_t)r * b->wa;
            for (int o = 0; o < b->Dq; o += n) norm_row(b, row + o, w->qn_g, w->qn_b, n);
            for (int o = 0; o < b->Dkv; o += n) norm_row(b, row + b->Dq + o, w->kn_g, w->kn_b, n);
        }
    if (b->rope[0]) rope_rows(b, l, r0, r1);
}

/* Rows [r0, r1) of op, on thread t. */
static void gemm_rows(bert *b, const gemm_op *op, int r0, int r1, int t) {
    const int H = b->H, lda = op->lda, ldc = op->ldc, step = nn_gemm_rows(b->g);
    const float eps = b->c->layer_norm_eps;
    for (int r = r0; r < r1; r += step) {
        const int rows = CE_MIN(step, r1 - r);
        float *C = op->C + (size_t)r * ldc;
        const float *A = op->A + (size_t)r * lda;
        if (op->norm_g)   // c [rows, H] = norm(x) (pre-norm)
            for (int i = 0; i < rows; i++) {
                float *ci = b->c_buf + (size_t)(r + i) * b->cw;
                memcpy(ci, b->x + (size_t)(r + i) * H, (size_t)H * sizeof(float));
                norm_row(b, ci, op->norm_g, op->norm_b, H);
            }
        // C [rows, N] = A [rows, K] @ W [N, K]^T + bias (GELU)
        nn_gemm_run(b->g, t, op->W, rows, A, lda, op->bias, op->epi == EPI_BIAS_GELU, C, ldc);
        if (op->epi == EPI_ADD_LN && op->g2)   // C = LN(x + C); x [rows, H] = LN2(C + x)
            for (int i = 0; i < rows; i++) {
                float *ci = C + (size_t)i * ldc, *xi = b->x + (size_t)(r + i) * H;
                b->k->add_layernorm(xi, NULL, ci, op->g, op->beta, eps, 1, H);
                b->k->add_layernorm(ci, NULL, xi, op->g2, op->beta2, eps, 1, H);
            }
        else if (op->epi == EPI_ADD_LN)   // x [rows, H] = LN(C + x)
            for (int i = 0; i < rows; i++)
                b->k->add_layernorm(C + (size_t)i * ldc, NULL, b->x + (size_t)(r + i) * H, op->g, op->beta, eps, 1, H);
        else if (op->epi == EPI_ADD)   // x [rows, H] += C
            for (int i = 0; i < rows; i++) {
                float *x = b->x + (size_t)(r + i) * H;
                const float *cr = C + (size_t)i * ldc;
                for (int j = 0; j < H; j++) x[j] += cr[j];
            }
        else if (op->epi == EPI_GLU)   // C [rows, I] = act(C[:, :I]) * C[:, I:]
            b->k->glu(C, ldc, rows, b->I, b->c->act == ACT_SILU ? NN_ACT_SILU : NN_ACT_GELU);
        else if (op->epi == EPI_QKV)
            qk_rows(b, op->layer, r, r + rows);
    }
}

/* Head h of sequence s in layer l, its queries [i0, i1): ctx[t0 + i0.., h*dh..] = attention(qkv rows of s) */
static void attend(bert *b, const int *offsets, int l, int s, int h, int i0, int i1, int t) {
    const int dh = b->dh, ld = b->wa, kv = h / (b->heads / b->kvh);   /* grouped-query: heads share K and V */
    const int t0 = offsets[s], L = offsets[s + 1] - t0;
    const float *base = b->a + (size_t)t0 * ld;
    nn_attn_mask mask = {b->slopes ? b->slopes[h] : 0.0f, windowed(b->c, l) ? b->c->window / 2 : 0, b->c->causal};
    /* q of head h: columns [h*dh, (h+1)*dh) of Q; k, v: those of its group in K and V */
    b->attention(base + h * dh, base + b->Dq + kv * dh, base + b->Dq + b->Dkv + kv * dh, ld, L, i0, i1, dh,
                 1.0f / sqrtf((float)dh), mask.slope != 0.0f || mask.window || mask.causal ? &mask : NULL,
                 b->c_buf + (size_t)t0 * b->cw + h * dh, b->cw, b->scratch + (size_t)t * b->scratch_per_thread);
}

/* The classifier on the first token: o[labels] = Wout tanh(Wd x + bd) + bout
 * (plain loops: a few rows per batch, batch-invariant). */
static void classify(const bert *b, const float *x, float *o, float *h) {
    const model *m = b->m;
    const int H = b->H, n = b->c->num_labels;
    for (int i = 0; i < H; i++) {
        double acc = m->head_b[i];
        for (int k = 0; k < H; k++) acc += (double)b->head_w[(size_t)i * H + k] * x[k];
        h[i] = tanhf((float)acc);
    }
    for (int j = 0; j < n; j++) {
        double acc = m->out_b[j];
        for (int k = 0; k < H; k++) acc += (double)b->out_w[(size_t)j * H + k] * h[k];
        o[j] = (float)acc;
    }
}

/* out[s] = mean (or first or last token) of x over sequence s, L2-normalized
 * when asked; or the classifier's labels. */
static void pool_seq(bert *b, const job *j, int s, int t) {
    const int H = b->H;
    const int t0 = j->offsets[s], L = j->offsets[s + 1] - t0;
    float *o = j->out + (size_t)s * j->ld_out;
    if (b->c->final_norm)
        for (int r = 0; r < L; r++) norm_row(b, b->x + (size_t)(t0 + r) * H, b->m->final_g, b->m->final_b, H);
    if (j->tokens) memcpy(j->tokens + (size_t)t0 * H, b->x + (size_t)t0 * H, (size_t)L * H * sizeof(float));
    if (b->c->head) {
        classify(b, b->x + (size_t)t0 * H, o, b->scratch + (size_t)t * b->scratch_per_thread);
        return;
    }
    if (b->m->pooling == POOL_CLS || b->m->pooling == POOL_LAST) {
        memcpy(o, b->x + (size_t)(b->m->pooling == POOL_CLS ? t0 : t0 + L - 1) * H, (size_t)H * sizeof(float));
    } else {
        for (int i = 0; i < H; i++) o[i] = 0;
        for (int r = 0; r < L; r++) {
            const float *x = b->x + (size_t)(t0 + r) * H;
            for (int i = 0; i < H; i++) o[i] += x[i];
        }
        const float inv = 1.0f / (float)L;
        for (int i = 0; i < H; i++) o[i] *= inv;
    }
    if (j->normalize) cembed_l2_normalize(o, (size_t)H);
}

/* The layer's four Linear layers (see the top of this file). */
static gemm_op layer_op(const bert *b, int l, int which) {
    const bert_layer_w *w = &b->m->layer[l];
    const nn_linear *lin = b->lin + 4 * l;
    const int H = b->H, wa = b->wa, cw = b->cw, pre = b->c->prenorm;
    float *x = b->x, *c = b->c_buf;
    gemm_op op;
    switch (which) {
    case 0:   // a [T, Dq + 2 Dkv] = x @ Wqkv^T + bqkv, q/k norms, rotary   (pre-norm: norm1(x), in c)
        op = (gemm_op){pre ? c : x, b->bqkv ? b->bqkv + (size_t)l * (size_t)(b->Dq + 2 * b->Dkv) : NULL, NULL, NULL,
                       NULL, NULL, NULL, NULL, &lin[0], b->a, pre ? cw : H, wa, EPI_QKV, l};
        if (pre && w->ln1_g) op.norm_g = w->ln1_g, op.norm_b = w->ln1_b;
        else if (pre) op.A = x, op.lda = H;   /* the identity norm (ModernBERT's layer 0) */
        return op;
    case 1:   // x = LN(c @ Wo^T + bo + x)   (c [T, Dq] the context; a [T, H] holds the product; pre-norm: x += it)
        return (gemm_op){c, w->o_b, w->ln1_g, w->ln1_b, w->ln1x_g, w->ln1x_b, NULL, NULL, &lin[1], b->a, cw, wa,
                         pre ? EPI_ADD : EPI_ADD_LN, l};
    case 2:   // a [T, U] = act(x @ Wi^T + bi)   (pre-norm: norm2(x), in c; GLU: act(a[:, :I]) * a[:, I:])
        op = (gemm_op){x, b->bup ? b->bup + (size_t)l * b->U : NULL, NULL, NULL, NULL, NULL, NULL, NULL, &lin[2], b->a,
                       H, wa, b->c->glu ? EPI_GLU : EPI_BIAS_GELU, l};
        if (pre) op.A = c, op.lda = cw, op.norm_g = w->ln2_g, op.norm_b = w->ln2_b;
        return op;
    default:  // x = LN(a @ Wf^T + bf + x)   (c [T, H] holds the product; pre-norm: x += it)
        return (gemm_op){b->a, w->f_b, w->ln2_g, w->ln2_b, NULL, NULL, NULL, NULL, &lin[3], c, wa, cw,
                         pre ? EPI_ADD : EPI_ADD_LN, l};
    }
}

/* Rows [r0, r1) of layer l after its attention: out-projection + LN, FFN up
 * + GELU, FFN down + LN, a chunk of nn_gemm_rows rows at a time through all
 * three, so that the chunk's [rows, I] intermediate is still in L2 when FFN
 * down reads it (a whole sequence's is 1.5 MB). Rows only read their own
 * rows of a and c, and qkv (in a) is no longer needed. */
static void post_attention_rows(bert *b, int l, int r0, int r1, int t) {
    const int step = nn_gemm_rows(b->g);
    for (int r = r0; r < r1; r += step)
        for (int k = 1; k < 4; k++) {
            const gemm_op op = layer_op(b, l, k);
            gemm_rows(b, &op, r, CE_MIN(r + step, r1), t);
        }
}

static void phase_embed(void *arg, int t, int n) {
    job *j = arg;
    int r0, r1;
    row_range(j->T, t, n, &r0, &r1);
    embed_rows(j->b, j->ids, r0, r1);
}

static void phase_gemm(void *arg, int t, int n) {
    job *j = arg;
    int r0, r1;
    row_range(j->T, t, n, &r0, &r1);
    gemm_rows(j->b, &j->op, r0, r1, t);
}

static void phase_post_attention(void *arg, int t, int n) {
    job *j = arg;
    int r0, r1;
    row_range(j->T, t, n, &r0, &r1);
    post_attention_rows(j->b, j->layer, r0, r1, t);
}

/* Attention work item w of sequences [0, n_seq) of offsets: OUT: sequence
 * *s, head *h, queries [*i0, *i1); (sequence, head) pairs in order, each
 * split into chunks of ATT_CHUNK queries when chunked (the batch holds a
 * longer sequence). 0 past the last item. */
static int att_item_of(const int *offsets, int n_seq, int heads, int chunked, int w, int *s, int *h, int *i0, int *i1) {
    if (!chunked) {   /* one item per (sequence, head) */
        if (w >= n_seq * heads) return 0;
        *s = w / heads, *h = w % heads, *i0 = 0, *i1 = offsets[*s + 1] - offsets[*s];
        return 1;
    }
    for (int q = 0; q < n_seq; q++) {
        const int L = offsets[q + 1] - offsets[q], c = (L + ATT_CHUNK - 1) / ATT_CHUNK;
        if (w < heads * c) {   /* the heads of a chunk in turn: threads share a head's K^T and V less */
            *s = q, *h = w % heads, *i0 = w / heads * ATT_CHUNK, *i1 = CE_MIN(L, *i0 + ATT_CHUNK);
            return 1;
        }
        w -= heads * c;
    }
    return 0;
}

static int att_item(const job *j, int w, int *s, int *h, int *i0, int *i1) {
    return att_item_of(j->offsets, j->n_seq, j->b->heads, j->chunked, w, s, h, i0, i1);
}

static void phase_attention(void *arg, int t, int n) {
    (void)n;
    job *j = arg;
    int s, h, i0, i1;
    while (att_item(j, atomic_fetch_add(&j->next, 1), &s, &h, &i0, &i1)) attend(j->b, j->offsets, j->layer, s, h, i0, i1, t);
}

static void phase_pool(void *arg, int t, int n) {
    job *j = arg;
    int s0, s1;
    row_range(j->n_seq, t, n, &s0, &s1);
    for (int s = s0; s < s1; s++) pool_seq(j->b, j, s, t);
}

/* ---- shared items ----
 * Sequences [co_s0, n_seq) as one list of items in phase order: embedding
 * rows; per layer qkv rows, attention items (att_item_of), post-attention
 * rows; pooling, one sequence each. One counter hands out tickets, a second
 * counts the items done; a ticket's item runs once every item of the
 * earlier phases is done (no item of a phase starts before that, so the
 * count reaching the phase's first ticket means exactly that). Any number
 * of threads, joining whenever they are free, share the phases without a
 * barrier for the threads still busy elsewhere, and each item computes what
 * one thread alone would: the same bits. */

/* Waits until *done reaches n: spins (an item is usually done within
 * microseconds to a millisecond of the others' end), then sleeps 50 us at
 * a time, so that threads with nothing to do for long (a batch with fewer
 * items than threads) do not hold their cores. No sched_yield: on a loaded
 * machine it hands the core to another process, and the waiting thread
 * then comes back later than the item it waits for. */
static void wait_done(atomic_int *done, int n) {
    for (int spins = 0; atomic_load_explicit(done, memory_order_acquire) < n; spins++) {
        if (spins >= 8192) nanosleep(&(struct timespec){0, 50000}, NULL);
#if defined(__x86_64__) || defined(__i386__)
        else __builtin_ia32_pause();
#else
        else sched_yield();
#endif
    }
}

/* Rows of GEMM item i: [*r0, *r1) */
static void co_item_rows(const job *j, int i, int *r0, int *r1) {
    *r0 = j->offsets[j->co_s0] + i * j->co_rows;
    *r1 = CE_MIN(j->T, *r0 + j->co_rows);
}

/* Runs ticket k's item on thread t; 0 past the last one. */
static int co_run(job *j, int k, int t) {
    bert *b = j->b;
    const int nr = j->co_nr, na = j->co_na, per = 2 * nr + na, layers = b->c->layers;
    const int pool0 = nr + layers * per, n_tail = j->n_seq - j->co_s0;
    int start, kind, i, l = 0;
    if (k < nr) {
        start = 0, kind = 0, i = k;   /* embedding rows */
    } else if (k < pool0) {
        l = (k - nr) / per;
        const int base = nr + l * per, rem = k - base;
        if (rem < nr) start = base, kind = 1, i = rem;                          /* qkv rows */
        else if (rem < nr + na) start = base + nr, kind = 2, i = rem - nr;      /* attention */
        else start = base + nr + na, kind = 3, i = rem - nr - na;              /* post-attention rows */
    } else if (k < pool0 + n_tail) {
        start = pool0, kind = 4, i = k - pool0;
    } else {
        return 0;
    }
    wait_done(&j->co_done, start);
    int r0 = 0, r1 = 0, s, h, i0, i1;
    if (kind != 2 && kind != 4) co_item_rows(j, i, &r0, &r1);
    switch (kind) {
    case 0: embed_rows(b, j->ids, r0, r1); break;
    case 1: {
        const gemm_op op = layer_op(b, l, 0);
        gemm_rows(b, &op, r0, r1, t);
        break;
    }
    case 2:
        att_item_of(j->offsets + j->co_s0, n_tail, b->heads, j->chunked, i, &s, &h, &i0, &i1);
        attend(b, j->offsets, l, j->co_s0 + s, h, i0, i1, t);
        break;
    case 3: post_attention_rows(b, l, r0, r1, t); break;
    default: pool_seq(b, j, j->co_s0 + i, t);
    }
    atomic_fetch_add_explicit(&j->co_done, 1, memory_order_acq_rel);
    return 1;
}

/* Sets up the shared items of sequences [s0, n_seq), rows cut in pieces of
 * at most `cap`: into a multiple of the thread count of pieces (a multiple
 * of 8 rows each, the last one shorter), so that the threads, once all
 * there, end each phase together */
static void co_setup(job *j, int s0, int cap) {
    const int n = j->n_seq - s0, T = j->T - j->offsets[s0], threads = pool_threads(j->b->p);
    const int pieces = CE_MAX(1, ((T + cap - 1) / cap + threads - 1) / threads * threads);   /* T = 0: no tail */
    const int rows = CE_MAX(1, CE_MIN(cap, ((T + pieces - 1) / pieces + 7) & ~7));
    int s, h, i0, i1, na = 0;
    while (att_item_of(j->offsets + s0, n, j->b->heads, j->chunked, na, &s, &h, &i0, &i1)) na++;
    j->co_s0 = s0, j->co_rows = rows, j->co_nr = (T + rows - 1) / rows, j->co_na = na;
    atomic_store(&j->co_ticket, 0);
    atomic_store(&j->co_done, 0);
}

static void co_items(job *j, int t) {
    if (j->co_s0 >= j->n_seq) return;
    while (co_run(j, atomic_fetch_add(&j->co_ticket, 1), t)) {
    }
}

static void phase_shared(void *arg, int t, int n) {
    (void)n;
    co_items(arg, t);
}

/* Whole-sequence mode: each thread takes the next sequence and runs it
 * through every layer alone. A sequence's rows of x, a and c (at most 256 x
 * 1536 floats) stay in this core's caches from one step to the next instead
 * of going to memory between phases, and no thread waits on a barrier; then
 * the shared items of the tail. */
static void phase_sequences(void *arg, int t, int n) {
    (void)n;
    job *j = arg;
    bert *b = j->b;
    for (;;) {
        const int s = atomic_fetch_add(&j->next, 1);
        if (s >= j->co_s0) break;   /* the rest are shared items */
        const int r0 = j->offsets[s], r1 = j->offsets[s + 1];
        embed_rows(b, j->ids, r0, r1);
        for (int l = 0; l < b->c->layers; l++) {
            gemm_op op = layer_op(b, l, 0);
            gemm_rows(b, &op, r0, r1, t);
            for (int h = 0; h < b->heads; h++) attend(b, j->offsets, l, s, h, 0, r1 - r0, t);
            post_attention_rows(b, l, r0, r1, t);
        }
        pool_seq(b, j, s, t);
    }
    co_items(j, t);
}

void cembed_l2_normalize(float *v, size_t n) {
    double sq = 0;
    for (size_t i = 0; i < n; i++) sq += (double)v[i] * v[i];
    const float inv = (float)(1.0 / fmax(sqrt(sq), 1e-12));
    for (size_t i = 0; i < n; i++) v[i] *= inv;
}

void bert_forward(bert *b, int n_seq, const int32_t *ids, const int *offsets, float *out, int normalize) {
    bert_forward_ex(b, n_seq, ids, offsets, NULL, out, normalize, NULL);
}

void bert_forward_tokens(bert *b, int n_seq, const int32_t *ids, const int *offsets, float *out, int normalize,
                         float *tokens) {
    bert_forward_ex(b, n_seq, ids, offsets, NULL, out, normalize, tokens);
}

int bert_out_dims(const bert *b) { return b->c->head ? b->c->num_labels : b->H; }

void bert_forward_ex(bert *b, int n_seq, const int32_t *ids, const int *offsets, const int *type1_from, float *out,
                     int normalize, float *tokens) {
    const int T = offsets[n_seq];
    CE_ASSERT(T <= b->max_tokens);
    const int ntypes = b->c->type_vocab_size;
    for (int s = 0; s < n_seq; s++) {
        const int L = offsets[s + 1] - offsets[s];
        CE_ASSERT(L >= 1 && L <= b->max_seq_len);
        const int from = type1_from && ntypes > 1 ? type1_from[s] : L;
        for (int p = 0; p < L; p++) {
            b->pos[offsets[s] + p] = b->c->pos_offset + p;
            b->type[offsets[s] + p] = p >= from;
        }
    }
    job j = {.b = b, .T = T, .n_seq = n_seq, .ids = ids, .offsets = offsets, .out = out, .normalize = normalize,
             .tokens = tokens, .ld_out = bert_out_dims(b)};
    for (int s = 0; s < n_seq; s++) j.chunked |= offsets[s + 1] - offsets[s] > ATT_CHUNK;
    /* Whole sequences per thread when there are enough to share out (the
     * caller sorts them longest first) and the weights are prepared: OpenBLAS
     * repacks its weights on every call, too often for one sequence's rows.
     * Both orders give every row the same arithmetic. */
    const int threads = pool_threads(b->p);
    if (!b->blas && n_seq >= 2 * threads) {
        /* the last (shortest) sequences, as much work as the longest, become
         * shared items, so that a thread done early helps the others finish */
        int s0 = n_seq;
        while (threads > 1 && s0 > threads && T - offsets[s0] < offsets[1] - offsets[0]) s0--;
        /* fp32 and bf16 weights (4 and 2 bytes, bf16 widened per call) cost
         * more per call than a tail's balance gains: whole calls there, the
         * tail's attention items still shared */
        co_setup(&j, s0, b->prec == NN_INT8 ? CE_MIN(CO_ROWS, nn_gemm_rows(b->g)) : nn_gemm_rows(b->g));
        pool_run(b->p, phase_sequences, &j);
        return;
    }
    if (!b->blas) {   /* every sequence as shared items, rows cut so that each thread gets a few */
        const int step = nn_gemm_rows(b->g), want = (T / (4 * threads) + CO_ROWS - 1) / CO_ROWS * CO_ROWS;
        co_setup(&j, 0, CE_MIN(step, CE_MAX(co_rows_min(b), want)));
        pool_run(b->p, phase_shared, &j);
        return;
    }
    pool_run(b->p, phase_embed, &j);
    for (int l = 0; l < b->c->layers; l++) {
        j.op = layer_op(b, l, 0);
        pool_run(b->p, phase_gemm, &j);
        atomic_store(&j.next, 0);
        j.layer = l;
        pool_run(b->p, phase_attention, &j);
        pool_run(b->p, phase_post_attention, &j);
    }
    pool_run(b->p, phase_pool, &j);
}
