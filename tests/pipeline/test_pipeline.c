/* test_pipeline.c: the whole loop on a small world. It runs to the end and prints the
 * SFT vs SR-DPO table; a rerun skips every complete stage; a stage left incomplete is
 * resumed or redone with the same result; the ablations run after it and the report
 * shows them; a directory from another configuration, or
 * one the pipeline did not write, is refused; and `sevo pipeline` killed with SIGKILL
 * at two points and rerun ends with the same results as the uninterrupted run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/threads.h"
#include "pipeline/ablation.h"
#include "pipeline/pipeline.h"
#include "../test_util.h"

static char g_dir[64];

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/sevo-pipe-XXXXXX");
    sevo_threads_init(2);
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    sevo_remove_tree(g_dir);
    return 0;
}

/* The small pipeline, as JSON (also used by the kill test through the binary). */
static void write_config(const char *path, const char *out) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"synth\": {\"num_train\": 100, \"num_test\": 10},\n"
             " \"sft\": {\"num_epochs\": 8, \"learning_rate\": 0.003, \"batch_size\": 8,"
             " \"gradient_accumulation_steps\": 1, \"warmup_ratio\": 0.1},\n"
             " \"ipr\": {\"num_samples\": 100, \"temperature\": 0.7},\n"
             " \"sr_dpo\": {\"learning_rate\": 0.0003, \"batch_size\": 4, \"gradient_accumulation_steps\": 1,"
             " \"num_epochs\": 2},\n"
             " \"data_dir\": \"%s/data\", \"output_dir\": \"%s\", \"sft_output_dir\": \"%s/sft\","
             " \"ipr_data_dir\": \"%s/ipr\", \"sr_dpo_output_dir\": \"%s/dpo\", \"eval_output_dir\": \"%s/eval\",\n"
             " \"hsr_ee_output_dir\": \"%s/hsr\", \"hsr_ee\": {\"confidence_head_hidden_dim\": 32},\n"
             " \"logging_steps\": 5, \"save_steps\": 10, \"seed\": 5, \"num_threads\": 2}\n",
             out, out, out, out, out, out, out);
    write_text(path, text);
}

static void load_config(sevo_config *c, const char *out) {
    char path[256];
    snprintf(path, sizeof path, "%s.json", out);
    write_config(path, out);
    config_defaults(c);
    sevo_error err;
    if (config_load(c, path, &err)) fail_msg("%s", err.msg);
}

__attribute__((noinline)) static char *slurp(const char *dir, const char *name) {
    char p[512], *t = NULL;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    sevo_error err;
    if (sevo_read_file(p, &t, NULL, &err)) fail_msg("%s", err.msg);
    return t;
}

/* Drops the tables' wall-time rows: every other number must repeat exactly. */
static void drop_timing(char *table) {
    char *row;
    while ((row = strstr(table, "| ms per sample"))) {
        char *end = strchr(row, '\n');
        memmove(row, end ? end + 1 : row + strlen(row), strlen(end ? end + 1 : row + strlen(row)) + 1);
    }
}

static void expect_same_file(const char *a, const char *b, const char *name) {
    char *x = slurp(a, name), *y = slurp(b, name);
    drop_timing(x);
    drop_timing(y);
    if (strcmp(x, y) != 0) fail_msg("%s differs between %s and %s:\n%s\n%s", name, a, b, x, y);
    free(x);
    free(y);
}

/* Rewrites a stage's stamp as started but not complete, as a kill would leave it. */
static void mark_incomplete(const char *out, const char *stage) {
    char name[64], p[256], text[256];
    snprintf(name, sizeof name, "%s/.sevo_stage.json", stage);
    char *stamp = slurp(out, name);
    const char *fp = strstr(stamp, "\"fingerprint\": \"");
    assert_non_null(fp);
    fp += strlen("\"fingerprint\": \"");
    snprintf(text, sizeof text, "{\"fingerprint\": \"%.16s\", \"complete\": false}\n", fp);
    free(stamp);
    snprintf(p, sizeof p, "%s/%s", out, name);
    write_text(p, text);
}

static void test_runs_skips_and_resumes(void **state) {
    (void)state;
    char out[128], p[256];
    snprintf(out, sizeof out, "%s/run", g_dir);
    sevo_config c;
    load_config(&c, out);
    pipeline_options o = {.cfg = &c};
    strbuf t1 = {0};
    sevo_error err;
    if (pipeline_run(&o, &t1, &err)) fail_msg("pipeline_run: %s", err.msg);
    assert_non_null(strstr(t1.p, "| Metric | SFT | SR-DPO |"));
    /* both models also answer test with the SFT model's gate */
    assert_non_null(strstr(t1.p, "| Early exit, SFT (test) |"));
    assert_non_null(strstr(t1.p, "| Early exit, SR-DPO (test) |"));
    snprintf(p, sizeof p, "%s/hsr/confidence_head.safetensors", out);
    assert_true(sevo_file_exists(p));
    char *results = slurp(out, "eval/results.md");
    assert_string_equal(results, t1.p);
    /* a rerun skips every stage: the evaluation's table is read back, not recomputed */
    snprintf(p, sizeof p, "%s/eval/results.md", out);
    write_text(p, "marker\n");
    strbuf t2 = {0};
    assert_int_equal(pipeline_run(&o, &t2, &err), 0);
    assert_string_equal(t2.p, "marker\n");
    write_text(p, results);
    /* SR-DPO interrupted after its first checkpoint, evaluation not finished: resumed
     * and redone, with the same weights and table */
    char wpath[256], *weights = NULL, *again = NULL;
    size_t lw = 0, la = 0;
    snprintf(wpath, sizeof wpath, "%s/dpo/model.safetensors", out);
    assert_int_equal(sevo_read_file(wpath, &weights, &lw, &err), 0);
    const char *finals[] = {"dpo/model.safetensors", "dpo/optimizer.safetensors", "dpo/trainer_state.json",
                            "dpo/config.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", out, finals[i]);
        remove(p);
    }
    mark_incomplete(out, "dpo");
    snprintf(p, sizeof p, "%s/eval/.sevo_stage.json", out);
    remove(p);
    snprintf(p, sizeof p, "%s/eval", out);
    sevo_remove_tree(p);
    strbuf t3 = {0};
    if (pipeline_run(&o, &t3, &err)) fail_msg("resumed pipeline_run: %s", err.msg);
    drop_timing(t3.p);
    drop_timing(results);
    assert_string_equal(t3.p, results);
    assert_int_equal(sevo_read_file(wpath, &again, &la, &err), 0);
    assert_int_equal(lw, la);
    assert_memory_equal(weights, again, lw);
    free(again);
    free(weights);
    /* another configuration over the same directories is refused */
    c.sr_dpo.beta = 0.2f;
    assert_int_equal(pipeline_run(&o, &t3, &err), -1);
    assert_non_null(strstr(err.msg, "another configuration"));
    free(results);
    strbuf_free(&t1);
    strbuf_free(&t2);
    strbuf_free(&t3);
}

/* The ablations after a complete run (the first test's, or made here): the four rows,
 * ablation.json, the report with the ablation table; a rerun reads the same table back;
 * and a change of the PPO settings leaves the method's stages and no_ipr alone (their
 * fingerprint leaves ppo out) while the PPO stage refuses the other configuration. */
static void test_ablation_all_and_report(void **state) {
    (void)state;
    char out[128], p[256];
    snprintf(out, sizeof out, "%s/run", g_dir);
    sevo_config c;
    load_config(&c, out);
    c.ppo.num_samples = 16;
    c.ppo.batch_size = 4;
    pipeline_options o = {.cfg = &c, .ablation = ABLATION_ALL};
    strbuf t1 = {0}, t2 = {0}, t3 = {0};
    sevo_error err;
    if (pipeline_run(&o, &t1, &err)) fail_msg("pipeline_run --ablation all: %s", err.msg);
    const char *rows[] = {"| Variant | Accuracy (%) |", "\n| full | ", "\n| no_hsr_ee | ", "\n| no_ipr | ",
                          "\n| no_sr_dpo | "};
    for (int i = 0; i < 5; i++)
        if (!strstr(t1.p, rows[i])) fail_msg("no '%s' in:\n%s", rows[i], t1.p);
    const char *files[] = {"ablation/ablation.json", "ablation/ablation.md", "ablation/no_ipr/preferences.jsonl",
                           "ablation/no_ipr/dpo_ckpt/model.safetensors", "ablation/no_sr_dpo/ppo_ckpt/model.safetensors",
                           "ablation/no_sr_dpo/ppo_ckpt/round-1/rollouts.json",
                           "ablation/no_sr_dpo/eval_results/results.json"};
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        if (!sevo_file_exists(p)) fail_msg("%s: missing", p);
    }
    char *report = slurp(out, "report.html");
    assert_non_null(strstr(report, "<td>no_sr_dpo</td>"));
    assert_int_equal(count_substr(report, "<svg class=\"chart\""), 6);
    free(report);
    if (pipeline_run(&o, &t2, &err)) fail_msg("rerun: %s", err.msg);
    drop_timing(t1.p);
    drop_timing(t2.p);
    assert_string_equal(t1.p, t2.p);
    c.ppo.kl_coef = 0.5f;
    assert_int_equal(pipeline_run(&o, &t3, &err), -1);
    assert_non_null(strstr(err.msg, "ablation no_sr_dpo"));
    assert_non_null(strstr(err.msg, "another configuration"));
    strbuf_free(&t1);
    strbuf_free(&t2);
    strbuf_free(&t3);
}

static void test_refuses_foreign_directory(void **state) {
    (void)state;
    char out[128], p[256];
    snprintf(out, sizeof out, "%s/foreign", g_dir);
    sevo_config c;
    load_config(&c, out);
    snprintf(p, sizeof p, "%s/data", out);
    sevo_error err;
    assert_int_equal(sevo_mkdirs(c.sft_output_dir, &err), 0);
    snprintf(p, sizeof p, "%s/precious.txt", c.sft_output_dir);
    write_text(p, "keep me");
    pipeline_options o = {.cfg = &c};
    strbuf t = {0};
    assert_int_equal(pipeline_run(&o, &t, &err), -1);
    assert_non_null(strstr(err.msg, "did not write"));
    assert_true(sevo_file_exists(p));
    strbuf_free(&t);

    /* A run killed while writing a stage's first stamp leaves only the stamp's temporary
     * file: that directory is the pipeline's own and starts afresh. Here SFT's holds such
     * a file and IPR's a foreign one: SFT runs, the leftover goes, IPR is refused. */
    assert_int_equal(remove(p), 0);
    char tmp[256], foreign[256];
    snprintf(tmp, sizeof tmp, "%s/.sevo_stage.json.tmp.99999", c.sft_output_dir);
    write_text(tmp, "{\"fingerprint\": \"0\"");
    assert_int_equal(sevo_mkdirs(c.ipr_data_dir, &err), 0);
    snprintf(foreign, sizeof foreign, "%s/mine.txt", c.ipr_data_dir);
    write_text(foreign, "keep me");
    assert_int_equal(pipeline_run(&o, &t, &err), -1);
    assert_non_null(strstr(err.msg, "did not write"));
    assert_non_null(strstr(err.msg, c.ipr_data_dir));
    assert_false(sevo_file_exists(tmp));
    snprintf(p, sizeof p, "%s/.sevo_stage.json", c.sft_output_dir);
    assert_true(sevo_file_exists(p));
    assert_true(sevo_file_exists(foreign));
    strbuf_free(&t);
}

/* Runs `sevo pipeline --config CFG`, killed with SIGKILL after kill_after seconds (0 =
 * never), its output appended to CFG.log (printed when a run that is not killed fails).
 * Returns the wall time. */
static double run_binary(const char *cfg, double kill_after) {
    const char *bin = getenv("SEVO_BIN");
    if (!bin) skip();
    char log[256];
    snprintf(log, sizeof log, "%s.log", cfg);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(log, "a", stdout) || dup2(fileno(stdout), fileno(stderr)) < 0) _exit(126);
        execl(bin, bin, "pipeline", "--config", cfg, (char *)NULL);
        _exit(127);
    }
    int st;
    if (kill_after > 0) {
        struct timespec d = {(time_t)kill_after, (long)((kill_after - (time_t)kill_after) * 1e9)};
        nanosleep(&d, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    } else {
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            char cmd[320];
            snprintf(cmd, sizeof cmd, "tail -n 15 '%s' >&2", log);
            fprintf(stderr, "sevo pipeline --config %s: %s %d; the end of %s:\n", cfg,
                    WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), log);
            if (system(cmd) != 0) fprintf(stderr, "(cannot read it)\n");
            fail();
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
}

static void test_killed_and_rerun_gives_the_same_results(void **state) {
    (void)state;
    char a[128], b[128], ca[160], cb[160];
    snprintf(a, sizeof a, "%s/straight", g_dir);
    snprintf(b, sizeof b, "%s/killed", g_dir);
    snprintf(ca, sizeof ca, "%s.json", a);
    snprintf(cb, sizeof cb, "%s.json", b);
    write_config(ca, a);
    write_config(cb, b);
    double full = run_binary(ca, 0);
    /* once in SFT, once late (IPR, SR-DPO or evaluation), then to the end */
    run_binary(cb, 0.3 * full);
    run_binary(cb, 0.75 * full);
    run_binary(cb, 0);
    expect_same_file(a, b, "eval/results.md");
    expect_same_file(a, b, "ipr/preferences.jsonl");
    assert_same_file_bytes(a, b, "dpo/model.safetensors");
    assert_same_file_bytes(a, b, "hsr/confidence_head.safetensors");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_skips_and_resumes),
        cmocka_unit_test(test_ablation_all_and_report),
        cmocka_unit_test(test_refuses_foreign_directory),
        cmocka_unit_test(test_killed_and_rerun_gives_the_same_results),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
