/* jsonutil.h: small helpers shared by the readers and writers of JSON files
 * (configuration, JSONL datasets, tokenizer.json, statistics files) on top of cJSON. */
#ifndef SEVO_CORE_JSONUTIL_H
#define SEVO_CORE_JSONUTIL_H

#include <cjson/cJSON.h>

#include "core/error.h"

/* What kind of value j is, with its article, for error messages ("expected a string,
 * got a number"): "a string", "a number", "a boolean", "null", "an array", "an object",
 * or "an invalid value" for anything else. */
const char *json_kind(const cJSON *j);

/* Stores j's value in *out and returns 0 when j is a number with an integer value in
 * [lo, hi]; returns -1 otherwise (not a number, a fraction, out of range, NaN). Checks the
 * range before converting, since converting an out-of-range double to int is undefined. */
int json_int_in(const cJSON *j, int lo, int hi, int *out);

/* Stores j's value in *out and returns 0 when j is a number that a float holds as a finite
 * value; -1 otherwise (a double beyond FLT_MAX would convert to float undefinedly, and an
 * infinity cannot be written back as JSON). */
int json_float(const cJSON *j, float *out);

/* Writes root, indented and ending in a newline, to path atomically. root stays the
 * caller's. */
int json_write_file_atomic(const char *path, const cJSON *root, sevo_error *err);

#endif
