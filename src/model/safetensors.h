/* safetensors: the Hugging Face weights format.
 *
 * Layout of a file:
 *   bytes 0..7     u64 little-endian N, the size of the header
 *   bytes 8..8+N   UTF-8 JSON object (may be padded with spaces):
 *                    "__metadata__": {string: string}          (optional)
 *                    NAME: {"dtype": "F32"|"F16"|"BF16"|..., "shape": [d0, d1, ...],
 *                           "data_offsets": [BEGIN, END]}
 *   bytes 8+N..    the data buffer; a tensor's bytes are [BEGIN, END) of it,
 *                  little-endian, row-major, END - BEGIN = prod(shape) * sizeof(dtype)
 *
 * The parser trusts nothing: the header must be valid JSON of that shape,
 * every dtype known, every dimension a non-negative integer, every range
 * inside the file with the exact size for its shape, and no two ranges may
 * overlap. Tensor data is never copied: st_tensor.data points into the
 * caller's buffer (normally a read-only mmap of the file).
 */
#ifndef CEMBED_SAFETENSORS_H
#define CEMBED_SAFETENSORS_H

#include "base/base.h"

typedef enum {
    ST_F64, ST_F32, ST_F16, ST_BF16, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL,
    ST_N_DTYPES
} st_dtype;

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u << 20)

typedef struct st_tensor {
    const char *name;          /* NUL-terminated, owned by the st_file */
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    const uint8_t *data;       /* into the parsed buffer */
    size_t nbytes;
} st_tensor;

typedef struct st_file {
    st_tensor *tensors;
    size_t n;
    char *names;               /* storage of all names */
} st_file;

/* Parses and validates the file image data[0..len). OUT: *out (free with
 * st_free). Fails with EFORMAT (message says which tensor and what is
 * wrong) or ENOMEM. */
int st_parse(const uint8_t *data, size_t len, st_file *out);
void st_free(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t);

/* Writes an F32 safetensors file: n tensors, names[i] with shape dims[i]
 * (ndims[i] entries), data[i]. Fails with EIO or ENOMEM. */
int st_write_f32(const char *path, size_t n, const char *const *names,
                 const int *ndims, const int64_t (*dims)[ST_MAX_DIMS],
                 const float *const *data);

#endif
