/* test_linear.c: linear_forward against a hand case and a double reference;
 * linear_backward against finite differences, accumulation and NULL skipping. */
#include "kernel_test_util.h"

#include "kernels/kernels.h"

/* Double reference: out = inp w^T + b. */
typedef struct {
    const double *inp, *w, *b;
    const float *r;
    double *out;
    int N, IC, OC;
} linear_ref;

static void linear_ref_forward(linear_ref *c) {
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = c->b ? c->b[o] : 0.0;
            for (int i = 0; i < c->IC; i++) s += c->inp[n * c->IC + i] * c->w[o * c->IC + i];
            c->out[n * c->OC + o] = s;
        }
}

static double linear_ref_loss(void *ctx) {
    linear_ref *c = ctx;
    linear_ref_forward(c);
    return dot_loss(c->out, c->r, (size_t)c->N * c->OC);
}

static void test_forward_hand(void **state) {
    (void)state;
    const float inp[2] = {1.0f, 2.0f};
    const float w[4] = {1.0f, 0.0f, 0.5f, -1.0f};
    const float b[2] = {0.1f, 0.2f};
    float out[2];
    linear_forward(out, inp, w, b, 1, 2, 2);
    assert_float_equal(out[0], 1.1f, 1e-6f);
    assert_float_equal(out[1], -1.3f, 1e-6f);
    linear_forward(out, inp, w, NULL, 1, 2, 2);
    assert_float_equal(out[0], 1.0f, 1e-6f);
    assert_float_equal(out[1], -1.5f, 1e-6f);
}

/* Forward against the reference and backward against finite differences, for one shape
 * with and without bias. step > 1 checks a subset of the elements (large shapes). */
static void check_shape(int N, int IC, int OC, int with_bias, size_t step, uint64_t seed) {
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 1);
    const size_t ni = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
    float *inp = alloc_floats(ni), *w = alloc_floats(nw), *b = alloc_floats(OC);
    float *out = alloc_floats(no), *r = alloc_floats(no);
    fill_normal(&rng, inp, ni, 1.0f);
    fill_normal(&rng, w, nw, 0.5f);
    fill_normal(&rng, b, OC, 0.5f);
    fill_normal(&rng, r, no, 1.0f);
    /* Poison the output: forward must overwrite, never read it. */
    for (size_t i = 0; i < no; i++) out[i] = NAN;
    linear_forward(out, inp, w, with_bias ? b : NULL, N, IC, OC);

    double *dinp_ref = to_double(inp, ni), *dw_ref = to_double(w, nw), *db_ref = to_double(b, OC);
    double *ref_out = alloc_doubles(no);
    linear_ref c = {dinp_ref, dw_ref, with_bias ? db_ref : NULL, r, ref_out, N, IC, OC};
    linear_ref_forward(&c);
    check_close("linear forward", out, ref_out, no, 1e-5, 1e-5);

    float *dinp = alloc_floats(ni), *dw = alloc_floats(nw), *db = alloc_floats(OC);
    linear_backward(dinp, dw, with_bias ? db : NULL, r, inp, w, N, IC, OC);

    double *num = alloc_doubles(ni > nw ? ni : nw);
    numeric_grad(num, dinp_ref, ni, step, linear_ref_loss, &c);
    check_grad("linear dinp", dinp, num, ni, step);
    numeric_grad(num, dw_ref, nw, step, linear_ref_loss, &c);
    check_grad("linear dw", dw, num, nw, step);
    if (with_bias) {
        numeric_grad(num, db_ref, OC, 1, linear_ref_loss, &c);
        check_grad("linear db", db, num, OC, 1);
    } else {
        for (int o = 0; o < OC; o++) assert_true(db[o] == 0.0f);
    }
    free(inp); free(w); free(b); free(out); free(r); free(dinp_ref); free(dw_ref);
    free(db_ref); free(ref_out); free(dinp); free(dw); free(db); free(num);
}

static void test_small_shapes(void **state) {
    (void)state;
    check_shape(5, 7, 6, 1, 1, 11);
    check_shape(5, 7, 6, 0, 1, 12);
    check_shape(1, 1, 1, 1, 1, 13);
    check_shape(3, 16, 1, 1, 1, 14);
}

/* Large enough for the parallel bias-gradient path (several column bands). */
static void test_large_shape(void **state) {
    (void)state;
    check_shape(70, 12, 150, 1, 7, 21);
}

/* The few-row forward (generation: up to 4 input rows, no sgemm) against the double
 * reference: the serial and the parallel path, full bands of 8 weight rows and a
 * partial last band, with and without bias; and 5 rows, which go through sgemm again.
 * (Its backward is sgemm's, checked by the shapes above.) */
static void test_few_rows(void **state) {
    (void)state;
    const int shapes[][4] = {{1, 16, 8, 1}, {2, 13, 11, 0}, {4, 96, 77, 1}, {3, 100, 64, 0}, {5, 96, 77, 1}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int N = shapes[k][0], IC = shapes[k][1], OC = shapes[k][2], with_bias = shapes[k][3];
        sevo_rng rng;
        sevo_rng_seed(&rng, 31 + k, 1);
        const size_t ni = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
        float *inp = alloc_floats(ni), *w = alloc_floats(nw), *b = alloc_floats(OC), *out = alloc_floats(no);
        fill_normal(&rng, inp, ni, 1.0f);
        fill_normal(&rng, w, nw, 0.5f);
        fill_normal(&rng, b, OC, 0.5f);
        for (size_t i = 0; i < no; i++) out[i] = NAN;
        linear_forward(out, inp, w, with_bias ? b : NULL, N, IC, OC);
        double *dinp = to_double(inp, ni), *dw = to_double(w, nw), *db = to_double(b, OC), *ref = alloc_doubles(no);
        linear_ref c = {dinp, dw, with_bias ? db : NULL, NULL, ref, N, IC, OC};
        linear_ref_forward(&c);
        check_close("linear forward (few rows)", out, ref, no, 1e-5, 1e-5);
        free(inp); free(w); free(b); free(out); free(dinp); free(dw); free(db); free(ref);
    }
}

static void test_accumulate_and_null(void **state) {
    (void)state;
    const int N = 6, IC = 5, OC = 4;
    const size_t ni = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
    sevo_rng rng;
    sevo_rng_seed(&rng, 3, 1);
    float *inp = alloc_floats(ni), *w = alloc_floats(nw), *dout = alloc_floats(no);
    fill_normal(&rng, inp, ni, 1.0f);
    fill_normal(&rng, w, nw, 1.0f);
    fill_normal(&rng, dout, no, 1.0f);

    float *fi = alloc_floats(ni), *fw = alloc_floats(nw), *fb = alloc_floats(OC);
    linear_backward(fi, fw, fb, dout, inp, w, N, IC, OC);

    float *gi = alloc_floats(ni), *gw = alloc_floats(nw), *gb = alloc_floats(OC);
    fill_normal(&rng, gi, ni, 1.0f);
    fill_normal(&rng, gw, nw, 1.0f);
    fill_normal(&rng, gb, OC, 1.0f);
    float *bi = copy_floats(gi, ni), *bw = copy_floats(gw, nw), *bb = copy_floats(gb, OC);
    linear_backward(gi, gw, gb, dout, inp, w, N, IC, OC);
    linear_backward(gi, gw, gb, dout, inp, w, N, IC, OC);
    check_accumulated_twice("linear dinp", gi, bi, fi, ni);
    check_accumulated_twice("linear dw", gw, bw, fw, nw);
    check_accumulated_twice("linear db", gb, bb, fb, OC);

    /* Each gradient alone: the others are skipped and the one given is unchanged. */
    float *only = alloc_floats(ni > nw ? ni : nw);
    linear_backward(NULL, only, NULL, dout, inp, w, N, IC, OC);
    check_close_f("linear dw only", only, fw, nw, 0.0, 0.0);
    memset(only, 0, (ni > nw ? ni : nw) * sizeof(float));
    linear_backward(only, NULL, NULL, dout, inp, w, N, IC, OC);
    check_close_f("linear dinp only", only, fi, ni, 0.0, 0.0);
    memset(only, 0, (ni > nw ? ni : nw) * sizeof(float));
    linear_backward(NULL, NULL, only, dout, inp, w, N, IC, OC);
    check_close_f("linear db only", only, fb, OC, 0.0, 0.0);
    linear_backward(NULL, NULL, NULL, dout, inp, w, N, IC, OC);

    /* linear_backward_set overwrites dinp (poisoned with NaN here) and still adds into
     * dw and db: dinp is exactly the zero-started result, dw and db accumulated. */
    for (size_t i = 0; i < ni; i++) gi[i] = NAN;
    memcpy(gw, bw, nw * sizeof(float));
    memcpy(gb, bb, OC * sizeof(float));
    linear_backward_set(gi, gw, gb, dout, inp, w, N, IC, OC);
    check_close_f("linear_backward_set dinp", gi, fi, ni, 0.0, 0.0);
    linear_backward(NULL, gw, gb, dout, inp, w, N, IC, OC);
    check_accumulated_twice("linear_backward_set dw", gw, bw, fw, nw);
    check_accumulated_twice("linear_backward_set db", gb, bb, fb, OC);
    /* with no outputs (OC = 0) the product is empty and dinp is set to zero */
    for (size_t i = 0; i < ni; i++) gi[i] = NAN;
    linear_backward_set(gi, NULL, NULL, dout, inp, w, N, IC, 0);
    for (size_t i = 0; i < ni; i++) assert_true(gi[i] == 0.0f);

    free(inp); free(w); free(dout); free(fi); free(fw); free(fb); free(gi); free(gw);
    free(gb); free(bi); free(bw); free(bb); free(only);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_hand),
        cmocka_unit_test(test_small_shapes),
        cmocka_unit_test(test_large_shape),
        cmocka_unit_test(test_few_rows),
        cmocka_unit_test(test_accumulate_and_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
