/* test_bad_input.c: the `sevo` binary on bad input. Each case must exit non-zero with a
 * one-line error that names the file (and line or field), and leave no output behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "../test_util.h"
#include "core/fsutil.h"
#include "data/synth.h"
#include "method/hsr_ee.h"

typedef struct fixture {
    char dir[64];
} fixture;

static const char *sevo_bin(void) {
    const char *b = getenv("SEVO_BIN");
    return b ? b : "./sevo";
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/sevo-bad-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    synth_options o;
    synth_options_default(&o);
    char data[128];
    snprintf(data, sizeof data, "%s/world", f->dir);
    o.output_dir = data;
    o.num_train = 4;
    o.num_test = 4;
    sevo_error err;
    if (synth_generate(&o, &err)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    sevo_remove_tree(f->dir);
    free(f);
    return 0;
}

/* Runs `sevo ARGS` in dir; returns the exit status and the captured stderr. */
static int run_sevo(const char *dir, const char *args, char *errbuf, size_t n) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && SEVO_KEEP_BLAS_CORETYPE=1 %s %s 2>stderr.txt >/dev/null", dir, sevo_bin(), args);
    int st = system(cmd);
    char path[256], *txt = NULL;
    snprintf(path, sizeof path, "%s/stderr.txt", dir);
    sevo_error err;
    errbuf[0] = '\0';
    if (sevo_read_file(path, &txt, NULL, &err) == 0) {
        snprintf(errbuf, n, "%s", txt);
        free(txt);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_train(const fixture *f, const char *extra_line) {
    char src[256], dst[256], *txt = NULL;
    sevo_error err;
    snprintf(src, sizeof src, "%s/world/train.jsonl", f->dir);
    assert_int_equal(sevo_read_file(src, &txt, NULL, &err), 0);
    char *buf = malloc(strlen(txt) + strlen(extra_line) + 2);
    assert_non_null(buf);
    sprintf(buf, "%s%s\n", txt, extra_line);
    snprintf(dst, sizeof dst, "%s/bad/train.jsonl", f->dir);
    write_text(dst, buf);
    free(buf);
    free(txt);
}

static void expect_failure(const fixture *f, const char *args, const char *must_contain) {
    char err[4096];
    int rc = run_sevo(f->dir, args, err, sizeof err);
    if (rc == 0) fail_msg("sevo %s: expected failure, exit 0", args);
    if (!strstr(err, must_contain)) fail_msg("sevo %s: stderr lacks '%s':\n%s", args, must_contain, err);
    char out[256];
    snprintf(out, sizeof out, "%s/out", f->dir);
    if (sevo_dir_exists(out)) {
        char p[512];
        const char *outputs[] = {"model.safetensors", "predictions.jsonl", "preferences.jsonl", "ipr_stats.json",
                                 "results.json", "results.md", HSR_GATE_FILE, "metrics.jsonl"};
        for (int i = 0; i < 8; i++) {
            snprintf(p, sizeof p, "%s/%s", out, outputs[i]);
            if (sevo_file_exists(p)) fail_msg("sevo %s: left %s behind", args, p);
        }
    }
}

static void prepare_bad_dir(const fixture *f) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/bad && ln -sfn %s/world/images %s/bad/images", f->dir, f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
}

static void test_missing_image(void **state) {
    fixture *f = *state;
    prepare_bad_dir(f);
    write_train(f, "{\"image\": \"images/nope.png\", \"question\": \"q ?\", \"answer\": \"yes\"}");
    expect_failure(f, "sft --data_dir bad --output_dir out --max_steps 1", "train.jsonl:5: field 'image'");
}

static void test_undecodable_image(void **state) {
    fixture *f = *state;
    prepare_bad_dir(f);
    char p[256];
    snprintf(p, sizeof p, "%s/bad/fake.png", f->dir);
    write_text(p, "not a png");
    write_train(f, "{\"image\": \"fake.png\", \"question\": \"q ?\", \"answer\": \"yes\"}");
    expect_failure(f, "sft --data_dir bad --output_dir out --max_steps 1", "cannot decode image");
}

static void test_malformed_line(void **state) {
    fixture *f = *state;
    prepare_bad_dir(f);
    write_train(f, "{\"image\": \"images/train_000001.png\", \"question\": \"q ?\"");
    expect_failure(f, "sft --data_dir bad --output_dir out --max_steps 1", "train.jsonl:5: invalid JSON");
}

static void test_missing_field(void **state) {
    fixture *f = *state;
    prepare_bad_dir(f);
    write_train(f, "{\"image\": \"images/train_000001.png\", \"question\": \"q ?\"}");
    expect_failure(f, "sft --data_dir bad --output_dir out --max_steps 1", "train.jsonl:5: field 'answer': missing");
}

static void test_model_dir_without_config(void **state) {
    fixture *f = *state;
    expect_failure(f, "inference --model_path world --data_dir world --output_dir out", "no config.json");
}

/* <dir>/<name>/config.json describing a small model (decoder width 8). */
static void write_small_model_config(const fixture *f, const char *name) {
    char dir[256], p[512];
    snprintf(dir, sizeof dir, "%s/%s", f->dir, name);
    sevo_error err;
    assert_int_equal(sevo_mkdirs(dir, &err), 0);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, "{\"vision_config\": {\"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 1, "
                  "\"num_attention_heads\": 2, \"image_size\": 8, \"patch_size\": 4}, \"text_config\": "
                  "{\"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
                  "\"vocab_size\": 16, \"bos_token_id\": 2, \"eos_token_id\": 3, \"pad_token_id\": 0}, "
                  "\"image_token_index\": 4}");
}

static void test_truncated_safetensors(void **state) {
    fixture *f = *state;
    char dir[256], p[512];
    snprintf(dir, sizeof dir, "%s/model", f->dir);
    write_small_model_config(f, "model");
    /* a header that promises more bytes than the file holds */
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_text(p, "\x40\x00\x00\x00\x00\x00\x00\x00{\"a\":");
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    write_text(p, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[],\"normalizer\":null,"
                  "\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"post_processor\":null,\"decoder\":null,"
                  "\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"<unk>\":0},\"unk_token\":\"<unk>\"}}");
    expect_failure(f, "inference --model_path model --data_dir world --output_dir out", "model.safetensors");
}

static void test_config_wrong_type(void **state) {
    fixture *f = *state;
    char p[256];
    snprintf(p, sizeof p, "%s/c.json", f->dir);
    write_text(p, "{\"sft\": {\"learning_rate\": \"fast\"}}");
    expect_failure(f, "sft --config c.json --data_dir world --output_dir out", "c.json: sft.learning_rate: expected a number");
}

static void test_unknown_flag_and_bad_value(void **state) {
    fixture *f = *state;
    expect_failure(f, "sft --no_such_flag 1", "unknown flag");
    expect_failure(f, "inference --model_path x --data_dir world --max_samples many", "--max_samples");
}

/* Preference pairs next to the world's images: the first line good, the second `bad`. */
static void write_pairs(const fixture *f, const char *bad) {
    char p[256], text[2048];
    snprintf(p, sizeof p, "%s/world/pairs.jsonl", f->dir);
    snprintf(text, sizeof text,
             "{\"image_path\": \"images/train_000000.png\", \"question\": \"q ?\", \"ground_truth\": \"yes\", "
             "\"chosen\": \"red circle at center\", \"rejected\": \"none\", \"iteration\": 1}\n%s\n", bad);
    write_text(p, text);
}

static void test_bad_preference_pairs(void **state) {
    fixture *f = *state;
    const char *args = "train-sr-dpo --model_path world --preference_data world/pairs.jsonl --output_dir out";
    write_pairs(f, "{\"image_path\": \"images/train_000001.png\", \"question\": \"q ?\", \"rejected\": \"x\"}");
    expect_failure(f, args, "pairs.jsonl:2: field 'chosen': missing");
    write_pairs(f, "{\"image_path\": \"images/train_000001.png\", \"question\": \"q ?\", \"chosen\": \"x\", "
                   "\"rejected\": \"\"}");
    expect_failure(f, args, "pairs.jsonl:2: field 'rejected': empty");
    write_pairs(f, "{\"image_path\": \"images/gone.png\", \"question\": \"q ?\", \"chosen\": \"x\", "
                   "\"rejected\": \"y\"}");
    expect_failure(f, args, "pairs.jsonl:2: field 'image_path': image not found");
}

static void test_beta_must_be_positive(void **state) {
    fixture *f = *state;
    write_pairs(f, "");
    expect_failure(f, "train-sr-dpo --model_path world --preference_data world/pairs.jsonl --output_dir out --beta 0",
                   "sr_dpo.beta");
    expect_failure(f, "train-sr-dpo --model_path world --preference_data world/pairs.jsonl --output_dir out --beta -1",
                   "sr_dpo.beta");
}

static void test_not_a_checkpoint(void **state) {
    fixture *f = *state;
    write_pairs(f, "");
    expect_failure(f, "train-sr-dpo --model_path world --preference_data world/pairs.jsonl --output_dir out",
                   "no config.json");
    expect_failure(f, "generate-ipr-data --model_path world --data_dir world --output_dir out", "no config.json");
    expect_failure(f, "eval --model_path world --data_dir world --output_dir out", "no config.json");
}

static void test_data_dir_without_splits(void **state) {
    fixture *f = *state;
    char p[256];
    snprintf(p, sizeof p, "%s/empty", f->dir);
    sevo_error err;
    assert_int_equal(sevo_mkdirs(p, &err), 0);
    expect_failure(f, "eval --model_path world --data_dir empty --output_dir out", "empty/test.jsonl: not found");
    expect_failure(f, "generate-ipr-data --model_path world --data_dir empty --output_dir out",
                   "empty/train.jsonl: not found");
}

static void test_early_exit_flags(void **state) {
    fixture *f = *state;
    /* a model directory with only a config.json (the gate is checked against it before
     * the model loads), a gate for hidden states of size 16, and one whose tau is 1 */
    write_small_model_config(f, "small");
    char p[256];
    hsr_gate g;
    sevo_error err;
    assert_int_equal(hsr_gate_init(&g, 16, 4, 0.7f, 1, &err), 0);
    snprintf(p, sizeof p, "%s/gate16.safetensors", f->dir);
    assert_int_equal(hsr_gate_save(&g, p, &err), 0);
    hsr_gate_release(&g);
    assert_int_equal(hsr_gate_init(&g, 8, 4, 0.7f, 1, &err), 0);
    g.theta_tau = 200.0f;
    snprintf(p, sizeof p, "%s/gate_tau1.safetensors", f->dir);
    assert_int_equal(hsr_gate_save(&g, p, &err), 0);
    hsr_gate_release(&g);

    expect_failure(f, "inference --model_path small --data_dir world --output_dir out --use_early_exit",
                   "--use_early_exit needs a gate");
    expect_failure(f, "eval --model_path small --data_dir world --output_dir out --use_early_exit",
                   "--use_early_exit needs a gate");
    expect_failure(f, "inference --model_path small --data_dir world --output_dir out --use_early_exit "
                      "--confidence_head_path gate16.safetensors",
                   "gate16.safetensors: tensor 'confidence_head.0.weight': the gate reads hidden states of size 16, "
                   "the model's hidden size is 8");
    expect_failure(f, "inference --model_path small --data_dir world --output_dir out --use_early_exit "
                      "--confidence_head_path gate_tau1.safetensors",
                   "gate_tau1.safetensors: tensor 'threshold_logit'");
    expect_failure(f, "inference --model_path small --data_dir world --output_dir out --use_early_exit "
                      "--confidence_head_path gate16.safetensors --threshold 1.5",
                   "--threshold 1.5: tau must be inside (0, 1)");
}

static void test_hsr_ee_settings(void **state) {
    fixture *f = *state;
    const char *base = "train-hsr-ee --model_path small --data_dir world --output_dir out";
    char args[512];
    snprintf(args, sizeof args, "%s --threshold 1", base);
    expect_failure(f, args, "hsr_ee.confidence_threshold");
    snprintf(args, sizeof args, "%s --threshold 0", base);
    expect_failure(f, args, "hsr_ee.confidence_threshold");
    snprintf(args, sizeof args, "%s --max_reasoning_steps 0", base);
    expect_failure(f, args, "hsr_ee.max_reasoning_steps");
    snprintf(args, sizeof args, "%s --length_penalty_lambda -0.1", base);
    expect_failure(f, args, "hsr_ee.length_penalty_lambda");
    expect_failure(f, "inference --model_path small --data_dir world --output_dir out --max_reasoning_steps 0",
                   "hsr_ee.max_reasoning_steps");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_image),
        cmocka_unit_test(test_undecodable_image),
        cmocka_unit_test(test_malformed_line),
        cmocka_unit_test(test_missing_field),
        cmocka_unit_test(test_model_dir_without_config),
        cmocka_unit_test(test_truncated_safetensors),
        cmocka_unit_test(test_config_wrong_type),
        cmocka_unit_test(test_unknown_flag_and_bad_value),
        cmocka_unit_test(test_bad_preference_pairs),
        cmocka_unit_test(test_beta_must_be_positive),
        cmocka_unit_test(test_not_a_checkpoint),
        cmocka_unit_test(test_data_dir_without_splits),
        cmocka_unit_test(test_early_exit_flags),
        cmocka_unit_test(test_hsr_ee_settings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
