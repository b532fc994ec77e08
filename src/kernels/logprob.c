/* logprob.c: per-token log-probabilities of target tokens under softmax(logits), the
 * building block of the cross-entropy loss (loss = -mean logp) and of sequence scores.
 *
 * The log-softmax subtracts the row max before exponentiating so that no exp overflows,
 * and computes logp = x_t - max - log(sum exp(x - max)) directly rather than log(prob),
 * which keeps precision for very unlikely targets. probs may alias logits: each element
 * is read before the same element is overwritten, and the target logit is saved first. */
#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "kernels/vexp.h"

#include <math.h>

/* Below this many elements a parallel region costs more than it saves. */
#define LOGPROB_PARALLEL_MIN 4096

void token_logprob_forward(float *logp, float *probs, const float *logits,
                           const int *targets, int N, int V) {
    KERNEL_PARALLEL((long)N * V, LOGPROB_PARALLEL_MIN, N, tid, n0, n1, for (long n = n0; n < n1; n++) {
        const int t = targets[n];
        if (t < 0) {
            logp[n] = 0.0f;
            continue;
        }
        const float *x = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        const float x_target = x[t];
        float maxv = x[0];
        _Pragma("omp simd reduction(max : maxv)")
        for (int j = 1; j < V; j++) maxv = x[j] > maxv ? x[j] : maxv;
        double sum = 0.0;
        _Pragma("omp simd reduction(+ : sum)")
        for (int j = 0; j < V; j++) {
            const float e = vexpf(x[j] - maxv);
            p[j] = e; /* x[j] is dead after this line, so aliasing is safe */
            sum += e;
        }
        const float inv_sum = (float)(1.0 / sum);
        for (int j = 0; j < V; j++) p[j] *= inv_sum;
        logp[n] = (float)((double)x_target - maxv - log(sum));
    });
}

void token_logprob_backward(float *dlogits, const float *probs, const int *targets,
                            const float *dlogp, int N, int V) {
    KERNEL_PARALLEL((long)N * V, LOGPROB_PARALLEL_MIN, N, tid, n0, n1, for (long n = n0; n < n1; n++) {
        const int t = targets[n];
        if (t < 0) continue;
        const float g = dlogp[n];
        const float *p = probs + (size_t)n * V;
        float *dx = dlogits + (size_t)n * V;
        for (int j = 0; j < V; j++) dx[j] -= g * p[j];
        dx[t] += g;
    });
}
