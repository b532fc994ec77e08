/* examples.h: tokenised training examples, their images, and padded batches.
 *
 * An example is one token sequence with a loss mask and (optionally) the index of its
 * image in the set's image table; examples may share an image. A batch gathers some
 * examples and packs them back to back into rows of about equal fill (batch_assemble),
 * so that almost no compute goes to padding; attention stays inside each example. It
 * turns the loss mask into next-token targets (targets[t] = ids[t+1] where token t+1 is
 * a response token, else -1), and copies the distinct images the examples use into one
 * contiguous buffer for the vision tower. */
#ifndef SEVO_TRAIN_EXAMPLES_H
#define SEVO_TRAIN_EXAMPLES_H

#include "core/error.h"
#include "core/rng.h"
#include "model/prompt.h"
#include "model/vlm.h"

typedef struct train_example {
    int *ids;
    unsigned char *loss;
    int n;
    int n_targets; /* tokens with a target: those after the first with loss set */
    int image;     /* index into the set's images, or -1 */
    float weight;  /* the example's share of the loss, per target token (1 by default) */
} train_example;

typedef struct example_set {
    train_example *ex;
    int n, cap;
    float *images;    /* [n_images, image_floats] */
    int n_images, cap_images, image_floats;
    char **image_paths;
    int last_loaded; /* the image example_set_image loaded last (-1: none), reused when its
                      * path repeats even after other images were added */
} example_set;

void example_set_init(example_set *s, int image_floats);
void example_set_free(example_set *s);
/* Copies seq (truncated to max_len tokens) in as a new example. */
int example_set_add(example_set *s, const tokseq *seq, int image, int max_len, sevo_error *err);
/* Loads an image (decoded, resized, normalised per the model config), reusing the one it
 * loaded last when path repeats. *index receives its slot. */
int example_set_image(example_set *s, const char *path, const vlm_config *c, int *index, sevo_error *err);
/* Adds a blank image: every pixel at the normalisation mean (zeros once normalised), an
 * image that carries no visual information. */
int example_set_blank_image(example_set *s, int *index, sevo_error *err);
/* Adds a corrupted copy of image src: of its patch_size x patch_size patches (the vision
 * tower's, on an image_size x image_size image; patch_size divides image_size, 2 to 4096
 * patches) each is kept with probability keep (in (0, 0.99]) and otherwise set to the
 * blank value, drawn from r. At least one patch is kept and one masked (the draw is
 * repeated until so), so the copy is neither the image nor the blank one. */
int example_set_masked_image(example_set *s, int src, int image_size, int patch_size, double keep,
                             sevo_rng *r, int *index, sevo_error *err);

typedef struct batch_buf {
    int *ids, *targets, *pos, *seg_start, *image_of; /* [B*T] */
    float *images;
    int *image_map; /* example image -> batch image slot, scratch */
    int *row_fill;  /* [n] scratch for packing: tokens in each row */
    int *ex_start;  /* [n]: flat index (row * T + column) of each example's first token */
    int *ex_row, *ex_order, *ex_pairs; /* [n], [n], [2n] scratch for packing */
    int cap_tokens, cap_images_batch, cap_images, cap_ex;
    int n_targets;  /* tokens with a target in the assembled batch */
    vlm_batch b;
} batch_buf;

void batch_buf_init(batch_buf *bb);
void batch_buf_free(batch_buf *bb);
/* Packs examples idx[0..n) into as many rows of row_len tokens as first fit needs
 * (longer examples get a row of their own length), then shortens the rows to the least
 * length at which first fit, longest example first, still holds them in that many rows
 * (B * T never exceeds the first fit's, nor n * max(row_len, longest)).
 * Example idx[i] occupies tokens ex_start[i] .. ex_start[i] + its length - 1 of the
 * flat [B*T] batch. */
int batch_assemble(batch_buf *bb, const example_set *s, const int *idx, int n, int pad_id, int row_len,
                   sevo_error *err);

/* Sum over the target tokens of the examples idx[0..n) of their weights, the
 * denominator of a weighted mean cross-entropy. */
double examples_target_weight(const example_set *s, const int *idx, int n);

/* For the batch just assembled from idx[0..n): dlogp[k] = scale * weight of token k's
 * example for every token with a target, 0 elsewhere; returns the sum over those tokens
 * of weight * -logp[k]. With scale = -1 / examples_target_weight(all micro-batches),
 * dlogp is the gradient of the weighted mean cross-entropy. */
double batch_weighted_nll(const batch_buf *bb, const example_set *s, const int *idx, int n, const float *logp,
                          float scale, float *dlogp);

#endif
