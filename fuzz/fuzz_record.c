/* libFuzzer target: the JSON-lines input record parser. */
#include "json/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_record r = {0};
    if (json_parse_record((const char *)data, size, 0, &r) == 0) CE_ASSERT(r.id.len > 0);
    json_record_free(&r);
    return 0;
}
