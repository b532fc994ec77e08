/* test_ablation.c: the pieces of the ablation study. The variant names parse (and a
 * wrong one is an error naming the choices); random negatives keep each pair's image,
 * question and chosen perception and take the rejected one from another image's pair,
 * the same for the same seed; a row is read from a hand-written results.json (the POPE
 * F1 is the mean of the three splits, rates in %) and a missing field is named; and the
 * table carries only the selected variants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>

#include "core/fsutil.h"
#include "data/preferences.h"
#include "pipeline/ablation.h"
#include "../test_util.h"

static char g_dir[64];

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/sevo-ablation-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    sevo_remove_tree(g_dir);
    return 0;
}

static void test_parse(void **state) {
    (void)state;
    int mask = 0;
    sevo_error err;
    assert_int_equal(ablation_parse("all", &mask, &err), 0);
    assert_int_equal(mask, ABLATION_ALL);
    assert_int_equal(ablation_parse("no_ipr", &mask, &err), 0);
    assert_int_equal(mask, ABLATION_NO_IPR);
    assert_int_equal(ablation_parse("no_sr_dpo", &mask, &err), 0);
    assert_int_equal(mask, ABLATION_NO_SR_DPO);
    assert_int_equal(ablation_parse("no_gate", &mask, &err), -1);
    assert_non_null(strstr(err.msg, "'no_gate'"));
    assert_non_null(strstr(err.msg, "no_hsr_ee"));
}

static void write_pairs(const char *path) {
    char text[2048] = "";
    const char *images[5] = {"a.png", "a.png", "b.png", "c.png", "d.png"};
    for (int i = 0; i < 5; i++) {
        char line[256], img[256];
        snprintf(img, sizeof img, "%s/%s", g_dir, images[i]);
        write_text(img, "");
        snprintf(line, sizeof line,
                 "{\"image_path\": \"%s\", \"question\": \"q%d\", \"ground_truth\": \"yes\", \"chosen\": \"seen %d\", "
                 "\"rejected\": \"wrong %d\", \"iteration\": 1}\n",
                 images[i], i, i, i);
        strcat(text, line);
    }
    write_text(path, text);
}

static void test_random_negatives(void **state) {
    (void)state;
    char in[128], out1[128], out2[128];
    snprintf(in, sizeof in, "%s/pairs.jsonl", g_dir);
    snprintf(out1, sizeof out1, "%s/neg1/preferences.jsonl", g_dir);
    snprintf(out2, sizeof out2, "%s/neg2/preferences.jsonl", g_dir);
    write_pairs(in);
    sevo_error err;
    if (ablation_random_negatives(in, out1, 9, &err)) fail_msg("%s", err.msg);
    assert_int_equal(ablation_random_negatives(in, out2, 9, &err), 0);
    sevo_preferences a = {0}, b = {0}, o = {0};
    assert_int_equal(preferences_load_jsonl(&a, in, 0, &err), 0);
    assert_int_equal(preferences_load_jsonl(&o, out1, 0, &err), 0);
    assert_int_equal(preferences_load_jsonl(&b, out2, 0, &err), 0);
    assert_int_equal(o.n, a.n);
    for (int i = 0; i < o.n; i++) {
        /* image paths are rewritten relative to the new file and resolve to the same image */
        char ra[4096], ro[4096];
        assert_non_null(realpath(a.v[i].image, ra));
        assert_non_null(realpath(o.v[i].image, ro));
        assert_string_equal(ro, ra);
        assert_string_equal(o.v[i].question, a.v[i].question);
        assert_string_equal(o.v[i].chosen, a.v[i].chosen);
        int from = -1;
        for (int j = 0; j < a.n; j++)
            if (!strcmp(o.v[i].rejected, a.v[j].chosen)) from = j;
        assert_true(from >= 0);
        assert_string_not_equal(a.v[from].image, a.v[i].image);
        assert_string_equal(o.v[i].rejected, b.v[i].rejected); /* same seed, same draws */
    }
    preferences_free(&a);
    preferences_free(&b);
    preferences_free(&o);
    /* one image only: no negative can come from another image */
    char one[128], img[128];
    snprintf(one, sizeof one, "%s/one.jsonl", g_dir);
    snprintf(img, sizeof img, "%s/a.png", g_dir);
    write_text(one, "{\"image_path\": \"a.png\", \"question\": \"q\", \"chosen\": \"x\", \"rejected\": \"y\"}\n"
                    "{\"image_path\": \"a.png\", \"question\": \"q\", \"chosen\": \"z\", \"rejected\": \"y\"}\n");
    snprintf(out1, sizeof out1, "%s/neg3/preferences.jsonl", g_dir);
    assert_int_equal(ablation_random_negatives(one, out1, 9, &err), -1);
    assert_non_null(strstr(err.msg, "two different images"));
    assert_false(sevo_file_exists(out1));
}

/* One split of results.json, with the fields a row reads. */
static void split_json(char *out, size_t n, const char *name, double acc, double steps, double tokens, double hall,
                       double chair, double f1) {
    snprintf(out, n,
             "\"%s\": {\"accuracy\": %g, \"mean_steps\": %g, \"mean_tokens\": %g, \"hallucination_rate\": %g, "
             "\"chair_i\": %g, \"pope\": {\"f1\": %g}}",
             name, acc, steps, tokens, hall, chair, f1);
}

static void test_row_read_by_hand(void **state) {
    (void)state;
    char s[6][256], path[128], text[2048];
    split_json(s[0], sizeof s[0], "test", 0.80, 5, 40, 0, 0.25, 0);
    split_json(s[1], sizeof s[1], "test_early_exit", 0.79, 2.5, 30, 0, 0.26, 0);
    split_json(s[2], sizeof s[2], "pope_random", 0.9, 0, 0, 0.05, 0, 0.90);
    split_json(s[3], sizeof s[3], "pope_popular", 0.9, 0, 0, 0.06, 0, 0.84);
    split_json(s[4], sizeof s[4], "pope_adversarial", 0.9, 0, 0, 0.07, 0, 0.81);
    snprintf(text, sizeof text, "{\"models\": [{\"name\": \"SFT\", \"splits\": {}}, {\"name\": \"SR-DPO\", "
                                "\"splits\": {%s, %s, %s, %s, %s}}]}\n",
             s[0], s[1], s[2], s[3], s[4]);
    snprintf(path, sizeof path, "%s/results.json", g_dir);
    write_text(path, text);
    ablation_row r;
    sevo_error err;
    if (ablation_row_read(path, 1, 1, &r, &err)) fail_msg("%s", err.msg);
    assert_true(fabs(r.accuracy - 79.0) < 1e-9);
    assert_true(fabs(r.mean_steps - 2.5) < 1e-12 && fabs(r.mean_tokens - 30) < 1e-12);
    assert_true(fabs(r.hallucination_rate - 7.0) < 1e-9);   /* adversarial */
    assert_true(fabs(r.pope_f1 - (90 + 84 + 81) / 3.0) < 1e-9); /* mean of the three */
    assert_true(fabs(r.chair_i - 25.0) < 1e-9);               /* test, fixed depth */
    assert_int_equal(ablation_row_read(path, 1, 0, &r, &err), 0);
    assert_true(fabs(r.accuracy - 80.0) < 1e-9 && fabs(r.mean_steps - 5) < 1e-12);
    /* the SFT entry has no splits: the error names the file and the field */
    assert_int_equal(ablation_row_read(path, 0, 1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "results.json"));
    assert_non_null(strstr(err.msg, "test_early_exit"));
    assert_int_equal(ablation_row_read(path, 2, 1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "models[2]"));
}

static void test_table_has_the_selected_rows(void **state) {
    (void)state;
    ablation_row rows[ABLATION_NUM_VARIANTS] = {{81.25, 6.8, 87, 28.3, 2.68, 31.7}, {82.8, 6.8, 87, 28.3, 5, 40.9},
                                                {0, 0, 0, 0, 0, 0}, {81.2, 8.0, 86.7, 28.4, 2.67, 31.7}};
    char path[128];
    snprintf(path, sizeof path, "%s/ablation.json", g_dir);
    strbuf md = {0};
    sevo_error err;
    assert_int_equal(ablation_table_write(ABLATION_FULL | ABLATION_NO_HSR_EE | ABLATION_NO_SR_DPO, rows, path, &md, &err),
                     0);
    assert_non_null(strstr(md.p, "| full | 81.2 | 6.8 | 87.0 | 28.3 | 2.68 | 31.7 |"));
    assert_non_null(strstr(md.p, "| no_hsr_ee | 82.8 |"));
    assert_non_null(strstr(md.p, "| no_sr_dpo | 81.2 | 8.0 |"));
    assert_null(strstr(md.p, "no_ipr"));
    char *json = NULL;
    assert_int_equal(sevo_read_file(path, &json, NULL, &err), 0);
    assert_non_null(strstr(json, "\"name\":\t\"no_sr_dpo\""));
    assert_null(strstr(json, "no_ipr"));
    free(json);
    strbuf_free(&md);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_random_negatives),
        cmocka_unit_test(test_row_read_by_hand),
        cmocka_unit_test(test_table_has_the_selected_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
