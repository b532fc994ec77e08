/* test_config.c: the configuration: the reference's defaults, configs/default_config.json,
 * loading a file written for the reference (warnings, no error), type and range errors,
 * unknown keys, command-line overrides through config_set, and print -> load round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/fsutil.h"
#include "../test_util.h"

/* The reference's configs/default_config.json, verbatim. */
static const char REFERENCE_JSON[] =
    "{\"model\": {\"model_name_or_path\": \"Qwen/Qwen-VL-Chat\", \"use_flash_attention\": true, "
    "\"bf16\": true, \"gradient_checkpointing\": true, \"lora_rank\": 0, \"lora_alpha\": 16, "
    "\"device_map\": \"auto\"}, \"hsr_ee\": {\"confidence_threshold\": 0.7, "
    "\"max_reasoning_steps\": 5, \"length_penalty_lambda\": 0.1, \"confidence_head_hidden_dim\": "
    "256, \"adaptive_threshold\": true, \"threshold_lr\": 0.001}, \"ipr\": "
    "{\"max_refinement_iterations\": 2, \"refinement_prompt_template\": \"The description "
    "'{perception}' was insufficient to answer the question correctly. Please re-examine the "
    "image. Focus on spatial relationships and small details that were missed. Provide a refined "
    "description.\", \"discard_failed_samples\": true, \"num_samples\": 50000}, \"sr_dpo\": "
    "{\"beta\": 0.1, \"learning_rate\": 5e-7, \"batch_size\": 64, \"num_epochs\": 3, "
    "\"gradient_accumulation_steps\": 4, \"max_seq_length\": 2048, \"warmup_ratio\": 0.1, "
    "\"weight_decay\": 0.01, \"max_grad_norm\": 1.0}, \"sft\": {\"num_epochs\": 1, "
    "\"learning_rate\": 5e-5, \"batch_size\": 4, \"gradient_accumulation_steps\": 4, "
    "\"dataset_name\": \"llava_instruct_150k\", \"max_seq_length\": 2048}, \"output_dir\": "
    "\"./output\", \"sft_output_dir\": \"./output/sft_ckpt\", \"ipr_data_dir\": "
    "\"./output/ipr_data\", \"hsr_ee_output_dir\": \"./output/hsr_ee_ckpt\", "
    "\"sr_dpo_output_dir\": \"./output/sr_dpo_ckpt\", \"eval_output_dir\": "
    "\"./output/eval_results\", \"logging_steps\": 10, \"save_steps\": 500, \"eval_steps\": 500, "
    "\"seed\": 42}";

static const char TEMPLATE[] =
    "The description '{perception}' was insufficient to answer the question correctly. Please "
    "re-examine the image. Focus on spatial relationships and small details that were missed. "
    "Provide a refined description.";

typedef struct fixture {
    char dir[64];
    char path[128]; /* <dir>/cfg.json */
    char captured[8192];
} fixture;

static int setup(void **state) {
    fixture *f = test_fixture_new(fixture, "sevo_cfg");
    if (!f) return -1;
    snprintf(f->path, sizeof f->path, "%s/cfg.json", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    test_fixture_free(f, f->dir);
    return 0;
}

/* config_load with stderr captured into f->captured. */
static int load_capturing(fixture *f, sevo_config *c, const char *path, sevo_error *err) {
    stderr_capture cap;
    capture_stderr_begin(&cap);
    int rc = config_load(c, path, err);
    capture_stderr_end(&cap, f->captured, sizeof f->captured);
    return rc;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void assert_defaults(const sevo_config *c) {
    assert_string_equal(c->model.model_name_or_path, "sevo-tiny");
    assert_int_equal(c->model.lora_rank, 0);
    assert_true(c->hsr_ee.confidence_threshold == 0.7f);
    assert_int_equal(c->hsr_ee.max_reasoning_steps, 5);
    assert_true(c->hsr_ee.length_penalty_lambda == 0.1f);
    assert_int_equal(c->hsr_ee.confidence_head_hidden_dim, 256);
    assert_int_equal(c->hsr_ee.adaptive_threshold, 1);
    assert_true(c->hsr_ee.threshold_lr == 0.001f);
    assert_int_equal(c->ipr.max_refinement_iterations, 2);
    assert_string_equal(c->ipr.refinement_prompt_template, TEMPLATE);
    assert_int_equal(c->ipr.discard_failed_samples, 1);
    assert_int_equal(c->ipr.num_samples, 50000);
    assert_true(c->sr_dpo.beta == 0.1f);
    assert_true(c->sr_dpo.learning_rate == 5e-7f);
    assert_int_equal(c->sr_dpo.batch_size, 64);
    assert_int_equal(c->sr_dpo.num_epochs, 3);
    assert_int_equal(c->sr_dpo.gradient_accumulation_steps, 4);
    assert_int_equal(c->sr_dpo.max_seq_length, 2048);
    assert_true(c->sr_dpo.warmup_ratio == 0.1f);
    assert_true(c->sr_dpo.weight_decay == 0.01f);
    assert_true(c->sr_dpo.max_grad_norm == 1.0f);
    assert_true(c->sr_dpo.label_smoothing == 0.0f);
    assert_string_equal(c->sr_dpo.loss_type, "sigmoid");
    assert_int_equal(c->sft.num_epochs, 1);
    assert_true(c->sft.learning_rate == 5e-5f);
    assert_int_equal(c->sft.batch_size, 4);
    assert_int_equal(c->sft.gradient_accumulation_steps, 4);
    assert_string_equal(c->sft.dataset_name, "llava_instruct_150k");
    assert_int_equal(c->sft.max_seq_length, 2048);
    assert_true(c->sft.warmup_ratio == 0.03f);
    assert_true(c->sft.weight_decay == 0.0f);
    assert_true(c->sft.max_grad_norm == 1.0f);
    assert_int_equal(c->synth.num_train, 4000);
    assert_int_equal(c->synth.num_test, 1000);
    assert_int_equal(c->synth.image_size, 30);
    assert_true(c->synth.cooccurrence == 0.8f);
    assert_true(c->synth.noise == 0.04f);
    assert_string_equal(c->output_dir, "./output");
    assert_string_equal(c->sft_output_dir, "./output/sft_ckpt");
    assert_string_equal(c->ipr_data_dir, "./output/ipr_data");
    assert_string_equal(c->hsr_ee_output_dir, "./output/hsr_ee_ckpt");
    assert_string_equal(c->sr_dpo_output_dir, "./output/sr_dpo_ckpt");
    assert_string_equal(c->eval_output_dir, "./output/eval_results");
    assert_string_equal(c->data_dir, "./output/data");
    assert_int_equal(c->logging_steps, 10);
    assert_int_equal(c->save_steps, 500);
    assert_int_equal(c->eval_steps, 500);
    assert_int_equal(c->seed, 42);
    assert_int_equal(c->num_threads, 0);
}

static void test_defaults(void **state) {
    (void)state;
    sevo_config c;
    config_defaults(&c);
    assert_defaults(&c);
    sevo_error err = {{0}};
    assert_int_equal(config_validate(&c, "defaults", &err), 0);
}

/* The six reference keys sevo ignores, one warning each. */
static void assert_reference_warnings(const char *captured, const char *path) {
    assert_int_equal(count_lines(captured), 6);
    const char *keys[] = {
        "model.use_flash_attention", "model.bf16",       "model.gradient_checkpointing",
        "model.lora_alpha",          "model.device_map", "sft.dataset_name"};
    for (int i = 0; i < 6; i++) {
        char want[256];
        snprintf(want, sizeof want, "warning: %s: %s is not honoured by sevo (", path, keys[i]);
        const char *hit = strstr(captured, want);
        if (!hit) fail_msg("no warning for %s in:\n%s", keys[i], captured);
        assert_null(strstr(hit + 1, want)); /* once */
    }
    char bf16[256];
    snprintf(bf16, sizeof bf16,
             "warning: %s: model.bf16 is not honoured by sevo (float32 training); ignored\n", path);
    assert_non_null(strstr(captured, bf16));
}

static void test_default_file(void **state) {
    fixture *f = *state;
    const char *src = getenv("SEVO_SOURCE_DIR");
    if (!src) skip();
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/default_config.json", src);
    sevo_config c;
    config_defaults(&c);
    c.seed = 7; /* the file must set it back */
    sevo_error err = {{0}};
    if (load_capturing(f, &c, path, &err) != 0) fail_msg("%s", err.msg);
    assert_defaults(&c);
    assert_reference_warnings(f->captured, path);
}

static void test_reference_file(void **state) {
    fixture *f = *state;
    write_text(f->path, REFERENCE_JSON);
    sevo_config c;
    config_defaults(&c);
    sevo_error err = {{0}};
    if (load_capturing(f, &c, f->path, &err) != 0) fail_msg("%s", err.msg);
    /* A hub id is accepted here; refusing it offline is the CLI's job. */
    assert_string_equal(c.model.model_name_or_path, "Qwen/Qwen-VL-Chat");
    strcpy(c.model.model_name_or_path, "sevo-tiny");
    assert_defaults(&c);
    assert_reference_warnings(f->captured, f->path);
}

/* Loads json and expects an error containing needle; c must be left untouched. */
static void expect_error(fixture *f, const char *json, const char *needle) {
    write_text(f->path, json);
    sevo_config c;
    config_defaults(&c);
    sevo_error err = {{0}};
    if (load_capturing(f, &c, f->path, &err) != -1) fail_msg("'%s' should fail", json);
    if (!strstr(err.msg, f->path) || !strstr(err.msg, needle))
        fail_msg("error '%s' should name '%s' and contain '%s'", err.msg, f->path, needle);
    assert_defaults(&c);
}

static void test_type_errors(void **state) {
    fixture *f = *state;
    char want[256];
    snprintf(want, sizeof want, "%s: sr_dpo.beta: expected a number, got a string", f->path);
    expect_error(f, "{\"sr_dpo\": {\"beta\": \"0.1\"}}", want);
    expect_error(f, "{\"sr_dpo\": {\"batch_size\": 3.5}}",
                 "sr_dpo.batch_size: expected an integer, got 3.5");
    expect_error(f, "{\"sr_dpo\": {\"batch_size\": true}}",
                 "sr_dpo.batch_size: expected an integer");
    expect_error(f, "{\"hsr_ee\": {\"adaptive_threshold\": 1}}",
                 "hsr_ee.adaptive_threshold: expected true or false");
    expect_error(f, "{\"model\": {\"bf16\": \"yes\"}}", "model.bf16: expected true or false");
    expect_error(f, "{\"model\": {\"model_name_or_path\": 5}}",
                 "model.model_name_or_path: expected a string");
    expect_error(f, "{\"seed\": 1e300}", "seed");
    expect_error(f, "{\"sft\": 3}", "sft: expected an object");
    expect_error(f, "{\"sft\": {\"batch_size\": 8,}}", "invalid JSON");
    expect_error(f, "{\"seed\": 1}\n{\"seed\": 2}", ":2: invalid JSON");
    expect_error(f, "[1, 2]", "expected a JSON object");
    expect_error(f, "{\"seed\": 1, \"seed\": 2}", "'seed' appears twice");
    char long_json[2048 + 64];
    char big[1100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(long_json, sizeof long_json, "{\"output_dir\": \"%s\"}", big);
    expect_error(f, long_json, "output_dir: string too long (1099 bytes, at most 1023)");
    /* An integer written as 3.0 is an integer. */
    write_text(f->path, "{\"sr_dpo\": {\"batch_size\": 3.0}, \"seed\": 7.0}");
    sevo_config c;
    config_defaults(&c);
    sevo_error err = {{0}};
    if (load_capturing(f, &c, f->path, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(c.sr_dpo.batch_size, 3);
    assert_int_equal(c.seed, 7);
    assert_string_equal(f->captured, "");
}

static void test_range_errors(void **state) {
    fixture *f = *state;
    char want[256];
    snprintf(want, sizeof want, "%s: sr_dpo.beta: must be > 0, got 0", f->path);
    expect_error(f, "{\"sr_dpo\": {\"beta\": 0}}", want);
    expect_error(f, "{\"sr_dpo\": {\"learning_rate\": -1e-5}}",
                 "sr_dpo.learning_rate: must be > 0");
    expect_error(f, "{\"sft\": {\"learning_rate\": 0}}", "sft.learning_rate");
    expect_error(f, "{\"sft\": {\"batch_size\": 0}}", "sft.batch_size: must be >= 1, got 0");
    expect_error(f, "{\"sft\": {\"num_epochs\": 0}}", "sft.num_epochs");
    expect_error(f, "{\"sr_dpo\": {\"gradient_accumulation_steps\": 0}}",
                 "gradient_accumulation_steps");
    expect_error(f, "{\"sr_dpo\": {\"max_seq_length\": 15}}",
                 "sr_dpo.max_seq_length: must be >= 16");
    expect_error(f, "{\"sr_dpo\": {\"warmup_ratio\": 1.5}}",
                 "sr_dpo.warmup_ratio: must be in [0, 1], got 1.5");
    expect_error(f, "{\"sft\": {\"weight_decay\": -0.1}}", "sft.weight_decay: must be >= 0");
    expect_error(f, "{\"sft\": {\"max_grad_norm\": 0}}", "sft.max_grad_norm: must be > 0");
    expect_error(f, "{\"hsr_ee\": {\"confidence_threshold\": 1}}",
                 "hsr_ee.confidence_threshold: must be in (0, 1), got 1");
    expect_error(f, "{\"hsr_ee\": {\"max_reasoning_steps\": 0}}", "hsr_ee.max_reasoning_steps");
    expect_error(f, "{\"hsr_ee\": {\"length_penalty_lambda\": -1}}",
                 "hsr_ee.length_penalty_lambda");
    expect_error(f, "{\"hsr_ee\": {\"confidence_head_hidden_dim\": 0}}",
                 "confidence_head_hidden_dim");
    expect_error(f, "{\"hsr_ee\": {\"threshold_lr\": 0}}", "hsr_ee.threshold_lr");
    expect_error(f, "{\"ipr\": {\"max_refinement_iterations\": -1}}",
                 "ipr.max_refinement_iterations");
    expect_error(f, "{\"ipr\": {\"refinement_prompt_template\": \"look again\"}}",
                 "must contain '{perception}'");
    expect_error(f, "{\"sr_dpo\": {\"label_smoothing\": 0.5}}",
                 "sr_dpo.label_smoothing: must be in [0, 0.5), got 0.5");
    expect_error(f, "{\"sr_dpo\": {\"loss_type\": \"kto\"}}",
                 "sr_dpo.loss_type: must be one of sigmoid, ipo, hinge");
    expect_error(f, "{\"logging_steps\": 0}", "logging_steps");
    expect_error(f, "{\"save_steps\": 0}", "save_steps");
    expect_error(f, "{\"eval_steps\": 0}", "eval_steps");
    expect_error(f, "{\"synth\": {\"num_train\": 0}}", "synth.num_train");
    expect_error(f, "{\"synth\": {\"image_size\": 7}}", "synth.image_size: must be >= 8");
    expect_error(f, "{\"synth\": {\"cooccurrence\": 1.01}}", "synth.cooccurrence");
    expect_error(f, "{\"synth\": {\"noise\": -0.5}}", "synth.noise");
    expect_error(f, "{\"num_threads\": -1}", "num_threads: must be >= 0");
    expect_error(f, "{\"model\": {\"model_name_or_path\": \"\"}}", "must not be empty");
}

static void test_unknown_and_unhonoured(void **state) {
    fixture *f = *state;
    write_text(f->path, "{\"sft\": {\"foo\": 1, \"batch_size\": 2}, \"bar\": {\"x\": 1}, "
                        "\"model\": {\"lora_rank\": 8}, \"synth\": {\"noise\": 0.1}}");
    sevo_config c;
    config_defaults(&c);
    sevo_error err = {{0}};
    if (load_capturing(f, &c, f->path, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(c.sft.batch_size, 2);
    assert_true(c.synth.noise == 0.1f);
    assert_int_equal(c.model.lora_rank, 8);
    char want[256];
    snprintf(want, sizeof want, "warning: %s: unknown key 'sft.foo'; ignored\n", f->path);
    assert_non_null(strstr(f->captured, want));
    snprintf(want, sizeof want, "warning: %s: unknown key 'bar'; ignored\n", f->path);
    assert_non_null(strstr(f->captured, want));
    assert_non_null(strstr(f->captured, "model.lora_rank is not honoured by sevo"));
    assert_int_equal(count_lines(f->captured), 3);

    /* lora_rank 0 is what sevo does: no warning. */
    write_text(f->path, "{\"model\": {\"lora_rank\": 0}}");
    assert_int_equal(load_capturing(f, &c, f->path, &err), 0);
    assert_string_equal(f->captured, "");
    assert_int_equal(load_capturing(f, &c, "/nonexistent/cfg.json", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/cfg.json"));
}

static void test_config_set(void **state) {
    (void)state;
    sevo_config c;
    config_defaults(&c);
    sevo_error err = {{0}};
    assert_int_equal(config_set(&c, "sr_dpo.beta", "0.5", &err), 0);
    assert_true(c.sr_dpo.beta == 0.5f);
    assert_int_equal(config_set(&c, "sr_dpo.batch_size", "3.0", &err), 0);
    assert_int_equal(c.sr_dpo.batch_size, 3);
    assert_int_equal(config_set(&c, "hsr_ee.adaptive_threshold", "false", &err), 0);
    assert_int_equal(c.hsr_ee.adaptive_threshold, 0);
    assert_int_equal(config_set(&c, "hsr_ee.adaptive_threshold", "1", &err), 0);
    assert_int_equal(c.hsr_ee.adaptive_threshold, 1);
    assert_int_equal(config_set(&c, "sr_dpo.loss_type", "ipo", &err), 0);
    assert_string_equal(c.sr_dpo.loss_type, "ipo");
    assert_int_equal(config_set(&c, "seed", "9007199254740991", &err), 0);
    assert_int_equal(c.seed, 9007199254740991LL);
    assert_int_equal(config_set(&c, "model.model_name_or_path", "/ckpt/dir", &err), 0);
    assert_string_equal(c.model.model_name_or_path, "/ckpt/dir");

    /* A key sevo ignores is accepted (with a warning on stderr) but still type-checked. */
    assert_int_equal(config_set(&c, "model.bf16", "true", &err), 0);
    assert_int_equal(config_set(&c, "model.bf16", "maybe", &err), -1);
    assert_non_null(strstr(err.msg, "model.bf16"));

    assert_int_equal(config_set(&c, "sr_dpo.batch_size", "3.5", &err), -1);
    assert_non_null(strstr(err.msg, "sr_dpo.batch_size: expected an integer, got 3.5"));
    assert_int_equal(config_set(&c, "sr_dpo.beta", "abc", &err), -1);
    assert_non_null(strstr(err.msg, "sr_dpo.beta: expected a number, got 'abc'"));
    assert_int_equal(config_set(&c, "sr_dpo.beta", "-1", &err), -1);
    assert_non_null(strstr(err.msg, "sr_dpo.beta: must be > 0"));
    assert_int_equal(config_set(&c, "hsr_ee.adaptive_threshold", "yes", &err), -1);
    assert_int_equal(config_set(&c, "sr_dpo.loss_type", "kto", &err), -1);
    assert_int_equal(config_set(&c, "sft.foo", "1", &err), -1);
    assert_non_null(strstr(err.msg, "sft.foo"));
    assert_int_equal(config_set(&c, "sr_dpo", "1", &err), -1);
    /* failures leave the values as they were */
    assert_true(c.sr_dpo.beta == 0.5f);
    assert_int_equal(c.sr_dpo.batch_size, 3);
    assert_string_equal(c.sr_dpo.loss_type, "ipo");
    assert_int_equal(config_validate(&c, NULL, &err), 0);
    c.sr_dpo.beta = -2;
    assert_int_equal(config_validate(&c, "flags", &err), -1);
    assert_non_null(strstr(err.msg, "flags: sr_dpo.beta: must be > 0"));
}

static void test_print_load_roundtrip(void **state) {
    fixture *f = *state;
    sevo_config a;
    config_defaults(&a);
    a.sr_dpo.beta = 0.123456789f;
    a.sr_dpo.learning_rate = 3.3333333e-7f;
    a.sft.learning_rate = 1e-4f;
    a.hsr_ee.confidence_threshold = 0.1f + 0.2f;
    a.synth.noise = 1.0f / 3.0f;
    a.seed = 123456789012345LL;
    a.num_threads = 2;
    a.hsr_ee.adaptive_threshold = 0;
    strcpy(a.ipr.refinement_prompt_template, "Say \"{perception}\"\\ again\n\tplease");
    strcpy(a.data_dir, "/data/caf\xc3\xa9");
    char *json = config_to_json(&a);
    assert_non_null(json);
    /* sevo's own keys are printed; keys sevo ignores are not. */
    assert_non_null(strstr(json, "\n  \"synth\": {\n    \"num_train\": 4000,"));
    assert_non_null(strstr(json, "\"data_dir\": \"/data/caf\xc3\xa9\""));
    assert_non_null(strstr(json, "\"num_threads\": 2\n}\n"));
    assert_non_null(strstr(json, "\"max_grad_norm\": 1.0"));
    assert_null(strstr(json, "bf16"));
    assert_null(strstr(json, "dataset_name"));
    write_text(f->path, json);

    sevo_config b;
    config_defaults(&b);
    sevo_error err = {{0}};
    if (load_capturing(f, &b, f->path, &err) != 0) fail_msg("%s\n%s", err.msg, json);
    assert_string_equal(f->captured, ""); /* a printed config loads without warnings */
    char *json2 = config_to_json(&b);
    assert_non_null(json2);
    assert_string_equal(json, json2);
    assert_true(b.sr_dpo.beta == a.sr_dpo.beta);
    assert_true(b.sr_dpo.learning_rate == a.sr_dpo.learning_rate);
    assert_true(b.hsr_ee.confidence_threshold == a.hsr_ee.confidence_threshold);
    assert_true(b.synth.noise == a.synth.noise);
    assert_int_equal(b.seed, a.seed);
    assert_int_equal(b.hsr_ee.adaptive_threshold, 0);
    assert_string_equal(b.ipr.refinement_prompt_template, a.ipr.refinement_prompt_template);
    assert_string_equal(b.data_dir, a.data_dir);
    free(json);
    free(json2);

    /* The defaults print as the reference's numbers. */
    config_defaults(&a);
    json = config_to_json(&a);
    assert_non_null(strstr(json, "\"learning_rate\": 5e-07,"));
    assert_non_null(strstr(json, "\"confidence_threshold\": 0.7,"));
    assert_non_null(strstr(json, "\"threshold_lr\": 0.001,"));
    assert_non_null(strstr(json, "\"seed\": 42,"));
    free(json);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test_setup_teardown(test_default_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reference_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_unhonoured, setup, teardown),
        cmocka_unit_test(test_config_set),
        cmocka_unit_test_setup_teardown(test_print_load_roundtrip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
