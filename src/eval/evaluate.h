/* evaluate.h: running a model over held-out splits and measuring it (DESIGN §7).
 *
 * eval_split runs the full perceive -> reason -> answer trace on every sample of one
 * JSONL split (greedy unless the policy samples), optionally with a blank image in place
 * of the real one (the language-shortcut probe), writes predictions.jsonl (DESIGN §4)
 * and accumulates the metrics of eval/metrics.h. The image's ground-truth objects for
 * CHAIR come from the sample's ground-truth perception when it follows the synthetic
 * world's format.
 *
 * eval_run evaluates one model, or two side by side, on test.jsonl and the three POPE
 * splits of a data directory plus the blank-image pass over test, and writes
 * results.json, results.md and the predictions into the output directory. */
#ifndef SEVO_EVAL_EVALUATE_H
#define SEVO_EVAL_EVALUATE_H

#include "core/config.h"
#include "core/error.h"
#include "core/strbuf.h"
#include "eval/metrics.h"
#include "model/generate.h"

typedef struct eval_split_options {
    const char *data_path;        /* the split's JSONL file */
    int max_samples;              /* 0 = all */
    int max_steps;                /* K */
    int blank_image;              /* answer every question about a blank image instead */
    const char *predictions_path; /* written atomically; NULL = not written */
    const char *label;            /* progress label */
    int skip_bad_lines;
    step_gate_fn gate;            /* early exit (HSR-EE); NULL = fixed depth */
    void *gate_ctx;
} eval_split_options;

/* The samples run in parallel on the pool's policies (see policy_pool_run); the
 * predictions and metrics are taken in the split's order. The gate, when given, is
 * called from every thread: it must be reentrant (hsr_gate_step is). */
int eval_split(policy_pool *pool, const eval_split_options *o, eval_split_result *out, sevo_error *err);

/* The splits eval_run needs in the data directory, in table order. */
#define EVAL_NUM_SPLITS 4
extern const char *const EVAL_SPLITS[EVAL_NUM_SPLITS]; /* test, pope_random, pope_popular, pope_adversarial */

/* A model's evaluation: the four splits, and test with a blank image. */
typedef struct eval_model_eval {
    char name[128];
    char path[1024];
    eval_split_result split[EVAL_NUM_SPLITS];
    eval_split_result test_blank;
    double shortcut_gap;
    int has_early_exit;
    eval_split_result test_early_exit; /* test again, with the gate's early exit */
} eval_model_eval;

typedef struct eval_options {
    const sevo_config *cfg;      /* hsr_ee.max_reasoning_steps, num_threads */
    const char *data_dir;
    const char *output_dir;
    const char *model_paths[2];
    const char *model_names[2];  /* labels in the table (NULL: the directory's name) */
    int n_models;                /* 1, or 2 for --compare */
    int max_samples;             /* per split, 0 = all */
    gen_options gen;
    int skip_bad_lines;
    /* With a gate, each model also answers test with early exit (test_early_exit in
     * results.json, and the early-exit table in results.md). */
    step_gate_fn gate;
    void *gate_ctx;
} eval_options;

/* Evaluates every model and writes results.json, results.md and
 * <name>/<split>_predictions.jsonl under output_dir. The Markdown table is appended to
 * table (for printing). models receives the results (n_models entries). */
int eval_run(const eval_options *o, eval_model_eval *models, strbuf *table, sevo_error *err);

#endif
