/* test_ipr.c: the IPR data engine. The statistics follow DESIGN §1 on hand-made
 * outcomes; a run over a small trained world keeps its books (every sample counted
 * once, one pair per refined sample, pairs that read back with their images), writes
 * the failed samples when asked to keep them, and gives byte-identical files when run
 * twice; a model whose perceptions are blank gives failures kept unrefined, no pairs. */
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
#include "data/preferences.h"
#include "method/ipr.h"
#include "model/checkpoint.h"
#include "model/vlm.h"
#include "../test_util.h"
#include "../test_world.h"

static char g_dir[64];

static int setup(void **state) {
    (void)state;
    return test_world_setup(g_dir, sizeof g_dir, "ipr", 100, 10, 8);
}

static int teardown(void **state) {
    (void)state;
    sevo_remove_tree(g_dir);
    return 0;
}

static void test_stats_by_hand(void **state) {
    (void)state;
    /* 6 samples: 2 correct at once, 3 refined (rounds 1, 1, 2), 1 failed:
     * success_rate = 3 / (6 - 2) = 0.75, pair_yield = 3 / 6 = 0.5 */
    ipr_stats s = {.max_refinement = 2};
    ipr_outcome out[6] = {IPR_INITIALLY_CORRECT, IPR_REFINED, IPR_FAILED, IPR_REFINED, IPR_INITIALLY_CORRECT,
                          IPR_REFINED};
    int iter[6] = {0, 1, 0, 2, 0, 1};
    for (int i = 0; i < 6; i++) {
        ipr_sample_result r = {.outcome = out[i], .iteration = iter[i]};
        ipr_stats_add(&s, &r);
    }
    assert_int_equal(s.total_samples, 6);
    assert_int_equal(s.initially_correct, 2);
    assert_int_equal(s.refined_success, 3);
    assert_int_equal(s.refined_failed, 1);
    assert_int_equal(s.pairs_generated, 3);
    assert_int_equal(s.success_per_iteration[1], 2);
    assert_int_equal(s.success_per_iteration[2], 1);
    assert_true(fabs(ipr_success_rate(&s) - 0.75) < 1e-12);
    assert_true(fabs(ipr_pair_yield(&s) - 0.5) < 1e-12);
    /* the verifier diagnostic: a rejected c_0 equal to the ground truth counts, a
     * rejected different one and an accepted equal one do not */
    ipr_stats v = {0};
    ipr_sample_result bad = {.outcome = IPR_FAILED}, good = {.outcome = IPR_INITIALLY_CORRECT};
    snprintf(bad.initial, sizeof bad.initial, "red circle at center");
    snprintf(good.initial, sizeof good.initial, "red circle at center");
    ipr_stats_add_verifier(&v, &bad, "red circle at center", 0);
    ipr_stats_add_verifier(&v, &bad, "red square at center", 1);
    ipr_stats_add_verifier(&v, &good, "red circle at center", 1);
    assert_int_equal(v.verifier_checked, 3);
    assert_int_equal(v.verifier_valid, 2);
    assert_int_equal(v.ground_truth_rejected, 1);
    /* all correct: no failed first perceptions, rate 0 rather than 0/0 */
    ipr_stats z = {0};
    ipr_sample_result ok = {.outcome = IPR_INITIALLY_CORRECT};
    ipr_stats_add(&z, &ok);
    assert_true(ipr_success_rate(&z) == 0.0);
    /* the JSON file carries every field */
    char path[128], *text = NULL;
    snprintf(path, sizeof path, "%s/stats.json", g_dir);
    sevo_error err;
    assert_int_equal(ipr_stats_save(&s, path, &err), 0);
    assert_int_equal(sevo_read_file(path, &text, NULL, &err), 0);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    const char *keys[] = {"total_samples", "initially_correct", "refined_success", "refined_failed",
                          "pairs_generated", "success_rate", "pair_yield"};
    double want[] = {6, 2, 3, 1, 3, 0.75, 0.5};
    for (int i = 0; i < 7; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
        if (!cJSON_IsNumber(v) || fabs(v->valuedouble - want[i]) > 1e-12) fail_msg("%s", keys[i]);
    }
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(j, "success_per_iteration");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(per, "1")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(per, "2")->valueint, 1);
    cJSON_Delete(j);
}

/* IPR with the model in g_dir/<model>, over the first n train samples. */
static void run_ipr_with(const char *model_name, const char *out, int keep_failed, int n, float temperature,
                         ipr_stats *st) {
    sevo_config c;
    test_world_config(&c, 8);
    c.ipr.discard_failed_samples = !keep_failed;
    char model[128], data[128];
    snprintf(model, sizeof model, "%s/%s", g_dir, model_name);
    snprintf(data, sizeof data, "%s/data/train.jsonl", g_dir);
    ipr_options o = {.cfg = &c, .model_path = model, .data_path = data, .output_dir = out, .max_refinement = 2,
                     .max_samples = n};
    gen_options_default(&o.gen);
    o.gen.temperature = temperature;
    sevo_error err;
    if (ipr_run(&o, st, &err)) fail_msg("ipr_run: %s", err.msg);
}

static void run_ipr(const char *out, int keep_failed, ipr_stats *st) {
    /* sampled perceptions and refinements; Valid stays greedy */
    run_ipr_with("sft", out, keep_failed, 100, 0.7f, st);
}

static void test_run_keeps_its_books(void **state) {
    (void)state;
    char a[128], b[128], p[256], q[256];
    snprintf(a, sizeof a, "%s/ipr_a", g_dir);
    snprintf(b, sizeof b, "%s/ipr_b", g_dir);
    ipr_stats s, t;
    run_ipr(a, 1, &s);
    printf("ipr: %d samples, %d correct, %d refined, %d failed\n", s.total_samples, s.initially_correct,
           s.refined_success, s.refined_failed);
    assert_int_equal(s.total_samples, 100);
    assert_int_equal(s.initially_correct + s.refined_success + s.refined_failed, 100);
    assert_int_equal(s.pairs_generated, s.refined_success);
    assert_int_equal(s.success_per_iteration[1] + s.success_per_iteration[2], s.refined_success);
    /* the short run leaves the model with both successes and failures to learn from */
    assert_true(s.refined_success > 0);
    assert_true(s.initially_correct > 0);
    /* every test-world record carries its ground-truth perception */
    assert_int_equal(s.verifier_checked, 100);
    assert_true(s.verifier_valid > 0 && s.verifier_valid <= 100);
    assert_true(s.ground_truth_rejected <= s.total_samples - s.initially_correct);
    snprintf(p, sizeof p, "%s/preferences.jsonl", a);
    sevo_preferences prefs;
    sevo_error err;
    assert_int_equal(preferences_load_jsonl(&prefs, p, 0, &err), 0); /* images resolve from the output dir */
    assert_int_equal(prefs.n, s.pairs_generated);
    for (int i = 0; i < prefs.n; i++) {
        assert_true(strcmp(prefs.v[i].chosen, prefs.v[i].rejected) != 0);
        assert_true(prefs.v[i].iteration >= 1 && prefs.v[i].iteration <= 2);
    }
    preferences_free(&prefs);
    snprintf(p, sizeof p, "%s/failed_samples.jsonl", a);
    int failed_lines = test_count_lines(p);
    assert_int_equal(failed_lines, s.refined_failed); /* every failed sample is kept */
    /* discarding: no failed_samples.jsonl; and the same files byte for byte */
    run_ipr(b, 0, &t);
    snprintf(q, sizeof q, "%s/failed_samples.jsonl", b);
    assert_false(sevo_file_exists(q));
    const char *files[] = {"preferences.jsonl", "ipr_stats.json"};
    for (int i = 0; i < 2; i++) {
        char *x = NULL, *y = NULL;
        size_t lx = 0, ly = 0;
        snprintf(p, sizeof p, "%s/%s", a, files[i]);
        snprintf(q, sizeof q, "%s/%s", b, files[i]);
        assert_int_equal(sevo_read_file(p, &x, &lx, &err), 0);
        assert_int_equal(sevo_read_file(q, &y, &ly, &err), 0);
        assert_int_equal(lx, ly);
        assert_memory_equal(x, y, lx);
        free(x);
        free(y);
    }
}

/* A model that can only describe nothing: with the final norm's weights at zero every
 * logit is 0, and greedy decoding's tie goes to the lowest id, a special token that
 * either ends the perception or decodes to nothing. A blank c_0 is never valid and is
 * never refined (it could not be a pair's rejected side): every sample is a failure,
 * kept in failed_samples.jsonl with iteration 0 and no pair. */
static void test_blank_perception_is_kept_unrefined(void **state) {
    (void)state;
    char src[128], dst[128], out[128], p[256];
    snprintf(src, sizeof src, "%s/sft", g_dir);
    snprintf(dst, sizeof dst, "%s/blank", g_dir);
    snprintf(out, sizeof out, "%s/ipr_blank", g_dir);
    vlm *m = NULL;
    sevo_tokenizer *tok = NULL;
    sevo_error err;
    if (checkpoint_load_model(src, &m, &tok, &err)) fail_msg("%s", err.msg);
    const vlm_tensor *t = vlm_find_tensor(m, "language_model.model.norm.weight");
    assert_non_null(t);
    memset(vlm_params(m) + t->offset, 0, t->numel * sizeof(float));
    if (checkpoint_save_model(dst, m, tok, &err)) fail_msg("%s", err.msg);
    vlm_free(m);
    tokenizer_free(tok);
    ipr_stats s;
    run_ipr_with("blank", out, 1, 6, 0.0f, &s);
    assert_int_equal(s.total_samples, 6);
    assert_int_equal(s.initially_correct, 0);
    assert_int_equal(s.refined_failed, 6);
    assert_int_equal(s.pairs_generated, 0);
    snprintf(p, sizeof p, "%s/preferences.jsonl", out);
    assert_int_equal(test_count_lines(p), 0);
    snprintf(p, sizeof p, "%s/failed_samples.jsonl", out);
    char *text = NULL;
    assert_int_equal(sevo_read_file(p, &text, NULL, &err), 0);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "rejected")->valuestring, "");
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "last_refinement")->valuestring, "");
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "iteration")->valueint, 0);
        cJSON_Delete(j);
    }
    free(text);
    assert_int_equal(lines, 6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_by_hand),
        cmocka_unit_test(test_run_keeps_its_books),
        cmocka_unit_test(test_blank_perception_is_kept_unrefined),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
