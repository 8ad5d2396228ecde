/* llama_q8: IN.gguf -> OUT.gguf in Q8_0 through libllama's own
 * llama_model_quantize (the function the llama-quantize tool calls, with its
 * default parameters and LLAMA_FTYPE_MOSTLY_Q8_0), for the llama.cpp Q8_0
 * peer of bench/arch.sh when the llama.cpp build has no llama-quantize.
 *
 * build: cc -O2 -I$SRC/include -I$SRC/ggml/include llama_q8.c -L$BUILD/bin -lllama
 * usage: llama_q8 IN.gguf OUT.gguf [THREADS [embd-f32]]
 *   embd-f32: keep token_embd F32 (every other tensor as above), for the
 *   untimed check through tests/oracle/llamacpp's embed_ids, which wants an F32
 *   token_embd; the timed peer uses the default file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "llama.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fputs("usage: llama_q8 IN.gguf OUT.gguf [THREADS [embd-f32]]\n", stderr);
        return 2;
    }
    llama_backend_init();
    struct llama_model_quantize_params p = llama_model_quantize_default_params();
    p.ftype = LLAMA_FTYPE_MOSTLY_Q8_0;
    p.nthread = argc > 3 ? atoi(argv[3]) : 2;
    if (argc > 4 && !strcmp(argv[4], "embd-f32")) p.token_embedding_type = GGML_TYPE_F32;
    uint32_t rc = llama_model_quantize(argv[1], argv[2], &p);
    llama_backend_free();
    if (rc) fprintf(stderr, "llama_q8: llama_model_quantize failed (%u)\n", rc);
    return rc ? 1 : 0;
}
