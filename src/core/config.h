/* config.h: the framework configuration (DESIGN §6).
 *
 * One struct holds every section of configs/default_config.json: `model`, `hsr_ee`,
 * `ipr`, `sr_dpo`, `sft`, the output directories, `logging_steps`, `save_steps`,
 * `eval_steps`, `seed`, plus sevo's own keys (marked "sevo:" below). Loading validates
 * types and ranges (a bad value is an error naming the file and key); keys that sevo
 * does not know or does not honour are reported once each as a warning on stderr.
 * Command-line flags override the file through config_set(). */
#ifndef SEVO_CORE_CONFIG_H
#define SEVO_CORE_CONFIG_H

#include <stdint.h>

#include "core/error.h"

#define SEVO_PATH_MAX 1024

typedef struct sevo_model_section {
    char model_name_or_path[SEVO_PATH_MAX]; /* a checkpoint dir or a built-in: "sevo-tiny" */
    /* reference keys kept for compatibility; sevo does not honour them (warned if they
     * ask for something sevo does not do): use_flash_attention, bf16,
     * gradient_checkpointing, lora_rank, lora_alpha, device_map */
    int lora_rank;
} sevo_model_section;

typedef struct sevo_hsr_ee_section {
    float confidence_threshold;     /* tau init, in (0,1) */
    int max_reasoning_steps;        /* K >= 1 */
    float length_penalty_lambda;    /* lambda >= 0 */
    int confidence_head_hidden_dim; /* h >= 1 */
    int adaptive_threshold;         /* bool */
    float threshold_lr;             /* > 0 */
    /* sevo: gate training (DESIGN "Gate training" leaves them open) */
    float gate_learning_rate;       /* Adam step of g_phi, > 0 */
    float exit_temperature;         /* T of P(exit) = sigmoid((score - tau) / T), > 0 */
    int num_epochs;                 /* passes over the trajectories, >= 1 */
    int num_samples;                /* training samples rolled out, >= 1 */
    int exit_samples;               /* REINFORCE exit rollouts per trajectory and epoch, >= 1 */
} sevo_hsr_ee_section;

typedef struct sevo_ipr_section {
    int max_refinement_iterations; /* N_max >= 0 */
    char refinement_prompt_template[2048];
    int discard_failed_samples; /* bool */
    int num_samples;            /* >= 1 */
    float temperature;          /* sevo: sampling of perceptions and refinements (0 = greedy) */
    float top_p;                /* sevo: nucleus mass, (0, 1] */
} sevo_ipr_section;

typedef struct sevo_sr_dpo_section {
    float beta; /* > 0 */
    float learning_rate;
    int batch_size;
    int num_epochs;
    int gradient_accumulation_steps;
    int max_seq_length;
    float warmup_ratio; /* [0,1] */
    float weight_decay;
    float max_grad_norm;
    float label_smoothing; /* sevo: [0, 0.5) */
    char loss_type[16];    /* sevo: "sigmoid" | "ipo" | "hinge" */
    float rpo_alpha;       /* sevo: weight of the chosen texts' mean token NLL added to the loss (RPO) */
    float dpop_lambda;     /* sevo: DPO-Positive penalty on the chosen text falling below the reference */
    float image_preference_weight; /* sevo: weight of mDPO's conditional term (chosen text, its image over a masked copy) */
} sevo_sr_dpo_section;

typedef struct sevo_sft_section {
    int num_epochs;
    float learning_rate;
    int batch_size;
    int gradient_accumulation_steps;
    char dataset_name[256]; /* reference key; not honoured (data comes from data_dir) */
    int max_seq_length;
    float warmup_ratio;  /* sevo */
    float weight_decay;  /* sevo */
    float max_grad_norm; /* sevo */
    float text_loss_weight; /* sevo: loss weight of the text-only (π_text) examples' tokens */
    float early_answer_fraction; /* sevo: share of traces cut after a random step k in
                                  * [depth, K), the answer forced there (what an early exit
                                  * asks of the model) */
    int text_reasoning; /* sevo: π_text examples write the question's reasoning steps before
                         * the answer (the verifier reasons; saved in the checkpoint) */
} sevo_sft_section;

/* sevo: the binary-reward PPO baseline of the no_sr_dpo ablation (DESIGN §1 leaves it
 * open): rounds of sampled traces from the current policy, each followed by epochs of the
 * clipped objective with a KL penalty to the SFT model. */
typedef struct sevo_ppo_section {
    float learning_rate;
    int batch_size;
    int num_epochs;          /* passes over each round's rollouts */
    int gradient_accumulation_steps;
    float warmup_ratio;      /* [0,1] */
    float weight_decay;
    float max_grad_norm;
    int num_rounds;          /* rollout-then-optimise rounds, >= 1 */
    int num_samples;         /* prompts rolled out per round, >= 1 */
    float clip_epsilon;      /* ε of the clipped ratio, (0, 1) */
    float kl_coef;           /* weight of the per-token KL to the reference, >= 0 */
    float temperature;       /* sampling of the rollouts, > 0 */
    float top_p;             /* (0, 1] */
} sevo_ppo_section;

typedef struct sevo_synth_section { /* sevo: the embedded synthetic world */
    int num_train;
    int num_test;
    int image_size;
    float cooccurrence; /* probability that a present object's partner is also drawn */
    float noise;        /* pixel noise std, in [0,1] units */
    float faint_fraction; /* probability that a partner object is drawn faint */
    float faint_contrast; /* a faint object's opacity */
    float annotation_noise; /* probability that a train record names an absent partner */
    int caption_reasoning;  /* a captioned record's trace is also written from its caption */
} sevo_synth_section;

typedef struct sevo_config {
    sevo_model_section model;
    sevo_hsr_ee_section hsr_ee;
    sevo_ipr_section ipr;
    sevo_sr_dpo_section sr_dpo;
    sevo_sft_section sft;
    sevo_ppo_section ppo;
    sevo_synth_section synth;
    char output_dir[SEVO_PATH_MAX];
    char sft_output_dir[SEVO_PATH_MAX];
    char ipr_data_dir[SEVO_PATH_MAX];
    char hsr_ee_output_dir[SEVO_PATH_MAX];
    char sr_dpo_output_dir[SEVO_PATH_MAX];
    char eval_output_dir[SEVO_PATH_MAX];
    char data_dir[SEVO_PATH_MAX]; /* sevo: where train.jsonl etc. live */
    int logging_steps;
    int save_steps;
    int eval_steps;
    int64_t seed;
    int num_threads; /* sevo: 0 = all cores */
} sevo_config;

/* The reference's defaults (configs/default_config.json) plus sevo's. */
void config_defaults(sevo_config *c);

/* Applies a JSON file on top of c. Errors name the file and the dotted key
 * ("configs/x.json: sr_dpo.beta: expected a number, got a string"). */
int config_load(sevo_config *c, const char *path, sevo_error *err);

/* Sets one key from a string, as the command line does. key is dotted
 * ("sr_dpo.beta", "seed"). The value is parsed and validated like the file's. */
int config_set(sevo_config *c, const char *key, const char *value, sevo_error *err);

/* Validates ranges across the whole struct (also done by config_load). */
int config_validate(const sevo_config *c, const char *source, sevo_error *err);

/* Pretty JSON of the effective configuration, malloc'ed; NULL on out of memory. */
char *config_to_json(const sevo_config *c);
/* The same without one section (its name, e.g. "ppo"); NULL skips none. */
char *config_to_json_except(const sevo_config *c, const char *skip_section);

#endif
