/* fuzz_safetensors.c: libFuzzer target for the safetensors reader (safetensors_open and
 * the accessors after it, src/model/safetensors.c): the input is a model.safetensors,
 * optimizer.safetensors or gate file as sevo opens them, memory-mapped and validated.
 *
 * A file that opens must keep the reader's promise that later reads cannot run off the
 * mapping: every tensor is looked up by name, its shape and dtype read, and every
 * float-convertible tensor read in full (ASan watches the reads). Then the writer is
 * checked against the reader: those tensors, written back by safetensors_write_f32
 * (with its checksum), must open again with the same names, shapes and bits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[1100], rt_path[1100];
    if (!path[0]) {
        fuzz_path(path, sizeof path, "model.safetensors");
        fuzz_path(rt_path, sizeof rt_path, "written.safetensors");
    }
    fuzz_write(path, data, size);

    sevo_safetensors *st = NULL;
    sevo_error err;
    if (safetensors_open(&st, path, &err) != 0) {
        FUZZ_CHECK(st == NULL && err.msg[0]);
        return 0;
    }
    (void)safetensors_metadata(st, SAFETENSORS_CRC_KEY);
    int n = safetensors_count(st);
    FUZZ_CHECK(n >= 0 && safetensors_name(st, n) == NULL && safetensors_name(st, -1) == NULL);
    safetensors_entry *entries = calloc((size_t)n + 1, sizeof *entries);
    float **values = calloc((size_t)n + 1, sizeof *values);
    FUZZ_CHECK(entries && values);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        const char *name = safetensors_name(st, i);
        FUZZ_CHECK(name != NULL && safetensors_dtype(st, name) != NULL);
        int64_t shape[SAFETENSORS_MAX_DIMS];
        int ndim = safetensors_shape(st, name, shape, SAFETENSORS_MAX_DIMS);
        int64_t numel = safetensors_numel(st, name);
        FUZZ_CHECK(ndim >= 0 && ndim <= SAFETENSORS_MAX_DIMS && numel >= 0);
        /* Validation bounds numel by the file: each element takes at least one byte. */
        FUZZ_CHECK((uint64_t)numel <= size);
        float *dst = malloc(((size_t)numel + 1) * sizeof *dst);
        FUZZ_CHECK(dst != NULL);
        if (safetensors_read_f32(st, name, dst, shape, ndim, &err) != 0) {
            free(dst); /* an integer dtype: not readable as float, by design */
            continue;
        }
        /* The writer refuses an empty name, which the format allows. */
        if (!name[0]) {
            free(dst);
            continue;
        }
        safetensors_entry *e = &entries[kept];
        e->name = name;
        e->data = dst;
        e->ndim = ndim;
        memcpy(e->shape, shape, sizeof shape);
        values[kept++] = dst;
    }

    FUZZ_CHECK(safetensors_write_f32(rt_path, entries, kept, NULL, 0, &err) == 0);
    sevo_safetensors *back = NULL;
    FUZZ_CHECK(safetensors_open(&back, rt_path, &err) == 0);
    FUZZ_CHECK(safetensors_count(back) == kept);
    for (int i = 0; i < kept; i++) {
        const safetensors_entry *e = &entries[i];
        FUZZ_CHECK(strcmp(safetensors_name(back, i), e->name) == 0);
        FUZZ_CHECK(strcmp(safetensors_dtype(back, e->name), "F32") == 0);
        int64_t numel = safetensors_numel(back, e->name);
        float *got = malloc(((size_t)numel + 1) * sizeof *got);
        FUZZ_CHECK(got != NULL);
        FUZZ_CHECK(safetensors_read_f32(back, e->name, got, e->shape, e->ndim, &err) == 0);
        FUZZ_CHECK(numel == 0 || memcmp(got, e->data, (size_t)numel * sizeof *got) == 0);
        free(got);
    }
    safetensors_close(back);
    for (int i = 0; i < kept; i++) free(values[i]);
    free(values);
    free(entries);
    safetensors_close(st);
    return 0;
}
