/* test_activation.c: GELU (erf and tanh forms) and SwiGLU forward against hand values
 * and a double reference, backward against finite differences, accumulation, NULL
 * skipping, and finite outputs for extreme inputs. */
#include "kernel_test_util.h"

#include "kernels/kernels.h"

typedef struct {
    const double *x, *up; /* up NULL: GELU of x; else swiglu(gate = x, up) */
    const float *r;
    double *out;
    size_t n;
    int tanh_approx;
} act_ref;

static double gelu_ref(double x, int tanh_approx) {
    if (tanh_approx)
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

static void act_ref_forward(act_ref *c) {
    for (size_t i = 0; i < c->n; i++) {
        const double x = c->x[i];
        c->out[i] = c->up ? x / (1.0 + exp(-x)) * c->up[i] : gelu_ref(x, c->tanh_approx);
    }
}

static double act_ref_loss(void *ctx) {
    act_ref *c = ctx;
    act_ref_forward(c);
    return dot_loss(c->out, c->r, c->n);
}

static void test_hand_values(void **state) {
    (void)state;
    const float x[3] = {0.0f, 1.0f, -1.0f};
    float y[3];
    gelu_forward(y, x, 3, 0);
    assert_true(y[0] == 0.0f);
    assert_float_equal(y[1], 0.8413447f, 1e-6f);
    assert_float_equal(y[2], -0.1586553f, 1e-6f);
    gelu_forward(y, x, 3, 1);
    assert_true(y[0] == 0.0f);
    assert_float_equal(y[1], 0.8411920f, 1e-6f);
    const float g[2] = {1.0f, 0.0f}, up[2] = {2.0f, 3.0f};
    swiglu_forward(y, g, up, 2);
    assert_float_equal(y[0], 1.4621172f, 1e-6f); /* silu(1) * 2 */
    assert_true(y[1] == 0.0f);
}

static void test_extremes_are_finite(void **state) {
    (void)state;
    const float x[6] = {-100.0f, -30.0f, -10.0f, 10.0f, 30.0f, 100.0f};
    const float up[6] = {1, 1, 1, 1, 1, 1};
    const float ones[6] = {1, 1, 1, 1, 1, 1};
    float y[6], dx[6], du[6];
    for (int t = 0; t <= 1; t++) {
        gelu_forward(y, x, 6, t);
        memset(dx, 0, sizeof dx);
        gelu_backward(dx, x, ones, 6, t);
        for (int i = 0; i < 6; i++) assert_true(isfinite(y[i]) && isfinite(dx[i]));
        assert_float_equal(y[5], 100.0f, 1e-4f);
        assert_float_equal(y[0], 0.0f, 1e-6f);
        assert_float_equal(dx[5], 1.0f, 1e-6f);
        assert_float_equal(dx[0], 0.0f, 1e-6f);
    }
    swiglu_forward(y, x, up, 6);
    memset(dx, 0, sizeof dx);
    memset(du, 0, sizeof du);
    swiglu_backward(dx, du, ones, x, up, 6);
    for (int i = 0; i < 6; i++) assert_true(isfinite(y[i]) && isfinite(dx[i]) && isfinite(du[i]));
    assert_float_equal(y[5], 100.0f, 1e-4f);
    assert_float_equal(y[0], 0.0f, 1e-6f);
}

/* Forward vs reference and backward vs finite differences for one activation.
 * kind: 0 gelu erf, 1 gelu tanh, 2 swiglu. */
static void check_activation(int kind, size_t n, size_t step, uint64_t seed) {
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 3);
    float *x = alloc_floats(n), *up = alloc_floats(n), *r = alloc_floats(n), *y = alloc_floats(n);
    fill_normal(&rng, x, n, 2.0f);
    fill_normal(&rng, up, n, 1.0f);
    fill_normal(&rng, r, n, 1.0f);
    for (size_t i = 0; i < n; i++) y[i] = NAN;
    double *xd = to_double(x, n), *ud = to_double(up, n), *ref = alloc_doubles(n);
    act_ref c = {xd, kind == 2 ? ud : NULL, r, ref, n, kind == 1};
    act_ref_forward(&c);
    float *dx = alloc_floats(n), *du = alloc_floats(n);
    if (kind == 2) {
        swiglu_forward(y, x, up, n);
        swiglu_backward(dx, du, r, x, up, n);
    } else {
        gelu_forward(y, x, n, kind);
        gelu_backward(dx, x, r, n, kind);
    }
    check_close("activation forward", y, ref, n, 1e-6, 1e-5);
    double *num = alloc_doubles(n);
    numeric_grad(num, xd, n, step, act_ref_loss, &c);
    check_grad(kind == 2 ? "swiglu dgate" : "gelu dinp", dx, num, n, step);
    if (kind == 2) {
        numeric_grad(num, ud, n, step, act_ref_loss, &c);
        check_grad("swiglu dup", du, num, n, step);
    }
    free(x); free(up); free(r); free(y); free(xd); free(ud); free(ref); free(dx); free(du);
    free(num);
}

static void test_gradients(void **state) {
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        check_activation(kind, 50, 1, 10 + kind);
        check_activation(kind, 5000, 97, 20 + kind); /* parallel path, sampled */
    }
}

static void test_accumulate_and_null(void **state) {
    (void)state;
    const size_t n = 33;
    sevo_rng rng;
    sevo_rng_seed(&rng, 5, 3);
    float *x = alloc_floats(n), *up = alloc_floats(n), *dout = alloc_floats(n);
    fill_normal(&rng, x, n, 1.5f);
    fill_normal(&rng, up, n, 1.0f);
    fill_normal(&rng, dout, n, 1.0f);
    float *f1 = alloc_floats(n), *f2 = alloc_floats(n), *g1 = alloc_floats(n), *g2 = alloc_floats(n);
    fill_normal(&rng, g1, n, 1.0f);
    fill_normal(&rng, g2, n, 1.0f);
    float *b1 = copy_floats(g1, n), *b2 = copy_floats(g2, n);

    for (int t = 0; t <= 1; t++) {
        memset(f1, 0, n * sizeof(float));
        memcpy(g1, b1, n * sizeof(float));
        gelu_backward(f1, x, dout, n, t);
        gelu_backward(g1, x, dout, n, t);
        gelu_backward(g1, x, dout, n, t);
        check_accumulated_twice("gelu dinp", g1, b1, f1, n);
    }

    memset(f1, 0, n * sizeof(float));
    memcpy(g1, b1, n * sizeof(float));
    swiglu_backward(f1, f2, dout, x, up, n);
    swiglu_backward(g1, g2, dout, x, up, n);
    swiglu_backward(g1, g2, dout, x, up, n);
    check_accumulated_twice("swiglu dgate", g1, b1, f1, n);
    check_accumulated_twice("swiglu dup", g2, b2, f2, n);

    memset(g1, 0, n * sizeof(float));
    swiglu_backward(g1, NULL, dout, x, up, n);
    check_close_f("swiglu dgate only", g1, f1, n, 0.0, 0.0);
    memset(g2, 0, n * sizeof(float));
    swiglu_backward(NULL, g2, dout, x, up, n);
    check_close_f("swiglu dup only", g2, f2, n, 0.0, 0.0);
    /* swiglu_backward_set overwrites both (poisoned with NaN here) */
    for (size_t i = 0; i < n; i++) g1[i] = g2[i] = NAN;
    swiglu_backward_set(g1, g2, dout, x, up, n);
    check_close_f("swiglu_backward_set dgate", g1, f1, n, 0.0, 0.0);
    check_close_f("swiglu_backward_set dup", g2, f2, n, 0.0, 0.0);
    free(x); free(up); free(dout); free(f1); free(f2); free(g1); free(g2); free(b1); free(b2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_values),
        cmocka_unit_test(test_extremes_are_finite),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_accumulate_and_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
