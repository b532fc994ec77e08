/* test_parallel.c: every kernel gives the same bits split across threads as run on one.
 *
 * KERNEL_PARALLEL (src/kernels/parallel.h) compiles each loop twice: once split across a
 * parallel region, once called directly when the loop is small or already inside a
 * region (generation runs one sample per thread). The two copies are vectorised
 * separately, so nothing but a test says they round alike. Each case here runs a kernel
 * on inputs large enough to split (tests run on 2 threads), then again from inside a
 * parallel region, where it runs directly, and compares the outputs bit for bit. */
#include <omp.h>

#include "kernel_test_util.h"
#include "kernels/kernels.h"

/* Runs the call at the top level and then from inside a parallel region (one thread calls
 * it), each time starting from the same contents of the nfl floats at out, and checks
 * that both leave the same bits there. */
#define ASSERT_SAME_BITS(out, nfl, ...)                                        \
    do {                                                                        \
        const size_t n_ = (size_t)(nfl);                                        \
        float *init_ = malloc(n_ * sizeof(float)), *top_ = malloc(n_ * sizeof(float)); \
        assert_non_null(init_);                                                 \
        assert_non_null(top_);                                                  \
        memcpy(init_, (out), n_ * sizeof(float));                               \
        __VA_ARGS__;                                                            \
        memcpy(top_, (out), n_ * sizeof(float));                                \
        memcpy((out), init_, n_ * sizeof(float));                               \
        _Pragma("omp parallel num_threads(2)")                                  \
        {                                                                       \
            _Pragma("omp single") { __VA_ARGS__; }                              \
        }                                                                       \
        assert_memory_equal(top_, (out), n_ * sizeof(float));                   \
        free(init_);                                                            \
        free(top_);                                                             \
    } while (0)

enum { N = 64, C = 128, F = 320, V = 96, H = 4, KVH = 2, HD = 32, T = 64, B = 2 };

static float *randn(sevo_rng *rng, size_t n) {
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    fill_normal(rng, x, n, 1.0f);
    return x;
}

static void test_norms_and_activations(void **state) {
    (void)state;
    assert_true(omp_get_max_threads() >= 2);
    sevo_rng rng;
    sevo_rng_seed(&rng, 5, 1);
    float *x = randn(&rng, (size_t)N * F), *g = randn(&rng, (size_t)N * F), *w = randn(&rng, C),
          *b = randn(&rng, C), *up = randn(&rng, (size_t)N * F);
    /* out: y [N*C], mean [N], rstd [N], dx [N*C], dw [C], db [C] */
    float *o = randn(&rng, (size_t)N * C * 2 + 2 * N + 2 * C);
    float *y = o, *mean = y + N * C, *rstd = mean + N, *dx = rstd + N, *dw = dx + N * C, *db = dw + C;
    ASSERT_SAME_BITS(o, N * C + 2 * N, layernorm_forward(y, mean, rstd, x, w, b, N, C, 1e-5f));
    ASSERT_SAME_BITS(o, N * C + 2 * N, rmsnorm_forward(y, rstd, x, w, N, C, 1e-5f));
    layernorm_forward(y, mean, rstd, x, w, b, N, C, 1e-5f);
    ASSERT_SAME_BITS(dx, N * C + 2 * C, layernorm_backward(dx, dw, db, g, x, w, mean, rstd, N, C));
    ASSERT_SAME_BITS(dx, N * C + 2 * C, rmsnorm_backward(dx, dw, g, x, w, rstd, N, C));

    float *a = randn(&rng, (size_t)N * F * 2), *da = a + N * F;
    ASSERT_SAME_BITS(a, N * F, gelu_forward(a, x, (size_t)N * F, 1));
    ASSERT_SAME_BITS(a, N * F, gelu_forward(a, x, (size_t)N * F, 0));
    ASSERT_SAME_BITS(a, N * F, gelu_backward(a, x, g, (size_t)N * F, 1));
    ASSERT_SAME_BITS(a, N * F, gelu_backward(a, x, g, (size_t)N * F, 0));
    ASSERT_SAME_BITS(a, N * F, silu_forward(a, x, (size_t)N * F));
    ASSERT_SAME_BITS(a, N * F, silu_backward(a, x, g, (size_t)N * F));
    ASSERT_SAME_BITS(a, N * F, swiglu_forward(a, x, up, (size_t)N * F));
    ASSERT_SAME_BITS(a, 2 * N * F, swiglu_backward(a, da, g, x, up, (size_t)N * F));
    ASSERT_SAME_BITS(a, N * F, add_inplace(a, x, (size_t)N * F));
    free(x), free(g), free(w), free(b), free(up), free(o), free(a);
}

static void test_linear_rope_logprob_embedding_adamw(void **state) {
    (void)state;
    sevo_rng rng;
    sevo_rng_seed(&rng, 6, 1);
    float *x = randn(&rng, (size_t)N * F), *w = randn(&rng, (size_t)F * C), *bias = randn(&rng, F);
    float *o = randn(&rng, (size_t)N * F);
    ASSERT_SAME_BITS(o, 3 * F, linear_forward(o, x, w, bias, 3, C, F)); /* the few-row path */
    ASSERT_SAME_BITS(o, N * F, linear_forward(o, x, w, bias, N, C, F));
    float *grads = randn(&rng, (size_t)F * C + F);
    ASSERT_SAME_BITS(grads, F * C + F, linear_backward(NULL, grads, grads + F * C, o, x, w, N, C, F));

    float cos_tab[T * HD / 2], sin_tab[T * HD / 2];
    int pos[N];
    rope_table_init(cos_tab, sin_tab, T, HD, 10000.0f);
    for (int i = 0; i < N; i++) pos[i] = (i * 7) % T;
    ASSERT_SAME_BITS(o, N * H * HD, rope_forward(o, cos_tab, sin_tab, pos, N, H, HD));

    int targets[N], ids[N];
    for (int i = 0; i < N; i++) targets[i] = i % 5 == 0 ? -1 : (i * 13) % V, ids[i] = (i * 11) % V;
    float *lp = randn(&rng, (size_t)N + (size_t)N * V), *dlog = randn(&rng, (size_t)N * V);
    float *logits = randn(&rng, (size_t)N * V);
    ASSERT_SAME_BITS(lp, N + N * V, token_logprob_forward(lp, lp + N, logits, targets, N, V));
    ASSERT_SAME_BITS(dlog, N * V, token_logprob_backward(dlog, lp + N, targets, lp, N, V));

    float *wte = randn(&rng, (size_t)V * C);
    ASSERT_SAME_BITS(o, N * C, embedding_forward(o, ids, wte, N, C));
    ASSERT_SAME_BITS(wte, V * C, embedding_backward(wte, x, ids, N, C));

    const size_t np = (size_t)F * C;
    float *adam = randn(&rng, 3 * np);
    for (size_t i = 2 * np; i < 3 * np; i++) adam[i] = fabsf(adam[i]);
    ASSERT_SAME_BITS(adam, 3 * np, adamw_update(adam, w, 0.5f, adam + np, adam + 2 * np, np, 1e-3f, 0.9f,
                                                0.999f, 1e-8f, 0.01f, 3));
    free(x), free(w), free(bias), free(o), free(grads), free(lp), free(dlog), free(logits), free(wte),
        free(adam);
}

static void test_attention(void **state) {
    (void)state;
    sevo_rng rng;
    sevo_rng_seed(&rng, 7, 1);
    const size_t nq = (size_t)B * T * H * HD, nk = (size_t)B * T * KVH * HD;
    float *q = randn(&rng, nq), *k = randn(&rng, nk), *v = randn(&rng, nk), *dout = randn(&rng, nq);
    float *att = randn(&rng, (size_t)B * H * T * T), *out = randn(&rng, nq);
    /* forward writes out and att: check both */
    float *fo = randn(&rng, nq + (size_t)B * H * T * T);
    ASSERT_SAME_BITS(fo, nq + (size_t)B * H * T * T,
                     attention_forward(fo, fo + nq, q, k, v, B, T, H, KVH, HD, 1, NULL));
    attention_forward(out, att, q, k, v, B, T, H, KVH, HD, 1, NULL);
    float *gr = randn(&rng, nq + 2 * nk);
    float *scratch = malloc(attention_backward_scratch_floats(T) * sizeof(float));
    assert_non_null(scratch);
    ASSERT_SAME_BITS(gr, nq + 2 * nk, attention_backward(gr, gr + nq, gr + nq + nk, dout, att, q, k, v, B, T,
                                                          H, KVH, HD, 1, NULL, scratch));
    /* cached: 40 new rows against a cache of T rows (the first sequence's keys) */
    float *cs = malloc((size_t)omp_get_max_threads() * T * sizeof(float));
    assert_non_null(cs);
    const int Tq = 40;
    ASSERT_SAME_BITS(out, Tq * H * HD, attention_cached_forward(out, q, k, v, Tq, T, H, KVH, HD, cs));
    free(q), free(k), free(v), free(dout), free(att), free(out), free(fo), free(gr), free(scratch), free(cs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norms_and_activations),
        cmocka_unit_test(test_linear_rope_logprob_embedding_adamw),
        cmocka_unit_test(test_attention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
