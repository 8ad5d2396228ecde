/* libFuzzer target: config.json and the sentence-transformers files. */
#include <stdlib.h>

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    model_config c;
    if (model_config_parse(s, size, &c) == 0) CE_ASSERT(c.hidden % c.heads == 0);
    pool_mode p;
    model_pooling_parse(s, size, &p);
    int norm, msl;
    char *path = NULL;
    if (model_modules_parse(s, size, &norm, &path) == 0) base_free(path);
    model_st_config_parse(s, size, &msl);
    return 0;
}
