/* elementwise.c: residual adds and the sum of squares used for gradient-norm clipping.
 *
 * sum_squares is summed in double over a fixed number of chunks whose boundaries do not
 * depend on the thread count, so the clipping norm (and therefore training) is bitwise
 * reproducible whether it runs on 1 or 16 threads. */
#include "kernels/kernels.h"
#include "kernels/parallel.h"

/* Below this many elements a parallel region costs more than it saves. */
#define ELEM_PARALLEL_MIN 4096
/* sum_squares splits its input into this many chunks (independent of thread count). */
#define SUMSQ_CHUNKS 64

void add_forward(float *out, const float *a, const float *b, size_t n) {
    KERNEL_PARALLEL(n, ELEM_PARALLEL_MIN, n, tid, i0, i1, for (long i = i0; i < i1; i++) out[i] = a[i] + b[i]);
}

void add_inplace(float *acc, const float *x, size_t n) {
    KERNEL_PARALLEL(n, ELEM_PARALLEL_MIN, n, tid, i0, i1, for (long i = i0; i < i1; i++) acc[i] += x[i]);
}

double sum_squares(const float *x, size_t n) {
    double partial[SUMSQ_CHUNKS];
    const size_t chunk = (n + SUMSQ_CHUNKS - 1) / SUMSQ_CHUNKS;
    KERNEL_PARALLEL(n, ELEM_PARALLEL_MIN, SUMSQ_CHUNKS, tid, c0, c1, for (long ci = c0; ci < c1; ci++) {
        const size_t i0 = (size_t)ci * chunk;
        const size_t i1 = i0 + chunk < n ? i0 + chunk : n;
        double s = 0.0;
        _Pragma("omp simd reduction(+ : s)")
        for (size_t i = i0; i < i1; i++) s += (double)x[i] * x[i];
        partial[ci] = s;
    });
    double total = 0.0;
    for (int ci = 0; ci < SUMSQ_CHUNKS; ci++) total += partial[ci];
    return total;
}
