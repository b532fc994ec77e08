/* jsonl.h: the line loop shared by every JSONL reader (datasets, preference pairs).
 *
 * Reads the file, parses each non-blank line as one JSON object and hands it to the
 * caller's parser. A bad line (invalid JSON, not an object, or rejected by the parser)
 * is an error "path:LINE: message", or, with skip_bad_lines, a warning on stderr
 * "warning: path:LINE: message (skipped)". Running out of memory is never skipped.
 * Relative paths inside a line are meant relative to the file's directory, which the
 * parser receives ("" for a bare file name, so "img.png" stays "img.png"). */
#ifndef SEVO_DATA_JSONL_H
#define SEVO_DATA_JSONL_H

#include <cjson/cJSON.h>

#include "core/error.h"

/* A parser's verdicts besides 0: a bad line (what sevo_fail returns, so
 * `return sevo_fail(err, "field 'x': missing")` rejects the line) or a fatal error. */
#define JSONL_BAD_LINE (-1)
#define JSONL_FATAL (-2)

/* Parses one object of the file; writes its message into err without the "path:LINE: "
 * prefix. On a bad line it must leave ctx as it was before the call. */
typedef int (*jsonl_object_fn)(void *ctx, const cJSON *obj, const char *dir, int line, sevo_error *err);

/* Returns the number of lines accepted (0 is an error "path: no samples (empty file)" or
 * "path: no valid samples (N bad lines skipped)"), or -1. what names the records in
 * those messages ("samples", "preference pairs"). */
int jsonl_read(const char *path, int skip_bad_lines, const char *what, jsonl_object_fn fn, void *ctx,
               sevo_error *err);

/* Helpers for parsers: a string field into a malloc'ed copy. opt: absent or null
 * leaves *out NULL; req: absent or null is "field 'key': missing". */
int jsonl_opt_string(const cJSON *obj, const char *key, char **out, sevo_error *err);
int jsonl_req_string(const cJSON *obj, const char *key, char **out, sevo_error *err);
/* A path field resolved against dir unless absolute; "" or absent gives NULL. */
int jsonl_opt_path(const cJSON *obj, const char *key, const char *dir, char **out, sevo_error *err);

#endif
