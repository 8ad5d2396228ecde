/* bert: the encoder forward pass over packed batches, for every family
 * model.h describes (BERT, NomicBERT, JinaBERT-v2, XLM-R, ModernBERT, and
 * the sequence classifiers).
 *
 * A batch is n_seq token sequences packed into one [T, hidden] matrix
 * (T = total tokens, no padding): every dense layer is one GEMM over all
 * tokens, attention runs per (sequence, head). All activations live in one
 * workspace allocated at bert_new for the largest batch; the forward pass
 * allocates nothing.
 */
#ifndef CEMBED_BERT_H
#define CEMBED_BERT_H

#include "base/pool.h"
#include "model/model.h"
#include "nn/gemm.h"
#include "nn/kernels.h"

typedef struct bert bert;

/* How a forward pass computes. */
typedef struct bert_opts {
    const nn_kernels *k;     /* the element-wise and attention kernels (nn_kernels_best() normally) */
    nn_precision prec;       /* the Linear layers' precision */
    nn_gemm_backend gemm;    /* NN_GEMM_AUTO: the table's pick for prec and k */
    int attn_bf16;           /* attention with bf16 products, where k has them */
    int int8_qmax;           /* 0: the backend's int8 weight range; 63 or 127: that
                                (the scalar backend only: a reference for another) */
    const char *wcache;      /* folder of the cache of prepared weights (nn/wcache.h); NULL: none */
    const char *model_dir;   /* with wcache: the model's folder, and */
    const char *model_id;    /* its identity taken before it was loaded (nn_wcache_model_id) */
} bert_opts;

/* Bytes bert_new will allocate for batches of up to max_tokens tokens and
 * sequences of up to max_seq_len, with `threads` threads. */
size_t bert_workspace_bytes(const model_config *c, nn_precision prec, int max_tokens, int max_seq_len, int threads);

/* Prepares the forward pass of model m (which must outlive it) as o says;
 * the Linear weights are packed, quantized or reordered here, once.
 * OUT: *out. Fails with ENOMEM, EINVAL (a GEMM backend that cannot run here)
 * or EMODEL (oneDNN refused). */
int bert_new(const model *m, const bert_opts *o, pool *p, int max_tokens, int max_seq_len, bert **out);
void bert_free(bert *b);
/* 1 when the forward pass runs on its own copy of the Linear weights (the
 * model's may then be released), 0 when it reads them (BLAS). */
int bert_packed(const bert *b);
/* The GEMM backend that runs, as nn_gemm_describe says it. */
const char *bert_gemm_describe(const bert *b);
/* The weight cache's file (NULL: no cache) and whether this start read
 * it (*hit 1) or wrote it (0); nn_gemm_cache_path. */
const char *bert_weight_cache(const bert *b, int *hit);
/* The int8 weight range of its GEMMs (nn_gemm_qmax). */
int bert_int8_qmax(const bert *b);

/* Bytes a batch of `tokens` tokens touches beyond what loading touched:
 * the activations (x, a, c rows) and every thread's attention scratch for
 * the longest sequence it can hold (K^T and V of one head, 2 L head_dim
 * floats; attention never holds an L x L matrix). Exact for one sequence of
 * `tokens` tokens, an upper bound for several. */
size_t bert_batch_bytes(const bert *b, int tokens);
/* Gives the activation pages back to the kernel (madvise DONTNEED on the
 * page-aligned inside of each region); the next batch faults in only what it
 * touches. Cannot fail. */
void bert_release(bert *b);
/* Resident bytes of the workspace's regions now (mincore, whole pages):
 * the tests hold bert_batch_bytes to it. 0 when mincore fails. */
size_t bert_resident_bytes(const bert *b);

/* Embeds one packed batch: sequence s is ids[offsets[s] .. offsets[s+1]),
 * offsets[n_seq] <= max_tokens, each length in [1, max_seq_len].
 * out: n_seq * hidden floats, pooled, L2-normalized when normalize is set.
 * Cannot fail. */
void bert_forward(bert *b, int n_seq, const int32_t *ids, const int *offsets, float *out, int normalize);
/* The same, and every token's last hidden state (before pooling) into
 * tokens: offsets[n_seq] rows of hidden floats, in the input's order. */
void bert_forward_tokens(bert *b, int n_seq, const int32_t *ids, const int *offsets, float *out, int normalize,
                         float *tokens);
/* The whole form: type1_from[s] (may be NULL) is the index in sequence s
 * of its first token of type 1 (a pair's second text); out holds n_seq
 * rows of bert_out_dims floats: the pooled vector, or a classifier's
 * labels (raw logits; normalize is then ignored); tokens may be NULL. */
void bert_forward_ex(bert *b, int n_seq, const int32_t *ids, const int *offsets, const int *type1_from, float *out,
                     int normalize, float *tokens);
/* Floats of one output row: the hidden size, or the classifier's labels. */
int bert_out_dims(const bert *b);

#endif
