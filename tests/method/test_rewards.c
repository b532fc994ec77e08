/* test_rewards.c: the reward utilities of DESIGN §1 against values computed by hand (the
 * arithmetic is in the comments), their edge cases (the last step always exits, ties,
 * gains all above lambda, logits of +-100), the gradients of the gate BCE and of every
 * DPO loss type against central finite differences in double, argument checking, and
 * the regret of Proposition 1 against its bound, both where the premise holds and where
 * it does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "method/rewards.h"

/* Fails with both values when |got - want| > tol (tol absolute). */
#define expect_near(got, want, tol) expect_near_at((got), (want), (tol), #got, __LINE__)

static void expect_near_at(double got, double want, double tol, const char *what, int line) {
    if (!(fabs(got - want) <= tol))
        fail_msg("line %d: %s = %.17g, want %.17g (tol %g)", line, what, got, want, tol);
}

/* Relative check for the finite-difference comparisons: |a - n| <= tol * max(1, |a|, |n|). */
static void expect_grad_close(double analytic, double numeric, double tol, const char *what,
                              int index) {
    const double scale = fmax(1.0, fmax(fabs(analytic), fabs(numeric)));
    if (!(fabs(analytic - numeric) <= tol * scale))
        fail_msg("%s[%d]: analytic %.12g, finite difference %.12g", what, index, analytic,
                 numeric);
}

/* ---- scalar helpers ---- */

static void test_scalar_helpers(void **state) {
    (void)state;
    expect_near(stable_sigmoid(0.0), 0.5, 0.0);
    /* e^-2 = 0.1353352832; 1 / 1.1353352832 = 0.8807970780; sigmoid(-2) = 1 - that. */
    expect_near(stable_sigmoid(2.0), 0.88079707797788, 1e-13);
    expect_near(stable_sigmoid(-2.0), 0.11920292202212, 1e-13);
    /* No overflow at the extremes: exp(800) is inf, so the naive 1/(1+e^-x) at x = -800
     * would still work but e^x/(1+e^x) at +800 would be inf/inf = NaN. */
    expect_near(stable_sigmoid(800.0), 1.0, 0.0);
    expect_near(stable_sigmoid(-800.0), 0.0, 0.0);
    expect_near(stable_sigmoid(INFINITY), 1.0, 0.0);
    expect_near(stable_sigmoid(-INFINITY), 0.0, 0.0);

    /* softplus(0) = log 2; softplus(x) -> x for large x, -> e^x for very negative x. */
    expect_near(softplus(0.0), 0.69314718055995, 1e-13);
    expect_near(softplus(800.0), 800.0, 0.0);
    expect_near(softplus(-800.0), 0.0, 1e-300);
    /* softplus(-30) = log1p(e^-30) ~ e^-30 = 9.3576e-14, to relative precision. */
    expect_near(softplus(-30.0) / exp(-30.0), 1.0, 1e-12);
    expect_near(log_sigmoid(-800.0), -800.0, 0.0);
    expect_near(log_sigmoid(0.0), -0.69314718055995, 1e-13);
    expect_near(log_sigmoid(2.0), log(0.88079707797788), 1e-12);
}

/* ---- HSR reward, MDP step reward ---- */

static void test_hsr_reward_and_step_reward(void **state) {
    (void)state;
    /* 1 + 1 - 0.1*3 = 1.7; 0 + 1 - 0.1*5 = 0.5; 0 + 0 - 0.25*2 = -0.5. */
    expect_near(hsr_reward(1.0, 1.0, 0.1, 3), 1.7, 1e-12);
    expect_near(hsr_reward(0.0, 1.0, 0.1, 5), 0.5, 1e-12);
    expect_near(hsr_reward(0.0, 0.0, 0.25, 2), -0.5, 0.0);
    expect_near(hsr_reward(1.0, 0.0, 0.0, 4), 1.0, 0.0);

    /* Exit pays the trajectory's reward; Continue pays -lambda whatever the outcome. */
    expect_near(mdp_step_reward(HSR_ACTION_EXIT, 1.0, 1.0, 0.1, 3), 1.7, 1e-12);
    expect_near(mdp_step_reward(HSR_ACTION_EXIT, 1.0, 0.0, 0.25, 1), 0.75, 0.0);
    expect_near(mdp_step_reward(HSR_ACTION_CONTINUE, 1.0, 1.0, 0.1, 3), -0.1, 0.0);
    expect_near(mdp_step_reward(HSR_ACTION_CONTINUE, 0.0, 0.0, 0.25, 1), -0.25, 0.0);
}

/* ---- Bellman Q-values ---- */

static void test_bellman_hand(void **state) {
    (void)state;
    /* K = 3, lambda = 0.25 (binary-exact numbers, so ties are exact):
     *   q_exit = value - 0.25k = {0.5-0.25, 1.5-0.5, 2.0-0.75} = {0.25, 1.0, 1.25}
     *   q_cont[3] = -inf (the horizon)
     *   q_cont[2] = -0.25 + max(q_exit[3], q_cont[3]) = -0.25 + 1.25 = 1.0
     *   q_cont[1] = -0.25 + max(q_exit[2], q_cont[2]) = -0.25 + max(1.0, 1.0) = 0.75 */
    const double value[3] = {0.5, 1.5, 2.0};
    double q_exit[3], q_cont[3];
    bellman_q_values(value, 3, 0.25, q_exit, q_cont);
    expect_near(q_exit[0], 0.25, 0.0);
    expect_near(q_exit[1], 1.0, 0.0);
    expect_near(q_exit[2], 1.25, 0.0);
    expect_near(q_cont[0], 0.75, 0.0);
    expect_near(q_cont[1], 1.0, 0.0);
    /* The last step must exit: Continue is impossible there. */
    assert_true(isinf(q_cont[2]) && q_cont[2] < 0.0);
    assert_true(q_exit[2] > q_cont[2]);

    /* K = 1: only Exit exists. */
    const double one[1] = {1.0};
    bellman_q_values(one, 1, 0.1, q_exit, q_cont);
    expect_near(q_exit[0], 0.9, 1e-15);
    assert_true(isinf(q_cont[0]) && q_cont[0] < 0.0);
}

/* The literal Eq. 14-15 and the stopping rule of Eq. 18 differ by one lambda per step
 * (documented in rewards.h); pin the literal reading so a change is deliberate.
 * lambda = 0.25, values {1.0, 1.375}:
 *   q_exit = {0.75, 0.875}; q_cont[1] = -0.25 + 0.875 = 0.625 < 0.75: Q exits at 1;
 *   Eq. 18: U_1 = 0.75 < U_2 = 1.375 - 0.5 = 0.875: the stopping rule continues. */
static void test_bellman_literal_penalty(void **state) {
    (void)state;
    const double value[2] = {1.0, 1.375};
    double q_exit[2], q_cont[2];
    bellman_q_values(value, 2, 0.25, q_exit, q_cont);
    expect_near(q_cont[0], 0.625, 0.0);
    assert_true(q_exit[0] > q_cont[0]);
    assert_int_equal(hsr_should_exit(1.0, 1.375, 0.25, 1, 2), 0);

    /* On a longer horizon the recursion equals its closed form:
     * q_cont[k] = max_{j > k} (q_exit[j] - lambda*(j - k)). */
    const double v[6] = {0.3, 0.9, 0.2, 1.7, 1.1, 1.9};
    const double lambda = 0.15;
    double qe[6], qc[6];
    bellman_q_values(v, 6, lambda, qe, qc);
    for (int k = 1; k < 6; k++) {
        double best = -INFINITY;
        for (int j = k + 1; j <= 6; j++)
            best = fmax(best, v[j - 1] - lambda * j - lambda * (j - k));
        expect_near(qc[k - 1], best, 1e-12);
    }
    /* With lambda = 0 Continue is worth the best later exit: here step 6's 1.9. */
    bellman_q_values(v, 6, 0.0, qe, qc);
    for (int k = 1; k < 6; k++) expect_near(qc[k - 1], 1.9, 0.0);
}

/* ---- myopic utility and the stopping rule ---- */

static void test_myopic_and_stopping(void **state) {
    (void)state;
    expect_near(myopic_utility(0.8, 0.1, 3), 0.5, 1e-12); /* 0.8 - 0.3 */
    expect_near(myopic_utility(0.5, 0.25, 2), 0.0, 0.0);

    /* k = 2 of 5, lambda = 0.25, p_2 = 0.5, so U_2 = 0:
     *   E[p_3] = 0.875: U_3 = 0.875 - 0.75 = 0.125 > 0   -> continue
     *   E[p_3] = 0.75:  U_3 = 0 = U_2 (a tie)             -> exit
     *   E[p_3] = 0.625: U_3 = -0.125 < 0                  -> exit */
    assert_int_equal(hsr_should_exit(0.5, 0.875, 0.25, 2, 5), 0);
    assert_int_equal(hsr_should_exit(0.5, 0.75, 0.25, 2, 5), 1);
    assert_int_equal(hsr_should_exit(0.5, 0.625, 0.25, 2, 5), 1);

    /* The last step always exits, even when another step would pay. */
    assert_int_equal(hsr_should_exit(0.0, 1.0, 0.1, 5, 5), 1);
    assert_int_equal(hsr_should_exit(0.0, 1.0, 0.1, 6, 5), 1);
    assert_int_equal(hsr_should_exit(0.0, 1.0, 0.1, 4, 5), 0);

    /* Without a length penalty only a strict expected gain continues. */
    assert_int_equal(hsr_should_exit(0.6, 0.7, 0.0, 1, 5), 0);
    assert_int_equal(hsr_should_exit(0.6, 0.6, 0.0, 1, 5), 1);
}

/* ---- gate BCE ---- */

static void test_gate_bce_hand(void **state) {
    (void)state;
    /* logits {0, 2, -1}, labels {1, 0, 0}:
     *   z=0,y=1:  softplus(0) = log 2 = 0.693147
     *   z=2,y=0:  softplus(2) = 2 + log1p(e^-2) = 2 + log(1.135335) = 2.126928
     *   z=-1,y=0: softplus(-1) = log1p(e^-1) = log(1.367879) = 0.313262
     *   mean = 3.133337 / 3 = 1.044446
     * dL/dz = (sigmoid(z) - y)/3: (0.5-1)/3 = -0.166667, 0.880797/3 = 0.293599,
     * sigmoid(-1)/3 = 0.268941/3 = 0.089647. */
    const double z[3] = {0.0, 2.0, -1.0}, y[3] = {1.0, 0.0, 0.0};
    double g[3];
    expect_near(gate_bce_with_logits(z, y, 3, g), 1.0444456263737, 1e-12);
    expect_near(g[0], -0.16666666666667, 1e-13);
    expect_near(g[1], 0.29359902599263, 1e-13);
    expect_near(g[2], 0.08964714045667, 1e-13);
    expect_near(gate_bce_with_logits(z, y, 3, NULL), 1.0444456263737, 1e-12);

    /* The score form agrees when no score is near the clamp. */
    double s[3];
    for (int i = 0; i < 3; i++) s[i] = stable_sigmoid(z[i]);
    expect_near(gate_bce_from_scores(s, y, 3), 1.0444456263737, 1e-12);

    /* An empty batch costs nothing (and touches nothing). */
    expect_near(gate_bce_with_logits(z, y, 0, g), 0.0, 0.0);
    expect_near(gate_bce_from_scores(s, y, 0), 0.0, 0.0);
}

static void test_gate_bce_extreme_logits(void **state) {
    (void)state;
    /* Right and confident: softplus(-100) = e^-100 = 3.72e-44 each; wrong and confident:
     * softplus(100) = 100 each. Mean of {e^-100, e^-100, 100, 100} = 50. */
    const double z[4] = {100.0, -100.0, 100.0, -100.0}, y[4] = {1.0, 0.0, 0.0, 1.0};
    double g[4];
    const double loss = gate_bce_with_logits(z, y, 4, g);
    assert_true(isfinite(loss));
    expect_near(loss, 50.0, 1e-12);
    expect_near(g[0], 0.0, 1e-40);
    expect_near(g[1], 0.0, 1e-40);
    expect_near(g[2], 0.25, 0.0);
    expect_near(g[3], -0.25, 0.0);

    /* A single right answer at +-100 costs a positive e^-100, not a cancelled 0. */
    const double one_z[1] = {100.0}, one_y[1] = {1.0};
    const double tiny = gate_bce_with_logits(one_z, one_y, 1, NULL);
    assert_true(tiny > 0.0);
    expect_near(tiny / exp(-100.0), 1.0, 1e-12);

    /* Far beyond exp's range the loss is still finite and exact. */
    const double huge_z[2] = {1000.0, -1000.0}, huge_y[2] = {0.0, 0.0};
    double hg[2];
    expect_near(gate_bce_with_logits(huge_z, huge_y, 2, hg), 500.0, 0.0);
    expect_near(hg[0], 0.5, 0.0);
    expect_near(hg[1], 0.0, 0.0);

    /* The score form clamps: a confident wrong score of exactly 1 costs
     * -log(1e-7) = 16.118096 (up to the rounding of 1 - 1e-7 in double, ~5e-10), and a
     * right score of 0 costs -log1p(-1e-7) ~ 1e-7. */
    const double s[2] = {1.0, 0.0}, sy[2] = {0.0, 0.0};
    expect_near(gate_bce_from_scores(s, sy, 1), 16.11809565095832, 1e-8);
    expect_near(gate_bce_from_scores(s + 1, sy + 1, 1), 1.00000005e-7, 1e-15);
}

static void test_gate_bce_gradient_fd(void **state) {
    (void)state;
    /* Hard and soft labels, logits across the useful range. */
    double z[7] = {-3.1, -0.7, 0.0, 0.4, 1.9, 6.5, -8.2};
    const double y[7] = {0.0, 1.0, 1.0, 0.0, 0.3, 1.0, 0.85};
    double g[7];
    gate_bce_with_logits(z, y, 7, g);
    const double step = 1e-5;
    for (int i = 0; i < 7; i++) {
        const double keep = z[i];
        z[i] = keep + step;
        const double up = gate_bce_with_logits(z, y, 7, NULL);
        z[i] = keep - step;
        const double down = gate_bce_with_logits(z, y, 7, NULL);
        z[i] = keep;
        expect_grad_close(g[i], (up - down) / (2.0 * step), 1e-8, "gate dL/dz", i);
    }
}

/* ---- DPO ---- */

/* The pairs of the hand cases, beta = 0.5:
 *   pair 0: pi_c=-10, pi_r=-12, ref_c=-11, ref_r=-11.5: chosen ratio 1, rejected ratio
 *           -0.5, h = 1.5, f = 0.75; rewards 0.5 and -0.25.
 *   pair 1: pi_c=-20, pi_r=-18, ref_c=-19, ref_r=-19: ratios -1 and 1, h = -2, f = -1;
 *           rewards -0.5 and 0.5.
 * e^-0.75 = 0.4723666, so sigmoid(0.75) = 1/1.4723666 = 0.6791787 and
 * softplus(-0.75) = log 1.4723666 = 0.3868710, softplus(0.75) = 0.75 + 0.3868710. */
static const double PC[2] = {-10.0, -20.0}, PR[2] = {-12.0, -18.0};
static const double RC[2] = {-11.0, -19.0}, RR[2] = {-11.5, -19.0};

static dpo_batch hand_batch(int n) {
    dpo_batch b = {PC, PR, RC, RR, n};
    return b;
}

static void test_dpo_sigmoid_hand(void **state) {
    (void)state;
    sevo_error err = {{0}};
    dpo_batch b = hand_batch(1);
    dpo_settings s = {0.5, 0.0, DPO_LOSS_SIGMOID, 0.0};
    double gc[2], gr[2];
    dpo_metrics m;
    assert_int_equal(dpo_loss(&b, &s, gc, gr, &m, &err), 0);
    /* loss = -log sigmoid(0.75) = softplus(-0.75) = 0.3868710;
     * dL/dpi_c = beta (sigmoid(f) - 1) = 0.5 * (0.6791787 - 1) = -0.1604107. */
    expect_near(m.loss, 0.38687100611490, 1e-12);
    expect_near(gc[0], -0.16041065041230, 1e-12);
    expect_near(gr[0], 0.16041065041230, 1e-12);
    expect_near(m.rewards_chosen, 0.5, 0.0);
    expect_near(m.rewards_rejected, -0.25, 0.0);
    expect_near(m.rewards_accuracies, 1.0, 0.0);
    expect_near(m.rewards_margins, 0.75, 0.0);
    expect_near(m.logps_chosen, -10.0, 0.0);
    expect_near(m.logps_rejected, -12.0, 0.0);
    expect_near(m.grad_weight, 0.32082130082461, 1e-12); /* 1 - 0.6791787 */

    /* Both pairs with label smoothing 0.1:
     *   pair 0: 0.9 softplus(-0.75) + 0.1 softplus(0.75)
     *         = 0.9 * 0.3868710 + 0.1 * 1.1368710 = 0.3481839 + 0.1136871 = 0.4618710
     *   pair 1: 0.9 softplus(1) + 0.1 softplus(-1)
     *         = 0.9 * 1.3132617 + 0.1 * 0.3132617 = 1.1819355 + 0.0313262 = 1.2132617
     *   mean = 0.8375663
     * dL/dpi_c = beta (sigmoid(f) - 0.9) / 2:
     *   pair 0: 0.25 * (0.6791787 - 0.9) = -0.0552053
     *   pair 1: 0.25 * (sigmoid(-1) - 0.9) = 0.25 * (0.2689414 - 0.9) = -0.1577646
     * metrics: rewards_chosen (0.5 - 0.5)/2 = 0, rewards_rejected (-0.25 + 0.5)/2 = 0.125,
     * accuracy 1/2, margins (0.75 - 1)/2 = -0.125, logps (-10-20)/2 and (-12-18)/2,
     * grad_weight (0.3208213 + sigmoid(1) = 0.7310586)/2 = 0.5259399. */
    b = hand_batch(2);
    s.label_smoothing = 0.1;
    assert_int_equal(dpo_loss(&b, &s, gc, gr, &m, &err), 0);
    expect_near(m.loss, 0.83756634681656, 1e-12);
    expect_near(gc[0], -0.05520532520615, 1e-12);
    expect_near(gc[1], -0.15776464465750, 1e-12);
    expect_near(gr[0], 0.05520532520615, 1e-12);
    expect_near(gr[1], 0.15776464465750, 1e-12);
    expect_near(m.rewards_chosen, 0.0, 0.0);
    expect_near(m.rewards_rejected, 0.125, 0.0);
    expect_near(m.rewards_accuracies, 0.5, 0.0);
    expect_near(m.rewards_margins, -0.125, 0.0);
    expect_near(m.logps_chosen, -15.0, 0.0);
    expect_near(m.logps_rejected, -15.0, 0.0);
    expect_near(m.grad_weight, 0.52593993972731, 1e-12);

    /* Gradients and metrics are optional. */
    assert_int_equal(dpo_loss(&b, &s, NULL, NULL, NULL, &err), 0);
}

static void test_dpo_ipo_hinge_hand(void **state) {
    (void)state;
    sevo_error err = {{0}};
    dpo_batch b = hand_batch(1);
    double gc[1], gr[1];
    dpo_metrics m;

    /* IPO, beta = 0.5: target 1/(2 beta) = 1, h = 1.5: loss (1.5-1)^2 = 0.25,
     * dL/dpi_c = 2 (1.5 - 1) = 1. */
    dpo_settings s = {0.5, 0.0, DPO_LOSS_IPO, 0.0};
    assert_int_equal(dpo_loss(&b, &s, gc, gr, &m, &err), 0);
    expect_near(m.loss, 0.25, 0.0);
    expect_near(gc[0], 1.0, 0.0);
    expect_near(gr[0], -1.0, 0.0);
    /* IPO, beta = 1: target 0.5, loss (1.5-0.5)^2 = 1, gradient 2: IPO pushes a margin
     * that is too large back down, unlike DPO. */
    s.beta = 1.0;
    assert_int_equal(dpo_loss(&b, &s, gc, gr, &m, &err), 0);
    expect_near(m.loss, 1.0, 0.0);
    expect_near(gc[0], 2.0, 0.0);

    /* Hinge, beta = 0.5: f = 0.75 < 1: loss 1 - 0.75 = 0.25, dL/dpi_c = -beta = -0.5. */
    s = (dpo_settings){0.5, 0.0, DPO_LOSS_HINGE, 0.0};
    assert_int_equal(dpo_loss(&b, &s, gc, gr, &m, &err), 0);
    expect_near(m.loss, 0.25, 0.0);
    expect_near(gc[0], -0.5, 0.0);
    expect_near(gr[0], 0.5, 0.0);
    /* Hinge, beta = 1: f = 1.5 >= 1: satisfied, loss 0, gradient 0. */
    s.beta = 1.0;
    assert_int_equal(dpo_loss(&b, &s, gc, gr, &m, &err), 0);
    expect_near(m.loss, 0.0, 0.0);
    expect_near(gc[0], 0.0, 0.0);
    expect_near(gr[0], 0.0, 0.0);
    /* The metrics do not depend on the loss type: grad_weight = 1 - sigmoid(1.5). */
    expect_near(m.grad_weight, 1.0 - stable_sigmoid(1.5), 1e-15);
    expect_near(m.rewards_margins, 1.5, 0.0);

    /* Exactly at the kink, f = 0.5 * ((-10+10) - (-12+10)) = 1: loss 0 and, as for ReLU
     * at 0, gradient 0. */
    const double pc[1] = {-10.0}, pr[1] = {-12.0}, ref[1] = {-10.0};
    const dpo_batch kink = {pc, pr, ref, ref, 1};
    s.beta = 0.5;
    assert_int_equal(dpo_loss(&kink, &s, gc, gr, &m, &err), 0);
    expect_near(m.rewards_margins, 1.0, 0.0);
    expect_near(m.loss, 0.0, 0.0);
    expect_near(gc[0], 0.0, 0.0);
}

/* At the start of training the policy is the reference: f = 0 for every pair, so the
 * sigmoid loss is log 2 whatever the smoothing ((1-eps) log 2 + eps log 2), no pair is
 * "accurate" yet (a tie is not a win), and every pair has gradient weight 1/2. */
static void test_dpo_policy_equals_reference(void **state) {
    (void)state;
    sevo_error err = {{0}};
    const double c[3] = {-5.0, -7.5, -40.0}, r[3] = {-6.0, -3.0, -41.0};
    dpo_batch b = {c, r, c, r, 3};
    dpo_settings s = {0.1, 0.2, DPO_LOSS_SIGMOID, 0.0};
    double gc[3];
    dpo_metrics m;
    assert_int_equal(dpo_loss(&b, &s, gc, NULL, &m, &err), 0);
    expect_near(m.loss, log(2.0), 1e-15);
    expect_near(m.rewards_accuracies, 0.0, 0.0);
    expect_near(m.rewards_margins, 0.0, 0.0);
    expect_near(m.grad_weight, 0.5, 0.0);
    /* beta (1/2 - (1 - eps)) / n = 0.1 * (0.5 - 0.8) / 3 = -0.01 */
    for (int i = 0; i < 3; i++) expect_near(gc[i], -0.01, 1e-15);
}

static void test_dpo_extreme_margins(void **state) {
    (void)state;
    sevo_error err = {{0}};
    /* h = +-1000 with beta = 1: sigmoid(+-1000) is 1 / 0 in double and log(0) = -inf,
     * but softplus keeps the loss exact: softplus(-1000) = 0, softplus(1000) = 1000. */
    const double pc[2] = {0.0, -1000.0}, pr[2] = {-1000.0, 0.0}, zero[2] = {0.0, 0.0};
    dpo_batch b = {pc, pr, zero, zero, 2};
    dpo_settings s = {1.0, 0.0, DPO_LOSS_SIGMOID, 0.0};
    double gc[2], gr[2];
    dpo_metrics m;
    assert_int_equal(dpo_loss(&b, &s, gc, gr, &m, &err), 0);
    assert_true(isfinite(m.loss));
    expect_near(m.loss, 500.0, 0.0); /* (0 + 1000) / 2 */
    expect_near(gc[0], 0.0, 0.0);
    expect_near(gc[1], -0.5, 0.0); /* beta (0 - 1) / 2 */
    expect_near(m.grad_weight, 0.5, 0.0);
    /* Smoothed: pair 0 costs 0.1 * 1000, pair 1 costs 0.9 * 1000: mean 500 again. */
    s.label_smoothing = 0.1;
    assert_int_equal(dpo_loss(&b, &s, gc, gr, &m, &err), 0);
    expect_near(m.loss, 500.0, 1e-9);
    expect_near(gc[0], 0.05, 1e-15); /* (1 - 0.9) / 2 */
}

/* The loss as a function of one perturbed policy log-prob, for finite differences. */
static double dpo_mean_loss(const dpo_batch *b, const dpo_settings *s) {
    sevo_error err = {{0}};
    dpo_metrics m;
    if (dpo_loss(b, s, NULL, NULL, &m, &err) != 0) fail_msg("dpo_loss: %s", err.msg);
    return m.loss;
}

static void check_dpo_gradient(dpo_settings s, const char *what) {
    /* Five pairs with margins on both sides of 0; for the hinge, every f = beta*h keeps
     * at least 0.05 from the kink at 1 so that the differences do not straddle it. */
    double pc[5] = {-12.3, -4.1, -30.0, -7.7, -19.2};
    double pr[5] = {-13.0, -3.2, -28.5, -9.9, -19.0};
    const double rc[5] = {-12.0, -4.6, -29.1, -8.0, -18.4};
    const double rr[5] = {-12.2, -3.5, -29.3, -9.1, -17.9};
    dpo_batch b = {pc, pr, rc, rr, 5};
    double gc[5], gr[5];
    sevo_error err = {{0}};
    if (dpo_loss(&b, &s, gc, gr, NULL, &err) != 0) fail_msg("%s: %s", what, err.msg);
    const double step = 1e-6;
    for (int i = 0; i < 5; i++) {
        /* dL/dpi_c = -dL/dpi_r, times 1 + lambda where DPO-Positive's penalty is on */
        const double chosen_factor = s.dpop_lambda > 0.0 && pc[i] < rc[i] ? 1.0 + s.dpop_lambda : 1.0;
        expect_near(gc[i], -chosen_factor * gr[i], 1e-15);
        if (s.loss_type == DPO_LOSS_HINGE) {
            const double f = s.beta * ((pc[i] - rc[i]) - (pr[i] - rr[i]));
            assert_true(fabs(f - 1.0) > 0.05);
        }
        double *arrays[2] = {pc, pr};
        const double *grads[2] = {gc, gr};
        for (int a = 0; a < 2; a++) {
            const double keep = arrays[a][i];
            arrays[a][i] = keep + step;
            const double up = dpo_mean_loss(&b, &s);
            arrays[a][i] = keep - step;
            const double down = dpo_mean_loss(&b, &s);
            arrays[a][i] = keep;
            char name[96];
            snprintf(name, sizeof name, "%s d/d%s", what, a == 0 ? "pi_chosen" : "pi_rejected");
            expect_grad_close(grads[a][i], (up - down) / (2.0 * step), 1e-7, name, i);
        }
    }
}

/* DPO-Positive on the hand pairs, beta 0.5, lambda 2: pair 0's chosen ratio is +1 (no
 * penalty: h = 1.5, f = 0.75 as plain DPO), pair 1's is -1 (h = -1 - 1 + 2 * -1 = -4,
 * f = -2). loss = (softplus(-0.75) + softplus(2)) / 2 = (0.3868710 + 2.1269280) / 2 =
 * 1.2568995; dL/dh = beta (sigmoid(f) - 1) / 2: pair 0 -0.0802053, pair 1
 * 0.25 * (0.1192029 - 1) = -0.2201993, which pair 1's chosen takes times 1 + lambda
 * (-0.6605978) and its rejected with the sign flipped (0.2201993). The rewards and
 * margins logged stay plain DPO's. */
static void test_dpo_positive_hand(void **state) {
    (void)state;
    sevo_error err = {{0}};
    dpo_batch b = hand_batch(2);
    dpo_settings s = {0.5, 0.0, DPO_LOSS_SIGMOID, 2.0};
    double gc[2], gr[2];
    dpo_metrics m;
    assert_int_equal(dpo_loss(&b, &s, gc, gr, &m, &err), 0);
    expect_near(m.loss, 1.25689950857894, 1e-12);
    expect_near(gc[0], -0.08020532520615, 1e-12);
    expect_near(gr[0], 0.08020532520615, 1e-12);
    expect_near(gc[1], -0.66059780848341, 1e-12);
    expect_near(gr[1], 0.22019926949447, 1e-12);
    expect_near(m.rewards_margins, -0.125, 0.0);
    expect_near(m.grad_weight, 0.60080918940124, 1e-12);
    s.dpop_lambda = -1.0;
    assert_int_equal(dpo_loss(&b, &s, gc, gr, &m, &err), -1);
    assert_non_null(strstr(err.msg, "dpop_lambda"));
}

static void test_dpo_gradients_fd(void **state) {
    (void)state;
    check_dpo_gradient((dpo_settings){0.1, 0.0, DPO_LOSS_SIGMOID, 0.0}, "sigmoid");
    check_dpo_gradient((dpo_settings){2.0, 0.0, DPO_LOSS_SIGMOID, 0.0}, "sigmoid beta 2");
    check_dpo_gradient((dpo_settings){0.5, 0.2, DPO_LOSS_SIGMOID, 0.0}, "sigmoid eps 0.2");
    check_dpo_gradient((dpo_settings){0.3, 0.0, DPO_LOSS_IPO, 0.0}, "ipo");
    check_dpo_gradient((dpo_settings){1.0, 0.0, DPO_LOSS_HINGE, 0.0}, "hinge");
    check_dpo_gradient((dpo_settings){0.4, 0.0, DPO_LOSS_HINGE, 0.0}, "hinge beta 0.4");
    /* DPO-Positive: the chosen ratios are -0.3, 0.5, -0.9, 0.3, -0.8, so the penalty is on
     * for three pairs and off for two, none within a step of its kink at 0 */
    check_dpo_gradient((dpo_settings){0.1, 0.0, DPO_LOSS_SIGMOID, 5.0}, "dpop sigmoid");
    check_dpo_gradient((dpo_settings){0.3, 0.0, DPO_LOSS_IPO, 2.0}, "dpop ipo");
}

static void test_dpo_rejects_bad_settings(void **state) {
    (void)state;
    const double x[1] = {-1.0};
    const dpo_batch good = {x, x, x, x, 1};
    const dpo_settings ok = {0.1, 0.0, DPO_LOSS_SIGMOID, 0.0};
    struct {
        dpo_batch b;
        dpo_settings s;
        const char *word; /* what the message must name */
    } bad[] = {
        {{x, x, x, x, 0}, ok, "empty"},
        {{x, NULL, x, x, 1}, ok, "NULL"},
        {good, {0.0, 0.0, DPO_LOSS_SIGMOID, 0.0}, "beta"},
        {good, {-0.1, 0.0, DPO_LOSS_SIGMOID, 0.0}, "beta"},
        {good, {NAN, 0.0, DPO_LOSS_SIGMOID, 0.0}, "beta"},
        {good, {INFINITY, 0.0, DPO_LOSS_SIGMOID, 0.0}, "beta"},
        {good, {0.1, 0.5, DPO_LOSS_SIGMOID, 0.0}, "label_smoothing"},
        {good, {0.1, -0.01, DPO_LOSS_SIGMOID, 0.0}, "label_smoothing"},
        {good, {0.1, NAN, DPO_LOSS_SIGMOID, 0.0}, "label_smoothing"},
        {good, {0.1, 0.1, DPO_LOSS_IPO, 0.0}, "ipo"},
        {good, {0.1, 0.1, DPO_LOSS_HINGE, 0.0}, "hinge"},
        {good, {0.1, 0.0, (dpo_loss_type)7, 0.0}, "loss type"},
        {good, {0.1, 0.0, DPO_LOSS_SIGMOID, NAN}, "dpop_lambda"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sevo_error err = {{0}};
        double gc[1] = {123.0}, gr[1] = {456.0};
        dpo_metrics m = {.loss = 789.0};
        if (dpo_loss(&bad[i].b, &bad[i].s, gc, gr, &m, &err) != -1)
            fail_msg("case %zu (%s) was accepted", i, bad[i].word);
        if (!strstr(err.msg, bad[i].word))
            fail_msg("case %zu: message \"%s\" does not name %s", i, err.msg, bad[i].word);
        /* A refused call writes nothing. */
        assert_true(gc[0] == 123.0 && gr[0] == 456.0 && m.loss == 789.0);
    }
    sevo_error err = {{0}};
    assert_int_equal(dpo_loss(NULL, &ok, NULL, NULL, NULL, &err), -1);
    assert_int_equal(dpo_loss(&good, NULL, NULL, NULL, NULL, &err), -1);
    /* The largest allowed smoothing and every type with eps = 0 are fine. */
    assert_int_equal(dpo_loss(&good, &(dpo_settings){0.1, 0.49, DPO_LOSS_SIGMOID, 0.0}, NULL,
                              NULL, NULL, &err), 0);
    assert_int_equal(dpo_loss(&good, &(dpo_settings){0.1, 0.0, DPO_LOSS_IPO, 0.0}, NULL, NULL,
                              NULL, &err), 0);
}

static void test_dpo_loss_type_names(void **state) {
    (void)state;
    assert_int_equal(dpo_loss_type_from_name("sigmoid"), DPO_LOSS_SIGMOID);
    assert_int_equal(dpo_loss_type_from_name("ipo"), DPO_LOSS_IPO);
    assert_int_equal(dpo_loss_type_from_name("hinge"), DPO_LOSS_HINGE);
    assert_int_equal(dpo_loss_type_from_name("robust"), -1);
    assert_int_equal(dpo_loss_type_from_name("Sigmoid"), -1);
    assert_int_equal(dpo_loss_type_from_name(""), -1);
    assert_int_equal(dpo_loss_type_from_name(NULL), -1);
    for (int t = DPO_LOSS_SIGMOID; t <= DPO_LOSS_HINGE; t++)
        assert_int_equal(dpo_loss_type_from_name(dpo_loss_type_name((dpo_loss_type)t)), t);
    assert_string_equal(dpo_loss_type_name((dpo_loss_type)9), "unknown");
}

static void test_dpo_gradient_magnitude(void **state) {
    (void)state;
    /* beta = 0.1: Delta = 0: 0.1 * 0.5 = 0.05; Delta = 10: 0.1 (1 - sigmoid(1)) =
     * 0.1 * 0.2689414 = 0.02689414; Delta = -10: 0.1 sigmoid(1) = 0.07310586. */
    expect_near(dpo_gradient_magnitude(0.0, 0.1), 0.05, 1e-16);
    expect_near(dpo_gradient_magnitude(10.0, 0.1), 0.026894142137, 1e-12);
    expect_near(dpo_gradient_magnitude(-10.0, 0.1), 0.073105857863, 1e-12);
    /* Saturation: beta for a badly wrong pair, 0 (not negative, not NaN) for a learned one. */
    expect_near(dpo_gradient_magnitude(-1e5, 0.1), 0.1, 0.0);
    const double learned = dpo_gradient_magnitude(1e5, 0.1);
    assert_true(learned >= 0.0 && learned < 1e-300);

    /* It is |dL/dpi_c| of the plain sigmoid loss on one pair with margin Delta. */
    const double pc[1] = {-3.0}, pr[1] = {-7.0}, ref[1] = {-5.0};
    dpo_batch b = {pc, pr, ref, ref, 1}; /* Delta = 2 - (-2) = 4 */
    double gc[1];
    sevo_error err = {{0}};
    assert_int_equal(dpo_loss(&b, &(dpo_settings){0.3, 0.0, DPO_LOSS_SIGMOID, 0.0}, gc, NULL,
                              NULL, &err), 0);
    expect_near(-gc[0], dpo_gradient_magnitude(4.0, 0.3), 1e-15);
}

/* ---- regret bound of Proposition 1 ---- */

static regret_bound_result regret(const double *gain, int K, double lambda, double eps) {
    regret_bound_result r;
    sevo_error err = {{0}};
    if (regret_bound(gain, K, lambda, eps, &r, &err) != 0) fail_msg("regret_bound: %s", err.msg);
    return r;
}

static void test_regret_hand(void **state) {
    (void)state;
    /* Diminishing gains {0.5, 0.25, 0.1875, 0.0625}, lambda = 0.125, eps = 0.0625 (all
     * binary-exact, so the |Delta - lambda| <= eps boundary is exact):
     *   J = {0, 0.375, 0.5, 0.5625, 0.5}: k* = 3, J(k*) = 0.5625
     *   k_hat = 4 (first Delta <= 0.125 is 0.0625), J(k_hat) = 0.5: regret 0.0625
     *   |Delta - lambda| = {0.375, 0.125, 0.0625, 0.0625}: W = 2, bound = 0.125 */
    const double gain[4] = {0.5, 0.25, 0.1875, 0.0625};
    regret_bound_result r = regret(gain, 4, 0.125, 0.0625);
    assert_int_equal(r.k_star, 3);
    assert_int_equal(r.k_hat, 4);
    assert_int_equal(r.w_eps, 2);
    expect_near(r.j_star, 0.5625, 0.0);
    expect_near(r.j_hat, 0.5, 0.0);
    expect_near(r.bound, 0.125, 0.0);
    expect_near(r.actual_regret, 0.0625, 0.0);
    assert_true(r.actual_regret <= r.bound);
}

static void test_regret_edge_cases(void **state) {
    (void)state;
    /* Every gain above lambda: the greedy rule runs to K, which is optimal.
     * J = {0, 0.375, 0.5, 0.5625}: k* = 3 = k_hat; only 0.1875 is within 0.0625. */
    const double above[3] = {0.5, 0.25, 0.1875};
    regret_bound_result r = regret(above, 3, 0.125, 0.0625);
    assert_int_equal(r.k_star, 3);
    assert_int_equal(r.k_hat, 3);
    assert_int_equal(r.w_eps, 1);
    expect_near(r.actual_regret, 0.0, 0.0);
    expect_near(r.bound, 0.0625, 0.0);

    /* A gain equal to lambda: J = {0, 0.375, 0.375, 0.25} has a flat top; k* is the
     * first maximiser (1), k_hat = 2 stops on the tie (Delta <= lambda); regret 0. */
    const double tie[3] = {0.5, 0.125, 0.0};
    r = regret(tie, 3, 0.125, 0.0);
    assert_int_equal(r.k_star, 1);
    assert_int_equal(r.k_hat, 2);
    assert_int_equal(r.w_eps, 1); /* |0.125 - 0.125| <= 0 */
    expect_near(r.actual_regret, 0.0, 0.0);

    /* The first step already does not pay: J = {0, -0.0625, -0.15625}, so the best is to
     * stop before any step (k* = 0) and the greedy rule, which sees the gain only after
     * step 1, loses 0.0625 = its distance from lambda: W = 1, bound 0.0625. */
    const double none[2] = {0.0625, 0.03125};
    r = regret(none, 2, 0.125, 0.0625);
    assert_int_equal(r.k_star, 0);
    assert_int_equal(r.k_hat, 1);
    assert_int_equal(r.w_eps, 1);
    expect_near(r.j_star, 0.0, 0.0);
    expect_near(r.actual_regret, 0.0625, 0.0);
    assert_true(r.actual_regret <= r.bound);

    /* K = 1 with the gain above lambda: nothing to regret. */
    const double single[1] = {0.5};
    r = regret(single, 1, 0.1, 0.01);
    assert_int_equal(r.k_star, 1);
    assert_int_equal(r.k_hat, 1);
    expect_near(r.actual_regret, 0.0, 0.0);
}

/* Where the premise holds (non-increasing gains whose first value at or below lambda is
 * within eps of it) the regret is lambda - Delta_{k_hat} <= eps <= eps*W; where it does
 * not, the bound can fail, and the function must report that rather than hide it. */
static void test_regret_within_bound(void **state) {
    (void)state;
    const struct {
        double gain[5];
        int K;
        double lambda, eps;
    } cases[] = {
        {{0.4, 0.3, 0.2, 0.09, 0.01}, 5, 0.1, 0.02},  /* regret 0.01 */
        {{0.9, 0.5, 0.28, 0.27, 0.0}, 5, 0.3, 0.05},  /* 0.28 and 0.27 both in the band */
        {{0.35, 0.2, 0.2, 0.15, 0.05}, 5, 0.2, 0.05}, /* ties at lambda, regret 0 */
        {{0.6, 0.45, 0.05}, 3, 0.1, 0.1},             /* regret 0.05 */
        {{0.15, 0.12, 0.11}, 3, 0.1, 0.03},           /* never stops early: regret 0 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const regret_bound_result r = regret(cases[i].gain, cases[i].K, cases[i].lambda,
                                             cases[i].eps);
        if (!(r.actual_regret >= -1e-12 && r.actual_regret <= r.bound + 1e-12))
            fail_msg("case %zu: regret %g outside [0, bound %g]", i, r.actual_regret, r.bound);
        assert_true(r.w_eps >= 1);
        if (r.k_hat < cases[i].K || cases[i].gain[cases[i].K - 1] <= cases[i].lambda) {
            /* Stopped on a non-paying step: the best stop is the step before it. */
            assert_int_equal(r.k_star, r.k_hat - 1);
            expect_near(r.actual_regret, cases[i].lambda - cases[i].gain[r.k_hat - 1], 1e-12);
        }
    }
    /* Premise broken: the gain drops from well above lambda to far below it.
     * {0.5, 0.0}, lambda 0.25, eps 0.0625: J = {0, 0.25, 0}, regret 0.25 but W = 0. */
    const double cliff[2] = {0.5, 0.0};
    regret_bound_result r = regret(cliff, 2, 0.25, 0.0625);
    expect_near(r.actual_regret, 0.25, 0.0);
    assert_int_equal(r.w_eps, 0);
    assert_true(r.actual_regret > r.bound);
    /* Premise broken the other way: gains that rise again. {0, 1}, lambda 0.25:
     * J = {0, -0.25, 0.5}: k* = 2 but the greedy rule stops at 1: regret 0.75. */
    const double rising[2] = {0.0, 1.0};
    r = regret(rising, 2, 0.25, 0.0625);
    assert_int_equal(r.k_star, 2);
    assert_int_equal(r.k_hat, 1);
    expect_near(r.actual_regret, 0.75, 0.0);
}

static void test_regret_rejects_bad_input(void **state) {
    (void)state;
    const double gain[2] = {0.5, 0.0};
    regret_bound_result r;
    sevo_error err = {{0}};
    assert_int_equal(regret_bound(gain, 0, 0.1, 0.1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "K"));
    assert_int_equal(regret_bound(gain, 2, 0.1, -0.1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "eps"));
    assert_int_equal(regret_bound(gain, 2, 0.1, NAN, &r, &err), -1);
    assert_int_equal(regret_bound(NULL, 2, 0.1, 0.1, &r, &err), -1);
    assert_int_equal(regret_bound(gain, 2, 0.1, 0.1, NULL, &err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_helpers),
        cmocka_unit_test(test_hsr_reward_and_step_reward),
        cmocka_unit_test(test_bellman_hand),
        cmocka_unit_test(test_bellman_literal_penalty),
        cmocka_unit_test(test_myopic_and_stopping),
        cmocka_unit_test(test_gate_bce_hand),
        cmocka_unit_test(test_gate_bce_extreme_logits),
        cmocka_unit_test(test_gate_bce_gradient_fd),
        cmocka_unit_test(test_dpo_sigmoid_hand),
        cmocka_unit_test(test_dpo_ipo_hinge_hand),
        cmocka_unit_test(test_dpo_policy_equals_reference),
        cmocka_unit_test(test_dpo_extreme_margins),
        cmocka_unit_test(test_dpo_positive_hand),
        cmocka_unit_test(test_dpo_gradients_fd),
        cmocka_unit_test(test_dpo_rejects_bad_settings),
        cmocka_unit_test(test_dpo_loss_type_names),
        cmocka_unit_test(test_dpo_gradient_magnitude),
        cmocka_unit_test(test_regret_hand),
        cmocka_unit_test(test_regret_edge_cases),
        cmocka_unit_test(test_regret_within_bound),
        cmocka_unit_test(test_regret_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
