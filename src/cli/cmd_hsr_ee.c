/* cmd_hsr_ee.c: `sevo train-hsr-ee` trains the confidence gate g_phi of HSR-EE on the
 * model's own trajectories (stage 2), and learns the exit threshold tau when asked. */
#include <stdio.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/fsutil.h"
#include "core/threads.h"
#include "method/hsr_ee.h"

int cmd_hsr_ee(int argc, char **argv) {
    sevo_config cfg;
    config_defaults(&cfg);
    /* as the reference's script: tau is learned only when asked (--adaptive_threshold, or
     * a --config that sets hsr_ee.adaptive_threshold) */
    cfg.hsr_ee.adaptive_threshold = 0;
    const char *model_path = NULL, *data_dir = NULL, *out = NULL, *split = "train";
    int num_epochs = 0, max_samples = 0, skip_bad = 0, seed = -1, max_new = 64;
    float temperature = 0.0f, top_p = 1.0f;
    const cli_flag flags[] = {
        {"model_path", FLAG_STRING, &model_path, NULL, "the checkpoint to roll out (default: sft_output_dir)"},
        {"data_dir", FLAG_STRING, &data_dir, NULL, "directory with SPLIT.jsonl (default: data_dir)"},
        {"split", FLAG_STRING, &split, NULL, "split to roll out (default train)"},
        {"output_dir", FLAG_STRING, &out, NULL, "where confidence_head.safetensors goes (default: hsr_ee_output_dir)"},
        {"num_epochs", FLAG_INT, &num_epochs, NULL, "passes over the trajectories (default: hsr_ee.num_epochs)"},
        {"max_samples", FLAG_INT, &max_samples, NULL, "samples to roll out (default: hsr_ee.num_samples)"},
        {"threshold", FLAG_CONFIG, NULL, "hsr_ee.confidence_threshold", "initial exit threshold tau, in (0, 1)"},
        {"adaptive_threshold", FLAG_CONFIG_BOOL, NULL, "hsr_ee.adaptive_threshold",
         "learn tau by REINFORCE on R_HSR (else it stays fixed)"},
        {"max_reasoning_steps", FLAG_CONFIG, NULL, "hsr_ee.max_reasoning_steps", "K, steps per trajectory"},
        {"length_penalty_lambda", FLAG_CONFIG, NULL, "hsr_ee.length_penalty_lambda", "lambda, the cost of a step"},
        {"confidence_head_hidden_dim", FLAG_CONFIG, NULL, "hsr_ee.confidence_head_hidden_dim", "h, the gate's width"},
        {"learning_rate", FLAG_CONFIG, NULL, "hsr_ee.gate_learning_rate", "Adam step of the gate"},
        {"threshold_lr", FLAG_CONFIG, NULL, "hsr_ee.threshold_lr", "REINFORCE step of tau's logit"},
        CLI_GEN_FLAGS(temperature, top_p, max_new, seed),
        {"num_threads", FLAG_CONFIG, NULL, "num_threads", "threads (0 = all cores)"},
        {"skip_bad_lines", FLAG_BOOL, &skip_bad, NULL, "report and skip malformed JSONL lines"},
    };
    int rc = cli_parse("train-hsr-ee",
                       "Stage 2, HSR-EE: train the confidence gate on the model's trajectories (an answer forced "
                       "after every reasoning step) and, with --adaptive_threshold, the exit threshold tau.",
                       argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    if (seed < 0) seed = (int)cfg.seed;
    if (cli_check_gen_flags("train-hsr-ee", temperature, top_p, max_new)) return 2;
    if (num_epochs < 0 || max_samples < 0) {
        fprintf(stderr, "sevo train-hsr-ee: --num_epochs and --max_samples must be >= 0\n");
        return 2;
    }
    sevo_threads_init(cfg.num_threads);
    char data_path[4096];
    if (cli_split_path("train-hsr-ee", data_dir ? data_dir : cfg.data_dir, split, data_path, sizeof data_path))
        return 1;
    hsr_train_options o = {.cfg = &cfg, .model_path = model_path ? model_path : cfg.sft_output_dir,
                           .data_path = data_path, .output_dir = out ? out : cfg.hsr_ee_output_dir,
                           .num_epochs = num_epochs ? num_epochs : cfg.hsr_ee.num_epochs,
                           .max_samples = max_samples ? max_samples : cfg.hsr_ee.num_samples,
                           .gen = {.temperature = temperature, .top_p = top_p, .max_new_tokens = max_new,
                                   .seed = (uint64_t)seed},
                           .skip_bad_lines = skip_bad};
    hsr_train_summary s;
    sevo_error err;
    if (hsr_train_run(&o, &s, &err)) {
        fprintf(stderr, "sevo train-hsr-ee: %s\n", err.msg);
        return 1;
    }
    printf("hsr-ee: %d trajectories (%d training steps, %d held out); rollouts %.1fs, training %.1fs\n",
           s.trajectories, s.train_steps, s.heldout_steps, s.seconds_rollout, s.seconds_train);
    printf("hsr-ee: tau %.4f -> %.4f (%s); mean R_HSR %.4f -> %.4f\n", s.tau_start, s.tau_end,
           cfg.hsr_ee.adaptive_threshold ? "learned" : "fixed", s.reward_start, s.reward_end);
    printf("hsr-ee: held out: AUROC %.3f, calibration error %.3f; exit after %.2f steps on average, accuracy %.3f "
           "(%.3f after the last step); wrote %s/%s\n",
           s.auroc, s.ece, s.mean_exit_step, s.heldout_exit_accuracy, s.heldout_final_accuracy, o.output_dir,
           HSR_GATE_FILE);
    return 0;
}
