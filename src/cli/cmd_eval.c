/* cmd_eval.c: `sevo eval` measures one model, or two side by side (--compare), on the
 * test set and the three POPE splits (DESIGN §7). */
#include <stdio.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/early_exit.h"
#include "core/threads.h"
#include "eval/evaluate.h"

int cmd_eval(int argc, char **argv) {
    sevo_config cfg;
    config_defaults(&cfg);
    const char *model_path = NULL, *compare = NULL, *data_dir = NULL, *out = NULL, *name = NULL, *compare_name = NULL,
               *gate_path = NULL;
    int max_samples = 0, skip_bad = 0, seed = 42, max_new = 64, use_early_exit = 0;
    float threshold = -1.0f;
    float temperature = 0.0f, top_p = 1.0f;
    const cli_flag flags[] = {
        {"model_path", FLAG_STRING, &model_path, NULL, "checkpoint to evaluate"},
        {"compare", FLAG_STRING, &compare, NULL, "a second checkpoint, side by side"},
        {"name", FLAG_STRING, &name, NULL, "the first model's label (default: its directory name)"},
        {"compare_name", FLAG_STRING, &compare_name, NULL, "the second model's label"},
        {"data_dir", FLAG_STRING, &data_dir, NULL, "directory with test.jsonl and pope_*.jsonl (default: data_dir)"},
        {"output_dir", FLAG_STRING, &out, NULL, "where results.json and results.md go (default: eval_output_dir)"},
        {"max_samples", FLAG_INT, &max_samples, NULL, "only the first N samples of each split"},
        {"max_reasoning_steps", FLAG_CONFIG, NULL, "hsr_ee.max_reasoning_steps", "at most K reasoning steps"},
        {"confidence_head_path", FLAG_STRING, &gate_path, NULL,
         "the HSR-EE gate: also answer test with early exit, next to fixed depth"},
        {"use_early_exit", FLAG_BOOL, &use_early_exit, NULL, "evaluate early exit with the gate"},
        {"threshold", FLAG_FLOAT, &threshold, NULL, "tau for early exit (default: the gate's learned tau)"},
        CLI_GEN_FLAGS(temperature, top_p, max_new, seed),
        {"num_threads", FLAG_CONFIG, NULL, "num_threads", "threads (0 = all cores)"},
        {"skip_bad_lines", FLAG_BOOL, &skip_bad, NULL, "report and skip malformed JSONL lines"},
    };
    int rc = cli_parse("eval", "Accuracy, POPE, hallucination, CHAIR and the language-shortcut gap, for one model "
                       "or two side by side.", argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    if (!model_path) {
        fprintf(stderr, "sevo eval: --model_path is required\n");
        return 2;
    }
    if (cli_check_gen_flags("eval", temperature, top_p, max_new)) return 2;
    if (max_samples < 0) {
        fprintf(stderr, "sevo eval: --max_samples %d: expected >= 0\n", max_samples);
        return 2;
    }
    cli_early_exit ee;
    if ((rc = cli_early_exit_open("eval", &ee, gate_path, use_early_exit, threshold, model_path))) return rc;
    if (ee.on && compare) {
        /* the gate reads hidden states: the second model must have the same width */
        cli_early_exit other;
        rc = cli_early_exit_open("eval", &other, gate_path, 1, threshold, compare);
        cli_early_exit_close(&other);
        if (rc) {
            cli_early_exit_close(&ee);
            return rc;
        }
    }
    sevo_threads_init(cfg.num_threads);
    eval_options o = {.cfg = &cfg, .data_dir = data_dir ? data_dir : cfg.data_dir,
                      .output_dir = out ? out : cfg.eval_output_dir, .model_paths = {model_path, compare},
                      .model_names = {name, compare_name}, .n_models = compare ? 2 : 1,
                      .max_samples = max_samples,
                      .gen = {.temperature = temperature, .top_p = top_p, .max_new_tokens = max_new,
                              .seed = (uint64_t)seed},
                      .skip_bad_lines = skip_bad, .gate = ee.on ? hsr_gate_step : NULL,
                      .gate_ctx = ee.on ? &ee.rule : NULL};
    eval_model_eval models[2];
    strbuf table = {0};
    sevo_error err;
    rc = 0;
    if (eval_run(&o, models, &table, &err)) {
        fprintf(stderr, "sevo eval: %s\n", err.msg);
        rc = 1;
    } else {
        printf("%s\nwrote %s/results.json and results.md\n", table.p, o.output_dir);
    }
    strbuf_free(&table);
    cli_early_exit_close(&ee);
    return rc;
}
