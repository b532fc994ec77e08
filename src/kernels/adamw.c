/* adamw.c: the AdamW optimizer step (Loshchilov & Hutter), matching
 * torch.optim.AdamW: decoupled weight decay applied to the parameter before the Adam
 * update, bias-corrected first and second moments, eps added after the square root.
 *
 * The bias corrections are computed once per call, in double: it costs nothing and
 * avoids float rounding in 1 - beta^t, which cancels badly while beta^t is close to 1
 * (the first steps with beta2 = 0.999).
 *
 * grad_scale multiplies every gradient as it is read: gradient clipping's factor,
 * applied here rather than in a pass of its own over the gradients (which, at 134M
 * parameters, read and wrote another 1 GB per step). g * s is rounded to float exactly
 * as the separate pass stored it, so the result is the same to the bit. */
#include "kernels/kernels.h"
#include "kernels/parallel.h"

#include <math.h>

/* Below this many elements a parallel region costs more than it saves. */
#define ADAMW_PARALLEL_MIN 4096

void adamw_update(float *param, const float *grad, float grad_scale, float *m, float *v, size_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, int t) {
    const float bc1 = (float)(1.0 - pow((double)beta1, (double)t));
    const float bc2 = (float)(1.0 - pow((double)beta2, (double)t));
    const float decay = 1.0f - lr * weight_decay;
    KERNEL_PARALLEL(n, ADAMW_PARALLEL_MIN, n, tid, i0, i1, for (long i = i0; i < i1; i++) {
        const float g = grad[i] * grad_scale;
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float mhat = mi / bc1;
        const float vhat = vi / bc2;
        param[i] = param[i] * decay - lr * mhat / (sqrtf(vhat) + eps);
    });
}
