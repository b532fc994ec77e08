/* vlm_session.c: generation with a KV cache, one sequence per session.
 *
 * A session owns the keys and values of every decoder layer for up to max_len
 * positions, the image features of its current image, and scratch for the rows being
 * fed. Feeding n tokens runs the same block code as training (block_forward) with the
 * cache attached, so generation and training compute the same function; a test
 * checks that tokens generated with the cache equal those recomputed from scratch.
 * vlm_sessions_step feeds one token to each of several sessions as one batch (the
 * same block halves, each row attending to its own cache), bitwise as one at a time. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/vlm_internal.h"

/* each row of a step must be computed as if alone (see vlm_sessions_step) */
_Static_assert(VLM_STEP_MAX_ROWS <= LINEAR_FEW_ROWS, "a batched step must stay on the row-by-row products");

struct vlm_session {
    vlm *m;
    int max_len, len;
    int img_cursor, has_image;
    int *ids;          /* [max_len] tokens fed so far */
    int *pos;          /* [max_len] */
    float *kc, *vc;    /* [L, max_len, Dkv] */
    float *x;          /* [rows, D] residual stream of the rows being fed; rows =
                        * max(max_len, VLM_STEP_MAX_ROWS): a prompt or a batched step */
    float *mem;        /* block activations for those rows (reused by every layer) */
    block_acts acts;
    float *attn_scratch;
    float *hidden, *norm_tmp, *logits;
    /* vlm_sessions_step's rows: final hidden states, logits, norm statistics */
    float *step_hidden, *step_logits, *step_stats;
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
    /* rows fed at once: a prompt (up to max_len) or a batched step */
    int rows = max_len > VLM_STEP_MAX_ROWS ? max_len : VLM_STEP_MAX_ROWS;
    s->x = sevo_malloc((size_t)rows * D * sizeof(float), "session", err);
    /* B=1, T=1 for the att term: cached attention never stores probabilities */
    size_t acts = block_acts_floats(&m->tgeom, rows, 1, 1);
    s->mem = sevo_malloc(acts * sizeof(float), "session activations", err);
    s->attn_scratch = sevo_malloc((size_t)omp_get_max_threads() * max_len * sizeof(float), "session", err);
    s->hidden = sevo_malloc((size_t)D * sizeof(float), "session", err);
    s->norm_tmp = sevo_malloc(2 * sizeof(float), "session", err);
    s->logits = sevo_malloc((size_t)c->vocab_size * sizeof(float), "session", err);
    s->step_hidden = sevo_malloc((size_t)VLM_STEP_MAX_ROWS * D * sizeof(float), "session", err);
    s->step_logits = sevo_malloc((size_t)VLM_STEP_MAX_ROWS * c->vocab_size * sizeof(float), "session", err);
    s->step_stats = sevo_malloc(2 * VLM_STEP_MAX_ROWS * sizeof(float), "session", err);
    if (!s->ids || !s->pos || !s->kc || !s->vc || !s->x || !s->mem || !s->attn_scratch ||
        !s->hidden || !s->norm_tmp || !s->logits || !s->step_hidden || !s->step_logits || !s->step_stats ||
        vision_acts_alloc(&s->vis, m, 1, err)) {
        vlm_session_free(s);
        return -1;
    }
    float *cur = s->mem;
    block_acts_bind(&s->acts, &m->tgeom, &cur, rows, 1, 1);
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
    free(s->step_hidden);
    free(s->step_logits);
    free(s->step_stats);
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

int vlm_session_check_feed(const vlm_session *s, const int *ids, int n, sevo_error *err) {
    const vlm_config *c = &s->m->cfg;
    if (s->len + n > s->max_len)
        return sevo_fail(err, "sequence of %d tokens exceeds the session's %d", s->len + n, s->max_len);
    for (int i = 0, img = s->img_cursor; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= c->vocab_size) return sevo_fail(err, "token id %d outside the vocabulary", ids[i]);
        if (ids[i] != c->image_token_id) continue;
        if (!s->has_image) return sevo_fail(err, "image token fed but no image was set");
        if (img++ >= s->m->num_patches)
            return sevo_fail(err, "more image tokens than the image's %d patches", s->m->num_patches);
    }
    return 0;
}

/* Writes the input rows of n checked tokens (an image token takes the image's next
 * patch) into x [n, D] and appends the ids to the sequence (not yet to len). */
static void session_embed(vlm_session *s, const int *ids, int n, float *x) {
    const vlm *m = s->m;
    int D = m->cfg.text.hidden_size;
    for (int i = 0; i < n; i++) {
        const float *src = ids[i] == m->cfg.image_token_id ? s->vis.feats + (size_t)s->img_cursor++ * D
                                                           : m->w.wte + (size_t)ids[i] * D;
        memcpy(x + (size_t)i * D, src, (size_t)D * sizeof(float));
        s->ids[s->len + i] = ids[i];
    }
}

int vlm_session_feed(vlm_session *s, const int *ids, int n, sevo_error *err) {
    vlm *m = s->m;
    const vlm_config *c = &m->cfg;
    int D = c->text.hidden_size;
    size_t Dkv = (size_t)m->tgeom.KVH * m->tgeom.hd;
    if (n <= 0) return 0;
    if (vlm_session_check_feed(s, ids, n, err)) return -1;
    session_embed(s, ids, n, s->x);
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

/* One token for each of n sessions as one batch of n rows: the weights are read once
 * for all of them (generation is bound by reading the weights), while each row attends
 * to its own cache. Every kernel here computes a row the same whatever the other rows
 * (products of up to LINEAR_FEW_ROWS rows are dot products row by row; norms, rope and
 * activations are per row or per element), so each session ends exactly as
 * vlm_session_feed(ss[i], &ids[i], 1) would leave it; tests/model/test_vlm.c checks the
 * bits. The rows' activations are ss[0]'s, each row's attention scratch its own
 * session's. At most VLM_STEP_MAX_ROWS rows at a time. */
static void sessions_step_rows(vlm_session *const *ss, const int *ids, int n) {
    vlm_session *s0 = ss[0];
    vlm *m = s0->m;
    const block_geom *g = &m->tgeom;
    const vlm_config *c = &m->cfg;
    int D = g->D, V = c->vocab_size, H = g->H, hd = g->hd;
    size_t Dkv = (size_t)g->KVH * hd;
    block_acts *a = &s0->acts;
    int pos[VLM_STEP_MAX_ROWS];
    for (int i = 0; i < n; i++) {
        session_embed(ss[i], &ids[i], 1, s0->x + (size_t)i * D);
        pos[i] = ss[i]->pos[ss[i]->len];
    }
    for (int l = 0; l < c->text.num_layers; l++) {
        block_qkv_forward(g, &m->w.tblocks[l], a, s0->x, n, pos, m->rope_cos, m->rope_sin, a->k, a->v);
        for (int i = 0; i < n; i++) {
            vlm_session *s = ss[i];
            float *kc = s->kc + (size_t)l * s->max_len * Dkv, *vc = s->vc + (size_t)l * s->max_len * Dkv;
            memcpy(kc + (size_t)s->len * Dkv, a->k + (size_t)i * Dkv, Dkv * sizeof(float));
            memcpy(vc + (size_t)s->len * Dkv, a->v + (size_t)i * Dkv, Dkv * sizeof(float));
            /* row i's own scratch: it is sized for its session's max_len */
            attention_cached_forward(a->ao + (size_t)i * D, a->q + (size_t)i * D, kc, vc, 1, s->len + 1, H, g->KVH,
                                     hd, s->attn_scratch);
        }
        block_out_forward(g, &m->w.tblocks[l], a, n);
        memcpy(s0->x, a->x_out, (size_t)n * D * sizeof(float));
    }
    norm_forward(g, s0->step_hidden, s0->step_stats, s0->step_stats + VLM_STEP_MAX_ROWS, s0->x, m->w.tnorm_w,
                 m->w.tnorm_b, n);
    linear_forward(s0->step_logits, s0->step_hidden, m->w.lm_head, NULL, n, D, V);
    for (int i = 0; i < n; i++) {
        memcpy(ss[i]->hidden, s0->step_hidden + (size_t)i * D, (size_t)D * sizeof(float));
        memcpy(ss[i]->logits, s0->step_logits + (size_t)i * V, (size_t)V * sizeof(float));
        ss[i]->len++;
    }
}

void vlm_sessions_step(vlm_session *const *ss, const int *ids, int n) {
    for (int i0 = 0; i0 < n; i0 += VLM_STEP_MAX_ROWS)
        sessions_step_rows(ss + i0, ids + i0, n - i0 < VLM_STEP_MAX_ROWS ? n - i0 : VLM_STEP_MAX_ROWS);
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
