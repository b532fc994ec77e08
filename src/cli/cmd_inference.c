/* cmd_inference.c: `sevo inference` runs the perceive -> reason -> answer trace on one
 * image (--image, --question) or on a JSONL split of a data directory, writing
 * predictions.jsonl (DESIGN §4) and printing accuracy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/early_exit.h"
#include "core/fsutil.h"
#include "core/threads.h"
#include "model/checkpoint.h"
#include "eval/evaluate.h"
#include "model/generate.h"

static int run_dataset(vlm *m, const sevo_tokenizer *tok, const gen_options *go, const sevo_config *cfg,
                       const char *data_dir, const char *split, const char *out_dir, int max_samples, int skip_bad,
                       cli_early_exit *ee) {
    sevo_error err;
    char path[4096], out_path[4096];
    if (cli_split_path("inference", data_dir, split, path, sizeof path)) return 1;
    policy_pool *pool = NULL;
    if (policy_pool_create(&pool, m, tok, go, 0, 0, &err)) {
        fprintf(stderr, "sevo inference: %s\n", err.msg);
        return 1;
    }
    sevo_path_join(out_path, sizeof out_path, out_dir, "predictions.jsonl");
    eval_split_options so = {.data_path = path, .max_samples = max_samples,
                             .max_steps = cfg->hsr_ee.max_reasoning_steps, .predictions_path = out_path,
                             .label = "inference", .skip_bad_lines = skip_bad,
                             .gate = ee->on ? hsr_gate_step : NULL, .gate_ctx = ee->on ? &ee->rule : NULL};
    eval_split_result r;
    double t0 = sevo_now();
    int bad = sevo_mkdirs(out_dir, &err) || eval_split(pool, &so, &r, &err);
    policy_pool_free(pool);
    if (bad) {
        fprintf(stderr, "sevo inference: %s\n", err.msg);
        return 1;
    }
    double dt = sevo_now() - t0;
    /* wall clock over samples: they run in parallel, so this is less than each one's own time */
    printf("accuracy %.4f (%ld/%ld) on %s; %.2f reasoning steps, %.1f tokens and %.2f ms of wall clock per "
           "sample%s; wrote %s\n",
           r.accuracy, r.correct, r.n, path, r.mean_steps, r.mean_tokens, r.n ? 1000.0 * dt / r.n : 0.0,
           ee->on ? " (early exit)" : "", out_path);
    return 0;
}

static int run_image(vlm *m, const sevo_tokenizer *tok, const gen_options *go, const sevo_config *cfg,
                     const char *image, const char *question, cli_early_exit *ee) {
    sevo_error err;
    vlm_policy *pol = NULL;
    trace_result r;
    if (policy_create(&pol, m, tok, go, &err) || policy_load_image(pol, image, &err) ||
        policy_reason(pol, policy_image(pol), question, cfg->hsr_ee.max_reasoning_steps,
                      ee->on ? hsr_gate_step : NULL, ee->on ? &ee->rule : NULL, &r, &err)) {
        fprintf(stderr, "sevo inference: %s\n", err.msg);
        policy_free(pol);
        return 1;
    }
    policy_free(pol);
    printf("perception: %s\n", r.perception);
    for (int k = 0; k < r.n_steps; k++) {
        printf("step %d: %s", k + 1, r.steps[k]);
        if (k < r.n_scores) printf("   (gate score %.3f, tau %.3f)", r.scores[k], ee->rule.tau);
        printf("\n");
    }
    printf("answer: %s\n", r.answer);
    printf("(%d steps, exit %s, %d tokens)\n", r.n_steps, trace_exit_name(r.exit_type), r.tokens_generated);
    return 0;
}

int cmd_inference(int argc, char **argv) {
    sevo_config cfg;
    config_defaults(&cfg);
    const char *model_path = NULL, *image = NULL, *question = NULL, *data_dir = NULL, *split = "test",
               *out = NULL, *gate_path = NULL;
    int max_samples = 0, skip_bad = 0, seed = 42, use_early_exit = 0;
    float threshold = -1.0f;
    float temperature = 0.0f, top_p = 1.0f;
    int max_new = 64;
    const cli_flag flags[] = {
        {"model_path", FLAG_STRING, &model_path, NULL, "checkpoint directory"},
        {"image", FLAG_STRING, &image, NULL, "one image (PNG or JPEG)"},
        {"question", FLAG_STRING, &question, NULL, "the question about --image"},
        {"data_dir", FLAG_STRING, &data_dir, NULL, "run a JSONL split of this directory instead"},
        {"split", FLAG_STRING, &split, NULL, "split name: reads SPLIT.jsonl (default test)"},
        {"output_dir", FLAG_STRING, &out, NULL, "where predictions.jsonl goes (default eval_output_dir)"},
        {"max_samples", FLAG_INT, &max_samples, NULL, "only the first N samples"},
        {"max_reasoning_steps", FLAG_CONFIG, NULL, "hsr_ee.max_reasoning_steps", "at most K reasoning steps"},
        {"confidence_head_path", FLAG_STRING, &gate_path, NULL,
         "the HSR-EE gate (confidence_head.safetensors, or its directory)"},
        {"use_early_exit", FLAG_BOOL, &use_early_exit, NULL, "exit after a step when the gate's score > tau"},
        {"threshold", FLAG_FLOAT, &threshold, NULL, "tau for early exit (default: the gate's learned tau)"},
        CLI_GEN_FLAGS(temperature, top_p, max_new, seed),
        {"num_threads", FLAG_CONFIG, NULL, "num_threads", "threads (0 = all cores)"},
        {"skip_bad_lines", FLAG_BOOL, &skip_bad, NULL, "report and skip malformed JSONL lines"},
    };
    int rc = cli_parse("inference", "Perceive, reason step by step and answer, for one image or a data set.",
                       argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    if (!model_path) {
        fprintf(stderr, "sevo inference: --model_path is required\n");
        return 2;
    }
    if (!data_dir && (!image || !question)) {
        fprintf(stderr, "sevo inference: give --image and --question, or --data_dir\n");
        return 2;
    }
    if (cli_check_gen_flags("inference", temperature, top_p, max_new)) return 2;
    cli_early_exit ee;
    if ((rc = cli_early_exit_open("inference", &ee, gate_path, use_early_exit, threshold, model_path))) return rc;
    sevo_threads_init(cfg.num_threads);
    sevo_error err;
    vlm *m = NULL;
    sevo_tokenizer *tok = NULL;
    if (checkpoint_load_model(model_path, &m, &tok, &err)) {
        fprintf(stderr, "sevo inference: %s\n", err.msg);
        cli_early_exit_close(&ee);
        return 1;
    }
    gen_options go = {.temperature = temperature, .top_p = top_p, .max_new_tokens = max_new, .seed = (uint64_t)seed};
    if (data_dir)
        rc = run_dataset(m, tok, &go, &cfg, data_dir, split, out ? out : cfg.eval_output_dir, max_samples, skip_bad,
                         &ee);
    else
        rc = run_image(m, tok, &go, &cfg, image, question, &ee);
    vlm_free(m);
    tokenizer_free(tok);
    cli_early_exit_close(&ee);
    return rc;
}
