/* prof: built-in timers that say where a run's time goes, on when the
 * environment has CEMBED_PROFILE=1 (read once, before main).
 *
 * Each timed stretch adds its nanoseconds, one call and its work (FLOPs,
 * elements, tokens or bytes, as the row says) to one of the counters
 * below, with relaxed atomic adds (the compute threads add to the same
 * rows). At exit a table goes to stderr: each row's seconds, its share of
 * the process's time, and its rate. Compute rows are summed over threads,
 * so their wall share is their seconds over the thread count.
 *
 * Off (the default), PROF_START is a load and a not-taken branch and nothing
 * else runs: the kernels are timed through a wrapped copy of the kernel
 * table (nn/profile.c) that only a profiled run installs.
 */
#ifndef CEMBED_PROF_H
#define CEMBED_PROF_H

#include <stdint.h>
#include <stdio.h>

typedef enum {
    /* start-up */
    PROF_OPEN,             /* the whole of opening a model (its wall time) */
    PROF_LOAD_WEIGHTS,     /* config, safetensors map and views (model_load) */
    PROF_LOAD_TOKENIZER,   /* tokenizer.json / vocab.txt, on a thread beside the rest */
    PROF_PRIMITIVES,       /* GEMM backend: oneDNN engine, primitives, per-thread buffers */
    PROF_PREPARE,          /* weights quantized / rounded / packed / reordered, once */
    PROF_ENGINE_OTHER,     /* thread pool start, workspace, the rest of opening the model */
    /* per text */
    PROF_TOKENIZE,         /* work: tokens */
    PROF_FORWARD,          /* wall of the forward passes (main thread); work: tokens */
    PROF_OUTPUT,           /* formatting and writing the vectors; work: bytes */
    /* inside the forward pass, summed over threads */
    PROF_GEMM_ALL,         /* the whole GEMM seam call (kept to derive PROF_GEMM) */
    PROF_GEMM,             /* the GEMM alone; work: FLOPs */
    PROF_QUANTIZE,         /* activations to uint8 / bf16; work: elements */
    PROF_DEQUANT,          /* int32 or fp32 accumulators to fp32 + bias; work: elements */
    PROF_DEQUANT_GELU,     /* the same with GELU fused (split at report time); work: elements */
    PROF_GELU,             /* GELU on its own (bias_gelu, glu); work: elements */
    PROF_GELU_IN_GEMM,     /* GELU split off a GEMM epilogue (inside PROF_GEMM_ALL); work: elements */
    PROF_ATTENTION,        /* work: FLOPs of QK^T and PV */
    PROF_LAYERNORM,        /* residual add + LayerNorm, RMSNorm; work: elements */
    PROF_ELEMENTWISE,      /* bias adds */
    PROF_COUNT
} prof_id;

extern int prof_enabled;

/* Nanoseconds of the monotonic clock. Cannot fail. */
uint64_t prof_now(void);
/* Adds prof_now() - t0 and `work` to counter id. Cannot fail. */
void prof_add(prof_id id, uint64_t t0, double work);
/* What the table's heading says about the run (precision, ISA, GEMM) and
 * the compute threads; the last call wins. Cannot fail. */
void prof_describe(const char *what, int threads);
/* Writes the table to f now (also done at exit when enabled). */
void prof_report(FILE *f);

#define PROF_START() (prof_enabled ? prof_now() : 0)
#define PROF_END(id, t0, work)                            \
    do {                                                  \
        if (prof_enabled) prof_add((id), (t0), (work));   \
    } while (0)

#endif
