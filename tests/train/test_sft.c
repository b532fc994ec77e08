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
#include "data/dataset.h"
#include "model/prompt.h"
#include "train/sft.h"
#include "../test_util.h"
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

/* Flips a bit in the last byte of <dir>/checkpoint-<step>/model.safetensors (its data). */
static void damage_weights(const char *dir, int step) {
    char p[256], *ck = NULL;
    size_t lc = 0;
    sevo_error err;
    snprintf(p, sizeof p, "%s/checkpoint-%d/model.safetensors", dir, step);
    assert_int_equal(sevo_read_file(p, &ck, &lc, &err), 0);
    ck[lc - 1] ^= 0x01;
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(ck, 1, lc, fp), lc);
    fclose(fp);
    free(ck);
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
    assert_same_file_bytes(a, b, "model.safetensors");
    /* the resumed run's log has each step once */
    double loss_a[32], loss_b[32];
    assert_int_equal(read_losses(a, loss_a, 32), 10);
    assert_int_equal(read_losses(b, loss_b, 32), 10);

    /* killed again after step 8, and this time checkpoint-8's weights were damaged on
     * disk: the checksum refuses them, the run resumes from checkpoint-4 and still ends
     * with the same weights */
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", b, finals[i]);
        remove(p);
    }
    damage_weights(b, 8);
    snprintf(p, sizeof p, "%s/checkpoint-4", b);
    assert_true(sevo_dir_exists(p));
    run_sft(&c, b, 10, 1);
    assert_same_file_bytes(a, b, "model.safetensors");
    assert_int_equal(read_losses(b, loss_b, 32), 10);

    /* every checkpoint damaged: resuming stops with an error rather than start over */
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", b, finals[i]);
        remove(p);
    }
    damage_weights(b, 4);
    damage_weights(b, 8);
    char data[128];
    snprintf(data, sizeof data, "%s/data", g_dir);
    sft_options o = {.cfg = &c, .data_dir = data, .output_dir = b, .resume = 1, .max_steps = 10};
    sevo_error err;
    assert_int_equal(sft_run(&o, &err), -1);
    assert_non_null(strstr(err.msg, "none of its 2 checkpoints loads"));
    snprintf(p, sizeof p, "%s/model.safetensors", b);
    assert_false(sevo_file_exists(p));
}

/* The test world's records and the SFT examples built from them under cfg, with a
 * vocabulary of the control tokens (all the checks count; other words may be <unk>). */
typedef struct built_examples {
    sevo_dataset ds;
    sevo_tokenizer *tok;
    prompt_ids p;
    example_set es;
} built_examples;

static void build_examples_from(const char *path, const sevo_config *cfg, built_examples *b) {
    sevo_error err;
    assert_int_equal(dataset_load_jsonl(&b->ds, path, 0, &err), 0);
    const char *texts[] = {"yes no"};
    assert_int_equal(
        tokenizer_build_wordlevel(&b->tok, texts, 1, PROMPT_SPECIAL_TOKENS, PROMPT_NUM_SPECIAL_TOKENS, &err), 0);
    assert_int_equal(prompt_ids_resolve(&b->p, b->tok, &err), 0);
    vlm_config c;
    vlm_config_tiny(&c, tokenizer_vocab_size(b->tok));
    example_set_init(&b->es, c.num_channels * c.image_size * c.image_size);
    assert_int_equal(sft_build_examples(&b->ds, b->tok, &c, cfg, 512, &b->es, &err), 0);
}

static void build_examples(const sevo_config *cfg, built_examples *b) {
    char path[128];
    snprintf(path, sizeof path, "%s/data/train.jsonl", g_dir);
    build_examples_from(path, cfg, b);
}

static void built_examples_free(built_examples *b) {
    example_set_free(&b->es);
    tokenizer_free(b->tok);
    dataset_free(&b->ds);
}

/* Builds the examples of the test world's records with the given share of cut traces
 * and checks every trace: its number of steps, and whether its <answer> is a target. */
static void check_traces(float fraction, int *cut, int *whole) {
    sevo_config cfg;
    config_defaults(&cfg);
    cfg.sft.early_answer_fraction = fraction;
    built_examples b;
    build_examples(&cfg, &b);
    const sevo_dataset ds = b.ds;
    const example_set es = b.es;
    const prompt_ids p = b.p;
    *cut = *whole = 0;
    int e = 0, lengths[8] = {0};
    for (int i = 0; i < ds.n; i++) {
        const sevo_sample *s = &ds.samples[i];
        assert_non_null(s->perception);
        assert_null(s->caption); /* the test world has no annotation noise */
        const train_example *x = &es.ex[e];
        e += s->wrong_perception ? 3 : 2;
        int steps = 0, answer_at = -1;
        for (int t = 0; t < x->n; t++) {
            steps += x->ids[t] == p.step;
            if (x->ids[t] == p.answer) answer_at = t;
        }
        assert_true(answer_at > 0 && answer_at + 1 < x->n);
        assert_true(x->loss[answer_at + 1]); /* the answer itself is always trained */
        if (steps == s->n_steps) {
            assert_true(x->loss[answer_at]); /* a whole trace: <answer> is a target */
            ++*whole;
        } else {
            /* a cut trace: from the step that reaches the answer on, before the last */
            assert_true(steps >= (s->depth > 1 ? s->depth : 1) && steps < s->n_steps);
            assert_false(x->loss[answer_at]);
            ++*cut;
            if (steps < 8) lengths[steps] = 1;
        }
    }
    assert_int_equal(e, es.n);
    if (*cut) assert_true(lengths[1] + lengths[2] + lengths[3] + lengths[4] >= 2); /* the cuts vary */
    built_examples_free(&b);
}

static void test_early_answer_traces(void **state) {
    (void)state;
    int cut, whole;
    check_traces(0.0f, &cut, &whole);
    assert_int_equal(cut, 0);
    check_traces(1.0f, &cut, &whole);
    assert_true(cut > 0);
    assert_int_equal(whole, 0); /* every trace is cut: the world's depths are below its 5 steps */
    check_traces(0.25f, &cut, &whole);
    assert_true(cut > 10 && whole > cut); /* about a quarter of 120 */
}

/* π_text's examples: no image; answering at once, only the answer and <eos> are trained
 * (<answer> ends the prompt); reasoning, the question's steps up to its depth and then
 * <answer>, all trained, with the prompt ending at the description. */
static void check_text_examples(int reasoning) {
    sevo_config cfg;
    config_defaults(&cfg);
    cfg.sft.text_reasoning = reasoning;
    built_examples b;
    build_examples(&cfg, &b);
    const sevo_dataset ds = b.ds;
    const example_set es = b.es;
    const prompt_ids p = b.p;
    int e = 0, deep = 0;
    for (int i = 0; i < ds.n; i++, e += ds.samples[i - 1].wrong_perception ? 3 : 2) {
        const sevo_sample *s = &ds.samples[i];
        const train_example *x = &es.ex[e + 1];
        assert_int_equal(x->image, -1);
        assert_int_equal(x->ids[1], p.text);
        int perceive_at = -1, answer_at = -1, steps = 0, answers = 0;
        for (int t = 0; t < x->n; t++) {
            if (x->ids[t] == p.perceive) perceive_at = t;
            if (x->ids[t] == p.answer) answer_at = t;
            steps += x->ids[t] == p.step;
            answers += x->ids[t] == p.answer;
        }
        assert_int_equal(answers, 1);
        assert_true(perceive_at > 1 && answer_at > perceive_at);
        assert_int_equal(x->ids[x->n - 1], p.eos);
        int want_steps = reasoning ? (s->depth > 0 && s->depth < s->n_steps ? s->depth : s->n_steps) : 0;
        assert_int_equal(steps, want_steps);
        deep += want_steps >= 3;
        /* the response: from the first <step> (reasoning) or the answer on, all trained */
        int first = answer_at + 1;
        if (reasoning && want_steps > 0) {
            first = perceive_at + 1;
            while (first < x->n && x->ids[first] != p.step) first++;
            assert_true(first > perceive_at + 1); /* the description comes first */
        }
        for (int t = 0; t < x->n; t++) assert_int_equal(x->loss[t] != 0, t >= first);
        assert_float_equal(x->weight, cfg.sft.text_loss_weight, 0);
    }
    assert_int_equal(e, es.n);
    if (reasoning) assert_true(deep > 0); /* depth-3 questions write three steps */
    built_examples_free(&b);
}

static void test_text_examples(void **state) {
    (void)state;
    check_text_examples(0);
    check_text_examples(1);
}

/* The words of a text (separated by single spaces, as the world writes them). */
static int count_words(const char *text) {
    int words = 1;
    for (; *text; text++) words += *text == ' ';
    return words;
}

/* The position of the first id in x at or after t, or -1. */
static int find_id(const train_example *x, int id, int t) {
    for (; t < x->n; t++)
        if (x->ids[t] == id) return t;
    return -1;
}

/* The examples of a small world with annotation noise (in g_dir/name), with or without
 * the traces written from the captions, no trace cut. */
static void build_caption_world(const char *name, int caption_reasoning, built_examples *b) {
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/%s", g_dir, name);
    synth_options o;
    synth_options_default(&o);
    o.output_dir = dir;
    o.num_train = 60;
    o.num_test = 10;
    o.seed = 3;
    o.annotation_noise = 0.5f;
    o.caption_reasoning = caption_reasoning;
    sevo_error err;
    if (synth_generate(&o, &err)) fail_msg("synth: %s", err.msg);
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    sevo_config cfg;
    config_defaults(&cfg);
    cfg.sft.early_answer_fraction = 0.0f;
    build_examples_from(path, &cfg, b);
}

/* A world with annotation noise: a record with a caption has an example of its own, on
 * its image, that trains the caption and the <step> after it and ends there; its trace
 * then reads the perception without training it, from <step> on as any trace. A record
 * without one trains its perception in its trace. Every record keeps its π_text and
 * refinement examples. */
static void test_caption_examples(void **state) {
    (void)state;
    built_examples b;
    build_caption_world("noisy", 0, &b);
    const prompt_ids p = b.p;
    int e = 0, captioned = 0;
    for (int i = 0; i < b.ds.n; i++) {
        const sevo_sample *s = &b.ds.samples[i];
        assert_non_null(s->wrong_perception);
        if (s->caption) {
            captioned++;
            const train_example *c = &b.es.ex[e++];
            assert_true(c->image >= 0);
            int at = find_id(c, p.perceive, 0);
            assert_true(at > 0);
            assert_int_equal(find_id(c, p.answer, 0), -1);
            assert_int_equal(c->ids[c->n - 1], p.step);
            assert_int_equal(find_id(c, p.step, 0), c->n - 1);
            /* the caption's words (one token each here) and the <step> */
            assert_int_equal(c->n - 1 - at, count_words(s->caption) + 1);
            for (int t = 0; t < c->n; t++) assert_int_equal(c->loss[t] != 0, t > at);
        }
        const train_example *x = &b.es.ex[e];
        int at = find_id(x, p.perceive, 0), step = find_id(x, p.step, 0);
        assert_true(at > 0 && step > at + 1);
        assert_int_equal(step - at - 1, count_words(s->perception)); /* not the caption */
        for (int t = at + 1; t < step; t++) assert_int_equal(x->loss[t] != 0, !s->caption);
        for (int t = step; t < x->n; t++) assert_true(x->loss[t]);
        assert_true(find_id(x, p.answer, step) > step);
        assert_int_equal(b.es.ex[e + 1].image, -1); /* π_text */
        assert_true(b.es.ex[e + 2].image >= 0);     /* the refinement */
        const train_example *r = &b.es.ex[e + 2];
        assert_true(find_id(r, p.refine, 0) > 0);
        int targets = 0; /* the refinement's target is the perception and <eos> */
        for (int t = 0; t < r->n; t++) targets += r->loss[t] != 0;
        assert_int_equal(targets, count_words(s->perception) + 1);
        e += 3;
    }
    assert_int_equal(e, b.es.n);
    assert_true(captioned > 10 && captioned < 50);
    built_examples_free(&b);
}

/* With the trace written from the caption (synth.caption_reasoning): such a record has
 * one perceive-and-reason example, which trains the caption and then the caption's steps
 * and answer (the words of caption_steps and caption_answer, not of steps and answer);
 * there is no caption example of its own. π_text and the refinement still use the exact
 * perception. A captioned record without the caption's trace is as before. */
static void test_caption_reasoning_examples(void **state) {
    (void)state;
    built_examples b;
    build_caption_world("caption_reasoning", 1, &b);
    const prompt_ids p = b.p;
    int e = 0, traced = 0, differ = 0;
    for (int i = 0; i < b.ds.n; i++) {
        const sevo_sample *s = &b.ds.samples[i];
        if (s->caption && !s->caption_steps) e++; /* its caption example, as before */
        const train_example *x = &b.es.ex[e];
        int at = find_id(x, p.perceive, 0), step = find_id(x, p.step, 0);
        assert_true(at > 0 && step > at + 1);
        if (s->caption_steps) {
            traced++;
            differ += strcmp(s->caption_answer, s->answer) != 0;
            assert_int_equal(step - at - 1, count_words(s->caption));
            for (int t = at + 1; t < x->n; t++) assert_true(x->loss[t]);
            /* the steps, one after each <step>, are the caption's */
            int t = step;
            for (int k = 0; k < s->n_caption_steps; k++) {
                assert_int_equal(x->ids[t], p.step);
                int ids[64], n = tokenizer_encode(b.tok, s->caption_steps[k], ids, 64);
                assert_memory_equal(x->ids + t + 1, ids, (size_t)n * sizeof(int));
                t += 1 + n;
            }
            assert_int_equal(x->ids[t], p.answer);
            int ids[8], n = tokenizer_encode(b.tok, s->caption_answer, ids, 8);
            assert_int_equal(n, 1);
            assert_int_equal(x->ids[t + 1], ids[0]);
            assert_int_equal(x->ids[t + 2], p.eos);
            assert_int_equal(t + 3, x->n);
        } else {
            assert_int_equal(step - at - 1, count_words(s->perception));
        }
        assert_int_equal(b.es.ex[e + 1].image, -1); /* π_text */
        const train_example *r = &b.es.ex[e + 2];   /* the refinement */
        assert_true(find_id(r, p.refine, 0) > 0);
        int targets = 0;
        for (int t = 0; t < r->n; t++) targets += r->loss[t] != 0;
        assert_int_equal(targets, count_words(s->perception) + 1);
        e += 3;
    }
    assert_int_equal(e, b.es.n);
    assert_true(traced > 10 && differ > 0);
    built_examples_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_falls_and_checkpoint_is_complete),
        cmocka_unit_test(test_resume_is_bitwise_identical),
        cmocka_unit_test(test_early_answer_traces),
        cmocka_unit_test(test_text_examples),
        cmocka_unit_test(test_caption_examples),
        cmocka_unit_test(test_caption_reasoning_examples),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
