/* Micro-benchmark of the response writer: json_write_floats (decimal, 9
 * significant digits, round-trips) and json_write_base64_floats on 384-float
 * vectors like MiniLM's, plus a check that every written float reads back
 * bit-exact. usage: build/bench_float_writer [VECTORS]
 *
 * build/bench_float_writer --check-all compares json_format_float with
 * snprintf "%.9g" on every positive float its own digits cover (1e-19 to
 * 1e9: 93 binades, 780 million floats; a negative one differs only by its
 * sign), on two threads, and prints the mismatches (exit 1 if any). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"

typedef struct check_range {
    uint32_t from, to;   /* bit patterns [from, to) */
    uint64_t bad;
} check_range;

static void *check_part(void *arg) {
    check_range *r = arg;
    char want[32], got[32];
    for (uint32_t bits = r->from; bits < r->to; bits++) {
        float x;
        memcpy(&x, &bits, 4);
        snprintf(want, sizeof want, "%.9g", (double)x);
        got[json_format_float(got, x)] = 0;
        if (strcmp(want, got) != 0 && r->bad++ < 10) fprintf(stderr, "%a: %s against %s\n", (double)x, want, got);
    }
    return NULL;
}

static int check_all(void) {
    const float lo = 1e-19f, hi = 1e9f;
    uint32_t a, b;
    memcpy(&a, &lo, 4);
    memcpy(&b, &hi, 4);
    check_range r[2] = {{a, a + (b - a) / 2, 0}, {a + (b - a) / 2, b, 0}};
    pthread_t t;
    pthread_create(&t, NULL, check_part, &r[1]);
    check_part(&r[0]);
    pthread_join(t, NULL);
    printf("%u floats in [1e-19, 1e9): %llu differ from printf %%.9g\n", b - a,
           (unsigned long long)(r[0].bad + r[1].bad));
    return r[0].bad + r[1].bad ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--check-all") == 0) return check_all();
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
