/* test_report.c: report.html from a hand-made run directory. The page is self-contained
 * (no URL, no external script, style, font or image), has one chart per series with the
 * right number of points, the results and ablation tables, and a "not run" note for a
 * stage without files; a malformed metrics line is an error naming its file and line,
 * and no report is written. Then Debian's chromium opens the page headless: the DOM it
 * renders carries the marks the page's script sets (6 charts, none empty), and the
 * console shows the script's one line and nothing else (no error, warning or uncaught
 * exception; Chromium logs every console level as INFO:CONSOLE). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/fsutil.h"
#include "pipeline/report.h"
#include "../test_util.h"

static char g_dir[64];
static sevo_config g_cfg;

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }

static void write_in(const char *name, const char *text) {
    char p[256];
    path_in(p, sizeof p, name);
    write_text(p, text);
}

static const char RESULTS_JSON[] =
    "{\"models\": [{\"name\": \"SFT\", \"splits\": {"
    "\"test\": {\"per_depth\": {\"1\": {\"mean_steps\": 5}, \"2\": {\"mean_steps\": 5}, \"3\": {\"mean_steps\": 5}}},"
    "\"test_early_exit\": {\"per_depth\": {\"1\": {\"mean_steps\": 1.5}, \"2\": {\"mean_steps\": 2.7}, "
    "\"3\": {\"mean_steps\": 3.6}}}}}]}\n";

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/sevo-report-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    const char *dirs[] = {"sft", "dpo", "hsr", "eval", "ablation"};
    for (int i = 0; i < 5; i++) {
        char p[256];
        sevo_error err;
        path_in(p, sizeof p, dirs[i]);
        if (sevo_mkdirs(p, &err)) return -1;
    }
    config_defaults(&g_cfg);
    snprintf(g_cfg.output_dir, SEVO_PATH_MAX, "%s", g_dir);
    snprintf(g_cfg.sft_output_dir, SEVO_PATH_MAX, "%s/sft", g_dir);
    snprintf(g_cfg.sr_dpo_output_dir, SEVO_PATH_MAX, "%s/dpo", g_dir);
    snprintf(g_cfg.hsr_ee_output_dir, SEVO_PATH_MAX, "%s/hsr", g_dir);
    snprintf(g_cfg.eval_output_dir, SEVO_PATH_MAX, "%s/eval", g_dir);
    write_in("sft/metrics.jsonl", "{\"step\":50,\"loss\":4.3}\n{\"step\":100,\"loss\":2.1}\n{\"step\":150,\"loss\":1.2}\n");
    write_in("dpo/metrics.jsonl", "{\"step\":1,\"loss\":0.69,\"rewards/accuracies\":0.0}\n"
                                  "{\"step\":2,\"loss\":0.61,\"rewards/accuracies\":0.75}\n");
    write_in("hsr/metrics.jsonl", "{\"epoch\":0,\"gate_loss\":0.65,\"heldout_loss\":0.66,\"tau\":0.7}\n"
                                  "{\"epoch\":1,\"gate_loss\":0.50,\"heldout_loss\":0.52,\"tau\":0.83}\n"
                                  "{\"epoch\":2,\"gate_loss\":0.47,\"heldout_loss\":0.49,\"tau\":0.81}\n");
    write_in("eval/results.json", RESULTS_JSON);
    write_in("eval/results.md", "| Metric | SFT |\n|---|---:|\n| Accuracy, test (%) | 82.6 |\n\nEarly exit: <5 steps & more\n");
    write_in("ablation/ablation.md", "| Variant | Accuracy (%) |\n|---|---:|\n| full | 81.3 |\n| no_sr_dpo | 81.2 |\n");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    sevo_remove_tree(g_dir);
    return 0;
}

static char *report_text(const char *path) {
    char *text = NULL;
    sevo_error err;
    if (sevo_read_file(path, &text, NULL, &err)) fail_msg("%s", err.msg);
    return text;
}

static void write_report(char *path, size_t n) {
    char ablation[256];
    path_in(path, n, "report.html");
    path_in(ablation, sizeof ablation, "ablation/ablation.md");
    sevo_error err;
    if (report_write(&g_cfg, ablation, path, &err)) fail_msg("report_write: %s", err.msg);
}

static void test_report_is_self_contained_with_every_chart(void **state) {
    (void)state;
    char path[256];
    write_report(path, sizeof path);
    char *html = report_text(path);
    assert_null(strstr(html, "http:"));
    assert_null(strstr(html, "https:"));
    assert_null(strstr(html, "<link"));
    assert_null(strstr(html, " src="));
    assert_null(strstr(html, "@import"));
    assert_null(strstr(html, "url("));
    /* SFT loss, DPO loss, DPO reward accuracy, gate loss (2 series), tau, steps per depth */
    assert_int_equal(count_substr(html, "<svg class=\"chart\""), 6);
    assert_int_equal(count_substr(html, "<polyline"), 6);
    assert_int_equal(count_substr(html, "<rect class=\"bar\""), 6); /* 3 depths x (fixed K, early exit) */
    assert_non_null(strstr(html, "<svg class=\"chart\" data-points=\"3\""));  /* SFT loss */
    assert_non_null(strstr(html, "<svg class=\"chart\" data-points=\"6\""));  /* gate loss, two series */
    /* the tables, escaped */
    assert_non_null(strstr(html, "<th>Metric</th>"));
    assert_non_null(strstr(html, "<td class=\"n\">82.6</td>"));
    assert_non_null(strstr(html, "Early exit: &lt;5 steps &amp; more"));
    assert_non_null(strstr(html, "<td>no_sr_dpo</td>"));
    free(html);
}

static void test_missing_stage_and_bad_metrics(void **state) {
    (void)state;
    char path[256], moved[256], orig[256];
    /* without SR-DPO's metrics its two charts become notes */
    path_in(orig, sizeof orig, "dpo/metrics.jsonl");
    path_in(moved, sizeof moved, "dpo/metrics.moved");
    assert_int_equal(rename(orig, moved), 0);
    write_report(path, sizeof path);
    char *html = report_text(path);
    assert_int_equal(count_substr(html, "<svg class=\"chart\""), 4);
    assert_non_null(strstr(html, "SR-DPO loss: SR-DPO not run"));
    free(html);
    assert_int_equal(rename(moved, orig), 0);
    /* a truncated line: an error naming the file and line, and no report */
    write_in("sft/metrics.jsonl", "{\"step\":50,\"loss\":4.3}\n{\"step\":100,\"lo\n");
    path_in(path, sizeof path, "bad-report.html");
    sevo_error err;
    assert_int_equal(report_write(&g_cfg, NULL, path, &err), -1);
    assert_non_null(strstr(err.msg, "sft/metrics.jsonl:2"));
    assert_false(sevo_file_exists(path));
    write_in("sft/metrics.jsonl", "{\"step\":50,\"loss\":4.3}\n{\"step\":100,\"loss\":2.1}\n{\"step\":150,\"loss\":1.2}\n");
}

static void test_renders_in_headless_chromium(void **state) {
    (void)state;
    char path[256], dom[256], log[256], profile[256], cmd[2048];
    write_report(path, sizeof path);
    path_in(dom, sizeof dom, "dom.html");
    path_in(log, sizeof log, "chromium.log");
    path_in(profile, sizeof profile, "chromium-profile");
    if (system("command -v chromium >/dev/null 2>&1") != 0)
        fail_msg("chromium not found: scripts/install-deps.sh installs Debian's chromium package");
    /* --no-sandbox: the tests may run as root, where Chromium's sandbox refuses to start */
    snprintf(cmd, sizeof cmd,
             "timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir='%s' "
             "--enable-logging=stderr --v=0 --dump-dom 'file://%s' >'%s' 2>'%s'",
             profile, path, dom, log);
    int rc = system(cmd);
    char *out = report_text(dom), *err_log = report_text(log);
    if (rc != 0) fail_msg("chromium exited with %d:\n%s", rc, err_log);
    if (!strstr(out, "data-charts=\"6\"") || !strstr(out, "data-charts-empty=\"0\""))
        fail_msg("the rendered page lacks the script's marks:\n%.600s", out);
    assert_int_equal(count_substr(out, "<polyline"), 6);
    /* exactly one console line, the report's own */
    if (count_substr(err_log, ":CONSOLE") != 1 || !strstr(err_log, "\"sevo report: 6 charts, "))
        fail_msg("console output other than the report's line:\n%s", err_log);
    assert_non_null(strstr(err_log, ", 0 empty\""));
    free(out);
    free(err_log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_is_self_contained_with_every_chart),
        cmocka_unit_test(test_missing_stage_and_bad_metrics),
        cmocka_unit_test(test_renders_in_headless_chromium),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
