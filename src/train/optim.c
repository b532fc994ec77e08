/* optim.c: AdamW, schedule, clipping and optimizer state I/O. */
#include "train/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/safetensors.h"

int adamw_init(adamw *o, size_t n, sevo_error *err) {
    memset(o, 0, sizeof *o);
    o->m = sevo_calloc(n, sizeof(float), "optimizer moments", err);
    o->v = sevo_calloc(n, sizeof(float), "optimizer moments", err);
    if (!o->m || !o->v) {
        adamw_release(o);
        return -1;
    }
    o->n = n;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    return 0;
}

void adamw_release(adamw *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

void adamw_step(adamw *o, vlm *m, float lr, float weight_decay, float grad_scale) {
    o->step++;
    float *p = vlm_params(m), *g = vlm_grads(m);
    for (int i = 0; i < vlm_num_tensors(m); i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        adamw_update(p + t->offset, g + t->offset, grad_scale, o->m + t->offset, o->v + t->offset, t->numel, lr,
                     o->beta1, o->beta2, o->eps, t->decay ? weight_decay : 0.0f, o->step);
    }
}

float lr_at(int step, int total, int warmup, float peak) {
    if (warmup > 0 && step < warmup) return peak * (float)(step + 1) / (float)warmup;
    int decay_steps = total - warmup;
    if (decay_steps <= 0) return peak;
    float progress = (float)(step - warmup) / (float)decay_steps;
    if (progress > 1.0f) progress = 1.0f;
    return peak * 0.5f * (1.0f + cosf((float)M_PI * progress));
}

float grad_global_norm(vlm *m) {
    double ss = 0;
    float *g = vlm_grads(m);
    for (int i = 0; i < vlm_num_tensors(m); i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        ss += sum_squares(g + t->offset, t->numel);
    }
    return (float)sqrt(ss);
}

float grad_clip_scale(float norm, float max_norm) {
    return max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6f) : 1.0f;
}

int adamw_save(const adamw *o, const vlm *m, const char *path, sevo_error *err) {
    int nt = vlm_num_tensors(m);
    safetensors_entry *e = sevo_calloc((size_t)nt * 2, sizeof *e, "optimizer entries", err);
    char (*names)[112] = sevo_calloc((size_t)nt * 2, sizeof *names, "optimizer names", err);
    if (!e || !names) {
        free(e);
        free(names);
        return -1;
    }
    for (int i = 0; i < nt; i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        for (int k = 0; k < 2; k++) {
            safetensors_entry *x = &e[2 * i + k];
            snprintf(names[2 * i + k], sizeof names[0], "%s.%s", t->name, k ? "exp_avg_sq" : "exp_avg");
            x->name = names[2 * i + k];
            x->data = (k ? o->v : o->m) + t->offset;
            x->ndim = t->ndim;
            memcpy(x->shape, t->shape, sizeof t->shape);
        }
    }
    char step[32];
    snprintf(step, sizeof step, "%d", o->step);
    const char *meta[] = {"step", step, "format", "sevo-adamw"};
    int rc = safetensors_write_f32(path, e, nt * 2, meta, 2, err);
    free(e);
    free(names);
    return rc;
}

int adamw_load(adamw *o, const vlm *m, const char *path, sevo_error *err) {
    sevo_safetensors *st = NULL;
    if (safetensors_open(&st, path, err)) return -1;
    int rc = 0;
    const char *step = safetensors_metadata(st, "step");
    if (!step) rc = sevo_fail(err, "%s: metadata 'step': missing", path);
    else o->step = atoi(step);
    for (int i = 0; i < vlm_num_tensors(m) && !rc; i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        for (int k = 0; k < 2 && !rc; k++) {
            char name[112];
            snprintf(name, sizeof name, "%s.%s", t->name, k ? "exp_avg_sq" : "exp_avg");
            rc = safetensors_read_f32(st, name, (k ? o->v : o->m) + t->offset, t->shape, t->ndim, err);
        }
    }
    safetensors_close(st);
    if (rc) sevo_fail_prefix(err, "%s", path);
    return rc;
}
