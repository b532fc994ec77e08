/* cmd_dpo.c: `sevo train-sr-dpo` aligns a model on preference pairs (stage 3). */
#include <stdio.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/threads.h"
#include "method/sr_dpo.h"

int cmd_dpo(int argc, char **argv) {
    sevo_config cfg;
    config_defaults(&cfg);
    const char *model_path = NULL, *prefs = NULL, *out = NULL;
    int resume = 0, max_steps = 0, skip_bad = 0;
    const cli_flag flags[] = {
        {"model_path", FLAG_STRING, &model_path, NULL, "the SFT checkpoint, also the frozen reference (default: sft_output_dir)"},
        {"preference_data", FLAG_STRING, &prefs, NULL, "preferences.jsonl (default: ipr_data_dir/preferences.jsonl)"},
        {"output_dir", FLAG_STRING, &out, NULL, "checkpoint directory to write (default: sr_dpo_output_dir)"},
        {"beta", FLAG_CONFIG, NULL, "sr_dpo.beta", "DPO temperature beta (> 0)"},
        {"learning_rate", FLAG_CONFIG, NULL, "sr_dpo.learning_rate", "peak learning rate"},
        {"batch_size", FLAG_CONFIG, NULL, "sr_dpo.batch_size", "pairs per micro-batch"},
        {"num_epochs", FLAG_CONFIG, NULL, "sr_dpo.num_epochs", "passes over the pairs"},
        {"gradient_accumulation_steps", FLAG_CONFIG, NULL, "sr_dpo.gradient_accumulation_steps", "micro-batches per step"},
        {"max_grad_norm", FLAG_CONFIG, NULL, "sr_dpo.max_grad_norm", "clip gradients to this global norm"},
        {"max_seq_length", FLAG_CONFIG, NULL, "sr_dpo.max_seq_length", "truncate sequences to this many tokens"},
        {"warmup_ratio", FLAG_CONFIG, NULL, "sr_dpo.warmup_ratio", "fraction of steps of linear warmup"},
        {"weight_decay", FLAG_CONFIG, NULL, "sr_dpo.weight_decay", "AdamW weight decay"},
        {"label_smoothing", FLAG_CONFIG, NULL, "sr_dpo.label_smoothing", "robust DPO: assumed label noise in [0, 0.5)"},
        {"dpop_lambda", FLAG_CONFIG, NULL, "sr_dpo.dpop_lambda", "DPO-Positive: penalty on the chosen falling below the reference (0 = off)"},
        {"image_preference_weight", FLAG_CONFIG, NULL, "sr_dpo.image_preference_weight", "mDPO's conditional term: the chosen text with its image preferred over a masked copy (0 = off)"},
        {"loss_type", FLAG_CONFIG, NULL, "sr_dpo.loss_type", "sigmoid, ipo or hinge"},
        {"logging_steps", FLAG_CONFIG, NULL, "logging_steps", "log every N steps"},
        {"save_steps", FLAG_CONFIG, NULL, "save_steps", "checkpoint every N steps"},
        {"seed", FLAG_CONFIG, NULL, "seed", "random seed"},
        {"num_threads", FLAG_CONFIG, NULL, "num_threads", "threads (0 = all cores)"},
        {"resume", FLAG_BOOL, &resume, NULL, "continue from the newest checkpoint in output_dir"},
        {"max_steps", FLAG_INT, &max_steps, NULL, "stop after N optimizer steps"},
        {"skip_bad_lines", FLAG_BOOL, &skip_bad, NULL, "report and skip malformed JSONL lines"},
    };
    int rc = cli_parse("train-sr-dpo",
                       "Stage 3: SR-DPO on IPR preference pairs, with log-probs conditioned on the image.", argc,
                       argv, flags, (int)(sizeof flags / sizeof flags[0]), &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    int threads = sevo_threads_init(cfg.num_threads);
    char pref_path[4096];
    if (!prefs) {
        snprintf(pref_path, sizeof pref_path, "%s/preferences.jsonl", cfg.ipr_data_dir);
        prefs = pref_path;
    }
    sr_dpo_options o = {.cfg = &cfg, .model_path = model_path ? model_path : cfg.sft_output_dir,
                        .preference_path = prefs, .output_dir = out ? out : cfg.sr_dpo_output_dir,
                        .resume = resume, .max_steps = max_steps, .skip_bad_lines = skip_bad, .verbose = 1};
    printf("sr_dpo: %d threads, %s + %s -> %s\n", threads, o.model_path, o.preference_path, o.output_dir);
    sevo_error err;
    if (sr_dpo_run(&o, &err)) {
        fprintf(stderr, "sevo train-sr-dpo: %s\n", err.msg);
        return 1;
    }
    return 0;
}
