/* The service runtime shared by `serve` and `worker`: memory limit and
 * governor from the EMBEDDING_* variables, the model, the persistent cache
 * (lookup handle + writer), the warm-up and the memory plan. */
#ifndef CEMBED_RUNTIME_H
#define CEMBED_RUNTIME_H

#include "cache/cache.h"
#include "cache/writer.h"
#include "cli.h"
#include "gov/gov.h"

typedef struct runtime {
    gov *g;
    cembed_model *m;            /* models[0], the default */
    cembed_model_info info;
    cache *lookup;              /* NULL when the cache is off or failed to open */
    cache_writer *writer;       /* writers[0] */
    cache_scope scope;          /* scopes[0] */
    /* every model (serve may have several): each its cache scope and writer */
    int n_models;
    cembed_model *models[CLI_MAX_MODELS];
    cembed_model_info infos[CLI_MAX_MODELS];
    cache_scope scopes[CLI_MAX_MODELS];
    cache_writer *writers[CLI_MAX_MODELS];
    int max_batch, batch_tokens;
    char psi_path[600];
    const char *psi;            /* psi_path, or NULL */
    double psi_threshold;
} runtime;

/* Reads EMBEDDING_MAX_BATCH_SIZE, _MIN_BATCH_SIZE, _MAX_BATCH_TOKENS,
 * _MAX_MEMORY_PERCENT, _ADAPTIVE_BATCHING, _MEMORY_LIMIT, _PSI_THRESHOLD,
 * _PSI_PATH and the cache settings; opens everything and logs the plan.
 * Returns 0, EXIT_USAGE or EXIT_FAIL (message printed); runtime_close after
 * either. */
int runtime_open(runtime *rt, const cli_common *c);
void runtime_close(runtime *rt);

#endif
