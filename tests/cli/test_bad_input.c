/* test_bad_input.c: the `sevo` binary on bad input. Each case must exit with its code (2
 * for a bad flag or configuration, 1 for bad data, images, checkpoints or preferences)
 * and a one-line error that names the file (and line or field), and leave no output
 * behind. docs/robustness.md catalogues every case with the test that checks it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "../test_util.h"
#include "core/fsutil.h"
#include "core/jsonutil.h"
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

/* Entries in dir, or -1 when it does not exist. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static char g_stderr[8192]; /* what the last expect_exit's command printed on stderr */

/* Runs `sevo ARGS` in the fixture's directory and fails unless it exits with `code`,
 * prints must_contain on stderr, and adds nothing to <dir>/out: no output file under
 * its final name, no temporary file, and no <dir>/out itself where there was none. */
static void expect_exit(const fixture *f, const char *args, int code, const char *must_contain) {
    char out[256];
    snprintf(out, sizeof out, "%s/out", f->dir);
    int before = count_entries(out);
    int rc = run_sevo(f->dir, args, g_stderr, sizeof g_stderr);
    if (rc != code) fail_msg("sevo %s: expected exit %d, got %d:\n%s", args, code, rc, g_stderr);
    if (!strstr(g_stderr, must_contain)) fail_msg("sevo %s: stderr lacks '%s':\n%s", args, must_contain, g_stderr);
    /* SEVO_TEST_SHOW_ERRORS=1 prints every case (docs/robustness.md quotes them) */
    if (getenv("SEVO_TEST_SHOW_ERRORS")) print_message("sevo %s\n  exit %d: %s", args, rc, g_stderr);
    if (sevo_dir_exists(out)) {
        char p[512];
        const char *outputs[] = {"model.safetensors", "predictions.jsonl", "preferences.jsonl", "ipr_stats.json",
                                 "results.json", "results.md", HSR_GATE_FILE, "metrics.jsonl", "train.jsonl",
                                 "optimizer.safetensors", "trainer_state.json"};
        for (size_t i = 0; i < sizeof outputs / sizeof outputs[0]; i++) {
            snprintf(p, sizeof p, "%s/%s", out, outputs[i]);
            if (sevo_file_exists(p)) fail_msg("sevo %s: left %s behind", args, p);
        }
    }
    /* not even an empty directory: a command that made <dir>/out and then failed
     * removes it (count_entries is -1 for a directory that does not exist) */
    int after = count_entries(out);
    if (after > before) fail_msg("sevo %s: %s had %d entries, now %d (-1: absent)", args, out, before, after);
}

/* The runtime failures (bad data, images, checkpoints, preferences): exit 1. */
static void expect_failure(const fixture *f, const char *args, const char *must_contain) {
    expect_exit(f, args, 1, must_contain);
}

/* Bad flags and configuration, refused before any work: exit 2. */
static void expect_usage_error(const fixture *f, const char *args, const char *must_contain) {
    expect_exit(f, args, 2, must_contain);
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
    expect_usage_error(f, "sft --config c.json --data_dir world --output_dir out",
                       "c.json: sft.learning_rate: expected a number");
}

static void test_unknown_flag_and_bad_value(void **state) {
    fixture *f = *state;
    expect_usage_error(f, "sft --no_such_flag 1", "sevo sft: unknown flag '--no_such_flag' (see --help)");
    expect_usage_error(f, "inference --model_path x --data_dir world --max_samples many", "--max_samples");
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
    expect_usage_error(f,
                       "train-sr-dpo --model_path world --preference_data world/pairs.jsonl --output_dir out --beta 0",
                       "sr_dpo.beta");
    expect_usage_error(f,
                       "train-sr-dpo --model_path world --preference_data world/pairs.jsonl --output_dir out --beta -1",
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

    expect_usage_error(f, "inference --model_path small --data_dir world --output_dir out --use_early_exit",
                       "--use_early_exit needs a gate");
    expect_usage_error(f, "eval --model_path small --data_dir world --output_dir out --use_early_exit",
                       "--use_early_exit needs a gate");
    expect_failure(f, "inference --model_path small --data_dir world --output_dir out --use_early_exit "
                      "--confidence_head_path gate16.safetensors",
                   "gate16.safetensors: tensor 'confidence_head.0.weight': the gate reads hidden states of size 16, "
                   "the model's hidden size is 8");
    expect_failure(f, "inference --model_path small --data_dir world --output_dir out --use_early_exit "
                      "--confidence_head_path gate_tau1.safetensors",
                   "gate_tau1.safetensors: tensor 'threshold_logit'");
    expect_usage_error(f, "inference --model_path small --data_dir world --output_dir out --use_early_exit "
                          "--confidence_head_path gate16.safetensors --threshold 1.5",
                       "--threshold 1.5: tau must be inside (0, 1)");
}

static void test_hsr_ee_settings(void **state) {
    fixture *f = *state;
    const char *base = "train-hsr-ee --model_path small --data_dir world --output_dir out";
    char args[512];
    snprintf(args, sizeof args, "%s --threshold 1", base);
    expect_usage_error(f, args, "hsr_ee.confidence_threshold");
    snprintf(args, sizeof args, "%s --threshold 0", base);
    expect_usage_error(f, args, "hsr_ee.confidence_threshold");
    snprintf(args, sizeof args, "%s --max_reasoning_steps 0", base);
    expect_usage_error(f, args, "hsr_ee.max_reasoning_steps");
    snprintf(args, sizeof args, "%s --length_penalty_lambda -0.1", base);
    expect_usage_error(f, args, "hsr_ee.length_penalty_lambda");
    expect_usage_error(f, "inference --model_path small --data_dir world --output_dir out --max_reasoning_steps 0",
                       "hsr_ee.max_reasoning_steps");
}

/* ---- flags ---------------------------------------------------------------------- */

static void test_unknown_command_and_missing_value(void **state) {
    fixture *f = *state;
    expect_usage_error(f, "frobnicate", "sevo: unknown command 'frobnicate'");
    expect_usage_error(f, "sft --data_dir", "sevo sft: --data_dir needs a value");
}

static void test_flag_out_of_range(void **state) {
    fixture *f = *state;
    expect_usage_error(f, "sft --data_dir world --output_dir out --batch_size 0",
                       "sevo sft: --batch_size: sft.batch_size: must be >= 1, got 0");
    expect_usage_error(f, "sft --data_dir world --output_dir out --warmup_ratio 2",
                       "sevo sft: --warmup_ratio: sft.warmup_ratio: must be in [0, 1], got 2");
    expect_usage_error(f, "sft --data_dir world --output_dir out --seed abc",
                       "--seed: seed: expected an integer, got 'abc'");
    write_pairs(f, "");
    expect_usage_error(f, "train-sr-dpo --model_path world --preference_data world/pairs.jsonl --output_dir out "
                          "--loss_type foo",
                       "--loss_type: sr_dpo.loss_type: must be one of sigmoid, ipo, hinge");
    expect_usage_error(f, "train-sr-dpo --model_path world --preference_data world/pairs.jsonl --output_dir out "
                          "--label_smoothing 0.7",
                       "--label_smoothing: sr_dpo.label_smoothing: must be in [0, 0.5), got 0.7");
    expect_usage_error(f, "synth --output_dir out --num_train -5",
                       "--num_train: synth.num_train: must be >= 1, got -5");
}

static void test_output_dir_under_a_file(void **state) {
    fixture *f = *state;
    char p[256];
    snprintf(p, sizeof p, "%s/afile", f->dir);
    write_text(p, "x");
    expect_failure(f, "sft --data_dir world --output_dir afile/out --max_steps 1",
                   "afile/out: cannot create directory: Not a directory");
    expect_failure(f, "synth --output_dir afile/out --num_train 2 --num_test 2",
                   "afile/out: cannot create directory: Not a directory");
}

/* ---- configuration ------------------------------------------------------------------ */

static void test_config_file_errors(void **state) {
    fixture *f = *state;
    char p[256];
    expect_usage_error(f, "sft --config nope.json --data_dir world --output_dir out",
                       "nope.json: cannot open: No such file or directory");
    snprintf(p, sizeof p, "%s/broken.json", f->dir);
    write_text(p, "{\"sft\": {\n  \"batch_size\": 4,\n");
    expect_usage_error(f, "sft --config broken.json --data_dir world --output_dir out", "broken.json:2: invalid JSON");
    snprintf(p, sizeof p, "%s/zero.json", f->dir);
    write_text(p, "{\"sft\": {\"batch_size\": 0}}");
    expect_usage_error(f, "sft --config zero.json --data_dir world --output_dir out",
                       "zero.json: sft.batch_size: must be >= 1, got 0");
    /* a directory: once reported as "out of memory (9223372036854775808 bytes)" */
    expect_usage_error(f, "sft --config world --data_dir world --output_dir out", "world: is a directory, not a file");
}

/* ---- training data (JSONL) ------------------------------------------------------ */

static void test_bad_data_lines(void **state) {
    fixture *f = *state;
    const char *sft = "sft --data_dir bad --output_dir out --max_steps 1";
    prepare_bad_dir(f);
    write_train(f, "[1, 2]");
    expect_failure(f, sft, "train.jsonl:5: expected a JSON object, got an array");
    write_train(f, "{\"image\": \"images/train_000001.png\", \"question\": 7, \"answer\": \"yes\"}");
    expect_failure(f, sft, "train.jsonl:5: field 'question': expected a string, got a number");
    write_train(f, "{\"image\": \"images/train_000001.png\", \"question\": \"q ?\", \"answer\": \"yes\", "
                   "\"steps\": \"x\"}");
    expect_failure(f, sft, "train.jsonl:5: field 'steps': expected an array of strings, got a string");
    write_train(f, "{\"image\": \"images/train_000001.png\", \"question\": \"q ?\", \"answer\": \"yes\"} trailing");
    expect_failure(f, sft, "train.jsonl:5: invalid JSON (unexpected text at column");
    /* empty texts: once accepted, and an empty answer was scored right whenever the
     * model said nothing */
    write_train(f, "{\"image\": \"images/train_000001.png\", \"question\": \"q ?\", \"answer\": \" \"}");
    expect_failure(f, sft, "train.jsonl:5: field 'answer': empty");
    write_train(f, "{\"image\": \"images/train_000001.png\", \"question\": \"\", \"answer\": \"yes\"}");
    expect_failure(f, sft, "train.jsonl:5: field 'question': empty");
    /* an answer of punctuation only normalises to nothing, as an empty one does */
    write_train(f, "{\"image\": \"images/train_000001.png\", \"question\": \"q ?\", \"answer\": \"?!\"}");
    expect_failure(f, sft, "train.jsonl:5: field 'answer': no letter or digit in \"?!\"");
}

static void test_empty_data_file(void **state) {
    fixture *f = *state;
    char p[256];
    prepare_bad_dir(f);
    snprintf(p, sizeof p, "%s/bad/train.jsonl", f->dir);
    write_text(p, "\n\n");
    expect_failure(f, "sft --data_dir bad --output_dir out --max_steps 1", "bad/train.jsonl: no samples (empty file)");
}

/* ---- checkpoints ---------------------------------------------------------------- */

/* <dir>/<name>: a copy of a real checkpoint (trained for one step, once per run). */
static void copy_model(const fixture *f, const char *name) {
    char cmd[1024], ck[256];
    snprintf(ck, sizeof ck, "%s/trained/config.json", f->dir);
    if (!sevo_file_exists(ck)) {
        char err[4096];
        const char *args = "sft --data_dir world --output_dir trained --max_steps 1 --batch_size 4 "
                           "--gradient_accumulation_steps 1";
        assert_int_equal(run_sevo(f->dir, args, err, sizeof err), 0);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s/%s && cp -r %s/trained %s/%s", f->dir, name, f->dir, f->dir, name);
    assert_int_equal(system(cmd), 0);
}

/* Sets (or with value NULL deletes) <dir>/<file>'s member section.key (key alone when
 * section is NULL) to value. */
static void edit_json(const fixture *f, const char *file, const char *section, const char *key, cJSON *value) {
    char p[512], *txt = NULL;
    sevo_error err;
    snprintf(p, sizeof p, "%s/%s", f->dir, file);
    assert_int_equal(sevo_read_file(p, &txt, NULL, &err), 0);
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    assert_non_null(root);
    cJSON *obj = section ? cJSON_GetObjectItemCaseSensitive(root, section) : root;
    assert_non_null(obj);
    if (value)
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
    else
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    assert_int_equal(json_write_file_atomic(p, root, &err), 0);
    cJSON_Delete(root);
}

/* Flips one bit `from_end` bytes before the end of <dir>/<file>. */
static void flip_bit(const fixture *f, const char *file, long from_end) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", f->dir, file);
    FILE *fp = fopen(p, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, -from_end, SEEK_END), 0);
    int c = fgetc(fp);
    assert_int_equal(fseek(fp, -from_end, SEEK_END), 0);
    fputc(c ^ 0x10, fp);
    fclose(fp);
}

static void test_damaged_weights(void **state) {
    fixture *f = *state;
    const char *eval = "eval --model_path m --data_dir world --output_dir out --max_samples 1";
    char p[256];
    copy_model(f, "m");
    flip_bit(f, "m/model.safetensors", 100);
    expect_failure(f, eval, "m/model.safetensors: checksum mismatch (__metadata__.sevo_crc32 is ");
    copy_model(f, "m");
    snprintf(p, sizeof p, "%s/m/model.safetensors", f->dir);
    assert_int_equal(truncate(p, 1000), 0);
    expect_failure(f, eval, "m/model.safetensors: header length ");
    assert_non_null(strstr(g_stderr, "exceeds the file size 1000 (truncated file?)"));
    assert_int_equal(truncate(p, 0), 0);
    expect_failure(f, eval, "m/model.safetensors: truncated: 0 bytes");
    remove(p);
    expect_failure(f, eval, "m/model.safetensors: cannot open: No such file or directory");
}

static void test_bad_config_json(void **state) {
    fixture *f = *state;
    const char *eval = "eval --model_path m --data_dir world --output_dir out --max_samples 1";
    char p[256];
    copy_model(f, "m");
    snprintf(p, sizeof p, "%s/m/config.json", f->dir);
    write_text(p, "{\"text_config\": ");
    expect_failure(f, eval, "m/config.json: invalid JSON");
    copy_model(f, "m");
    edit_json(f, "m/config.json", NULL, "text_config", NULL);
    expect_failure(f, eval, "m/config.json: field 'text_config': missing or not an object");
    copy_model(f, "m");
    edit_json(f, "m/config.json", "text_config", "hidden_size", cJSON_CreateNumber(-4));
    expect_failure(f, eval, "m/config.json: text_config: sizes must be positive");
    copy_model(f, "m");
    edit_json(f, "m/config.json", "text_config", "hidden_size", cJSON_CreateNumber(1e300));
    expect_failure(f, eval, "m/config.json: field 'text_config.hidden_size': expected an integer");
    copy_model(f, "m");
    edit_json(f, "m/config.json", "text_config", "norm_eps", cJSON_CreateNumber(1e39));
    expect_failure(f, eval, "m/config.json: field 'text_config.norm_eps': expected a finite number");
    /* a config that does not describe the weights */
    copy_model(f, "m");
    edit_json(f, "m/config.json", "text_config", "hidden_size", cJSON_CreateNumber(96));
    expect_failure(f, eval, "m/model.safetensors: tensor '");
    assert_non_null(strstr(g_stderr, "in file, model expects"));
}

static void test_bad_tokenizer_json(void **state) {
    fixture *f = *state;
    const char *eval = "eval --model_path m --data_dir world --output_dir out --max_samples 1";
    char p[256];
    copy_model(f, "m");
    snprintf(p, sizeof p, "%s/m/tokenizer.json", f->dir);
    write_text(p, "nope");
    expect_failure(f, eval, "m/tokenizer.json:1: invalid JSON");
    remove(p);
    expect_failure(f, eval, "m/tokenizer.json: cannot open: No such file or directory");
    copy_model(f, "m");
    edit_json(f, "m/tokenizer.json", "model", "type", cJSON_CreateString("BPE"));
    expect_failure(f, eval, "m/tokenizer.json: field 'model.type': BPE tokenizers are not supported yet");
    copy_model(f, "m");
    edit_json(f, "m/config.json", "text_config", "vocab_size", cJSON_CreateNumber(10));
    expect_failure(f, eval, "but config.json vocab_size is 10");
    assert_non_null(strstr(g_stderr, "m: tokenizer has "));
}

/* --resume over checkpoints that no longer load (a killed run's directory: checkpoints,
 * no final model) stops with an error instead of training from the start. */
static void test_resume_from_damaged_checkpoints(void **state) {
    fixture *f = *state;
    char err[4096], p[256];
    const char *args = "sft --data_dir world --output_dir out --max_steps 3 --batch_size 4 "
                       "--gradient_accumulation_steps 1 --save_steps 1";
    assert_int_equal(run_sevo(f->dir, args, err, sizeof err), 0);
    const char *finals[] = {"model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.json",
                            "tokenizer.json", "metrics.jsonl"};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/out/%s", f->dir, finals[i]);
        assert_int_equal(remove(p), 0);
    }
    flip_bit(f, "out/checkpoint-2/optimizer.safetensors", 50);
    snprintf(p, sizeof p, "%s/out/checkpoint-1/trainer_state.json", f->dir);
    write_text(p, "{\"global_step\": 1,");
    char resume[512];
    snprintf(resume, sizeof resume, "%s --resume", args);
    expect_failure(f, resume, "sevo sft: out: none of its 2 checkpoints loads");
    assert_non_null(strstr(g_stderr, "checkpoint-2: out/checkpoint-2/optimizer.safetensors: checksum mismatch"));
    assert_non_null(strstr(g_stderr, "checkpoint-1/trainer_state.json: invalid JSON"));
    snprintf(p, sizeof p, "%s/out", f->dir);
    sevo_remove_tree(p);
}

/* ---- images ------------------------------------------------------------------------- */

/* <dir>/bad/<name> holding the first `keep` bytes of a real image (all when keep < 0)
 * or, with text, that text. */
static void write_image_file(const fixture *f, const char *name, long keep, const char *text) {
    char src[256], dst[256], *buf = NULL;
    size_t len = 0;
    sevo_error err;
    snprintf(dst, sizeof dst, "%s/bad/%s", f->dir, name);
    if (text) {
        write_text(dst, text);
        return;
    }
    snprintf(src, sizeof src, "%s/world/images/train_000000.png", f->dir);
    assert_int_equal(sevo_read_file(src, &buf, &len, &err), 0);
    FILE *fp = fopen(dst, "wb");
    assert_non_null(fp);
    fwrite(buf, 1, keep >= 0 && (size_t)keep < len ? (size_t)keep : len, fp);
    fclose(fp);
    free(buf);
}

static void test_bad_images(void **state) {
    fixture *f = *state;
    const char *sft = "sft --data_dir bad --output_dir out --max_steps 1";
    prepare_bad_dir(f);
    write_image_file(f, "cut.png", 100, NULL);
    write_train(f, "{\"image\": \"cut.png\", \"question\": \"q ?\", \"answer\": \"yes\"}");
    expect_failure(f, sft, "train.jsonl:5: field 'image': ");
    assert_non_null(strstr(g_stderr, "cut.png: cannot decode image"));
    write_image_file(f, "empty.png", 0, NULL);
    write_train(f, "{\"image\": \"empty.png\", \"question\": \"q ?\", \"answer\": \"yes\"}");
    expect_failure(f, sft, "train.jsonl:5: field 'image': ");
    assert_non_null(strstr(g_stderr, "empty.png: cannot decode image"));
    write_image_file(f, "x.gif", 0, "GIF89a\x01");
    write_train(f, "{\"image\": \"x.gif\", \"question\": \"q ?\", \"answer\": \"yes\"}");
    expect_failure(f, sft, "train.jsonl:5: field 'image': ");
    assert_non_null(strstr(g_stderr, "x.gif: cannot decode image"));
    /* a directory: once "out of memory (9223372036854775808 bytes)" */
    write_train(f, "{\"image\": \"images\", \"question\": \"q ?\", \"answer\": \"yes\"}");
    expect_failure(f, sft, "train.jsonl:5: field 'image': ");
    assert_non_null(strstr(g_stderr, "images: is a directory, not a file"));
    copy_model(f, "m");
    expect_failure(f, "inference --model_path m --image bad/cut.png --question 'is there a red cross ?'",
                   "bad/cut.png: cannot decode image");
}

/* ---- preferences ------------------------------------------------------------------ */

static void test_more_bad_preference_pairs(void **state) {
    fixture *f = *state;
    const char *args = "train-sr-dpo --model_path world --preference_data world/pairs.jsonl --output_dir out";
    char p[256];
    snprintf(p, sizeof p, "%s/world/pairs.jsonl", f->dir);
    write_text(p, "");
    expect_failure(f, args, "world/pairs.jsonl: no preference pairs (empty file)");
    write_pairs(f, "{\"image_path\": ");
    expect_failure(f, args, "pairs.jsonl:2: invalid JSON");
    write_pairs(f, "{\"image_path\": \"images/train_000001.png\", \"chosen\": \"x\", \"rejected\": \"y\"}");
    expect_failure(f, args, "pairs.jsonl:2: field 'question': missing");
    write_pairs(f, "{\"question\": \"q ?\", \"chosen\": \"x\", \"rejected\": \"y\"}");
    expect_failure(f, args, "pairs.jsonl:2: field 'image_path': missing (SR-DPO conditions on the image)");
    write_pairs(f, "{\"image_path\": \"images/train_000001.png\", \"question\": \"q ?\", \"chosen\": \"x\", "
                   "\"rejected\": \"y\", \"iteration\": \"first\"}");
    expect_failure(f, args, "pairs.jsonl:2: field 'iteration': expected a non-negative integer, got a string");
    expect_failure(f, "train-sr-dpo --model_path world --preference_data world/nope.jsonl --output_dir out",
                   "world/nope.jsonl: cannot open: No such file or directory");
}

static void test_model_path_neither_checkpoint_nor_builtin(void **state) {
    fixture *f = *state;
    expect_failure(f, "sft --data_dir world --output_dir out --model_path nowhere",
                   "model.model_name_or_path 'nowhere': neither a checkpoint directory nor a built-in architecture");
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
        cmocka_unit_test(test_unknown_command_and_missing_value),
        cmocka_unit_test(test_flag_out_of_range),
        cmocka_unit_test(test_output_dir_under_a_file),
        cmocka_unit_test(test_config_file_errors),
        cmocka_unit_test(test_bad_data_lines),
        cmocka_unit_test(test_empty_data_file),
        cmocka_unit_test(test_bad_images),
        cmocka_unit_test(test_damaged_weights),
        cmocka_unit_test(test_bad_config_json),
        cmocka_unit_test(test_bad_tokenizer_json),
        cmocka_unit_test(test_resume_from_damaged_checkpoints),
        cmocka_unit_test(test_more_bad_preference_pairs),
        cmocka_unit_test(test_model_path_neither_checkpoint_nor_builtin),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
