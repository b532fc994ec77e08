/* attention.c: scaled dot-product attention with optional causal mask and grouped-query
 * heads (training forward/backward), and the cached variant used during generation.
 *
 * Why loops of our own and not one sgemm per (sequence, head): the matrices are tiny
 * (T ~ 16..300, hd ~ 16..64) and the outcome of small sgemms called from inside an
 * OpenMP region depends on how OpenBLAS was built and which CPU it detected (measured on
 * the 2-core dev box: 3-7x slower than plain loops with the pthreads build, about even
 * with the OpenMP build). So we parallelise over (sequence, kv head), looping over the
 * query heads of each kv group inside, and write the small products as register-tiled
 * kernels:
 *
 *  - score_tile: ATT_ROWS query rows against ATT_COLS keys, with the keys transposed
 *    into a stack buffer chunk by chunk, so that the products run across keys without
 *    horizontal sums. Used for the scores (q . k) and the backward's dp (dout . v).
 *  - rows_matmul: a few rows times a small matrix, for every weighted sum of rows:
 *    out = P v and dq = ds k over the keys, dk = ds^T q and dv = P^T dout over the rows.
 *
 * Each keeps ATT_ROWS x ATT_COLS sums in registers; the row-at-a-time loops they
 * replaced (dot products four keys at a time, then a load and store of the output per
 * four rows) measured 23% of a tiny-model training step against 15% now (perf).
 *
 * The forward writes each row's scores into its row of att, then turns them into
 * probabilities in place (max-subtracted softmax), then forms out = P v. The backward
 * walks the query rows in blocks of ATT_BLOCK: it computes dp_ij = dout_i . v_j once
 * into a per-thread ATT_BLOCK x T scratch, turns it into ds_ij = scale p_ij (dp_ij - D_i)
 * with D_i = sum_j p_ij dp_ij, forms dq for the block's rows, then dk and dv for the
 * keys those rows see. The heads sharing a kv head are handled by one thread, so they
 * never add into the same dk/dv rows concurrently: deterministic without atomics.
 *
 * Sequence packing (seg_start): row i's keys are [s_i, i] instead of [0, i]. Loops over
 * a row's keys start at s_i, so a packed row does the arithmetic of the same row of its
 * segment run alone. Tiles of several rows (or keys) never span two segments
 * (same_segment_run): inside one, the keys a row does not see have p_ij = 0 exactly and
 * contribute 0 times a finite value of the same example, so nothing from another example
 * (even a NaN) can reach a row. In the key-wise part, key j receives from the rows r of
 * the block with r >= j and s_r <= j; with packing (s nondecreasing) every row of that
 * range sees j; with any other s a row of the range may not, and then its att entry is
 * exactly 0, so it adds exactly nothing. */
#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "kernels/rows.h"
#include "kernels/vexp.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define ATT_PARALLEL_MIN 65536
/* Rows (and keys) handled per block in the backward; sizes its small stack buffers. */
#define ATT_BLOCK 64
/* Scores are computed in tiles of ATT_ROWS query rows by ATT_COLS keys against keys
 * transposed into a stack buffer of ATT_KT_FLOATS floats (32 KiB: a core's L1), which
 * holds ATT_KT_FLOATS / hd keys at a time. */
#define ATT_ROWS 4
#define ATT_COLS 32
#define ATT_KT_FLOATS 8192

/* Keys per transposed chunk for head size hd: a multiple of ATT_COLS, or 0 when not
 * even ATT_COLS keys fit (hd > 256), and the scores are then taken row by row. */
/* The two register-tiled kernels below are exempt from the sanitizers: AddressSanitizer
 * keeps their ATT_ROWS x ATT_COLS accumulator tiles in memory and checks every access,
 * and UndefinedBehaviorSanitizer's bounds checks on the tiles stop them vectorising,
 * which made them 7x slower and the sanitized test suite 6 minutes longer. Their heap
 * reads are still checked by valgrind's end-to-end run (scripts/test-valgrind.sh), and
 * their results against double references and finite differences, for every tile
 * shape the callers produce (tests/kernels/test_attention.c). */
#if defined(__GNUC__)
#define ATT_NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))
#else
#define ATT_NO_SANITIZE
#endif

static int att_chunk_keys(int hd) { return ATT_KT_FLOATS / hd / ATT_COLS * ATT_COLS; }

/* kt[d * ld + j] = k_j[d] for the n keys k_j = k + j*stride, and zero for the columns
 * n .. n rounded up to ATT_COLS, which score tiles read but whose scores are dropped. */
static void transpose_keys(float *kt, int ld, const float *k, size_t stride, int n, int hd) {
    const int n_pad = (n + ATT_COLS - 1) / ATT_COLS * ATT_COLS;
    for (int j = 0; j < n; j++) {
        const float *kj = k + (size_t)j * stride;
        for (int d = 0; d < hd; d++) kt[(size_t)d * ld + j] = kj[d];
    }
    for (int d = 0; d < hd; d++)
        for (int j = n; j < n_pad; j++) kt[(size_t)d * ld + j] = 0.0f;
}

/* acc[r][j] = x_r . key j for the rows x_r = x + r*xstride (r < nr; the others repeat
 * the last row) and the ATT_COLS keys in the columns of kt. Why this shape: with the
 * keys transposed, the products are vectorised across keys and need no horizontal sums
 * (a dot product of two 32-float rows spends as long reducing as multiplying), and each
 * key vector loaded serves ATT_ROWS rows, with 8 independent accumulator chains. */
ATT_NO_SANITIZE static void score_tile(float out[ATT_ROWS][ATT_COLS], const float *x, size_t xstride, int nr,
                       const float *kt, int ld, int hd) {
    const float *xr[ATT_ROWS];
    for (int r = 0; r < ATT_ROWS; r++) xr[r] = x + (size_t)(r < nr ? r : nr - 1) * xstride;
    /* a local accumulator, so that it lives in registers (out might alias x or kt) */
    float acc[ATT_ROWS][ATT_COLS] = {{0.0f}};
    for (int d = 0; d < hd; d++) {
        const float *kd = kt + (size_t)d * ld;
        for (int r = 0; r < ATT_ROWS; r++) {
            const float xv = xr[r][d];
#pragma omp simd
            for (int j = 0; j < ATT_COLS; j++) acc[r][j] += xv * kd[j];
        }
    }
    memcpy(out, acc, sizeof acc);
}

/* Keys [*js, *je) that query row i sees: from its segment start (or 0) to i (causal) or
 * T, clipped to [lo, hi). Empty when *js >= *je. */
static void row_keys(int *js, int *je, int i, const int *sb, int causal, int T, int lo, int hi) {
    const int s = sb ? sb[i] : 0, e = causal ? i + 1 : T;
    *js = s > lo ? s : lo;
    *je = e < hi ? e : hi;
}

/* How many of the next (at most ATT_ROWS) rows from i on, before i_end, share row i's
 * segment start. Tiles of rows (and of keys, which are rows too) never cross into
 * another packed example: every term they add for a key a row does not see is 0 times
 * a value of the same example, so an example's result never depends on another's. */
static int same_segment_run(const int *sb, int i, int i_end) {
    int n = i_end - i < ATT_ROWS ? i_end - i : ATT_ROWS;
    if (sb)
        for (int r = 1; r < n; r++)
            if (sb[i + r] != sb[i]) return r;
    return n;
}

/* For the query rows i0 .. i0+nrows-1 (x_i = x + (i-i0)*xstride) and the keys of the
 * chunk [c0, c1) each row sees, out[(i-i0)*ostride + j] = scale * (x_i . k_j); kt holds
 * the chunk transposed (key j in column j - c0). Other entries of out are untouched. */
static void score_rows(float *out, size_t ostride, const float *x, size_t xstride, int i0, int nrows,
                       const int *sb, int causal, int T, int c0, int c1, const float *kt, int ld,
                       int hd, float scale) {
    for (int r0 = 0; r0 < nrows; r0 += ATT_ROWS) {
        const int nr = nrows - r0 < ATT_ROWS ? nrows - r0 : ATT_ROWS;
        int lo = c1, hi = c0, js, je;
        for (int r = r0; r < r0 + nr; r++) {
            row_keys(&js, &je, i0 + r, sb, causal, T, c0, c1);
            if (js < je) lo = js < lo ? js : lo, hi = je > hi ? je : hi;
        }
        for (int t0 = lo < hi ? c0 + (lo - c0) / ATT_COLS * ATT_COLS : hi; t0 < hi; t0 += ATT_COLS) {
            float acc[ATT_ROWS][ATT_COLS];
            score_tile(acc, x + (size_t)r0 * xstride, xstride, nr, kt + (t0 - c0), ld, hd);
            for (int r = 0; r < nr; r++) {
                row_keys(&js, &je, i0 + r0 + r, sb, causal, T, t0, t0 + ATT_COLS < c1 ? t0 + ATT_COLS : c1);
                float *orow = out + (size_t)(r0 + r) * ostride;
                for (int j = js; j < je; j++) orow[j] = scale * acc[r][j - t0];
            }
        }
    }
}

/* probs[0..n_keys) holds a query row's scaled scores on entry and their softmax on
 * exit (max-subtracted). */
static void softmax_row(float *probs, int n_keys) {
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
}

/* c_r[0..hd) += sum_{j<n} a_r[j] * b_j for the nr <= ATT_ROWS rows c_r = c + r*ldc,
 * a_r = a + r*lda, with b_j = b + j*ldb: a few rows times a small matrix, the shape of
 * every weighted sum of rows in attention (probabilities times values, ds times keys,
 * and transposed, ds times queries and probabilities times output gradients). The nr
 * rows' sums stay in registers ATT_COLS columns at a time, and each row of b loaded
 * serves all of them; the loop over j runs without a load or store of c. */
ATT_NO_SANITIZE static void rows_matmul(float *c, size_t ldc, int nr, const float *a, size_t lda, const float *b,
                        size_t ldb, int n, int hd) {
    const float *ar[ATT_ROWS];
    for (int r = 0; r < ATT_ROWS; r++) ar[r] = a + (size_t)(r < nr ? r : nr - 1) * lda;
    for (int d0 = 0; d0 < hd; d0 += ATT_COLS) {
        const int w = hd - d0 < ATT_COLS ? hd - d0 : ATT_COLS;
        float acc[ATT_ROWS][ATT_COLS] = {{0.0f}};
        if (w == ATT_COLS) {
            for (int j = 0; j < n; j++) {
                const float *bj = b + (size_t)j * ldb + d0;
                for (int r = 0; r < ATT_ROWS; r++) {
                    const float arj = ar[r][j];
#pragma omp simd
                    for (int e = 0; e < ATT_COLS; e++) acc[r][e] += arj * bj[e];
                }
            }
        } else {
            for (int j = 0; j < n; j++) {
                const float *bj = b + (size_t)j * ldb + d0;
                for (int r = 0; r < nr; r++) {
                    const float arj = ar[r][j];
                    for (int e = 0; e < w; e++) acc[r][e] += arj * bj[e];
                }
            }
        }
        for (int r = 0; r < nr; r++) {
            float *cr = c + (size_t)r * ldc + d0;
            for (int e = 0; e < w; e++) cr[e] += acc[r][e];
        }
    }
}

void attention_forward(float *out, float *att, const float *q, const float *k,
                       const float *v, int B, int T, int H, int KVH, int hd, int causal,
                       const int *seg_start) {
    assert(causal || !seg_start);
    const int *seg = causal ? seg_start : NULL;
    const int C = H * hd, KC = KVH * hd, group = H / KVH;
    const float scale = 1.0f / sqrtf((float)hd);
    const int ck = att_chunk_keys(hd);
    const long work = (long)B * H * T * T * hd;
    /* Parallel over (sequence, kv head), so that the heads of a group share each
     * transposed chunk of keys. */
    KERNEL_PARALLEL(work, ATT_PARALLEL_MIN, (long)B * KVH, tid, w0, w1, for (long w = w0; w < w1; w++) {
        const int b = (int)(w / KVH), kvh = (int)(w % KVH);
        _Alignas(64) float kt[ATT_KT_FLOATS];
        const float *kb = k + (size_t)b * T * KC + (size_t)kvh * hd;
        const float *vb = v + (size_t)b * T * KC + (size_t)kvh * hd;
        const int *sb = seg ? seg + (size_t)b * T : NULL;
        /* the scores, chunk by chunk of keys; causal rows before a chunk see none of it */
        for (int c0 = 0; ck && c0 < T; c0 += ck) {
            const int c1 = c0 + ck < T ? c0 + ck : T, i0 = causal ? c0 : 0;
            transpose_keys(kt, ck, kb + (size_t)c0 * KC, (size_t)KC, c1 - c0, hd);
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
                score_rows(att + (((size_t)b * H + h) * T + i0) * T, (size_t)T,
                           q + ((size_t)b * T + i0) * C + (size_t)h * hd, (size_t)C, i0, T - i0,
                           sb, causal, T, c0, c1, kt, ck, hd, scale);
        }
        for (int h = kvh * group; h < (kvh + 1) * group; h++) {
            float *ah = att + ((size_t)b * H + h) * T * T;
            const size_t o_base = (size_t)b * T * C + (size_t)h * hd;
            for (int i = 0; i < T; i++) {
                float *probs = ah + (size_t)i * T;
                const int j0 = sb ? sb[i] : 0, j1 = causal ? i + 1 : T;
                assert(j0 >= 0 && j0 <= i);
                if (!ck)
                    dot_rows(probs + j0, q + o_base + (size_t)i * C, kb + (size_t)j0 * KC,
                             (size_t)KC, j1 - j0, hd, scale);
                for (int j = 0; j < j0; j++) probs[j] = 0.0f;
                softmax_row(probs + j0, j1 - j0);
                for (int j = j1; j < T; j++) probs[j] = 0.0f;
            }
            /* out = P v, ATT_ROWS rows at a time over the keys any of them sees (the
             * others' probabilities there are exactly 0) */
            for (int i = 0, nr; i < T; i += nr) {
                nr = same_segment_run(sb, i, T);
                int lo = T, hi = 0, js, je;
                for (int r = i; r < i + nr; r++) {
                    row_keys(&js, &je, r, sb, causal, T, 0, T);
                    lo = js < lo ? js : lo, hi = je > hi ? je : hi;
                    for (int d = 0; d < hd; d++) out[o_base + (size_t)r * C + d] = 0.0f;
                }
                rows_matmul(out + o_base + (size_t)i * C, (size_t)C, nr, ah + (size_t)i * T + lo,
                            (size_t)T, vb + (size_t)lo * KC, (size_t)KC, hi - lo, hd);
            }
        }
    });
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
    const int ck = att_chunk_keys(hd);
    const long work = (long)B * H * T * T * hd;
    /* With S = scale * q k^T, P = softmax(S), out = P v:
     *   dp_ij = dout_i . v_j,  D_i = sum_j p_ij dp_ij,  ds_ij = scale * p_ij (dp_ij - D_i)
     *   dq_i += sum_j ds_ij k_j,  dk_j += sum_i ds_ij q_i,  dv_j += sum_i p_ij dout_i
     * Each dp_ij is computed once: the row pass keeps the block's ds rows in this
     * thread's slice of scratch, and the key pass reads them back. */
    KERNEL_PARALLEL(work, ATT_PARALLEL_MIN, (long)B * KVH, tid, w0, w1, for (long w = w0; w < w1; w++) {
        const int b = (int)(w / KVH), kvh = (int)(w % KVH);
        _Alignas(64) float vt[ATT_KT_FLOATS];
        const float *kb = k + (size_t)b * T * KC + (size_t)kvh * hd;
        const float *vb = v + (size_t)b * T * KC + (size_t)kvh * hd;
        float *dkb = dk ? dk + (size_t)b * T * KC + (size_t)kvh * hd : NULL;
        float *dvb = dv ? dv + (size_t)b * T * KC + (size_t)kvh * hd : NULL;
        const int *sb = seg ? seg + (size_t)b * T : NULL;
        float *dsb = scratch + (size_t)tid * ATT_BLOCK * T; /* [ATT_BLOCK][T] */
        for (int h = kvh * group; h < (kvh + 1) * group; h++) {
            const float *ab = att + ((size_t)b * H + h) * T * T;
            const size_t q_base = (size_t)b * T * C + (size_t)h * hd;
            /* Query rows in blocks of ATT_BLOCK: first the row-wise quantities (ds_i.,
             * dq_i), then the key-wise ones (dk_j, dv_j) for the same rows. */
            for (int i0 = 0; i0 < T; i0 += ATT_BLOCK) {
                const int i1 = i0 + ATT_BLOCK < T ? i0 + ATT_BLOCK : T;
                float ds[ATT_ROWS][ATT_BLOCK], pcol[ATT_ROWS][ATT_BLOCK];
                /* Keys before the smallest segment start of the block are seen by
                 * none of its rows, and (causal) none after its last row. */
                int j_begin = 0;
                if (sb) {
                    j_begin = i1;
                    for (int i = i0; i < i1; i++) j_begin = sb[i] < j_begin ? sb[i] : j_begin;
                }
                const int j_end = causal ? i1 : T;

                if (dq || dk) {
                    /* dp_ij into the block's rows of scratch, chunk by chunk of values */
                    for (int c0 = j_begin; ck && c0 < j_end; c0 += ck) {
                        const int c1 = c0 + ck < j_end ? c0 + ck : j_end;
                        transpose_keys(vt, ck, vb + (size_t)c0 * KC, (size_t)KC, c1 - c0, hd);
                        score_rows(dsb, (size_t)T, dout + q_base + (size_t)i0 * C, (size_t)C, i0, i1 - i0,
                                   sb, causal, T, c0, c1, vt, ck, hd, 1.0f);
                    }
                    for (int i = i0; i < i1; i++) {
                        const float *probs = ab + (size_t)i * T;
                        const int js = sb ? sb[i] : 0, je = causal ? i + 1 : T;
                        float *dsr = dsb + (size_t)(i - i0) * T;
                        if (!ck)
                            dot_rows(dsr + js, dout + q_base + (size_t)i * C, vb + (size_t)js * KC,
                                     (size_t)KC, je - js, hd, 1.0f);
                        float Di = 0.0f;
                        for (int j = js; j < je; j++) Di += probs[j] * dsr[j];
                        for (int j = js; j < je; j++) dsr[j] = scale * probs[j] * (dsr[j] - Di);
                    }
                    /* dq = ds k, ATT_ROWS rows at a time over the keys any of them
                     * sees, with zeros where a row does not see a key */
                    for (int i = i0, nr; dq && i < i1; i += nr) {
                        nr = same_segment_run(sb, i, i1);
                        int lo = T, hi = 0, js, je;
                        for (int r = i; r < i + nr; r++) {
                            row_keys(&js, &je, r, sb, causal, T, 0, T);
                            lo = js < lo ? js : lo, hi = je > hi ? je : hi;
                        }
                        for (int r = i; r < i + nr; r++) {
                            row_keys(&js, &je, r, sb, causal, T, 0, T);
                            float *dsr = dsb + (size_t)(r - i0) * T;
                            for (int j = lo; j < js; j++) dsr[j] = 0.0f;
                            for (int j = je; j < hi; j++) dsr[j] = 0.0f;
                        }
                        rows_matmul(dq + q_base + (size_t)i * C, (size_t)C, nr, dsb + (size_t)(i - i0) * T + lo,
                                    (size_t)T, kb + (size_t)lo * KC, (size_t)KC, hi - lo, hd);
                    }
                }

                if (!dk && !dv) continue;
                /* Key j receives from the rows of this block that can see it: rows
                 * r0 .. r1-1 (see the top of the file for packed rows). ATT_ROWS keys
                 * at a time, over the union of their rows: a row that does not see a
                 * key has p_ij = 0 exactly there, and takes ds_ij = 0 (its ds slot may
                 * hold another row's value). */
                for (int j = j_begin, nk; j < j_end; j += nk) {
                    nk = same_segment_run(sb, j, j_end);
                    const int r0 = causal && j > i0 ? j : i0;
                    int r1 = i1;
                    if (sb)
                        while (r1 > r0 && sb[r1 - 1] > j + nk - 1) r1--;
                    const int nr = r1 - r0;
                    if (nr <= 0) continue;
                    for (int kk = 0; kk < nk; kk++)
                        for (int i = r0; i < r1; i++) {
                            const float p = ab[(size_t)i * T + j + kk];
                            pcol[kk][i - r0] = p;
                            ds[kk][i - r0] = p != 0.0f ? dsb[(size_t)(i - i0) * T + j + kk] : 0.0f;
                        }
                    if (dkb)
                        rows_matmul(dkb + (size_t)j * KC, (size_t)KC, nk, ds[0], ATT_BLOCK,
                                    q + q_base + (size_t)r0 * C, (size_t)C, nr, hd);
                    if (dvb)
                        rows_matmul(dvb + (size_t)j * KC, (size_t)KC, nk, pcol[0], ATT_BLOCK,
                                    dout + q_base + (size_t)r0 * C, (size_t)C, nr, hd);
                }
            }
        }
    });
}

void attention_cached_forward(float *out, const float *q, const float *kc, const float *vc,
                              int Tq, int Tk, int H, int KVH, int hd, float *scratch) {
    const int C = H * hd, KC = KVH * hd, group = H / KVH;
    const float scale = 1.0f / sqrtf((float)hd);
    const long work = (long)Tq * H * Tk * hd;
    /* Every (query row, head) pair is independent; each thread scores into its own Tk
     * slice of scratch, picked by its thread number. (Inside an enclosing parallel
     * region it runs on the calling thread alone, in slice 0: threads that call it at
     * once, as generation's policies do, each pass their own scratch.) */
    KERNEL_PARALLEL(work, ATT_PARALLEL_MIN, (long)Tq * H, tid, w0, w1, for (long w = w0; w < w1; w++) {
        const int i = (int)(w / H), h = (int)(w % H);
        float *probs = scratch + (size_t)tid * Tk;
        const size_t q_off = (size_t)i * C + (size_t)h * hd;
        const size_t kv_off = (size_t)(h / group) * hd;
        const int n_keys = Tk - Tq + i + 1;
        dot_rows(probs, q + q_off, kc + kv_off, (size_t)KC, n_keys, hd, scale);
        softmax_row(probs, n_keys);
        for (int d = 0; d < hd; d++) out[q_off + d] = 0.0f;
        rows_matmul(out + q_off, (size_t)C, 1, probs, 0, vc + kv_off, (size_t)KC, n_keys, hd);
    });
}
