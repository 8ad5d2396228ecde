/* attn_rate: attention's achieved GFLOP/s at long inputs next to the GEMM
 * rate of the same machine and precision, so that issue 19's "attention at
 * >= 50% of the GEMM rate" can be read off.
 *
 * Two layer shapes, one thread, random inputs in the engine's qkv layout
 * (one row per token: all query heads, then the key and value heads):
 *   qwen3-0.6b  hidden 1024, 16 query / 8 key-value heads, head_dim 128, causal
 *   bert-base   hidden 768, 12 heads, head_dim 64, bidirectional
 *   minilm-l6   hidden 384, 12 heads, head_dim 32, bidirectional (at L=256,
 *               all-MiniLM-L6-v2 as the engine runs it)
 * attention    nn_kernels_best()->attention (fp32) and ->attention_bf16
 *              (bf16 products, where the table has them) on `heads` heads of
 *              one sequence of L tokens, the best head's rate (the GEMM's:
 *              the best of 3 runs); FLOPs counted for the pairs a query
 *              sees: 4 dh per (query, key) pair (Q K^T and P V), L (L + 1) / 2
 *              pairs causal, L^2 otherwise (the skipped tiles are not counted);
 * gemm         the engine's seam (nn_gemm_run, the backend nn_gemm_pick
 *              chooses) on the layer's qkv projection [M, hidden] x
 *              [q + 2 kv, hidden]^T, M rows in nn_gemm_rows chunks.
 * One line per (shape, precision): both rates and their ratio.
 *
 * usage: build/attn_rate [L=8192] [heads=3] [gemm_rows=2048]
 * (make build/attn_rate; ONEDNN_MAX_CPU_ISA=AVX2 measures the AVX2 table)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nn/gemm.h"
#include "nn/kernels.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float *rand_floats(size_t n, unsigned seed) {
    float *v = malloc(n * sizeof *v);
    if (!v) return NULL;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 2.0f;
    }
    return v;
}

typedef struct layer {
    const char *name;
    int hidden, hq, hkv, dh, causal;
} layer;

/* GFLOP/s of `heads` heads of one sequence of L tokens; bf16: attention_bf16 */
static double attn_rate(const layer *y, int L, int heads, int bf16) {
    const nn_kernels *k = nn_kernels_best();
    const int ld = (y->hq + 2 * y->hkv) * y->dh, dq = y->hq * y->dh, dkv = y->hkv * y->dh;
    float *qkv = rand_floats((size_t)L * ld, 7), *out = malloc((size_t)L * dq * sizeof(float));
    float *scr = malloc(nn_attention_scratch(L, y->dh) * sizeof(float));
    double r = 0;
    if (qkv && out && scr) {
        const nn_attn_mask causal = {0.0f, 0, 1};
        const double pairs = y->causal ? (double)L * (L + 1) / 2 : (double)L * L;
        for (int h = 0; h < heads; h++) {   /* the best head: the machine is shared */
            const int kv = h / (y->hq / y->hkv);
            const double t0 = now();
            (bf16 ? k->attention_bf16 : k->attention)(qkv + h * y->dh, qkv + dq + kv * y->dh,
                                                      qkv + dq + dkv + kv * y->dh, ld, L, 0, L, y->dh,
                                                      1.0f / sqrtf((float)y->dh), y->causal ? &causal : NULL,
                                                      out + h * y->dh, dq, scr);
            const double g = 4.0 * y->dh * pairs / (now() - t0) / 1e9;
            r = g > r ? g : r;
        }
    }
    free(qkv), free(out), free(scr);
    return r;
}

/* GFLOP/s of the layer's qkv projection over M rows, as the engine runs it */
static double gemm_rate(const layer *y, nn_precision p, int M, char *desc, size_t n) {
    const nn_shape sh = {(y->hq + 2 * y->hkv) * y->dh, y->hidden};
    nn_gemm *g;
    nn_linear w;
    double r = 0;
    if (nn_gemm_new(nn_kernels_best(), p, NN_GEMM_AUTO, 1, &sh, 1, &g)) return 0;
    snprintf(desc, n, "%s", nn_gemm_describe(g));
    float *W = rand_floats((size_t)sh.N * sh.K, 3), *A = rand_floats((size_t)M * sh.K, 5);
    float *C = malloc((size_t)M * sh.N * sizeof(float));
    if (W && A && C && !nn_gemm_prepare(g, W, sh.N, sh.K, &w)) {
        const int step = nn_gemm_rows(g);
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            const double t0 = now();
            for (int m = 0; m < M; m += step)
                nn_gemm_run(g, 0, &w, M - m < step ? M - m : step, A + (size_t)m * sh.K, sh.K, NULL, 0,
                            C + (size_t)m * sh.N, sh.N);
            const double t = now() - t0;
            best = t < best ? t : best;
        }
        r = 2.0 * M * sh.N * sh.K / best / 1e9;
        nn_linear_free(&w);
    }
    free(W), free(A), free(C);
    nn_gemm_free(g);
    return r;
}

int main(int argc, char **argv) {
    const int L = argc > 1 ? atoi(argv[1]) : 8192, heads = argc > 2 ? atoi(argv[2]) : 3;
    const int M = argc > 3 ? atoi(argv[3]) : 2048;
    const layer ys[] = {{"qwen3-0.6b", 1024, 16, 8, 128, 1}, {"bert-base", 768, 12, 12, 64, 0},
                        {"minilm-l6", 384, 12, 12, 32, 0}};
    const nn_kernels *k = nn_kernels_best();
    printf("kernels %s, L=%d, %d heads, one thread\n", k->name, L, heads);
    for (size_t i = 0; i < sizeof ys / sizeof *ys; i++)
        for (int bf = 0; bf < 2; bf++) {
            if (bf && !k->attention_bf16) continue;
            char desc[128] = "";
            const double a = attn_rate(&ys[i], L, heads, bf), g = gemm_rate(&ys[i], bf ? NN_BF16 : NN_FP32, M, desc,
                                                                          sizeof desc);
            printf("%-11s %-4s dh=%-3d %-6s attention %7.1f GFLOP/s  gemm %7.1f GFLOP/s (%s)  ratio %.2f\n",
                   ys[i].name, bf ? "bf16" : "fp32", ys[i].dh, ys[i].causal ? "causal" : "bidir", a, g, desc,
                   g > 0 ? a / g : 0.0);
        }
    return 0;
}
