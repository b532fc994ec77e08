/* preferences.c: the preference-pair JSONL reader and writer (see preferences.h). */
#include "data/preferences.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/jsonutil.h"
#include "data/jsonl.h"

static void pair_free(sevo_preference *p) {
    free(p->image);
    free(p->question);
    free(p->ground_truth);
    free(p->chosen);
    free(p->rejected);
    memset(p, 0, sizeof *p);
}

void preferences_free(sevo_preferences *p) {
    for (int i = 0; i < p->n; i++) pair_free(&p->v[i]);
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

typedef struct pair_list {
    sevo_preference *v;
    int n, cap;
} pair_list;

/* The first of two accepted names that is present; the message names the first. */
static int text_field(const cJSON *obj, const char *key, const char *alias, char **out, sevo_error *err) {
    const char *k = cJSON_GetObjectItemCaseSensitive(obj, key) || !alias ? key : alias;
    int rc = jsonl_req_string(obj, k, out, err);
    if (rc == JSONL_BAD_LINE && k != key) return sevo_fail(err, "field '%s': missing", key);
    if (rc) return rc;
    const char *s = *out;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    if (!*s) {
        free(*out);
        *out = NULL;
        return sevo_fail(err, "field '%s': empty", k);
    }
    return 0;
}

static int parse_pair(void *ctx, const cJSON *obj, const char *dir, int line, sevo_error *err) {
    pair_list *l = ctx;
    sevo_preference p = {.line = line};
    int rc;
    const char *img_key = cJSON_GetObjectItemCaseSensitive(obj, "image_path") ? "image_path" : "image";
    if ((rc = jsonl_opt_path(obj, img_key, dir, &p.image, err)) != 0) goto fail;
    if (!p.image) {
        rc = sevo_fail(err, "field 'image_path': missing (SR-DPO conditions on the image)");
        goto fail;
    }
    if (!sevo_file_exists(p.image)) {
        rc = sevo_fail(err, "field '%s': image not found: %s", img_key, p.image);
        goto fail;
    }
    if ((rc = text_field(obj, "question", NULL, &p.question, err)) != 0 ||
        (rc = jsonl_opt_string(obj, "ground_truth", &p.ground_truth, err)) != 0 ||
        (rc = text_field(obj, "chosen", "winner", &p.chosen, err)) != 0 ||
        (rc = text_field(obj, "rejected", "loser", &p.rejected, err)) != 0)
        goto fail;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, "iteration");
    if (it && !cJSON_IsNull(it)) {
        if (json_int_in(it, 0, INT_MAX, &p.iteration)) {
            rc = sevo_fail(err, "field 'iteration': expected a non-negative integer, got %s", json_kind(it));
            goto fail;
        }
    }
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        sevo_preference *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            sevo_fail(err, "out of memory (preference pairs)");
            rc = JSONL_FATAL;
            goto fail;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = p;
    return 0;
fail:
    pair_free(&p);
    return rc;
}

int preferences_load_jsonl(sevo_preferences *p, const char *path, int skip_bad_lines, sevo_error *err) {
    memset(p, 0, sizeof *p);
    snprintf(p->path, sizeof p->path, "%s", path);
    pair_list l = {0};
    if (jsonl_read(path, skip_bad_lines, "preference pairs", parse_pair, &l, err) < 0) {
        for (int i = 0; i < l.n; i++) pair_free(&l.v[i]);
        free(l.v);
        return -1;
    }
    p->v = l.v;
    p->n = l.n;
    return 0;
}

int preference_write(FILE *f, const char *image_path, const char *question, const char *ground_truth,
                     const char *chosen, const char *rejected, int iteration, sevo_error *err) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "image_path", image_path) ||
        !cJSON_AddStringToObject(o, "question", question) ||
        !cJSON_AddStringToObject(o, "ground_truth", ground_truth ? ground_truth : "") ||
        !cJSON_AddStringToObject(o, "chosen", chosen) || !cJSON_AddStringToObject(o, "rejected", rejected) ||
        !cJSON_AddNumberToObject(o, "iteration", iteration)) {
        cJSON_Delete(o);
        return sevo_fail(err, "out of memory (preference pair)");
    }
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!line) return sevo_fail(err, "out of memory (preference pair)");
    int ok = fprintf(f, "%s\n", line) > 0;
    free(line);
    return ok ? 0 : sevo_fail(err, "writing a preference pair failed");
}
