/* jsonl.c: the JSONL line loop and field helpers (see jsonl.h). */
#include "data/jsonl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/jsonutil.h"
#include "core/strbuf.h"

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int jsonl_opt_string(const cJSON *obj, const char *key, char **out, sevo_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsString(j)) return sevo_fail(err, "field '%s': expected a string, got %s", key, json_kind(j));
    *out = sevo_strdup(j->valuestring, key, err);
    return *out ? 0 : JSONL_FATAL;
}

int jsonl_req_string(const cJSON *obj, const char *key, char **out, sevo_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!j || cJSON_IsNull(j)) return sevo_fail(err, "field '%s': missing", key);
    return jsonl_opt_string(obj, key, out, err);
}

int jsonl_opt_path(const cJSON *obj, const char *key, const char *dir, char **out, sevo_error *err) {
    char *raw = NULL;
    int rc = jsonl_opt_string(obj, key, &raw, err);
    *out = NULL;
    if (rc || !raw) return rc;
    if (raw[0]) {
        size_t n = strlen(dir) + strlen(raw) + 2;
        if (!(*out = sevo_malloc(n, key, err))) {
            free(raw);
            return JSONL_FATAL;
        }
        sevo_path_join(*out, n, dir, raw);
    }
    free(raw); /* "" means no path, like an absent field */
    return 0;
}

/* Parses one non-blank line: exactly one JSON object, then the caller's parser. */
static int parse_line(const char *text, size_t len, const char *dir, int line, jsonl_object_fn fn, void *ctx,
                      sevo_error *err) {
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!obj) {
        size_t col = end && end >= text ? (size_t)(end - text) + 1 : 1;
        return sevo_fail(err, "invalid JSON (at column %zu)", col);
    }
    while (end < text + len && is_space(*end)) end++;
    int rc;
    if (end < text + len)
        rc = sevo_fail(err, "invalid JSON (unexpected text at column %zu)", (size_t)(end - text) + 1);
    else if (!cJSON_IsObject(obj))
        rc = sevo_fail(err, "expected a JSON object, got %s", json_kind(obj));
    else
        rc = fn(ctx, obj, dir, line, err);
    cJSON_Delete(obj);
    return rc;
}

int jsonl_read(const char *path, int skip_bad_lines, const char *what, jsonl_object_fn fn, void *ctx,
               sevo_error *err) {
    char *text = NULL;
    size_t len = 0;
    if (sevo_read_file(path, &text, &len, err) != 0) return -1;
    char dir[4096] = "";
    if (strchr(path, '/')) sevo_path_dirname(dir, sizeof dir, path);
    int line = 0, accepted = 0, skipped = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        line++;
        const char *a = p;
        while (a < e && is_space(*a)) a++;
        if (a < e) {
            sevo_error lerr;
            int rc = parse_line(p, (size_t)(e - p), dir, line, fn, ctx, &lerr);
            if (rc == JSONL_BAD_LINE && skip_bad_lines) {
                fprintf(stderr, "warning: %s:%d: %s (skipped)\n", path, line, lerr.msg);
                skipped++;
            } else if (rc != 0) {
                free(text);
                return sevo_fail(err, "%s:%d: %s", path, line, lerr.msg);
            } else {
                accepted++;
            }
        }
        p = e + 1;
    }
    free(text);
    if (accepted > 0) return accepted;
    if (skipped)
        return sevo_fail(err, "%s: no valid %s (%d bad line%s skipped)", path, what, skipped, skipped == 1 ? "" : "s");
    return sevo_fail(err, "%s: no %s (empty file)", path, what);
}
