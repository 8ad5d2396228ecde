/* libFuzzer target: the weight cache's header parser (nn_wcache_parse):
 * whatever the bytes, a file it accepts has every shape record and every
 * weight part inside the image, after the header, aligned; each part's
 * first and last byte are read (ASan catches what the checks missed). */
#include <string.h>

#include "base/base.h"
#include "nn/wcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the image as the cache maps it: its own aligned copy */
    uint8_t *p = base_malloc(size ? size : 1);
    CE_ASSERT(p);
    memcpy(p, data, size);
    nn_wcache_view v;
    if (nn_wcache_parse(p, size, &v) == 0) {
        CE_ASSERT((const uint8_t *)v.key + v.key_len <= p + size);
        volatile uint8_t sink = 0;
        for (uint32_t s = 0; s < v.n_shapes; s++) {
            nn_wc_shape sh;
            nn_wcache_shape_at(&v, s, &sh);
            CE_ASSERT((const uint8_t *)sh.layout + v.layout_bytes <= p + size);
            if (v.layout_bytes) sink ^= ((const uint8_t *)sh.layout)[v.layout_bytes - 1];
        }
        for (uint32_t i = 0; i < v.n_weights; i++) {
            nn_wc_weight w;
            nn_wcache_weight_at(&v, i, &w);
            CE_ASSERT(w.shape < v.n_shapes && w.n_parts <= NN_WCACHE_PARTS);
            for (uint32_t k = 0; k < w.n_parts; k++) {
                const uint8_t *b = w.part[k];
                CE_ASSERT(b >= p && b + w.bytes[k] <= p + size);
                if (w.bytes[k]) sink ^= b[0] ^ b[w.bytes[k] - 1];
            }
        }
        (void)sink;
    }
    base_free(p);
    return 0;
}
