/* sft.h: stage 1, supervised fine-tuning of every sub-policy (DESIGN §1, §2).
 *
 * Each training record becomes up to four examples: writing its caption (when it
 * carries one, with the image), the full perceive -> reason -> answer trace (with the
 * image), answering from the description alone (no image), and refining a wrong
 * description under the refinement prompt (when the record carries a
 * `wrong_perception`). Records without a perception train the answer directly. */
#ifndef SEVO_TRAIN_SFT_H
#define SEVO_TRAIN_SFT_H

#include "core/config.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/tokenizer.h"
#include "model/vlm.h"
#include "train/examples.h"

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

/* The examples of ds in record order: for a record with a perception, the caption
 * example when it has a caption (the caption and the <step> after it are the targets),
 * the trace (cut after a step k in [depth, K) with probability
 * sft.early_answer_fraction, the forced <answer> then not a target; with a caption its
 * perception is read, not trained), the text-only example (answering at once, or with
 * sft.text_reasoning writing the question's steps up to its depth first), and the
 * refine example when the record has a wrong_perception; else the answer-only example. es must have been
 * initialised for c's image size. */
int sft_build_examples(const sevo_dataset *ds, const sevo_tokenizer *tok, const vlm_config *c,
                       const sevo_config *cfg, int max_len, example_set *es, sevo_error *err);

#endif
