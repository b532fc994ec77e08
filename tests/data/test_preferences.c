/* test_preferences.c: the preference-pair reader and writer: the reference's format and
 * its aliases, image paths relative to the file, a written pair read back, and every
 * bad pair (missing or empty field, missing image, bad iteration) as an error naming
 * the line and field, or skipped on request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "data/preferences.h"
#include "../test_util.h"

typedef struct fixture {
    char dir[64];
    char path[128]; /* <dir>/prefs/p.jsonl; the image is <dir>/img.png */
} fixture;

static int setup(void **state) {
    fixture *f = test_fixture_new(fixture, "sevo_pref");
    if (!f) return -1;
    char sub[96], img[96];
    snprintf(sub, sizeof sub, "%s/prefs", f->dir);
    snprintf(img, sizeof img, "%s/img.png", f->dir);
    if (sevo_mkdirs(sub, NULL) != 0) return -1;
    write_text(img, "not decoded here");
    snprintf(f->path, sizeof f->path, "%s/p.jsonl", sub);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    test_fixture_free(f, f->dir);
    return 0;
}

static void test_reference_format_and_aliases(void **state) {
    fixture *f = *state;
    write_text(f->path,
               "{\"image_path\": \"../img.png\", \"question\": \"q one\", \"ground_truth\": \"yes\", "
               "\"chosen\": \"red circle at center\", \"rejected\": \"red circle at center , green triangle at "
               "top left\", \"iteration\": 2}\n"
               "\n"
               "{\"image\": \"../img.png\", \"question\": \"q two\", \"winner\": \"w\", \"loser\": \"l\"}\n");
    sevo_preferences p;
    sevo_error err;
    assert_int_equal(preferences_load_jsonl(&p, f->path, 0, &err), 0);
    assert_int_equal(p.n, 2);
    char want[192];
    snprintf(want, sizeof want, "%s/prefs/../img.png", f->dir);
    assert_string_equal(p.v[0].image, want);
    assert_string_equal(p.v[0].question, "q one");
    assert_string_equal(p.v[0].ground_truth, "yes");
    assert_string_equal(p.v[0].chosen, "red circle at center");
    assert_int_equal(p.v[0].iteration, 2);
    assert_int_equal(p.v[0].line, 1);
    assert_null(p.v[1].ground_truth);
    assert_string_equal(p.v[1].chosen, "w");
    assert_string_equal(p.v[1].rejected, "l");
    assert_int_equal(p.v[1].iteration, 0);
    assert_int_equal(p.v[1].line, 3);
    preferences_free(&p);
}

static void test_written_pair_reads_back(void **state) {
    fixture *f = *state;
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    sevo_error err;
    assert_int_equal(preference_write(fp, "../img.png", "is there a \"red\" circle ?", "no", "none",
                                      "red circle at top left", 1, &err), 0);
    fclose(fp);
    sevo_preferences p;
    assert_int_equal(preferences_load_jsonl(&p, f->path, 0, &err), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.v[0].question, "is there a \"red\" circle ?");
    assert_string_equal(p.v[0].ground_truth, "no");
    assert_string_equal(p.v[0].chosen, "none");
    assert_string_equal(p.v[0].rejected, "red circle at top left");
    assert_int_equal(p.v[0].iteration, 1);
    preferences_free(&p);
}

/* The second line is bad: an error naming line 2 and `must`, or, skipped, one pair. */
static void expect_bad_second_line(fixture *f, const char *bad, const char *must) {
    char text[1024];
    snprintf(text, sizeof text,
             "{\"image_path\": \"../img.png\", \"question\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\"}\n%s\n", bad);
    write_text(f->path, text);
    sevo_preferences p;
    sevo_error err;
    assert_int_equal(preferences_load_jsonl(&p, f->path, 0, &err), -1);
    char where[160];
    snprintf(where, sizeof where, "%s:2:", f->path);
    if (!strstr(err.msg, where) || !strstr(err.msg, must)) fail_msg("message '%s' lacks '%s' or '%s'", err.msg, where, must);
    assert_int_equal(p.n, 0);
    char captured[1024];
    stderr_capture c;
    capture_stderr_begin(&c);
    int rc = preferences_load_jsonl(&p, f->path, 1, &err);
    capture_stderr_end(&c, captured, sizeof captured);
    assert_int_equal(rc, 0);
    assert_int_equal(p.n, 1);
    assert_non_null(strstr(captured, "(skipped)"));
    preferences_free(&p);
}

static void test_bad_pairs(void **state) {
    fixture *f = *state;
    expect_bad_second_line(f, "{\"image_path\": \"../img.png\", \"question\": \"q\", \"rejected\": \"b\"}",
                           "field 'chosen': missing");
    expect_bad_second_line(f, "{\"image_path\": \"../img.png\", \"question\": \"q\", \"chosen\": \" \", \"rejected\": \"b\"}",
                           "field 'chosen': empty");
    expect_bad_second_line(f, "{\"image_path\": \"../img.png\", \"question\": \"q\", \"chosen\": \"a\", \"loser\": \"\"}",
                           "field 'loser': empty");
    expect_bad_second_line(f, "{\"image_path\": \"../img.png\", \"chosen\": \"a\", \"rejected\": \"b\"}",
                           "field 'question': missing");
    expect_bad_second_line(f, "{\"question\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\"}",
                           "field 'image_path': missing");
    expect_bad_second_line(f, "{\"image_path\": \"../nope.png\", \"question\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\"}",
                           "image not found");
    expect_bad_second_line(f, "{\"image_path\": \"../img.png\", \"question\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\", "
                           "\"iteration\": -1}", "field 'iteration'");
    expect_bad_second_line(f, "{\"image_path\": \"../img.png\", \"question\": 3, \"chosen\": \"a\", \"rejected\": \"b\"}",
                           "field 'question': expected a string");
    expect_bad_second_line(f, "[1, 2]", "expected a JSON object");
}

static void test_empty_file(void **state) {
    fixture *f = *state;
    write_text(f->path, "\n\n");
    sevo_preferences p;
    sevo_error err;
    assert_int_equal(preferences_load_jsonl(&p, f->path, 0, &err), -1);
    assert_non_null(strstr(err.msg, "no preference pairs"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reference_format_and_aliases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_written_pair_reads_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_pairs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
