/* linear.c: the fully connected layer, out = inp @ w^T + b, and its backward.
 *
 * The heavy lifting is three cblas_sgemm calls; the loops of our own are the bias
 * broadcast, the bias-gradient column sum, and the forward of a few rows. Weights are in
 * PyTorch's [out, in] layout, so the forward multiplies by the transpose of w.
 *
 * Why the few-row forward: generation feeds one token per sequence per step (up to 4
 * sequences batched, model/vlm_session.c), and sgemm with one row
 * first packs (copies) the whole weight matrix, then runs a single-threaded small
 * kernel while the other threads wait: profiled on the 2-core box, decoding spent 32%
 * of its time packing, 19% in that kernel and 22% spinning. A product of a few rows by
 * w^T is a set of dot products of each input row with every weight row; we walk the
 * weight rows in parallel bands, each read once from memory and used for every input
 * row while it is in cache (generation is bound by reading the weights). */
#include "kernels/kernels.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "kernels/parallel.h"
#include "kernels/rows.h"

/* Below this many elements a parallel region costs more than it saves. */
#define LINEAR_PARALLEL_MIN 4096
/* Largest op(B), in bytes, that sgemm_row_bands lets each thread pack for itself. */
#ifndef LINEAR_BAND_MAX_SHARED
#define LINEAR_BAND_MAX_SHARED (1u << 20)
#endif
/* Weight rows per band of the few-row forward: 8 x 768 floats = 24 KiB stays in L1. */
#define LINEAR_BAND 8

/* s[r] = x . w_r for the 8 rows w_r = w + r*stride of n floats each. Unlike rows.h's
 * dot_rows (tuned for attention's ~64-float rows), the rows here are long (the layer's
 * input width), so 16-wide vectors and 8 accumulator chains, one per row, each
 * sharing the load of x. */
static void dot8_rows(float *s, const float *x, const float *w, size_t stride, int n) {
    const float *w0 = w, *w1 = w0 + stride, *w2 = w1 + stride, *w3 = w2 + stride;
    const float *w4 = w3 + stride, *w5 = w4 + stride, *w6 = w5 + stride, *w7 = w6 + stride;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f, s4 = 0.0f, s5 = 0.0f, s6 = 0.0f, s7 = 0.0f;
#pragma omp simd simdlen(16) reduction(+ : s0, s1, s2, s3, s4, s5, s6, s7)
    for (int d = 0; d < n; d++) {
        const float xd = x[d];
        s0 += xd * w0[d];
        s1 += xd * w1[d];
        s2 += xd * w2[d];
        s3 += xd * w3[d];
        s4 += xd * w4[d];
        s5 += xd * w5[d];
        s6 += xd * w6[d];
        s7 += xd * w7[d];
    }
    s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3, s[4] = s4, s[5] = s5, s[6] = s6, s[7] = s7;
}

/* C[M,N] = op(A) op(B) + beta C, row-major, as one sgemm per OpenMP thread on its band
 * of C's rows. Why: OpenBLAS's own threads synchronise by spinning and sched_yield
 * inside every call, which for the tiny model's matrices cost ~10% of a training step
 * (profiled); a band per thread needs no synchronisation inside the product, and
 * OpenBLAS's OpenMP build runs single-threaded inside a parallel region. (A pthreads
 * build would start its own threads there, so it keeps OpenBLAS's threading.) But each
 * thread then packs all of op(B) itself: where op(B) is larger than a core's cache (the
 * larger models' weights), both threads stream it from memory and the product slows
 * down (measured at width 768: training 20% slower, prefill 18%), so there OpenBLAS
 * threads it, sharing one packed copy. */
static void sgemm_row_bands(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
                            const float *A, int lda, const float *B, int ldb, float beta,
                            float *C, int ldc) {
    const int nt = omp_get_max_threads();
    if (nt == 1 || M < 128 * nt || (size_t)N * K * sizeof(float) > LINEAR_BAND_MAX_SHARED ||
        openblas_get_parallel() != 2 || omp_in_parallel()) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        const int m0 = (int)((long)M * t / n), m1 = (int)((long)M * (t + 1) / n);
        /* row m of op(A) is row m of A, or column m when A is transposed */
        const float *Ab = ta == CblasNoTrans ? A + (size_t)m0 * lda : A + m0;
        if (m1 > m0)
            cblas_sgemm(CblasRowMajor, ta, tb, m1 - m0, N, K, 1.0f, Ab, lda, B, ldb, beta,
                        C + (size_t)m0 * ldc, ldc);
    }
}

static void linear_forward_few(float *out, const float *inp, const float *w, const float *b,
                               int N, int IC, int OC) {
    const int nbands = (OC + LINEAR_BAND - 1) / LINEAR_BAND;
    KERNEL_PARALLEL((long)OC * IC, LINEAR_PARALLEL_MIN, nbands, tid, b0, b1, for (long bi = b0; bi < b1; bi++) {
        const int o0 = (int)bi * LINEAR_BAND;
        const int no = o0 + LINEAR_BAND < OC ? LINEAR_BAND : OC - o0;
        for (int n = 0; n < N; n++) {
            float *orow = out + (size_t)n * OC + o0;
            if (no == LINEAR_BAND) dot8_rows(orow, inp + (size_t)n * IC, w + (size_t)o0 * IC, (size_t)IC, IC);
            else dot_rows(orow, inp + (size_t)n * IC, w + (size_t)o0 * IC, (size_t)IC, no, IC, 1.0f);
            if (b)
                for (int o = 0; o < no; o++) orow[o] += b[o0 + o];
        }
    });
}

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
    if (N <= LINEAR_FEW_ROWS) {
        linear_forward_few(out, inp, w, b, N, IC, OC);
        return;
    }
    float beta = 0.0f;
    if (b) {
        /* Pre-fill every row with the bias and let sgemm add the product on top
         * (beta = 1): one pass over out instead of two. */
        KERNEL_PARALLEL((long)N * OC, LINEAR_PARALLEL_MIN, N, tid, n0, n1,
                        for (long n = n0; n < n1; n++) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float)));
        beta = 1.0f;
    }
    sgemm_row_bands(CblasNoTrans, CblasTrans, N, OC, IC, inp, IC, w, IC, beta, out, OC);
}

/* dinp_beta: 1 adds to dinp, 0 overwrites it (sgemm's beta). */
static void linear_backward_impl(float *dinp, float dinp_beta, float *dw, float *db, const float *dout,
                                 const float *inp, const float *w, int N, int IC, int OC) {
    if (N <= 0 || OC <= 0 || IC < 0) return;
    if (dinp && IC > 0) {
        /* dinp[N,IC] (+)= dout[N,OC] @ w[OC,IC] */
        sgemm_row_bands(CblasNoTrans, CblasNoTrans, N, IC, OC, dout, OC, w, IC, dinp_beta, dinp, IC);
    }
    if (dw && IC > 0) {
        /* dw[OC,IC] += dout^T[OC,N] @ inp[N,IC] */
        sgemm_row_bands(CblasTrans, CblasNoTrans, OC, IC, N, dout, OC, inp, IC, 1.0f, dw, IC);
    }
    if (db) {
        /* Column sums of dout. Each thread owns a contiguous band of columns and walks
         * all rows, so the result is deterministic and every row read is contiguous. */
        const int band = 64;
        const int nbands = (OC + band - 1) / band;
        KERNEL_PARALLEL(nbands > 1 ? (long)N * OC : 0, LINEAR_PARALLEL_MIN, nbands, tid, b0, b1, for (long bi = b0; bi < b1; bi++) {
            const int o0 = (int)bi * band;
            const int o1 = o0 + band < OC ? o0 + band : OC;
            float acc[64];
            for (int o = o0; o < o1; o++) acc[o - o0] = 0.0f;
            for (int n = 0; n < N; n++) {
                const float *row = dout + (size_t)n * OC;
                for (int o = o0; o < o1; o++) acc[o - o0] += row[o];
            }
            for (int o = o0; o < o1; o++) db[o] += acc[o - o0];
        });
    }
}

void linear_backward(float *dinp, float *dw, float *db, const float *dout,
                     const float *inp, const float *w, int N, int IC, int OC) {
    linear_backward_impl(dinp, 1.0f, dw, db, dout, inp, w, N, IC, OC);
}

void linear_backward_set(float *dinp, float *dw, float *db, const float *dout,
                         const float *inp, const float *w, int N, int IC, int OC) {
    if (dinp && N > 0 && IC > 0 && OC <= 0) memset(dinp, 0, (size_t)N * IC * sizeof(float));
    linear_backward_impl(dinp, 0.0f, dw, db, dout, inp, w, N, IC, OC);
}
