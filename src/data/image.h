/* image.h: decoding an image file into the model's input tensor.
 *
 * An image becomes float[3 * size * size] in CHW order (channel planes R, G, B), each
 * value (pixel / 255 - mean[c]) / std[c], after a resize to size x size when the file is
 * not already that size (aspect ratio is not kept, as the reference's processors do not
 * keep it either for square vision towers). PNG and JPEG are decoded by stb_image; other
 * formats are refused. */
#ifndef SEVO_DATA_IMAGE_H
#define SEVO_DATA_IMAGE_H

#include "core/error.h"

/* The most pixels an image may have. A header of a few bytes can declare 2^24 x 2^24
 * pixels, which stb_image would allocate gigabytes for and decode for seconds; sevo
 * resizes every image to the model's few hundred pixels a side anyway, and a
 * 48-megapixel photograph (8064 x 6048) still fits under 2^26. */
#define IMAGE_MAX_PIXELS (1L << 26)

/* Loads path into out[3*size*size]. Only PNG and JPEG files of at most IMAGE_MAX_PIXELS
 * pixels are decoded. Errors: "path: cannot open: ...", "path: cannot decode image:
 * <reason>". */
int image_load(const char *path, int size, const float mean[3], const float std[3], float *out,
               sevo_error *err);

/* Reads the width and height of the image at path without decoding its pixels, after
 * the same checks as image_load, with the same errors. */
int image_info(const char *path, int *w, int *h, sevo_error *err);

/* A uniform mid-grey (128) image, normalised like image_load: the "blank image" input of
 * the language-shortcut evaluation. */
void image_blank(int size, const float mean[3], const float std[3], float *out);

#endif
