/* vlm_session.c: single-sequence generation with a KV cache.
 *
 * A session owns the keys and values of every decoder layer for up to max_len
 * positions, the image features of its current image, and scratch for the rows being
 * fed. Feeding n tokens runs the same block code as training (block_forward) with the
 * cache attached, so generation and training compute the same function; a test
 * checks that tokens generated with the cache equal those recomputed from scratch. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/vlm_internal.h"

struct vlm_session {
    vlm *m;
    int max_len, len;
    int img_cursor, has_image;
    int *ids;          /* [max_len] tokens fed so far */
    int *pos;          /* [max_len] */
    float *kc, *vc;    /* [L, max_len, Dkv] */
    float *x;          /* [max_len, D] residual stream of the rows being fed */
    float *mem;        /* block activations for max_len rows (reused by every layer) */
    block_acts acts;
    float *attn_scratch;
    float *hidden, *norm_tmp, *logits;
    vision_acts vis;
};

int vlm_session_create(vlm_session **out, vlm *m, int max_len, sevo_error *err) {
    *out = NULL;
    const vlm_config *c = &m->cfg;
    if (max_len > c->max_position_embeddings) max_len = c->max_position_embeddings;
    vlm_session *s = sevo_calloc(1, sizeof *s, "session", err);
    if (!s) return -1;
    s->m = m;
    s->max_len = max_len;
    int L = c->text.num_layers, D = c->text.hidden_size;
    size_t Dkv = (size_t)m->tgeom.KVH * m->tgeom.hd;
    s->ids = sevo_malloc((size_t)max_len * sizeof(int), "session", err);
    s->pos = sevo_malloc((size_t)max_len * sizeof(int), "session", err);
    s->kc = sevo_malloc((size_t)(L ? L : 1) * max_len * Dkv * sizeof(float), "KV cache", err);
    s->vc = sevo_malloc((size_t)(L ? L : 1) * max_len * Dkv * sizeof(float), "KV cache", err);
    s->x = sevo_malloc((size_t)max_len * D * sizeof(float), "session", err);
    /* B=1, T=1 for the att term: cached attention never stores probabilities */
    size_t acts = block_acts_floats(&m->tgeom, max_len, 1, 1);
    s->mem = sevo_malloc(acts * sizeof(float), "session activations", err);
    s->attn_scratch = sevo_malloc((size_t)omp_get_max_threads() * max_len * sizeof(float), "session", err);
    s->hidden = sevo_malloc((size_t)D * sizeof(float), "session", err);
    s->norm_tmp = sevo_malloc(2 * sizeof(float), "session", err);
    s->logits = sevo_malloc((size_t)c->vocab_size * sizeof(float), "session", err);
    if (!s->ids || !s->pos || !s->kc || !s->vc || !s->x || !s->mem || !s->attn_scratch ||
        !s->hidden || !s->norm_tmp || !s->logits || vision_acts_alloc(&s->vis, m, 1, err)) {
        vlm_session_free(s);
        return -1;
    }
    float *cur = s->mem;
    block_acts_bind(&s->acts, &m->tgeom, &cur, max_len, 1, 1);
    for (int i = 0; i < max_len; i++) s->pos[i] = i;
    *out = s;
    return 0;
}

void vlm_session_free(vlm_session *s) {
    if (!s) return;
    free(s->ids);
    free(s->pos);
    free(s->kc);
    free(s->vc);
    free(s->x);
    free(s->mem);
    free(s->attn_scratch);
    free(s->hidden);
    free(s->norm_tmp);
    free(s->logits);
    vision_acts_free(&s->vis, s->m);
    free(s);
}

void vlm_session_reset(vlm_session *s) {
    s->len = 0;
    s->img_cursor = 0;
    s->has_image = 0; /* a sequence never sees the previous one's image */
}

int vlm_session_len(const vlm_session *s) { return s->len; }

void vlm_session_set_image(vlm_session *s, const float *image) {
    vision_forward(s->m, &s->vis, image, 1);
    s->has_image = 1;
    s->img_cursor = 0;
}

int vlm_session_feed(vlm_session *s, const int *ids, int n, sevo_error *err) {
    vlm *m = s->m;
    const vlm_config *c = &m->cfg;
    int D = c->text.hidden_size, P = m->num_patches;
    size_t Dkv = (size_t)m->tgeom.KVH * m->tgeom.hd;
    if (n <= 0) return 0;
    if (s->len + n > s->max_len)
        return sevo_fail(err, "sequence of %d tokens exceeds the session's %d", s->len + n, s->max_len);
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= c->vocab_size) return sevo_fail(err, "token id %d outside the vocabulary", id);
        float *row = s->x + (size_t)i * D;
        if (id == c->image_token_id) {
            if (!s->has_image) return sevo_fail(err, "image token fed but no image was set");
            if (s->img_cursor >= P) return sevo_fail(err, "more image tokens than the image's %d patches", P);
            memcpy(row, s->vis.feats + (size_t)s->img_cursor++ * D, (size_t)D * sizeof(float));
        } else {
            memcpy(row, m->w.wte + (size_t)id * D, (size_t)D * sizeof(float));
        }
        s->ids[s->len + i] = id;
    }
    for (int l = 0; l < c->text.num_layers; l++) {
        float *kc = s->kc + (size_t)l * s->max_len * Dkv, *vc = s->vc + (size_t)l * s->max_len * Dkv;
        block_forward(&m->tgeom, &m->w.tblocks[l], &s->acts, s->x, 1, n, s->pos + s->len, NULL,
                      m->rope_cos, m->rope_sin, kc, vc, s->len, s->attn_scratch);
        memcpy(s->x, s->acts.x_out, (size_t)n * D * sizeof(float));
    }
    const float *last = s->x + (size_t)(n - 1) * D;
    norm_forward(&m->tgeom, s->hidden, s->norm_tmp, s->norm_tmp + 1, last, m->w.tnorm_w, m->w.tnorm_b, 1);
    linear_forward(s->logits, s->hidden, m->w.lm_head, NULL, 1, D, c->vocab_size);
    s->len += n;
    return 0;
}

const float *vlm_session_logits(const vlm_session *s) { return s->logits; }
const float *vlm_session_hidden(const vlm_session *s) { return s->hidden; }

void vlm_session_truncate(vlm_session *s, int len) {
    if (len < 0 || len > s->len) return;
    s->len = len;
    int img = 0;
    for (int i = 0; i < len; i++) img += s->ids[i] == s->m->cfg.image_token_id;
    s->img_cursor = img;
}
