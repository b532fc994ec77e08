/* cmd_pipeline.c: `sevo pipeline` runs the whole self-evolving loop (Algorithm 2):
 * synth -> SFT -> IPR + HSR-EE gate -> SR-DPO -> evaluation of SFT vs SR-DPO (also with
 * early exit), resumable; with --ablation, the ablation variants after it. */
#include <stdio.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/threads.h"
#include "pipeline/ablation.h"
#include "pipeline/pipeline.h"

int cmd_pipeline(int argc, char **argv) {
    sevo_config cfg;
    config_defaults(&cfg);
    const char *out = NULL, *ablation = NULL;
    const cli_flag flags[] = {
        {"output_dir", FLAG_STRING, &out, NULL,
         "put every stage under this directory (data, sft_ckpt, ipr_data, sr_dpo_ckpt, eval_results)"},
        {"data_dir", FLAG_CONFIG, NULL, "data_dir", "data set (rendered here when empty and the model is sevo-tiny)"},
        {"model_path", FLAG_CONFIG, NULL, "model.model_name_or_path", "start from this checkpoint or built-in"},
        {"seed", FLAG_CONFIG, NULL, "seed", "seed of the world, the initialisation and the shuffles"},
        {"num_threads", FLAG_CONFIG, NULL, "num_threads", "threads (0 = all cores)"},
        {"ablation", FLAG_STRING, &ablation, NULL,
         "then the ablations: all, or one of full, no_hsr_ee, no_ipr (DPO on random negatives), no_sr_dpo "
         "(binary-reward PPO); they go under OUTPUT_DIR/ablation"},
    };
    int rc = cli_parse("pipeline",
                       "The self-evolving loop: synth (if needed) -> SFT -> IPR + HSR-EE gate -> SR-DPO -> "
                       "evaluation, each stage skipped when complete and resumed when interrupted. Every "
                       "configuration key can be set with --section.key VALUE; output directories come from the "
                       "configuration.",
                       argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    pipeline_options o = {.cfg = &cfg, .verbose = 1};
    sevo_error err;
    if (ablation && ablation_parse(ablation, &o.ablation, &err)) {
        fprintf(stderr, "sevo pipeline: %s\n", err.msg);
        return 2;
    }
    if (out) {
        /* one directory for a whole run, e.g. one per seed */
        struct { char *dst; const char *sub; } dirs[] = {
            {cfg.output_dir, ""}, {cfg.data_dir, "/data"}, {cfg.sft_output_dir, "/sft_ckpt"},
            {cfg.ipr_data_dir, "/ipr_data"}, {cfg.hsr_ee_output_dir, "/hsr_ee_ckpt"},
            {cfg.sr_dpo_output_dir, "/sr_dpo_ckpt"}, {cfg.eval_output_dir, "/eval_results"}};
        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
            if (snprintf(dirs[i].dst, SEVO_PATH_MAX, "%s%s", out, dirs[i].sub) >= SEVO_PATH_MAX) {
                fprintf(stderr, "sevo pipeline: --output_dir: path too long\n");
                return 2;
            }
    }
    int threads = sevo_threads_init(cfg.num_threads);
    printf("pipeline: %d threads, output %s\n", threads, cfg.output_dir);
    strbuf table = {0};
    if (pipeline_run(&o, &table, &err)) {
        fprintf(stderr, "sevo pipeline: %s\n", err.msg);
        strbuf_free(&table);
        return 1;
    }
    printf("\n%s", table.p ? table.p : "");
    strbuf_free(&table);
    return 0;
}
