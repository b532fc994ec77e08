/* test_rope.c: RoPE tables, identity at position 0, norm preservation, the HF
 * rotate_half formula in double, and the backward (inverse rotation) against finite
 * differences. */
#include "kernel_test_util.h"

#include "kernels/kernels.h"

/* Double reference of HF's apply_rotary_pos_emb: x*cos + rotate_half(x)*sin, where
 * rotate_half(x) = [-x2, x1] and cos/sin repeat the hd/2 frequencies twice. */
typedef struct {
    const double *x;
    const int *pos;
    const float *r;
    double *out;
    int N, H, hd;
    double theta;
} rope_ref;

static void rope_ref_forward(rope_ref *c) {
    const int half = c->hd / 2;
    for (int n = 0; n < c->N; n++)
        for (int h = 0; h < c->H; h++) {
            const double *x = c->x + ((size_t)n * c->H + h) * c->hd;
            double *y = c->out + ((size_t)n * c->H + h) * c->hd;
            for (int d = 0; d < c->hd; d++) {
                const int i = d % half;
                const double angle = c->pos[n] * pow(c->theta, -2.0 * i / c->hd);
                const double rot = d < half ? -x[d + half] : x[d - half];
                y[d] = x[d] * cos(angle) + rot * sin(angle);
            }
        }
}

static double rope_ref_loss(void *ctx) {
    rope_ref *c = ctx;
    rope_ref_forward(c);
    return dot_loss(c->out, c->r, (size_t)c->N * c->H * c->hd);
}

static void test_tables(void **state) {
    (void)state;
    float cs[3 * 2], sn[3 * 2];
    rope_table_init(cs, sn, 3, 4, 10000.0f);
    /* pos 0: no rotation. i = 0: frequency 1; i = 1: frequency 10000^(-1/2) = 0.01. */
    assert_true(cs[0] == 1.0f && cs[1] == 1.0f && sn[0] == 0.0f && sn[1] == 0.0f);
    assert_float_equal(cs[2], 0.5403023f, 1e-7f);
    assert_float_equal(sn[2], 0.8414710f, 1e-7f);
    assert_float_equal(cs[3], 0.99995000f, 1e-7f);
    assert_float_equal(sn[3], 0.00999983f, 1e-7f);
    assert_float_equal(cs[4], -0.4161468f, 1e-7f); /* cos(2) */
}

static void test_hand_and_identity(void **state) {
    (void)state;
    float cs[4 * 2], sn[4 * 2];
    rope_table_init(cs, sn, 4, 4, 10000.0f);
    /* One head of 4: pairs (x0, x2) and (x1, x3). */
    float x[4] = {1.0f, 0.0f, 0.0f, 2.0f};
    const int pos1[1] = {1};
    rope_forward(x, cs, sn, pos1, 1, 1, 4);
    assert_float_equal(x[0], 0.5403023f, 1e-6f);  /* cos 1 */
    assert_float_equal(x[2], 0.8414710f, 1e-6f);  /* sin 1 */
    assert_float_equal(x[1], -2.0f * 0.00999983f, 1e-6f);
    assert_float_equal(x[3], 2.0f * 0.99995000f, 1e-6f);

    sevo_rng rng;
    sevo_rng_seed(&rng, 1, 6);
    const int N = 3, H = 2, hd = 8;
    float *tc = alloc_floats(16 * hd / 2), *ts = alloc_floats(16 * hd / 2);
    rope_table_init(tc, ts, 16, hd, 10000.0f);
    float *v = alloc_floats((size_t)N * H * hd);
    fill_normal(&rng, v, (size_t)N * H * hd, 1.0f);
    float *orig = copy_floats(v, (size_t)N * H * hd);
    const int zeros[3] = {0, 0, 0};
    rope_forward(v, tc, ts, zeros, N, H, hd);
    assert_memory_equal(v, orig, (size_t)N * H * hd * sizeof(float));
    const int pos[3] = {5, 0, 15};
    rope_forward(v, tc, ts, pos, N, H, hd);
    /* Each rotated pair keeps its length. */
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < hd / 2; i++) {
                const size_t a = ((size_t)n * H + h) * hd + i, b = a + hd / 2;
                const double before = hypot(orig[a], orig[b]), after = hypot(v[a], v[b]);
                assert_true(fabs(before - after) <= 1e-6 * (1.0 + before));
            }
    /* Backward applied to the rotated values undoes the rotation. */
    rope_backward(v, tc, ts, pos, N, H, hd);
    check_close_f("rope inverse", v, orig, (size_t)N * H * hd, 1e-6, 1e-6);
    free(tc); free(ts); free(v); free(orig);
}

static void check_rope(int N, int H, int hd, int max_pos, float theta, size_t step, uint64_t seed) {
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 6);
    const size_t nx = (size_t)N * H * hd;
    float *tc = alloc_floats((size_t)max_pos * hd / 2), *ts = alloc_floats((size_t)max_pos * hd / 2);
    rope_table_init(tc, ts, max_pos, hd, theta);
    int *pos = malloc((size_t)N * sizeof(int));
    assert_non_null(pos);
    for (int n = 0; n < N; n++) pos[n] = (int)sevo_rng_below(&rng, (uint32_t)max_pos);
    float *x = alloc_floats(nx), *r = alloc_floats(nx);
    fill_normal(&rng, x, nx, 1.0f);
    fill_normal(&rng, r, nx, 1.0f);
    double *xd = to_double(x, nx), *ref = alloc_doubles(nx);
    rope_ref c = {xd, pos, r, ref, N, H, hd, theta};
    rope_ref_forward(&c);
    rope_forward(x, tc, ts, pos, N, H, hd);
    check_close("rope forward", x, ref, nx, 2e-6, 2e-6);

    /* dL/dx for L = sum rope(x) * r is rope_backward applied to r (in place). */
    float *dx = copy_floats(r, nx);
    rope_backward(dx, tc, ts, pos, N, H, hd);
    double *num = alloc_doubles(nx);
    numeric_grad(num, xd, nx, step, rope_ref_loss, &c);
    check_grad("rope dx", dx, num, nx, step);
    free(tc); free(ts); free(pos); free(x); free(r); free(xd); free(ref); free(dx); free(num);
}

static void test_against_reference(void **state) {
    (void)state;
    check_rope(5, 3, 8, 32, 10000.0f, 1, 1);
    check_rope(4, 2, 64, 200, 1000000.0f, 1, 2);
    check_rope(40, 4, 32, 160, 10000.0f, 13, 3); /* parallel path */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_hand_and_identity),
        cmocka_unit_test(test_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
