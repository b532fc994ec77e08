/* hsr_ee.h: HSR-EE, reasoning with adaptive depth (DESIGN §1 "HSR-EE", "Gate training").
 *
 * The confidence gate g_phi reads H_k, the final hidden state of reasoning step k's last
 * token, and scores it: score_k = sigmoid(g_phi(H_k)), with
 *   g_phi = Linear(d -> h) -> ReLU -> Dropout(0.1) -> Linear(h -> 1).
 * At inference the model answers right after step k when score_k > tau.
 *
 * Training (hsr_train_run) rolls the model out on training samples with an answer forced
 * after every step; the label of step k is whether that answer is right. g_phi is fit to
 * the labels by BCE with Adam. The threshold tau = sigmoid(theta_tau) is learned by
 * REINFORCE on R_HSR = r_visual + r_ans - lambda k: a rollout of the exit policy decides
 * after each step k < K to exit with P = sigmoid((score_k - tau) / T), takes the reward
 * of the step where it exits (its forced answer is known), and theta_tau moves along
 * (R - b) * d log P(decisions) / d theta_tau, b a running mean of R (an exponential one,
 * decay 0.99, started at the untrained policy's mean reward), on the held-out
 * trajectories, whose scores are not those of steps the gate was fit to; its step
 * follows a cosine from hsr_ee.threshold_lr to 0 over the epochs. Each epoch draws
 * hsr_ee.exit_samples rollouts per trajectory and steps once per trajectory along their
 * mean: the reward is nearly flat in tau near its optimum, and single rollouts leave
 * tau wandering. Exit rollouts cost no model calls: every forced answer is known.
 *
 * The gate and theta_tau live in confidence_head.safetensors: "confidence_head.0.weight"
 * [h, d], "confidence_head.0.bias" [h], "confidence_head.3.weight" [1, h],
 * "confidence_head.3.bias" [1] (the indices of the layers in a PyTorch nn.Sequential) and
 * "threshold_logit" [1]. */
#ifndef SEVO_METHOD_HSR_EE_H
#define SEVO_METHOD_HSR_EE_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/generate.h"

#define HSR_GATE_DROPOUT 0.1f
/* The widest hidden layer a gate may have: scoring keeps it on the stack (16 KiB), so
 * that the exit rule needs no buffer of its own and runs on any generation thread. */
#define HSR_GATE_MAX_HIDDEN 4096
#define HSR_GATE_FILE "confidence_head.safetensors"

typedef struct hsr_gate {
    int d, h;
    size_t n_params;
    float *params, *grads;        /* arenas: w1[h,d] b1[h] w2[1,h] b2[1] */
    float *w1, *b1, *w2, *b2;     /* views into params */
    float *dw1, *db1, *dw2, *db2; /* views into grads */
    float theta_tau;              /* tau = sigmoid(theta_tau) */
} hsr_gate;

/* A gate for inputs of size d with h hidden units, initialised as PyTorch's nn.Linear
 * (uniform in +-1/sqrt(fan_in)) from seed, and tau set. tau must be in (0, 1). */
int hsr_gate_init(hsr_gate *g, int d, int h, float tau, uint64_t seed, sevo_error *err);
void hsr_gate_release(hsr_gate *g);
float hsr_gate_tau(const hsr_gate *g);

/* Forward over n rows x[n,d] -> logits[n]. act[n,h] (the caller's) keeps the post-ReLU,
 * post-dropout activations for backward. With rng non-NULL dropout is on (training:
 * each unit is zeroed with probability HSR_GATE_DROPOUT and survivors are scaled by
 * 1/(1-p)); with NULL it is the identity (inference). */
void hsr_gate_forward(const hsr_gate *g, const float *x, int n, float *act, float *logits, sevo_rng *rng);
/* Adds to g->grads the gradient of sum_i dlogits[i] * logit_i, from the same x and act as
 * the forward; dropout_on says whether that forward used dropout. scratch: n*h floats. */
void hsr_gate_backward(hsr_gate *g, const float *x, int n, const float *act, int dropout_on,
                       const float *dlogits, float *scratch);
/* score = sigmoid(g_phi(hidden)) in inference mode. */
float hsr_gate_score(const hsr_gate *g, const float *hidden);

/* Written atomically. */
int hsr_gate_save(const hsr_gate *g, const char *path, sevo_error *err);
/* Loads a gate; its input size must be expect_d (the model's hidden size) and its tau
 * inside (0, 1). On failure g is left released and err names the file. */
int hsr_gate_load(hsr_gate *g, const char *path, int expect_d, sevo_error *err);

/* The exit rule at inference, as a step_gate_fn for policy_reason: ctx is an
 * hsr_gate_exit; exits when score > tau. Reentrant (it writes nothing but *score), so
 * samples generated in parallel share one rule. */
typedef struct hsr_gate_exit {
    const hsr_gate *gate;
    float tau;
} hsr_gate_exit;
int hsr_gate_step(void *ctx, int k, const float *hidden, float *score);

/* ---- REINFORCE on the threshold ---- */

/* P(exit) = sigmoid((score - tau) / T). */
double hsr_exit_prob(double score, double tau, double T);
/* d/dtheta of sum_j log P(decision_j), tau = sigmoid(theta), for n sampled decisions
 * (1 = exit, 0 = continue) taken at the given scores. */
double hsr_log_prob_grad_theta(const double *scores, const int *decisions, int n, double theta, double T);

/* ---- how good the gate is, on held-out steps ---- */

/* Area under the ROC curve of scores against 0/1 labels (Mann-Whitney; tied scores
 * count one half). 0.5 when either class is empty. O(n log n). */
double binary_auroc(const double *scores, const int *labels, int n);
/* Expected calibration error with `bins` equal-width bins on [0, 1]:
 * sum over bins of (n_b / n) * |mean label - mean score|. 0 for n <= 0. */
double expected_calibration_error(const double *scores, const int *labels, int n, int bins);

/* ---- training ---- */

typedef struct hsr_train_options {
    const sevo_config *cfg; /* hsr_ee.* (tau init, K, lambda, h, adaptive, lrs, T), seed */
    const char *model_path; /* the checkpoint whose trajectories train the gate */
    const char *data_path;  /* a JSONL split with images, questions and answers */
    const char *output_dir; /* receives confidence_head.safetensors, metrics.jsonl, gate_stats.json */
    int num_epochs;
    int max_samples;        /* trajectories to roll out (0 = all) */
    gen_options gen;        /* decoding of the rollouts */
    int skip_bad_lines;
} hsr_train_options;

typedef struct hsr_train_summary {
    int trajectories, train_steps, heldout_steps;
    double tau_start, tau_end;
    double reward_start, reward_end; /* mean sampled R_HSR before training and in the last epoch */
    double auroc, ece, heldout_loss; /* the final gate on held-out steps */
    double mean_exit_step;           /* the final gate's deterministic exits on held-out trajectories */
    double heldout_exit_accuracy, heldout_final_accuracy; /* answer right at that exit / after the last step */
    double seconds_rollout, seconds_train;
} hsr_train_summary;

/* Rolls out, trains and writes output_dir/{metrics.jsonl, gate_stats.json,
 * confidence_head.safetensors} (the gate last: its presence says the run is complete).
 * A quarter of the trajectories (every fourth) are held out from the gate's BCE: tau is
 * learned on them, and they give the gate's AUROC, calibration error and the
 * deterministic-exit figures (held out for the gate, not for tau: the test set's early
 * exit is the figure to trust). At least 4 trajectories with steps are needed. */
int hsr_train_run(const hsr_train_options *o, hsr_train_summary *s, sevo_error *err);

#endif
