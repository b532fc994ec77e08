/* test_world.h: a small trained world for the tests of the method, evaluation and
 * pipeline layers: a synthetic data set under <dir>/data and a tiny model briefly
 * fine-tuned on it under <dir>/sft (deterministic for a given thread count). */
#ifndef SEVO_TESTS_TEST_WORLD_H
#define SEVO_TESTS_TEST_WORLD_H

#include <stdio.h>

#include "core/config.h"
#include "core/error.h"
#include "core/threads.h"
#include "data/synth.h"
#include "train/sft.h"

/* Renders num_train + num_test scenes into <dir>/data. 0 on success. */
static inline int test_world_data(const char *dir, int num_train, int num_test) {
    char data[512];
    snprintf(data, sizeof data, "%s/data", dir);
    synth_options o;
    synth_options_default(&o);
    o.output_dir = data;
    o.num_train = num_train;
    o.num_test = num_test;
    o.seed = 3;
    sevo_error err;
    if (synth_generate(&o, &err)) {
        fprintf(stderr, "synth: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* The settings of the short SFT run (a high learning rate; 8 epochs over 100 records
 * train a model that IPR can refine, in about 12 s on 2 cores). */
static inline void test_world_config(sevo_config *c, int epochs) {
    config_defaults(c);
    c->sft.learning_rate = 3e-3f;
    c->sft.batch_size = 8;
    c->sft.gradient_accumulation_steps = 1;
    c->sft.num_epochs = epochs;
    c->sft.warmup_ratio = 0.1f;
    c->logging_steps = 1;
    c->save_steps = 1000;
    c->seed = 5;
}

/* Data plus <dir>/sft, the model fine-tuned for `epochs` epochs, its π_text taught to
 * reason first when text_reasoning (sft.text_reasoning). */
static inline int test_world_make_with(const char *dir, int num_train, int num_test, int epochs, int text_reasoning) {
    sevo_threads_init(2);
    if (test_world_data(dir, num_train, num_test)) return -1;
    sevo_config c;
    test_world_config(&c, epochs);
    c.sft.text_reasoning = text_reasoning;
    char data[512], sft[512];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(sft, sizeof sft, "%s/sft", dir);
    sft_options o = {.cfg = &c, .data_dir = data, .output_dir = sft};
    sevo_error err;
    if (sft_run(&o, &err)) {
        fprintf(stderr, "sft: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static inline int test_world_make(const char *dir, int num_train, int num_test, int epochs) {
    return test_world_make_with(dir, num_train, num_test, epochs, 0);
}

/* A fresh /tmp/sevo-<name>-XXXXXX in dir (n bytes) holding test_world_make's world and
 * model: the setup of a test group that shares one trained world. */
static inline int test_world_setup(char *dir, size_t n, const char *name, int num_train, int num_test, int epochs) {
    snprintf(dir, n, "/tmp/sevo-%s-XXXXXX", name);
    if (!mkdtemp(dir)) return -1;
    return test_world_make(dir, num_train, num_test, epochs);
}

/* Lines of a text file (-1 when it cannot be read). */
static inline int test_count_lines(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int n = 0, ch, last = '\n';
    while ((ch = fgetc(f)) != EOF) {
        if (ch == '\n') n++;
        last = ch;
    }
    fclose(f);
    return n + (last != '\n');
}

#endif
