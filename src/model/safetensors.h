/* safetensors.h: reading and writing the safetensors checkpoint format (DESIGN §4).
 *
 * A file is: an 8-byte little-endian u64 N, N bytes of JSON header
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value"}}
 * and then the data section; offsets are relative to its start. The reader maps the file
 * and validates the whole header when opening, so that later reads cannot run off the
 * end of the file: a truncated or inconsistent file fails with an error naming the file
 * and the tensor. The writer produces what the Hugging Face library writes (header padded
 * with spaces to a multiple of 8 bytes), F32 only, atomically, plus the CRC-32 of the data
 * in the metadata, which the reader verifies: a checkpoint corrupted on disk is refused.
 *
 * Data is little-endian on disk; sevo supports little-endian hosts only (checked at
 * compile time). */
#ifndef SEVO_MODEL_SAFETENSORS_H
#define SEVO_MODEL_SAFETENSORS_H

#include <stdint.h>

#include "core/error.h"

#define SAFETENSORS_MAX_DIMS 8
/* The __metadata__ key of the data section's CRC-32 (8 lowercase hex digits), written by
 * safetensors_write_f32 and checked by safetensors_open when present. */
#define SAFETENSORS_CRC_KEY "sevo_crc32"

typedef struct sevo_safetensors sevo_safetensors;

/* Opens and validates path. On failure *out is NULL and err names the file. */
int safetensors_open(sevo_safetensors **out, const char *path, sevo_error *err);
void safetensors_close(sevo_safetensors *st);

/* Tensors in the header's order. */
int safetensors_count(const sevo_safetensors *st);
const char *safetensors_name(const sevo_safetensors *st, int i);
/* Writes up to max_dims dimensions into shape; returns ndim, or -1 if name is absent. */
int safetensors_shape(const sevo_safetensors *st, const char *name, int64_t *shape, int max_dims);
/* Number of elements; -1 if name is absent. */
int64_t safetensors_numel(const sevo_safetensors *st, const char *name);
/* The dtype as written in the file ("F32", "BF16", ...); NULL if name is absent. */
const char *safetensors_dtype(const sevo_safetensors *st, const char *name);
/* A value of "__metadata__"; NULL if absent. */
const char *safetensors_metadata(const sevo_safetensors *st, const char *key);

/* Copies tensor name into dst (numel floats), converting F32, F16, BF16 or F64 to
 * float32. If expect_shape is non-NULL the file's shape must equal it
 * ("tensor 'x': shape [3, 4] in file, model expects [4, 3]"). */
int safetensors_read_f32(const sevo_safetensors *st, const char *name, float *dst,
                         const int64_t *expect_shape, int expect_ndim, sevo_error *err);

typedef struct safetensors_entry {
    const char *name;
    const float *data; /* numel floats, row-major */
    int ndim;          /* 0..SAFETENSORS_MAX_DIMS; 0 is a scalar */
    int64_t shape[SAFETENSORS_MAX_DIMS];
} safetensors_entry;

/* Writes the entries as F32 tensors, in the given order and contiguous, atomically.
 * metadata_kv holds n_metadata key/value PAIRS: {key0, value0, key1, value1, ...}
 * (2 * n_metadata strings); it may be NULL when n_metadata is 0. */
int safetensors_write_f32(const char *path, const safetensors_entry *entries, int n,
                          const char *const *metadata_kv, int n_metadata, sevo_error *err);

#endif
