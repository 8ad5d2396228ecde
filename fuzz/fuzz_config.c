/* libFuzzer target: config.json and the sentence-transformers files
 * (config_sentence_transformers.json's prompts included). */
#include <stdlib.h>
#include <string.h>

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
    model_prompts p2;
    if (model_prompts_parse(s, size, &p2) == 0) {
        int found = !p2.default_name;
        for (size_t i = 0; i < p2.n; i++) {
            CE_ASSERT(p2.names[i] && p2.texts[i] && strlen(p2.texts[i]) <= 4096);
            found |= p2.default_name && strcmp(p2.names[i], p2.default_name) == 0;
        }
        CE_ASSERT(found && p2.list);
        model_prompts_free(&p2);
    }
    return 0;
}
