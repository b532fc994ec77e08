/* test_embedding.c: embedding lookup and its scatter-add backward (repeated ids,
 * accumulation, determinism across thread counts). */
#include "kernel_test_util.h"

#include <omp.h>

#include "kernels/kernels.h"

static void test_forward(void **state) {
    (void)state;
    const float wte[3 * 2] = {1, 2, 3, 4, 5, 6};
    const int ids[4] = {2, 0, 2, 1};
    float out[4 * 2];
    embedding_forward(out, ids, wte, 4, 2);
    const float want[8] = {5, 6, 1, 2, 5, 6, 3, 4};
    for (int i = 0; i < 8; i++) assert_true(out[i] == want[i]);
}

/* Backward against a serial double scatter-add, then accumulation (two calls on a
 * pre-filled gradient) and bitwise equality between 1 and 2 threads. */
static void check_backward(int N, int C, int V, uint64_t seed) {
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 5);
    int *ids = malloc((size_t)N * sizeof(int));
    assert_non_null(ids);
    /* Few distinct ids so most rows collide. */
    for (int n = 0; n < N; n++) ids[n] = (int)sevo_rng_below(&rng, (uint32_t)V);
    const size_t nd = (size_t)N * C, nw = (size_t)V * C;
    float *dout = alloc_floats(nd), *dwte = alloc_floats(nw);
    fill_normal(&rng, dout, nd, 1.0f);
    embedding_backward(dwte, dout, ids, N, C);
    double *want = alloc_doubles(nw);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) want[(size_t)ids[n] * C + c] += dout[(size_t)n * C + c];
    check_close("embedding dwte", dwte, want, nw, 1e-5, 1e-5);

    float *acc = alloc_floats(nw);
    fill_normal(&rng, acc, nw, 1.0f);
    float *before = copy_floats(acc, nw);
    embedding_backward(acc, dout, ids, N, C);
    embedding_backward(acc, dout, ids, N, C);
    check_accumulated_twice("embedding dwte", acc, before, dwte, nw);

    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    float *serial = alloc_floats(nw);
    embedding_backward(serial, dout, ids, N, C);
    omp_set_num_threads(saved);
    assert_memory_equal(serial, dwte, nw * sizeof(float));
    embedding_backward(NULL, dout, ids, N, C); /* no gradient wanted: a no-op */
    free(ids); free(dout); free(dwte); free(want); free(acc); free(before); free(serial);
}

static void test_backward(void **state) {
    (void)state;
    check_backward(7, 5, 3, 1);
    check_backward(300, 130, 17, 2); /* parallel path, several column bands */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_backward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
