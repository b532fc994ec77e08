/* rows.h: dot products of one vector with several rows, the inner loop shared by the
 * few-row linear layer (its partial bands), the cached attention of generation (one
 * query row at a time) and attention's fallback for very wide heads. Written so that
 * the compiler vectorises it: four rows at a time, so that four independent accumulator
 * chains hide the FMA latency (8-wide vectors: with ~64 floats per row the horizontal
 * sums of 16-wide ones cost more than they save). Header-only so that each caller's
 * loop inlines and vectorises in place. */
#ifndef SEVO_KERNELS_ROWS_H
#define SEVO_KERNELS_ROWS_H

#include <stddef.h>

/* s[j] = scale * (x . y_j) for j < n, where y_j = y + j*stride and both have hd floats. */
static inline void dot_rows(float *s, const float *x, const float *y, size_t stride, int n, int hd,
                     float scale) {
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *y0 = y + (size_t)j * stride, *y1 = y0 + stride;
        const float *y2 = y1 + stride, *y3 = y2 + stride;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd simdlen(8) reduction(+ : s0, s1, s2, s3)
        for (int d = 0; d < hd; d++) {
            const float xd = x[d];
            s0 += xd * y0[d];
            s1 += xd * y1[d];
            s2 += xd * y2[d];
            s3 += xd * y3[d];
        }
        s[j] = s0 * scale;
        s[j + 1] = s1 * scale;
        s[j + 2] = s2 * scale;
        s[j + 3] = s3 * scale;
    }
    for (; j < n; j++) {
        const float *yj = y + (size_t)j * stride;
        float s0 = 0.0f;
#pragma omp simd reduction(+ : s0)
        for (int d = 0; d < hd; d++) s0 += x[d] * yj[d];
        s[j] = s0 * scale;
    }
}

#endif
