/* test_tokenizer.c: the WordLevel tokenizer and its Hugging Face tokenizer.json format:
 * building, encoding semantics (added tokens, lower-casing, punctuation, <unk>),
 * decoding, truncation, save/load round trip and rejection of malformed files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "data/tokenizer.h"
#include "../test_util.h"

static const char *const SPECIALS[] = {"<pad>", "<unk>", "<bos>", "<eos>", "<perceive>", "<image>"};
#define N_SPECIALS 6

static const char *const TEXTS[] = {
    "Is there a red circle?",
    "The red circle is left of the blue square.",
    "How many triangles are there? 2",
    "<perceive> a green_star, top-left",
};

typedef struct fixture {
    char dir[64];
    sevo_tokenizer *tok;
} fixture;

static int setup(void **state) {
    fixture *f = test_fixture_new(fixture, "sevo_tok");
    if (!f) return -1;
    sevo_error err = {{0}};
    if (tokenizer_build_wordlevel(&f->tok, TEXTS, 4, SPECIALS, N_SPECIALS, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tokenizer_free(f->tok);
    test_fixture_free(f, f->dir);
    return 0;
}

/* Encodes text and compares with the expected token strings. */
static void check_tokens(const sevo_tokenizer *t, const char *text, const char *const *want,
                         int n) {
    int ids[64];
    int got = tokenizer_encode(t, text, ids, 64);
    assert_int_equal(got, n);
    for (int i = 0; i < n; i++)
        assert_string_equal(tokenizer_id_to_token(t, ids[i]), want[i]);
}

static void test_build_layout(void **state) {
    fixture *f = *state;
    const sevo_tokenizer *t = f->tok;
    for (int i = 0; i < N_SPECIALS; i++) {
        assert_int_equal(tokenizer_token_id(t, SPECIALS[i]), i);
        assert_true(tokenizer_is_special(t, i));
    }
    /* Words follow in byte order, lower-cased, without fragments of "<perceive>". */
    int n = tokenizer_vocab_size(t);
    assert_true(n > N_SPECIALS + 10);
    for (int i = N_SPECIALS + 1; i < n; i++)
        assert_true(strcmp(tokenizer_id_to_token(t, i - 1), tokenizer_id_to_token(t, i)) < 0);
    assert_false(tokenizer_is_special(t, N_SPECIALS));
    assert_int_equal(tokenizer_token_id(t, "Is"), -1);
    assert_true(tokenizer_token_id(t, "is") >= N_SPECIALS);
    assert_true(tokenizer_token_id(t, "green_star") >= N_SPECIALS);
    assert_int_equal(tokenizer_token_id(t, "<"), -1);
    assert_int_equal(tokenizer_token_id(t, "perceive"), -1);
    assert_true(tokenizer_token_id(t, "-") >= N_SPECIALS);
    assert_true(tokenizer_token_id(t, "2") >= N_SPECIALS);
    assert_null(tokenizer_id_to_token(t, n));
    assert_null(tokenizer_id_to_token(t, -1));
}

static void test_encode_semantics(void **state) {
    fixture *f = *state;
    const sevo_tokenizer *t = f->tok;
    const char *a[] = {"<bos>", "is", "there"};
    check_tokens(t, "<bos>is there", a, 3);
    const char *b[] = {"is", "<perceive>", "a", "<eos>"};
    check_tokens(t, "IS<perceive>a<eos>", b, 4);
    const char *c[] = {"a", ",", "<unk>", "?"};
    check_tokens(t, "a,b?", c, 4); /* "b" is not in the vocabulary */
    const char *d[] = {"<unk>", "circle", "?"};
    check_tokens(t, "  purple\tcircle  ?\n", d, 3);
    const char *e[] = {"top", "-", "left", "<unk>"};
    check_tokens(t, "top-left?!", e, 4); /* "?!" is one punctuation run, unknown */
    /* Added tokens are matched before lower-casing: "<BOS>" is not "<bos>". */
    const char *g[] = {"<unk>", "<unk>", "<unk>"};
    check_tokens(t, "<BOS>", g, 3);
    /* Bytes >= 0x80 are word characters: "café" is one (unknown) word. */
    const char *h[] = {"<unk>", "circle"};
    check_tokens(t, "caf\xc3\xa9 circle", h, 2);
    assert_int_equal(tokenizer_encode(t, "", NULL, 0), 0);
    assert_int_equal(tokenizer_encode(t, "   ", NULL, 0), 0);
}

static void test_truncation_count(void **state) {
    fixture *f = *state;
    int ids[3] = {-7, -7, -7};
    int n = tokenizer_encode(f->tok, "the red circle is left of the blue square", ids, 2);
    assert_int_equal(n, 9);
    assert_int_equal(ids[0], tokenizer_token_id(f->tok, "the"));
    assert_int_equal(ids[1], tokenizer_token_id(f->tok, "red"));
    assert_int_equal(ids[2], -7); /* not written past max_ids */
    assert_int_equal(tokenizer_encode(f->tok, "the red circle", NULL, 0), 3);
}

static void test_decode(void **state) {
    fixture *f = *state;
    const sevo_tokenizer *t = f->tok;
    int ids[16];
    int n = tokenizer_encode(t, "<bos>Is there a red circle?<eos>", ids, 16);
    char out[128];
    int len = tokenizer_decode(t, ids, n, out, sizeof out, 0);
    assert_string_equal(out, "<bos> is there a red circle ? <eos>");
    assert_int_equal(len, (int)strlen(out));
    tokenizer_decode(t, ids, n, out, sizeof out, 1);
    assert_string_equal(out, "is there a red circle ?");
    /* A short buffer truncates like snprintf and reports the full length. */
    char small[6];
    len = tokenizer_decode(t, ids, n, small, sizeof small, 1);
    assert_string_equal(small, "is th");
    assert_int_equal(len, 23);
    int bad[] = {9999, ids[1]};
    tokenizer_decode(t, bad, 2, out, sizeof out, 0);
    assert_string_equal(out, "is");
}

static void test_save_load_roundtrip(void **state) {
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/tokenizer.json", f->dir);
    sevo_error err = {{0}};
    assert_int_equal(tokenizer_save(f->tok, path, &err), 0);
    sevo_tokenizer *u = NULL;
    if (tokenizer_load(&u, path, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(tokenizer_vocab_size(u), tokenizer_vocab_size(f->tok));
    for (int i = 0; i < tokenizer_vocab_size(u); i++) {
        assert_string_equal(tokenizer_id_to_token(u, i), tokenizer_id_to_token(f->tok, i));
        assert_int_equal(tokenizer_is_special(u, i), tokenizer_is_special(f->tok, i));
    }
    const char *probes[] = {"<bos>is there a red circle?<eos>", "How many TRIANGLES are there? 2",
                            "a,b?", "<perceive>green_star top-left<image>", "unknown words here"};
    for (int p = 0; p < 5; p++) {
        int a[64], b[64];
        int na = tokenizer_encode(f->tok, probes[p], a, 64);
        int nb = tokenizer_encode(u, probes[p], b, 64);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, (size_t)na * sizeof *a);
    }
    /* Saving what was loaded gives the same file. */
    char path2[128];
    snprintf(path2, sizeof path2, "%s/again.json", f->dir);
    assert_int_equal(tokenizer_save(u, path2, &err), 0);
    char *t1, *t2;
    assert_int_equal(sevo_read_file(path, &t1, NULL, &err), 0);
    assert_int_equal(sevo_read_file(path2, &t2, NULL, &err), 0);
    assert_string_equal(t1, t2);
    assert_non_null(strstr(t1, "\"WordLevel\""));
    assert_non_null(strstr(t1, "\"Lowercase\""));
    free(t1);
    free(t2);
    tokenizer_free(u);
}

static void test_build_errors(void **state) {
    (void)state;
    sevo_tokenizer *t = NULL;
    sevo_error err = {{0}};
    const char *no_unk[] = {"<pad>", "<bos>"};
    assert_int_equal(tokenizer_build_wordlevel(&t, TEXTS, 4, no_unk, 2, &err), -1);
    assert_null(t);
    assert_non_null(strstr(err.msg, "<unk>"));
    const char *twice[] = {"<unk>", "<unk>"};
    assert_int_equal(tokenizer_build_wordlevel(&t, TEXTS, 4, twice, 2, &err), -1);
    assert_non_null(strstr(err.msg, "twice"));
}

/* A minimal file in the other accepted shapes: normalizer null, WhitespaceSplit,
 * a non-special added token outside the vocabulary. */
static void test_load_variants(void **state) {
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/variant.json", f->dir);
    write_text(
        path,
        "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
        "{\"id\":3,\"content\":\"[X]\",\"special\":false,\"normalized\":false}],"
        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"WhitespaceSplit\"},"
        "\"post_processor\":null,\"decoder\":null,"
        "\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"<unk>\":0,\"Hi,\":1,\"there\":2},"
        "\"unk_token\":\"<unk>\"}}");
    sevo_tokenizer *t = NULL;
    sevo_error err = {{0}};
    if (tokenizer_load(&t, path, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(tokenizer_vocab_size(t), 4);
    const char *a[] = {"Hi,", "there", "[X]", "<unk>"};
    check_tokens(t, "Hi, there[X]hi,", a, 4);
    assert_false(tokenizer_is_special(t, 3));
    assert_true(tokenizer_is_special(t, 0));
    tokenizer_free(t);

    write_text(path,
               "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Lowercase\"}]},"
               "\"pre_tokenizer\":{\"type\":\"Whitespace\"},"
               "\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"<unk>\":0,\"hi\":1}}}");
    if (tokenizer_load(&t, path, &err) != 0) fail_msg("%s", err.msg);
    const char *b[] = {"hi", "<unk>", "hi"};
    check_tokens(t, "HI! hI", b, 3);
    tokenizer_free(t);
}

/* Each malformed file must fail with a message naming the file and the field. */
static void expect_load_error(const char *dir, const char *json, const char *needle) {
    char path[128];
    snprintf(path, sizeof path, "%s/bad.json", dir);
    write_text(path, json);
    sevo_tokenizer *t = (sevo_tokenizer *)&t; /* must be reset to NULL */
    sevo_error err = {{0}};
    assert_int_equal(tokenizer_load(&t, path, &err), -1);
    assert_null(t);
    if (!strstr(err.msg, path) || !strstr(err.msg, needle))
        fail_msg("error '%s' should name '%s' and contain '%s'", err.msg, path, needle);
}

static void test_malformed(void **state) {
    fixture *f = *state;
    const char *d = f->dir;
    expect_load_error(d, "{\"version\":\"1.0\"}", "field 'model': missing");
    expect_load_error(d, "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", "'model.type'");
    expect_load_error(d, "{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
                      "not supported yet");
    expect_load_error(d, "{\"model\":{\"type\":7}}", "model.type");
    expect_load_error(d, "{\"model\":{\"type\":\"WordLevel\"}}", "field 'model.vocab': missing");
    expect_load_error(d, "{\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"<unk>\":0,\"a\":0}}}",
                      "id 0 duplicated");
    expect_load_error(d, "{\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"<unk>\":0,\"a\":2}}}",
                      "out of range");
    expect_load_error(d, "{\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"<unk>\":0,\"a\":\"1\"}}}",
                      "token 'a'");
    expect_load_error(d, "{\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"a\":0}}}", "unk_token");
    expect_load_error(d,
                      "{\"normalizer\":{\"type\":\"NFKC\"},"
                      "\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"<unk>\":0}}}",
                      "normalizer.type");
    expect_load_error(d,
                      "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
                      "\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"<unk>\":0}}}",
                      "pre_tokenizer.type");
    expect_load_error(d,
                      "{\"decoder\":{\"type\":\"WordPiece\"},"
                      "\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"<unk>\":0}}}",
                      "decoder");
    expect_load_error(d,
                      "{\"added_tokens\":[{\"id\":5,\"content\":\"<unk>\",\"special\":true}],"
                      "\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"<unk>\":0}}}",
                      "added_tokens[0].id");
    expect_load_error(d,
                      "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":\"yes\"}],"
                      "\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"<unk>\":0}}}",
                      "added_tokens[0].special");
    expect_load_error(d, "{\"model\": {", "invalid JSON");
    expect_load_error(d, "{\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"<unk>\": 0}}}\n}",
                      ":2: invalid JSON");
    expect_load_error(d, "[1, 2]", "expected a JSON object");

    sevo_tokenizer *t = NULL;
    sevo_error err = {{0}};
    assert_int_equal(tokenizer_load(&t, "/nonexistent/tokenizer.json", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/tokenizer.json"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_build_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_semantics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load_roundtrip, setup, teardown),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test_setup_teardown(test_load_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
