/* libFuzzer target: the HTTP request body parser, in all five forms, and
 * its memory bound: the parse never holds more than the bound it promised
 * the governor, and the request keeps no more than request_held_bytes. */
#include "json/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const req_limits lim = {.max_items = 1000, .max_text_bytes = 1 << 16, .max_depth = 32};
    const req_kind kinds[] = {REQ_EMBED, REQ_OPENAI, REQ_TOKENIZE, REQ_SIMILARITY, REQ_RERANK, REQ_AUTO};
    const size_t bound = request_parse_bound((const char *)data, size);
    for (int k = 0; k < 5; k++) {
        request r;
        const size_t live = base_alloc_live_bytes();
        base_alloc_peak_reset();
        int rc = request_parse(kinds[k], (const char *)data, size, &lim, &r);
        CE_ASSERT(base_alloc_peak_reset() - live <= bound);
        CE_ASSERT(base_alloc_live_bytes() - live <= request_held_bytes(&r));
        if (rc == 0) {
            CE_ASSERT(r.n_items >= 1 && r.n_items <= lim.max_items);
            for (size_t i = 0; i < r.n_items; i++) CE_ASSERT(r.items[i].text || r.items[i].n_ids);
            CE_ASSERT(kinds[k] != REQ_RERANK || r.query);
        } else {
            CE_ASSERT(rc == CEMBED_EFORMAT || rc == CEMBED_ELIMIT || rc == CEMBED_ENOMEM);
        }
        request_free(&r);
    }
    return 0;
}
