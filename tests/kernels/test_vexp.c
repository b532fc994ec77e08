/* test_vexp.c: the vectorisable exp against libm's expf: within 2 ulp-scale relative
 * error over [-87, 88], exact at 0, monotone, clamped (finite, positive) far outside,
 * and NaN in, NaN out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "kernels/vexp.h"

static void test_matches_expf(void **state) {
    (void)state;
    double worst = 0, worst_x = 0;
    float prev = 0.0f;
    for (int i = 0; i <= 2000000; i++) {
        const float x = -87.0f + 175.0f * (float)i / 2000000.0f; /* up to 88 */
        const float got = vexpf(x), want = expf(x);
        const double rel = fabs((double)got - want) / want;
        if (rel > worst) {
            worst = rel;
            worst_x = x;
        }
        assert_true(got >= prev); /* monotone */
        prev = got;
    }
    printf("worst relative error %.3g at x = %g\n", worst, worst_x);
    assert_true(worst < 2.5e-7);
    assert_true(vexpf(0.0f) == 1.0f);
}

static void test_clamped_outside_the_range(void **state) {
    (void)state;
    const float lo[] = {-88.0f, -100.0f, -1e30f, -INFINITY};
    for (int i = 0; i < 4; i++) {
        const float v = vexpf(lo[i]);
        assert_true(v > 0.0f && v < 1e-37f);
    }
    assert_true(isnan(vexpf(NAN)));
    const float hi[] = {88.5f, 89.0f, 1e30f, INFINITY};
    for (int i = 0; i < 4; i++) {
        const float v = vexpf(hi[i]);
        assert_true(isfinite(v) && v > 1e38f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_expf),
        cmocka_unit_test(test_clamped_outside_the_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
