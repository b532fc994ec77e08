/* test_answer.c: the answer check of DESIGN §1 on hand-made cases, above all the ones
 * where substring containment (the reference's bug) would give the wrong verdict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "data/answer.h"

static void expect_norm(const char *in, const char *want) {
    char out[256];
    answer_normalize(in, out, sizeof out);
    if (strcmp(out, want) != 0) fail_msg("normalize(\"%s\") = \"%s\", want \"%s\"", in, out, want);
}

static void test_normalize(void **state) {
    (void)state;
    expect_norm("No.", "no");
    expect_norm("  YES!  ", "yes");
    expect_norm("Two", "2");
    expect_norm("twenty", "20");
    expect_norm("eleven apples", "11 apples");
    expect_norm("twenty-one", "20 1"); /* only whole words map; "-" separates */
    expect_norm("The red circle", "red circle");
    expect_norm("a blue   square", "blue square");
    expect_norm("An apple", "apple");
    expect_norm("the a", "a"); /* leading articles go while another word follows */
    expect_norm("a", "a");
    expect_norm("a the b", "b");
    expect_norm("the red one", "red 1");
    expect_norm("top-left", "top left");
    expect_norm("don't know", "dont know");
    expect_norm("1,000", "1000");
    expect_norm("3.5", "3 5");
    expect_norm("yes, it is", "yes it is");
    expect_norm("\t\nyes\r\n", "yes");
    expect_norm("", "");
    expect_norm("?!.", "");
    expect_norm("Zero", "0");
    expect_norm("someone", "someone"); /* number words only as whole words */
    expect_norm("bottom  center ?", "bottom center");
}

static void test_normalize_truncates(void **state) {
    (void)state;
    char out[4];
    answer_normalize("purple", out, sizeof out);
    assert_string_equal(out, "pur");
    char one[1] = {'x'};
    answer_normalize("yes", one, sizeof one);
    assert_int_equal(one[0], '\0');
    answer_normalize(NULL, out, sizeof out);
    assert_string_equal(out, "");
}

static void test_correct(void **state) {
    (void)state;
    assert_true(answer_correct("No.", "no"));
    assert_true(answer_correct("yes", "Yes"));
    assert_true(answer_correct("two", "2"));
    assert_true(answer_correct("2", "Two."));
    assert_true(answer_correct("the red circle", "Red circle"));
    assert_true(answer_correct(" purple ", "purple"));
    /* Exact match of the span, never containment. */
    assert_false(answer_correct("not sure", "no"));
    assert_false(answer_correct("no", "not sure"));
    assert_false(answer_correct("yes and no", "no"));
    assert_false(answer_correct("no no", "no"));
    assert_false(answer_correct("12", "2"));
    assert_false(answer_correct("2", "3"));
    assert_false(answer_correct("red", "red circle"));
    assert_false(answer_correct("", "no"));
    assert_false(answer_correct(NULL, "no"));
    assert_false(answer_correct("no", NULL));
    assert_true(answer_correct("", ""));
}

static void test_correct_long(void **state) {
    (void)state;
    /* Longer than the stack buffers: the heap path. */
    size_t n = 5000;
    char *a = malloc(n + 1), *b = malloc(n + 8);
    assert_non_null(a);
    assert_non_null(b);
    memset(a, 'x', n);
    a[n] = '\0';
    memcpy(b, "The ", 4);
    memset(b + 4, 'X', n);
    memcpy(b + 4 + n, " !", 3);
    assert_true(answer_correct(a, b));
    b[10] = 'y';
    assert_false(answer_correct(a, b));
    free(a);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_normalize_truncates),
        cmocka_unit_test(test_correct),
        cmocka_unit_test(test_correct_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
