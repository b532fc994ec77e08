/* test_hsr_ee.c: HSR-EE. The gate's backward against finite differences (with and
 * without dropout), REINFORCE's d log P / d theta against finite differences, AUROC and
 * calibration error on hand-computed cases, the gate file's round trip and its refusals,
 * the exit rule, a rollout whose forced answers and hidden states match the plain trace,
 * and a training run on a small trained world: tau stays put without the adaptive
 * threshold and moves with it, the gate's loss falls, and the files are complete. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "data/dataset.h"
#include "data/image.h"
#include "method/hsr_ee.h"
#include "model/checkpoint.h"
#include "train/optim.h"
#include "../test_util.h"
#include "../test_world.h"

static char g_dir[64];

static int setup(void **state) {
    (void)state;
    return test_world_setup(g_dir, sizeof g_dir, "hsr", 100, 10, 8);
}

static int teardown(void **state) {
    (void)state;
    sevo_remove_tree(g_dir);
    return 0;
}

/* L = sum_i c_i * logit_i for fixed c, with dropout from a fixed stream (same mask on
 * every evaluation). */
static double gate_objective(const hsr_gate *g, const float *x, int n, const float *c, float *act, float *logits,
                             int dropout) {
    sevo_rng r;
    sevo_rng_seed(&r, 99, 1);
    hsr_gate_forward(g, x, n, act, logits, dropout ? &r : NULL);
    double L = 0;
    for (int i = 0; i < n; i++) L += (double)c[i] * logits[i];
    return L;
}

static void check_gate_gradient(int dropout) {
    enum { D = 6, H = 5, N = 4 };
    hsr_gate g;
    sevo_error err;
    assert_int_equal(hsr_gate_init(&g, D, H, 0.7f, 3, &err), 0);
    float x[N * D], c[N], act[N * H], logits[N], scratch[N * H];
    sevo_rng r;
    sevo_rng_seed(&r, 5, 0);
    for (int i = 0; i < N * D; i++) x[i] = sevo_rng_normal(&r);
    for (int i = 0; i < N; i++) c[i] = sevo_rng_normal(&r);
    memset(g.grads, 0, g.n_params * sizeof(float));
    gate_objective(&g, x, N, c, act, logits, dropout);
    hsr_gate_backward(&g, x, N, act, dropout, c, scratch);
    int checked = 0;
    for (size_t p = 0; p < g.n_params; p++) {
        float keep = g.params[p];
        const float h = 1e-3f;
        g.params[p] = keep + h;
        double up = gate_objective(&g, x, N, c, act, logits, dropout);
        g.params[p] = keep - h;
        double down = gate_objective(&g, x, N, c, act, logits, dropout);
        g.params[p] = keep;
        double fd = (up - down) / (2.0 * h);
        /* float forward: a central difference with h = 1e-3 is good to a few 1e-4 (the
         * seeded inputs keep every pre-activation away from the ReLU's kink) */
        if (fabs(fd - g.grads[p]) > 2e-3 * (1.0 + fabs(fd)))
            fail_msg("parameter %zu: analytic %g, finite difference %g (dropout %d)", p, g.grads[p], fd, dropout);
        checked++;
    }
    assert_int_equal(checked, (int)g.n_params);
    hsr_gate_release(&g);
}

static void test_gate_gradient(void **state) {
    (void)state;
    check_gate_gradient(0);
    check_gate_gradient(1);
}

/* sum_j log P(decision_j) as a function of theta. */
static double log_prob(const double *s, const int *d, int n, double theta, double T) {
    double tau = 1.0 / (1.0 + exp(-theta)), L = 0;
    for (int j = 0; j < n; j++) {
        double p = hsr_exit_prob(s[j], tau, T);
        L += d[j] ? log(p) : log(1.0 - p);
    }
    return L;
}

static void test_reinforce_gradient(void **state) {
    (void)state;
    double s[4] = {0.2, 0.55, 0.8, 0.95};
    int d[4] = {0, 0, 1, 0};
    const double T = 0.1;
    /* P(exit) at score = tau is one half */
    assert_true(fabs(hsr_exit_prob(0.7, 0.7, T) - 0.5) < 1e-12);
    assert_true(hsr_exit_prob(0.9, 0.7, T) > 0.85);
    for (double theta = -1.0; theta <= 2.0; theta += 0.75) {
        for (int n = 1; n <= 4; n++) {
            double g = hsr_log_prob_grad_theta(s, d, n, theta, T);
            double h = 1e-5;
            double fd = (log_prob(s, d, n, theta + h, T) - log_prob(s, d, n, theta - h, T)) / (2 * h);
            if (fabs(g - fd) > 1e-6 * (1 + fabs(fd))) fail_msg("theta %g n %d: %g vs %g", theta, n, g, fd);
        }
    }
    /* continuing everywhere: raising tau makes continuing likelier, so the gradient is > 0 */
    int cont[4] = {0, 0, 0, 0};
    assert_true(hsr_log_prob_grad_theta(s, cont, 4, 0.8, T) > 0);
}

static void test_auroc_and_calibration(void **state) {
    (void)state;
    /* the textbook case: of the 4 (positive, negative) pairs, 3 are ordered right */
    double s[4] = {0.1, 0.4, 0.35, 0.8};
    int y[4] = {0, 0, 1, 1};
    assert_true(fabs(binary_auroc(s, y, 4) - 0.75) < 1e-12);
    /* a tie counts one half; one class only is undefined: 0.5 */
    double t[2] = {0.5, 0.5};
    int ty[2] = {1, 0};
    assert_true(fabs(binary_auroc(t, ty, 2) - 0.5) < 1e-12);
    int ones[2] = {1, 1};
    assert_true(fabs(binary_auroc(t, ones, 2) - 0.5) < 1e-12);
    double perfect[4] = {0.9, 0.8, 0.2, 0.1};
    int py[4] = {1, 1, 0, 0};
    assert_true(fabs(binary_auroc(perfect, py, 4) - 1.0) < 1e-12);
    /* ECE, 10 bins: 0.1 (label 0) -> 0.1/4; 0.2 (label 1) -> 0.8/4; {0.9, 0.95} (1, 1) ->
     * |1 - 0.925| * 2/4; total 0.025 + 0.2 + 0.0375 = 0.2625 */
    double e[4] = {0.1, 0.2, 0.9, 0.95};
    int ey[4] = {0, 1, 1, 1};
    assert_true(fabs(expected_calibration_error(e, ey, 4, 10) - 0.2625) < 1e-12);
    /* a score of exactly 1 lands in the last bin */
    double one[1] = {1.0};
    int oy[1] = {1};
    assert_true(fabs(expected_calibration_error(one, oy, 1, 10)) < 1e-12);
}

static void test_gate_file(void **state) {
    (void)state;
    hsr_gate g, h;
    sevo_error err;
    char path[128];
    snprintf(path, sizeof path, "%s/gate.safetensors", g_dir);
    assert_int_equal(hsr_gate_init(&g, 12, 7, 0.7f, 11, &err), 0);
    g.theta_tau = 0.3f;
    assert_int_equal(hsr_gate_save(&g, path, &err), 0);
    assert_int_equal(hsr_gate_load(&h, path, 12, &err), 0);
    assert_int_equal(h.d, 12);
    assert_int_equal(h.h, 7);
    assert_memory_equal(g.params, h.params, g.n_params * sizeof(float));
    assert_true(h.theta_tau == g.theta_tau);
    hsr_gate_release(&h);
    /* the wrong model width, and a tau of 1 */
    assert_int_not_equal(hsr_gate_load(&h, path, 16, &err), 0);
    assert_non_null(strstr(err.msg, "hidden states of size 12, the model's hidden size is 16"));
    assert_null(h.params);
    g.theta_tau = INFINITY;
    assert_int_equal(hsr_gate_save(&g, path, &err), 0);
    assert_int_not_equal(hsr_gate_load(&h, path, 12, &err), 0);
    assert_non_null(strstr(err.msg, "outside (0, 1)"));
    hsr_gate_release(&g);
    assert_int_not_equal(hsr_gate_init(&g, 12, 7, 1.0f, 1, &err), 0);
    assert_non_null(strstr(err.msg, "outside (0, 1)"));
}

static void test_exit_rule(void **state) {
    (void)state;
    hsr_gate g;
    sevo_error err;
    assert_int_equal(hsr_gate_init(&g, 8, 4, 0.5f, 2, &err), 0);
    float hidden[8] = {1, -1, 2, 0.5f, 0, 3, -2, 1}, score;
    float s = hsr_gate_score(&g, hidden);
    hsr_gate_exit rule = {.gate = &g, .tau = s - 1e-4f};
    assert_int_equal(hsr_gate_step(&rule, 1, hidden, &score), 1);
    assert_true(score == s);
    rule.tau = s; /* exit needs score > tau */
    assert_int_equal(hsr_gate_step(&rule, 1, hidden, &score), 0);
    hsr_gate_release(&g);
    /* the widest gate scoring keeps on its stack, and no wider */
    assert_int_equal(hsr_gate_init(&g, 8, HSR_GATE_MAX_HIDDEN, 0.5f, 2, &err), 0);
    assert_true(hsr_gate_score(&g, hidden) > 0.0f);
    hsr_gate_release(&g);
    assert_int_not_equal(hsr_gate_init(&g, 8, HSR_GATE_MAX_HIDDEN + 1, 0.5f, 2, &err), 0);
    assert_non_null(strstr(err.msg, "h in 1..4096"));
}

/* Records what the gate sees at each step, and never exits. */
typedef struct recorder {
    float hidden[TRACE_MAX_STEPS][256];
    int n, D;
} recorder;

static int record_step(void *ctx, int k, const float *hidden, float *score) {
    recorder *r = ctx;
    memcpy(r->hidden[k - 1], hidden, (size_t)r->D * sizeof(float));
    r->n = k;
    *score = 0;
    return 0;
}

static void test_rollout_matches_trace(void **state) {
    (void)state;
    char model[128], data[128];
    snprintf(model, sizeof model, "%s/sft", g_dir);
    snprintf(data, sizeof data, "%s/data/test.jsonl", g_dir);
    vlm *m;
    sevo_tokenizer *tok;
    sevo_error err;
    assert_int_equal(checkpoint_load_model(model, &m, &tok, &err), 0);
    const vlm_config *c = vlm_get_config(m);
    int D = c->text.hidden_size;
    assert_true(D <= 256);
    sevo_dataset ds;
    assert_int_equal(dataset_load_jsonl(&ds, data, 0, &err), 0);
    gen_options go;
    gen_options_default(&go);
    vlm_policy *pol;
    assert_int_equal(policy_create(&pol, m, tok, &go, &err), 0);
    float *img = malloc((size_t)c->num_channels * c->image_size * c->image_size * sizeof(float));
    float *hid = malloc((size_t)5 * D * sizeof(float));
    trajectory_result *tr = malloc(sizeof *tr);
    trace_result *r = malloc(sizeof *r);
    recorder *rec = malloc(sizeof *rec);
    assert_true(img && hid && tr && r && rec);
    int with_steps = 0;
    for (int i = 0; i < ds.n; i++) {
        const sevo_sample *s = &ds.samples[i];
        assert_int_equal(image_load(s->image, c->image_size, c->image_mean, c->image_std, img, &err), 0);
        assert_int_equal(policy_trajectory(pol, img, s->question, 5, hid, tr, &err), 0);
        rec->n = 0;
        rec->D = D;
        assert_int_equal(policy_reason(pol, img, s->question, 5, record_step, rec, r, &err), 0);
        /* the rollout's branches leave the trace untouched: same perception, steps, and
         * the answer after the last step is the trace's answer */
        assert_string_equal(tr->perception, r->perception);
        assert_int_equal(tr->n_steps, r->n_steps);
        assert_int_equal(r->n_scores, r->n_steps);
        for (int k = 0; k < tr->n_steps; k++) assert_string_equal(tr->steps[k], r->steps[k]);
        if (tr->n_steps > 0) {
            assert_string_equal(tr->answers[tr->n_steps - 1], r->answer);
            /* and the gate sees the same hidden states, bit for bit */
            assert_int_equal(rec->n, tr->n_steps);
            for (int k = 0; k < tr->n_steps; k++)
                assert_memory_equal(hid + (size_t)k * D, rec->hidden[k], (size_t)D * sizeof(float));
            with_steps++;
        }
    }
    assert_true(with_steps > 0);
    free(img);
    free(hid);
    free(tr);
    free(r);
    free(rec);
    policy_free(pol);
    dataset_free(&ds);
    vlm_free(m);
    tokenizer_free(tok);
}

/* Reads metrics.jsonl into gate losses, taus, gate learning rates and tau's REINFORCE
 * steps per epoch. */
static int read_metrics(const char *dir, double *loss, double *tau, double *lr, double *tau_lr, int cap) {
    /* the stochastic exit pass runs over the 15 held-out trajectories of 60, 8 rollouts
     * each (hsr_ee.exit_samples) */
    const int rollouts = 15 * 8;
    char path[256], *text = NULL;
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    sevo_error err;
    if (sevo_read_file(path, &text, NULL, &err)) return -1;
    int n = 0;
    for (char *line = strtok(text, "\n"); line && n < cap; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        loss[n] = cJSON_GetObjectItem(j, "gate_loss")->valuedouble;
        tau[n] = cJSON_GetObjectItem(j, "tau")->valuedouble;
        lr[n] = cJSON_GetObjectItem(j, "gate_lr")->valuedouble;
        tau_lr[n] = cJSON_GetObjectItem(j, "tau_lr")->valuedouble;
        assert_non_null(cJSON_GetObjectItem(j, "auroc"));
        assert_non_null(cJSON_GetObjectItem(j, "mean_reward"));
        const cJSON *exits = cJSON_GetObjectItem(j, "exit_steps");
        assert_true(cJSON_GetArraySize(exits) == 5);
        int sum = 0;
        for (int k = 0; k < 5; k++) sum += cJSON_GetArrayItem(exits, k)->valueint;
        assert_int_equal(sum, rollouts);
        cJSON_Delete(j);
        n++;
    }
    free(text);
    return n;
}

static void run_training(const char *out, int adaptive, hsr_train_summary *s) {
    sevo_config cfg;
    config_defaults(&cfg);
    cfg.hsr_ee.adaptive_threshold = adaptive;
    cfg.hsr_ee.confidence_head_hidden_dim = 32;
    cfg.hsr_ee.threshold_lr = 0.05f; /* a short run: a large step so that tau visibly moves */
    char model[128], data[128];
    snprintf(model, sizeof model, "%s/sft", g_dir);
    snprintf(data, sizeof data, "%s/data/train.jsonl", g_dir);
    hsr_train_options o = {.cfg = &cfg, .model_path = model, .data_path = data, .output_dir = out,
                           .num_epochs = 5, .max_samples = 60};
    gen_options_default(&o.gen);
    sevo_error err;
    if (hsr_train_run(&o, s, &err)) fail_msg("hsr_train_run: %s", err.msg);
}

static void test_training(void **state) {
    (void)state;
    char fixed[128], learned[128], path[256];
    snprintf(fixed, sizeof fixed, "%s/hsr_fixed", g_dir);
    snprintf(learned, sizeof learned, "%s/hsr_learned", g_dir);
    hsr_train_summary a, b;
    run_training(fixed, 0, &a);
    run_training(learned, 1, &b);
    const char *files[] = {HSR_GATE_FILE, "metrics.jsonl", "gate_stats.json", "trajectories.jsonl"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", learned, files[i]);
        assert_true(sevo_file_exists(path));
    }
    assert_int_equal(test_count_lines(path), 60); /* one trajectory a sample */
    double loss[8], tau[8], lr[8], tau_lr[8];
    /* epoch 0 (before training) and 5 epochs */
    assert_int_equal(read_metrics(fixed, loss, tau, lr, tau_lr, 8), 6);
    /* the gate's step decays along a cosine to 0 over all 5 epochs of B batches of 64
     * steps: the rate logged for epoch e is the one its last update (number e*B - 1,
     * from 0) used, computed here from the summary's step count (1e-3 is the default
     * hsr_ee.gate_learning_rate) */
    const int B = (a.train_steps + 63) / 64;
    assert_true(B >= 2);
    assert_true(lr[0] == 0.0);
    for (int e = 1; e < 6; e++) assert_true(fabs(lr[e] - lr_at(e * B - 1, 5 * B, 0, 1e-3f)) < 1e-12);
    for (int e = 2; e < 6; e++) assert_true(lr[e] < lr[e - 1]);
    assert_true(lr[5] > 0.0 && lr[5] < 0.15e-3);
    for (int e = 0; e < 6; e++) assert_true(fabs(tau[e] - 0.7) < 1e-6 && tau_lr[e] == 0.0);
    assert_true(a.tau_end == a.tau_start);
    assert_true(loss[5] < loss[0]);
    assert_int_equal(read_metrics(learned, loss, tau, lr, tau_lr, 8), 6);
    assert_true(fabs(b.tau_end - 0.7) > 1e-3);
    /* tau's step follows a cosine over the epochs, one value per epoch (threshold_lr 0.05
     * in run_training): epoch e uses the rate of step e - 1 of 5 */
    assert_true(tau_lr[0] == 0.0);
    for (int e = 1; e < 6; e++) assert_true(fabs(tau_lr[e] - lr_at(e - 1, 5, 0, 0.05f)) < 1e-9);
    assert_true(tau_lr[1] == (double)0.05f && tau_lr[5] < 0.01);
    /* a quarter of the 60 trajectories are held out (every fourth), and their steps are
     * not among the gate's training steps */
    assert_true(b.heldout_steps > 0 && b.train_steps > 2 * b.heldout_steps);
    char *text = NULL;
    sevo_error err;
    snprintf(path, sizeof path, "%s/trajectories.jsonl", learned);
    assert_int_equal(sevo_read_file(path, &text, NULL, &err), 0);
    int held = 0, line = 0, steps_held = 0;
    for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n"), line++) {
        cJSON *j = cJSON_Parse(l);
        assert_non_null(j);
        int h = cJSON_IsTrue(cJSON_GetObjectItem(j, "heldout"));
        assert_int_equal(h, line % 4 == 3);
        held += h;
        if (h) steps_held += cJSON_GetArraySize(cJSON_GetObjectItem(j, "steps"));
        cJSON_Delete(j);
    }
    free(text);
    assert_int_equal(held, 15);
    assert_int_equal(steps_held, b.heldout_steps);
    /* the same rollouts and gate training (tau does not feed back into the gate) */
    assert_true(a.auroc == b.auroc);
    /* the saved gate holds the learned tau */
    hsr_gate g;
    snprintf(path, sizeof path, "%s/%s", learned, HSR_GATE_FILE);
    vlm_config c;
    char cfgp[256];
    snprintf(cfgp, sizeof cfgp, "%s/sft/config.json", g_dir);
    assert_int_equal(vlm_config_load(&c, cfgp, &err), 0);
    assert_int_equal(hsr_gate_load(&g, path, c.text.hidden_size, &err), 0);
    assert_true(fabs(hsr_gate_tau(&g) - b.tau_end) < 1e-6);
    assert_int_equal(g.h, 32);
    hsr_gate_release(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_gradient),
        cmocka_unit_test(test_reinforce_gradient),
        cmocka_unit_test(test_auroc_and_calibration),
        cmocka_unit_test(test_gate_file),
        cmocka_unit_test(test_exit_rule),
        cmocka_unit_test(test_rollout_matches_trace),
        cmocka_unit_test(test_training),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
