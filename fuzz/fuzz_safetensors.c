/* libFuzzer target: the safetensors header parser on arbitrary bytes. */
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file f;
    if (st_parse(data, size, &f) == 0) {
        for (size_t i = 0; i < f.n; i++) /* every accepted range must be readable */
            if (f.tensors[i].nbytes) CE_ASSERT(f.tensors[i].data >= data && f.tensors[i].data + f.tensors[i].nbytes <= data + size);
        st_free(&f);
    }
    return 0;
}
