/* kernel_test_util.h: helpers shared by the kernel tests: random fills, float/double
 * conversion, central finite differences over a double-precision reference loss, and
 * comparisons that report the worst element before failing.
 *
 * Gradient checks compare the float kernel's analytic gradient against central
 * differences of a reference forward written in double inside each test. In double the
 * difference quotient is accurate to ~1e-8, so the tolerance only has to absorb the
 * float rounding of the kernel itself. The worst errors seen are ~5e-5 (attention, rope
 * at large positions), so GRAD_TOL = 2e-4 leaves 4x headroom and still fails on a 0.1%
 * error in any gradient, 50x tighter than a float-vs-float finite difference allows.
 * Set SEVO_TEST_VERBOSE=1 to print the worst error of every check. */
#ifndef SEVO_TESTS_KERNEL_TEST_UTIL_H
#define SEVO_TESTS_KERNEL_TEST_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/rng.h"

/* Step of the central differences on the double reference. */
#define FD_STEP 1e-4
/* Relative tolerance of gradient checks, and the magnitude below which the error is
 * measured absolutely (|a - n| / max(GRAD_FLOOR, |a| + |n|)). */
#define GRAD_TOL 2e-4
#define GRAD_FLOOR 1e-3

static inline void fill_normal(sevo_rng *rng, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * sevo_rng_normal(rng);
}

static inline void fill_uniform(sevo_rng *rng, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * sevo_rng_uniform(rng);
}

static inline double *to_double(const float *x, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof(double));
    assert_non_null(d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static inline float *alloc_floats(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

static inline double *alloc_doubles(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}

static inline float *copy_floats(const float *x, size_t n) {
    float *p = alloc_floats(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

/* Sum of out[i] * r[i]: the scalar loss all gradient checks differentiate. */
static inline double dot_loss(const double *out, const float *r, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += out[i] * r[i];
    return s;
}

/* A loss evaluated by a test's double reference forward, reading its inputs from ctx. */
typedef double (*ref_loss_fn)(void *ctx);

/* Central differences of loss with respect to x[i] for every step-th i (the others are
 * left 0). x is one of the double arrays the loss reads through ctx. */
static inline void numeric_grad(double *grad, double *x, size_t n, size_t step,
                                ref_loss_fn loss, void *ctx) {
    for (size_t i = 0; i < n; i++) grad[i] = 0.0;
    for (size_t i = 0; i < n; i += step) {
        const double saved = x[i];
        x[i] = saved + FD_STEP;
        const double lp = loss(ctx);
        x[i] = saved - FD_STEP;
        const double lm = loss(ctx);
        x[i] = saved;
        grad[i] = (lp - lm) / (2.0 * FD_STEP);
    }
}

/* Checks analytic (float) against numeric (double) on every step-th element. */
static inline void check_grad(const char *what, const float *analytic, const double *numeric,
                              size_t n, size_t step) {
    double worst = 0.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i += step) {
        const double a = analytic[i], g = numeric[i];
        const double denom = fmax(GRAD_FLOOR, fabs(a) + fabs(g));
        const double err = fabs(a - g) / denom;
        if (err > worst || isnan(err)) {
            worst = isnan(err) ? INFINITY : err;
            worst_i = i;
        }
    }
    if (getenv("SEVO_TEST_VERBOSE"))
        fprintf(stderr, "%s: worst relative gradient error %.3g\n", what, worst);
    if (worst >= GRAD_TOL) {
        fprintf(stderr, "%s: gradient mismatch at %zu: analytic %.9g numeric %.9g (rel %.3g)\n",
                what, worst_i, analytic[worst_i], numeric[worst_i], worst);
    }
    assert_true(worst < GRAD_TOL);
}

/* |a[i] - b[i]| <= atol + rtol * |b[i]| for all i. */
static inline void check_close(const char *what, const float *a, const double *b, size_t n,
                               double atol, double rtol) {
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)a[i] - b[i]);
        if (!(err <= atol + rtol * fabs(b[i]))) {
            fprintf(stderr, "%s: mismatch at %zu: got %.9g want %.9g\n", what, i, a[i], b[i]);
            fail();
        }
    }
}

static inline void check_close_f(const char *what, const float *a, const float *b, size_t n,
                                 double atol, double rtol) {
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)a[i] - b[i]);
        if (!(err <= atol + rtol * fabs((double)b[i]))) {
            fprintf(stderr, "%s: mismatch at %zu: got %.9g want %.9g\n", what, i, a[i], b[i]);
            fail();
        }
    }
}

/* Accumulation check: after two backward calls on a gradient pre-filled with `before`,
 * it must hold before + 2 * fresh, where fresh is one call's result on zeros. */
static inline void check_accumulated_twice(const char *what, const float *after,
                                           const float *before, const float *fresh,
                                           size_t n) {
    for (size_t i = 0; i < n; i++) {
        const double want = (double)before[i] + 2.0 * fresh[i];
        const double err = fabs(after[i] - want);
        if (!(err <= 1e-5 * (fabs(before[i]) + 2.0 * fabs(fresh[i])) + 1e-6)) {
            fprintf(stderr, "%s: accumulate mismatch at %zu: got %.9g want %.9g\n", what, i,
                    after[i], want);
            fail();
        }
    }
}

#endif
