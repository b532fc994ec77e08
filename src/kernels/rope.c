/* rope.c: rotary position embeddings in the Hugging Face "rotate_half" layout
 * (Llama/Qwen): inside each head of size hd, dimension i < hd/2 is paired with
 * i + hd/2 and the pair is rotated by pos * theta^(-2i/hd).
 *
 * The tables are computed in double and rounded once, so large positions keep accurate
 * angles (HF computes the angle in float32, which differs by ~1e-7 * pos radians; this
 * only matters when importing weights trained at very long context). The rotation is
 * orthogonal, so the backward is the same rotation by the opposite angle. Both work in
 * place: the pair is read into registers before either element is written. */
#include "kernels/kernels.h"
#include "kernels/parallel.h"

#include <math.h>

/* Below this many elements a parallel region costs more than it saves. */
#define ROPE_PARALLEL_MIN 4096

void rope_table_init(float *cos_tab, float *sin_tab, int max_pos, int hd, float theta) {
    const int half = hd / 2;
    for (int i = 0; i < half; i++) {
        const double inv_freq = pow((double)theta, -2.0 * i / hd);
        for (int p = 0; p < max_pos; p++) {
            const double angle = (double)p * inv_freq;
            cos_tab[(size_t)p * half + i] = (float)cos(angle);
            sin_tab[(size_t)p * half + i] = (float)sin(angle);
        }
    }
}

/* Rotates every head of every row by +angle (sign = 1) or -angle (sign = -1). */
static void rope_rotate(float *x, const float *cos_tab, const float *sin_tab, const int *pos,
                        int N, int H, int hd, float sign) {
    const int half = hd / 2;
    const int C = H * hd;
    KERNEL_PARALLEL((long)N * C, ROPE_PARALLEL_MIN, N, tid, n0, n1, for (long n = n0; n < n1; n++) {
        const float *cs = cos_tab + (size_t)pos[n] * half;
        const float *sn = sin_tab + (size_t)pos[n] * half;
        for (int h = 0; h < H; h++) {
            float *x1 = x + (size_t)n * C + (size_t)h * hd;
            float *x2 = x1 + half;
            for (int i = 0; i < half; i++) {
                const float a = x1[i], b = x2[i];
                const float c = cs[i], s = sign * sn[i];
                x1[i] = a * c - b * s;
                x2[i] = b * c + a * s;
            }
        }
    });
}

void rope_forward(float *x, const float *cos_tab, const float *sin_tab, const int *pos,
                  int N, int H, int hd) {
    rope_rotate(x, cos_tab, sin_tab, pos, N, H, hd, 1.0f);
}

void rope_backward(float *dx, const float *cos_tab, const float *sin_tab, const int *pos,
                   int N, int H, int hd) {
    rope_rotate(dx, cos_tab, sin_tab, pos, N, H, hd, -1.0f);
}
