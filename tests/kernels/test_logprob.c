/* test_logprob.c: token_logprob_forward against a hand case and a double reference
 * (skipped rows, aliasing probs with logits, huge logits), and the backward against
 * finite differences with accumulation. */
#include "kernel_test_util.h"

#include "kernels/kernels.h"

typedef struct {
    const double *logits;
    const int *targets;
    const float *r;
    double *logp;
    int N, V;
} logprob_ref;

static void logprob_ref_forward(logprob_ref *c) {
    for (int n = 0; n < c->N; n++) {
        const double *x = c->logits + (size_t)n * c->V;
        if (c->targets[n] < 0) {
            c->logp[n] = 0.0;
            continue;
        }
        double maxv = x[0], sum = 0.0;
        for (int j = 1; j < c->V; j++) maxv = fmax(maxv, x[j]);
        for (int j = 0; j < c->V; j++) sum += exp(x[j] - maxv);
        c->logp[n] = x[c->targets[n]] - maxv - log(sum);
    }
}

static double logprob_ref_loss(void *ctx) {
    logprob_ref *c = ctx;
    logprob_ref_forward(c);
    return dot_loss(c->logp, c->r, (size_t)c->N);
}

static void test_hand_case(void **state) {
    (void)state;
    /* Row 0: targets 2 of [1,2,3]; row 1 has no target and must be left alone. */
    const float logits[6] = {1.0f, 2.0f, 3.0f, 7.0f, 8.0f, 9.0f};
    const int targets[2] = {2, -1};
    float probs[6] = {-1, -1, -1, -1, -1, -1}, logp[2] = {NAN, NAN};
    token_logprob_forward(logp, probs, logits, targets, 2, 3);
    assert_float_equal(logp[0], -0.40760596f, 1e-6f);
    assert_float_equal(probs[0], 0.09003057f, 1e-7f);
    assert_float_equal(probs[1], 0.24472847f, 1e-7f);
    assert_float_equal(probs[2], 0.66524096f, 1e-7f);
    assert_true(logp[1] == 0.0f);
    for (int j = 3; j < 6; j++) assert_true(probs[j] == -1.0f);

    /* Same values in place (probs aliasing logits), and shifted by 1000 (no overflow). */
    float inplace[6] = {1001.0f, 1002.0f, 1003.0f, 7.0f, 8.0f, 9.0f};
    token_logprob_forward(logp, inplace, inplace, targets, 2, 3);
    assert_float_equal(logp[0], -0.40760596f, 1e-5f);
    assert_float_equal(inplace[2], 0.66524096f, 1e-6f);
    assert_true(inplace[3] == 7.0f && inplace[5] == 9.0f);

    /* Backward: row 0 gets dlogp * (onehot - probs), row 1 is skipped. */
    float dlogits[6] = {0, 0, 0, 5, 5, 5};
    const float dlogp[2] = {2.0f, 3.0f};
    token_logprob_backward(dlogits, probs, targets, dlogp, 2, 3);
    assert_float_equal(dlogits[0], -2.0f * 0.09003057f, 1e-6f);
    assert_float_equal(dlogits[1], -2.0f * 0.24472847f, 1e-6f);
    assert_float_equal(dlogits[2], 2.0f * (1.0f - 0.66524096f), 1e-6f);
    for (int j = 3; j < 6; j++) assert_true(dlogits[j] == 5.0f);
}

static void check_logprob(int N, int V, size_t step, uint64_t seed) {
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 8);
    const size_t nl = (size_t)N * V;
    float *logits = alloc_floats(nl), *probs = alloc_floats(nl), *logp = alloc_floats(N),
          *r = alloc_floats(N);
    int *targets = malloc((size_t)N * sizeof(int));
    assert_non_null(targets);
    fill_normal(&rng, logits, nl, 3.0f);
    fill_normal(&rng, r, N, 1.0f);
    for (int n = 0; n < N; n++) targets[n] = n % 3 == 1 ? -1 : (int)sevo_rng_below(&rng, (uint32_t)V);
    token_logprob_forward(logp, probs, logits, targets, N, V);

    double *ld = to_double(logits, nl), *ref = alloc_doubles(N);
    logprob_ref c = {ld, targets, r, ref, N, V};
    logprob_ref_forward(&c);
    check_close("logp", logp, ref, N, 1e-5, 1e-5);
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        double sum = 0.0;
        for (int j = 0; j < V; j++) sum += probs[(size_t)n * V + j];
        assert_true(fabs(sum - 1.0) < 1e-5);
        assert_float_equal(logf(probs[(size_t)n * V + targets[n]]), logp[n], 1e-4f);
    }

    float *dl = alloc_floats(nl);
    token_logprob_backward(dl, probs, targets, r, N, V);
    double *num = alloc_doubles(nl);
    numeric_grad(num, ld, nl, step, logprob_ref_loss, &c);
    check_grad("logprob dlogits", dl, num, nl, step);

    float *acc = alloc_floats(nl);
    fill_normal(&rng, acc, nl, 1.0f);
    float *before = copy_floats(acc, nl);
    token_logprob_backward(acc, probs, targets, r, N, V);
    token_logprob_backward(acc, probs, targets, r, N, V);
    check_accumulated_twice("logprob dlogits", acc, before, dl, nl);
    free(logits); free(probs); free(logp); free(r); free(targets); free(ld); free(ref);
    free(dl); free(num); free(acc); free(before);
}

static void test_against_reference(void **state) {
    (void)state;
    check_logprob(6, 11, 1, 1);
    check_logprob(1, 1, 1, 2);
    check_logprob(9, 700, 17, 3); /* parallel path, sampled */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_case),
        cmocka_unit_test(test_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
