/* optim.h: AdamW over the model's parameter arena, the learning-rate schedule (linear
 * warmup, then cosine decay to zero), gradient clipping by global norm, and the
 * optimizer state file (optimizer.safetensors). */
#ifndef SEVO_TRAIN_OPTIM_H
#define SEVO_TRAIN_OPTIM_H

#include <stddef.h>

#include "core/error.h"
#include "model/vlm.h"

typedef struct adamw {
    float *m, *v; /* first and second moments, same layout as the parameters */
    size_t n;
    int step;     /* number of updates applied */
    float beta1, beta2, eps;
} adamw;

int adamw_init(adamw *o, size_t n, sevo_error *err);
void adamw_release(adamw *o);
/* One update of every tensor on the gradients times grad_scale (1, or the clipping
 * factor of grad_clip_scale); weight decay only on tensors marked `decay`. */
void adamw_step(adamw *o, vlm *m, float lr, float weight_decay, float grad_scale);

/* Linear warmup over warmup steps to peak, then cosine to 0 at total steps.
 * step counts from 0. */
float lr_at(int step, int total, int warmup, float peak);

/* Global L2 norm of the gradients. */
float grad_global_norm(vlm *m);
/* The factor that brings gradients of this norm down to max_norm when larger, 1
 * otherwise (max_norm <= 0: no clipping), as torch.nn.utils.clip_grad_norm_; adamw_step
 * applies it as it reads the gradients, which stay unscaled. */
float grad_clip_scale(float norm, float max_norm);

/* optimizer.safetensors: "<tensor>.exp_avg" and "<tensor>.exp_avg_sq" per parameter,
 * metadata "step". */
int adamw_save(const adamw *o, const vlm *m, const char *path, sevo_error *err);
int adamw_load(adamw *o, const vlm *m, const char *path, sevo_error *err);

#endif
