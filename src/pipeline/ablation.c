/* ablation.c: random negatives, and the ablation table from the variants' evaluations
 * (see ablation.h). */
#include "pipeline/ablation.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/jsonutil.h"
#include "core/rng.h"
#include "data/preferences.h"

static const char *const VARIANTS[ABLATION_NUM_VARIANTS] = {"full", "no_hsr_ee", "no_ipr", "no_sr_dpo"};

const char *ablation_variant_name(int i) { return i >= 0 && i < ABLATION_NUM_VARIANTS ? VARIANTS[i] : "?"; }

int ablation_parse(const char *name, int *mask, sevo_error *err) {
    if (name && !strcmp(name, "all")) {
        *mask = ABLATION_ALL;
        return 0;
    }
    for (int i = 0; name && i < ABLATION_NUM_VARIANTS; i++)
        if (!strcmp(name, VARIANTS[i])) {
            *mask = 1 << i;
            return 0;
        }
    return sevo_fail(err, "--ablation '%s': expected all, full, no_hsr_ee, no_ipr or no_sr_dpo", name ? name : "");
}

int ablation_random_negatives(const char *in_path, const char *out_path, uint64_t seed, sevo_error *err) {
    sevo_preferences prefs = {0};
    sevo_atomic_file af = {0};
    char dir[4096], rel[4096];
    int rc = -1;
    if (preferences_load_jsonl(&prefs, in_path, 0, err)) return -1;
    int n = prefs.n, other_image = 0;
    for (int i = 1; i < n && !other_image; i++) other_image = strcmp(prefs.v[i].image, prefs.v[0].image) != 0;
    if (!other_image) {
        sevo_fail(err, "%s: random negatives need pairs of at least two different images", in_path);
        goto done;
    }
    snprintf(dir, sizeof dir, "%s", out_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    if (sevo_mkdirs(dir, err) || sevo_atomic_open(&af, out_path, err)) goto done;
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 0xab1a);
    for (int i = 0; i < n; i++) {
        const sevo_preference *p = &prefs.v[i];
        /* rejection sampling: with two or more images a valid partner exists, and most
         * draws are valid; the bound only guards against a set of near-duplicates */
        int j = -1;
        for (int tries = 0; tries < 100000 && j < 0; tries++) {
            int k = (int)sevo_rng_below(&rng, (uint32_t)n);
            if (strcmp(prefs.v[k].image, p->image) && strcmp(prefs.v[k].chosen, p->chosen)) j = k;
        }
        if (j < 0) {
            sevo_fail(err, "%s:%d: no pair of another image with another perception to draw a negative from",
                      in_path, p->line);
            goto done;
        }
        sevo_path_relative(rel, sizeof rel, dir, p->image);
        if (preference_write(af.f, rel, p->question, p->ground_truth ? p->ground_truth : "", p->chosen,
                             prefs.v[j].chosen, p->iteration, err))
            goto done;
    }
    rc = sevo_atomic_commit(&af, err);
done:
    if (rc && af.f) sevo_atomic_abort(&af);
    preferences_free(&prefs);
    return rc;
}

/* The number at obj.key, or an error naming the file and the key path. */
static int get_number(const cJSON *obj, const char *key, const char *path, const char *where, double *out,
                      sevo_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) return sevo_fail(err, "%s: field '%s.%s': missing or not a number", path, where, key);
    *out = v->valuedouble;
    return 0;
}

static const cJSON *get_object(const cJSON *obj, const char *key, const char *path, const char *where,
                               sevo_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsObject(v)) sevo_fail(err, "%s: field '%s.%s': missing or not an object", path, where, key);
    return cJSON_IsObject(v) ? v : NULL;
}

int ablation_row_read(const char *results_json, int model, int early_exit, ablation_row *row, sevo_error *err) {
    char *text = NULL;
    if (sevo_read_file(results_json, &text, NULL, err)) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    int rc = -1;
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    const cJSON *m = cJSON_IsArray(models) ? cJSON_GetArrayItem(models, model) : NULL;
    if (!m) {
        sevo_fail(err, "%s: field 'models[%d]': missing", results_json, model);
        goto done;
    }
    const cJSON *splits = get_object(m, "splits", results_json, "models[]", err);
    const char *test_name = early_exit ? "test_early_exit" : "test";
    /* the first missing field is the one named */
    const cJSON *test = splits ? get_object(splits, test_name, results_json, "splits", err) : NULL;
    const cJSON *plain = test ? get_object(splits, "test", results_json, "splits", err) : NULL;
    const cJSON *adv = plain ? get_object(splits, "pope_adversarial", results_json, "splits", err) : NULL;
    if (!test || !plain || !adv) goto done;
    double acc = 0, hall = 0, chair = 0, f1 = 0;
    if (get_number(test, "accuracy", results_json, test_name, &acc, err) ||
        get_number(test, "mean_steps", results_json, test_name, &row->mean_steps, err) ||
        get_number(test, "mean_tokens", results_json, test_name, &row->mean_tokens, err) ||
        get_number(adv, "hallucination_rate", results_json, "pope_adversarial", &hall, err) ||
        get_number(plain, "chair_i", results_json, "test", &chair, err))
        goto done;
    static const char *const POPE[3] = {"pope_random", "pope_popular", "pope_adversarial"};
    for (int i = 0; i < 3; i++) {
        const cJSON *s = get_object(splits, POPE[i], results_json, "splits", err);
        const cJSON *pope = s ? get_object(s, "pope", results_json, POPE[i], err) : NULL;
        double f = 0;
        if (!pope || get_number(pope, "f1", results_json, POPE[i], &f, err)) goto done;
        f1 += f / 3;
    }
    row->accuracy = 100 * acc;
    row->hallucination_rate = 100 * hall;
    row->pope_f1 = 100 * f1;
    row->chair_i = 100 * chair;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

int ablation_table_write(int mask, const ablation_row rows[ABLATION_NUM_VARIANTS], const char *json_path,
                         strbuf *md, sevo_error *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "variants") : NULL;
    if (!arr) {
        cJSON_Delete(root);
        return sevo_fail(err, "out of memory (ablation table)");
    }
    strbuf_puts(md, "| Variant | Accuracy (%) | Adv. hallucination (%) | POPE F1 (%) | CHAIR_i (%) | Steps | "
                    "Tokens per answer |\n|---|---:|---:|---:|---:|---:|---:|\n");
    int ok = 1;
    for (int i = 0; i < ABLATION_NUM_VARIANTS; i++) {
        if (!(mask & (1 << i))) continue;
        const ablation_row *r = &rows[i];
        strbuf_printf(md, "| %s | %.1f | %.1f | %.1f | %.1f | %.2f | %.1f |\n", VARIANTS[i], r->accuracy,
                      r->hallucination_rate, r->pope_f1, r->chair_i, r->mean_steps, r->mean_tokens);
        cJSON *o = cJSON_CreateObject();
        ok = ok && o && cJSON_AddItemToArray(arr, o) && cJSON_AddStringToObject(o, "name", VARIANTS[i]) &&
             cJSON_AddNumberToObject(o, "accuracy", r->accuracy) &&
             cJSON_AddNumberToObject(o, "hallucination_rate", r->hallucination_rate) &&
             cJSON_AddNumberToObject(o, "pope_f1", r->pope_f1) && cJSON_AddNumberToObject(o, "chair_i", r->chair_i) &&
             cJSON_AddNumberToObject(o, "mean_steps", r->mean_steps) &&
             cJSON_AddNumberToObject(o, "mean_tokens", r->mean_tokens);
    }
    int rc = ok ? json_write_file_atomic(json_path, root, err) : sevo_fail(err, "out of memory (ablation table)");
    cJSON_Delete(root);
    return rc;
}
