/* norm.c: LayerNorm and RMSNorm over the last dimension C, forward and backward.
 *
 * Row statistics are summed in double: with C in the hundreds and activations that can
 * drift large, a float sum of squares loses enough digits to make var = E[x^2] - E[x]^2
 * meaningless, so we use the two-pass form (mean first, then squared deviations) in
 * double. The per-row work is parallel over rows; the weight/bias gradients, which sum
 * over rows, are parallel over column bands instead so that no two threads ever add
 * into the same element (deterministic, no atomics). */
#include "kernels/kernels.h"
#include "kernels/parallel.h"

#include <math.h>

/* Below this many elements a parallel region costs more than it saves. */
#define NORM_PARALLEL_MIN 4096
/* Columns per band in the weight-gradient reductions. */
#define NORM_BAND 64

/* dw[c] += sum_n dout[n,c] * xhat[n,c] and db[c] += sum_n dout[n,c], where
 * xhat = (inp - mean) * rstd (mean NULL means 0, as for RMSNorm). */
static void norm_param_grads(float *dw, float *db, const float *dout, const float *inp,
                             const float *mean, const float *rstd, int N, int C) {
    const int nbands = (C + NORM_BAND - 1) / NORM_BAND;
    KERNEL_PARALLEL(nbands > 1 ? (long)N * C : 0, NORM_PARALLEL_MIN, nbands, tid, b0, b1, for (long bi = b0; bi < b1; bi++) {
        const int c0 = (int)bi * NORM_BAND;
        const int c1 = c0 + NORM_BAND < C ? c0 + NORM_BAND : C;
        float acc_w[NORM_BAND], acc_b[NORM_BAND];
        for (int c = c0; c < c1; c++) acc_w[c - c0] = acc_b[c - c0] = 0.0f;
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C;
            const float *g = dout + (size_t)n * C;
            const float mu = mean ? mean[n] : 0.0f;
            const float rs = rstd[n];
            for (int c = c0; c < c1; c++) {
                acc_w[c - c0] += g[c] * (x[c] - mu) * rs;
                acc_b[c - c0] += g[c];
            }
        }
        for (int c = c0; c < c1; c++) {
            if (dw) dw[c] += acc_w[c - c0];
            if (db) db[c] += acc_b[c - c0];
        }
    });
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C, float eps) {
    KERNEL_PARALLEL((long)N * C, NORM_PARALLEL_MIN, N, tid, n0, n1, for (long n = n0; n < n1; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double sum = 0.0;
        _Pragma("omp simd reduction(+ : sum)")
        for (int c = 0; c < C; c++) sum += x[c];
        const double mu = sum / C;
        double sq = 0.0;
        _Pragma("omp simd reduction(+ : sq)")
        for (int c = 0; c < C; c++) {
            const double d = x[c] - mu;
            sq += d * d;
        }
        const float rs = (float)(1.0 / sqrt(sq / C + (double)eps));
        const float muf = (float)mu;
        for (int c = 0; c < C; c++) {
            const float xhat = (x[c] - muf) * rs;
            y[c] = xhat * w[c] + (b ? b[c] : 0.0f);
        }
        if (mean) mean[n] = muf;
        if (rstd) rstd[n] = rs;
    });
}

/* The input gradient shared by both norms. With xhat = (x - mean) * rstd and
 * g = dout * w: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). RMSNorm does not
 * centre: mean is NULL, taken as 0, and the mean(g) term drops out. */
static void norm_input_grad(float *dinp, const float *dout, const float *inp, const float *w,
                            const float *mean, const float *rstd, int N, int C) {
    KERNEL_PARALLEL((long)N * C, NORM_PARALLEL_MIN, N, tid, n0, n1, for (long n = n0; n < n1; n++) {
        const float *x = inp + (size_t)n * C;
        const float *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        const float mu = mean ? mean[n] : 0.0f, rs = rstd[n];
        double sum_g = 0.0, sum_gx = 0.0;
        _Pragma("omp simd reduction(+ : sum_g, sum_gx)")
        for (int c = 0; c < C; c++) {
            const float g = dy[c] * w[c];
            sum_g += g;
            sum_gx += (double)g * ((x[c] - mu) * rs);
        }
        const float mean_g = mean ? (float)(sum_g / C) : 0.0f, mean_gx = (float)(sum_gx / C);
        for (int c = 0; c < C; c++) {
            const float xhat = (x[c] - mu) * rs;
            dx[c] += rs * (dy[c] * w[c] - mean_g - xhat * mean_gx);
        }
    });
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, const float *mean,
                        const float *rstd, int N, int C) {
    if (dinp) norm_input_grad(dinp, dout, inp, w, mean, rstd, N, C);
    if (dw || db) norm_param_grads(dw, db, dout, inp, mean, rstd, N, C);
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w,
                     int N, int C, float eps) {
    KERNEL_PARALLEL((long)N * C, NORM_PARALLEL_MIN, N, tid, n0, n1, for (long n = n0; n < n1; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double sq = 0.0;
        _Pragma("omp simd reduction(+ : sq)")
        for (int c = 0; c < C; c++) sq += (double)x[c] * x[c];
        const float rs = (float)(1.0 / sqrt(sq / C + (double)eps));
        for (int c = 0; c < C; c++) y[c] = x[c] * rs * w[c];
        if (rstd) rstd[n] = rs;
    });
}

void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                      const float *w, const float *rstd, int N, int C) {
    if (dinp) norm_input_grad(dinp, dout, inp, w, NULL, rstd, N, C);
    if (dw) norm_param_grads(dw, NULL, dout, inp, NULL, rstd, N, C);
}
