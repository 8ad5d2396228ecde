/* GEMM peak: what one core of this machine can do, and how close cembed's
 * GEMMs come to it.
 *
 *   fma peak    a loop of independent 8-wide FMAs (fp32 multiply-adds/s);
 *   int8 peak   a loop of the int8 kernel's independent instruction triples
 *               (vpmaddubsw, vpmaddwd, vpaddd: 32 multiply-adds), its ceiling;
 *   sgemm       OpenBLAS at the encoder's shapes (the fp32 reference);
 *   fp32, bf16, int8  cembed's own packed GEMMs at the same shapes, rows in
 *               chunks of NN_LOWP_ROWS as the engine calls them.
 * One thread; the encoder's shapes for M tokens: qkv [M,384]x[1152,384],
 * out [M,384]x[384,384], ffn up [M,384]x[1536,384], ffn down [M,1536]x[384,1536].
 *
 * usage: build/gemm_peak [M=4096] [reps=5]
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nn/kernels.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* 12 independent chains (more than latency x ports on current cores), in
 * registers: the asm barrier keeps the compiler from folding the loop. */
#define CHAINS(OP) OP(0) OP(1) OP(2) OP(3) OP(4) OP(5) OP(6) OP(7) OP(8) OP(9) OP(10) OP(11)

__attribute__((target("avx2,fma"))) static double fma_peak(void) {
#define DECL(i) __m256 a##i = _mm256_set1_ps((float)(i) * 1e-3f);
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, x, y);
#define SINK(i) sink += _mm256_cvtss_f32(a##i);
    CHAINS(DECL)
    __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-4f);
    const long iters = 50000000;
    double t0 = now();
    for (long n = 0; n < iters; n++) {
        CHAINS(STEP)
        __asm__ volatile("" : "+x"(x), "+x"(y));
    }
    double dt = now() - t0;
    float sink = 0;
    CHAINS(SINK)
    if (sink == 12345) puts("");
    return (double)iters * 12 * 8 / dt;
#undef DECL
#undef STEP
#undef SINK
}

/* The int8 kernel's instruction triple with no dependencies between
 * triples: vpmaddubsw (32 uint8 x int8 products summed in pairs), vpmaddwd by
 * ones, vpaddd into one of 6 accumulators (inputs ymm0, ymm1, ymm15). */
#define TRIPLE(t, acc) \
    "vpmaddubsw %%ymm0, %%ymm1, " t "\n\tvpmaddwd %%ymm15, " t ", " t "\n\tvpaddd " t ", " acc ", " acc "\n\t"
__attribute__((target("avx2"))) static double int8_peak(void) {
    const long iters = 50000000;
    double t0 = now();
    for (long n = 0; n < iters; n++)
        __asm__ volatile(TRIPLE("%%ymm2", "%%ymm14") TRIPLE("%%ymm3", "%%ymm13") TRIPLE("%%ymm4", "%%ymm12")
                         TRIPLE("%%ymm5", "%%ymm11") TRIPLE("%%ymm6", "%%ymm10") TRIPLE("%%ymm7", "%%ymm9")
                         TRIPLE("%%ymm2", "%%ymm14") TRIPLE("%%ymm3", "%%ymm13") TRIPLE("%%ymm4", "%%ymm12")
                         TRIPLE("%%ymm5", "%%ymm11") TRIPLE("%%ymm6", "%%ymm10") TRIPLE("%%ymm7", "%%ymm9")
                         :
                         :
                         : "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm9", "xmm10", "xmm11", "xmm12",
                           "xmm13", "xmm14");
    double dt = now() - t0;
    return (double)iters * 12 * 32 / dt;
}

static float *rnd(size_t n, float s) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = ((float)rand() / RAND_MAX - 0.5f) * s;
    return v;
}

int main(int argc, char **argv) {
    const int M = argc > 1 ? atoi(argv[1]) : 4096, reps = argc > 2 ? atoi(argv[2]) : 5;
    const struct { const char *name; int N, K; } shapes[] = {
        {"qkv", 1152, 384}, {"out", 384, 384}, {"ffn_up", 1536, 384}, {"ffn_down", 384, 1536}};
    nn_gemm_init();
    const nn_kernels *k = nn_kernels_best();
    const double fp = fma_peak(), mp = int8_peak();
    printf("kernels: %s, M = %d tokens, 1 thread\n", k->name, M);
    printf("fma  peak: %6.1f G multiply-adds/s (fp32)\n", fp * 1e-9);
    printf("int8 peak: %6.1f G multiply-adds/s (vpmaddubsw + vpmaddwd + vpaddd)\n", mp * 1e-9);
    printf("%-9s %10s %8s %10s %8s %10s %8s %10s %8s\n", "shape", "sgemm", "of fma", "fp32", "of fma", "bf16", "of fma",
           "int8", "of int8");
    double tot[4] = {0}, macs = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int N = shapes[s].N, K = shapes[s].K;
        float *A = rnd((size_t)M * K, 2), *W = rnd((size_t)N * K, 0.1f), *C = malloc((size_t)M * N * sizeof(float));
        void *scr = malloc(nn_lowp_scratch_bytes(K));
        nn_packed pb, pi, pf;
        if (nn_pack(W, N, K, NN_BF16, &pb) || nn_pack(W, N, K, NN_INT8, &pi) || nn_pack(W, N, K, NN_FP32, &pf)) return 1;
        double best[4] = {1e30, 1e30, 1e30, 1e30};
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            for (int m = 0; m < M; m += 2048) nn_gemm_bt(M - m < 2048 ? M - m : 2048, N, K, A + (size_t)m * K, K, W, K, C + (size_t)m * N, N);
            double t1 = now();
            for (int m = 0; m < M; m += NN_LOWP_ROWS)
                k->gemm_lowp(M - m < NN_LOWP_ROWS ? M - m : NN_LOWP_ROWS, A + (size_t)m * K, K, &pb, NULL, 0, C + (size_t)m * N, N, scr);
            double t2 = now();
            for (int m = 0; m < M; m += NN_LOWP_ROWS)
                k->gemm_lowp(M - m < NN_LOWP_ROWS ? M - m : NN_LOWP_ROWS, A + (size_t)m * K, K, &pi, NULL, 0, C + (size_t)m * N, N, scr);
            double t3 = now();
            for (int m = 0; m < M; m += NN_LOWP_ROWS)
                k->gemm_lowp(M - m < NN_LOWP_ROWS ? M - m : NN_LOWP_ROWS, A + (size_t)m * K, K, &pf, NULL, 0, C + (size_t)m * N, N, scr);
            double t4 = now();
            best[3] = t4 - t3 < best[3] ? t4 - t3 : best[3];
            best[0] = t1 - t0 < best[0] ? t1 - t0 : best[0];
            best[1] = t2 - t1 < best[1] ? t2 - t1 : best[1];
            best[2] = t3 - t2 < best[2] ? t3 - t2 : best[2];
        }
        const double mac = (double)M * N * K;
        macs += mac;
        for (int i = 0; i < 4; i++) tot[i] += best[i];
        printf("%-9s %8.1f G %7.0f%% %8.1f G %7.0f%% %8.1f G %7.0f%% %8.1f G %7.0f%%\n", shapes[s].name,
               mac / best[0] * 1e-9, 100 * mac / best[0] / fp, mac / best[3] * 1e-9, 100 * mac / best[3] / fp,
               mac / best[1] * 1e-9, 100 * mac / best[1] / fp, mac / best[2] * 1e-9, 100 * mac / best[2] / mp);
        nn_packed_free(&pb);
        nn_packed_free(&pi);
        nn_packed_free(&pf);
        free(A), free(W), free(C), free(scr);
    }
    printf("%-9s %8.1f G %7.0f%% %8.1f G %7.0f%% %8.1f G %7.0f%% %8.1f G %7.0f%%   (one layer's mix)\n", "all",
           macs / tot[0] * 1e-9, 100 * macs / tot[0] / fp, macs / tot[3] * 1e-9, 100 * macs / tot[3] / fp,
           macs / tot[1] * 1e-9, 100 * macs / tot[1] / fp, macs / tot[2] * 1e-9, 100 * macs / tot[2] / mp);
    printf("over OpenBLAS sgemm: fp32 (ours) %.2fx, bf16 %.2fx, int8 %.2fx\n", tot[0] / tot[3], tot[0] / tot[1],
           tot[0] / tot[2]);

    /* attention: 12 heads of 32 over one sequence of L tokens, qkv rows as
     * the engine lays them out (1536 floats apart) */
    for (int L = 64; L <= 256; L *= 2) {
        const int H = 384, dh = 32, ld = 1536;
        float *qkv = rnd((size_t)L * ld, 2), *ctx = malloc((size_t)L * H * sizeof(float));
        float *scr = malloc(nn_attention_scratch(L, dh) * sizeof(float));
        double best = 1e30;
        for (int r = 0; r < reps * 20; r++) {
            double t0 = now();
            for (int h = 0; h < H / dh; h++)
                k->attention(qkv + h * dh, qkv + H + h * dh, qkv + 2 * H + h * dh, ld, L, dh, 0.17f, ctx + h * dh, H, scr);
            double dt = now() - t0;
            best = dt < best ? dt : best;
        }
        const double mac = 2.0 * L * L * H;   /* Q K^T and P V */
        printf("attention L=%3d: %6.1f G multiply-adds/s (%3.0f%% of fma peak)\n", L, mac / best * 1e-9,
               100 * mac / best / fp);
        free(qkv), free(ctx), free(scr);
    }
    return 0;
}
