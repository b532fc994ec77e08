/* cmd_ipr.c: `sevo generate-ipr-data` runs the IPR data engine (stage 2) on a data set
 * and writes preference pairs for SR-DPO. */
#include <stdio.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/fsutil.h"
#include "core/threads.h"
#include "method/ipr.h"

int cmd_ipr(int argc, char **argv) {
    sevo_config cfg;
    config_defaults(&cfg);
    const char *model_path = NULL, *data_dir = NULL, *out = NULL, *split = "train";
    int max_refinement = -1, max_samples = 0, skip_bad = 0, seed = -1, max_new = 64;
    float temperature = -1.0f, top_p = -1.0f;
    const cli_flag flags[] = {
        {"model_path", FLAG_STRING, &model_path, NULL, "the SFT checkpoint (default: sft_output_dir)"},
        {"data_dir", FLAG_STRING, &data_dir, NULL, "directory with SPLIT.jsonl (default: data_dir)"},
        {"split", FLAG_STRING, &split, NULL, "split to mine (default train)"},
        {"output_dir", FLAG_STRING, &out, NULL, "where preferences.jsonl goes (default: ipr_data_dir)"},
        {"max_refinement", FLAG_INT, &max_refinement, NULL,
         "refinement rounds per failed perception (default: ipr.max_refinement_iterations)"},
        {"max_samples", FLAG_INT, &max_samples, NULL, "only the first N samples (default: ipr.num_samples)"},
        {"refinement_prompt_template", FLAG_CONFIG, NULL, "ipr.refinement_prompt_template",
         "the re-examination prompt, with {perception}"},
        {"discard_failed_samples", FLAG_CONFIG_BOOL, NULL, "ipr.discard_failed_samples",
         "drop samples no refinement fixed (else failed_samples.jsonl)"},
        CLI_GEN_FLAGS(temperature, top_p, max_new, seed),
        {"num_threads", FLAG_CONFIG, NULL, "num_threads", "threads (0 = all cores)"},
        {"skip_bad_lines", FLAG_BOOL, &skip_bad, NULL, "report and skip malformed JSONL lines"},
    };
    int rc = cli_parse("generate-ipr-data",
                       "Stage 2, IPR: turn the model's failed perceptions into preference pairs "
                       "(refined = chosen, original = rejected).",
                       argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    /* sampling defaults from the configuration (ipr.temperature, ipr.top_p, seed) */
    if (temperature < 0) temperature = cfg.ipr.temperature;
    if (top_p < 0) top_p = cfg.ipr.top_p;
    if (seed < 0) seed = (int)cfg.seed;
    if (cli_check_gen_flags("generate-ipr-data", temperature, top_p, max_new)) return 2;
    if (max_samples < 0) {
        fprintf(stderr, "sevo generate-ipr-data: --max_samples %d: expected >= 0\n", max_samples);
        return 2;
    }
    sevo_threads_init(cfg.num_threads);
    char data_path[4096];
    if (cli_split_path("generate-ipr-data", data_dir ? data_dir : cfg.data_dir, split, data_path, sizeof data_path))
        return 1;
    ipr_options o = {.cfg = &cfg, .model_path = model_path ? model_path : cfg.sft_output_dir,
                     .data_path = data_path, .output_dir = out ? out : cfg.ipr_data_dir,
                     .max_refinement = max_refinement >= 0 ? max_refinement : cfg.ipr.max_refinement_iterations,
                     .max_samples = max_samples ? max_samples : cfg.ipr.num_samples,
                     .gen = {.temperature = temperature, .top_p = top_p, .max_new_tokens = max_new,
                             .seed = (uint64_t)seed},
                     .skip_bad_lines = skip_bad, .verbose = 1};
    ipr_stats st;
    sevo_error err;
    double t0 = sevo_now();
    if (ipr_run(&o, &st, &err)) {
        fprintf(stderr, "sevo generate-ipr-data: %s\n", err.msg);
        return 1;
    }
    printf("ipr: %d samples: %d initially correct, %d refined (", st.total_samples, st.initially_correct,
           st.refined_success);
    for (int i = 1; i <= o.max_refinement; i++) printf("%s%d in round %d", i > 1 ? ", " : "", st.success_per_iteration[i], i);
    printf("), %d failed; %d pairs, success rate %.3f, pair yield %.3f (%.1fs); wrote %s\n", st.refined_failed,
           st.pairs_generated, ipr_success_rate(&st), ipr_pair_yield(&st), sevo_now() - t0, o.output_dir);
    if (st.verifier_checked > 0)
        printf("ipr: verifier on the ground-truth perceptions: %d/%d valid (%.3f); %d samples rejected a c_0 "
               "equal to the ground truth\n",
               st.verifier_valid, st.verifier_checked, (double)st.verifier_valid / st.verifier_checked,
               st.ground_truth_rejected);
    return 0;
}
