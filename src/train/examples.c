/* examples.c: example storage, image table, batch assembly and epoch ordering. */
#include "train/examples.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "data/image.h"

void example_set_init(example_set *s, int image_floats) {
    memset(s, 0, sizeof *s);
    s->image_floats = image_floats;
    s->last_loaded = -1;
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
    if (s->last_loaded >= 0 && !strcmp(s->image_paths[s->last_loaded], path)) {
        *index = s->last_loaded;
        return 0;
    }
    float *dst = push_image(s, path, err);
    if (!dst) return -1;
    if (image_load(path, c->image_size, c->image_mean, c->image_std, dst, err)) {
        free(s->image_paths[s->n_images]);
        return -1;
    }
    s->last_loaded = *index = s->n_images++;
    return 0;
}

int example_set_blank_image(example_set *s, int *index, sevo_error *err) {
    float *dst = push_image(s, "<blank>", err);
    if (!dst) return -1;
    memset(dst, 0, (size_t)s->image_floats * sizeof(float));
    *index = s->n_images++;
    return 0;
}

int example_set_masked_image(example_set *s, int src, int image_size, int patch_size, double keep, sevo_rng *r,
                             int *index, sevo_error *err) {
    enum { MAX_PATCHES = 4096 };
    /* keep at most 0.99: a keep so close to 1 that every draw keeps every patch would
     * never end the redraw below */
    int ok = src >= 0 && src < s->n_images && image_size > 0 && patch_size > 0 && image_size % patch_size == 0 &&
             s->image_floats % (image_size * image_size) == 0 && keep > 0 && keep <= 0.99;
    int grid = ok ? image_size / patch_size : 0, n_patches = grid * grid;
    if (!ok || n_patches < 2 || n_patches > MAX_PATCHES)
        return sevo_fail(err, "masked image: bad source %d, patch grid (%d / %d, 2 to %d patches) or keep %g",
                         src, image_size, patch_size, MAX_PATCHES, keep);
    char name[64];
    snprintf(name, sizeof name, "<masked %d>", src);
    float *dst = push_image(s, name, err); /* may move s->images: src is addressed after */
    if (!dst) return -1;
    memcpy(dst, s->images + (size_t)src * s->image_floats, (size_t)s->image_floats * sizeof(float));
    int channels = s->image_floats / (image_size * image_size), kept;
    unsigned char mask[MAX_PATCHES];
    do { /* redrawn when every patch or none is kept (on a 3 x 3 grid at keep 0.2, none is
          * kept in 13% of draws, so about 23% of the patches are kept, not 20%) */
        kept = 0;
        for (int p = 0; p < n_patches; p++) kept += mask[p] = sevo_rng_uniform(r) < keep;
    } while (kept == 0 || kept == n_patches);
    for (int p = 0; p < n_patches; p++) {
        if (mask[p]) continue;
        int y0 = p / grid * patch_size, x0 = p % grid * patch_size;
        for (int c = 0; c < channels; c++)
            for (int y = y0; y < y0 + patch_size; y++)
                memset(dst + ((size_t)c * image_size + y) * image_size + x0, 0, (size_t)patch_size * sizeof(float));
    }
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
    free(bb->ex_row);
    free(bb->ex_order);
    free(bb->ex_pairs);
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

/* Longest first, then in the order given (so that the packing is a function of idx). */
static int by_length_desc(const void *a, const void *b) {
    const int *x = a, *y = b; /* {length, position} */
    if (x[0] != y[0]) return x[0] > y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* First fit of the examples in `order` (positions into idx) into rows of length T:
 * row_of[position] and the number of rows used, or -1 when more than max_rows are needed. */
static int first_fit(const example_set *s, const int *idx, const int *order, int n, int T, int max_rows,
                     int *fill, int *row_of) {
    int B = 0;
    for (int k = 0; k < n; k++) {
        int i = order[k], len = s->ex[idx[i]].n, r = 0;
        while (r < B && fill[r] + len > T) r++;
        if (r == B) {
            if (B == max_rows) return -1;
            fill[B++] = 0;
        }
        fill[r] += len;
        row_of[i] = r;
    }
    return B;
}

/* Which row each example goes in, the number of rows and their length. First fit into
 * rows of row_len fixes the number of rows R; then the rows are made as short as they
 * can be while first fit, longest example first, still fits the examples into R rows.
 * Why: first fit alone fills the first rows and leaves the last one mostly empty, and
 * the empty part is computed like the rest (13% of the tiny SFT's tokens were padding);
 * balanced rows leave about 3%. */
static void pack_rows(batch_buf *bb, const example_set *s, const int *idx, int n, int row_len, int *B_out,
                     int *T_out) {
    int cap = row_len, longest = 0;
    long total = 0;
    for (int i = 0; i < n; i++) {
        int len = s->ex[idx[i]].n;
        longest = len > longest ? len : longest;
        total += len;
    }
    cap = longest > cap ? longest : cap;
    if (n == 0) {
        *B_out = 0;
        *T_out = cap;
        return;
    }
    int *fill = bb->row_fill, *row_of = bb->ex_row, *order = bb->ex_order, *pairs = bb->ex_pairs;
    for (int i = 0; i < n; i++) order[i] = i;
    /* n >= 1 examples of at most cap tokens: n rows always hold them, so R >= 1 */
    int R = first_fit(s, idx, order, n, cap, n, fill, row_of);
    for (int i = 0; i < n; i++) pairs[2 * i] = s->ex[idx[i]].n, pairs[2 * i + 1] = i;
    qsort(pairs, (size_t)n, 2 * sizeof(int), by_length_desc);
    for (int i = 0; i < n; i++) order[i] = pairs[2 * i + 1];
    int lo = (int)((total + R - 1) / R);
    lo = lo > longest ? lo : longest;
    for (int T = lo; T < cap; T++) {
        int rows = first_fit(s, idx, order, n, T, R, fill, row_of);
        if (rows >= 0) {
            *B_out = rows; /* longest first may need fewer rows than first fit did */
            *T_out = T;
            return;
        }
    }
    /* no shorter fit: the first fit at full length */
    for (int i = 0; i < n; i++) order[i] = i;
    *B_out = first_fit(s, idx, order, n, cap, n, fill, row_of);
    *T_out = cap;
}

int batch_assemble(batch_buf *bb, const example_set *s, const int *idx, int n, int pad_id, int row_len,
                   sevo_error *err) {
    int ex_cap = bb->cap_ex, e0 = ex_cap, e1 = ex_cap, e2 = ex_cap, e3 = ex_cap, e4 = 2 * ex_cap;
    if (grow_ints(&bb->ex_start, &e0, n, err) || grow_ints(&bb->ex_row, &e1, n, err) ||
        grow_ints(&bb->ex_order, &e2, n, err) || grow_ints(&bb->row_fill, &e3, n, err) ||
        grow_ints(&bb->ex_pairs, &e4, 2 * n, err))
        return -1;
    if (n > ex_cap) bb->cap_ex = n;
    int B = 0, T = 0;
    pack_rows(bb, s, idx, n, row_len, &B, &T);
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
        int r = bb->ex_row[i];
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
