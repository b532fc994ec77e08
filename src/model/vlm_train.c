/* vlm_train.c: the batched training forward and backward of the whole VLM.
 *
 * The forward stores every activation the backward needs in one arena sized for the
 * largest batch seen (grown on demand, never per step). The backward starts from a
 * gradient on per-token log-probabilities, so every objective (SFT, DPO, policy
 * gradient) reuses it. Sequences may share an image (a DPO pair does): the vision
 * tower runs once per distinct image and its feature gradients are summed. */
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "model/vlm_internal.h"

static int maxi(int a, int b) { return a > b ? a : b; }

/* ------------------------------------------------------------ vision tower */

int vision_acts_alloc(vision_acts *va, const vlm *m, int n_images, sevo_error *err) {
    if (n_images <= va->cap_images) return 0;
    vision_acts_free(va, m);
    const vlm_config *c = &m->cfg;
    int P = m->num_patches, Dv = c->vision.hidden_size, Dt = c->text.hidden_size;
    size_t Ni = (size_t)n_images * P;
    size_t per_block = block_acts_floats(&m->vgeom, (int)Ni, n_images, P);
    size_t total = Ni * m->patch_dim + Ni * Dv + per_block * c->vision.num_layers + Ni * Dv +
                   2 * Ni + 3 * Ni * Dt;
    va->mem = sevo_malloc(total * sizeof(float), "vision activations", err);
    va->blocks = sevo_calloc((size_t)maxi(c->vision.num_layers, 1), sizeof *va->blocks,
                             "vision activations", err);
    if (!va->mem || !va->blocks) {
        vision_acts_free(va, m);
        return -1;
    }
    float *cur = va->mem;
    va->patches = cur, cur += Ni * m->patch_dim;
    va->x0 = cur, cur += Ni * Dv;
    for (int l = 0; l < c->vision.num_layers; l++)
        block_acts_bind(&va->blocks[l], &m->vgeom, &cur, (int)Ni, n_images, P);
    va->post = cur, cur += Ni * Dv;
    va->post_mean = cur, cur += Ni;
    va->post_rstd = cur, cur += Ni;
    va->p1 = cur, cur += Ni * Dt;
    va->p1act = cur, cur += Ni * Dt;
    va->feats = cur, cur += Ni * Dt;
    va->cap_images = n_images;
    return 0;
}

void vision_acts_free(vision_acts *va, const vlm *m) {
    (void)m;
    free(va->mem);
    free(va->blocks);
    memset(va, 0, sizeof *va);
}

/* Images [n, C, S, S] -> patch rows [n*P, C*p*p], column order (c, y, x) so the patch
 * embedding is a Linear with the Conv2d weight [Dv, C, p, p] read as [Dv, C*p*p]. */
static void extract_patches(float *out, const float *images, int n, int C, int S, int p) {
    int G = S / p, P = G * G, pd = C * p * p;
    KERNEL_PARALLEL((long)n * P, 65, (long)n * P, tid, r0, r1, for (long r = r0; r < r1; r++) {
        const int i = (int)(r / P), k = (int)(r % P), py = k / G, px = k % G;
        float *row = out + (size_t)r * pd;
        const float *img = images + (size_t)i * C * S * S;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < p; y++)
                memcpy(row + (c * p + y) * p, img + ((size_t)c * S + py * p + y) * S + px * p,
                       (size_t)p * sizeof(float));
    });
}

static const float *vision_last(const vlm *m, const vision_acts *va) {
    int L = m->cfg.vision.num_layers;
    return L ? va->blocks[L - 1].x_out : va->x0;
}

void vision_forward(const vlm *m, vision_acts *va, const float *images, int n_images) {
    const vlm_config *c = &m->cfg;
    int P = m->num_patches, Dv = c->vision.hidden_size, Dt = c->text.hidden_size;
    int Ni = n_images * P;
    extract_patches(va->patches, images, n_images, c->num_channels, c->image_size, c->patch_size);
    linear_forward(va->x0, va->patches, m->w.patch_w, m->w.patch_b, Ni, m->patch_dim, Dv);
    for (int i = 0; i < n_images; i++) add_inplace(va->x0 + (size_t)i * P * Dv, m->w.pos_emb, (size_t)P * Dv);
    const float *x = va->x0;
    for (int l = 0; l < c->vision.num_layers; l++) {
        block_forward(&m->vgeom, &m->w.vblocks[l], &va->blocks[l], x, n_images, P, NULL, NULL, NULL,
                      NULL, NULL, NULL, 0, NULL);
        x = va->blocks[l].x_out;
    }
    norm_forward(&m->vgeom, va->post, va->post_mean, va->post_rstd, x, m->w.vpost_w, m->w.vpost_b, Ni);
    linear_forward(va->p1, va->post, m->w.proj1_w, m->w.proj1_b, Ni, Dv, Dt);
    act_forward(c->projector_act, va->p1act, va->p1, (size_t)Ni * Dt);
    linear_forward(va->feats, va->p1act, m->w.proj2_w, m->w.proj2_b, Ni, Dt, Dt);
}

/* dfeat [n_images*P, Dt] -> gradients of the projector and the vision tower. */
static void vision_backward(vlm *m, const float *dfeat, int n_images) {
    const vlm_config *c = &m->cfg;
    vision_acts *va = &m->vis;
    int P = m->num_patches, Dv = c->vision.hidden_size, Dt = c->text.hidden_size;
    size_t Ni = (size_t)n_images * P;
    float *dp1act = m->dn, *dp1 = m->dao, *dpost = m->dq, *dx = m->dx;
    linear_backward_set(dp1act, m->g.proj2_w, m->g.proj2_b, dfeat, va->p1act, m->w.proj2_w, (int)Ni, Dt, Dt);
    memset(dp1, 0, Ni * Dt * sizeof(float));
    act_backward(c->projector_act, dp1, va->p1, dp1act, Ni * Dt);
    linear_backward_set(dpost, m->g.proj1_w, m->g.proj1_b, dp1, va->post, m->w.proj1_w, (int)Ni, Dv, Dt);
    memset(dx, 0, Ni * Dv * sizeof(float));
    const float *xl = vision_last(m, va);
    if (m->vgeom.norm == VLM_NORM_RMS)
        rmsnorm_backward(dx, m->g.vpost_w, dpost, xl, m->w.vpost_w, va->post_rstd, (int)Ni, Dv);
    else
        layernorm_backward(dx, m->g.vpost_w, m->g.vpost_b, dpost, xl, m->w.vpost_w, va->post_mean,
                           va->post_rstd, (int)Ni, Dv);
    for (int l = c->vision.num_layers - 1; l >= 0; l--)
        block_backward(&m->vgeom, &m->w.vblocks[l], &m->g.vblocks[l], &va->blocks[l], dx, n_images,
                       P, NULL, NULL, NULL, NULL, m);
    for (int i = 0; i < n_images; i++) add_inplace(m->g.pos_emb, dx + (size_t)i * P * Dv, (size_t)P * Dv);
    linear_backward(NULL, m->g.patch_w, m->g.patch_b, dx, va->patches, m->w.patch_w, (int)Ni,
                    m->patch_dim, Dv);
}

/* ------------------------------------------------------------ text decoder */

static int ensure_capacity(vlm *m, int B, int T, int n_images, sevo_error *err) {
    if (vision_acts_alloc(&m->vis, m, n_images, err)) return -1;
    if (B <= m->cap_B && T <= m->cap_T) return 0;
    B = maxi(B, m->cap_B);
    T = maxi(T, m->cap_T);
    const vlm_config *c = &m->cfg;
    size_t N = (size_t)B * T, Dt = c->text.hidden_size, V = c->vocab_size;
    int L = c->text.num_layers;
    free(m->tmem);
    free(m->tblocks);
    free(m->pos);
    free(m->bmem);
    free(m->splice_rows);
    free(m->splice_feat);
    m->tmem = m->bmem = NULL;
    m->cap_B = m->cap_T = 0;
    size_t per_block = block_acts_floats(&m->tgeom, (int)N, B, T);
    size_t tsize = N * Dt + per_block * L + N * Dt + 2 * N + N * V;
    m->tmem = sevo_malloc(tsize * sizeof(float), "activations", err);
    m->tblocks = sevo_calloc((size_t)maxi(L, 1), sizeof *m->tblocks, "activations", err);
    m->pos = sevo_malloc(N * sizeof(int), "positions", err);
    m->splice_rows = sevo_malloc(N * sizeof(int), "image rows", err);
    m->splice_feat = sevo_malloc(N * sizeof(int), "image rows", err);
    size_t Dmax = (size_t)maxi(c->text.hidden_size, c->vision.hidden_size);
    size_t Fmax = (size_t)maxi(c->text.intermediate_size, c->vision.intermediate_size);
    size_t Dkv = (size_t)maxi(m->tgeom.KVH * m->tgeom.hd, m->vgeom.KVH * m->vgeom.hd);
    size_t att_scratch = attention_backward_scratch_floats(maxi(T, m->num_patches));
    size_t bsize = N * Dmax * 4 + N * Dkv * 2 + N * Fmax * 3 + N * V + N * Dt + att_scratch;
    m->bmem = sevo_malloc(bsize * sizeof(float), "gradient scratch", err);
    if (!m->tmem || !m->tblocks || !m->pos || !m->splice_rows || !m->splice_feat || !m->bmem) return -1;
    float *cur = m->tmem;
    m->x0 = cur, cur += N * Dt;
    for (int l = 0; l < L; l++) block_acts_bind(&m->tblocks[l], &m->tgeom, &cur, (int)N, B, T);
    m->xf = cur, cur += N * Dt;
    m->xf_mean = cur, cur += N;
    m->xf_rstd = cur, cur += N;
    m->probs = cur, cur += N * V;
    cur = m->bmem;
    m->dx = cur, cur += N * Dmax;
    m->dn = cur, cur += N * Dmax;
    m->dq = cur, cur += N * Dmax;
    m->dao = cur, cur += N * Dmax;
    m->dk = cur, cur += N * Dkv;
    m->dv = cur, cur += N * Dkv;
    m->dh1 = cur, cur += N * Fmax;
    m->dup = cur, cur += N * Fmax;
    m->dhact = cur, cur += N * Fmax;
    m->dlogits = cur, cur += N * V;
    m->dfeat = cur, cur += N * Dt;
    m->att_scratch = cur, cur += att_scratch;
    m->cap_B = B;
    m->cap_T = T;
    return 0;
}

static const float *text_last(const vlm *m) {
    int L = m->cfg.text.num_layers;
    return L ? m->tblocks[L - 1].x_out : m->x0;
}

int vlm_forward(vlm *m, const vlm_batch *bt, float *logp, sevo_error *err) {
    const vlm_config *c = &m->cfg;
    int B = bt->B, T = bt->T, P = m->num_patches, Dt = c->text.hidden_size, V = c->vocab_size;
    if (!bt->pos && T > c->max_position_embeddings)
        return sevo_fail(err, "sequence length %d exceeds max_position_embeddings %d", T,
                         c->max_position_embeddings);
    if ((size_t)bt->n_images * P > (size_t)B * T)
        return sevo_fail(err, "batch has %d images for %d token rows", bt->n_images, B * T);
    if (ensure_capacity(m, B, T, bt->n_images, err)) return -1;
    int N = B * T;
    for (int i = 0; i < N; i++) {
        if (bt->ids[i] < 0 || bt->ids[i] >= V)
            return sevo_fail(err, "token id %d at batch row %d is outside the vocabulary", bt->ids[i], i);
        m->pos[i] = bt->pos ? bt->pos[i] : i % T;
        if (m->pos[i] < 0 || m->pos[i] >= c->max_position_embeddings)
            return sevo_fail(err, "position %d at batch row %d is outside [0, %d)", m->pos[i], i,
                             c->max_position_embeddings);
        if (bt->seg_start && (bt->seg_start[i] < 0 || bt->seg_start[i] > i % T))
            return sevo_fail(err, "batch row %d: sequence start %d is not before it in its row", i,
                             bt->seg_start[i]);
    }
    /* Each run of image tokens takes its image's P feature rows in order; a run ends at
     * a non-image token, a row or sequence boundary, a change of image, or after P. */
    m->n_splice = 0;
    int run = 0;
    for (int i = 0; i < N; i++) {
        int is_img = bt->ids[i] == c->image_token_id;
        int img = is_img && bt->image_of ? bt->image_of[i] : -1;
        int boundary = i % T == 0 || (bt->seg_start && bt->seg_start[i] == i % T) ||
                       (is_img && run > 0 && bt->image_of[i - 1] != img) || run == P;
        if ((!is_img || boundary) && run != 0 && run != P)
            return sevo_fail(err, "batch row %d: an image run ends after %d of %d tokens", i, run, P);
        if (!is_img) {
            run = 0;
            continue;
        }
        if (boundary) run = 0;
        if (img < 0 || img >= bt->n_images)
            return sevo_fail(err, "image token at batch row %d has no image (image %d of %d)", i, img,
                             bt->n_images);
        m->splice_rows[m->n_splice] = i;
        m->splice_feat[m->n_splice] = img * P + run;
        m->n_splice++;
        run++;
    }
    if (run != 0 && run != P)
        return sevo_fail(err, "the last image run ends after %d of %d tokens", run, P);
    embedding_forward(m->x0, bt->ids, m->w.wte, N, Dt);
    if (bt->n_images > 0) {
        vision_forward(m, &m->vis, bt->images, bt->n_images);
        for (int k = 0; k < m->n_splice; k++)
            memcpy(m->x0 + (size_t)m->splice_rows[k] * Dt, m->vis.feats + (size_t)m->splice_feat[k] * Dt,
                   (size_t)Dt * sizeof(float));
    }
    const float *x = m->x0;
    for (int l = 0; l < c->text.num_layers; l++) {
        block_forward(&m->tgeom, &m->w.tblocks[l], &m->tblocks[l], x, B, T, m->pos, bt->seg_start,
                      m->rope_cos, m->rope_sin, NULL, NULL, 0, NULL);
        x = m->tblocks[l].x_out;
    }
    norm_forward(&m->tgeom, m->xf, m->xf_mean, m->xf_rstd, x, m->w.tnorm_w, m->w.tnorm_b, N);
    linear_forward(m->probs, m->xf, m->w.lm_head, NULL, N, Dt, V);
    token_logprob_forward(logp, m->probs, m->probs, bt->targets, N, V);
    m->last_B = B;
    m->last_T = T;
    m->last_n_images = bt->n_images;
    m->last_ids = bt->ids;
    m->last_targets = bt->targets;
    m->last_seg = bt->seg_start;
    return 0;
}

const float *vlm_last_hidden(const vlm *m) { return m->xf; }

void vlm_backward(vlm *m, const float *dlogp) {
    const vlm_config *c = &m->cfg;
    int B = m->last_B, T = m->last_T, P = m->num_patches, Dt = c->text.hidden_size, V = c->vocab_size;
    size_t N = (size_t)B * T;
    memset(m->dlogits, 0, N * V * sizeof(float));
    token_logprob_backward(m->dlogits, m->probs, m->last_targets, dlogp, (int)N, V);
    float *dxf = m->dn;
    linear_backward_set(dxf, c->tie_word_embeddings ? m->g.wte : m->g.lm_head, NULL, m->dlogits, m->xf,
                    m->w.lm_head, (int)N, Dt, V);
    memset(m->dx, 0, N * Dt * sizeof(float));
    if (m->tgeom.norm == VLM_NORM_RMS)
        rmsnorm_backward(m->dx, m->g.tnorm_w, dxf, text_last(m), m->w.tnorm_w, m->xf_rstd, (int)N, Dt);
    else
        layernorm_backward(m->dx, m->g.tnorm_w, m->g.tnorm_b, dxf, text_last(m), m->w.tnorm_w, m->xf_mean,
                           m->xf_rstd, (int)N, Dt);
    for (int l = c->text.num_layers - 1; l >= 0; l--)
        block_backward(&m->tgeom, &m->w.tblocks[l], &m->g.tblocks[l], &m->tblocks[l], m->dx, B, T,
                       m->pos, m->last_seg, m->rope_cos, m->rope_sin, m);
    /* image rows: their gradient flows to the image features, not to the embedding */
    int n_images = m->last_n_images;
    if (n_images > 0) {
        memset(m->dfeat, 0, (size_t)n_images * P * Dt * sizeof(float));
        for (int k = 0; k < m->n_splice; k++) {
            float *row = m->dx + (size_t)m->splice_rows[k] * Dt;
            add_inplace(m->dfeat + (size_t)m->splice_feat[k] * Dt, row, (size_t)Dt);
            memset(row, 0, (size_t)Dt * sizeof(float));
        }
    }
    embedding_backward(m->g.wte, m->dx, m->last_ids, (int)N, Dt);
    if (n_images > 0) vision_backward(m, m->dfeat, n_images);
}
