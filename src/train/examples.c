/* examples.c: example storage, image table, batch assembly and epoch ordering. */
#include "train/examples.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "data/image.h"

void example_set_init(example_set *s, int image_floats) {
    memset(s, 0, sizeof *s);
    s->image_floats = image_floats;
}

void example_set_free(example_set *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->ex[i].ids);
        free(s->ex[i].loss);
    }
    free(s->ex);
    for (int i = 0; i < s->n_images; i++) free(s->image_paths[i]);
    free(s->image_paths);
    free(s->images);
    memset(s, 0, sizeof *s);
}

int example_set_add(example_set *s, const tokseq *seq, int image, int max_len, sevo_error *err) {
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 1024;
        train_example *ex = realloc(s->ex, (size_t)cap * sizeof *ex);
        if (!ex) return sevo_fail(err, "out of memory (examples)");
        s->ex = ex;
        s->cap = cap;
    }
    int n = seq->n < max_len ? seq->n : max_len;
    train_example *e = &s->ex[s->n];
    e->ids = malloc((size_t)n * sizeof *e->ids);
    e->loss = malloc((size_t)n);
    if (!e->ids || !e->loss) {
        free(e->ids);
        free(e->loss);
        return sevo_fail(err, "out of memory (examples)");
    }
    memcpy(e->ids, seq->ids, (size_t)n * sizeof *e->ids);
    memcpy(e->loss, seq->loss, (size_t)n);
    e->n = n;
    e->n_targets = 0;
    for (int t = 1; t < n; t++) e->n_targets += e->loss[t] != 0;
    e->image = image;
    e->weight = 1.0f;
    s->n++;
    return 0;
}

/* Makes room for one more image and records its name; returns its slot's pixels. */
static float *push_image(example_set *s, const char *name, sevo_error *err) {
    if (s->n_images == s->cap_images) {
        int cap = s->cap_images ? s->cap_images * 2 : 256;
        float *im = realloc(s->images, (size_t)cap * s->image_floats * sizeof(float));
        if (!im) return sevo_fail(err, "out of memory (images)"), NULL;
        s->images = im;
        char **paths = realloc(s->image_paths, (size_t)cap * sizeof *paths);
        if (!paths) return sevo_fail(err, "out of memory (images)"), NULL;
        s->image_paths = paths;
        s->cap_images = cap;
    }
    if (!(s->image_paths[s->n_images] = strdup(name))) return sevo_fail(err, "out of memory (images)"), NULL;
    return s->images + (size_t)s->n_images * s->image_floats;
}

int example_set_image(example_set *s, const char *path, const vlm_config *c, int *index, sevo_error *err) {
    if (s->n_images > 0 && !strcmp(s->image_paths[s->n_images - 1], path)) {
        *index = s->n_images - 1;
        return 0;
    }
    float *dst = push_image(s, path, err);
    if (!dst) return -1;
    if (image_load(path, c->image_size, c->image_mean, c->image_std, dst, err)) {
        free(s->image_paths[s->n_images]);
        return -1;
    }
    *index = s->n_images++;
    return 0;
}

int example_set_blank_image(example_set *s, int *index, sevo_error *err) {
    float *dst = push_image(s, "<blank>", err);
    if (!dst) return -1;
    memset(dst, 0, (size_t)s->image_floats * sizeof(float));
    *index = s->n_images++;
    return 0;
}

void batch_buf_init(batch_buf *bb) { memset(bb, 0, sizeof *bb); }

void batch_buf_free(batch_buf *bb) {
    free(bb->ids);
    free(bb->targets);
    free(bb->pos);
    free(bb->seg_start);
    free(bb->image_of);
    free(bb->images);
    free(bb->image_map);
    free(bb->row_fill);
    free(bb->ex_start);
    memset(bb, 0, sizeof *bb);
}

/* Grows an int buffer to at least n entries. */
static int grow_ints(int **p, int *cap, int n, sevo_error *err) {
    if (n <= *cap) return 0;
    int *q = realloc(*p, (size_t)n * sizeof *q);
    if (!q) return sevo_fail(err, "out of memory (batch)");
    *p = q;
    *cap = n;
    return 0;
}

int batch_assemble(batch_buf *bb, const example_set *s, const int *idx, int n, int pad_id, int row_len,
                   sevo_error *err) {
    int T = row_len;
    for (int i = 0; i < n; i++) T = s->ex[idx[i]].n > T ? s->ex[idx[i]].n : T;
    /* first fit: each example goes into the first row with room */
    int rows_cap = bb->cap_rows;
    if (grow_ints(&bb->row_fill, &rows_cap, n, err)) return -1;
    bb->cap_rows = rows_cap;
    int ex_cap = bb->cap_ex;
    if (grow_ints(&bb->ex_start, &ex_cap, n, err)) return -1;
    bb->cap_ex = ex_cap;
    int B = 0;
    for (int i = 0; i < n; i++) {
        int len = s->ex[idx[i]].n, r = 0;
        while (r < B && bb->row_fill[r] + len > T) r++;
        if (r == B) bb->row_fill[B++] = 0;
        bb->row_fill[r] += len;
    }
    int tokens = B * T, cap = bb->cap_tokens;
    int c1 = cap, c2 = cap, c3 = cap, c4 = cap, c5 = cap;
    if (grow_ints(&bb->ids, &c1, tokens, err) || grow_ints(&bb->targets, &c2, tokens, err) ||
        grow_ints(&bb->pos, &c3, tokens, err) || grow_ints(&bb->seg_start, &c4, tokens, err) ||
        grow_ints(&bb->image_of, &c5, tokens, err))
        return -1;
    bb->cap_tokens = c1;
    if (n > bb->cap_images_batch) {
        float *im = realloc(bb->images, (size_t)n * s->image_floats * sizeof(float));
        if (!im) return sevo_fail(err, "out of memory (batch)");
        bb->images = im;
        bb->cap_images_batch = n;
    }
    int cim = bb->cap_images;
    if (grow_ints(&bb->image_map, &cim, s->n_images, err)) return -1;
    bb->cap_images = cim;
    /* padding: each pad token is its own one-token sequence, predicting nothing */
    for (int i = 0; i < tokens; i++) {
        bb->ids[i] = pad_id;
        bb->targets[i] = -1;
        bb->pos[i] = 0;
        bb->seg_start[i] = i % T;
        bb->image_of[i] = -1;
    }
    for (int i = 0; i < n; i++)
        if (s->ex[idx[i]].image >= 0) bb->image_map[s->ex[idx[i]].image] = -1;
    for (int r = 0; r < B; r++) bb->row_fill[r] = 0;
    int n_img = 0;
    bb->n_targets = 0;
    for (int i = 0; i < n; i++) {
        const train_example *e = &s->ex[idx[i]];
        int r = 0;
        while (bb->row_fill[r] + e->n > T) r++;
        int start = r * T + bb->row_fill[r];
        bb->row_fill[r] += e->n;
        bb->ex_start[i] = start;
        int slot = -1;
        if (e->image >= 0) {
            /* one slot per distinct image of the batch (a DPO pair shares its image) */
            slot = bb->image_map[e->image];
            if (slot < 0) {
                slot = bb->image_map[e->image] = n_img++;
                memcpy(bb->images + (size_t)slot * s->image_floats,
                       s->images + (size_t)e->image * s->image_floats, (size_t)s->image_floats * sizeof(float));
            }
        }
        for (int t = 0; t < e->n; t++) {
            int k = start + t;
            bb->ids[k] = e->ids[t];
            bb->targets[k] = (t + 1 < e->n && e->loss[t + 1]) ? e->ids[t + 1] : -1;
            bb->n_targets += bb->targets[k] >= 0;
            bb->pos[k] = t;
            bb->seg_start[k] = start - r * T;
            bb->image_of[k] = slot;
        }
    }
    bb->b = (vlm_batch){.B = B, .T = T, .ids = bb->ids, .targets = bb->targets, .pos = bb->pos,
                        .seg_start = bb->seg_start, .images = bb->images, .n_images = n_img,
                        .image_of = bb->image_of};
    return 0;
}

double examples_target_weight(const example_set *s, const int *idx, int n) {
    double w = 0;
    for (int i = 0; i < n; i++) w += (double)s->ex[idx[i]].weight * s->ex[idx[i]].n_targets;
    return w;
}

double batch_weighted_nll(const batch_buf *bb, const example_set *s, const int *idx, int n, const float *logp,
                          float scale, float *dlogp) {
    int N = bb->b.B * bb->b.T;
    for (int k = 0; k < N; k++) dlogp[k] = 0.0f;
    double nll = 0;
    for (int i = 0; i < n; i++) {
        const train_example *e = &s->ex[idx[i]];
        for (int t = 0, k = bb->ex_start[i]; t < e->n; t++, k++)
            if (bb->targets[k] >= 0) {
                dlogp[k] = scale * e->weight;
                nll -= (double)e->weight * logp[k];
            }
    }
    return nll;
}
