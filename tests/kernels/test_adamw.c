/* test_adamw.c: one AdamW step against a hand computation, several steps against a
 * double reference of torch.optim.AdamW, and the pure weight-decay case. */
#include "kernel_test_util.h"

#include "kernels/kernels.h"

static void test_one_step_by_hand(void **state) {
    (void)state;
    /* p=1, g=0.5, lr=0.1, wd=0.01: decay gives 0.999; m=0.05, v=0.00025; the bias
     * corrections give mhat=0.5, vhat=0.25, so the step is 0.1*0.5/(0.5+1e-8). */
    float p = 1.0f, m = 0.0f, v = 0.0f;
    const float g = 0.5f;
    adamw_update(&p, &g, 1.0f, &m, &v, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1);
    /* 1 - 0.9f and 1 - 0.999f are not exact in float: a few 1e-8 of slack. */
    assert_float_equal(m, 0.05f, 1e-7f);
    assert_float_equal(v, 0.00025f, 5e-8f);
    assert_float_equal(p, 0.899f, 1e-6f);
}

static void test_weight_decay_only(void **state) {
    (void)state;
    /* Zero gradient: the Adam step is 0, only the decoupled decay acts. */
    float p[2] = {2.0f, -4.0f}, m[2] = {0, 0}, v[2] = {0, 0};
    const float g[2] = {0, 0};
    adamw_update(p, g, 1.0f, m, v, 2, 0.5f, 0.9f, 0.999f, 1e-8f, 0.1f, 1);
    assert_float_equal(p[0], 2.0f * 0.95f, 1e-6f);
    assert_float_equal(p[1], -4.0f * 0.95f, 1e-6f);
}

static void test_against_reference(void **state) {
    (void)state;
    const size_t n = 5003; /* parallel path */
    const double lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    sevo_rng rng;
    sevo_rng_seed(&rng, 1, 9);
    float *p = alloc_floats(n), *g = alloc_floats(n), *m = alloc_floats(n), *v = alloc_floats(n);
    fill_normal(&rng, p, n, 1.0f);
    double *pd = to_double(p, n), *md = alloc_doubles(n), *vd = alloc_doubles(n);
    for (int t = 1; t <= 5; t++) {
        fill_normal(&rng, g, n, 0.1f);
        adamw_update(p, g, 1.0f, m, v, n, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, t);
        /* torch.optim.AdamW, written out in double with the same float hyperparameters. */
        const double fb1 = (float)b1, fb2 = (float)b2, flr = (float)lr;
        for (size_t i = 0; i < n; i++) {
            pd[i] *= 1.0 - flr * (float)wd;
            md[i] = fb1 * md[i] + (1.0 - fb1) * g[i];
            vd[i] = fb2 * vd[i] + (1.0 - fb2) * (double)g[i] * g[i];
            const double mhat = md[i] / (1.0 - pow(fb1, t)), vhat = vd[i] / (1.0 - pow(fb2, t));
            pd[i] -= flr * mhat / (sqrt(vhat) + (float)eps);
        }
    }
    check_close("adamw param", p, pd, n, 1e-6, 1e-5);
    check_close("adamw m", m, md, n, 1e-8, 1e-5);
    check_close("adamw v", v, vd, n, 1e-10, 1e-5);
    free(p); free(g); free(m); free(v); free(pd); free(md); free(vd);
}

/* A grad_scale s gives, to the bit, what the gradients scaled by s beforehand give (the
 * clipping pass it replaces). */
static void test_grad_scale_is_prescaling(void **state) {
    (void)state;
    const size_t n = 5003;
    const float s = 0.3712f;
    sevo_rng rng;
    sevo_rng_seed(&rng, 2, 9);
    float *p1 = alloc_floats(n), *p2 = alloc_floats(n), *g = alloc_floats(n), *gs = alloc_floats(n);
    float *m1 = alloc_floats(n), *v1 = alloc_floats(n), *m2 = alloc_floats(n), *v2 = alloc_floats(n);
    fill_normal(&rng, p1, n, 1.0f);
    memcpy(p2, p1, n * sizeof(float));
    for (int t = 1; t <= 3; t++) {
        fill_normal(&rng, g, n, 1.0f);
        for (size_t i = 0; i < n; i++) gs[i] = g[i] * s;
        adamw_update(p1, g, s, m1, v1, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t);
        adamw_update(p2, gs, 1.0f, m2, v2, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t);
    }
    assert_memory_equal(p1, p2, n * sizeof(float));
    assert_memory_equal(m1, m2, n * sizeof(float));
    assert_memory_equal(v1, v2, n * sizeof(float));
    /* and it is not a no-op */
    adamw_update(p1, g, 1.0f, m1, v1, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 4);
    adamw_update(p2, g, s, m2, v2, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 4);
    assert_true(memcmp(m1, m2, n * sizeof(float)) != 0);
    free(p1); free(p2); free(g); free(gs); free(m1); free(v1); free(m2); free(v2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_step_by_hand),
        cmocka_unit_test(test_grad_scale_is_prescaling),
        cmocka_unit_test(test_weight_decay_only),
        cmocka_unit_test(test_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
