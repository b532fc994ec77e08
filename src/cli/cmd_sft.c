/* cmd_sft.c: `sevo sft` trains stage 1 (supervised fine-tuning of every sub-policy). */
#include <stdio.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/threads.h"
#include "train/sft.h"

int cmd_sft(int argc, char **argv) {
    sevo_config cfg;
    config_defaults(&cfg);
    const char *data_dir = NULL, *out = NULL;
    int resume = 0, max_steps = 0, skip_bad = 0;
    const cli_flag flags[] = {
        {"data_dir", FLAG_STRING, &data_dir, NULL, "directory with train.jsonl (default: data_dir)"},
        {"output_dir", FLAG_STRING, &out, NULL, "checkpoint directory to write (default: sft_output_dir)"},
        {"model_path", FLAG_CONFIG, NULL, "model.model_name_or_path", "start from this checkpoint or built-in"},
        {"learning_rate", FLAG_CONFIG, NULL, "sft.learning_rate", "peak learning rate"},
        {"batch_size", FLAG_CONFIG, NULL, "sft.batch_size", "sequences per micro-batch"},
        {"num_epochs", FLAG_CONFIG, NULL, "sft.num_epochs", "passes over the data"},
        {"gradient_accumulation_steps", FLAG_CONFIG, NULL, "sft.gradient_accumulation_steps", "micro-batches per step"},
        {"max_seq_length", FLAG_CONFIG, NULL, "sft.max_seq_length", "truncate sequences to this many tokens"},
        {"warmup_ratio", FLAG_CONFIG, NULL, "sft.warmup_ratio", "fraction of steps of linear warmup"},
        {"weight_decay", FLAG_CONFIG, NULL, "sft.weight_decay", "AdamW weight decay"},
        {"max_grad_norm", FLAG_CONFIG, NULL, "sft.max_grad_norm", "clip gradients to this global norm"},
        {"logging_steps", FLAG_CONFIG, NULL, "logging_steps", "log every N steps"},
        {"save_steps", FLAG_CONFIG, NULL, "save_steps", "checkpoint every N steps"},
        {"seed", FLAG_CONFIG, NULL, "seed", "random seed"},
        {"num_threads", FLAG_CONFIG, NULL, "num_threads", "threads (0 = all cores)"},
        {"resume", FLAG_BOOL, &resume, NULL, "continue from the newest checkpoint in output_dir"},
        {"max_steps", FLAG_INT, &max_steps, NULL, "stop after N optimizer steps"},
        {"skip_bad_lines", FLAG_BOOL, &skip_bad, NULL, "report and skip malformed JSONL lines"},
    };
    int rc = cli_parse("sft", "Stage 1: supervised fine-tuning of every sub-policy (perceive, reason, "
                       "answer from a description, refine).",
                       argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    int threads = sevo_threads_init(cfg.num_threads);
    sft_options o = {.cfg = &cfg, .data_dir = data_dir ? data_dir : cfg.data_dir,
                     .output_dir = out ? out : cfg.sft_output_dir, .resume = resume,
                     .max_steps = max_steps, .skip_bad_lines = skip_bad, .verbose = 1};
    printf("sft: %d threads, data %s -> %s\n", threads, o.data_dir, o.output_dir);
    sevo_error err;
    if (sft_run(&o, &err)) {
        fprintf(stderr, "sevo sft: %s\n", err.msg);
        return 1;
    }
    return 0;
}
