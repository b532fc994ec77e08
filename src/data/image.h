/* image.h: decoding an image file into the model's input tensor.
 *
 * An image becomes float[3 * size * size] in CHW order (channel planes R, G, B), each
 * value (pixel / 255 - mean[c]) / std[c], after a resize to size x size when the file is
 * not already that size (aspect ratio is not kept, as the reference's processors do not
 * keep it either for square vision towers). PNG and JPEG are decoded by stb_image. */
#ifndef SEVO_DATA_IMAGE_H
#define SEVO_DATA_IMAGE_H

#include "core/error.h"

/* Loads path into out[3*size*size]. Errors: "path: cannot open: ...",
 * "path: cannot decode image: <reason>". */
int image_load(const char *path, int size, const float mean[3], const float std[3], float *out,
               sevo_error *err);

/* A uniform mid-grey (128) image, normalised like image_load: the "blank image" input of
 * the language-shortcut evaluation. */
void image_blank(int size, const float mean[3], const float std[3], float *out);

#endif
