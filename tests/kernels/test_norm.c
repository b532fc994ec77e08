/* test_norm.c: LayerNorm and RMSNorm forward against hand cases and a double reference,
 * backward against finite differences, accumulation and NULL skipping. */
#include "kernel_test_util.h"

#include "kernels/kernels.h"

typedef struct {
    const double *inp, *w, *b; /* b NULL: RMSNorm */
    const float *r;
    double *out;
    int N, C;
    double eps;
} norm_ref;

static void layernorm_ref(norm_ref *c) {
    for (int n = 0; n < c->N; n++) {
        const double *x = c->inp + (size_t)n * c->C;
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < c->C; i++) mean += x[i];
        mean /= c->C;
        for (int i = 0; i < c->C; i++) var += (x[i] - mean) * (x[i] - mean);
        var /= c->C;
        const double rstd = 1.0 / sqrt(var + c->eps);
        for (int i = 0; i < c->C; i++)
            c->out[(size_t)n * c->C + i] = (x[i] - mean) * rstd * c->w[i] + c->b[i];
    }
}

static void rmsnorm_ref(norm_ref *c) {
    for (int n = 0; n < c->N; n++) {
        const double *x = c->inp + (size_t)n * c->C;
        double ms = 0.0;
        for (int i = 0; i < c->C; i++) ms += x[i] * x[i];
        const double rstd = 1.0 / sqrt(ms / c->C + c->eps);
        for (int i = 0; i < c->C; i++) c->out[(size_t)n * c->C + i] = x[i] * rstd * c->w[i];
    }
}

static double layernorm_loss(void *ctx) {
    norm_ref *c = ctx;
    layernorm_ref(c);
    return dot_loss(c->out, c->r, (size_t)c->N * c->C);
}

static double rmsnorm_loss(void *ctx) {
    norm_ref *c = ctx;
    rmsnorm_ref(c);
    return dot_loss(c->out, c->r, (size_t)c->N * c->C);
}

static void test_hand_cases(void **state) {
    (void)state;
    const float x[3] = {1.0f, 2.0f, 3.0f}, ones[3] = {1, 1, 1}, zeros[3] = {0, 0, 0};
    float out[3], mean, rstd;
    rmsnorm_forward(out, &rstd, x, ones, 1, 3, 0.0f);
    assert_float_equal(rstd, 0.46291005f, 1e-6f); /* 1/sqrt(14/3) */
    assert_float_equal(out[0], 0.46291005f, 1e-6f);
    assert_float_equal(out[1], 0.92582010f, 1e-6f);
    assert_float_equal(out[2], 1.38873015f, 1e-6f);

    layernorm_forward(out, &mean, &rstd, x, ones, zeros, 1, 3, 0.0f);
    assert_float_equal(mean, 2.0f, 1e-6f);
    assert_float_equal(rstd, 1.22474487f, 1e-6f); /* 1/sqrt(2/3) */
    assert_float_equal(out[0], -1.22474487f, 1e-6f);
    assert_float_equal(out[1], 0.0f, 1e-6f);
    assert_float_equal(out[2], 1.22474487f, 1e-6f);

    /* A constant row: variance 0, eps keeps it finite and the output is the bias. */
    const float c4[4] = {5, 5, 5, 5}, w4[4] = {1, 2, 3, 4}, b4[4] = {0.5f, -0.5f, 1, 2};
    float o4[4];
    layernorm_forward(o4, &mean, &rstd, c4, w4, b4, 1, 4, 1e-5f);
    for (int i = 0; i < 4; i++) assert_float_equal(o4[i], b4[i], 1e-6f);
    /* Large offset: the two-pass variance keeps full precision. */
    const float big[3] = {10001.0f, 10002.0f, 10003.0f};
    layernorm_forward(out, &mean, &rstd, big, ones, zeros, 1, 3, 0.0f);
    assert_float_equal(rstd, 1.22474487f, 1e-5f);
    assert_float_equal(out[2], 1.22474487f, 1e-5f);
}

static void check_norm(int is_layernorm, int N, int C, size_t step, uint64_t seed) {
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 2);
    const size_t nx = (size_t)N * C;
    const float eps = 1e-5f;
    float *inp = alloc_floats(nx), *w = alloc_floats(C), *b = alloc_floats(C);
    float *out = alloc_floats(nx), *r = alloc_floats(nx), *mean = alloc_floats(N),
          *rstd = alloc_floats(N);
    fill_normal(&rng, inp, nx, 1.0f);
    for (size_t i = 0; i < nx; i++) inp[i] += 0.5f; /* nonzero mean */
    fill_uniform(&rng, w, C, 0.5f, 1.5f);
    fill_normal(&rng, b, C, 0.3f);
    fill_normal(&rng, r, nx, 1.0f);
    for (size_t i = 0; i < nx; i++) out[i] = NAN;

    double *xd = to_double(inp, nx), *wd = to_double(w, C), *bd = to_double(b, C);
    double *ref = alloc_doubles(nx);
    norm_ref c = {xd, wd, is_layernorm ? bd : NULL, r, ref, N, C, eps};
    ref_loss_fn loss = is_layernorm ? layernorm_loss : rmsnorm_loss;
    float *dinp = alloc_floats(nx), *dw = alloc_floats(C), *db = alloc_floats(C);
    if (is_layernorm) {
        layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps);
        layernorm_ref(&c);
        layernorm_backward(dinp, dw, db, r, inp, w, mean, rstd, N, C);
    } else {
        rmsnorm_forward(out, rstd, inp, w, N, C, eps);
        rmsnorm_ref(&c);
        rmsnorm_backward(dinp, dw, r, inp, w, rstd, N, C);
    }
    check_close(is_layernorm ? "layernorm forward" : "rmsnorm forward", out, ref, nx, 1e-5, 1e-5);

    double *num = alloc_doubles(nx);
    numeric_grad(num, xd, nx, step, loss, &c);
    check_grad("norm dinp", dinp, num, nx, step);
    numeric_grad(num, wd, C, 1, loss, &c);
    check_grad("norm dw", dw, num, C, 1);
    if (is_layernorm) {
        numeric_grad(num, bd, C, 1, loss, &c);
        check_grad("norm db", db, num, C, 1);
    }
    free(inp); free(w); free(b); free(out); free(r); free(mean); free(rstd); free(xd);
    free(wd); free(bd); free(ref); free(dinp); free(dw); free(db); free(num);
}

static void test_layernorm_grad(void **state) {
    (void)state;
    check_norm(1, 4, 10, 1, 1);
    check_norm(1, 1, 1, 1, 2);
    check_norm(1, 48, 130, 5, 3); /* parallel path, several column bands */
}

static void test_rmsnorm_grad(void **state) {
    (void)state;
    check_norm(0, 4, 10, 1, 4);
    check_norm(0, 1, 1, 1, 5);
    check_norm(0, 48, 130, 5, 6);
}

static void test_accumulate_and_null(void **state) {
    (void)state;
    const int N = 5, C = 9;
    const size_t nx = (size_t)N * C;
    sevo_rng rng;
    sevo_rng_seed(&rng, 9, 2);
    float *inp = alloc_floats(nx), *w = alloc_floats(C), *b = alloc_floats(C),
          *dout = alloc_floats(nx), *out = alloc_floats(nx), *mean = alloc_floats(N),
          *rstd = alloc_floats(N);
    fill_normal(&rng, inp, nx, 1.0f);
    fill_normal(&rng, w, C, 1.0f);
    fill_normal(&rng, b, C, 1.0f);
    fill_normal(&rng, dout, nx, 1.0f);

    for (int is_ln = 0; is_ln <= 1; is_ln++) {
        if (is_ln) layernorm_forward(out, mean, rstd, inp, w, b, N, C, 1e-5f);
        else rmsnorm_forward(out, rstd, inp, w, N, C, 1e-5f);
        float *fi = alloc_floats(nx), *fw = alloc_floats(C), *fb = alloc_floats(C);
        float *gi = alloc_floats(nx), *gw = alloc_floats(C), *gb = alloc_floats(C);
        fill_normal(&rng, gi, nx, 1.0f);
        fill_normal(&rng, gw, C, 1.0f);
        fill_normal(&rng, gb, C, 1.0f);
        float *bi = copy_floats(gi, nx), *bw = copy_floats(gw, C), *bb = copy_floats(gb, C);
        for (int rep = 0; rep < 3; rep++) {
            float *pi = rep ? gi : fi, *pw = rep ? gw : fw, *pb = rep ? gb : fb;
            if (is_ln) layernorm_backward(pi, pw, pb, dout, inp, w, mean, rstd, N, C);
            else rmsnorm_backward(pi, pw, dout, inp, w, rstd, N, C);
        }
        check_accumulated_twice("norm dinp", gi, bi, fi, nx);
        check_accumulated_twice("norm dw", gw, bw, fw, C);
        if (is_ln) check_accumulated_twice("norm db", gb, bb, fb, C);

        float *only = alloc_floats(nx);
        if (is_ln) layernorm_backward(only, NULL, NULL, dout, inp, w, mean, rstd, N, C);
        else rmsnorm_backward(only, NULL, dout, inp, w, rstd, N, C);
        check_close_f("norm dinp only", only, fi, nx, 0.0, 0.0);
        memset(only, 0, nx * sizeof(float));
        if (is_ln) layernorm_backward(NULL, only, NULL, dout, inp, w, mean, rstd, N, C);
        else rmsnorm_backward(NULL, only, dout, inp, w, rstd, N, C);
        check_close_f("norm dw only", only, fw, C, 0.0, 0.0);
        if (is_ln) {
            memset(only, 0, nx * sizeof(float));
            layernorm_backward(NULL, NULL, only, dout, inp, w, mean, rstd, N, C);
            check_close_f("norm db only", only, fb, C, 0.0, 0.0);
        }
        free(fi); free(fw); free(fb); free(gi); free(gw); free(gb); free(bi); free(bw);
        free(bb); free(only);
    }
    free(inp); free(w); free(b); free(dout); free(out); free(mean); free(rstd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_cases),
        cmocka_unit_test(test_layernorm_grad),
        cmocka_unit_test(test_rmsnorm_grad),
        cmocka_unit_test(test_accumulate_and_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
