/* ipr.h: Iterative Perception Refinement, the data engine of DESIGN §1 (Algorithm 3).
 *
 * For a sample (I, Q, a_gt) the model perceives c_0 = π_perc(I, Q). A description is
 * valid when the model, answering from it alone without the image (π_text), gets a_gt
 * right. A valid c_0 gives no pair. Otherwise the model re-examines the image under the
 * refinement prompt up to max_refinement times, c_i = refine(I, Q, c_{i-1}); the first
 * valid c_i becomes the chosen perception of a pair whose rejected one is c_0. The
 * model's own failures become hard negatives; nothing but a_gt is supervised. */
#ifndef SEVO_METHOD_IPR_H
#define SEVO_METHOD_IPR_H

#include "core/config.h"
#include "core/error.h"
#include "model/generate.h"

#define IPR_MAX_ITERATIONS 16

typedef enum { IPR_INITIALLY_CORRECT = 0, IPR_REFINED = 1, IPR_FAILED = 2 } ipr_outcome;

typedef struct ipr_sample_result {
    ipr_outcome outcome;
    int iteration;                /* the refinement round that succeeded (1-based); 0 otherwise */
    char initial[TRACE_TEXT];     /* c_0, the rejected perception */
    char refined[TRACE_TEXT];     /* the last refinement tried (the chosen one on success) */
    char answer[TRACE_TEXT];      /* π_text's answer from the last description checked */
} ipr_sample_result;

/* Runs Algorithm 3 on one sample. image: normalised pixels of the model's size. */
int ipr_process_sample(vlm_policy *p, const float *image, const char *question, const char *ground_truth,
                       int max_refinement, const char *refinement_template, ipr_sample_result *r,
                       sevo_error *err);

typedef struct ipr_stats {
    int total_samples, initially_correct, refined_success, refined_failed, pairs_generated;
    int max_refinement;
    int success_per_iteration[IPR_MAX_ITERATIONS + 1]; /* [i] = pairs from round i, 1-based */
    /* The verifier against the data's own ground-truth perceptions (records that carry
     * one): how many were checked, how many Valid accepts, and how many samples had a
     * c_0 identical to the ground truth and still rejected (every such pair prefers a
     * changed, wrong description). Diagnostics only: they change no pair. */
    int verifier_checked, verifier_valid, ground_truth_rejected;
} ipr_stats;

void ipr_stats_add(ipr_stats *s, const ipr_sample_result *r);
/* Adds one record's verifier diagnostic: gt_valid = Valid(its ground-truth perception),
 * and whether c_0 (r) equals that perception while failing Valid. */
void ipr_stats_add_verifier(ipr_stats *s, const ipr_sample_result *r, const char *ground_truth_perception,
                            int gt_valid);
/* refined_success / (total − initially_correct); 0 when every sample was correct. */
double ipr_success_rate(const ipr_stats *s);
/* pairs_generated / total_samples. */
double ipr_pair_yield(const ipr_stats *s);
/* ipr_stats.json, written atomically. */
int ipr_stats_save(const ipr_stats *s, const char *path, sevo_error *err);

typedef struct ipr_options {
    const sevo_config *cfg;  /* ipr.* (template, max iterations, discard), num_threads */
    const char *model_path;  /* the SFT checkpoint */
    const char *data_path;   /* a JSONL file of samples with images, questions, answers */
    const char *output_dir;  /* receives preferences.jsonl, ipr_stats.json (and
                              * failed_samples.jsonl when failed samples are kept) */
    int max_refinement;      /* N_max */
    int max_samples;         /* 0 = all */
    gen_options gen;         /* sampling for perceptions, refinements and answers */
    int skip_bad_lines;
    int verbose;
} ipr_options;

/* The whole engine: loads the model and data, runs every sample, and writes the files
 * atomically (nothing is written when it fails). preferences.jsonl holds the pairs;
 * with ipr.discard_failed_samples false, the samples no refinement could fix are kept
 * in failed_samples.jsonl (image_path, question, ground_truth, rejected, iteration =
 * rounds tried) for later rounds, since a pair needs a chosen perception. */
int ipr_run(const ipr_options *o, ipr_stats *stats, sevo_error *err);

#endif
