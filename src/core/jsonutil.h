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

/* Writes root, indented and ending in a newline, to path atomically. root stays the
 * caller's. */
int json_write_file_atomic(const char *path, const cJSON *root, sevo_error *err);

#endif
