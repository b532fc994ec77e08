/* vlm_internal.h: the parts of the model shared by vlm.c (parameters, config),
 * vlm_train.c (batched forward/backward) and vlm_session.c (KV-cache generation).
 * Not a public header. */
#ifndef SEVO_MODEL_VLM_INTERNAL_H
#define SEVO_MODEL_VLM_INTERNAL_H

#include "model/vlm.h"

/* Pointers to one transformer block's tensors (inside the params or grads arena).
 * Unused tensors (biases of a bias-free tower, `up` of an ungated MLP) are NULL. */
typedef struct block_params {
    float *n1w, *n1b;
    float *qw, *qb, *kw, *kb, *vw, *vb, *ow, *ob;
    float *n2w, *n2b;
    float *f1w, *f1b; /* gate_proj (gated) or fc1 */
    float *upw, *upb; /* up_proj (gated only) */
    float *f2w, *f2b; /* down_proj or fc2 */
} block_params;

/* Geometry of the blocks of one tower. */
typedef struct block_geom {
    int D, H, KVH, hd, F;
    vlm_norm norm;
    vlm_act act;
    int gated;
    int causal;
    int rope;
    float eps;
} block_geom;

/* Activations of one block for up to N rows, kept for the backward pass. */
typedef struct block_acts {
    float *x_in; /* [N,D] input residual (not owned: previous block's x_out) */
    float *n1, *n1_mean, *n1_rstd;
    float *q, *k, *v;
    float *att; /* [B,H,T,T] */
    float *ao;
    float *x_mid;
    float *n2, *n2_mean, *n2_rstd;
    float *h1, *hup, *hact;
    float *x_out;
} block_acts;

/* The parameters (or gradients) of the whole model as named pointers. */
typedef struct vlm_weights {
    float *patch_w, *patch_b, *pos_emb;   /* vision embeddings */
    block_params *vblocks;                /* [vision.num_layers] */
    float *vpost_w, *vpost_b;             /* vision final norm */
    float *proj1_w, *proj1_b, *proj2_w, *proj2_b;
    float *wte;                           /* [vocab, D] */
    block_params *tblocks;                /* [text.num_layers] */
    float *tnorm_w, *tnorm_b;             /* decoder final norm (bias: LayerNorm only) */
    float *lm_head;                       /* == wte when tied */
} vlm_weights;

/* Activation arena for the towers, sized for a capacity of rows. */
typedef struct vision_acts {
    int cap_images;
    float *patches;                   /* [Ni, C*p*p] */
    float *x0;                        /* [Ni, Dv] embeddings + positions */
    block_acts *blocks;               /* [Lv] */
    float *post, *post_mean, *post_rstd;
    float *p1, *p1act, *feats;        /* projector: [Ni, Dt] each */
    float *mem;
} vision_acts;

struct vlm {
    vlm_config cfg;
    int n_tensors;
    vlm_tensor *tensors;
    size_t n_params;
    float *params, *grads;
    vlm_weights w, g;
    block_geom vgeom, tgeom;
    int num_patches, patch_dim;
    float *rope_cos, *rope_sin; /* [max_pos, hd/2] */
    /* training activations (grown on demand) */
    int cap_N, cap_B, cap_T;
    float *tmem;
    int *pos;                 /* [N] */
    float *x0;                /* [N, D] embeddings */
    block_acts *tblocks;      /* [L] */
    float *xf, *xf_rstd, *xf_mean, *probs; /* final norm out, logits->probs [N,V] */
    vision_acts vis;
    /* backward scratch */
    float *bmem;
    float *dx, *dn, *dq, *dk, *dv, *dao, *dh1, *dup, *dhact, *dlogits, *dfeat;
    float *att_scratch; /* attention_backward's per-thread rows */
    /* the last batch (for backward) */
    int last_B, last_T, last_n_images;
    const int *last_ids, *last_targets;
    int *splice_rows;  /* [B*T] batch row of each image token, in order */
    int *splice_feat;  /* [B*T] its feature row (image * P + patch) */
    int n_splice;
    const int *last_seg;
};

int block_geom_tower(block_geom *g, const vlm_tower_config *t, int causal, int rope);
size_t block_acts_floats(const block_geom *g, int N, int B, int T);
void block_acts_bind(block_acts *a, const block_geom *g, float **cursor, int N, int B, int T);

/* The two halves of block_forward around its attention, for callers that attend
 * otherwise (vlm_sessions_step: each row against its own cache). */
void block_qkv_forward(const block_geom *g, const block_params *p, block_acts *a, const float *x_in, int N,
                       const int *pos, const float *rope_cos, const float *rope_sin, float *k, float *v);
void block_out_forward(const block_geom *g, const block_params *p, block_acts *a, int N);
/* seg_start (NULL or [B*T]) keeps causal attention inside packed sequences. */
void block_forward(const block_geom *g, const block_params *p, block_acts *a, const float *x_in,
                   int B, int T, const int *pos, const int *seg_start, const float *rope_cos,
                   const float *rope_sin, float *kcache, float *vcache, int cache_start, float *scratch);
void block_backward(const block_geom *g, const block_params *p, const block_params *gp,
                    const block_acts *a, float *dx, int B, int T, const int *pos, const int *seg_start,
                    const float *rope_cos, const float *rope_sin, struct vlm *m);

void norm_forward(const block_geom *g, float *out, float *mean, float *rstd, const float *inp,
                  const float *w, const float *b, int N);
/* The ungated MLP's and the projector's activation (GELU, tanh-GELU or SiLU); the
 * backward accumulates into dinp. */
void act_forward(vlm_act act, float *out, const float *inp, size_t n);
void act_backward(vlm_act act, float *dinp, const float *inp, const float *dout, size_t n);

int vision_acts_alloc(vision_acts *va, const struct vlm *m, int n_images, sevo_error *err);
void vision_acts_free(vision_acts *va, const struct vlm *m);
/* Runs ViT + projector for n images; features land in va->feats [n*P, Dt]. */
void vision_forward(const struct vlm *m, vision_acts *va, const float *images, int n_images);

#endif
