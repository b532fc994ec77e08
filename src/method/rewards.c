/* rewards.c: the reward utilities of DESIGN §1 (see rewards.h for every definition).
 *
 * Every loss here is written through softplus / log-sigmoid rather than log(sigmoid(x))
 * so that it stays finite and accurate for any finite input: sigmoid(-800) underflows to
 * 0 in double and its log would be -inf, while -softplus(800) is exactly -800. */
#include "method/rewards.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

double stable_sigmoid(double x) {
    /* Only ever exponentiate a non-positive number: exp never overflows, and the
     * negative branch keeps the relative precision of tiny results. */
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    const double e = exp(x);
    return e / (1.0 + e);
}

double softplus(double x) {
    /* log(1 + e^x) = max(x, 0) + log(1 + e^-|x|); the second term is in [0, log 2]. */
    return fmax(x, 0.0) + log1p(exp(-fabs(x)));
}

double log_sigmoid(double x) { return -softplus(-x); }

double hsr_reward(double r_visual, double r_ans, double lambda, int k) {
    return r_visual + r_ans - lambda * (double)k;
}

double mdp_step_reward(hsr_action action, double r_visual, double r_ans, double lambda,
                       int k) {
    if (action == HSR_ACTION_EXIT) return hsr_reward(r_visual, r_ans, lambda, k);
    return -lambda;
}

void bellman_q_values(const double *exit_value, int K, double lambda, double *q_exit,
                      double *q_continue) {
    if (K < 1) return;
    for (int k = 1; k <= K; k++) q_exit[k - 1] = exit_value[k - 1] - lambda * (double)k;
    /* Backward induction from the horizon, where Continue does not exist. -INFINITY
     * rather than a large negative number so that max() at K picks Exit exactly. */
    q_continue[K - 1] = -INFINITY;
    for (int k = K - 1; k >= 1; k--) {
        const double best_next = fmax(q_exit[k], q_continue[k]); /* step k+1 */
        q_continue[k - 1] = -lambda + best_next;
    }
}

double myopic_utility(double p_k, double lambda, int k) { return p_k - lambda * (double)k; }

int hsr_should_exit(double p_k, double expected_p_next, double lambda, int k, int K) {
    if (k >= K) return 1;
    return myopic_utility(p_k, lambda, k) >= myopic_utility(expected_p_next, lambda, k + 1);
}

double gate_bce_with_logits(const double *logits, const double *labels, int n,
                            double *grad_logits) {
    if (n <= 0) return 0.0;
    const double inv_n = 1.0 / (double)n;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        const double z = logits[i], y = labels[i];
        /* -y log s(z) - (1-y) log(1 - s(z)) with log s(z) = -softplus(-z) and
         * log(1 - s(z)) = -softplus(z). Each term is accurate on its own, so a confident
         * right answer costs a tiny positive number, not the 0 of cancellation. */
        sum += y * softplus(-z) + (1.0 - y) * softplus(z);
        if (grad_logits) grad_logits[i] = (stable_sigmoid(z) - y) * inv_n;
    }
    return sum * inv_n;
}

double gate_bce_from_scores(const double *scores, const double *labels, int n) {
    if (n <= 0) return 0.0;
    const double lo = 1e-7, hi = 1.0 - 1e-7;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        const double s = fmin(fmax(scores[i], lo), hi), y = labels[i];
        sum -= y * log(s) + (1.0 - y) * log1p(-s);
    }
    return sum / (double)n;
}

int dpo_loss_type_from_name(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "sigmoid")) return DPO_LOSS_SIGMOID;
    if (!strcmp(name, "ipo")) return DPO_LOSS_IPO;
    if (!strcmp(name, "hinge")) return DPO_LOSS_HINGE;
    return -1;
}

const char *dpo_loss_type_name(dpo_loss_type type) {
    switch (type) {
    case DPO_LOSS_SIGMOID: return "sigmoid";
    case DPO_LOSS_IPO: return "ipo";
    case DPO_LOSS_HINGE: return "hinge";
    }
    return "unknown";
}

static int dpo_check(const dpo_batch *batch, const dpo_settings *s, sevo_error *err) {
    if (!batch || !s) return sevo_fail(err, "dpo_loss: batch and settings are required");
    if (batch->n < 1) return sevo_fail(err, "dpo_loss: empty batch (n = %d)", batch->n);
    if (!batch->policy_chosen_logp || !batch->policy_rejected_logp || !batch->ref_chosen_logp ||
        !batch->ref_rejected_logp)
        return sevo_fail(err, "dpo_loss: a log-probability array of the batch is NULL");
    if (!(s->beta > 0.0) || !isfinite(s->beta))
        return sevo_fail(err, "dpo_loss: beta must be a finite number > 0, got %g", s->beta);
    if (s->loss_type != DPO_LOSS_SIGMOID && s->loss_type != DPO_LOSS_IPO &&
        s->loss_type != DPO_LOSS_HINGE)
        return sevo_fail(err, "dpo_loss: unknown loss type %d", (int)s->loss_type);
    if (!(s->label_smoothing >= 0.0 && s->label_smoothing < 0.5))
        return sevo_fail(err, "dpo_loss: label_smoothing must be in [0, 0.5), got %g",
                         s->label_smoothing);
    if (!(s->dpop_lambda >= 0.0 && isfinite(s->dpop_lambda)))
        return sevo_fail(err, "dpo_loss: dpop_lambda must be a finite number >= 0, got %g", s->dpop_lambda);
    if (s->label_smoothing != 0.0 && s->loss_type != DPO_LOSS_SIGMOID)
        return sevo_fail(err,
                         "dpo_loss: label_smoothing (%g) applies to the sigmoid loss only, "
                         "not to %s",
                         s->label_smoothing, dpo_loss_type_name(s->loss_type));
    return 0;
}

int dpo_loss(const dpo_batch *batch, const dpo_settings *settings, double *grad_chosen,
             double *grad_rejected, dpo_metrics *metrics, sevo_error *err) {
    if (dpo_check(batch, settings, err) != 0) return -1;
    const int n = batch->n;
    const double beta = settings->beta, eps = settings->label_smoothing;
    const double inv_n = 1.0 / (double)n;
    double loss = 0.0, rew_c = 0.0, rew_r = 0.0, correct = 0.0, margin = 0.0;
    double logp_c = 0.0, logp_r = 0.0, weight = 0.0;

    for (int i = 0; i < n; i++) {
        const double pc = batch->policy_chosen_logp[i], pr = batch->policy_rejected_logp[i];
        const double chosen_ratio = pc - batch->ref_chosen_logp[i];
        const double rejected_ratio = pr - batch->ref_rejected_logp[i];
        /* DPO-Positive: the chosen response falling below the reference costs extra */
        const int dpop_on = settings->dpop_lambda > 0.0 && chosen_ratio < 0.0;
        const double h = chosen_ratio - rejected_ratio + (dpop_on ? settings->dpop_lambda * chosen_ratio : 0.0);
        const double f = beta * h; /* implicit reward margin */

        /* dloss_dh: derivative of this pair's loss with respect to h; since
         * h = pi_c - pi_r + const (+ lambda pi_c where DPO-Positive's penalty is on), it
         * is minus dL/dpi_r, and dL/dpi_c times 1 (or 1 + lambda). */
        double pair_loss, dloss_dh;
        switch (settings->loss_type) {
        case DPO_LOSS_IPO: {
            /* IPO regresses h onto 1/(2 beta) instead of pushing it to infinity. */
            const double gap = h - 1.0 / (2.0 * beta);
            pair_loss = gap * gap;
            dloss_dh = 2.0 * gap;
            break;
        }
        case DPO_LOSS_HINGE:
            pair_loss = f < 1.0 ? 1.0 - f : 0.0;
            dloss_dh = f < 1.0 ? -beta : 0.0;
            break;
        case DPO_LOSS_SIGMOID:
        default:
            /* -(1-eps) log s(f) - eps log s(-f) = (1-eps) softplus(-f) + eps softplus(f);
             * d/df = -(1-eps)(1 - s(f)) + eps s(f) = s(f) - (1-eps). */
            pair_loss = (1.0 - eps) * softplus(-f) + eps * softplus(f);
            dloss_dh = beta * (stable_sigmoid(f) - (1.0 - eps));
            break;
        }
        loss += pair_loss;
        if (grad_chosen) grad_chosen[i] = dloss_dh * (dpop_on ? 1.0 + settings->dpop_lambda : 1.0) * inv_n;
        if (grad_rejected) grad_rejected[i] = -dloss_dh * inv_n;

        const double reward_chosen = beta * chosen_ratio, reward_rejected = beta * rejected_ratio;
        rew_c += reward_chosen;
        rew_r += reward_rejected;
        correct += reward_chosen > reward_rejected ? 1.0 : 0.0;
        margin += reward_chosen - reward_rejected;
        logp_c += pc;
        logp_r += pr;
        weight += stable_sigmoid(-f); /* 1 - sigmoid(f), without cancellation */
    }

    if (metrics) {
        metrics->loss = loss * inv_n;
        metrics->rewards_chosen = rew_c * inv_n;
        metrics->rewards_rejected = rew_r * inv_n;
        metrics->rewards_accuracies = correct * inv_n;
        metrics->rewards_margins = margin * inv_n;
        metrics->logps_chosen = logp_c * inv_n;
        metrics->logps_rejected = logp_r * inv_n;
        metrics->grad_weight = weight * inv_n;
    }
    return 0;
}

double dpo_gradient_magnitude(double delta, double beta) {
    return beta * stable_sigmoid(-beta * delta); /* beta * (1 - sigmoid(beta*delta)) */
}

int regret_bound(const double *marginal_gain, int K, double lambda, double eps,
                 regret_bound_result *out, sevo_error *err) {
    if (!marginal_gain || !out) return sevo_fail(err, "regret_bound: NULL argument");
    if (K < 1) return sevo_fail(err, "regret_bound: K must be >= 1, got %d", K);
    if (!(eps >= 0.0)) return sevo_fail(err, "regret_bound: eps must be >= 0, got %g", eps);

    /* One pass over k = 1..K with the running sum J(k); J(0) = 0 is the starting best.
     * A strict > keeps the first maximiser, as numpy's argmax does. */
    double j = 0.0, j_star = 0.0, j_hat = 0.0;
    int k_star = 0, k_hat = 0, w_eps = 0;
    for (int k = 1; k <= K; k++) {
        const double gain = marginal_gain[k - 1];
        j += gain - lambda;
        if (j > j_star) {
            j_star = j;
            k_star = k;
        }
        if (k_hat == 0 && gain <= lambda) {
            k_hat = k;
            j_hat = j;
        }
        if (fabs(gain - lambda) <= eps) w_eps++;
    }
    if (k_hat == 0) { /* every step paid for itself: the greedy rule runs to K */
        k_hat = K;
        j_hat = j;
    }
    out->k_star = k_star;
    out->k_hat = k_hat;
    out->w_eps = w_eps;
    out->j_star = j_star;
    out->j_hat = j_hat;
    out->bound = eps * (double)w_eps;
    out->actual_regret = j_star - j_hat;
    return 0;
}
