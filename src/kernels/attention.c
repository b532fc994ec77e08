/* attention.c: scaled dot-product attention with optional causal mask and grouped-query
 * heads (training forward/backward), and the cached variant used during generation.
 *
 * Why tight loops and not one sgemm per (sequence, head): the matrices are tiny
 * (T ~ 16..160, hd ~ 16..64) and the outcome of small sgemms called from inside an
 * OpenMP region depends on how OpenBLAS was built and which CPU it detected. Measured on
 * the 2-core dev box: with the pthreads build (CMake's fallback) they are 3-7x slower
 * than these loops; with the OpenMP build and its default (mis)detected core they are
 * about even; only with OPENBLAS_CORETYPE forced to the right core is the backward
 * 2-3x faster, at the price of a T x T scratch buffer per thread. The loops need no
 * scratch, are deterministic, and cost the same everywhere; attention is a small
 * fraction of a step next to the linear layers at these sizes.
 *
 * So we parallelise over (sequence, head) and write the inner products with the
 * vectorised row loops of rows.h (dot products four keys at a time, weighted sums of
 * rows fused four rows per pass).
 *
 * The forward computes each row's scores straight into its row of att and turns them
 * into probabilities in place (max-subtracted softmax). The backward walks the query
 * rows in blocks of ATT_BLOCK: for each row it computes dp_ij = dout_i . v_j once,
 * D_i = sum_j p_ij dp_ij, ds_ij = scale p_ij (dp_ij - D_i) into a per-thread
 * ATT_BLOCK x T scratch, and dq_i; then for each key it accumulates dk_j and dv_j over
 * the block's rows, reading ds back. Accumulating a key's gradient over many rows at
 * once, instead of scattering every row's contribution over all key rows, keeps the
 * written rows in L1. (Recomputing dp instead of keeping it, as an earlier version did,
 * took three dot products per (row, key) instead of one.)
 *
 * The backward is parallel over (sequence, kv head) and loops over the query heads of
 * each kv group inside, so that the heads sharing a kv head never add into the same
 * dk/dv rows concurrently: the result is deterministic without atomics.
 *
 * Sequence packing (seg_start): row i's keys are [s_i, i] instead of [0, i]. The
 * row-wise loops simply start at s_i, with the key and value pointers offset so that a
 * packed row does exactly the arithmetic of the same row of its segment run alone. In
 * the key-wise part, key j receives from the rows r of the block with r >= j and
 * s_r <= j; we take the contiguous range from the first such row to the last one. With
 * packing (s nondecreasing) every row in that range sees j; with any other s a row in
 * the range may not, and then its att entry is exactly 0, so it adds exactly nothing. */
#include "kernels/kernels.h"
#include "kernels/rows.h"
#include "kernels/vexp.h"

#include <assert.h>
#include <math.h>
#include <omp.h>

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define ATT_PARALLEL_MIN 65536
/* Rows (and keys) handled per block in the backward; sizes its small stack buffers. */
#define ATT_BLOCK 64

/* One query row against its first n_keys keys: probs[0..n_keys) receives the softmax of
 * the scaled scores and out_row the probability-weighted sum of value rows. Shared by
 * the training forward and the cached forward so both give identical numbers. */
static void attend_row(float *out_row, float *probs, const float *q_row, const float *k,
                       const float *v, size_t kv_stride, int n_keys, int hd, float scale) {
    dot_rows(probs, q_row, k, kv_stride, n_keys, hd, scale);
    float maxv = probs[0];
#pragma omp simd reduction(max : maxv)
    for (int j = 1; j < n_keys; j++) maxv = probs[j] > maxv ? probs[j] : maxv;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n_keys; j++) {
        const float e = vexpf(probs[j] - maxv);
        probs[j] = e;
        sum += e;
    }
    /* sum >= 1 (the max term is exp(0)), so the division is always safe. */
    const float inv_sum = 1.0f / sum;
    for (int j = 0; j < n_keys; j++) probs[j] *= inv_sum;
    for (int d = 0; d < hd; d++) out_row[d] = 0.0f;
    axpy_rows(out_row, probs, v, kv_stride, n_keys, hd);
}

void attention_forward(float *out, float *att, const float *q, const float *k,
                       const float *v, int B, int T, int H, int KVH, int hd, int causal,
                       const int *seg_start) {
    assert(causal || !seg_start);
    const int *seg = causal ? seg_start : NULL;
    const int C = H * hd, KC = KVH * hd, group = H / KVH;
    const float scale = 1.0f / sqrtf((float)hd);
    const long work = (long)B * H * T * T * hd;
#pragma omp parallel for collapse(2) schedule(static) if (work >= ATT_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const int kvh = h / group;
            const float *kb = k + (size_t)b * T * KC + (size_t)kvh * hd;
            const float *vb = v + (size_t)b * T * KC + (size_t)kvh * hd;
            for (int i = 0; i < T; i++) {
                const size_t row = (size_t)b * T + i;
                float *probs = att + (((size_t)b * H + h) * T + i) * T;
                const int j0 = seg ? seg[row] : 0, j1 = causal ? i + 1 : T;
                assert(j0 >= 0 && j0 <= i);
                for (int j = 0; j < j0; j++) probs[j] = 0.0f;
                attend_row(out + row * C + (size_t)h * hd, probs + j0,
                           q + row * C + (size_t)h * hd, kb + (size_t)j0 * KC,
                           vb + (size_t)j0 * KC, (size_t)KC, j1 - j0, hd, scale);
                for (int j = j1; j < T; j++) probs[j] = 0.0f;
            }
        }
    }
}

size_t attention_backward_scratch_floats(int T) {
    return (size_t)omp_get_max_threads() * ATT_BLOCK * (size_t)(T > 0 ? T : 1);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout,
                        const float *att, const float *q, const float *k, const float *v,
                        int B, int T, int H, int KVH, int hd, int causal,
                        const int *seg_start, float *scratch) {
    assert(causal || !seg_start);
    if (!dq && !dk && !dv) return;
    const int *seg = causal ? seg_start : NULL;
    const int C = H * hd, KC = KVH * hd, group = H / KVH;
    const float scale = 1.0f / sqrtf((float)hd);
    const long work = (long)B * H * T * T * hd;
    /* With S = scale * q k^T, P = softmax(S), out = P v:
     *   dp_ij = dout_i . v_j,  D_i = sum_j p_ij dp_ij,  ds_ij = scale * p_ij (dp_ij - D_i)
     *   dq_i += sum_j ds_ij k_j,  dk_j += sum_i ds_ij q_i,  dv_j += sum_i p_ij dout_i
     * Each dp_ij is computed once: the row pass keeps the block's ds rows in this
     * thread's slice of scratch, and the key pass reads them back. */
#pragma omp parallel for collapse(2) schedule(static) if (work >= ATT_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        for (int kvh = 0; kvh < KVH; kvh++) {
            const float *kb = k + (size_t)b * T * KC + (size_t)kvh * hd;
            const float *vb = v + (size_t)b * T * KC + (size_t)kvh * hd;
            float *dkb = dk ? dk + (size_t)b * T * KC + (size_t)kvh * hd : NULL;
            float *dvb = dv ? dv + (size_t)b * T * KC + (size_t)kvh * hd : NULL;
            const int *sb = seg ? seg + (size_t)b * T : NULL;
            float *dsb = scratch + (size_t)omp_get_thread_num() * ATT_BLOCK * T; /* [ATT_BLOCK][T] */
            for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                const float *ab = att + ((size_t)b * H + h) * T * T;
                const size_t q_base = (size_t)b * T * C + (size_t)h * hd;
                /* Query rows in blocks of ATT_BLOCK: first the row-wise quantities (ds_i.,
                 * dq_i), then the key-wise ones (dk_j, dv_j) for the same rows. */
                for (int i0 = 0; i0 < T; i0 += ATT_BLOCK) {
                    const int i1 = i0 + ATT_BLOCK < T ? i0 + ATT_BLOCK : T;
                    float ds[ATT_BLOCK], pcol[ATT_BLOCK];

                    if (dq || dk)
                        for (int i = i0; i < i1; i++) {
                            const float *probs = ab + (size_t)i * T;
                            const float *dout_i = dout + q_base + (size_t)i * C;
                            const int js = sb ? sb[i] : 0, je = causal ? i + 1 : T;
                            float *dsr = dsb + (size_t)(i - i0) * T;
                            dot_rows(dsr + js, dout_i, vb + (size_t)js * KC, (size_t)KC, je - js, hd, 1.0f);
                            float Di = 0.0f;
                            for (int j = js; j < je; j++) Di += probs[j] * dsr[j];
                            for (int j = js; j < je; j++) dsr[j] = scale * probs[j] * (dsr[j] - Di);
                            if (dq)
                                axpy_rows(dq + q_base + (size_t)i * C, dsr + js, kb + (size_t)js * KC, (size_t)KC,
                                          je - js, hd);
                        }

                    if (!dk && !dv) continue;
                    /* Key j receives from the rows of this block that can see it: rows
                     * r0 .. r1-1 (see the top of the file for packed rows). Keys before
                     * the smallest segment start of the block are seen by none. */
                    int j_begin = 0;
                    if (sb) {
                        j_begin = i1;
                        for (int i = i0; i < i1; i++) j_begin = sb[i] < j_begin ? sb[i] : j_begin;
                    }
                    const int j_end = causal ? i1 : T;
                    for (int j = j_begin; j < j_end; j++) {
                        const int r0 = causal && j > i0 ? j : i0;
                        int r1 = i1;
                        if (sb)
                            while (r1 > r0 && sb[r1 - 1] > j) r1--;
                        const int nr = r1 - r0;
                        if (nr <= 0) continue;
                        for (int i = r0; i < r1; i++) pcol[i - r0] = ab[(size_t)i * T + j];
                        const float *q_r0 = q + q_base + (size_t)r0 * C;
                        const float *dout_r0 = dout + q_base + (size_t)r0 * C;
                        if (dkb) {
                            /* a row of the range that does not see j has p_ij = 0 exactly,
                             * and then ds_ij = 0 (its ds slot was never written) */
                            for (int i = r0; i < r1; i++)
                                ds[i - r0] = pcol[i - r0] != 0.0f ? dsb[(size_t)(i - i0) * T + j] : 0.0f;
                            axpy_rows(dkb + (size_t)j * KC, ds, q_r0, (size_t)C, nr, hd);
                        }
                        if (dvb) axpy_rows(dvb + (size_t)j * KC, pcol, dout_r0, (size_t)C, nr, hd);
                    }
                }
            }
        }
    }
}

void attention_cached_forward(float *out, const float *q, const float *kc, const float *vc,
                              int Tq, int Tk, int H, int KVH, int hd, float *scratch) {
    const int C = H * hd, KC = KVH * hd, group = H / KVH;
    const float scale = 1.0f / sqrtf((float)hd);
    const long work = (long)Tq * H * Tk * hd;
    /* Every (query row, head) pair is independent; each thread scores into its own Tk
     * slice of scratch, picked by its thread number. (So this must not be called from
     * several threads of an enclosing parallel region at once: each would be thread 0
     * of its own inner team and they would share slice 0.) */
#pragma omp parallel for collapse(2) schedule(static) if (work >= ATT_PARALLEL_MIN)
    for (int i = 0; i < Tq; i++) {
        for (int h = 0; h < H; h++) {
            float *probs = scratch + (size_t)omp_get_thread_num() * Tk;
            const size_t q_off = (size_t)i * C + (size_t)h * hd;
            const size_t kv_off = (size_t)(h / group) * hd;
            attend_row(out + q_off, probs, q + q_off, kc + kv_off, vc + kv_off, (size_t)KC,
                       Tk - Tq + i + 1, hd, scale);
        }
    }
}
