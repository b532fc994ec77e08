/* jsonutil.h: small helpers shared by the readers of JSON files (configuration, JSONL
 * datasets, tokenizer.json) on top of cJSON. */
#ifndef SEVO_CORE_JSONUTIL_H
#define SEVO_CORE_JSONUTIL_H

#include <cjson/cJSON.h>

/* What kind of value j is, with its article, for error messages ("expected a string,
 * got a number"): "a string", "a number", "a boolean", "null", "an array", "an object",
 * or "an invalid value" for anything else. */
const char *json_kind(const cJSON *j);

#endif
