/* test_optim.c: gradient-norm clipping by hand (grad_global_norm, grad_clip_scale) and
 * the learning-rate schedule's fixed points (lr_at). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "model/vlm.h"
#include "train/optim.h"

static void test_clipping_by_hand(void **state) {
    (void)state;
    vlm_config c;
    vlm_config_tiny(&c, 16);
    c.bos_token_id = c.eos_token_id = c.pad_token_id = c.image_token_id = 1;
    vlm *m = NULL;
    sevo_error err;
    assert_int_equal(vlm_create(&m, &c, &err), 0);
    vlm_zero_grads(m);
    assert_true(grad_global_norm(m) == 0.0f);
    /* a 3-4-5 triangle across the first and the last tensor */
    float *g = vlm_grads(m);
    const vlm_tensor *last = vlm_tensor_at(m, vlm_num_tensors(m) - 1);
    g[0] = 3.0f;
    g[last->offset + last->numel - 1] = -4.0f;
    assert_true(grad_global_norm(m) == 5.0f);
    assert_true(grad_clip_scale(5.0f, 1.0f) == 1.0f / (5.0f + 1e-6f));
    assert_true(grad_clip_scale(5.0f, 5.0f) == 1.0f);  /* not larger: untouched */
    assert_true(grad_clip_scale(0.5f, 1.0f) == 1.0f);
    assert_true(grad_clip_scale(5.0f, 0.0f) == 1.0f);  /* clipping off */
    /* the gradients themselves stay as they were */
    assert_true(g[0] == 3.0f);
    vlm_free(m);
}

static void test_schedule_fixed_points(void **state) {
    (void)state;
    /* warmup 4 to peak 1: 1/4, 2/4, 3/4, 1; then cosine from 1 to 0 over 10 steps */
    assert_true(lr_at(0, 14, 4, 1.0f) == 0.25f);
    assert_true(lr_at(3, 14, 4, 1.0f) == 1.0f);
    assert_true(lr_at(4, 14, 4, 1.0f) == 1.0f);
    assert_float_equal(lr_at(9, 14, 4, 1.0f), 0.5f, 1e-6f);
    assert_float_equal(lr_at(14, 14, 4, 1.0f), 0.0f, 1e-6f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clipping_by_hand),
        cmocka_unit_test(test_schedule_fixed_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
