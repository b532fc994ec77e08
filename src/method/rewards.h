/* rewards.h: the reward utilities of DESIGN §1 ("Reward utilities"), as pure functions
 * over scalars and flat double arrays: the HSR-EE reward and its MDP view (step reward,
 * Bellman Q-values, myopic utility, optimal-stopping rule), the gate's binary
 * cross-entropy, the SR-DPO loss (sigmoid / robust, IPO, hinge) with its gradient and the
 * logged metrics, the DPO gradient magnitude, and the regret bound of Proposition 1.
 *
 * Conventions:
 *  - Reasoning steps are numbered k = 1..K, as in DESIGN (the length penalty of exiting
 *    after step k is lambda*k). Arrays indexed by step hold step k at index k-1.
 *  - Everything is double: these are O(batch) numbers, and the DPO loss takes
 *    differences of sequence log-probabilities (sums over tokens, often -50..-500) that
 *    float would round to ~1e-5 before beta scales them. Callers with float activations
 *    convert at the boundary.
 *  - Nothing allocates, nothing keeps state; outputs go into caller-owned buffers and are
 *    written (=), never accumulated. Gradient outputs may be NULL (not computed).
 *  - Functions that can be called with bad arguments return 0 / -1 and fill a
 *    sevo_error; the rest cannot fail. */
#ifndef SEVO_METHOD_REWARDS_H
#define SEVO_METHOD_REWARDS_H

#include "core/error.h"

/* ---- numerically stable scalar helpers (used by the functions below, and by callers
 * that need the same values: the gate's score, REINFORCE's P(exit)) ---- */

/* 1 / (1 + e^-x) without overflow for any finite x (and 0 / 1 at -inf / +inf). */
double stable_sigmoid(double x);
/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): exact for large |x|, never inf for finite x. */
double softplus(double x);
/* log sigmoid(x) = -softplus(-x): finite for every finite x (log sigmoid(-800) = -800). */
double log_sigmoid(double x);

/* ---- HSR-EE reward and its MDP (DESIGN "HSR-EE", "Gate training") ---- */

/* R_HSR = r_visual + r_ans - lambda * k, the reward of a trajectory that exits after
 * reasoning step k (r_visual, r_ans in {0, 1} from the answer check). */
double hsr_reward(double r_visual, double r_ans, double lambda, int k);

typedef enum { HSR_ACTION_CONTINUE = 0, HSR_ACTION_EXIT = 1 } hsr_action;

/* The MDP step reward of Eq. 13 for taking `action` at step k:
 *   Exit:     r_visual + r_ans - lambda*k   (= hsr_reward; the episode ends)
 *   Continue: -lambda                        (r_visual and r_ans are ignored) */
double mdp_step_reward(hsr_action action, double r_visual, double r_ans, double lambda,
                       int k);

/* Bellman optimality Q-values of Eq. 14-15 over the finite horizon K, by backward
 * induction. exit_value[k-1] is what exiting after step k is worth before the length
 * penalty: r_visual + r_ans of that exit when the outcome is known, or the expected
 * correctness p_k when it is not. Writes, for k = 1..K (index k-1):
 *   q_exit[k-1]     = mdp_step_reward(EXIT, k) = exit_value[k-1] - lambda*k
 *   q_continue[k-1] = -lambda + max(q_exit[k], q_continue[k])        for k < K
 *   q_continue[K-1] = -INFINITY   (no step K+1: at the horizon the only action is Exit,
 *                                  so max(q_exit, q_continue) there is q_exit)
 * The equations are taken literally, as DESIGN and the reference state them: the
 * return of "continue at k, exit at j > k" is (exit_value_j - lambda*j) - lambda*(j-k),
 * so each step taken after k pays its length penalty twice, once inside the exit reward
 * and once as a Continue step reward. Exiting is therefore favoured by an extra lambda
 * per step compared with the stopping rule of Eq. 18 (hsr_should_exit), which compares
 * U_k with U_{k+1} directly. Requires K >= 1; the arrays hold K values each and must not
 * alias exit_value. */
void bellman_q_values(const double *exit_value, int K, double lambda, double *q_exit,
                      double *q_continue);

/* The myopic terminal utility of Eq. 17: U_k = p_k - lambda*k, with p_k the probability
 * that the answer forced after step k is correct. */
double myopic_utility(double p_k, double lambda, int k);

/* The optimal-stopping rule of Eq. 18 at step k of at most K: 1 (exit) iff
 * p_k - lambda*k >= E[p_{k+1}] - lambda*(k+1), i.e. iff the expected gain of one more
 * step, E[p_{k+1}] - p_k, is at most lambda; a tie exits (the cheaper choice). At
 * k >= K it returns 1 whatever the probabilities: there is no step K+1 to continue to. */
int hsr_should_exit(double p_k, double expected_p_next, double lambda, int k, int K);

/* ---- gate loss (Eq. 11) ---- */

/* Mean binary cross-entropy of the gate over n examples, from the gate's logits
 * z = g_phi(H_k) (score = sigmoid(z)) and labels y in [0, 1] (the answer-check labels
 * y_k are 0 or 1; soft labels are allowed):
 *   L = (1/n) sum_i [softplus(z_i) - y_i * z_i]   (= -y log s - (1-y) log(1-s))
 * This is the main API: it is exact and finite for any finite logit (z = +-100 with the
 * "wrong" label costs 100, not log(0)), where the score form must clamp. grad_logits
 * (may be NULL) receives dL/dz_i = (sigmoid(z_i) - y_i) / n. Returns 0 for n <= 0. */
double gate_bce_with_logits(const double *logits, const double *labels, int n,
                            double *grad_logits);

/* The same loss from scores s = sigmoid(z) in [0, 1], as the reference computes it:
 * each score is clamped to [1e-7, 1 - 1e-7] first, so a confident wrong score costs
 * -log(1e-7) ~ 16.1 instead of inf. Use it to report a loss from stored scores; train
 * with gate_bce_with_logits. Returns 0 for n <= 0. */
double gate_bce_from_scores(const double *scores, const double *labels, int n);

/* ---- SR-DPO (Eq. 20-21) and its variants ---- */

typedef enum {
    DPO_LOSS_SIGMOID = 0, /* DPO; with label smoothing, conservative DPO (cDPO) */
    DPO_LOSS_IPO = 1,     /* identity preference optimisation */
    DPO_LOSS_HINGE = 2,   /* SLiC / RSO hinge */
} dpo_loss_type;

/* "sigmoid" / "ipo" / "hinge" (the config's sr_dpo.loss_type) -> the type; -1 if none. */
int dpo_loss_type_from_name(const char *name);
/* The config name of a type ("sigmoid", "ipo", "hinge"), "unknown" otherwise. */
const char *dpo_loss_type_name(dpo_loss_type type);

typedef struct dpo_settings {
    double beta;            /* > 0 */
    double label_smoothing; /* epsilon in [0, 0.5); must be 0 unless loss_type is SIGMOID */
    dpo_loss_type loss_type;
    double dpop_lambda;     /* >= 0: DPO-Positive's penalty weight (0 = off), below */
} dpo_settings;

/* One batch of n preference pairs: the summed log-probability of the chosen (y_w) and
 * rejected (y_l) response under the policy being trained and under the frozen
 * reference. Each array holds n values. */
typedef struct dpo_batch {
    const double *policy_chosen_logp;
    const double *policy_rejected_logp;
    const double *ref_chosen_logp;
    const double *ref_rejected_logp;
    int n;
} dpo_batch;

/* What DESIGN asks to be logged, as means over the batch (names follow TRL's logs). */
typedef struct dpo_metrics {
    double loss;               /* the mean loss */
    double rewards_chosen;     /* mean beta*(pi_c - ref_c) */
    double rewards_rejected;   /* mean beta*(pi_r - ref_r) */
    double rewards_accuracies; /* share of pairs with reward_chosen > reward_rejected
                                * (strictly: a tie, e.g. at the start when the policy is
                                * the reference, counts as not yet learned) */
    double rewards_margins;    /* mean (reward_chosen - reward_rejected) = mean f without
                                * DPO-Positive's penalty */
    double logps_chosen;       /* mean pi_c */
    double logps_rejected;     /* mean pi_r */
    double grad_weight;        /* mean (1 - sigmoid(f)), DPO's per-pair gradient weight;
                                * reported for every loss type as a diagnostic */
} dpo_metrics;

/* The mean SR-DPO loss over a batch. Per pair, with h = (pi_c - ref_c) - (pi_r - ref_r)
 * and f = beta*h:
 *   SIGMOID: -(1-eps) log sigmoid(f) - eps log sigmoid(-f)   (eps = 0: Eq. 21; eps > 0:
 *            labels flipped with probability eps, as TRL's "sigmoid" with
 *            label_smoothing)
 *   IPO:     (h - 1/(2 beta))^2   (on h, not f, as in TRL; TRL feeds IPO length-averaged
 *            log-probs, so a caller that wants that passes averages here)
 *   HINGE:   max(0, 1 - f)        (TRL's relu(1 - beta*h)); its derivative at f = 1 is
 *            taken as 0, like ReLU's at 0.
 * With dpop_lambda > 0 (DPO-Positive, Pal et al. 2024, "Smaug"), h becomes
 *   h - dpop_lambda * max(0, ref_c - pi_c)
 * for every loss type: lowering the chosen response's likelihood below the reference's
 * is penalised. Why: when chosen and rejected differ in a token or two (a perception with
 * one object misread), plain DPO can raise the margin by lowering both, and the mass they
 * lose goes to other responses; DPOP keeps the chosen one from falling. The penalty's
 * derivative at pi_c = ref_c is taken as 0 (off until the chosen falls).
 * Writes the gradient of the MEAN loss with respect to each pair's policy log-probs into
 * grad_chosen[n] and grad_rejected[n] (either may be NULL); the reference log-probs are
 * constants. dL/dpi_r = -dL/dh; dL/dpi_c = dL/dh, times (1 + dpop_lambda) where the
 * penalty is active. metrics may be NULL (its rewards and margins stay plain DPO's; its
 * grad_weight uses the penalised f).
 * Fails (and writes nothing) when n < 1, a pointer in batch is NULL, beta <= 0 or not
 * finite, label_smoothing is outside [0, 0.5) or nonzero for IPO / hinge (they have no
 * smoothed form; rejecting beats silently ignoring a configured value), dpop_lambda is
 * negative or not finite, or the type is unknown. Non-finite log-probs are not checked: they give a non-finite loss. */
int dpo_loss(const dpo_batch *batch, const dpo_settings *settings, double *grad_chosen,
             double *grad_rejected, dpo_metrics *metrics, sevo_error *err);

/* The DPO gradient magnitude of Eq. 26, |dL/dDelta| = beta * (1 - sigmoid(beta*Delta)),
 * for the unscaled log-ratio margin Delta = h above: large while the policy still
 * prefers y_l (Delta < 0), vanishing once the pair is learned. */
double dpo_gradient_magnitude(double delta, double beta);

/* ---- regret bound of Proposition 1 ---- */

typedef struct regret_bound_result {
    int k_star;           /* argmax_k J(k) over k = 0..K, the first maximiser */
    int k_hat;            /* the greedy stop: first k with Delta_k <= lambda, else K */
    int w_eps;            /* W_eps = #{k in 1..K : |Delta_k - lambda| <= eps} */
    double j_star;        /* J(k_star) */
    double j_hat;         /* J(k_hat) */
    double bound;         /* eps * W_eps */
    double actual_regret; /* J(k_star) - J(k_hat) >= 0 */
} regret_bound_result;

/* Proposition 1 for the marginal gains marginal_gain[0..K-1] = Delta_1..Delta_K (the
 * gain in expected correctness that step k brings), the length penalty lambda and the
 * tolerance eps. J(k) = sum_{j<=k} (Delta_j - lambda) for k = 0..K with J(0) = 0
 * (stopping before any step is allowed), so k_star may be 0. k_hat counts the step whose
 * gain first fails to pay for itself: the gate observes a step's gain only after taking
 * it. All as the reference computes them.
 * The bound is not a theorem for every input. It holds when the gains diminish
 * (non-increasing) and the first gain at or below lambda lies within eps of it: then
 * k_star = k_hat - 1 and the regret is lambda - Delta_{k_hat} <= eps <= eps*W_eps. A
 * gain far below lambda, or gains that rise again later, can exceed it; the function
 * reports the numbers either way. Fails when K < 1, marginal_gain or out is NULL, or
 * eps < 0. */
int regret_bound(const double *marginal_gain, int K, double lambda, double eps,
                 regret_bound_result *out, sevo_error *err);

#endif
