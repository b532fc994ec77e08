/* test_evaluate.c: the evaluation runner on a small world. One model compared with
 * itself must give identical columns (the runner is deterministic and shares nothing
 * between models); results.json carries every split, the blank-image pass and the
 * shortcut gap computed from them; predictions are written per split with one line per
 * sample; and the accuracy in results.json is the share of correct predictions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "eval/evaluate.h"
#include "../test_util.h"
#include "../test_world.h"

static char g_dir[64];

static int setup(void **state) {
    (void)state;
    return test_world_setup(g_dir, sizeof g_dir, "eval", 60, 12, 1);
}

static int teardown(void **state) {
    (void)state;
    sevo_remove_tree(g_dir);
    return 0;
}

static const cJSON *path_get(const cJSON *j, const char *a, const char *b) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    return b ? cJSON_GetObjectItemCaseSensitive(x, b) : x;
}

static void test_compare_with_itself(void **state) {
    (void)state;
    sevo_config c;
    test_world_config(&c, 1);
    char data[128], model[128], out[128], p[256];
    snprintf(data, sizeof data, "%s/data", g_dir);
    snprintf(model, sizeof model, "%s/sft", g_dir);
    snprintf(out, sizeof out, "%s/eval", g_dir);
    eval_options o = {.cfg = &c, .data_dir = data, .output_dir = out, .model_paths = {model, model},
                      .model_names = {"a", NULL}, .n_models = 2, .max_samples = 8};
    gen_options_default(&o.gen);
    eval_model_eval models[2];
    strbuf table = {0};
    sevo_error err;
    if (eval_run(&o, models, &table, &err)) fail_msg("eval_run: %s", err.msg);
    assert_string_equal(models[0].name, "a");
    assert_string_equal(models[1].name, "sft");
    for (int s = 0; s < EVAL_NUM_SPLITS; s++) {
        assert_int_equal(models[0].split[s].n, 8);
        assert_int_equal(models[0].split[s].correct, models[1].split[s].correct);
        assert_true(models[0].split[s].chair.chair_i == models[1].split[s].chair.chair_i);
        assert_true(models[0].split[s].pope.f1 == models[1].split[s].pope.f1);
    }
    assert_true(fabs(models[0].shortcut_gap - (models[0].split[0].accuracy - models[0].test_blank.accuracy)) < 1e-12);
    /* one prediction file per split and model, one line per sample, and the accuracy is
     * the share of lines marked correct */
    const char *names[] = {"test", "pope_random", "pope_popular", "pope_adversarial", "test_blank"};
    for (int k = 0; k < 2; k++)
        for (int s = 0; s < 5; s++) {
            snprintf(p, sizeof p, "%s/%s/%s_predictions.jsonl", out, models[k].name, names[s]);
            assert_int_equal(test_count_lines(p), 8);
        }
    snprintf(p, sizeof p, "%s/a/test_predictions.jsonl", out);
    char *txt = NULL;
    assert_int_equal(sevo_read_file(p, &txt, NULL, &err), 0);
    int marked = 0;
    for (char *q = strstr(txt, "\"correct\":true"); q; q = strstr(q + 1, "\"correct\":true")) marked++;
    free(txt);
    assert_int_equal(marked, models[0].split[0].correct);
    /* results.json and results.md */
    snprintf(p, sizeof p, "%s/results.json", out);
    assert_int_equal(sevo_read_file(p, &txt, NULL, &err), 0);
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    assert_non_null(j);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "models");
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    const cJSON *m0 = cJSON_GetArrayItem(arr, 0);
    for (int s = 0; s < 4; s++) assert_non_null(path_get(path_get(m0, "splits", EVAL_SPLITS[s]), "pope", NULL));
    const cJSON *acc = path_get(path_get(m0, "splits", "test"), "accuracy", NULL);
    assert_true(cJSON_IsNumber(acc) && fabs(acc->valuedouble - marked / 8.0) < 1e-9);
    assert_non_null(path_get(m0, "splits", "test_blank_image"));
    assert_true(cJSON_IsNumber(path_get(m0, "shortcut_gap", NULL)));
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s/results.md", out);
    assert_int_equal(sevo_read_file(p, &txt, NULL, &err), 0);
    assert_string_equal(txt, table.p);
    assert_non_null(strstr(txt, "| Metric | a | sft |"));
    free(txt);
    strbuf_free(&table);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_with_itself),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
