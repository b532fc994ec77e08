/* vexp.h: an exp(x) for float that the compiler can vectorise.
 *
 * libm's expf is a call the vectoriser cannot inline (glibc offers vector variants only
 * under -ffast-math, which would also license reassociation everywhere), so softmax
 * and SiLU loops ran one scalar call per element. This is the classic range reduction
 * x = n ln2 + r, |r| <= ln2/2, with a degree-7 polynomial for e^r (Cephes' expf
 * coefficients) and 2^n built in the exponent bits: branch-free, about 1 ulp from
 * expf over the range, and identical on every call site. Arguments below -87.3 give
 * about 1.2e-38 instead of a subnormal or zero (only ever added to larger terms here);
 * arguments above 88.3 give about 2.2e38, never inf; NaN stays NaN. */
#ifndef SEVO_KERNELS_VEXP_H
#define SEVO_KERNELS_VEXP_H

#include <stdint.h>
#include <string.h>

static inline float vexpf(float x) {
    x = x < -87.3f ? -87.3f : x; /* a NaN passes both clamps and comes out NaN */
    x = x > 88.3f ? 88.3f : x;
    /* n = round(x / ln2) by the 1.5 * 2^23 trick: t's low mantissa bits hold n */
    const float shifter = 12582912.0f; /* bits 0x4B400000 */
    const float t = x * 1.44269504088896341f + shifter;
    const float n = t - shifter;
    /* r = x - n ln2 in two steps, so that r keeps full precision */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t ti;
    memcpy(&ti, &t, sizeof ti);
    const uint32_t bits = (uint32_t)(ti - 0x4B400000 + 127) << 23; /* 2^n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
