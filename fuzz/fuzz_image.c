/* fuzz_image.c: libFuzzer target for image decoding as sevo does it for every sample
 * and every `--image`: image_load (src/data/image.c) on the file, which checks it, decodes
 * it with stb_image, resizes it to the model's size with stb_image_resize and normalises
 * it into the CHW float tensor; and image_info, the same checks without the decoding.
 *
 * The model size is 30, sevo-tiny's image_size (the resize runs for every other size),
 * with its mean and std of 0.5. stb_image itself is compiled into this target from the
 * same Debian headers (fuzz/stb_image_impl.c, fuzz/stb_image_resize_impl.c),
 * instrumented and sanitised, in place of the prebuilt libstb that sevo links otherwise.
 *
 * Images that pass the checks but have over FUZZ_MAX_PIXELS pixels are not decoded
 * here: instrumented, decoding and resizing take about 0.25 us a pixel, so an image at
 * sevo's limit (IMAGE_MAX_PIXELS, 67 Mpx) would run for 15 s, a hang to libFuzzer, and
 * the decoder's code is the same for 2 Mpx as for 67. Checked: image_info and image_load
 * agree on what they refuse, and a decoded image gives values in [-1, 1]. */
#include <stdint.h>

#include "data/image.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SIZE 30
#define FUZZ_MAX_PIXELS (1L << 21)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[1100];
    static float out[3 * SIZE * SIZE];
    static const float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.5f, 0.5f, 0.5f};
    if (!path[0]) fuzz_path(path, sizeof path, "image");
    fuzz_write(path, data, size);

    sevo_error err;
    int w = 0, h = 0;
    int info = image_info(path, &w, &h, &err);
    if (info == 0) {
        FUZZ_CHECK(w >= 1 && h >= 1 && (long)w * h <= IMAGE_MAX_PIXELS);
        if ((long)w * h > FUZZ_MAX_PIXELS) return 0;
    }
    if (image_load(path, SIZE, mean, std, out, &err) != 0) {
        FUZZ_CHECK(err.msg[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(info == 0);
    for (int i = 0; i < 3 * SIZE * SIZE; i++) FUZZ_CHECK(out[i] >= -1.0f && out[i] <= 1.0f);
    return 0;
}
