/* ablation.h: the ablation study of issue 4 — what each component of the method adds.
 *
 * Four variants, on the data, SFT model, gate and seed of one pipeline run:
 *   full       SR-DPO on IPR's pairs, answering with the gate's early exit
 *   no_hsr_ee  the same model at fixed depth K (no gate)
 *   no_ipr     DPO with SR-DPO's settings on random negatives: each IPR pair keeps its
 *              image, question and chosen perception, and its rejected perception is
 *              the chosen perception of another pair's (different) image; so only where
 *              the negatives come from changes, not how many pairs or what is preferred
 *   no_sr_dpo  the binary-reward PPO baseline (method/ppo.h) in SR-DPO's place
 * Each row reads the evaluation that the pipeline wrote for its model (results.json). */
#ifndef SEVO_PIPELINE_ABLATION_H
#define SEVO_PIPELINE_ABLATION_H

#include <stdint.h>

#include "core/error.h"
#include "core/strbuf.h"

enum {
    ABLATION_FULL = 1 << 0,
    ABLATION_NO_HSR_EE = 1 << 1,
    ABLATION_NO_IPR = 1 << 2,
    ABLATION_NO_SR_DPO = 1 << 3,
    ABLATION_ALL = (1 << 4) - 1
};
#define ABLATION_NUM_VARIANTS 4

/* The variant's name ("full" ...) for bit i of the mask. */
const char *ablation_variant_name(int i);

/* "all", "full", "no_hsr_ee", "no_ipr" or "no_sr_dpo" -> *mask. */
int ablation_parse(const char *name, int *mask, sevo_error *err);

/* Writes out_path (atomically; image paths relative to its directory) from the pairs in
 * in_path with each rejected perception replaced by the chosen perception of another
 * pair, drawn with seed, whose image and chosen text both differ. Needs at least two
 * pairs with different images. */
int ablation_random_negatives(const char *in_path, const char *out_path, uint64_t seed, sevo_error *err);

/* One row of the table. */
typedef struct ablation_row {
    double accuracy;           /* test, % */
    double hallucination_rate; /* POPE adversarial: "yes" to absent objects, % */
    double pope_f1;            /* mean of the three POPE splits' F1, % */
    double chair_i;            /* test perceptions, % */
    double mean_steps;         /* reasoning steps per test question */
    double mean_tokens;        /* generated tokens per test answer */
} ablation_row;

/* Reads the row of model `model` (index in results.json's "models") from an evaluation's
 * results.json; early_exit selects the test split answered with the gate. */
int ablation_row_read(const char *results_json, int model, int early_exit, ablation_row *row, sevo_error *err);

/* The table of the variants in mask (rows[i] for bit i) as Markdown into md, and as JSON
 * ({"variants": [{"name", "accuracy", ...}]}) written atomically to json_path. */
int ablation_table_write(int mask, const ablation_row rows[ABLATION_NUM_VARIANTS], const char *json_path,
                         strbuf *md, sevo_error *err);

#endif
