/* Micro-benchmark of the response writer: json_write_floats (decimal, 9
 * significant digits, round-trips) and json_write_base64_floats on 384-float
 * vectors like MiniLM's, plus a check that every written float reads back
 * bit-exact. usage: build/bench_float_writer [VECTORS] */
#include <stdlib.h>
#include <string.h>

#include "json/json.h"

int main(int argc, char **argv) {
    const size_t dims = 384, n = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000;
    float *v = malloc(n * dims * sizeof(float));
    unsigned s = 1;
    for (size_t i = 0; i < n * dims; i++) {
        s = s * 1103515245u + 12345u;
        v[i] = ((float)((s >> 8) & 0xffffff) / 16777215.0f - 0.5f) * 0.2f;
    }
    buf b = {0};
    double t0 = time_now();
    for (size_t k = 0; k < n; k++) {
        b.len = 0;
        json_write_floats(&b, v + k * dims, dims);
    }
    double dec = time_now() - t0;
    size_t dec_bytes = b.len;
    /* round trip of the last vector */
    char *p = b.ptr + 1;
    size_t bad = 0;
    for (size_t i = 0; i < dims; i++) {
        char *end;
        float back = strtof(p, &end);
        bad += memcmp(&back, &v[(n - 1) * dims + i], 4) != 0;
        p = end + 1;
    }
    t0 = time_now();
    for (size_t k = 0; k < n; k++) {
        b.len = 0;
        json_write_base64_floats(&b, v + k * dims, dims);
    }
    double b64 = time_now() - t0;
    printf("%zu vectors of %zu floats\n", n, dims);
    printf("decimal: %6.1f ns/float  %7.1f MB/s  %zu bytes/vector  round-trip mismatches: %zu\n",
           dec * 1e9 / (double)(n * dims), (double)(dec_bytes * n) / dec / 1e6, dec_bytes, bad);
    printf("base64:  %6.1f ns/float  %7.1f MB/s  %zu bytes/vector\n", b64 * 1e9 / (double)(n * dims),
           (double)(b.len * n) / b64 / 1e6, b.len);
    buf_free(&b);
    free(v);
    return bad ? 1 : 0;
}
