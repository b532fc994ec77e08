/* sr_dpo.h: stage 3, Self-Rewarding DPO on IPR's preference pairs (DESIGN §1).
 *
 * x = (image, question, the perception prompt); y_w = the refined perception, y_l = the
 * original one, each followed by the token that ends a perception. log π(y|x) is the
 * sum of y's token log-probs given the image and prompt (the reference's trainer drops
 * the image; sevo does not). π_ref is the frozen starting checkpoint: its log-probs are
 * computed once, before the first step. Every step also measures the pairs under a
 * blank image (`rewards/imageless_margins`, `logps/imageless_*`): when the margin
 * survives without the image, the policy has learnt a language preference rather than
 * a visual one (the failure mDPO describes). sr_dpo.image_preference_weight > 0 adds
 * mDPO's remedy, its conditional preference: the chosen text with the real image over
 * the same text with a masked copy of the image; `image_preference_loss` logs it. */
#ifndef SEVO_METHOD_SR_DPO_H
#define SEVO_METHOD_SR_DPO_H

#include "core/config.h"
#include "core/error.h"

typedef struct sr_dpo_options {
    const sevo_config *cfg;      /* sr_dpo.*, logging_steps, save_steps, seed, num_threads */
    const char *model_path;      /* the SFT checkpoint: π_ref, and π_θ's start */
    const char *preference_path; /* preferences.jsonl */
    const char *output_dir;
    int resume;    /* continue from the newest checkpoint-N in output_dir */
    int max_steps; /* stop after this many optimizer steps (0 = all epochs) */
    int skip_bad_lines;
    int verbose;
} sr_dpo_options;

int sr_dpo_run(const sr_dpo_options *o, sevo_error *err);

#endif
