/* kernels.h: the numerical layers of sevo, as pairs of plain forward/backward functions
 * over flat float arrays (row-major), in the style of llm.c.
 *
 * Conventions, shared by every function here:
 *  - A "row" is one token. N is the number of rows. Activations are [N, C].
 *  - Linear weights use PyTorch's layout [out, in]: y = x W^T + b.
 *  - Every backward function ACCUMULATES (+=) into each gradient output it is given;
 *    the caller zeroes gradients. The *_set variants write (=) the input gradient
 *    instead, for its first contribution: no zeroing pass over a buffer that is about
 *    to be overwritten (weight gradients still accumulate). Any gradient pointer may be NULL: that gradient is
 *    then not computed (e.g. dinp of the first layer, db of a bias-free layer).
 *  - Forward functions write (=) their outputs and never read them first.
 *  - Matrix products go through cblas_sgemm; other loops are parallel with OpenMP
 *    where the work is large enough to pay for it.
 *  - No function allocates unless documented.
 */
#ifndef SEVO_KERNELS_H
#define SEVO_KERNELS_H

#include <stddef.h>

/* ---- linear: out[N,OC] = inp[N,IC] @ w[OC,IC]^T + b[OC] (b may be NULL).
 * Up to LINEAR_FEW_ROWS rows the forward is sevo's own dot products, row by row: each
 * output row is then bitwise the same whatever the other rows and their number, which
 * batched generation (vlm_sessions_step) relies on. More rows go through sgemm. ---- */
#define LINEAR_FEW_ROWS 4
void linear_forward(float *out, const float *inp, const float *w, const float *b,
                    int N, int IC, int OC);
void linear_backward(float *dinp, float *dw, float *db, const float *dout,
                     const float *inp, const float *w, int N, int IC, int OC);
/* as linear_backward, but dinp = (not +=) dout @ w */
void linear_backward_set(float *dinp, float *dw, float *db, const float *dout,
                         const float *inp, const float *w, int N, int IC, int OC);

/* ---- LayerNorm over the last dim C; mean/rstd [N] are saved for backward ---- */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C, float eps);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, const float *mean,
                        const float *rstd, int N, int C);

/* ---- RMSNorm: out = inp * rstd * w, rstd = 1/sqrt(mean(inp^2) + eps) ---- */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w,
                     int N, int C, float eps);
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                      const float *w, const float *rstd, int N, int C);

/* ---- GELU, elementwise over n values. tanh_approx=0: exact erf form (HF "gelu");
 * tanh_approx=1: the tanh approximation (HF "gelu_pytorch_tanh"). ---- */
void gelu_forward(float *out, const float *inp, size_t n, int tanh_approx);
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n, int tanh_approx);

/* ---- SiLU (swish): out = x * sigmoid(x), elementwise over n values (the plain,
 * ungated MLP or projector activation HF calls "silu") ---- */
void silu_forward(float *out, const float *inp, size_t n);
void silu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* ---- SwiGLU: out = silu(gate) * up, elementwise over n values ---- */
void swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t n);
/* as swiglu_backward, but dgate and dup are written (=), not added to */
void swiglu_backward_set(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, size_t n);

/* ---- elementwise helpers ---- */
void add_forward(float *out, const float *a, const float *b, size_t n); /* out = a + b */
void add_inplace(float *acc, const float *x, size_t n);                 /* acc += x */

/* ---- token embedding: out[n] = wte[ids[n]] (rows of C) ---- */
void embedding_forward(float *out, const int *ids, const float *wte, int N, int C);
void embedding_backward(float *dwte, const float *dout, const int *ids, int N, int C);

/* ---- RoPE, Hugging Face "rotate_half" convention (Llama/Qwen): within each head of
 * size hd, dimension i (< hd/2) pairs with i + hd/2, rotated by angle
 * pos * theta^(-2i/hd). Tables are [max_pos, hd/2]. x is [N, H*hd], rotated in place;
 * pos[N] gives each row's position. Backward rotates the gradient by the opposite
 * angle (in place). ---- */
void rope_table_init(float *cos_tab, float *sin_tab, int max_pos, int hd, float theta);
void rope_forward(float *x, const float *cos_tab, const float *sin_tab, const int *pos,
                  int N, int H, int hd);
void rope_backward(float *dx, const float *cos_tab, const float *sin_tab, const int *pos,
                   int N, int H, int hd);

/* ---- scaled dot-product attention over B sequences of T rows each.
 * q [B,T,H*hd], k and v [B,T,KVH*hd] (grouped-query: head h uses kv head
 * h / (H/KVH)), out [B,T,H*hd], att [B,H,T,T] holds the softmax probabilities for
 * backward (every entry is written; masked entries are exactly 0). Scale 1/sqrt(hd).
 * causal=1 masks j > i.
 *
 * seg_start (sequence packing): NULL for one example per row of T. Otherwise an int
 * array [B*T] and causal must be 1: row (b, i) attends only to keys j in
 * [seg_start[b*T+i], i], so several independent examples can be concatenated in one
 * row of T (seg_start[b*T+i] is then the first row of the example containing i).
 * Requires 0 <= seg_start[b*T+i] <= i. The masked keys are skipped, not computed and
 * zeroed, so a packed row costs what its segments cost. The backward is fastest when
 * seg_start is nondecreasing along each row (as packing gives) but correct for any
 * values in range. Bidirectional (causal=0) with seg_start is not supported: asserted
 * in debug builds, seg_start is ignored in release builds. Pass the same seg_start to
 * attention_backward as to the attention_forward that produced att. ---- */
void attention_forward(float *out, float *att, const float *q, const float *k,
                       const float *v, int B, int T, int H, int KVH, int hd, int causal,
                       const int *seg_start);
/* scratch: attention_backward_scratch_floats(T) floats (a slice per thread). Must not be
 * called from several threads of an enclosing parallel region at once. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout,
                        const float *att, const float *q, const float *k, const float *v,
                        int B, int T, int H, int KVH, int hd, int causal,
                        const int *seg_start, float *scratch);
size_t attention_backward_scratch_floats(int T);

/* ---- attention of Tq new rows against a cache of Tk >= Tq rows (generation).
 * The new rows are the last Tq of the Tk: row i attends to cache rows
 * 0 .. Tk-Tq+i. q [Tq,H*hd], kc/vc [Tk,KVH*hd] (row stride KVH*hd), out [Tq,H*hd].
 * scratch must hold Tk floats per thread times omp_get_max_threads(). Must give the
 * same numbers as attention_forward with causal=1 up to float rounding. ---- */
void attention_cached_forward(float *out, const float *q, const float *kc, const float *vc,
                              int Tq, int Tk, int H, int KVH, int hd, float *scratch);

/* ---- per-token log-probabilities of targets under softmax(logits).
 * logits [N,V]; targets[N] with -1 meaning "no target" (logp 0, probs row untouched).
 * probs [N,V] (may alias logits) receives the softmax of rows that have a target.
 * Returns nothing; logp[N] is written. ---- */
void token_logprob_forward(float *logp, float *probs, const float *logits,
                           const int *targets, int N, int V);
/* Given dL/dlogp[N], accumulates dL/dlogits: dlogits[n,j] += dlogp[n]*(1[j==t]-probs[n,j]).
 * Rows with target -1 are skipped. dlogits must not alias probs. */
void token_logprob_backward(float *dlogits, const float *probs, const int *targets,
                            const float *dlogp, int N, int V);

/* ---- AdamW (decoupled weight decay, bias-corrected), t >= 1 is the step number, on
 * the gradients times grad_scale (1, or the clipping factor) ---- */
void adamw_update(float *param, const float *grad, float grad_scale, float *m, float *v, size_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, int t);

/* ---- reductions ---- */
double sum_squares(const float *x, size_t n);

#endif
