/* test_trainer.c: the shared training loop's epoch order must be a deterministic
 * permutation cut into batches. (The loop itself runs under tests/train/test_sft.c and
 * tests/method/test_sr_dpo.c: resume, checkpoints, metrics.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "train/trainer.h"

static void test_epoch_order_is_a_deterministic_permutation(void **state) {
    (void)state;
    int o1[37], o2[37], b1[40], b2[40];
    int nb = epoch_order(37, 8, 5, 2, o1, b1);
    assert_int_equal(nb, 5);
    assert_int_equal(epoch_num_batches(37, 8), 5);
    assert_int_equal(epoch_order(37, 8, 5, 2, o2, b2), nb);
    assert_memory_equal(o1, o2, sizeof o1);
    int seen[37] = {0};
    for (int i = 0; i < 37; i++) seen[o1[i]]++;
    for (int i = 0; i < 37; i++) assert_int_equal(seen[i], 1);
    for (int b = 0; b < nb; b++) assert_int_equal(b1[b], 8 * b);
    assert_int_equal(b1[nb], 37);
    epoch_order(37, 8, 5, 3, o2, b2);
    assert_true(memcmp(o1, o2, sizeof o1) != 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoch_order_is_a_deterministic_permutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
