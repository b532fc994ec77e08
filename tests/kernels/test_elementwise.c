/* test_elementwise.c: add_forward, add_inplace and sum_squares on small
 * and large (parallel) inputs, including sum_squares' independence of the thread count. */
#include "kernel_test_util.h"

#include <omp.h>

#include "kernels/kernels.h"

static void test_small(void **state) {
    (void)state;
    const float a[3] = {1.0f, -2.0f, 3.5f}, b[3] = {0.5f, 2.0f, -1.0f};
    float out[3], acc[3] = {1.0f, 1.0f, 1.0f};
    add_forward(out, a, b, 3);
    assert_true(out[0] == 1.5f && out[1] == 0.0f && out[2] == 2.5f);
    add_inplace(acc, a, 3);
    assert_true(acc[0] == 2.0f && acc[1] == -1.0f && acc[2] == 4.5f);
    assert_true(sum_squares(a, 3) == 1.0 + 4.0 + 12.25);
    assert_true(sum_squares(a, 0) == 0.0);
}

static void test_large(void **state) {
    (void)state;
    const size_t n = 100003; /* not a multiple of the chunk count */
    sevo_rng rng;
    sevo_rng_seed(&rng, 1, 4);
    float *a = alloc_floats(n), *b = alloc_floats(n), *out = alloc_floats(n);
    fill_normal(&rng, a, n, 1.0f);
    fill_normal(&rng, b, n, 1.0f);
    add_forward(out, a, b, n);
    for (size_t i = 0; i < n; i++) assert_true(out[i] == a[i] + b[i]);
    add_inplace(out, a, n);
    for (size_t i = 0; i < n; i++) assert_true(out[i] == (a[i] + b[i]) + a[i]);

    double want = 0.0;
    for (size_t i = 0; i < n; i++) want += (double)a[i] * a[i];
    const double got = sum_squares(a, n);
    assert_true(fabs(got - want) <= 1e-12 * want);
    /* Bitwise identical on one thread and on several. */
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const double one = sum_squares(a, n);
    omp_set_num_threads(3);
    const double three = sum_squares(a, n);
    omp_set_num_threads(saved);
    assert_true(one == got && three == got);
    free(a); free(b); free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small),
        cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
