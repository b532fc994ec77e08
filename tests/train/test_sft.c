/* test_sft.c: a short SFT run on a small synthetic world lowers the loss, writes a
 * complete checkpoint directory, and resuming from an intermediate checkpoint gives
 * bitwise the same final weights as the uninterrupted run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/fsutil.h"
#include "core/threads.h"
#include "data/synth.h"
#include "train/sft.h"
#include "../test_world.h"

static char g_dir[64];

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/sevo-sft-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    sevo_threads_init(2);
    return test_world_data(g_dir, 120, 20);
}

static int teardown(void **state) {
    (void)state;
    sevo_remove_tree(g_dir);
    return 0;
}

/* One epoch of the test world's short run, with a checkpoint every 4 steps. */
static void small_run_config(sevo_config *c) {
    test_world_config(c, 1);
    c->save_steps = 4;
}

/* Reads the "loss" of every line of metrics.jsonl. */
static int read_losses(const char *dir, double *loss, int max) {
    char path[256], *txt = NULL;
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    sevo_error err;
    assert_int_equal(sevo_read_file(path, &txt, NULL, &err), 0);
    int n = 0;
    for (char *p = strstr(txt, "\"loss\":"); p && n < max; p = strstr(p + 1, "\"loss\":")) loss[n++] = atof(p + 7);
    free(txt);
    return n;
}

static void run_sft(const sevo_config *c, const char *out, int max_steps, int resume) {
    char data[128];
    snprintf(data, sizeof data, "%s/data", g_dir);
    sft_options o = {.cfg = c, .data_dir = data, .output_dir = out, .resume = resume, .max_steps = max_steps};
    sevo_error err;
    if (sft_run(&o, &err)) fail_msg("sft_run: %s", err.msg);
}

static void test_loss_falls_and_checkpoint_is_complete(void **state) {
    (void)state;
    sevo_config c;
    small_run_config(&c);
    char out[128];
    snprintf(out, sizeof out, "%s/run", g_dir);
    run_sft(&c, out, 24, 0);
    double loss[64];
    int n = read_losses(out, loss, 64);
    assert_int_equal(n, 24);
    double first = (loss[0] + loss[1]) / 2, last = (loss[n - 1] + loss[n - 2]) / 2;
    printf("loss %.3f -> %.3f over %d steps\n", first, last, n);
    assert_true(last < 0.6 * first);
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.json", "trainer_state.json",
                           "optimizer.safetensors", "metrics.jsonl"};
    for (int i = 0; i < 6; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        if (!sevo_file_exists(p)) fail_msg("missing %s", p);
    }
}

static void test_resume_is_bitwise_identical(void **state) {
    (void)state;
    sevo_config c;
    small_run_config(&c);
    char a[128], b[128], p[256];
    snprintf(a, sizeof a, "%s/uninterrupted", g_dir);
    snprintf(b, sizeof b, "%s/resumed", g_dir);
    run_sft(&c, a, 10, 0);
    run_sft(&c, b, 10, 0);
    /* pretend the run died after its step-8 checkpoint: drop everything newer */
    const char *finals[] = {"model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", b, finals[i]);
        remove(p);
    }
    snprintf(p, sizeof p, "%s/checkpoint-8", b);
    assert_true(sevo_dir_exists(p));
    run_sft(&c, b, 10, 1);
    char *wa = NULL, *wb = NULL;
    size_t la = 0, lb = 0;
    sevo_error err;
    snprintf(p, sizeof p, "%s/model.safetensors", a);
    assert_int_equal(sevo_read_file(p, &wa, &la, &err), 0);
    snprintf(p, sizeof p, "%s/model.safetensors", b);
    assert_int_equal(sevo_read_file(p, &wb, &lb, &err), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(wa, wb, la);
    free(wa);
    free(wb);
    /* the resumed run's log has each step once */
    double loss_a[32], loss_b[32];
    assert_int_equal(read_losses(a, loss_a, 32), 10);
    assert_int_equal(read_losses(b, loss_b, 32), 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_falls_and_checkpoint_is_complete),
        cmocka_unit_test(test_resume_is_bitwise_identical),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
