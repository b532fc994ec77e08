/* test_dataset.c: the JSONL sample reader: the reference format with optional fields,
 * image path resolution, LLaVA conversation expansion, blank lines, and every kind of
 * bad line, as an error or (with skip_bad_lines) as a warning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "data/dataset.h"
#include "../test_util.h"

typedef struct fixture {
    char dir[64];
    char path[128]; /* <dir>/sub/train.jsonl */
} fixture;

static int setup(void **state) {
    fixture *f = test_fixture_new(fixture, "sevo_ds");
    if (!f) return -1;
    char sub[96];
    snprintf(sub, sizeof sub, "%s/sub", f->dir);
    if (sevo_mkdirs(sub, NULL) != 0) return -1;
    snprintf(f->path, sizeof f->path, "%s/train.jsonl", sub);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    test_fixture_free(f, f->dir);
    return 0;
}

/* Runs dataset_load_jsonl with stderr redirected into a buffer. */
static int load_capturing(sevo_dataset *ds, const char *path, int skip, sevo_error *err,
                          char *captured, size_t cap) {
    stderr_capture c;
    capture_stderr_begin(&c);
    int rc = dataset_load_jsonl(ds, path, skip, err);
    capture_stderr_end(&c, captured, cap);
    return rc;
}

static void test_reference_format(void **state) {
    fixture *f = *state;
    write_text(f->path,
               "{\"image\": \"imgs/0.png\", \"question\": \"Is there a red circle?\", \"answer\": "
               "\"yes\", \"perception\": \"a red circle at top-left\", \"caption\": \"a red circle and a "
               "cup\", \"steps\": [\"look\", "
               "\"red circle found\"], \"caption_steps\": [\"look\", \"cup found\"], \"caption_answer\": \"no\", "
               "\"type\": \"existence\", \"depth\": 1, \"objects\": "
               "[{\"shape\": \"circle\"}], \"wrong_perception\": \"a blue square\"}\n"
               "\n"
               "   \t\n"
               "{\"image\": \"/abs/1.png\", \"question\": \"Q2\", \"answer\": \"A2\"}\r\n"
               "{\"question\": \"text only\", \"answer\": \"ok\", \"perception\": null}");
    sevo_dataset ds;
    sevo_error err = {{0}};
    if (dataset_load_jsonl(&ds, f->path, 0, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(ds.n, 3);
    assert_string_equal(ds.path, f->path);

    const sevo_sample *s = &ds.samples[0];
    char want[256];
    snprintf(want, sizeof want, "%s/sub/imgs/0.png", f->dir);
    assert_string_equal(s->image, want);
    assert_string_equal(s->question, "Is there a red circle?");
    assert_string_equal(s->answer, "yes");
    assert_string_equal(s->perception, "a red circle at top-left");
    assert_string_equal(s->caption, "a red circle and a cup");
    assert_int_equal(s->n_steps, 2);
    assert_string_equal(s->steps[0], "look");
    assert_string_equal(s->steps[1], "red circle found");
    assert_int_equal(s->n_caption_steps, 2);
    assert_string_equal(s->caption_steps[1], "cup found");
    assert_string_equal(s->caption_answer, "no");
    assert_string_equal(s->type, "existence");
    assert_int_equal(s->depth, 1);
    assert_string_equal(s->wrong_perception, "a blue square");
    assert_int_equal(s->line, 1);

    s = &ds.samples[1];
    assert_string_equal(s->image, "/abs/1.png");
    assert_string_equal(s->answer, "A2");
    assert_null(s->perception);
    assert_null(s->caption);
    assert_null(s->steps);
    assert_int_equal(s->n_steps, 0);
    assert_null(s->caption_steps);
    assert_int_equal(s->n_caption_steps, 0);
    assert_null(s->caption_answer);
    assert_null(s->type);
    assert_int_equal(s->depth, 0);
    assert_null(s->wrong_perception);
    assert_int_equal(s->line, 4);

    s = &ds.samples[2];
    assert_null(s->image);
    assert_null(s->perception);
    assert_int_equal(s->line, 5);
    dataset_free(&ds);
    assert_int_equal(ds.n, 0);
    assert_null(ds.samples);
}

/* A file given by bare name resolves images to bare relative paths. */
static void test_bare_file_name(void **state) {
    fixture *f = *state;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", f->dir);
    assert_int_equal(chdir(sub), 0);
    write_text("bare.jsonl", "{\"image\": \"x.png\", \"question\": \"q\", \"answer\": \"a\"}\n");
    sevo_dataset ds;
    sevo_error err = {{0}};
    int rc = dataset_load_jsonl(&ds, "bare.jsonl", 0, &err);
    assert_int_equal(chdir(cwd), 0);
    if (rc != 0) fail_msg("%s", err.msg);
    assert_string_equal(ds.samples[0].image, "x.png");
    dataset_free(&ds);
}

static void test_llava_expansion(void **state) {
    fixture *f = *state;
    write_text(f->path, "{\"id\": \"1\", \"image\": \"coco/1.jpg\", \"conversations\": ["
                        "{\"from\": \"human\", \"value\": \"<image>\\nWhat is in the picture?\"},"
                        "{\"from\": \"gpt\", \"value\": \"A cat.\"},"
                        "{\"from\": \"human\", \"value\": \"What colour is it?\"},"
                        "{\"from\": \"gpt\", \"value\": \"Black.\"}]}\n"
                        "{\"conversations\": [{\"from\": \"system\", \"value\": \"be brief\"},"
                        "{\"from\": \"human\", \"value\": \"Describe  <image>  briefly\\n\"},"
                        "{\"from\": \"gpt\", \"value\": \"ok\"}]}\n");
    sevo_dataset ds;
    sevo_error err = {{0}};
    if (dataset_load_jsonl(&ds, f->path, 0, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(ds.n, 3);
    char want[256];
    snprintf(want, sizeof want, "%s/sub/coco/1.jpg", f->dir);
    assert_string_equal(ds.samples[0].image, want);
    assert_string_equal(ds.samples[0].question, "What is in the picture?");
    assert_string_equal(ds.samples[0].answer, "A cat.");
    assert_string_equal(ds.samples[1].image, want);
    assert_string_equal(ds.samples[1].question, "What colour is it?");
    assert_string_equal(ds.samples[1].answer, "Black.");
    assert_int_equal(ds.samples[1].line, 1);
    assert_null(ds.samples[2].image);
    assert_string_equal(ds.samples[2].question, "Describe briefly");
    assert_int_equal(ds.samples[2].line, 2);
    dataset_free(&ds);
}

/* One bad line among good ones: the error names the path, the line and the field. */
static void expect_line_error(const fixture *f, const char *bad, const char *needle) {
    char text[1024];
    snprintf(text, sizeof text,
             "{\"question\": \"q\", \"answer\": \"a\"}\n\n%s\n{\"question\": \"q\", \"answer\": "
             "\"a\"}\n",
             bad);
    write_text(f->path, text);
    sevo_dataset ds;
    sevo_error err = {{0}};
    assert_int_equal(dataset_load_jsonl(&ds, f->path, 0, &err), -1);
    assert_int_equal(ds.n, 0);
    assert_null(ds.samples);
    char where[160];
    snprintf(where, sizeof where, "%s:3: ", f->path);
    if (strncmp(err.msg, where, strlen(where)) != 0 || !strstr(err.msg, needle))
        fail_msg("error '%s' should start with '%s' and contain '%s'", err.msg, where, needle);
}

static void test_bad_lines(void **state) {
    fixture *f = *state;
    expect_line_error(f, "{\"question\": \"q\"}", "field 'answer': missing");
    expect_line_error(f, "{\"answer\": \"a\", \"image\": \"x.png\"}", "field 'question': missing");
    expect_line_error(f, "{\"question\": 5, \"answer\": \"a\"}",
                      "field 'question': expected a string, got a number");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\"", "invalid JSON");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\"} trailing", "invalid JSON");
    expect_line_error(f, "[1, 2]", "expected a JSON object");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"image\": 3}", "field 'image'");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"depth\": 1.5}",
                      "field 'depth'");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"steps\": [\"x\", 2]}",
                      "field 'steps[1]'");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"steps\": \"x\"}",
                      "field 'steps'");
    expect_line_error(f, "{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}]}",
                      "field 'conversations[0]': a human turn without a gpt reply");
    expect_line_error(f, "{\"conversations\": [{\"from\": \"gpt\", \"value\": \"a\"}]}",
                      "conversations[0]");
    expect_line_error(
        f, "{\"conversations\": [{\"from\": \"human\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}",
        "field 'conversations[0].value': missing");
    expect_line_error(f, "{\"conversations\": []}", "no human->gpt pair");
    expect_line_error(f, "{\"conversations\": {}}", "field 'conversations': expected an array");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"caption\": \"c\"}",
                      "field 'caption': given without 'perception'");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"perception\": \"p\", \"caption\": 1}",
                      "field 'caption': expected a string");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"perception\": \"p\", \"caption\": \" \"}",
                      "field 'caption': empty");
    /* the trace written from a caption: with a caption, both fields or neither */
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"perception\": \"p\", \"caption_steps\": [\"s\"], "
                         "\"caption_answer\": \"b\"}",
                      "field 'caption_steps': given without 'caption'");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"perception\": \"p\", \"caption_answer\": \"b\"}",
                      "field 'caption_answer': given without 'caption'");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"perception\": \"p\", \"caption\": \"c\", "
                         "\"caption_steps\": [\"s\"]}",
                      "field 'caption_answer': missing (caption_steps is given)");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"perception\": \"p\", \"caption\": \"c\", "
                         "\"caption_answer\": \"b\"}",
                      "field 'caption_steps': missing (caption_answer is given)");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"perception\": \"p\", \"caption\": \"c\", "
                         "\"caption_steps\": [\"s\", 1], \"caption_answer\": \"b\"}",
                      "field 'caption_steps[1]': expected a string");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"perception\": \"p\", \"caption\": \"c\", "
                         "\"caption_steps\": [\"s\"], \"caption_answer\": \"?\"}",
                      "field 'caption_answer': no letter or digit");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"perception\": \"p\", \"caption\": \"c\", "
                         "\"caption_steps\": [], \"caption_answer\": \"b\"}",
                      "field 'caption_steps': empty");
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"a\", \"perception\": \"p\", \"caption\": \"c\", "
                         "\"steps\": [\"s\", \"t\"], \"caption_steps\": [\"s\"], \"caption_answer\": \"b\"}",
                      "field 'caption_steps': 1 steps, but 'steps' has 2");
    expect_line_error(f, "{\"perception\": \"p\", \"caption\": \"c\", \"steps\": [\"t\"], \"caption_steps\": [\"s\"], "
                         "\"caption_answer\": \"b\", \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, "
                         "{\"from\": \"gpt\", \"value\": \"a\"}]}",
                      "field 'caption_answer': not allowed with 'conversations'");
    /* answers that normalise to nothing would match an empty prediction */
    expect_line_error(f, "{\"question\": \"q\", \"answer\": \"...\"}",
                      "field 'answer': no letter or digit in \"...\"");
    expect_line_error(f, "{\"question\": \" \", \"answer\": \"a\"}", "field 'question': empty");
    /* the same checks for each turn of a conversation */
    expect_line_error(f,
                      "{\"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nq\"}, "
                      "{\"from\": \"gpt\", \"value\": \" \"}]}",
                      "field 'conversations[1].value': empty");
    expect_line_error(f,
                      "{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, "
                      "{\"from\": \"gpt\", \"value\": \"!\"}]}",
                      "field 'conversations[1].value': no letter or digit");
    expect_line_error(f,
                      "{\"conversations\": [{\"from\": \"human\", \"value\": \"<image>\"}, "
                      "{\"from\": \"gpt\", \"value\": \"a\"}]}",
                      "field 'conversations[0].value': empty");
}

static void test_skip_bad_lines(void **state) {
    fixture *f = *state;
    write_text(f->path, "{\"question\": \"q1\", \"answer\": \"a1\"}\n"
                        "{\"question\": \"q2\"}\n"
                        "not json\n"
                        "{\"question\": \"q4\", \"answer\": \"a4\"}\n");
    sevo_dataset ds;
    sevo_error err = {{0}};
    char captured[2048];
    int rc = load_capturing(&ds, f->path, 1, &err, captured, sizeof captured);
    if (rc != 0) fail_msg("%s", err.msg);
    assert_int_equal(ds.n, 2);
    assert_string_equal(ds.samples[0].question, "q1");
    assert_string_equal(ds.samples[1].question, "q4");
    assert_int_equal(ds.samples[1].line, 4);
    char w2[256], w3[256];
    snprintf(w2, sizeof w2, "warning: %s:2: field 'answer': missing (skipped)\n", f->path);
    snprintf(w3, sizeof w3, "warning: %s:3: invalid JSON", f->path);
    assert_non_null(strstr(captured, w2));
    assert_non_null(strstr(captured, w3));
    dataset_free(&ds);

    /* Without skipping the first bad line is an error. */
    assert_int_equal(load_capturing(&ds, f->path, 0, &err, captured, sizeof captured), -1);
    assert_non_null(strstr(err.msg, ":2: field 'answer': missing"));
    assert_string_equal(captured, "");

    /* Every line bad: nothing is left, which is an error even when skipping. */
    write_text(f->path, "{}\n{}\n");
    assert_int_equal(load_capturing(&ds, f->path, 1, &err, captured, sizeof captured), -1);
    assert_non_null(strstr(err.msg, f->path));
    assert_non_null(strstr(err.msg, "no valid samples"));
}

static void test_empty_and_missing(void **state) {
    fixture *f = *state;
    sevo_dataset ds;
    sevo_error err = {{0}};
    write_text(f->path, "");
    assert_int_equal(dataset_load_jsonl(&ds, f->path, 0, &err), -1);
    assert_non_null(strstr(err.msg, f->path));
    assert_non_null(strstr(err.msg, "no samples"));
    write_text(f->path, "\n  \n\n");
    assert_int_equal(dataset_load_jsonl(&ds, f->path, 1, &err), -1);
    assert_non_null(strstr(err.msg, "no samples"));
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope.jsonl", f->dir);
    assert_int_equal(dataset_load_jsonl(&ds, missing, 0, &err), -1);
    assert_non_null(strstr(err.msg, missing));
    assert_int_equal(ds.n, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reference_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bare_file_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_llava_expansion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_bad_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_missing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
