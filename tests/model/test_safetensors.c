/* test_safetensors.c: the safetensors writer and reader: bit-exact round trip with
 * metadata, F16/BF16 decoding against hand-computed values, and rejection of truncated
 * or inconsistent files, shape mismatches and missing tensors. */
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

#include "core/fsutil.h"
#include "model/safetensors.h"
#include "../test_util.h"

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state) {
    fixture *f = test_fixture_new(fixture, "sevo_st");
    if (!f) return -1;
    snprintf(f->path, sizeof f->path, "%s/model.safetensors", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    test_fixture_free(f, f->dir);
    return 0;
}

/* Writes a file by hand: the u64 length, the header exactly as given, then the data. */
static void write_raw(const char *path, uint64_t hlen, const char *header, const void *data,
                      size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 8; i++)
        fputc((int)((hlen >> (8 * i)) & 0xff), fp);
    fwrite(header, 1, strlen(header), fp);
    if (n) fwrite(data, 1, n, fp);
    fclose(fp);
}

static void write_simple(const char *path, const char *header, const void *data, size_t n) {
    write_raw(path, strlen(header), header, data, n);
}

static void expect_open_error(const char *path, const char *needle) {
    sevo_safetensors *st = (sevo_safetensors *)&st;
    sevo_error err = {{0}};
    assert_int_equal(safetensors_open(&st, path, &err), -1);
    assert_null(st);
    if (!strstr(err.msg, path) || !strstr(err.msg, needle))
        fail_msg("error '%s' should name '%s' and contain '%s'", err.msg, path, needle);
}

static void test_roundtrip(void **state) {
    fixture *f = *state;
    float a[6] = {1.5f, -2.25f, 3.0e-38f, 0.0f, -0.0f, 123456.789f};
    float scalar = 42.0f;
    float c[4];
    uint32_t bits[4] = {0x7fc00001u /* a NaN payload */, 0x00000001u /* smallest subnormal */,
                        0x7f800000u /* inf */, 0xff7fffffu /* -FLT_MAX */};
    memcpy(c, bits, sizeof c);
    safetensors_entry e[4] = {
        {.name = "language_model.model.embed_tokens.weight", .data = a, .ndim = 2, .shape = {2, 3}},
        {.name = "scalar", .data = &scalar, .ndim = 0},
        {.name = "c \"quoted\"\\", .data = c, .ndim = 1, .shape = {4}},
        {.name = "empty", .data = NULL, .ndim = 2, .shape = {0, 5}},
    };
    const char *meta[] = {"format", "pt", "sevo_version", "0.1.0"};
    sevo_error err = {{0}};
    if (safetensors_write_f32(f->path, e, 4, meta, 2, &err) != 0) fail_msg("%s", err.msg);

    /* Header length is a multiple of 8, as the Python library writes it. */
    char *raw;
    size_t len;
    assert_int_equal(sevo_read_file(f->path, &raw, &len, &err), 0);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | (unsigned char)raw[i];
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(len, 8 + hlen + (6 + 1 + 4) * 4);
    free(raw);

    sevo_safetensors *st = NULL;
    if (safetensors_open(&st, f->path, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(safetensors_count(st), 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(safetensors_name(st, i), e[i].name);
    assert_null(safetensors_name(st, 4));
    assert_string_equal(safetensors_metadata(st, "format"), "pt");
    assert_string_equal(safetensors_metadata(st, "sevo_version"), "0.1.0");
    assert_null(safetensors_metadata(st, "absent"));
    int64_t shape[8];
    assert_int_equal(safetensors_shape(st, e[0].name, shape, 8), 2);
    assert_int_equal(shape[0], 2);
    assert_int_equal(shape[1], 3);
    assert_int_equal(safetensors_shape(st, "scalar", shape, 8), 0);
    assert_int_equal(safetensors_shape(st, "nope", shape, 8), -1);
    assert_int_equal(safetensors_numel(st, "empty"), 0);
    assert_string_equal(safetensors_dtype(st, "scalar"), "F32");

    float ra[6], rs, rc[4], rempty[1];
    int64_t sa[2] = {2, 3}, sc[1] = {4}, se[2] = {0, 5};
    assert_int_equal(safetensors_read_f32(st, e[0].name, ra, sa, 2, &err), 0);
    assert_int_equal(safetensors_read_f32(st, "scalar", &rs, NULL, 0, &err), 0);
    assert_int_equal(safetensors_read_f32(st, e[2].name, rc, sc, 1, &err), 0);
    assert_int_equal(safetensors_read_f32(st, "empty", rempty, se, 2, &err), 0);
    assert_memory_equal(ra, a, sizeof a);
    assert_memory_equal(&rs, &scalar, sizeof rs);
    assert_memory_equal(rc, c, sizeof c);
    safetensors_close(st);
}

/* The writer stores the data's CRC-32; a flipped bit anywhere in the data is refused
 * with the file named, and a file without the checksum (as other writers make it) is
 * read as it is. */
static void test_checksum(void **state) {
    fixture *f = *state;
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    safetensors_entry e[2] = {{.name = "a", .data = a, .ndim = 1, .shape = {4}},
                              {.name = "b", .data = b, .ndim = 1, .shape = {2}}};
    sevo_error err = {{0}};
    assert_int_equal(safetensors_write_f32(f->path, e, 2, NULL, 0, &err), 0);
    sevo_safetensors *st = NULL;
    if (safetensors_open(&st, f->path, &err) != 0) fail_msg("%s", err.msg);
    const char *crc = safetensors_metadata(st, SAFETENSORS_CRC_KEY);
    assert_non_null(crc);
    assert_int_equal(strlen(crc), 8);
    safetensors_close(st);
    char *raw;
    size_t len;
    assert_int_equal(sevo_read_file(f->path, &raw, &len, &err), 0);
    for (size_t at = len - 24; at < len; at += 23) { /* the first and the last data byte */
        raw[at] ^= 0x10;
        FILE *fp = fopen(f->path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(raw, 1, len, fp), len);
        fclose(fp);
        assert_int_equal(safetensors_open(&st, f->path, &err), -1);
        assert_null(st);
        assert_non_null(strstr(err.msg, f->path));
        assert_non_null(strstr(err.msg, "checksum mismatch"));
        raw[at] ^= 0x10;
    }
    free(raw);
    /* no checksum: a hand-made file with data the header does not vouch for */
    const char hdr[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    unsigned char len8[8] = {(unsigned char)(sizeof hdr - 1)};
    float one = 1.0f;
    fwrite(len8, 1, 8, fp);
    fwrite(hdr, 1, sizeof hdr - 1, fp);
    fwrite(&one, 4, 1, fp);
    fclose(fp);
    if (safetensors_open(&st, f->path, &err) != 0) fail_msg("%s", err.msg);
    assert_null(safetensors_metadata(st, SAFETENSORS_CRC_KEY));
    safetensors_close(st);
}

/* F16 and BF16 bit patterns with their exact float values. */
static void test_half_formats(void **state) {
    fixture *f = *state;
    const uint16_t h[8] = {0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0001, 0x8000, 0x0400, 0x7C00};
    const float hv[8] = {
        1.0f,    -2.0f, 0.333251953125f, 65504.0f, 5.9604644775390625e-8f, -0.0f, 6.103515625e-05f,
        INFINITY};
    const uint16_t b[4] = {0x3F80, 0xC040, 0x4049, 0xFF80};
    const float bv[4] = {1.0f, -3.0f, 3.140625f, -INFINITY};
    unsigned char data[28] = {0};
    for (int i = 0; i < 8; i++) {
        data[2 * i] = (unsigned char)(h[i] & 0xff);
        data[2 * i + 1] = (unsigned char)(h[i] >> 8);
    }
    for (int i = 0; i < 4; i++) {
        data[16 + 2 * i] = (unsigned char)(b[i] & 0xff);
        data[16 + 2 * i + 1] = (unsigned char)(b[i] >> 8);
    }
    /* Unpadded header, so the data section is not aligned: reads must still work. */
    write_simple(f->path,
                 "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,4],\"data_offsets\":[0,16]},"
                 "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[16,24]},"
                 "\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[24,28]}}",
                 data, sizeof data);
    sevo_safetensors *st = NULL;
    sevo_error err = {{0}};
    if (safetensors_open(&st, f->path, &err) != 0) fail_msg("%s", err.msg);
    float out[8];
    int64_t sh[2] = {2, 4};
    assert_int_equal(safetensors_read_f32(st, "h", out, sh, 2, &err), 0);
    for (int i = 0; i < 8; i++) {
        assert_memory_equal(&out[i], &hv[i], sizeof(float));
    }
    assert_int_equal(safetensors_read_f32(st, "b", out, NULL, 0, &err), 0);
    for (int i = 0; i < 4; i++)
        assert_memory_equal(&out[i], &bv[i], sizeof(float));
    /* An integer tensor is valid in the file but cannot be read as float. */
    assert_int_equal(safetensors_read_f32(st, "i", out, NULL, 0, &err), -1);
    assert_non_null(strstr(err.msg, "tensor 'i': dtype I32"));
    safetensors_close(st);
}

static void test_truncated(void **state) {
    fixture *f = *state;
    float a[100];
    for (int i = 0; i < 100; i++)
        a[i] = (float)i;
    safetensors_entry e = {.name = "x", .data = a, .ndim = 2, .shape = {10, 10}};
    sevo_error err = {{0}};
    assert_int_equal(safetensors_write_f32(f->path, &e, 1, NULL, 0, &err), 0);
    /* Drop the last 4 bytes of the data section. */
    char *raw;
    size_t len;
    assert_int_equal(sevo_read_file(f->path, &raw, &len, &err), 0);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | (unsigned char)raw[i];
    free(raw);
    assert_int_equal(truncate(f->path, (off_t)(8 + hlen + 396)), 0);
    expect_open_error(f->path, "tensor 'x': data_offsets [0, 400] exceed the file's data size 396");

    assert_int_equal(truncate(f->path, 5), 0);
    expect_open_error(f->path, "truncated");
    assert_int_equal(truncate(f->path, 0), 0);
    expect_open_error(f->path, "truncated");
}

static void test_inconsistent_headers(void **state) {
    fixture *f = *state;
    unsigned char data[64] = {0};
    /* header length beyond the end of the file */
    write_raw(f->path, 1000, "{}", NULL, 0);
    expect_open_error(f->path, "header length 1000 exceeds the file size 10");
    /* offsets out of range */
    write_simple(f->path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[48,64]}}",
                 data, 32);
    expect_open_error(f->path, "exceed the file's data size 32");
    /* byte count does not match the shape */
    write_simple(f->path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}",
                 data, 32);
    expect_open_error(f->path, "F32 [2, 3] needs 24");
    /* overlapping tensors */
    write_simple(f->path,
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                 data, 32);
    expect_open_error(f->path, "overlap");
    /* wrong types */
    write_simple(f->path, "{\"x\":{\"dtype\":\"F99\",\"shape\":[4],\"data_offsets\":[0,16]}}", data,
                 32);
    expect_open_error(f->path, "unknown dtype 'F99'");
    write_simple(f->path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}",
                 data, 32);
    expect_open_error(f->path, "tensor 'x': field 'shape'");
    write_simple(f->path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", data,
                 32);
    expect_open_error(f->path, "tensor 'x': field 'data_offsets'");
    write_simple(f->path, "{\"x\":{\"shape\":[4],\"data_offsets\":[0,16]}}", data, 32);
    expect_open_error(f->path, "tensor 'x': field 'dtype': missing");
    write_simple(f->path, "{\"__metadata__\":{\"k\":1}}", data, 0);
    expect_open_error(f->path, "__metadata__.k");
    write_simple(f->path, "{\"x\":", data, 0);
    expect_open_error(f->path, "not valid JSON");
    write_simple(f->path,
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}",
                 data, 32);
    expect_open_error(f->path, "appears twice");
    write_simple(f->path, "{}  x", data, 0);
    expect_open_error(f->path, "not valid JSON");
    expect_open_error(f->dir, "not a regular file");
    expect_open_error("/nonexistent/model.safetensors", "cannot open");
}

static void test_shape_mismatch_and_missing(void **state) {
    fixture *f = *state;
    float a[12] = {0};
    safetensors_entry e = {.name = "x", .data = a, .ndim = 2, .shape = {3, 4}};
    sevo_error err = {{0}};
    assert_int_equal(safetensors_write_f32(f->path, &e, 1, NULL, 0, &err), 0);
    sevo_safetensors *st = NULL;
    assert_int_equal(safetensors_open(&st, f->path, &err), 0);
    float out[12];
    int64_t want[2] = {4, 3};
    assert_int_equal(safetensors_read_f32(st, "x", out, want, 2, &err), -1);
    assert_non_null(strstr(err.msg, f->path));
    assert_non_null(strstr(err.msg, "tensor 'x': shape [3, 4] in file, model expects [4, 3]"));
    int64_t flat[1] = {12};
    assert_int_equal(safetensors_read_f32(st, "x", out, flat, 1, &err), -1);
    assert_int_equal(safetensors_read_f32(st, "y", out, NULL, 0, &err), -1);
    assert_non_null(strstr(err.msg, "tensor 'y'"));
    safetensors_close(st);
}

static void test_writer_rejects(void **state) {
    fixture *f = *state;
    float a[2] = {1, 2};
    sevo_error err = {{0}};
    safetensors_entry dup[2] = {{.name = "x", .data = a, .ndim = 1, .shape = {2}},
                                {.name = "x", .data = a, .ndim = 1, .shape = {2}}};
    assert_int_equal(safetensors_write_f32(f->path, dup, 2, NULL, 0, &err), -1);
    assert_non_null(strstr(err.msg, "twice"));
    safetensors_entry bad = {.name = "x", .data = a, .ndim = 9};
    assert_int_equal(safetensors_write_f32(f->path, &bad, 1, NULL, 0, &err), -1);
    assert_false(sevo_file_exists(f->path)); /* nothing written */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checksum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_formats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inconsistent_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shape_mismatch_and_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_rejects, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
