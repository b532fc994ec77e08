/* image.c: image file -> normalised CHW float tensor, through stb_image and
 * stb_image_resize (their implementations live in the linked libstb). */
#include "data/image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

/* One pixel value, with the operations in torchvision's order (ToTensor divides by 255,
 * Normalize subtracts the mean and divides by the std), so results match it bit for bit. */
static float norm_value(unsigned char p, float mean, float std) {
    return ((float)p / 255.0f - mean) / std;
}

/* HWC bytes (3 channels) -> normalised CHW floats. */
static void normalise(const unsigned char *rgb, int size, const float mean[3], const float std[3],
                      float *out) {
    size_t plane = (size_t)size * (size_t)size;
    for (int c = 0; c < 3; c++) {
        float *o = out + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++)
            o[i] = norm_value(rgb[3 * i + (size_t)c], mean[c], std[c]);
    }
}

int image_load(const char *path, int size, const float mean[3], const float std[3], float *out,
               sevo_error *err) {
    if (size < 1) return sevo_fail(err, "%s: invalid image size %d", path, size);
    /* Open the file ourselves: stb_image reports a missing file and a corrupt one alike. */
    FILE *f = fopen(path, "rb");
    if (!f) return sevo_fail(err, "%s: cannot open: %s", path, strerror(errno));
    int w = 0, h = 0, channels = 0;
    unsigned char *pixels = stbi_load_from_file(f, &w, &h, &channels, 3);
    fclose(f);
    if (!pixels) return sevo_fail(err, "%s: cannot decode image: %s", path, stbi_failure_reason());
    const unsigned char *rgb = pixels;
    unsigned char *resized = NULL;
    if (w != size || h != size) {
        resized = sevo_malloc((size_t)size * (size_t)size * 3, "resized image", err);
        if (!resized) {
            stbi_image_free(pixels);
            return sevo_fail_prefix(err, "%s", path);
        }
        if (!stbir_resize_uint8(pixels, w, h, 0, resized, size, size, 0, 3)) {
            free(resized);
            stbi_image_free(pixels);
            return sevo_fail(err, "%s: cannot resize %dx%d to %dx%d", path, w, h, size, size);
        }
        rgb = resized;
    }
    normalise(rgb, size, mean, std, out);
    free(resized);
    stbi_image_free(pixels);
    return 0;
}

void image_blank(int size, const float mean[3], const float std[3], float *out) {
    size_t plane = (size_t)size * (size_t)size;
    for (int c = 0; c < 3; c++) {
        float v = norm_value(128, mean[c], std[c]); /* equal to a grey file's values */
        for (size_t i = 0; i < plane; i++)
            out[(size_t)c * plane + i] = v;
    }
}
