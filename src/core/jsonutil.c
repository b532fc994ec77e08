/* jsonutil.c: small helpers shared by the JSON readers (see jsonutil.h). */
#include "core/jsonutil.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"

const char *json_kind(const cJSON *j) {
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "an invalid value";
}

int json_int_in(const cJSON *j, int lo, int hi, int *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double v = j->valuedouble;
    if (!(v >= lo && v <= hi) || v != floor(v)) return -1;
    *out = (int)v;
    return 0;
}

int json_float(const cJSON *j, float *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double v = j->valuedouble;
    if (!(fabs(v) <= FLT_MAX)) return -1;
    *out = (float)v;
    return 0;
}

int json_write_file_atomic(const char *path, const cJSON *root, sevo_error *err) {
    char *text = cJSON_Print(root);
    if (!text) return sevo_fail(err, "%s: out of memory", path);
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON_Print leaves room only for the NUL: rewrite it as the newline */
    int rc = sevo_write_file_atomic(path, text, len + 1, err);
    free(text);
    return rc;
}
