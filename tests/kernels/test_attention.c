/* test_attention.c: attention_forward against a double reference (causal and
 * bidirectional, MHA and GQA), its backward against finite differences, accumulation and
 * NULL skipping, softmax stability, sequence packing (seg_start) against the reference
 * with the segment mask and against each segment run alone, and
 * attention_cached_forward against the causal training forward. */
#include "kernel_test_util.h"

#include <omp.h>

#include "kernels/kernels.h"

/* attention_backward's scratch, grown as needed and freed at the end of main. */
static float *g_scratch;
static size_t g_scratch_n;
static float *test_scratch(int T) {
    size_t n = attention_backward_scratch_floats(T);
    if (n > g_scratch_n) {
        free(g_scratch);
        g_scratch = malloc(n * sizeof(float));
        assert_non_null(g_scratch);
        g_scratch_n = n;
    }
    return g_scratch;
}

typedef struct {
    const double *q, *k, *v;
    const float *r;
    double *out, *att;
    int B, T, H, KVH, hd, causal;
    const int *seg; /* seg_start [B*T] or NULL */
} att_ref;

static void att_ref_forward(att_ref *c) {
    const int C = c->H * c->hd, KC = c->KVH * c->hd, group = c->H / c->KVH;
    const double scale = 1.0 / sqrt((double)c->hd);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++) {
            const int kvh = h / group;
            for (int i = 0; i < c->T; i++) {
                const double *qi = c->q + ((size_t)b * c->T + i) * C + h * c->hd;
                double *p = c->att + (((size_t)b * c->H + h) * c->T + i) * c->T;
                const int n_keys = c->causal ? i + 1 : c->T;
                const int j0 = c->seg ? c->seg[(size_t)b * c->T + i] : 0;
                double maxv = -INFINITY, sum = 0.0;
                for (int j = 0; j < c->T; j++) {
                    p[j] = 0.0;
                    if (j < j0 || j >= n_keys) continue;
                    const double *kj = c->k + ((size_t)b * c->T + j) * KC + kvh * c->hd;
                    double s = 0.0;
                    for (int d = 0; d < c->hd; d++) s += qi[d] * kj[d];
                    p[j] = s * scale;
                    maxv = fmax(maxv, p[j]);
                }
                for (int j = j0; j < n_keys; j++) sum += (p[j] = exp(p[j] - maxv));
                for (int j = j0; j < n_keys; j++) p[j] /= sum;
                double *oi = c->out + ((size_t)b * c->T + i) * C + h * c->hd;
                for (int d = 0; d < c->hd; d++) {
                    double s = 0.0;
                    for (int j = j0; j < n_keys; j++)
                        s += p[j] * c->v[((size_t)b * c->T + j) * KC + kvh * c->hd + d];
                    oi[d] = s;
                }
            }
        }
}

static double att_ref_loss(void *ctx) {
    att_ref *c = ctx;
    att_ref_forward(c);
    return dot_loss(c->out, c->r, (size_t)c->B * c->T * c->H * c->hd);
}

/* Everything one configuration needs, float and double. */
typedef struct {
    int B, T, H, KVH, hd, causal;
    const int *seg;
    size_t nq, nkv, natt;
    float *q, *k, *v, *out, *att, *r;
    double *qd, *kd, *vd, *ref_out, *ref_att;
    att_ref ref;
} att_case;

static void case_init_seg(att_case *c, int B, int T, int H, int KVH, int hd, int causal,
                          const int *seg, float qk_scale, uint64_t seed) {
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 7);
    *c = (att_case){.B = B, .T = T, .H = H, .KVH = KVH, .hd = hd, .causal = causal, .seg = seg};
    c->nq = (size_t)B * T * H * hd;
    c->nkv = (size_t)B * T * KVH * hd;
    c->natt = (size_t)B * H * T * T;
    c->q = alloc_floats(c->nq);
    c->k = alloc_floats(c->nkv);
    c->v = alloc_floats(c->nkv);
    c->out = alloc_floats(c->nq);
    c->att = alloc_floats(c->natt);
    c->r = alloc_floats(c->nq);
    fill_normal(&rng, c->q, c->nq, qk_scale);
    fill_normal(&rng, c->k, c->nkv, qk_scale);
    fill_normal(&rng, c->v, c->nkv, 1.0f);
    fill_normal(&rng, c->r, c->nq, 1.0f);
    /* Poison: the forward must write every element of out and att. */
    for (size_t i = 0; i < c->nq; i++) c->out[i] = NAN;
    for (size_t i = 0; i < c->natt; i++) c->att[i] = NAN;
    attention_forward(c->out, c->att, c->q, c->k, c->v, B, T, H, KVH, hd, causal, seg);
    c->qd = to_double(c->q, c->nq);
    c->kd = to_double(c->k, c->nkv);
    c->vd = to_double(c->v, c->nkv);
    c->ref_out = alloc_doubles(c->nq);
    c->ref_att = alloc_doubles(c->natt);
    c->ref = (att_ref){c->qd, c->kd, c->vd, c->r, c->ref_out, c->ref_att,
                       B, T, H, KVH, hd, causal, seg};
    att_ref_forward(&c->ref);
}

static void case_init(att_case *c, int B, int T, int H, int KVH, int hd, int causal,
                      float qk_scale, uint64_t seed) {
    case_init_seg(c, B, T, H, KVH, hd, causal, NULL, qk_scale, seed);
}

static void case_free(att_case *c) {
    free(c->q); free(c->k); free(c->v); free(c->out); free(c->att); free(c->r);
    free(c->qd); free(c->kd); free(c->vd); free(c->ref_out); free(c->ref_att);
}

/* Forward against the double reference and backward against its finite differences. */
static void check_case(att_case *c, size_t step) {
    check_close("attention out", c->out, c->ref_out, c->nq, 1e-5, 1e-5);
    check_close("attention att", c->att, c->ref_att, c->natt, 1e-6, 1e-5);

    float *dq = alloc_floats(c->nq), *dk = alloc_floats(c->nkv), *dv = alloc_floats(c->nkv);
    attention_backward(dq, dk, dv, c->r, c->att, c->q, c->k, c->v, c->B, c->T, c->H, c->KVH,
                       c->hd, c->causal, c->seg, test_scratch(c->T));
    double *num = alloc_doubles(c->nq);
    numeric_grad(num, c->qd, c->nq, step, att_ref_loss, &c->ref);
    check_grad("attention dq", dq, num, c->nq, step);
    numeric_grad(num, c->kd, c->nkv, step, att_ref_loss, &c->ref);
    check_grad("attention dk", dk, num, c->nkv, step);
    numeric_grad(num, c->vd, c->nkv, step, att_ref_loss, &c->ref);
    check_grad("attention dv", dv, num, c->nkv, step);
    free(dq); free(dk); free(dv); free(num);
}

static void check_config(int B, int T, int H, int KVH, int hd, int causal, size_t step,
                         uint64_t seed) {
    att_case c;
    case_init(&c, B, T, H, KVH, hd, causal, 1.0f, seed);
    check_case(&c, step);
    case_free(&c);
}

static void test_mha(void **state) {
    (void)state;
    check_config(2, 5, 3, 3, 8, 1, 1, 1);
    check_config(2, 5, 3, 3, 8, 0, 1, 2);
    check_config(1, 9, 2, 2, 5, 1, 1, 3); /* odd hd, T not a multiple of 4 */
    check_config(1, 1, 1, 1, 4, 1, 1, 4); /* one row */
}

static void test_gqa(void **state) {
    (void)state;
    check_config(2, 6, 4, 2, 6, 1, 1, 5);
    check_config(2, 6, 4, 2, 6, 0, 1, 6);
    check_config(1, 7, 6, 1, 8, 1, 1, 7); /* multi-query */
}

/* Large enough for the parallel paths; gradients sampled. */
static void test_parallel_sizes(void **state) {
    (void)state;
    check_config(2, 24, 4, 2, 16, 1, 11, 8);
    check_config(3, 20, 4, 4, 16, 0, 13, 9);
}

/* More rows than the backward's block of 64, so rows and keys span several blocks. */
static void test_long_sequences(void **state) {
    (void)state;
    check_config(1, 70, 2, 1, 4, 1, 3, 14);
    check_config(1, 67, 2, 2, 3, 0, 5, 15);
}

/* Wide heads: at hd = 256 the transposed-key buffer holds 32 keys, so 70 keys take
 * three chunks (the last one partial); above 256 the scores are taken row by row. */
static void test_wide_heads(void **state) {
    (void)state;
    check_config(1, 70, 2, 1, 256, 1, 997, 16);
    check_config(1, 40, 2, 2, 256, 0, 499, 17);
    check_config(1, 37, 2, 1, 264, 1, 499, 18);
    check_config(1, 20, 1, 1, 300, 0, 301, 19);
}

static void test_causal_structure(void **state) {
    (void)state;
    const int B = 2, T = 6, H = 4, KVH = 2, hd = 8, KC = KVH * hd, C = H * hd;
    att_case c;
    case_init(&c, B, T, H, KVH, hd, 1, 1.0f, 10);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *a = c.att + ((size_t)b * H + h) * T * T;
            /* Row 0 attends only to itself: probability 1, and the output is v row 0. */
            assert_true(a[0] == 1.0f);
            for (int d = 0; d < hd; d++)
                assert_float_equal(c.out[(size_t)b * T * C + h * hd + d],
                                   c.v[(size_t)b * T * KC + (h / 2) * hd + d], 1e-6f);
            for (int i = 0; i < T; i++) {
                double sum = 0.0;
                for (int j = 0; j < T; j++) {
                    if (j > i) assert_true(a[i * T + j] == 0.0f);
                    assert_true(a[i * T + j] >= 0.0f);
                    sum += a[i * T + j];
                }
                assert_true(fabs(sum - 1.0) < 1e-5);
            }
        }
    case_free(&c);
}

/* Scores in the thousands: the max-subtracted softmax must stay finite and one-hot-ish. */
static void test_large_scores_are_stable(void **state) {
    (void)state;
    att_case c;
    case_init(&c, 1, 8, 2, 2, 16, 0, 30.0f, 11);
    for (size_t i = 0; i < c.natt; i++) assert_true(isfinite(c.att[i]));
    for (size_t i = 0; i < c.nq; i++) assert_true(isfinite(c.out[i]));
    check_close("attention large out", c.out, c.ref_out, c.nq, 1e-4, 1e-4);
    float *dq = alloc_floats(c.nq), *dk = alloc_floats(c.nkv), *dv = alloc_floats(c.nkv);
    attention_backward(dq, dk, dv, c.r, c.att, c.q, c.k, c.v, 1, 8, 2, 2, 16, 0, NULL, test_scratch(8));
    for (size_t i = 0; i < c.nq; i++) assert_true(isfinite(dq[i]));
    for (size_t i = 0; i < c.nkv; i++) assert_true(isfinite(dk[i]) && isfinite(dv[i]));
    free(dq); free(dk); free(dv);
    case_free(&c);
}

static void test_accumulate_and_null(void **state) {
    (void)state;
    const int B = 2, T = 5, H = 4, KVH = 2, hd = 8;
    att_case c;
    case_init(&c, B, T, H, KVH, hd, 1, 1.0f, 12);
    float *fq = alloc_floats(c.nq), *fk = alloc_floats(c.nkv), *fv = alloc_floats(c.nkv);
    attention_backward(fq, fk, fv, c.r, c.att, c.q, c.k, c.v, B, T, H, KVH, hd, 1, NULL, test_scratch(T));

    sevo_rng rng;
    sevo_rng_seed(&rng, 13, 7);
    float *gq = alloc_floats(c.nq), *gk = alloc_floats(c.nkv), *gv = alloc_floats(c.nkv);
    fill_normal(&rng, gq, c.nq, 1.0f);
    fill_normal(&rng, gk, c.nkv, 1.0f);
    fill_normal(&rng, gv, c.nkv, 1.0f);
    float *bq = copy_floats(gq, c.nq), *bk = copy_floats(gk, c.nkv), *bv = copy_floats(gv, c.nkv);
    attention_backward(gq, gk, gv, c.r, c.att, c.q, c.k, c.v, B, T, H, KVH, hd, 1, NULL, test_scratch(T));
    attention_backward(gq, gk, gv, c.r, c.att, c.q, c.k, c.v, B, T, H, KVH, hd, 1, NULL, test_scratch(T));
    check_accumulated_twice("attention dq", gq, bq, fq, c.nq);
    check_accumulated_twice("attention dk", gk, bk, fk, c.nkv);
    check_accumulated_twice("attention dv", gv, bv, fv, c.nkv);

    /* Each gradient alone equals its part of the full call. */
    float *only = alloc_floats(c.nq);
    attention_backward(only, NULL, NULL, c.r, c.att, c.q, c.k, c.v, B, T, H, KVH, hd, 1, NULL, test_scratch(T));
    check_close_f("attention dq only", only, fq, c.nq, 0.0, 0.0);
    memset(only, 0, c.nq * sizeof(float));
    attention_backward(NULL, only, NULL, c.r, c.att, c.q, c.k, c.v, B, T, H, KVH, hd, 1, NULL, test_scratch(T));
    check_close_f("attention dk only", only, fk, c.nkv, 0.0, 0.0);
    memset(only, 0, c.nq * sizeof(float));
    attention_backward(NULL, NULL, only, c.r, c.att, c.q, c.k, c.v, B, T, H, KVH, hd, 1, NULL, test_scratch(T));
    check_close_f("attention dv only", only, fv, c.nkv, 0.0, 0.0);
    attention_backward(NULL, NULL, NULL, c.r, c.att, c.q, c.k, c.v, B, T, H, KVH, hd, 1, NULL, test_scratch(T));
    free(fq); free(fk); free(fv); free(gq); free(gk); free(gv); free(bq); free(bk); free(bv);
    free(only);
    case_free(&c);
}

/* ---- sequence packing ---- */

#define MAX_SEGS 4

/* seg_start [B*T] from lens[b]: the segment lengths of row b, summing to T, 0-ended. */
static int *make_seg(int B, int T, const int lens[][MAX_SEGS]) {
    int *seg = malloc((size_t)B * T * sizeof(int));
    assert_non_null(seg);
    for (int b = 0; b < B; b++) {
        int i = 0;
        for (int s = 0; s < MAX_SEGS && lens[b][s]; s++) {
            for (int t = 0; t < lens[b][s]; t++) seg[(size_t)b * T + i + t] = i;
            i += lens[b][s];
        }
        assert_int_equal(i, T);
    }
    return seg;
}

/* Packed rows: (1) forward against the double reference with the segment mask and
 * backward against its finite differences; (2) att exactly 0 outside each row's
 * segment; (3) every segment gives the same out, att and gradients as the segment run
 * alone as its own sequence (seg_start NULL); (4) the masked keys are skipped, not
 * computed and zeroed: with every row outside one segment set to NaN, that segment's
 * out, att rows and gradients are bit-identical. */
static void check_packed(int B, int T, int H, int KVH, int hd, const int lens[][MAX_SEGS],
                         size_t step, uint64_t seed) {
    const int C = H * hd, KC = KVH * hd;
    int *seg = make_seg(B, T, lens);
    att_case c;
    case_init_seg(&c, B, T, H, KVH, hd, 1, seg, 1.0f, seed);
    check_case(&c, step);

    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T; j++)
                    if (j < seg[(size_t)b * T + i] || j > i)
                        assert_true(c.att[(((size_t)b * H + h) * T + i) * T + j] == 0.0f);

    float *dq = alloc_floats(c.nq), *dk = alloc_floats(c.nkv), *dv = alloc_floats(c.nkv);
    attention_backward(dq, dk, dv, c.r, c.att, c.q, c.k, c.v, B, T, H, KVH, hd, 1, seg, test_scratch(T));
    for (int b = 0; b < B; b++)
        for (int s = 0, start = 0; s < MAX_SEGS && lens[b][s]; start += lens[b][s++]) {
            const int L = lens[b][s];
            const size_t r = (size_t)b * T + start; /* first row of the segment */
            /* The segment's rows are contiguous in q, k, v and dout. */
            float *out = alloc_floats((size_t)L * C), *att = alloc_floats((size_t)H * L * L);
            for (size_t n = 0; n < (size_t)L * C; n++) out[n] = NAN;
            for (size_t n = 0; n < (size_t)H * L * L; n++) att[n] = NAN;
            attention_forward(out, att, c.q + r * C, c.k + r * KC, c.v + r * KC, 1, L, H, KVH,
                              hd, 1, NULL);
            check_close_f("packed out vs alone", c.out + r * C, out, (size_t)L * C, 1e-6, 0.0);
            for (int h = 0; h < H; h++)
                for (int i = 0; i < L; i++)
                    check_close_f("packed att vs alone",
                                  c.att + (((size_t)b * H + h) * T + start + i) * T + start,
                                  att + ((size_t)h * L + i) * L, (size_t)L, 1e-6, 0.0);
            float *gq = alloc_floats((size_t)L * C), *gk = alloc_floats((size_t)L * KC),
                  *gv = alloc_floats((size_t)L * KC);
            attention_backward(gq, gk, gv, c.r + r * C, att, c.q + r * C, c.k + r * KC,
                               c.v + r * KC, 1, L, H, KVH, hd, 1, NULL, test_scratch(L));
            check_close_f("packed dq vs alone", dq + r * C, gq, (size_t)L * C, 1e-6, 1e-6);
            check_close_f("packed dk vs alone", dk + r * KC, gk, (size_t)L * KC, 1e-6, 1e-6);
            check_close_f("packed dv vs alone", dv + r * KC, gv, (size_t)L * KC, 1e-6, 1e-6);
            free(out); free(att); free(gq); free(gk); free(gv);

            float *pq = copy_floats(c.q, c.nq), *pk = copy_floats(c.k, c.nkv);
            float *pv = copy_floats(c.v, c.nkv), *pr = copy_floats(c.r, c.nq);
            for (size_t n = 0; n < (size_t)B * T; n++) {
                if (n >= r && n < r + L) continue;
                for (int d = 0; d < C; d++) pq[n * C + d] = pr[n * C + d] = NAN;
                for (int d = 0; d < KC; d++) pk[n * KC + d] = pv[n * KC + d] = NAN;
            }
            float *pout = alloc_floats(c.nq), *patt = alloc_floats(c.natt);
            attention_forward(pout, patt, pq, pk, pv, B, T, H, KVH, hd, 1, seg);
            check_close_f("packed out, rest NaN", pout + r * C, c.out + r * C, (size_t)L * C,
                          0.0, 0.0);
            for (int h = 0; h < H; h++) {
                const size_t a0 = (((size_t)b * H + h) * T + start) * T;
                check_close_f("packed att, rest NaN", patt + a0, c.att + a0, (size_t)L * T, 0.0,
                              0.0);
            }
            gq = alloc_floats(c.nq), gk = alloc_floats(c.nkv), gv = alloc_floats(c.nkv);
            attention_backward(gq, gk, gv, pr, patt, pq, pk, pv, B, T, H, KVH, hd, 1, seg, test_scratch(T));
            check_close_f("packed dq, rest NaN", gq + r * C, dq + r * C, (size_t)L * C, 0.0, 0.0);
            check_close_f("packed dk, rest NaN", gk + r * KC, dk + r * KC, (size_t)L * KC, 0.0,
                          0.0);
            check_close_f("packed dv, rest NaN", gv + r * KC, dv + r * KC, (size_t)L * KC, 0.0,
                          0.0);
            free(pq); free(pk); free(pv); free(pr); free(pout); free(patt);
            free(gq); free(gk); free(gv);
        }
    free(dq); free(dk); free(dv);
    case_free(&c);
    free(seg);
}

static void test_packed_gqa(void **state) {
    (void)state;
    const int lens[][MAX_SEGS] = {{7, 11, 6}, {13, 1, 10}};
    check_packed(2, 24, 4, 2, 16, lens, 1, 30); /* parallel path */
}

static void test_packed_mha(void **state) {
    (void)state;
    const int lens[][MAX_SEGS] = {{5, 9, 9}, {12, 11}};
    check_packed(2, 23, 3, 3, 8, lens, 1, 31);
}

/* Segments that cross the backward's block boundary at row 64. */
static void test_packed_long(void **state) {
    (void)state;
    const int lens[][MAX_SEGS] = {{30, 37, 3}, {1, 63, 6}};
    check_packed(2, 70, 2, 1, 4, lens, 3, 32);
    /* hd = 256: keys transposed 32 at a time, so segments also cross key chunks */
    check_packed(2, 70, 2, 1, 256, lens, 2999, 35);
}

/* One segment per row (seg_start all 0) is bit-identical to seg_start NULL. */
static void check_one_segment(int B, int T, int H, int KVH, int hd, uint64_t seed) {
    int *seg = calloc((size_t)B * T, sizeof(int));
    assert_non_null(seg);
    att_case c;
    case_init(&c, B, T, H, KVH, hd, 1, 1.0f, seed);
    float *out = alloc_floats(c.nq), *att = alloc_floats(c.natt);
    attention_forward(out, att, c.q, c.k, c.v, B, T, H, KVH, hd, 1, seg);
    check_close_f("one segment out", out, c.out, c.nq, 0.0, 0.0);
    check_close_f("one segment att", att, c.att, c.natt, 0.0, 0.0);
    float *dq = alloc_floats(c.nq), *dk = alloc_floats(c.nkv), *dv = alloc_floats(c.nkv);
    float *gq = alloc_floats(c.nq), *gk = alloc_floats(c.nkv), *gv = alloc_floats(c.nkv);
    attention_backward(dq, dk, dv, c.r, c.att, c.q, c.k, c.v, B, T, H, KVH, hd, 1, NULL, test_scratch(T));
    attention_backward(gq, gk, gv, c.r, att, c.q, c.k, c.v, B, T, H, KVH, hd, 1, seg, test_scratch(T));
    check_close_f("one segment dq", gq, dq, c.nq, 0.0, 0.0);
    check_close_f("one segment dk", gk, dk, c.nkv, 0.0, 0.0);
    check_close_f("one segment dv", gv, dv, c.nkv, 0.0, 0.0);
    free(out); free(att); free(dq); free(dk); free(dv); free(gq); free(gk); free(gv);
    case_free(&c);
    free(seg);
}

static void test_packed_one_segment(void **state) {
    (void)state;
    check_one_segment(2, 24, 4, 2, 16, 33);
    check_one_segment(1, 70, 2, 1, 4, 34);
}

/* The last Tq rows of a causal sequence, computed against the cache of all T rows,
 * equal those rows of attention_forward. */
static void check_cached(int T, int Tq, int H, int KVH, int hd, uint64_t seed) {
    att_case c;
    case_init(&c, 1, T, H, KVH, hd, 1, 1.0f, seed);
    const int C = H * hd;
    float *scratch = alloc_floats((size_t)omp_get_max_threads() * T);
    float *out = alloc_floats((size_t)Tq * C);
    for (size_t i = 0; i < (size_t)Tq * C; i++) out[i] = NAN;
    attention_cached_forward(out, c.q + (size_t)(T - Tq) * C, c.k, c.v, Tq, T, H, KVH, hd, scratch);
    check_close_f("cached attention", out, c.out + (size_t)(T - Tq) * C, (size_t)Tq * C, 1e-5, 0.0);
    free(scratch); free(out);
    case_free(&c);
}

static void test_cached(void **state) {
    (void)state;
    check_cached(7, 1, 4, 4, 8, 20);
    check_cached(7, 3, 4, 2, 8, 21);
    check_cached(7, 7, 6, 2, 5, 22);   /* prefill: the whole sequence */
    check_cached(64, 4, 8, 2, 32, 23); /* parallel path */
    check_cached(130, 5, 2, 1, 8, 24); /* long cache */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mha),
        cmocka_unit_test(test_gqa),
        cmocka_unit_test(test_parallel_sizes),
        cmocka_unit_test(test_long_sequences),
        cmocka_unit_test(test_wide_heads),
        cmocka_unit_test(test_causal_structure),
        cmocka_unit_test(test_large_scores_are_stable),
        cmocka_unit_test(test_accumulate_and_null),
        cmocka_unit_test(test_packed_gqa),
        cmocka_unit_test(test_packed_mha),
        cmocka_unit_test(test_packed_long),
        cmocka_unit_test(test_packed_one_segment),
        cmocka_unit_test(test_cached),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_scratch);
    return rc;
}
