/* cmd_ppo.c: `sevo train-ppo` trains the binary-reward PPO baseline (method/ppo.h), the
 * model the no_sr_dpo ablation puts in SR-DPO's place. */
#include <stdio.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/threads.h"
#include "method/ppo.h"

int cmd_ppo(int argc, char **argv) {
    sevo_config cfg;
    config_defaults(&cfg);
    const char *model_path = NULL, *data_dir = NULL, *out = NULL;
    const cli_flag flags[] = {
        {"model_path", FLAG_STRING, &model_path, NULL, "the SFT checkpoint: the reference and the start (default: sft_output_dir)"},
        {"data_dir", FLAG_STRING, &data_dir, NULL, "data set whose train.jsonl gives the questions (default: data_dir)"},
        {"output_dir", FLAG_STRING, &out, NULL, "checkpoint directory to write (rounds before the last in round-N)"},
        {"learning_rate", FLAG_CONFIG, NULL, "ppo.learning_rate", "peak learning rate"},
        {"batch_size", FLAG_CONFIG, NULL, "ppo.batch_size", "rollouts per micro-batch"},
        {"num_epochs", FLAG_CONFIG, NULL, "ppo.num_epochs", "passes over each round's rollouts"},
        {"num_rounds", FLAG_CONFIG, NULL, "ppo.num_rounds", "rollout-then-optimise rounds"},
        {"num_samples", FLAG_CONFIG, NULL, "ppo.num_samples", "questions rolled out per round"},
        {"clip_epsilon", FLAG_CONFIG, NULL, "ppo.clip_epsilon", "clip range of the probability ratio"},
        {"kl_coef", FLAG_CONFIG, NULL, "ppo.kl_coef", "weight of the per-token KL to the reference"},
        {"temperature", FLAG_CONFIG, NULL, "ppo.temperature", "sampling temperature of the rollouts"},
        {"max_reasoning_steps", FLAG_CONFIG, NULL, "hsr_ee.max_reasoning_steps", "K: reasoning steps per rollout"},
        {"logging_steps", FLAG_CONFIG, NULL, "logging_steps", "log every N steps"},
        {"save_steps", FLAG_CONFIG, NULL, "save_steps", "checkpoint every N steps"},
        {"seed", FLAG_CONFIG, NULL, "seed", "random seed"},
        {"num_threads", FLAG_CONFIG, NULL, "num_threads", "threads (0 = all cores)"},
    };
    int rc = cli_parse("train-ppo",
                       "The no_sr_dpo ablation's baseline: PPO with reward r_ans on sampled traces, clipped ratio and "
                       "a KL penalty to the SFT model. A complete round is skipped, an interrupted one resumed.",
                       argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    if (!out) {
        fprintf(stderr, "sevo train-ppo: --output_dir is required\n");
        return 2;
    }
    int threads = sevo_threads_init(cfg.num_threads);
    char data_path[4096];
    snprintf(data_path, sizeof data_path, "%s/train.jsonl", data_dir ? data_dir : cfg.data_dir);
    ppo_options o = {.cfg = &cfg, .model_path = model_path ? model_path : cfg.sft_output_dir, .data_path = data_path,
                     .output_dir = out, .verbose = 1};
    printf("ppo: %d threads, %s on %s -> %s\n", threads, o.model_path, data_path, out);
    sevo_error err;
    if (ppo_run(&o, &err)) {
        fprintf(stderr, "sevo train-ppo: %s\n", err.msg);
        return 1;
    }
    return 0;
}
