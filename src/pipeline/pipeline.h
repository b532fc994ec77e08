/* pipeline.h: the self-evolving loop end to end (DESIGN §1, Algorithm 2).
 *
 *   synth (only when the data directory has no train.jsonl and the model is the
 *   built-in tiny one) -> SFT (stage 1, π_ref) -> IPR preference pairs and the HSR-EE
 *   gate on the SFT model's trajectories (stage 2) -> SR-DPO from π_ref (stage 3) ->
 *   evaluation of the SFT and SR-DPO models on the same held-out sets, side by side,
 *   each also answering the test set with the gate's early exit.
 *
 * Each stage writes into its configured directory and, when its outputs are complete, a
 * stamp (.sevo_stage.json) holding a fingerprint of the configuration. A rerun skips
 * the stages whose stamp matches, resumes an interrupted SFT or SR-DPO run from its
 * newest checkpoint, and redoes IPR, the gate or evaluation (all deterministic) from the
 * start.
 * A stage directory holding another configuration's run is refused, never
 * overwritten.
 *
 * With an ablation mask the variants of pipeline/ablation.h follow, each a stage (or two:
 * training, then evaluation with the same gate) under output_dir/ablation, and the
 * ablation table is appended to the printed one. */
#ifndef SEVO_PIPELINE_PIPELINE_H
#define SEVO_PIPELINE_PIPELINE_H

#include "core/config.h"
#include "core/error.h"
#include "core/strbuf.h"

typedef struct pipeline_options {
    const sevo_config *cfg;
    int ablation; /* ABLATION_* mask (pipeline/ablation.h): variants run after the main
                   * stages, under output_dir/ablation; 0 = none */
    int verbose;
} pipeline_options;

/* Runs (or resumes) the pipeline; the results table (Markdown) is appended to table. */
int pipeline_run(const pipeline_options *o, strbuf *table, sevo_error *err);

#endif
