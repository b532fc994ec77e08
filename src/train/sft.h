/* sft.h: stage 1, supervised fine-tuning of every sub-policy (DESIGN §1, §2).
 *
 * Each training record becomes up to three examples: the full perceive -> reason ->
 * answer trace (with the image), answering from the description alone (no image), and
 * refining a wrong description under the refinement prompt (when the record carries a
 * `wrong_perception`). Records without a perception train the answer directly. */
#ifndef SEVO_TRAIN_SFT_H
#define SEVO_TRAIN_SFT_H

#include "core/config.h"
#include "core/error.h"

typedef struct sft_options {
    const sevo_config *cfg;
    const char *data_dir;   /* holds train.jsonl */
    const char *output_dir; /* the checkpoint directory to write */
    int resume;             /* continue from the newest checkpoint-N in output_dir */
    int max_steps;          /* stop after this many optimizer steps (0 = all epochs) */
    int skip_bad_lines;
    int verbose;            /* log lines on stdout */
} sft_options;

int sft_run(const sft_options *o, sevo_error *err);

#endif
