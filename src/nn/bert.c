/* The BERT forward pass; see bert.h. Per layer, with T tokens, H hidden,
 * I intermediate, and three activation regions x [T,H], a [T,max(3H,I)],
 * c [T,H]:
 *   a   = x @ Wqkv^T + bqkv             (qkv, one GEMM of N = 3H)
 *   c   = attention(a) per sequence, per head
 *   a   = c @ Wo^T;  x = LN(a + bo + x)
 *   a   = gelu(x @ Wi^T + bi)
 *   c   = a @ Wf^T;  x = LN(c + bf + x)
 * The GEMMs go through the seam of nn/gemm.h (oneDNN or our kernels, on
 * weights prepared once at bert_new) in chunks of nn_gemm_rows rows, bias
 * and GELU included; residual + LayerNorm follow on the chunk while it is in
 * L2. Attention runs the table's fp32 kernel, or its bf16 one when the
 * options ask (int8 and bf16 on CPUs with AVX512_BF16).
 * Two schedules (bert_forward): with at least two sequences per thread, each
 * thread takes whole sequences through every layer; otherwise each phase
 * splits its rows across the threads, with a barrier between phases. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bert.h"

struct bert {
    const model *m;
    const nn_kernels *k;
    pool *p;
    int max_tokens, max_seq_len;
    int H, I, heads, dh, wa;   /* wa: width of region a */
    nn_precision prec;
    nn_gemm *g;
    int blas;                  /* the GEMMs read the model's fp32 weights */
    void (*attention)(const float *q, const float *k, const float *v, int ld, int L, int dh, float scale,
                      float *out, int ldo, float *scratch);
    float *wqkv, *bqkv;        /* per layer: [3H, H] (BLAS only), [3H] */
    nn_linear *lin;            /* per layer qkv, o, i, f */
    float *x, *a, *c;          /* workspace */
    float *scratch;            /* per thread attention scratch */
    size_t scratch_per_thread;
    int32_t *pos;              /* position of each token */
};

/* The four shapes of a layer's Linear layers: qkv, o, i, f. */
static void layer_shapes(const model_config *c, nn_shape sh[4]) {
    sh[0] = (nn_shape){3 * c->hidden, c->hidden};
    sh[1] = (nn_shape){c->hidden, c->hidden};
    sh[2] = (nn_shape){c->intermediate, c->hidden};
    sh[3] = (nn_shape){c->hidden, c->intermediate};
}

size_t bert_workspace_bytes(const model_config *c, nn_precision prec, int max_tokens, int max_seq_len, int threads) {
    size_t H = (size_t)c->hidden, I = (size_t)c->intermediate, T = (size_t)max_tokens;
    size_t wa = CE_MAX(3 * H, I);
    size_t floats = T * (2 * H + wa) + (size_t)threads * nn_attention_scratch(max_seq_len, c->hidden / c->heads);
    size_t bytes = floats * sizeof(float) + T * sizeof(int32_t) + (size_t)c->layers * 3 * H * sizeof(float);
    nn_shape sh[4];
    layer_shapes(c, sh);
    return bytes + nn_gemm_bytes(prec, threads, sh, 4, c->layers);
}

void bert_free(bert *b) {
    if (!b) return;
    base_free(b->wqkv);
    base_free(b->bqkv);
    for (int i = 0; b->lin && i < 4 * b->m->cfg.layers; i++) nn_linear_free(&b->lin[i]);
    base_free(b->lin);
    nn_gemm_free(b->g);
    base_free(b->x);
    base_free(b->a);
    base_free(b->c);
    base_free(b->scratch);
    base_free(b->pos);
    base_free(b);
}

/* Prepares layer l's four weights; the stacked Q, K, V go through qkv, a
 * [3H, H] buffer (for BLAS the one it keeps). */
static int prepare_layer(bert *b, size_t l, float *qkv) {
    const bert_layer_w *w = &b->m->layer[l];
    const size_t H = (size_t)b->H;
    memcpy(qkv, w->q_w, H * H * sizeof(float));
    memcpy(qkv + H * H, w->k_w, H * H * sizeof(float));
    memcpy(qkv + 2 * H * H, w->v_w, H * H * sizeof(float));
    float *bd = b->bqkv + l * 3 * H;
    memcpy(bd, w->q_b, H * sizeof(float));
    memcpy(bd + H, w->k_b, H * sizeof(float));
    memcpy(bd + 2 * H, w->v_b, H * sizeof(float));
    nn_linear *lin = b->lin + 4 * l;
    int rc = nn_gemm_prepare(b->g, qkv, 3 * b->H, b->H, &lin[0]);
    if (!rc) rc = nn_gemm_prepare(b->g, w->o_w, b->H, b->H, &lin[1]);
    if (!rc) rc = nn_gemm_prepare(b->g, w->i_w, b->I, b->H, &lin[2]);
    if (!rc) rc = nn_gemm_prepare(b->g, w->f_w, b->H, b->I, &lin[3]);
    return rc;
}

int bert_new(const model *m, const bert_opts *o, pool *p, int max_tokens, int max_seq_len, bert **out) {
    *out = NULL;
    const model_config *c = &m->cfg;
    CE_ASSERT(max_tokens >= max_seq_len && max_seq_len >= 2 && max_seq_len <= c->max_position);
    bert *b = base_calloc(1, sizeof *b);
    if (!b) return base_err(CEMBED_ENOMEM, "forward pass: out of memory");
    b->m = m;
    b->k = o->k;
    b->prec = o->prec;
    b->attention = o->attn_bf16 && o->k->attention_bf16 ? o->k->attention_bf16 : o->k->attention;
    b->p = p;
    b->max_tokens = max_tokens;
    b->max_seq_len = max_seq_len;
    b->H = c->hidden;
    b->I = c->intermediate;
    b->heads = c->heads;
    b->dh = c->hidden / c->heads;
    b->wa = CE_MAX(3 * b->H, b->I);
    const size_t H = (size_t)b->H, T = (size_t)max_tokens, L = (size_t)c->layers;
    const int threads = pool_threads(p);
    nn_shape sh[4];
    layer_shapes(c, sh);
    int rc = nn_gemm_new(o->k, o->prec, o->gemm, threads, sh, 4, &b->g);
    if (rc) {
        bert_free(b);
        return rc;
    }
    b->blas = nn_gemm_backend_of(b->g) == NN_GEMM_BLAS;
    b->scratch_per_thread = nn_attention_scratch(max_seq_len, b->dh);
    b->wqkv = base_malloc((b->blas ? L : 1) * 3 * H * H * sizeof(float));
    b->bqkv = base_malloc(L * 3 * H * sizeof(float));
    b->lin = base_calloc(4 * L, sizeof *b->lin);
    b->x = base_malloc(T * H * sizeof(float));
    b->a = base_malloc(T * (size_t)b->wa * sizeof(float));
    b->c = base_malloc(T * H * sizeof(float));
    b->scratch = base_malloc((size_t)threads * b->scratch_per_thread * sizeof(float));
    b->pos = base_malloc(T * sizeof(int32_t));
    if (!b->wqkv || !b->bqkv || !b->lin || !b->x || !b->a || !b->c || !b->scratch || !b->pos) {
        size_t want = bert_workspace_bytes(c, o->prec, max_tokens, max_seq_len, threads);
        bert_free(b);
        return base_err(CEMBED_ENOMEM, "forward pass: cannot allocate the %zu-byte workspace", want);
    }
    for (size_t l = 0; l < L && !rc; l++) rc = prepare_layer(b, l, b->wqkv + (b->blas ? l * 3 * H * H : 0));
    if (!rc && !b->blas) {   /* the stacked copy served its purpose */
        base_free(b->wqkv);
        b->wqkv = NULL;
    }
    if (rc) {
        bert_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

const char *bert_gemm_describe(const bert *b) { return nn_gemm_describe(b->g); }

int bert_packed(const bert *b) { return !b->blas; }

size_t bert_batch_bytes(const bert *b, int tokens) {
    return (size_t)tokens * (size_t)(2 * b->H + b->wa) * sizeof(float);
}

static void release_region(void *p, size_t bytes) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1), hi = ((uintptr_t)p + bytes) & ~(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void bert_release(bert *b) {
    const size_t T = (size_t)b->max_tokens, H = (size_t)b->H;
    release_region(b->x, T * H * sizeof(float));
    release_region(b->a, T * (size_t)b->wa * sizeof(float));
    release_region(b->c, T * H * sizeof(float));
}

/* ---- phases ---- */

enum epilogue { EPI_BIAS, EPI_BIAS_GELU, EPI_ADD_LN };

/* One Linear layer: C[rows, N] = A[rows, K] @ W[N, K]^T + bias, then the
 * epilogue (EPI_ADD_LN: x = LN(C + x)). Row strides: lda, ldc (region a
 * always has rows of wa floats, so a sequence's rows are the same bytes
 * whatever the layer writes there). */
typedef struct gemm_op {
    const float *A, *bias, *g, *beta;
    const nn_linear *W;
    float *C;
    int lda, ldc;
    enum epilogue epi;
} gemm_op;

typedef struct job {
    bert *b;
    int T, n_seq;
    const int32_t *ids;
    const int *offsets;
    float *out;
    float *tokens;     /* optional: every token's last hidden state, T rows */
    int normalize;
    gemm_op op;        /* the GEMM phase's layer */
    int layer;         /* the post-attention phase's layer */
    atomic_int next;   /* attention: next (sequence, head) pair; whole-sequence mode: next sequence */
} job;

static void row_range(int T, int t, int n, int *r0, int *r1) {
    *r0 = (int)((long long)T * t / n);
    *r1 = (int)((long long)T * (t + 1) / n);
}

/* x[r0..r1) = LN(word + position + type embeddings) */
static void embed_rows(bert *b, const int32_t *ids, int r0, int r1) {
    const model *m = b->m;
    const int H = b->H;
    for (int r = r0; r < r1; r++) {
        const float *we = m->word_emb + (size_t)ids[r] * H, *pe = m->pos_emb + (size_t)b->pos[r] * H;
        float *x = b->x + (size_t)r * H;
        for (int i = 0; i < H; i++) x[i] = we[i] + pe[i] + (m->type_emb ? m->type_emb[i] : 0.0f);
    }
    if (r1 > r0)
        b->k->add_layernorm(NULL, NULL, b->x + (size_t)r0 * H, m->emb_ln_g, m->emb_ln_b, m->cfg.layer_norm_eps,
                            r1 - r0, H);
}

/* Rows [r0, r1) of op, on thread t. */
static void gemm_rows(bert *b, const gemm_op *op, int r0, int r1, int t) {
    const int H = b->H, lda = op->lda, ldc = op->ldc, step = nn_gemm_rows(b->g);
    const float eps = b->m->cfg.layer_norm_eps;
    for (int r = r0; r < r1; r += step) {
        const int rows = CE_MIN(step, r1 - r);
        float *C = op->C + (size_t)r * ldc;
        // C [rows, N] = A [rows, K] @ W [N, K]^T + bias (GELU)
        nn_gemm_run(b->g, t, op->W, rows, op->A + (size_t)r * lda, lda, op->bias, op->epi == EPI_BIAS_GELU, C, ldc);
        if (op->epi == EPI_ADD_LN)   // x [rows, H] = LN(C + x)
            for (int i = 0; i < rows; i++)
                b->k->add_layernorm(C + (size_t)i * ldc, NULL, b->x + (size_t)(r + i) * H, op->g, op->beta, eps, 1, H);
    }
}

/* Head h of sequence s: ctx[t0.., h*dh..] = attention(qkv rows of s) */
static void attend(bert *b, const int *offsets, int s, int h, int t) {
    const int H = b->H, dh = b->dh, ld = b->wa;
    const int t0 = offsets[s], L = offsets[s + 1] - t0;
    const float *base = b->a + (size_t)t0 * ld;
    /* q, k, v of head h: columns [h*dh, (h+1)*dh) of each third of qkv */
    b->attention(base + h * dh, base + H + h * dh, base + 2 * H + h * dh, ld, L, dh, 1.0f / sqrtf((float)dh),
                    b->c + (size_t)t0 * H + h * dh, H, b->scratch + (size_t)t * b->scratch_per_thread);
}

/* out[s] = mean (or [CLS]) of x over sequence s, L2-normalized when asked */
static void pool_seq(bert *b, const job *j, int s) {
    const int H = b->H;
    const int t0 = j->offsets[s], L = j->offsets[s + 1] - t0;
    float *o = j->out + (size_t)s * H;
    if (j->tokens) memcpy(j->tokens + (size_t)t0 * H, b->x + (size_t)t0 * H, (size_t)L * H * sizeof(float));
    if (b->m->pooling == POOL_CLS) {
        memcpy(o, b->x + (size_t)t0 * H, (size_t)H * sizeof(float));
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
    const int H = b->H, wa = b->wa;
    switch (which) {
    case 0:   // a [T, 3H] = x @ Wqkv^T + bqkv
        return (gemm_op){b->x, b->bqkv + (size_t)l * 3 * H, NULL, NULL, &lin[0], b->a, H, wa, EPI_BIAS};
    case 1:   // x = LN(c @ Wo^T + bo + x)   (a [T, H] holds the product)
        return (gemm_op){b->c, w->o_b, w->ln1_g, w->ln1_b, &lin[1], b->a, H, wa, EPI_ADD_LN};
    case 2:   // a [T, I] = gelu(x @ Wi^T + bi)
        return (gemm_op){b->x, w->i_b, NULL, NULL, &lin[2], b->a, H, wa, EPI_BIAS_GELU};
    default:  // x = LN(a @ Wf^T + bf + x)   (c [T, H] holds the product)
        return (gemm_op){b->a, w->f_b, w->ln2_g, w->ln2_b, &lin[3], b->c, wa, H, EPI_ADD_LN};
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

static void phase_attention(void *arg, int t, int n) {
    (void)n;
    job *j = arg;
    const int heads = j->b->heads;
    for (;;) {
        int w = atomic_fetch_add(&j->next, 1);
        if (w >= j->n_seq * heads) break;
        attend(j->b, j->offsets, w / heads, w % heads, t);
    }
}

static void phase_pool(void *arg, int t, int n) {
    job *j = arg;
    int s0, s1;
    row_range(j->n_seq, t, n, &s0, &s1);
    for (int s = s0; s < s1; s++) pool_seq(j->b, j, s);
}

/* Whole-sequence mode: each thread takes the next sequence and runs it
 * through every layer alone. A sequence's rows of x, a and c (at most 256 x
 * 1536 floats) stay in this core's caches from one step to the next instead
 * of going to memory between phases, and no thread waits on a barrier. */
static void phase_sequences(void *arg, int t, int n) {
    (void)n;
    job *j = arg;
    bert *b = j->b;
    for (;;) {
        const int s = atomic_fetch_add(&j->next, 1);
        if (s >= j->n_seq) break;
        const int r0 = j->offsets[s], r1 = j->offsets[s + 1];
        embed_rows(b, j->ids, r0, r1);
        for (int l = 0; l < b->m->cfg.layers; l++) {
            gemm_op op = layer_op(b, l, 0);
            gemm_rows(b, &op, r0, r1, t);
            for (int h = 0; h < b->heads; h++) attend(b, j->offsets, s, h, t);
            post_attention_rows(b, l, r0, r1, t);
        }
        pool_seq(b, j, s);
    }
}

void cembed_l2_normalize(float *v, size_t n) {
    double sq = 0;
    for (size_t i = 0; i < n; i++) sq += (double)v[i] * v[i];
    const float inv = (float)(1.0 / fmax(sqrt(sq), 1e-12));
    for (size_t i = 0; i < n; i++) v[i] *= inv;
}

void bert_forward(bert *b, int n_seq, const int32_t *ids, const int *offsets, float *out, int normalize) {
    bert_forward_tokens(b, n_seq, ids, offsets, out, normalize, NULL);
}

void bert_forward_tokens(bert *b, int n_seq, const int32_t *ids, const int *offsets, float *out, int normalize,
                         float *tokens) {
    const int T = offsets[n_seq];
    CE_ASSERT(T <= b->max_tokens);
    for (int s = 0; s < n_seq; s++) {
        const int L = offsets[s + 1] - offsets[s];
        CE_ASSERT(L >= 1 && L <= b->max_seq_len);
        for (int p = 0; p < L; p++) b->pos[offsets[s] + p] = p;
    }
    job j = {.b = b, .T = T, .n_seq = n_seq, .ids = ids, .offsets = offsets, .out = out, .normalize = normalize,
             .tokens = tokens};
    /* Whole sequences per thread when there are enough to share out (the
     * caller sorts them longest first) and the weights are prepared: OpenBLAS
     * repacks its weights on every call, too often for one sequence's rows.
     * Both orders give every row the same arithmetic. */
    if (!b->blas && n_seq >= 2 * pool_threads(b->p)) {
        pool_run(b->p, phase_sequences, &j);
        return;
    }
    pool_run(b->p, phase_embed, &j);
    for (int l = 0; l < b->m->cfg.layers; l++) {
        j.op = layer_op(b, l, 0);
        pool_run(b->p, phase_gemm, &j);
        atomic_store(&j.next, 0);
        pool_run(b->p, phase_attention, &j);
        j.layer = l;
        pool_run(b->p, phase_post_attention, &j);
    }
    pool_run(b->p, phase_pool, &j);
}
