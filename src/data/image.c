/* image.c: image file -> normalised CHW float tensor, through stb_image and
 * stb_image_resize (their implementations live in the linked libstb).
 *
 * The file is read whole and checked before stb_image sees it (fuzz/fuzz_image.c found
 * each of these): it must be a PNG or a JPEG, the formats sevo documents, since
 * stb_image would otherwise try its other decoders, whose TGA reader takes almost any
 * bytes for an image; its size must be at most IMAGE_MAX_PIXELS (image.h); a PNG's
 * chunks must fit in the file, see png_chunks_fit; and a JPEG's Huffman tables must be
 * sound, see jpeg_huffman_ok. */
#include "data/image.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include "core/fsutil.h"

static int is_png(const unsigned char *b, size_t n) {
    return n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0;
}

static int is_jpeg(const unsigned char *b, size_t n) {
    return n >= 2 && b[0] == 0xFF && b[1] == 0xD8;
}

/* stb_image allocates a PNG chunk's declared length (rounded up to a power of two)
 * before it reads the chunk, so a file of a hundred bytes that declares a 2 GB IDAT
 * costs a 2 GB allocation before "out of data". So every chunk up to IEND must fit in
 * the file; stb_image would fail on a file where one does not anyway, only later. */
static int png_chunks_fit(const unsigned char *b, size_t n) {
    size_t i = 8; /* after the signature */
    while (i + 8 <= n) {
        if (memcmp(b + i + 4, "IEND", 4) == 0) return 1; /* stb_image reads nothing after */
        size_t len = (size_t)b[i] << 24 | (size_t)b[i + 1] << 16 | (size_t)b[i + 2] << 8 | b[i + 3];
        if (len > n - i - 8) return 0;
        i += 12 + len; /* length, type, data, CRC */
    }
    return 1;
}

/* The byte at i, or 0 past the end: what stb_image reads there. */
static unsigned byte_at(const unsigned char *b, size_t n, size_t i) {
    return i < n ? b[i] : 0;
}

/* stb_image 2.27 (Debian 12's libstb) trusts a JPEG's Huffman tables in two ways that
 * upstream fixed in 2.28, and both let a corrupt file make it touch memory it must not:
 *  - a table (DHT segment) whose 16 code counts add up to more than 256 makes it write
 *    past its 257-byte size table and its 256-byte value table;
 *  - a scan (SOS) that decodes with a table no DHT defined makes it read that table
 *    from uninitialised memory and index its value table with garbage.
 * This walks the marker segments the way stb_image reads them, including those after a
 * scan's entropy-coded data, reads each DHT as stb_image does (tables until the segment
 * length is used up, whatever they claim), and returns 0 if either would happen. Bytes
 * that stb_image would stop at with an error are walked past: this may refuse a file
 * that stb_image would have given up on anyway, but never passes a bad table or scan
 * that stb_image would reach. */
static int jpeg_huffman_ok(const unsigned char *b, size_t n) {
    unsigned defined = 0; /* bit 4 * class + id for each table defined (class 0 DC, 1 AC) */
    int sof = 0, progressive = 0;
    size_t i = 2; /* after SOI */
    while (i + 1 < n) {
        if (b[i] != 0xFF || b[i + 1] == 0xFF) { /* entropy-coded data, or fill bytes */
            i++;
            continue;
        }
        unsigned m = b[i + 1];
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { /* no length follows */
            i += 2;
            continue;
        }
        if (m == 0xD9) return 1; /* EOI */
        /* A frame stb_image does not decode (lossless, hierarchical, arithmetic coding):
         * it stops at this marker with an error, and reads nothing after it. */
        if (m >= 0xC3 && m <= 0xCF && m != 0xC4) return 1;
        size_t len = byte_at(b, n, i + 2) << 8 | byte_at(b, n, i + 3), p = i + 4;
        if ((m == 0xC0 || m == 0xC1 || m == 0xC2) && !sof) { /* stb reads the first SOF only */
            sof = 1;
            progressive = m == 0xC2;
        } else if (m == 0xC4) {
            for (long left = (long)len - 2; left > 0 && p < n;) {
                unsigned q = b[p], codes = 0;
                for (size_t k = 1; k <= 16; k++)
                    codes += byte_at(b, n, p + k);
                if (codes > 256) return 0;
                if (q >> 4 <= 1 && (q & 15) <= 3) defined |= 1u << (4 * (q >> 4) + (q & 15));
                p += 17 + codes;
                left -= 17 + (long)codes;
            }
        } else if (m == 0xDA) {
            /* Baseline scans decode with both tables of each component; progressive ones
             * with the DC table (spectral start 0) or the AC table. */
            unsigned ns = byte_at(b, n, p), spectral_start = byte_at(b, n, p + 1 + 2 * ns);
            int dc = !progressive || spectral_start == 0, ac = !progressive || spectral_start != 0;
            for (size_t k = 0; k < ns; k++) {
                unsigned sel = byte_at(b, n, p + 2 + 2 * k), td = sel >> 4, ta = sel & 15;
                if ((dc && (td > 3 || !(defined & 1u << td))) ||
                    (ac && (ta > 3 || !(defined & 1u << (4 + ta)))))
                    return 0;
            }
        }
        i += 2 + len;
    }
    return 1;
}

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

/* The checks before any decoding (see the top of the file); on success *w, *h are the
 * image's size. */
static int check_file(const char *path, const unsigned char *bytes, size_t len, int *w, int *h,
                      sevo_error *err) {
    int channels = 0;
    const char *bad = NULL;
    if (len > (size_t)INT_MAX)
        bad = "file too large";
    else if (!is_png(bytes, len) && !is_jpeg(bytes, len))
        bad = "not a PNG or JPEG file";
    else if (is_png(bytes, len) && !png_chunks_fit(bytes, len))
        bad = "corrupt PNG (a chunk runs past the end of the file)";
    else if (is_jpeg(bytes, len) && !jpeg_huffman_ok(bytes, len))
        bad = "corrupt JPEG (a Huffman table too large, or used but not defined)";
    else if (!stbi_info_from_memory(bytes, (int)len, w, h, &channels))
        bad = stbi_failure_reason();
    if (bad) return sevo_fail(err, "%s: cannot decode image: %s", path, bad);
    if (*w < 1 || *h < 1 || (long)*w * (long)*h > IMAGE_MAX_PIXELS)
        return sevo_fail(err, "%s: cannot decode image: %d x %d pixels (sevo reads at most %ld)", path, *w,
                         *h, (long)IMAGE_MAX_PIXELS);
    return 0;
}

int image_info(const char *path, int *w, int *h, sevo_error *err) {
    char *file = NULL;
    size_t len = 0;
    if (sevo_read_file(path, &file, &len, err) != 0) return -1;
    int rc = check_file(path, (const unsigned char *)file, len, w, h, err);
    free(file);
    return rc;
}

int image_load(const char *path, int size, const float mean[3], const float std[3], float *out,
               sevo_error *err) {
    if (size < 1) return sevo_fail(err, "%s: invalid image size %d", path, size);
    /* Read the file ourselves: stb_image reports a missing file and a corrupt one alike. */
    char *file = NULL;
    size_t len = 0;
    if (sevo_read_file(path, &file, &len, err) != 0) return -1;
    int w = 0, h = 0, channels = 0;
    unsigned char *pixels = NULL;
    if (check_file(path, (const unsigned char *)file, len, &w, &h, err) == 0) {
        pixels = stbi_load_from_memory((const unsigned char *)file, (int)len, &w, &h, &channels, 3);
        if (!pixels) sevo_fail(err, "%s: cannot decode image: %s", path, stbi_failure_reason());
    }
    free(file);
    if (!pixels) return -1;
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
