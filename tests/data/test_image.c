/* test_image.c: image decoding and normalisation: exact values from a PNG, the resize
 * path, a JPEG, the blank image, and the two error cases (missing file, a text file
 * named .png). Fixtures are written with stb_image_write into a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>

#include "core/fsutil.h"
#include "data/image.h"
#include "../test_util.h"

static const float MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state) {
    fixture *f = test_fixture_new(fixture, "sevo_img");
    if (!f) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    test_fixture_free(f, f->dir);
    return 0;
}

static float expect(unsigned char p, int c) { return ((float)p / 255.0f - MEAN[c]) / STD[c]; }

/* A w x h RGB test pattern whose pixels differ in every channel. */
static unsigned char *pattern(int w, int h) {
    unsigned char *p = malloc((size_t)w * h * 3);
    assert_non_null(p);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                p[(y * w + x) * 3 + c] = (unsigned char)(x * 40 + y * 7 + c * 60);
    return p;
}

static void test_png_exact(void **state) {
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/a.png", f->dir);
    unsigned char *rgb = pattern(4, 4);
    assert_true(stbi_write_png(path, 4, 4, 3, rgb, 4 * 3));
    float out[3 * 16];
    sevo_error err = {{0}};
    if (image_load(path, 4, MEAN, STD, out, &err) != 0) fail_msg("%s", err.msg);
    /* CHW: out[c][y][x] */
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 16; i++)
            assert_true(out[c * 16 + i] == expect(rgb[i * 3 + c], c));
    free(rgb);
}

static void test_png_resize(void **state) {
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/big.png", f->dir);
    int w = 12, h = 9, size = 5;
    unsigned char *rgb = pattern(w, h);
    assert_true(stbi_write_png(path, w, h, 3, rgb, w * 3));
    float out[3 * 25];
    sevo_error err = {{0}};
    if (image_load(path, size, MEAN, STD, out, &err) != 0) fail_msg("%s", err.msg);
    /* The same resize done here gives the same bytes. */
    unsigned char small[25 * 3];
    assert_true(stbir_resize_uint8(rgb, w, h, 0, small, size, size, 0, 3));
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 25; i++)
            assert_true(out[c * 25 + i] == expect(small[i * 3 + c], c));
    free(rgb);

    /* A uniform image stays uniform through an upscale. */
    unsigned char flat[3 * 3 * 3];
    for (int i = 0; i < 9; i++) {
        flat[3 * i] = 200;
        flat[3 * i + 1] = 100;
        flat[3 * i + 2] = 50;
    }
    assert_true(stbi_write_png(path, 3, 3, 3, flat, 9));
    float up[3 * 64];
    assert_int_equal(image_load(path, 8, MEAN, STD, up, &err), 0);
    for (int i = 0; i < 64; i++) {
        assert_true(up[i] == expect(200, 0));
        assert_true(up[64 + i] == expect(100, 1));
        assert_true(up[128 + i] == expect(50, 2));
    }
}

static void test_jpeg_and_grey_input(void **state) {
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/a.jpg", f->dir);
    unsigned char rgb[8 * 8 * 3];
    for (int i = 0; i < 64; i++) {
        rgb[3 * i] = 30;
        rgb[3 * i + 1] = 160;
        rgb[3 * i + 2] = 220;
    }
    assert_true(stbi_write_jpg(path, 8, 8, 3, rgb, 100));
    float out[3 * 64];
    sevo_error err = {{0}};
    if (image_load(path, 8, MEAN, STD, out, &err) != 0) fail_msg("%s", err.msg);
    const unsigned char want[3] = {30, 160, 220};
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 64; i++) /* JPEG is lossy: within 3 levels */
            assert_true(fabsf(out[c * 64 + i] - expect(want[c], c)) <= 3.0f / 255.0f / STD[c]);

    /* A grey-scale PNG is expanded to three equal channels. */
    snprintf(path, sizeof path, "%s/grey.png", f->dir);
    unsigned char grey[4] = {0, 128, 255, 128};
    assert_true(stbi_write_png(path, 2, 2, 1, grey, 2));
    float g[12];
    assert_int_equal(image_load(path, 2, MEAN, STD, g, &err), 0);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 4; i++)
            assert_true(g[c * 4 + i] == expect(grey[i], c));
}

static void test_blank(void **state) {
    (void)state;
    float out[3 * 9];
    image_blank(3, MEAN, STD, out);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 9; i++)
            assert_true(out[c * 9 + i] == expect(128, c));
    const float half[3] = {0.5f, 0.5f, 0.5f};
    image_blank(3, half, half, out);
    assert_true(fabsf(out[0] - (128.0f / 255.0f - 0.5f) / 0.5f) < 1e-7f);
}

static void test_errors(void **state) {
    fixture *f = *state;
    char path[128];
    float out[3 * 16];
    sevo_error err = {{0}};
    snprintf(path, sizeof path, "%s/missing.png", f->dir);
    assert_int_equal(image_load(path, 4, MEAN, STD, out, &err), -1);
    char want[192];
    snprintf(want, sizeof want, "%s: cannot open: ", path);
    assert_true(strncmp(err.msg, want, strlen(want)) == 0);

    snprintf(path, sizeof path, "%s/text.png", f->dir);
    write_text(path, "this is not an image\n");
    assert_int_equal(image_load(path, 4, MEAN, STD, out, &err), -1);
    snprintf(want, sizeof want, "%s: cannot decode image: ", path);
    assert_true(strncmp(err.msg, want, strlen(want)) == 0);
    assert_true(strlen(err.msg) > strlen(want)); /* stb's reason follows */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_png_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_png_resize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jpeg_and_grey_input, setup, teardown),
        cmocka_unit_test(test_blank),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
