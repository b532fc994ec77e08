/* test_generate.c: the policy pool, which generates many samples in parallel, and the
 * verifier of a model taught to reason as π_text. Greedy
 * traces from the pool equal those of one policy run sample by sample; sampled traces
 * are the same for one thread and for two (each sample draws from its own stream) and
 * do differ from the greedy ones; work runs once per sample, done once per sample in
 * order across chunk boundaries; and a failure reports the lowest failing sample, as a
 * loop in order would, after done has seen every sample before it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <omp.h>

#include "core/fsutil.h"
#include "core/threads.h"
#include "data/dataset.h"
#include "data/image.h"
#include "model/checkpoint.h"
#include "model/generate.h"
#include "model/prompt.h"
#include "../test_world.h"

#define N_SAMPLES 40

static char g_dir[64];
static vlm *g_m;
static sevo_tokenizer *g_tok;
static sevo_dataset g_ds;
static float *g_images; /* [N_SAMPLES] images, loaded once */
static size_t g_floats;

static int setup(void **state) {
    (void)state;
    char path[128];
    sevo_error err;
    /* three short epochs: the model only has to produce traces of varied length, and (its
     * π_text taught to reason) open an answer after its steps as π_text */
    snprintf(g_dir, sizeof g_dir, "/tmp/sevo-gen-XXXXXX");
    if (!mkdtemp(g_dir) || test_world_make_with(g_dir, 40, N_SAMPLES, 3, 1)) return -1;
    snprintf(path, sizeof path, "%s/sft", g_dir);
    if (checkpoint_load_model(path, &g_m, &g_tok, &err)) return -1;
    snprintf(path, sizeof path, "%s/data/test.jsonl", g_dir);
    if (dataset_load_jsonl(&g_ds, path, 0, &err) || g_ds.n != N_SAMPLES) return -1;
    const vlm_config *c = vlm_get_config(g_m);
    g_floats = (size_t)c->num_channels * c->image_size * c->image_size;
    if (!(g_images = malloc(N_SAMPLES * g_floats * sizeof(float)))) return -1;
    for (int i = 0; i < N_SAMPLES; i++)
        if (image_load(g_ds.samples[i].image, c->image_size, c->image_mean, c->image_std, g_images + i * g_floats,
                       &err))
            return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    free(g_images);
    dataset_free(&g_ds);
    vlm_free(g_m);
    tokenizer_free(g_tok);
    sevo_remove_tree(g_dir);
    return 0;
}

/* ---- traces ---- */

typedef struct trace_ctx {
    trace_result *out; /* [N_SAMPLES]: the pool writes slot results here in done */
    trace_result *slot;
    int done_next;     /* done must come in order */
    double cost[N_SAMPLES]; /* policy_seconds over each sample */
    int fail[2];       /* samples whose work fails after generating (-1: none) */
} trace_ctx;

static int trace_work(void *ctx, vlm_policy *p, int i, int slot, sevo_error *err) {
    trace_ctx *x = ctx;
    double t0 = policy_seconds(p);
    int rc = policy_reason(p, g_images + (size_t)i * g_floats, g_ds.samples[i].question, 4, NULL, NULL,
                           &x->slot[slot], err);
    x->cost[i] = policy_seconds(p) - t0;
    if (!rc && (i == x->fail[0] || i == x->fail[1])) return sevo_fail(err, "trace failed at %d", i);
    return rc;
}

static int trace_done(void *ctx, int i, int slot, sevo_error *err) {
    (void)err;
    trace_ctx *x = ctx;
    assert_int_equal(i, x->done_next++);
    x->out[i] = x->slot[slot];
    return 0;
}

static void pool_traces(const gen_options *go, int threads, int lanes, trace_result *out) {
    sevo_error err;
    policy_pool *pool;
    assert_int_equal(policy_pool_create(&pool, g_m, g_tok, go, threads, lanes, &err), 0);
    assert_int_equal(policy_pool_threads(pool), threads);
    assert_int_equal(policy_pool_lanes(pool), lanes);
    trace_ctx x = {.out = out, .slot = malloc(POLICY_POOL_CHUNK * sizeof(trace_result)), .fail = {-1, -1}};
    assert_non_null(x.slot);
    double t0 = sevo_now();
    assert_int_equal(policy_pool_run(pool, N_SAMPLES, 0, trace_work, trace_done, &x, &err), 0);
    double wall = sevo_now() - t0, cost = 0;
    assert_int_equal(x.done_next, N_SAMPLES);
    /* a sample's cost is its lane's running time and its share of the steps: only one
     * lane of a group runs at a time, so the costs add up to at most threads * wall */
    for (int i = 0; i < N_SAMPLES; i++) {
        assert_true(x.cost[i] > 0);
        cost += x.cost[i];
    }
    assert_true(cost <= threads * wall);
    /* with lanes the tokens were fed in batches, mostly full ones */
    long steps, rows;
    policy_pool_step_stats(pool, &steps, &rows);
    if (lanes == 1) {
        assert_int_equal(steps, 0);
    } else if (omp_get_thread_limit() >= threads * lanes) {
        /* a full team: mostly full batches (which samples share a step depends on the
         * timing, but with 40 samples a batch short of lanes - 1 rows on average would
         * mean the lanes hardly ever waited for each other) */
        assert_true(steps > 0);
        assert_true(rows > steps * (lanes - 1));
    } /* else the team was cut short (model/test_generate_short_team): smaller groups */
    free(x.slot);
    policy_pool_free(pool);
}

static int same_trace(const trace_result *a, const trace_result *b) {
    if (strcmp(a->perception, b->perception) || strcmp(a->answer, b->answer) || a->n_steps != b->n_steps ||
        a->tokens_generated != b->tokens_generated || a->exit_type != b->exit_type)
        return 0;
    for (int k = 0; k < a->n_steps; k++)
        if (strcmp(a->steps[k], b->steps[k])) return 0;
    return 1;
}

/* Short generations: the briefly trained model often runs to the token budget. */
static void short_options(gen_options *go) {
    gen_options_default(go);
    go->max_new_tokens = 16;
}

static void test_greedy_pool_matches_one_policy(void **state) {
    (void)state;
    gen_options go;
    short_options(&go);
    trace_result *want = malloc(N_SAMPLES * sizeof *want), *got = malloc(N_SAMPLES * sizeof *got);
    assert_true(want && got);
    vlm_policy *pol;
    sevo_error err;
    assert_int_equal(policy_create(&pol, g_m, g_tok, &go, &err), 0);
    for (int i = 0; i < N_SAMPLES; i++)
        assert_int_equal(policy_reason(pol, g_images + (size_t)i * g_floats, g_ds.samples[i].question, 4, NULL, NULL,
                                       &want[i], &err),
                         0);
    policy_free(pol);
    /* one sample per thread, and lanes whose steps are batched (3: batches of 3 and,
     * once samples run out, fewer) */
    const int lanes[] = {1, 2, 3, POLICY_POOL_MAX_LANES};
    for (int threads = 1; threads <= 2; threads++)
        for (size_t l = 0; l < sizeof lanes / sizeof lanes[0]; l++) {
            pool_traces(&go, threads, lanes[l], got);
            for (int i = 0; i < N_SAMPLES; i++) assert_true(same_trace(&want[i], &got[i]));
        }

    free(want);
    free(got);
}

static void test_sampled_pool_same_for_any_thread_count(void **state) {
    (void)state;
    gen_options greedy, sampled;
    short_options(&greedy);
    sampled = greedy;
    sampled.temperature = 1.0f;
    sampled.seed = 11;
    trace_result *g = malloc(N_SAMPLES * sizeof *g), *one = malloc(N_SAMPLES * sizeof *one),
                 *two = malloc(N_SAMPLES * sizeof *two);
    assert_true(g && one && two);
    pool_traces(&greedy, 2, 1, g);
    pool_traces(&sampled, 1, 1, one);
    pool_traces(&sampled, 2, POLICY_POOL_MAX_LANES, two);
    int differ = 0;
    for (int i = 0; i < N_SAMPLES; i++) {
        assert_true(same_trace(&one[i], &two[i]));
        differ += !same_trace(&one[i], &g[i]);
    }
    /* the comparison means something only if sampling changed traces */
    assert_true(differ > N_SAMPLES / 4);
    /* another seed, other draws */
    sampled.seed = 12;
    pool_traces(&sampled, 2, 2, g);
    differ = 0;
    for (int i = 0; i < N_SAMPLES; i++) differ += !same_trace(&one[i], &g[i]);
    assert_true(differ > N_SAMPLES / 4);
    free(g);
    free(one);
    free(two);
}

/* ---- scheduling and failure ---- */

#define N_CALLS 200

typedef struct count_ctx {
    int threads, lanes;
    int work_calls[N_CALLS];
    int done_order[N_CALLS], n_done;
    int fail_work[3];  /* samples whose work fails (-1: none); [0] the lowest */
    int later_failed;  /* one of fail_work[1..2] has failed */
    int fail_done;     /* the sample whose done fails (-1: none) */
    int bad_args;      /* work saw no policy or a wrong slot (cmocka cannot assert off the main thread) */
} count_ctx;

static int count_work(void *ctx, vlm_policy *p, int i, int slot, sevo_error *err) {
    count_ctx *x = ctx;
    if (x->threads > 1 && i == x->fail_work[0]) {
        /* hold the lowest failure back until a higher one has been reported, so that
         * the lower must replace it (bounded: one thread alone would wait forever) */
        double t0 = sevo_now();
        int later;
        do {
#pragma omp atomic read
            later = x->later_failed;
        } while (!later && sevo_now() - t0 < 5.0);
    }
    if (!p || slot != i % POLICY_POOL_CHUNK) {
#pragma omp atomic write
        x->bad_args = 1;
    }
#pragma omp atomic
    x->work_calls[i]++;
    for (int k = 0; k < 3; k++)
        if (i == x->fail_work[k]) {
            if (k > 0) {
#pragma omp atomic write
                x->later_failed = 1;
            }
            return sevo_fail(err, "work failed at %d", i);
        }
    return 0;
}

static int count_done(void *ctx, int i, int slot, sevo_error *err) {
    count_ctx *x = ctx;
    assert_int_equal(slot, i % POLICY_POOL_CHUNK);
    x->done_order[x->n_done++] = i;
    return i == x->fail_done ? sevo_fail(err, "done failed at %d", i) : 0;
}

static int run_counting(count_ctx *x, sevo_error *err) {
    gen_options go;
    gen_options_default(&go);
    policy_pool *pool;
    assert_int_equal(policy_pool_create(&pool, g_m, g_tok, &go, x->threads, x->lanes, err), 0);
    int rc = policy_pool_run(pool, N_CALLS, 0, count_work, count_done, x, err);
    policy_pool_free(pool);
    assert_int_equal(x->bad_args, 0);
    return rc;
}

static void test_every_sample_once_done_in_order(void **state) {
    (void)state;
    for (int run = 0; run < 4; run++) {
        const int threads = 1 + run % 2, lanes = run < 2 ? 1 : POLICY_POOL_MAX_LANES;
        count_ctx *x = calloc(1, sizeof *x);
        assert_non_null(x);
        x->threads = threads;
        x->lanes = lanes;
        x->fail_work[0] = x->fail_work[1] = x->fail_work[2] = x->fail_done = -1;
        sevo_error err;
        assert_int_equal(run_counting(x, &err), 0);
        assert_int_equal(x->n_done, N_CALLS);
        for (int i = 0; i < N_CALLS; i++) {
            assert_int_equal(x->work_calls[i], 1);
            assert_int_equal(x->done_order[i], i);
        }
        free(x);
    }
}

static void test_failure_reports_lowest_sample(void **state) {
    (void)state;
    for (int run = 0; run < 4; run++) {
        const int threads = 1 + run % 2, lanes = run < 2 ? 1 : POLICY_POOL_MAX_LANES;
        count_ctx *x = calloc(1, sizeof *x);
        assert_non_null(x);
        x->threads = threads;
        x->lanes = lanes;
        /* three failures in the second chunk; on two threads the lowest fails last */
        x->fail_work[0] = 97, x->fail_work[1] = 101, x->fail_work[2] = 120;
        x->fail_done = -1;
        sevo_error err;
        assert_int_not_equal(run_counting(x, &err), 0);
        assert_string_equal(err.msg, "work failed at 97");
        /* done saw exactly the samples before the failure, in order */
        assert_int_equal(x->n_done, 97);
        for (int i = 0; i < 97; i++) assert_int_equal(x->done_order[i], i);
        /* nothing after the chunk of the failure was started */
        for (int i = 2 * POLICY_POOL_CHUNK; i < N_CALLS; i++) assert_int_equal(x->work_calls[i], 0);
        /* a failing done stops the run where it fails */
        memset(x, 0, sizeof *x);
        x->threads = threads;
        x->lanes = lanes;
        x->fail_work[0] = 150, x->fail_work[1] = x->fail_work[2] = -1;
        x->fail_done = 30;
        assert_int_not_equal(run_counting(x, &err), 0);
        assert_string_equal(err.msg, "done failed at 30");
        assert_int_equal(x->n_done, 31);
        for (int i = POLICY_POOL_CHUNK; i < N_CALLS; i++) assert_int_equal(x->work_calls[i], 0);
        free(x);
    }
}

/* Samples that fail after generating, while other lanes of their group wait for a
 * step: the lowest failure is reported, done sees exactly the samples before it, and
 * their traces are right. */
static void test_failure_with_lanes_generating(void **state) {
    (void)state;
    gen_options go;
    short_options(&go);
    trace_result *want = malloc(N_SAMPLES * sizeof *want), *got = calloc(N_SAMPLES, sizeof *got);
    assert_true(want && got);
    pool_traces(&go, 1, 1, want);
    for (int threads = 1; threads <= 2; threads++) {
        sevo_error err;
        policy_pool *pool;
        assert_int_equal(policy_pool_create(&pool, g_m, g_tok, &go, threads, POLICY_POOL_MAX_LANES, &err), 0);
        trace_ctx x = {.out = got, .slot = malloc(POLICY_POOL_CHUNK * sizeof(trace_result)), .fail = {23, 9}};
        assert_non_null(x.slot);
        assert_int_not_equal(policy_pool_run(pool, N_SAMPLES, 0, trace_work, trace_done, &x, &err), 0);
        assert_string_equal(err.msg, "trace failed at 9");
        assert_int_equal(x.done_next, 9);
        for (int i = 0; i < 9; i++) assert_true(same_trace(&want[i], &got[i]));
        /* the pool runs again after a failure */
        x.fail[0] = x.fail[1] = -1;
        x.done_next = 0;
        assert_int_equal(policy_pool_run(pool, N_SAMPLES, 0, trace_work, trace_done, &x, &err), 0);
        for (int i = 0; i < N_SAMPLES; i++) assert_true(same_trace(&want[i], &got[i]));
        free(x.slot);
        policy_pool_free(pool);
    }
    free(want);
    free(got);
}

/* Under OMP_THREAD_LIMIT=3 (CMakeLists.txt): a pool of 2 threads x 2 lanes gets a team
 * of 3, groups of 2 and 1; of 2 x 4 lanes, one group of 3. The traces are still each
 * sample's own. */
static void test_pool_short_team(void **state) {
    (void)state;
    gen_options go;
    short_options(&go);
    trace_result *want = malloc(N_SAMPLES * sizeof *want), *got = malloc(N_SAMPLES * sizeof *got);
    assert_true(want && got);
    pool_traces(&go, 1, 1, want);
    for (int lanes = 2; lanes <= POLICY_POOL_MAX_LANES; lanes += 2) {
        pool_traces(&go, 2, lanes, got);
        for (int i = 0; i < N_SAMPLES; i++) assert_true(same_trace(&want[i], &got[i]));
    }
    free(want);
    free(got);
}

/* Greedy next token as the policy picks it: the prompt-only control tokens are never
 * generated. */
static int greedy_next(const vlm_session *s, const prompt_ids *p, int V) {
    const float *l = vlm_session_logits(s);
    int best = -1;
    for (int i = 0; i < V; i++) {
        if (i == p->pad || i == p->bos || i == p->image || i == p->perceive || i == p->text || i == p->refine) continue;
        if (best < 0 || l[i] > l[best]) best = i;
    }
    return best;
}

/* A model taught to reason as π_text (config.json "sevo_text_reasoning") is verified by
 * letting it write its steps after the description until it opens its answer itself;
 * policy_text_answer returns only that answer. Checked against a greedy decode written
 * out here on the session: prompt ending at the description, tokens until <answer>,
 * then the answer until <eos>. */
static void test_text_answer_reasoning(void **state) {
    (void)state;
    sevo_error err;
    vlm *m = g_m;
    const sevo_tokenizer *tok = g_tok;
    assert_int_equal(vlm_get_config(m)->text_reasoning, 1); /* SFT recorded it */
    gen_options go;
    gen_options_default(&go);
    vlm_policy *pol;
    assert_int_equal(policy_create(&pol, m, tok, &go, &err), 0);
    const prompt_ids *p = policy_ids(pol);
    vlm_session *s;
    const int max_len = vlm_get_config(m)->max_position_embeddings, V = vlm_get_config(m)->vocab_size;
    assert_int_equal(vlm_session_create(&s, m, max_len, &err), 0);
    tokseq q;
    tokseq_init(&q);
    int *gen = malloc((size_t)max_len * sizeof *gen), answered = 0;
    assert_non_null(gen);
    for (int i = 0; i < 12; i++) {
        const sevo_sample *x = &g_ds.samples[i];
        assert_non_null(x->perception);
        char got[TRACE_TEXT], want[TRACE_TEXT] = "";
        assert_int_equal(policy_text_answer(pol, x->question, x->perception, got, sizeof got, &err), 0);
        q.n = 0;
        assert_int_equal(prompt_text(&q, p, tok, x->question, x->perception, 1, &err), 0);
        assert_int_equal(q.ids[q.n - 1] == p->answer, 0);
        vlm_session_reset(s);
        assert_int_equal(vlm_session_feed(s, q.ids, q.n, &err), 0);
        int t;
        for (;;) {
            t = greedy_next(s, p, V);
            if (t == p->answer || t == p->eos) break;
            if (vlm_session_len(s) + 1 >= max_len) break; /* the context is full: no answer */
            assert_int_equal(vlm_session_feed(s, &t, 1, &err), 0);
        }
        if (t == p->answer) {
            answered++;
            assert_int_equal(vlm_session_feed(s, &t, 1, &err), 0);
            int n = 0;
            for (int k = 0; k < go.max_new_tokens; k++) {
                int a = greedy_next(s, p, V);
                if (a == p->eos) break;
                gen[n++] = a;
                if (vlm_session_len(s) + 1 >= max_len) break;
                assert_int_equal(vlm_session_feed(s, &a, 1, &err), 0);
            }
            assert_true(tokenizer_decode(tok, gen, n, want, sizeof want, 1) >= 0);
        }
        assert_string_equal(got, want);
    }
    assert_true(answered > 0);
    free(gen);
    tokseq_free(&q);
    vlm_session_free(s);
    policy_free(pol);
}

int main(void) {
    /* CMakeLists.txt runs this binary a second time under OMP_THREAD_LIMIT=3: a team
     * shorter than the pool asks for makes smaller groups; only test_pool_short_team
     * runs then */
    const struct CMUnitTest short_team[] = {cmocka_unit_test(test_pool_short_team)};
    if (getenv("SEVO_TEST_SHORT_TEAM")) return cmocka_run_group_tests(short_team, setup, teardown);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_pool_matches_one_policy),
        cmocka_unit_test(test_text_answer_reasoning),
        cmocka_unit_test(test_sampled_pool_same_for_any_thread_count),
        cmocka_unit_test(test_every_sample_once_done_in_order),
        cmocka_unit_test(test_failure_reports_lowest_sample),
        cmocka_unit_test(test_failure_with_lanes_generating),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
