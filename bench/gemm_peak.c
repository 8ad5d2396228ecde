/* GEMM peak: what one core of this machine can do, and how close cembed's
 * GEMMs come to it, per precision and backend.
 *
 *   instruction peaks  loops of independent multiply-add instructions: 8- and
 *                      16-wide FMA (fp32), the AVX2 int8 triple (vpmaddubsw,
 *                      vpmaddwd, vpaddd), vpdpbusd (VNNI) and vdpbf16ps
 *                      (AVX512_BF16), each where the CPU has it;
 *   onednn peak        oneDNN's matmul primitive alone on [M, K] x [K, N]
 *                      (fp32, bf16 x bf16 -> fp32, u8 x s8 -> s32), M fixed at
 *                      creation: the most its kernels give at these shapes;
 *   cembed             the seam the engine calls (nn_gemm_run, src/nn/gemm.h)
 *                      with each backend that runs here (our AVX2 kernels,
 *                      oneDNN with our quantization and epilogue), M rows
 *                      handed over in nn_gemm_rows chunks as the engine does.
 * One thread; the encoder's shapes for M tokens: qkv [M,384]x[1152,384],
 * out [M,384]x[384,384], ffn up [M,384]x[1536,384], ffn down [M,1536]x[384,1536]
 * (MiniLM); with "base", nomic-embed-text-v1.5's: hidden 768, SwiGLU 3072
 * (ffn up [M,768]x[6144,768], its weights 4x as large: past a 2 MiB L2).
 * ONEDNN_MAX_CPU_ISA lowers both oneDNN and cembed (the table of gemm.c was
 * measured that way). The last line ("peak fp32 X bf16 Y int8 Z", GFLOP/s of
 * the best of oneDNN and cembed per precision) is read by bench/run.sh.
 *
 * usage: build/gemm_peak [M=2048] [reps=5] [small|base]
 */
#include <dnnl.h>
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/gemm.h"

void omp_set_num_threads(int n);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef struct {
    const char *name;
    int N, K;
} peak_shape;
static const peak_shape small_shapes[] = {{"qkv", 1152, 384}, {"out", 384, 384}, {"ffn_up", 1536, 384}, {"ffn_down", 384, 1536}};
/* nomic-embed-text-v1.5's: hidden 768, SwiGLU 3072 (up and gate in one weight) */
static const peak_shape base_shapes[] = {{"qkv", 2304, 768}, {"out", 768, 768}, {"ffn_up", 6144, 768}, {"ffn_down", 768, 3072}};
static const peak_shape *shapes = small_shapes;
#define N_SHAPES 4

/* ---- instruction peaks: 12 independent chains in registers ---- */
#define CHAINS(OP) OP(0) OP(1) OP(2) OP(3) OP(4) OP(5) OP(6) OP(7) OP(8) OP(9) OP(10) OP(11)
static const long ITERS = 20000000;

__attribute__((target("avx2,fma"))) static double fma256_peak(void) {
#define DECL(i) __m256 a##i = _mm256_set1_ps((float)(i) * 1e-3f);
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, x, y);
#define SINK(i) sink += _mm256_cvtss_f32(a##i);
    CHAINS(DECL)
    __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-4f);
    double t0 = now();
    for (long n = 0; n < ITERS; n++) {
        CHAINS(STEP)
        __asm__ volatile("" : "+x"(x), "+x"(y));
    }
    double dt = now() - t0;
    float sink = 0;
    CHAINS(SINK)
    if (sink == 12345) puts("");
    return (double)ITERS * 12 * 8 / dt;
#undef DECL
#undef STEP
#undef SINK
}

__attribute__((target("avx512f"))) static double fma512_peak(void) {
#define DECL(i) __m512 a##i = _mm512_set1_ps((float)(i) * 1e-3f);
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, x, y);
#define SINK(i) sink += _mm512_reduce_add_ps(a##i);
    CHAINS(DECL)
    __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-4f);
    double t0 = now();
    for (long n = 0; n < ITERS; n++) {
        CHAINS(STEP)
        __asm__ volatile("" : "+v"(x), "+v"(y));
    }
    double dt = now() - t0;
    float sink = 0;
    CHAINS(SINK)
    if (sink == 12345) puts("");
    return (double)ITERS * 12 * 16 / dt;
#undef DECL
#undef STEP
#undef SINK
}

/* the AVX2 int8 kernel's triple: 32 multiply-adds */
#define TRIPLE(t, acc) \
    "vpmaddubsw %%ymm0, %%ymm1, " t "\n\tvpmaddwd %%ymm15, " t ", " t "\n\tvpaddd " t ", " acc ", " acc "\n\t"
__attribute__((target("avx2"))) static double int8_avx2_peak(void) {
    double t0 = now();
    for (long n = 0; n < ITERS; n++)
        __asm__ volatile(TRIPLE("%%ymm2", "%%ymm14") TRIPLE("%%ymm3", "%%ymm13") TRIPLE("%%ymm4", "%%ymm12")
                         TRIPLE("%%ymm5", "%%ymm11") TRIPLE("%%ymm6", "%%ymm10") TRIPLE("%%ymm7", "%%ymm9")
                         TRIPLE("%%ymm2", "%%ymm14") TRIPLE("%%ymm3", "%%ymm13") TRIPLE("%%ymm4", "%%ymm12")
                         TRIPLE("%%ymm5", "%%ymm11") TRIPLE("%%ymm6", "%%ymm10") TRIPLE("%%ymm7", "%%ymm9")
                         :
                         :
                         : "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm9", "xmm10", "xmm11", "xmm12",
                           "xmm13", "xmm14");
    return (double)ITERS * 12 * 32 / (now() - t0);
}

/* one zmm instruction of 64 (vpdpbusd) or 32 (vdpbf16ps) multiply-adds, 12 chains */
#define DOT12(insn)                                                                                              \
    __asm__ volatile(insn " %%zmm0, %%zmm1, %%zmm2\n\t" insn " %%zmm0, %%zmm1, %%zmm3\n\t" insn                 \
                          " %%zmm0, %%zmm1, %%zmm4\n\t" insn " %%zmm0, %%zmm1, %%zmm5\n\t" insn                  \
                          " %%zmm0, %%zmm1, %%zmm6\n\t" insn " %%zmm0, %%zmm1, %%zmm7\n\t" insn                  \
                          " %%zmm0, %%zmm1, %%zmm8\n\t" insn " %%zmm0, %%zmm1, %%zmm9\n\t" insn                  \
                          " %%zmm0, %%zmm1, %%zmm10\n\t" insn " %%zmm0, %%zmm1, %%zmm11\n\t" insn                \
                          " %%zmm0, %%zmm1, %%zmm12\n\t" insn " %%zmm0, %%zmm1, %%zmm13\n\t"                     \
                     :                                                                                           \
                     :                                                                                           \
                     : "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
                       "xmm13")
__attribute__((target("avx512f,avx512vnni"))) static double vnni_peak(void) {
    double t0 = now();
    for (long n = 0; n < ITERS; n++) DOT12("vpdpbusd");
    return (double)ITERS * 12 * 64 / (now() - t0);
}
__attribute__((target("avx512f,avx512bf16"))) static double bf16_peak(void) {
    double t0 = now();
    for (long n = 0; n < ITERS; n++) DOT12("vdpbf16ps");
    return (double)ITERS * 12 * 32 / (now() - t0);
}

static float *rnd(size_t n, float s) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = ((float)rand() / RAND_MAX - 0.5f) * s;
    return v;
}

/* oneDNN's matmul alone: GFLOP/s of one layer's mix at M rows; impl named */
static double onednn_alone(nn_precision p, int M, int reps, char *impl, size_t n) {
    const dnnl_data_type_t ta = p == NN_INT8 ? dnnl_u8 : p == NN_BF16 ? dnnl_bf16 : dnnl_f32;
    const dnnl_data_type_t tb = p == NN_INT8 ? dnnl_s8 : ta, tc = p == NN_INT8 ? dnnl_s32 : dnnl_f32;
    dnnl_engine_t eng;
    dnnl_stream_t st;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) || dnnl_stream_create(&st, eng, dnnl_stream_default_flags)) return 0;
    double flops = 0, secs = 0;
    snprintf(impl, n, "none");
    for (int s = 0; s < N_SHAPES; s++) {
        const int K = shapes[s].K, N = shapes[s].N;
        dnnl_memory_desc_t a, b, c;
        const dnnl_dims_t da = {M, K}, db = {K, N}, dc = {M, N};
        dnnl_memory_desc_init_by_tag(&a, 2, da, ta, dnnl_ab);
        dnnl_memory_desc_init_by_tag(&b, 2, db, tb, dnnl_format_tag_any);
        dnnl_memory_desc_init_by_tag(&c, 2, dc, tc, dnnl_ab);
        dnnl_matmul_desc_t md;
        dnnl_primitive_desc_t pd;
        if (dnnl_matmul_desc_init(&md, &a, &b, NULL, &c) || dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL)) {
            flops = 0;
            break;
        }
        const char *i = "";
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &i);
        snprintf(impl, n, "%s", i);
        dnnl_memory_t ma, mb, mc;
        dnnl_memory_create(&ma, &a, eng, DNNL_MEMORY_ALLOCATE);
        dnnl_memory_create(&mb, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), eng, DNNL_MEMORY_ALLOCATE);
        dnnl_memory_create(&mc, &c, eng, DNNL_MEMORY_ALLOCATE);
        void *h;
        dnnl_memory_get_data_handle(ma, &h);
        memset(h, 1, dnnl_memory_desc_get_size(&a));
        dnnl_memory_get_data_handle(mb, &h);
        memset(h, 1, dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)));
        dnnl_primitive_t prim;
        dnnl_primitive_create(&prim, pd);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
        double best = 1e30;
        for (int r = 0; r <= reps; r++) {
            double t0 = now();
            dnnl_primitive_execute(prim, st, 3, args);
            dnnl_stream_wait(st);
            if (r && now() - t0 < best) best = now() - t0;   /* the first run warms up */
        }
        flops += 2.0 * M * K * N;
        secs += best;
        dnnl_primitive_destroy(prim);
        dnnl_primitive_desc_destroy(pd);
        dnnl_memory_destroy(ma), dnnl_memory_destroy(mb), dnnl_memory_destroy(mc);
    }
    dnnl_stream_destroy(st);
    dnnl_engine_destroy(eng);
    return flops ? flops / secs * 1e-9 : 0;
}

/* cembed's seam with backend b: GFLOP/s of the mix, per shape in out[4]; 0
 * when b does not run p here */
static double seam(nn_precision p, nn_gemm_backend b, int M, int reps, double out[N_SHAPES], char *desc, size_t n) {
    nn_shape sh[N_SHAPES];
    for (int s = 0; s < N_SHAPES; s++) sh[s] = (nn_shape){shapes[s].N, shapes[s].K};
    nn_gemm *g;
    if (nn_gemm_new(nn_kernels_best(), p, b, 1, sh, N_SHAPES, &g)) {
        snprintf(desc, n, "%s", cembed_last_error());
        return 0;
    }
    snprintf(desc, n, "%s", nn_gemm_describe(g));
    const int step = nn_gemm_rows(g);
    double flops = 0, secs = 0;
    for (int s = 0; s < N_SHAPES; s++) {
        const int N = shapes[s].N, K = shapes[s].K;
        float *A = rnd((size_t)M * K, 2), *W = rnd((size_t)N * K, 0.1f), *C = malloc((size_t)M * N * sizeof(float));
        nn_linear w;
        if (nn_gemm_prepare(g, W, N, K, &w)) return 0;
        double best = 1e30;
        for (int r = 0; r <= reps; r++) {
            double t0 = now();
            for (int m = 0; m < M; m += step)
                nn_gemm_run(g, 0, &w, M - m < step ? M - m : step, A + (size_t)m * K, K, NULL, 0, C + (size_t)m * N, N);
            if (r && now() - t0 < best) best = now() - t0;
        }
        out[s] = 2.0 * M * K * N / best * 1e-9;
        flops += 2.0 * M * K * N;
        secs += best;
        nn_linear_free(&w);
        free(A), free(W), free(C);
    }
    nn_gemm_free(g);
    return flops / secs * 1e-9;
}

int main(int argc, char **argv) {
    const int M = argc > 1 ? atoi(argv[1]) : 2048, reps = argc > 2 ? atoi(argv[2]) : 5;
    if (argc > 3 && !strcmp(argv[3], "base")) shapes = base_shapes;
    omp_set_num_threads(1);
    const unsigned f = cpu_features();
    printf("ISA %s (ONEDNN_MAX_CPU_ISA caps it), kernels %s, M = %d tokens, hidden %d, 1 thread, GFLOP/s (2 per "
           "multiply-add)\n", cpu_isa_name(f), nn_kernels_best()->name, M, shapes[1].K);
    if (f & CPU_AVX2) printf("peak fma ymm        %7.1f\n", 2e-9 * fma256_peak());
    if (f & CPU_AVX512F) printf("peak fma zmm        %7.1f\n", 2e-9 * fma512_peak());
    if (f & CPU_AVX2) printf("peak int8 avx2      %7.1f  (vpmaddubsw + vpmaddwd + vpaddd)\n", 2e-9 * int8_avx2_peak());
    if (f & CPU_AVX512VNNI) printf("peak vpdpbusd zmm   %7.1f\n", 2e-9 * vnni_peak());
    if (f & CPU_AVX512BF16) printf("peak vdpbf16ps zmm  %7.1f\n", 2e-9 * bf16_peak());
    printf("\n%-5s %-8s %9s %9s %9s %9s %9s  %s\n", "prec", "backend", "qkv", "out", "ffn_up", "ffn_down", "mix", "what runs");
    double best[3] = {0};
    for (int pi = 0; pi < 3; pi++) {
        const nn_precision p = pi == 0 ? NN_FP32 : pi == 1 ? NN_BF16 : NN_INT8;
        char impl[96];
        const double alone = onednn_alone(p, M, reps, impl, sizeof impl);
        printf("%-5s %-8s %9s %9s %9s %9s %9.1f  %s (primitive alone, M = %d)\n", nn_precision_name(p), "onednn", "",
               "", "", "", alone, impl, M);
        const nn_gemm_backend bs[] = {NN_GEMM_ONEDNN, NN_GEMM_OWN};
        for (int bi = 0; bi < 2; bi++) {
            double per[N_SHAPES] = {0};
            char desc[200];
            const double mix = seam(p, bs[bi], M, reps, per, desc, sizeof desc);
            if (mix > 0)
                printf("%-5s %-8s %9.1f %9.1f %9.1f %9.1f %9.1f  cembed seam: %s%s\n", nn_precision_name(p),
                       nn_gemm_backend_name(bs[bi]), per[0], per[1], per[2], per[3], mix, desc,
                       nn_gemm_pick(p, nn_kernels_best()) == bs[bi] ? " (the table's pick)" : "");
            else
                printf("%-5s %-8s  not run: %s\n", nn_precision_name(p), nn_gemm_backend_name(bs[bi]), desc);
            if (mix > best[pi]) best[pi] = mix;
        }
        if (alone > best[pi]) best[pi] = alone;
    }
    printf("\npeak fp32 %.1f bf16 %.1f int8 %.1f\n", best[0], best[1], best[2]);
    return 0;
}
