/* test_examples.c: batch assembly. Packing examples into shared rows must give every
 * example exactly the log-probabilities it gets in a row of its own; the weighted
 * cross-entropy gradient matches a hand-computed case; a masked image copy keeps whole
 * patches or blanks them. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/rng.h"
#include "train/examples.h"

#define VOCAB 24

static void small_model(vlm **m) {
    vlm_config c;
    vlm_config_tiny(&c, VOCAB);
    c.image_size = 8;
    c.patch_size = 4;
    c.vision.hidden_size = 8;
    c.vision.num_layers = 1;
    c.vision.num_heads = 2;
    c.vision.num_kv_heads = 2;
    c.vision.intermediate_size = 12;
    c.text.hidden_size = 16;
    c.text.num_layers = 2;
    c.text.num_heads = 4;
    c.text.num_kv_heads = 2;
    c.text.intermediate_size = 24;
    c.max_position_embeddings = 128;
    c.bos_token_id = 2;
    c.eos_token_id = 3;
    c.pad_token_id = 0;
    c.image_token_id = 4;
    sevo_error err;
    assert_int_equal(vlm_create(m, &c, &err), 0);
    vlm_init_weights(*m, 3);
    /* larger weights than the default so that log-probabilities differ visibly */
    float *p = vlm_params(*m);
    sevo_rng rng;
    sevo_rng_seed(&rng, 4, 4);
    for (size_t i = 0; i < vlm_num_params(*m); i++) p[i] += 0.2f * sevo_rng_normal(&rng);
}

/* Sum of log p over each example's tokens, found through ex_start; the tokens there
 * must be the example's own. */
static void per_example_logp(const batch_buf *bb, const float *logp, const example_set *s, const int *idx,
                             int n, double *out) {
    for (int k = 0; k < n; k++) {
        const train_example *e = &s->ex[idx[k]];
        int i = bb->ex_start[k];
        assert_true(i >= 0 && i + e->n <= bb->b.B * bb->b.T);
        assert_memory_equal(bb->ids + i, e->ids, (size_t)e->n * sizeof(int));
        double sum = 0;
        for (int t = 0; t < e->n; t++) sum += logp[i + t];
        out[k] = sum;
    }
}

static void test_packing_matches_one_row_each(void **state) {
    (void)state;
    vlm *m = NULL;
    small_model(&m);
    sevo_error err;
    example_set s;
    example_set_init(&s, 3 * 8 * 8);
    sevo_rng rng;
    sevo_rng_seed(&rng, 9, 9);
    /* two images in the table */
    s.images = malloc(2 * 3 * 64 * sizeof(float));
    s.image_paths = calloc(2, sizeof(char *));
    assert_non_null(s.images);
    for (int i = 0; i < 2 * 3 * 64; i++) s.images[i] = sevo_rng_normal(&rng);
    s.n_images = s.cap_images = 2;
    int n = 7;
    for (int e = 0; e < n; e++) {
        tokseq q;
        tokseq_init(&q);
        int img = e % 3 == 2 ? -1 : e % 2;
        int len = 8 + (int)sevo_rng_below(&rng, 14);
        assert_int_equal(tokseq_push(&q, 2, 0, &err), 0);
        for (int t = 0; t < 4 && img >= 0; t++) assert_int_equal(tokseq_push(&q, 4, 0, &err), 0);
        while (q.n < len) assert_int_equal(tokseq_push(&q, 5 + (int)sevo_rng_below(&rng, VOCAB - 5), q.n > 6, &err), 0);
        assert_int_equal(example_set_add(&s, &q, img, 64, &err), 0);
        tokseq_free(&q);
    }
    int idx[7] = {0, 1, 2, 3, 4, 5, 6};
    double packed[7], alone[7];
    batch_buf bb;
    batch_buf_init(&bb);
    float logp[7 * 64];
    /* packed into rows of 40 */
    assert_int_equal(batch_assemble(&bb, &s, idx, n, 0, 40, &err), 0);
    assert_true(bb.b.B < n);
    assert_int_equal(vlm_forward(m, &bb.b, logp, &err), 0);
    per_example_logp(&bb, logp, &s, idx, n, packed);
    /* one example at a time */
    for (int k = 0; k < n; k++) {
        assert_int_equal(batch_assemble(&bb, &s, idx + k, 1, 0, 1, &err), 0);
        assert_int_equal(bb.b.B, 1);
        assert_int_equal(vlm_forward(m, &bb.b, logp, &err), 0);
        per_example_logp(&bb, logp, &s, idx + k, 1, alone + k);
    }
    for (int k = 0; k < n; k++)
        if (fabs(packed[k] - alone[k]) > 1e-4 * (1 + fabs(alone[k])))
            fail_msg("example %d: packed logp %.6f, alone %.6f", k, packed[k], alone[k]);
    batch_buf_free(&bb);
    example_set_free(&s);
    vlm_free(m);
}

/* The weighted cross-entropy by hand: example A (weight 1) has targets at its tokens 1
 * and 2, example B (weight 3) at its tokens 0 and 1; the denominator is 1*2 + 3*2 = 8. */
static void test_weighted_nll_by_hand(void **state) {
    (void)state;
    sevo_error err;
    example_set s;
    example_set_init(&s, 0);
    tokseq q;
    tokseq_init(&q);
    const int a_ids[] = {2, 5, 6, 7}, a_loss[] = {0, 0, 1, 1};
    const int b_ids[] = {2, 8, 9}, b_loss[] = {0, 1, 1};
    for (int t = 0; t < 4; t++) assert_int_equal(tokseq_push(&q, a_ids[t], a_loss[t], &err), 0);
    assert_int_equal(example_set_add(&s, &q, -1, 64, &err), 0);
    q.n = 0;
    for (int t = 0; t < 3; t++) assert_int_equal(tokseq_push(&q, b_ids[t], b_loss[t], &err), 0);
    assert_int_equal(example_set_add(&s, &q, -1, 64, &err), 0);
    tokseq_free(&q);
    assert_true(s.ex[0].weight == 1.0f); /* the default */
    assert_int_equal(s.ex[0].n_targets, 2);
    assert_int_equal(s.ex[1].n_targets, 2);
    s.ex[1].weight = 3.0f;
    int idx[2] = {0, 1};
    assert_true(examples_target_weight(&s, idx, 2) == 8.0);
    batch_buf bb;
    batch_buf_init(&bb);
    assert_int_equal(batch_assemble(&bb, &s, idx, 2, 0, 8, &err), 0);
    int N = bb.b.B * bb.b.T;
    float logp[16], dlogp[16];
    assert_true(N <= 16);
    for (int k = 0; k < N; k++) logp[k] = -0.1f * (float)(k + 1);
    double nll = batch_weighted_nll(&bb, &s, idx, 2, logp, -0.125f, dlogp);
    int a = bb.ex_start[0], b = bb.ex_start[1];
    double want = -((double)logp[a + 1] + logp[a + 2]) - 3.0 * ((double)logp[b] + logp[b + 1]);
    assert_true(fabs(nll - want) < 1e-9);
    for (int k = 0; k < N; k++) {
        float g = 0.0f;
        if (k == a + 1 || k == a + 2) g = -0.125f;
        if (k == b || k == b + 1) g = -0.375f;
        if (dlogp[k] != g) fail_msg("dlogp[%d] = %g, want %g", k, dlogp[k], g);
    }
    batch_buf_free(&bb);
    example_set_free(&s);
}

/* Balanced rows, by hand. Lengths 12, 3, 12, 3, 3 (33 tokens) in rows of 24: first fit
 * needs 2 rows (12+3+3+3 and 12). Longest first, rows of 17 do not hold them (12 | 12,
 * a 3 to each, and the third 3 overflows both), rows of 18 do (12+3+3 | 12+3): 36
 * tokens instead of 48. Every token of every example lies at its ex_start, no two examples
 * overlap, and the rest is padding with no target. */
static void test_packing_balances_rows(void **state) {
    (void)state;
    sevo_error err;
    example_set s;
    example_set_init(&s, 0);
    const int lens[5] = {12, 3, 12, 3, 3};
    for (int e = 0; e < 5; e++) {
        tokseq q;
        tokseq_init(&q);
        for (int t = 0; t < lens[e]; t++) assert_int_equal(tokseq_push(&q, 10 * (e + 1) + t, t > 0, &err), 0);
        assert_int_equal(example_set_add(&s, &q, -1, 64, &err), 0);
        tokseq_free(&q);
    }
    int idx[5] = {0, 1, 2, 3, 4};
    batch_buf bb;
    batch_buf_init(&bb);
    assert_int_equal(batch_assemble(&bb, &s, idx, 5, 0, 24, &err), 0);
    assert_int_equal(bb.b.B, 2);
    assert_int_equal(bb.b.T, 18);
    int N = bb.b.B * bb.b.T, owner[36];
    for (int k = 0; k < N; k++) owner[k] = -1;
    for (int e = 0; e < 5; e++) {
        int k0 = bb.ex_start[e];
        assert_true(k0 % 18 + lens[e] <= 18); /* within one row */
        for (int t = 0; t < lens[e]; t++) {
            assert_int_equal(owner[k0 + t], -1);
            owner[k0 + t] = e;
            assert_int_equal(bb.ids[k0 + t], 10 * (e + 1) + t);
            assert_int_equal(bb.pos[k0 + t], t);
            assert_int_equal(bb.seg_start[k0 + t], k0 % 18);
        }
    }
    int pad = 0;
    for (int k = 0; k < N; k++)
        if (owner[k] < 0) {
            pad++;
            assert_int_equal(bb.ids[k], 0);
            assert_int_equal(bb.targets[k], -1);
            assert_int_equal(bb.seg_start[k], k % 18); /* a one-token sequence of its own */
        }
    assert_int_equal(pad, 36 - 33);
    /* no shorter fit: 12, 12, 12 take 2 rows of 24 by first fit (12+12 | 12), and longest
     * first needs 3 rows for every length from 18 to 23, so the rows stay 24 long */
    int three[3] = {0, 2, 0};
    assert_int_equal(batch_assemble(&bb, &s, three, 3, 0, 24, &err), 0);
    assert_int_equal(bb.b.B, 2);
    assert_int_equal(bb.b.T, 24);
    /* one example longer than row_len: a row of its own length, as before */
    assert_int_equal(batch_assemble(&bb, &s, idx, 1, 0, 5, &err), 0);
    assert_int_equal(bb.b.B, 1);
    assert_int_equal(bb.b.T, 12);
    batch_buf_free(&bb);
    example_set_free(&s);
}

/* The masked copy: every patch either the source's pixels in all channels or all zeros
 * (the blank value), at least one of each; about the kept share over many copies; the
 * source is left as it was; bad arguments are refused. */
static void test_masked_image(void **state) {
    (void)state;
    enum { SIZE = 8, PATCH = 2, CH = 3, GRID = SIZE / PATCH };
    example_set s;
    example_set_init(&s, CH * SIZE * SIZE);
    sevo_error err;
    int blank, src;
    assert_int_equal(example_set_blank_image(&s, &blank, &err), 0);
    assert_int_equal(example_set_blank_image(&s, &src, &err), 0);
    for (int i = 0; i < CH * SIZE * SIZE; i++) s.images[(size_t)src * s.image_floats + i] = 1.0f + (float)i;
    sevo_rng r;
    sevo_rng_seed(&r, 3, 0);
    long kept_total = 0;
    const int copies = 300; /* past the image table's first 256 slots: it moves while copying */
    for (int k = 0; k < copies; k++) {
        int idx;
        assert_int_equal(example_set_masked_image(&s, src, SIZE, PATCH, 0.2, &r, &idx, &err), 0);
        const float *a = s.images + (size_t)src * s.image_floats, *b = s.images + (size_t)idx * s.image_floats;
        int kept = 0;
        for (int p = 0; p < GRID * GRID; p++) {
            int y0 = p / GRID * PATCH, x0 = p % GRID * PATCH, same = 0, zero = 0;
            for (int c = 0; c < CH; c++)
                for (int y = y0; y < y0 + PATCH; y++)
                    for (int x = x0; x < x0 + PATCH; x++) {
                        size_t o = ((size_t)c * SIZE + y) * SIZE + x;
                        same += b[o] == a[o];
                        zero += b[o] == 0.0f;
                    }
            assert_true(same == CH * PATCH * PATCH || zero == CH * PATCH * PATCH);
            kept += same == CH * PATCH * PATCH;
        }
        assert_true(kept > 0 && kept < GRID * GRID);
        kept_total += kept;
    }
    double share = (double)kept_total / (copies * GRID * GRID);
    assert_true(share > 0.17 && share < 0.23);
    assert_true(s.images[(size_t)src * s.image_floats] == 1.0f);
    int idx, n_images = s.n_images;
    assert_int_equal(example_set_masked_image(&s, src, SIZE, PATCH, 0.995, &r, &idx, &err), -1);
    assert_int_equal(example_set_masked_image(&s, src, SIZE, PATCH, 0.0, &r, &idx, &err), -1);
    assert_int_equal(example_set_masked_image(&s, src, SIZE, SIZE, 0.2, &r, &idx, &err), -1); /* one patch */
    assert_int_equal(example_set_masked_image(&s, src, SIZE, 3, 0.2, &r, &idx, &err), -1);    /* 8 % 3 */
    assert_int_equal(example_set_masked_image(&s, src, SIZE, 0, 0.2, &r, &idx, &err), -1);
    assert_int_equal(example_set_masked_image(&s, s.n_images, SIZE, PATCH, 0.2, &r, &idx, &err), -1);
    assert_int_equal(s.n_images, n_images); /* refused: nothing added */
    example_set_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packing_matches_one_row_each),
        cmocka_unit_test(test_weighted_nll_by_hand),
        cmocka_unit_test(test_packing_balances_rows),
        cmocka_unit_test(test_masked_image),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
