/* test_bench.c: `sevo bench --json`, the line bench/compare.sh reads. The speeds depend
 * on the machine and are not checked here (benchmarks, not timed tests); what is checked
 * is the arithmetic the comparison builds on: the bytes a decode step reads, which
 * bench/summarize.py divides into the measured memory read rate to bound decode speed,
 * against a count done by hand for the tiny model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

/* Runs `sevo bench ARGS --json` and returns its parsed output line (NULL on failure). */
static cJSON *bench_json(const char *args) {
    const char *bin = getenv("SEVO_BIN");
    char cmd[1024], line[4096];
    snprintf(cmd, sizeof cmd, "%s bench %s --json --num_threads 1", bin ? bin : "./sevo", args);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    char *got = fgets(line, sizeof line, p);
    int st = pclose(p);
    return got && st == 0 ? cJSON_Parse(line) : NULL;
}

static double num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

/* The tiny model (vocabulary 96, tied embeddings; decoder width 128, 4 layers, 2 KV
 * heads of 32, SwiGLU 320), prompt 9 patches + 41 = 50 tokens, 2 decoded tokens:
 *   per layer: 2 norms 2*128 + q 128*128 + k, v 2*(128*64) + o 128*128 + MLP 3*128*320
 *            = 256 + 16384 + 16384 + 16384 + 122880 = 172288 floats, x 4 = 689152;
 *   final norm 128; the tied table as the head 96*128 = 12288;
 *   cache: the two tokens see 51 and 52 rows, on average 51.5: keys and values
 *            2 * 4 layers * 51.5 * 64 = 26368;
 *   in all 727936 floats = 2911744 bytes. */
static void test_decode_bytes_tiny(void **state) {
    (void)state;
    cJSON *j = bench_json("--size tiny --batch_size 2 --seq_len 60 --steps 1 --reps 1 --decode_len 2");
    assert_non_null(j);
    assert_float_equal(num(j, "decode_bytes_per_token"), 2911744.0, 0.5);
    assert_true(num(j, "decode_tokens_per_s") > 0 && num(j, "train_tokens_per_s") > 0);
    cJSON_Delete(j);
}

/* The memory read rate is a positive number, with the L3 size beside it (a small buffer:
 * the number is not checked, only that it is measured and reported). */
static void test_memory_only(void **state) {
    (void)state;
    cJSON *j = bench_json("--memory_only --memory_mib 16");
    assert_non_null(j);
    assert_true(num(j, "read_gbps") > 0);
    assert_true(num(j, "l3_bytes") >= 0);
    cJSON_Delete(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_bytes_tiny),
        cmocka_unit_test(test_memory_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
