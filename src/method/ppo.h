/* ppo.h: the binary-reward PPO baseline that the no_sr_dpo ablation puts in SR-DPO's
 * place (issue 4; DESIGN §1 names the comparison, not its recipe).
 *
 * Each round the current policy samples full traces (perception, reasoning steps,
 * answer) for ppo.num_samples training questions; the reward is r_ans, 1 when the
 * answer passes the answer check and 0 otherwise. There is no value network: with one
 * reward at the end of a sequence (γ = λ = 1) the advantage is r − V(x), and V is
 * estimated by the round's mean reward, normalised by its standard deviation. The
 * round's traces are then optimised for ppo.num_epochs passes with the clipped
 * surrogate
 *     L = mean over sampled tokens of  −min(ρ A, clip(ρ, 1 − ε, 1 + ε) A) + β_KL k3,
 *     ρ = π_θ(y_t) / π_old(y_t),   k3 = e^(ref − logp) − (ref − logp) − 1,
 * where π_old is the policy that sampled the round and ref the SFT model (k3 is the
 * non-negative, unbiased per-token KL estimate). Tokens that the policy did not sample
 * (the <answer> forced after the last allowed step) carry no loss.
 *
 * Round r < R−1 trains into output_dir/round-<r+1>, the last round into output_dir
 * itself; each round starts a fresh AdamW and lr schedule from the previous round's
 * weights. A round whose directory holds trainer_state.json is complete and skipped, and
 * an interrupted round resumes from its newest checkpoint. rollouts.json in each round's
 * directory holds the round's sample count and mean reward. */
#ifndef SEVO_METHOD_PPO_H
#define SEVO_METHOD_PPO_H

#include "core/config.h"
#include "core/error.h"

typedef struct ppo_options {
    const sevo_config *cfg; /* ppo.*, hsr_ee.max_reasoning_steps (K), seed, save/logging steps */
    const char *model_path; /* the SFT checkpoint: the reference and the start */
    const char *data_path;  /* train.jsonl: questions with images and answers */
    const char *output_dir;
    int verbose;
} ppo_options;

/* The clipped surrogate and the KL penalty of one token: returns the token's loss and
 * sets *dlogp to its derivative with respect to logp (π_θ's log-prob of the token);
 * *clipped is 1 when the clip was active (the gradient of the surrogate is then 0). */
double ppo_token_loss(double logp, double old_logp, double ref_logp, double advantage, double epsilon,
                      double kl_coef, double *dlogp, int *clipped);

/* Advantages of n binary rewards: (r − mean) / std (population std); all 0 when every
 * reward is the same. Returns the mean reward. */
double ppo_advantages(const float *rewards, int n, float *advantages);

int ppo_run(const ppo_options *o, sevo_error *err);

#endif
