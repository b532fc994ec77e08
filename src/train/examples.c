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
    e->image = image;
    s->n++;
    return 0;
}

int example_set_image(example_set *s, const char *path, const vlm_config *c, int *index, sevo_error *err) {
    if (s->n_images > 0 && !strcmp(s->image_paths[s->n_images - 1], path)) {
        *index = s->n_images - 1;
        return 0;
    }
    if (s->n_images == s->cap_images) {
        int cap = s->cap_images ? s->cap_images * 2 : 256;
        float *im = realloc(s->images, (size_t)cap * s->image_floats * sizeof(float));
        if (!im) return sevo_fail(err, "out of memory (images)");
        s->images = im;
        char **paths = realloc(s->image_paths, (size_t)cap * sizeof *paths);
        if (!paths) return sevo_fail(err, "out of memory (images)");
        s->image_paths = paths;
        s->cap_images = cap;
    }
    float *dst = s->images + (size_t)s->n_images * s->image_floats;
    if (image_load(path, c->image_size, c->image_mean, c->image_std, dst, err)) return -1;
    s->image_paths[s->n_images] = strdup(path);
    if (!s->image_paths[s->n_images]) return sevo_fail(err, "out of memory (images)");
    *index = s->n_images++;
    return 0;
}

void batch_buf_init(batch_buf *bb) { memset(bb, 0, sizeof *bb); }

void batch_buf_free(batch_buf *bb) {
    free(bb->ids);
    free(bb->targets);
    free(bb->image_of);
    free(bb->images);
    free(bb->image_map);
    memset(bb, 0, sizeof *bb);
}

int batch_assemble(batch_buf *bb, const example_set *s, const int *idx, int n, int pad_id, sevo_error *err) {
    int T = 1;
    for (int i = 0; i < n; i++) T = s->ex[idx[i]].n > T ? s->ex[idx[i]].n : T;
    size_t tokens = (size_t)n * T;
    if ((int)tokens > bb->cap_tokens) {
        free(bb->ids);
        free(bb->targets);
        bb->ids = malloc(tokens * sizeof(int));
        bb->targets = malloc(tokens * sizeof(int));
        if (!bb->ids || !bb->targets) return sevo_fail(err, "out of memory (batch)");
        bb->cap_tokens = (int)tokens;
    }
    if (n > bb->cap_B) {
        free(bb->image_of);
        free(bb->images);
        bb->image_of = malloc((size_t)n * sizeof(int));
        bb->images = malloc((size_t)n * s->image_floats * sizeof(float));
        if (!bb->image_of || !bb->images) return sevo_fail(err, "out of memory (batch)");
        bb->cap_B = n;
    }
    if (s->n_images > bb->cap_images) {
        free(bb->image_map);
        bb->image_map = malloc((size_t)s->n_images * sizeof(int));
        if (!bb->image_map) return sevo_fail(err, "out of memory (batch)");
        bb->cap_images = s->n_images;
    }
    for (int i = 0; i < n; i++)
        if (s->ex[idx[i]].image >= 0) bb->image_map[s->ex[idx[i]].image] = -1;
    int n_img = 0;
    bb->n_targets = 0;
    for (int i = 0; i < n; i++) {
        const train_example *e = &s->ex[idx[i]];
        int *ids = bb->ids + (size_t)i * T, *tg = bb->targets + (size_t)i * T;
        for (int t = 0; t < T; t++) {
            ids[t] = t < e->n ? e->ids[t] : pad_id;
            tg[t] = (t + 1 < e->n && e->loss[t + 1]) ? e->ids[t + 1] : -1;
            bb->n_targets += tg[t] >= 0;
        }
        bb->image_of[i] = -1;
        if (e->image >= 0) {
            /* one slot per distinct image of the batch (a DPO pair shares its image) */
            int slot = bb->image_map[e->image];
            if (slot < 0) {
                bb->image_map[e->image] = n_img;
                slot = n_img++;
                memcpy(bb->images + (size_t)slot * s->image_floats,
                       s->images + (size_t)e->image * s->image_floats, (size_t)s->image_floats * sizeof(float));
            }
            bb->image_of[i] = slot;
        }
    }
    bb->b = (vlm_batch){.B = n, .T = T, .ids = bb->ids, .targets = bb->targets, .images = bb->images,
                        .n_images = n_img, .image_of = bb->image_of};
    return 0;
}

int epoch_max_batches(const example_set *s, int bs) { return (s->n + bs - 1) / bs; }

int epoch_order(const example_set *s, int bs, uint64_t seed, int epoch, int *order, int *batch_start,
                sevo_error *err) {
    (void)err;
    int n = s->n;
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 0xe90c + (uint64_t)epoch);
    for (int i = 0; i < n; i++) order[i] = i;
    sevo_rng_shuffle(&rng, order, n);
    int nb = 0;
    for (int b = 0; b < n; b += bs) batch_start[nb++] = b;
    batch_start[nb] = n;
    return nb;
}
