/* embedding.c: token embedding lookup, out[n] = wte[ids[n]], and its backward.
 *
 * The backward is a scatter-add: several rows may share a token id, so rows cannot be
 * processed in parallel without atomics (which would make the float sums depend on
 * thread timing). Instead each thread owns a band of columns and walks every row in
 * order: no two threads touch the same element and the addition order is fixed, so the
 * result is bitwise deterministic. */
#include "kernels/kernels.h"
#include "kernels/parallel.h"

#include <assert.h>
#include <string.h>

/* Below this many elements a parallel region costs more than it saves. */
#define EMB_PARALLEL_MIN 4096
/* Columns per band in the backward scatter-add. */
#define EMB_BAND 64

void embedding_forward(float *out, const int *ids, const float *wte, int N, int C) {
    KERNEL_PARALLEL((long)N * C, EMB_PARALLEL_MIN, N, tid, n0, n1, for (long n = n0; n < n1; n++) {
        assert(ids[n] >= 0);
        memcpy(out + (size_t)n * C, wte + (size_t)ids[n] * C, (size_t)C * sizeof(float));
    });
}

void embedding_backward(float *dwte, const float *dout, const int *ids, int N, int C) {
    if (!dwte) return;
    const int nbands = (C + EMB_BAND - 1) / EMB_BAND;
    KERNEL_PARALLEL(nbands > 1 ? (long)N * C : 0, EMB_PARALLEL_MIN, nbands, tid, b0, b1, for (long bi = b0; bi < b1; bi++) {
        const int c0 = (int)bi * EMB_BAND;
        const int c1 = c0 + EMB_BAND < C ? c0 + EMB_BAND : C;
        for (int n = 0; n < N; n++) {
            float *dst = dwte + (size_t)ids[n] * C;
            const float *src = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) dst[c] += src[c];
        }
    });
}
