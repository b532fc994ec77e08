/* linear.c: the fully connected layer, out = inp @ w^T + b, and its backward.
 *
 * All the heavy lifting is three cblas_sgemm calls; the only loops of our own are the
 * bias broadcast and the bias-gradient column sum. Weights are in PyTorch's [out, in]
 * layout, so the forward multiplies by the transpose of w. */
#include "kernels/kernels.h"

#include <cblas.h>
#include <string.h>

/* Below this many elements a parallel region costs more than it saves. */
#define LINEAR_PARALLEL_MIN 4096

void linear_forward(float *out, const float *inp, const float *w, const float *b,
                    int N, int IC, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (IC <= 0) {
        /* An empty product: the output is just the bias (or zero). */
        for (int n = 0; n < N; n++) {
            if (b) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float));
            else memset(out + (size_t)n * OC, 0, (size_t)OC * sizeof(float));
        }
        return;
    }
    float beta = 0.0f;
    if (b) {
        /* Pre-fill every row with the bias and let sgemm add the product on top
         * (beta = 1): one pass over out instead of two. */
#pragma omp parallel for schedule(static) if ((long)N * OC >= LINEAR_PARALLEL_MIN)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, w, IC,
                beta, out, OC);
}

void linear_backward(float *dinp, float *dw, float *db, const float *dout,
                     const float *inp, const float *w, int N, int IC, int OC) {
    if (N <= 0 || OC <= 0 || IC < 0) return;
    if (dinp && IC > 0) {
        /* dinp[N,IC] += dout[N,OC] @ w[OC,IC] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC,
                    w, IC, 1.0f, dinp, IC);
    }
    if (dw && IC > 0) {
        /* dw[OC,IC] += dout^T[OC,N] @ inp[N,IC] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC,
                    inp, IC, 1.0f, dw, IC);
    }
    if (db) {
        /* Column sums of dout. Each thread owns a contiguous band of columns and walks
         * all rows, so the result is deterministic and every row read is contiguous. */
        const int band = 64;
        const int nbands = (OC + band - 1) / band;
#pragma omp parallel for schedule(static) if ((long)N * OC >= LINEAR_PARALLEL_MIN && nbands > 1)
        for (int bi = 0; bi < nbands; bi++) {
            const int o0 = bi * band;
            const int o1 = o0 + band < OC ? o0 + band : OC;
            float acc[64];
            for (int o = o0; o < o1; o++) acc[o - o0] = 0.0f;
            for (int n = 0; n < N; n++) {
                const float *row = dout + (size_t)n * OC;
                for (int o = o0; o < o1; o++) acc[o - o0] += row[o];
            }
            for (int o = o0; o < o1; o++) db[o] += acc[o - o0];
        }
    }
}
