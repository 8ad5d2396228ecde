/* The BERT forward pass; see bert.h. Per layer, with T tokens, H hidden,
 * I intermediate, and three activation regions x [T,H], a [T,max(3H,I)],
 * c [T,H]:
 *   a   = x @ Wqkv^T + bqkv             (qkv, one GEMM of N = 3H)
 *   c   = attention(a) per sequence, per head
 *   a   = c @ Wo^T;  x = LN(a + bo + x)
 *   a   = gelu(x @ Wi^T + bi)
 *   c   = a @ Wf^T;  x = LN(c + bf + x)
 * The GEMMs run our kernel on weights packed at bert_new (fp32, bf16 or
 * int8) in chunks of NN_LOWP_ROWS rows: bias (and GELU) are added to each
 * tile in registers, residual + LayerNorm follow on the chunk while it is in
 * L2. With the scalar kernel table fp32 goes through single-threaded BLAS on
 * chunks of ROW_CHUNK rows instead, then the epilogue.
 * Two schedules (bert_forward): with at least two sequences per thread, each
 * thread takes whole sequences through every layer; otherwise each phase
 * splits its rows across the threads, with a barrier between phases. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bert.h"

#define ROW_CHUNK 2048

struct bert {
    const model *m;
    const nn_kernels *k;
    pool *p;
    int max_tokens, max_seq_len;
    int H, I, heads, dh, wa;   /* wa: width of region a */
    nn_precision prec;
    int own;                   /* GEMMs on our packed kernels (else fp32 BLAS) */
    float *wqkv, *bqkv;        /* per layer: [3H, H] (BLAS only), [3H] */
    nn_packed *packed;         /* own: per layer qkv, o, i, f */
    char *lowp_scratch;        /* own: per thread nn_lowp_scratch_bytes(max(H, I)) */
    size_t lowp_scratch_per_thread;
    float *x, *a, *c;          /* workspace */
    float *scratch;            /* per thread attention scratch */
    size_t scratch_per_thread;
    int32_t *pos;              /* position of each token */
};

size_t bert_workspace_bytes(const model_config *c, nn_precision prec, int max_tokens, int max_seq_len, int threads) {
    size_t H = (size_t)c->hidden, I = (size_t)c->intermediate, T = (size_t)max_tokens;
    size_t wa = CE_MAX(3 * H, I);
    size_t floats = T * (2 * H + wa) + (size_t)threads * nn_attention_scratch(max_seq_len, c->hidden / c->heads);
    size_t bytes = floats * sizeof(float) + T * sizeof(int32_t) + (size_t)c->layers * 3 * H * sizeof(float);
    /* packed weights: 6 H x H (+ padding) and 2 H x I per layer, 1, 2 or 4 bytes each, int8 scales
     * (fp32 through BLAS needs less: a [3H, H] copy per layer) */
    const size_t per = prec == NN_INT8 ? 1 : prec == NN_BF16 ? 2 : 4;
    const size_t cells = 6 * (H + NN_PANEL) * (H + 3) + 2 * (H + NN_PANEL) * (I + 3);
    bytes += (size_t)c->layers * (cells * per + 8 * (H + I + NN_PANEL) * sizeof(float));
    return bytes + (size_t)threads * nn_lowp_scratch_bytes((int)CE_MAX(H, I));
}

void bert_free(bert *b) {
    if (!b) return;
    base_free(b->wqkv);
    base_free(b->bqkv);
    for (int i = 0; b->packed && i < 4 * b->m->cfg.layers; i++) nn_packed_free(&b->packed[i]);
    base_free(b->packed);
    base_free(b->lowp_scratch);
    base_free(b->x);
    base_free(b->a);
    base_free(b->c);
    base_free(b->scratch);
    base_free(b->pos);
    base_free(b);
}

int bert_new(const model *m, const nn_kernels *k, nn_precision prec, pool *p, int max_tokens, int max_seq_len,
             bert **out) {
    *out = NULL;
    const model_config *c = &m->cfg;
    CE_ASSERT(max_tokens >= max_seq_len && max_seq_len >= 2 && max_seq_len <= c->max_position);
    bert *b = base_calloc(1, sizeof *b);
    if (!b) return base_err(CEMBED_ENOMEM, "forward pass: out of memory");
    b->m = m;
    b->k = k;
    b->prec = prec;
    /* fp32 runs on our packed kernel when the table has SIMD (bench/gemm_peak:
     * 1.09x OpenBLAS sgemm at the encoder's shapes, and it lets whole
     * sequences run per thread), else on BLAS */
    b->own = prec != NN_FP32 || k->gemm_lowp != nn_gemm_lowp_ref;
    b->p = p;
    b->max_tokens = max_tokens;
    b->max_seq_len = max_seq_len;
    b->H = c->hidden;
    b->I = c->intermediate;
    b->heads = c->heads;
    b->dh = c->hidden / c->heads;
    b->wa = CE_MAX(3 * b->H, b->I);
    const size_t H = (size_t)b->H, T = (size_t)max_tokens, L = (size_t)c->layers;
    int threads = pool_threads(p);
    b->scratch_per_thread = nn_attention_scratch(max_seq_len, b->dh);
    if (!b->own) b->wqkv = base_malloc(L * 3 * H * H * sizeof(float));
    b->bqkv = base_malloc(L * 3 * H * sizeof(float));
    b->x = base_malloc(T * H * sizeof(float));
    b->a = base_malloc(T * (size_t)b->wa * sizeof(float));
    b->c = base_malloc(T * H * sizeof(float));
    b->scratch = base_malloc((size_t)threads * b->scratch_per_thread * sizeof(float));
    b->pos = base_malloc(T * sizeof(int32_t));
    if (b->own) {
        b->packed = base_calloc(4 * L, sizeof *b->packed);
        b->lowp_scratch_per_thread = (nn_lowp_scratch_bytes(CE_MAX(b->H, b->I)) + 63) & ~(size_t)63;
        b->lowp_scratch = base_malloc((size_t)threads * b->lowp_scratch_per_thread);
    }
    if ((!b->own && !b->wqkv) || !b->bqkv || !b->x || !b->a || !b->c || !b->scratch || !b->pos ||
        (b->own && (!b->packed || !b->lowp_scratch))) {
        size_t want = bert_workspace_bytes(c, prec, max_tokens, max_seq_len, threads);
        bert_free(b);
        return base_err(CEMBED_ENOMEM, "forward pass: cannot allocate the %zu-byte workspace", want);
    }
    /* Q, K, V weights stacked into one [3H, H] matrix per layer */
    float *qkv = b->own ? base_malloc(3 * H * H * sizeof(float)) : NULL;
    if (b->own && !qkv) {
        bert_free(b);
        return base_err(CEMBED_ENOMEM, "forward pass: out of memory");
    }
    for (size_t l = 0; l < L; l++) {
        const bert_layer_w *w = &m->layer[l];
        float *dst = b->own ? qkv : b->wqkv + l * 3 * H * H, *bd = b->bqkv + l * 3 * H;
        memcpy(dst, w->q_w, H * H * sizeof(float));
        memcpy(dst + H * H, w->k_w, H * H * sizeof(float));
        memcpy(dst + 2 * H * H, w->v_w, H * H * sizeof(float));
        if (b->own) {
            nn_packed *pk = b->packed + 4 * l;
            int rc = nn_pack(dst, 3 * b->H, b->H, prec, &pk[0]);
            if (!rc) rc = nn_pack(w->o_w, b->H, b->H, prec, &pk[1]);
            if (!rc) rc = nn_pack(w->i_w, b->I, b->H, prec, &pk[2]);
            if (!rc) rc = nn_pack(w->f_w, b->H, b->I, prec, &pk[3]);
            if (rc) {
                base_free(qkv);
                bert_free(b);
                return rc;
            }
        }
        memcpy(bd, w->q_b, H * sizeof(float));
        memcpy(bd + H, w->k_b, H * sizeof(float));
        memcpy(bd + 2 * H, w->v_b, H * sizeof(float));
    }
    base_free(qkv);
    *out = b;
    return 0;
}

int bert_packed(const bert *b) { return b->own; }

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

/* One Linear layer: C[rows, N] = A[rows, K] @ W[N, K]^T, then the epilogue
 * (EPI_ADD_LN: x = LN(C + bias + x)). W is fp32 (BLAS) or Wp packed. Row
 * strides: lda, ldc (region a always has rows of wa floats, so a sequence's
 * rows are the same bytes whatever the layer writes there). */
typedef struct gemm_op {
    const float *A, *W, *bias, *g, *beta;
    const nn_packed *Wp;
    float *C;
    int N, K, lda, ldc;
    enum epilogue epi;
} gemm_op;

typedef struct job {
    bert *b;
    int T, n_seq;
    const int32_t *ids;
    const int *offsets;
    float *out;
    int normalize;
    gemm_op op;        /* the GEMM phase's layer */
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

/* Rows [r0, r1) of op, on thread t's scratch. */
static void gemm_rows(bert *b, const gemm_op *op, int r0, int r1, int t) {
    const int N = op->N, K = op->K, H = b->H, lda = op->lda, ldc = op->ldc;
    const float eps = b->m->cfg.layer_norm_eps;
    if (op->Wp) {
        void *scratch = b->lowp_scratch + (size_t)t * b->lowp_scratch_per_thread;
        for (int r = r0; r < r1; r += NN_LOWP_ROWS) {
            const int rows = CE_MIN(NN_LOWP_ROWS, r1 - r);
            float *C = op->C + (size_t)r * ldc;
            // C [rows, N] = A [rows, K] @ W [N, K]^T + bias (GELU)
            b->k->gemm_lowp(rows, op->A + (size_t)r * lda, lda, op->Wp, op->bias, op->epi == EPI_BIAS_GELU, C, ldc,
                            scratch);
            if (op->epi == EPI_ADD_LN)   // x [rows, H] = LN(C + x)
                for (int i = 0; i < rows; i++)
                    b->k->add_layernorm(C + (size_t)i * ldc, NULL, b->x + (size_t)(r + i) * H, op->g, op->beta, eps, 1, H);
        }
        return;
    }
    for (int r = r0; r < r1; r += ROW_CHUNK) {
        const int rows = CE_MIN(ROW_CHUNK, r1 - r);
        float *C = op->C + (size_t)r * ldc;
        // C [rows, N] = A [rows, K] @ W [N, K]^T
        nn_gemm_bt(rows, N, K, op->A + (size_t)r * lda, lda, op->W, K, C, ldc);
        for (int i = 0; i < rows; i++) {
            float *Ci = C + (size_t)i * ldc;
            switch (op->epi) {
            case EPI_BIAS: b->k->bias(Ci, op->bias, 1, N); break;
            case EPI_BIAS_GELU: b->k->bias_gelu(Ci, op->bias, 1, N); break;
            case EPI_ADD_LN:   // x [row, H] = LN(C + bias + x)
                b->k->add_layernorm(Ci, op->bias, b->x + (size_t)(r + i) * H, op->g, op->beta, eps, 1, H);
                break;
            }
        }
    }
}

/* Head h of sequence s: ctx[t0.., h*dh..] = attention(qkv rows of s) */
static void attend(bert *b, const int *offsets, int s, int h, int t) {
    const int H = b->H, dh = b->dh, ld = b->wa;
    const int t0 = offsets[s], L = offsets[s + 1] - t0;
    const float *base = b->a + (size_t)t0 * ld;
    /* q, k, v of head h: columns [h*dh, (h+1)*dh) of each third of qkv */
    b->k->attention(base + h * dh, base + H + h * dh, base + 2 * H + h * dh, ld, L, dh, 1.0f / sqrtf((float)dh),
                    b->c + (size_t)t0 * H + h * dh, H, b->scratch + (size_t)t * b->scratch_per_thread);
}

/* out[s] = mean (or [CLS]) of x over sequence s, L2-normalized when asked */
static void pool_seq(bert *b, const job *j, int s) {
    const int H = b->H;
    const int t0 = j->offsets[s], L = j->offsets[s + 1] - t0;
    float *o = j->out + (size_t)s * H;
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
    const nn_packed *pk = b->packed ? b->packed + 4 * l : NULL;
    const int H = b->H, I = b->I, wa = b->wa;
    switch (which) {
    case 0:   // a [T, 3H] = x @ Wqkv^T + bqkv
        return (gemm_op){b->x, b->wqkv ? b->wqkv + (size_t)l * 3 * H * H : NULL, b->bqkv + (size_t)l * 3 * H, NULL,
                         NULL, pk ? &pk[0] : NULL, b->a, 3 * H, H, H, wa, EPI_BIAS};
    case 1:   // x = LN(c @ Wo^T + bo + x)   (a [T, H] holds the product)
        return (gemm_op){b->c, w->o_w, w->o_b, w->ln1_g, w->ln1_b, pk ? &pk[1] : NULL, b->a, H, H, H, wa, EPI_ADD_LN};
    case 2:   // a [T, I] = gelu(x @ Wi^T + bi)
        return (gemm_op){b->x, w->i_w, w->i_b, NULL, NULL, pk ? &pk[2] : NULL, b->a, I, H, H, wa, EPI_BIAS_GELU};
    default:  // x = LN(a @ Wf^T + bf + x)   (c [T, H] holds the product)
        return (gemm_op){b->a, w->f_w, w->f_b, w->ln2_g, w->ln2_b, pk ? &pk[3] : NULL, b->c, H, I, wa, H, EPI_ADD_LN};
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
            for (int k = 1; k < 4; k++) {
                op = layer_op(b, l, k);
                gemm_rows(b, &op, r0, r1, t);
            }
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
    const int T = offsets[n_seq];
    CE_ASSERT(T <= b->max_tokens);
    for (int s = 0; s < n_seq; s++) {
        const int L = offsets[s + 1] - offsets[s];
        CE_ASSERT(L >= 1 && L <= b->max_seq_len);
        for (int p = 0; p < L; p++) b->pos[offsets[s] + p] = p;
    }
    job j = {.b = b, .T = T, .n_seq = n_seq, .ids = ids, .offsets = offsets, .out = out, .normalize = normalize};
    /* Whole sequences per thread when there are enough to share out (the
     * caller sorts them longest first) and the GEMMs are ours: OpenBLAS
     * repacks its weights on every call, too often for one sequence's rows.
     * Both orders give every row the same arithmetic. */
    if (b->own && n_seq >= 2 * pool_threads(b->p)) {
        pool_run(b->p, phase_sequences, &j);
        return;
    }
    pool_run(b->p, phase_embed, &j);
    for (int l = 0; l < b->m->cfg.layers; l++) {
        j.op = layer_op(b, l, 0);
        pool_run(b->p, phase_gemm, &j);
        atomic_store(&j.next, 0);
        pool_run(b->p, phase_attention, &j);
        for (int k = 1; k < 4; k++) {
            j.op = layer_op(b, l, k);
            pool_run(b->p, phase_gemm, &j);
        }
    }
    pool_run(b->p, phase_pool, &j);
}
