/* activation.c: elementwise nonlinearities of the MLP blocks: GELU (exact erf form and
 * the tanh approximation), SiLU, and SwiGLU's gated SiLU, each with its backward.
 *
 * The two GELU forms differ by up to ~1e-3, so the flag must match what the model was
 * trained with (HF "gelu" vs "gelu_pytorch_tanh"). Backward uses the analytic
 * derivative of the same form, never a mix.
 *
 * Both GELUs are evaluated in forms that keep full relative precision in the negative
 * tail, where the textbook forms cancel: 1 + erf(z) is written erfc(-z), and
 * 0.5 (1 + tanh u) is the identical sigmoid(2u). */
#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "kernels/vexp.h"

#include <math.h>

/* Below this many elements a parallel region costs more than it saves. */
#define ACT_PARALLEL_MIN 4096

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f
#define SQRT_2_OVER_PI 0.79788456080286535588f
#define GELU_TANH_COEF 0.044715f

/* The logistic function: exp of -|x| <= 0 never overflows, and without branches the
 * loops around it vectorise (see vexp.h). */
static inline float sigmoidf(float x) {
    const float e = vexpf(-fabsf(x));
    const float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

void gelu_forward(float *out, const float *inp, size_t n, int tanh_approx) {
    if (tanh_approx) {
        KERNEL_PARALLEL(n, ACT_PARALLEL_MIN, n, tid, i0, i1, _Pragma("omp simd") for (long i = i0; i < i1; i++) {
            const float x = inp[i];
            const float u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x);
            out[i] = x * sigmoidf(2.0f * u);
        });
    } else {
        KERNEL_PARALLEL(n, ACT_PARALLEL_MIN, n, tid, i0, i1, _Pragma("omp simd") for (long i = i0; i < i1; i++) {
            const float x = inp[i];
            out[i] = 0.5f * x * erfcf(-x * INV_SQRT2);
        });
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n, int tanh_approx) {
    if (tanh_approx) {
        /* With s = sigmoid(2u): d/dx x*s = s + x * s(1-s) * 2 du/dx,
         * du/dx = sqrt(2/pi)(1 + 3*0.044715 x^2). */
        KERNEL_PARALLEL(n, ACT_PARALLEL_MIN, n, tid, i0, i1, _Pragma("omp simd") for (long i = i0; i < i1; i++) {
            const float x = inp[i];
            const float u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x);
            const float s = sigmoidf(2.0f * u);
            const float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_COEF * x * x);
            dinp[i] += (s + 2.0f * x * s * (1.0f - s) * du) * dout[i];
        });
    } else {
        /* d/dx x*Phi(x) = Phi(x) + x*phi(x), phi the standard normal density. */
        KERNEL_PARALLEL(n, ACT_PARALLEL_MIN, n, tid, i0, i1, _Pragma("omp simd") for (long i = i0; i < i1; i++) {
            const float x = inp[i];
            const float cdf = 0.5f * erfcf(-x * INV_SQRT2);
            const float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
            dinp[i] += (cdf + x * pdf) * dout[i];
        });
    }
}

void silu_forward(float *out, const float *inp, size_t n) {
    KERNEL_PARALLEL(n, ACT_PARALLEL_MIN, n, tid, i0, i1, _Pragma("omp simd") for (long i = i0; i < i1; i++) {
        const float x = inp[i];
        out[i] = x * sigmoidf(x);
    });
}

void silu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    /* silu'(x) = s * (1 + x*(1 - s)) with s = sigmoid(x), as in swiglu_backward */
    KERNEL_PARALLEL(n, ACT_PARALLEL_MIN, n, tid, i0, i1, _Pragma("omp simd") for (long i = i0; i < i1; i++) {
        const float x = inp[i];
        const float s = sigmoidf(x);
        dinp[i] += dout[i] * s * (1.0f + x * (1.0f - s));
    });
}

void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    KERNEL_PARALLEL(n, ACT_PARALLEL_MIN, n, tid, i0, i1, _Pragma("omp simd") for (long i = i0; i < i1; i++) {
        const float g = gate[i];
        out[i] = g * sigmoidf(g) * up[i];
    });
}

/* The two SwiGLU backwards differ only in = versus +=; accumulate is a constant at
 * each call, so each inlined copy keeps a branch-free vector loop. */
static inline void swiglu_backward_impl(float *dgate, float *dup, const float *dout, const float *gate,
                                        const float *up, size_t n, int accumulate) {
    /* silu(g) = g*s with s = sigmoid(g); silu'(g) = s * (1 + g*(1 - s)). */
    KERNEL_PARALLEL(n, ACT_PARALLEL_MIN, n, tid, i0, i1, _Pragma("omp simd") for (long i = i0; i < i1; i++) {
        const float g = gate[i];
        const float s = sigmoidf(g);
        const float dg = dout[i] * up[i] * s * (1.0f + g * (1.0f - s)), du = dout[i] * g * s;
        if (dgate) dgate[i] = accumulate ? dgate[i] + dg : dg;
        if (dup) dup[i] = accumulate ? dup[i] + du : du;
    });
}

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t n) {
    swiglu_backward_impl(dgate, dup, dout, gate, up, n, 1);
}

void swiglu_backward_set(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, size_t n) {
    swiglu_backward_impl(dgate, dup, dout, gate, up, n, 0);
}
