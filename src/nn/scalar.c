/* The scalar definitions that the kernel tables (kernels*.c) and the packed
 * GEMMs (lowp*.c) share: precision names, bf16 rounding, the uint8
 * activation and int8 weight quantizers, GELU and SiLU. A leaf of src/nn:
 * it calls nothing else in the module, so kernels.c and lowp.c each depend
 * on it and not on each other. The quantization scheme is described in
 * lowp.c. */
#include <math.h>
#include <string.h>

#include "kernels.h"

const char *nn_precision_name(nn_precision p) {
    return p == NN_INT8 ? "int8" : p == NN_BF16 ? "bf16" : "fp32";
}

uint16_t nn_bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float nn_bf16_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

float nn_round_bf16(float x) { return nn_bf16_float(nn_bf16_bits(x)); }
/* round(x * inv) + zp, clamped to [lo, hi] (NaN: 0, so that no input makes
 * the conversion undefined) */
static int quantize(float x, float inv, int zp, int lo, int hi) {
    const float q = nearbyintf(x * inv) + (float)zp;
    return q > (float)hi ? hi : q < (float)lo ? lo : q == q ? (int)q : 0;
}

int nn_zero_point(float lo, float inv) {
    const float z = nearbyintf(-lo * inv);
    return z >= 0 && z <= 255 ? (int)z : 0;
}

float nn_quantize_row_u8(const float *a, int K, int Kp, uint8_t *q, int32_t *zp_out) {
    float lo = 0, hi = 0;
    for (int k = 0; k < K; k++) lo = fminf(lo, a[k]), hi = fmaxf(hi, a[k]);
    const float inv = nn_quant_inv(lo, hi);
    const int zp = nn_zero_point(lo, inv);
    for (int k = 0; k < K; k++) q[k] = (uint8_t)quantize(a[k], inv, zp, 0, 255);
    for (int k = K; k < Kp; k++) q[k] = 0;
    *zp_out = zp;
    return (hi - lo) / 255.0f;
}

void nn_quantize_weight_row(const float *row, int K, int qmax, int8_t *q, float *scale, int32_t *colsum) {
    CE_ASSERT(qmax == 63 || qmax == 127);
    float mx = 0;
    for (int k = 0; k < K; k++) mx = fmaxf(mx, fabsf(row[k]));
    *scale = mx / (float)qmax;   /* 0 for an all-zero row: q 0 */
    const float inv = mx > 0 ? (float)qmax / mx : 0.0f;
    int32_t sum = 0;
    for (int k = 0; k < K; k++) {
        q[k] = (int8_t)quantize(row[k], inv, 0, -qmax, qmax);
        sum += q[k];
    }
    *colsum = sum;
}

float nn_gelu_ref(float v) { return 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2)); }

float nn_silu_ref(float v) { return v / (1.0f + expf(-v)); }
