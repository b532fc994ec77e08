/* metrics.h: the evaluation metrics of DESIGN §7 for one split of predictions, and the
 * writers that put them into results.json and the Markdown results table.
 *
 * An accumulator is fed one prediction at a time (so a large split never has to be held
 * in memory) and finished into an eval_split_result holding both the raw counts and the
 * derived rates. Every rate whose denominator is zero is 0, and the count next to it
 * says why (e.g. pope.n == 0 on a split without yes/no questions).
 *
 * Definitions (all answers compared with answer_correct, i.e. after answer_normalize):
 *   - accuracy: correct answers / samples, overall, per question type (the 5 synth types
 *     plus "other" for empty or unknown types) and per depth (1..EVAL_MAX_DEPTH plus
 *     "other" for depth 0 = unknown or out of range).
 *   - POPE: over the samples whose ground truth is "yes" or "no" ("yes" is positive).
 *     A prediction that is neither "yes" nor "no" counts as a negative prediction ("not
 *     yes"): it lands in fn or tn and is also counted in pope.invalid. So pope.accuracy
 *     is correct answers / pope.n, which is (tp + tn - invalid answers to "no") / n:
 *     an invalid answer is never correct, even when it is not a false alarm.
 *     precision = tp / (tp + fp), recall = tp / (tp + fn), F1 their harmonic mean,
 *     yes_ratio = predictions "yes" / pope.n.
 *   - hallucination rate: among existence questions whose ground truth is "no" (the
 *     object is absent), the share answered "yes". Existence questions are those of type
 *     "exist" and untyped ones (empty type, as in a POPE file from elsewhere); a "no" to
 *     another type ("are there more circles than squares ?") is not an absent object.
 *     On a POPE split this is fp / (fp + tn).
 *   - where a false "yes" comes from: an absent question (above) is "named" when the
 *     question parses as "is there a <colour> <shape> ?" (synth_parse_exist_question) and
 *     the generated perception parses and names that type (any cell). The hallucination
 *     rate then splits into absent_named_yes / absent_questions (the description named
 *     the absent object and the answer followed it) and the rest (the description did not
 *     name it, or did not parse, or the question has another form: in the synthetic world
 *     mostly the first reasoning step "finding" the object anyway); the two add up to the
 *     rate (before rounding; the table shows them as points of it).
 *     absent_named / absent_questions is how often the description itself names the
 *     absent object, whatever the answer.
 *   - CHAIR over generated perceptions (samples with a perception and known ground-truth
 *     objects): each perception is parsed with synth_parse_perception. A mentioned object
 *     is hallucinated when its (colour, shape) type is absent from the image; positions
 *     are ignored, so a right object in the wrong cell is not a hallucination (that is a
 *     localisation error, which CHAIR does not measure). Mentions are counted per
 *     occurrence, as in the CHAIR paper. CHAIR_i = hallucinated mentions / mentions,
 *     CHAIR_s = perceptions with >= 1 hallucinated mention / parsed perceptions. A
 *     perception that does not parse (or names more than EVAL_MAX_MENTIONS objects) is
 *     counted in chair.unparsable and left out of every CHAIR number, because what it
 *     names is unknown. object recall = ground-truth objects whose type is mentioned /
 *     ground-truth objects, over the parsed perceptions.
 *   - mean reasoning steps, tokens and seconds per sample, over all samples and per
 *     type and depth bucket (what early exit saves, DESIGN §7).
 *   - the language-shortcut gap: accuracy with the real image minus accuracy with a
 *     blank image, from two finished results (eval_shortcut_gap). */
#ifndef SEVO_EVAL_METRICS_H
#define SEVO_EVAL_METRICS_H

#include <cjson/cJSON.h>

#include "core/error.h"
#include "core/strbuf.h"
#include "data/synth.h"

/* Question-type buckets: synth_qtype order, then "other". */
#define EVAL_TYPE_OTHER SYNTH_NUM_QTYPES
#define EVAL_NUM_TYPES (SYNTH_NUM_QTYPES + 1)
/* Depth buckets: [d] for depth d in 1..EVAL_MAX_DEPTH, [0] for anything else. */
#define EVAL_MAX_DEPTH 8
#define EVAL_NUM_DEPTHS (EVAL_MAX_DEPTH + 1)
/* Most objects one perception may name and still be parsed for CHAIR. */
#define EVAL_MAX_MENTIONS 64

/* One prediction with what is known about it. */
typedef struct eval_sample {
    const char *qtype;      /* synth type name; NULL or "" if unknown -> "other" */
    int depth;              /* 1..EVAL_MAX_DEPTH, 0 if unknown */
    const char *answer;     /* predicted answer (NULL counts as an empty answer) */
    const char *ground_truth;
    const char *question;   /* the question; NULL if unknown (no attribution of a "yes") */
    const char *perception; /* generated perception; NULL if none was generated */
    const synth_object *objects; /* the image's ground-truth objects */
    int num_objects;        /* entries in objects; -1 if unknown (no CHAIR) */
    double steps;           /* reasoning steps taken, >= 0 */
    double tokens;          /* tokens generated for this sample, >= 0 */
    double seconds;         /* time this sample cost, >= 0: samples run side by side, several
                             * per thread with their tokens computed together, and each
                             * pays its own running time plus its share of the batched
                             * steps (policy_seconds) */
} eval_sample;

typedef struct eval_bucket {
    long n, correct;
    double accuracy;
    double steps, tokens, seconds;                /* sums over the bucket's samples */
    double mean_steps, mean_tokens, mean_seconds; /* per sample */
} eval_bucket;

typedef struct eval_pope {
    long n;              /* samples with ground truth "yes" or "no" */
    long tp, fp, fn, tn; /* tp + fp + fn + tn == n */
    long invalid;        /* predictions neither "yes" nor "no" (inside fn and tn) */
    long correct;
    double accuracy, precision, recall, f1, yes_ratio;
} eval_pope;

typedef struct eval_chair {
    long perceptions;              /* parsed perceptions */
    long unparsable;               /* perceptions that did not parse (excluded) */
    long mentions, hallucinated;   /* objects named, and those absent from the image */
    long hallucinated_perceptions; /* parsed perceptions with >= 1 hallucinated mention */
    long gt_objects, gt_mentioned; /* ground-truth objects, and those whose type is named */
    double chair_i, chair_s, object_recall;
} eval_chair;

typedef struct eval_split_result {
    long n, correct;
    double accuracy;
    eval_bucket per_type[EVAL_NUM_TYPES];
    eval_bucket per_depth[EVAL_NUM_DEPTHS];
    eval_pope pope;
    long absent_questions, absent_yes; /* existence questions with answer "no"; "yes" to them */
    double hallucination_rate;         /* absent_yes / absent_questions */
    /* Of the absent questions, those whose generated perception names the asked object,
     * and the "yes" among them: a false "yes" the model's own description led to. The
     * rest (absent_yes - absent_named_yes) came from the reasoning: the description did
     * not name the object (or did not parse, or the question is not "is there a C S ?"). */
    long absent_named, absent_named_yes;
    double absent_named_rate;       /* absent_named / absent_questions */
    double hallucination_named;     /* absent_named_yes / absent_questions */
    double hallucination_not_named; /* (absent_yes - absent_named_yes) / absent_questions */
    eval_chair chair;
    double steps_total, tokens_total, seconds_total;
    double mean_steps, mean_tokens, mean_seconds;
} eval_split_result;

/* The running counts of one split (the rates in r stay 0 until eval_accum_finish). */
typedef struct eval_accum {
    eval_split_result r;
} eval_accum;

void eval_accum_init(eval_accum *a);

/* Adds one prediction. Fails (-1, with the field named in err, a left untouched) on a
 * NULL ground truth, negative or non-finite tokens/seconds, num_objects < -1, objects
 * NULL with num_objects > 0, or an object whose shape or colour is out of range. */
int eval_accum_add(eval_accum *a, const eval_sample *s, sevo_error *err);

/* Copies the counts into out and computes every rate. */
void eval_accum_finish(const eval_accum *a, eval_split_result *out);

/* The name of a type bucket ("exist" ... "compare", "other") and the bucket of a type
 * name (EVAL_TYPE_OTHER for NULL, "" or an unknown name). */
const char *eval_type_name(int bucket);
int eval_type_bucket(const char *qtype);

/* accuracy(real) - accuracy(blank), from finished results of the same questions with
 * the real image and with a blank one: how much of the accuracy needs the image. */
double eval_shortcut_gap(const eval_split_result *real, const eval_split_result *blank);

/* Adds r as an object under `key` of the JSON object parent, keys:
 *   "n", "correct", "accuracy",
 *   "per_type":  {"<type>": {"n", "correct", "accuracy"}, ...}  (non-empty buckets only),
 *   "per_depth": {"1".."8" or "other": {"n", "correct", "accuracy"}, ...}  (non-empty),
 *   "pope": {"n", "tp", "fp", "fn", "tn", "invalid", "accuracy", "precision", "recall",
 *            "f1", "yes_ratio"},
 *   "hallucination_rate", "absent_questions", "absent_named", "absent_named_yes",
 *   "absent_named_rate", "hallucination_named", "hallucination_not_named",
 *   "chair_i", "chair_s", "object_recall", "perceptions", "unparsable_perceptions",
 *   "mean_tokens", "mean_seconds".
 * On failure (out of memory, key already present) parent is left unchanged. */
int eval_result_add_json(cJSON *parent, const char *key, const eval_split_result *r,
                         sevo_error *err);

/* One model's column of the results table. A NULL split was not evaluated and shows as
 * "-"; so does a metric whose denominator is 0 (e.g. CHAIR without perceptions). */
typedef struct eval_model_results {
    const char *name;
    const eval_split_result *test;
    const eval_split_result *pope_random;
    const eval_split_result *pope_popular;
    const eval_split_result *pope_adversarial;
    int has_shortcut_gap; /* 0 when the blank-image run was not made */
    double shortcut_gap;  /* eval_shortcut_gap on the test split */
} eval_model_results;

/* Appends a Markdown table (a trailing newline included) to out: one column per model,
 * plus "Δ (<second> − <first>)" when exactly two are given, and these rows:
 *   accuracy on test, accuracy on test per depth (the depths any model has), POPE F1 on
 *   random / popular / adversarial, hallucination rate on adversarial and its two parts
 *   in points of it (object named in the description or not), the share of adversarial
 *   negatives the description names, CHAIR_i and CHAIR_s on test, shortcut gap, tokens per sample and ms per sample on test.
 * Rates are in percent with one decimal, tokens with one decimal, ms with two; the delta
 * is the difference of the shown (rounded) values, so it always matches the columns. A
 * '|' in a model name is escaped, line breaks become spaces. Fails on n_models < 1, a
 * NULL name, or out of memory (out then holds a partial table: discard it). */
int eval_markdown_table(const eval_model_results *models, int n_models, strbuf *out,
                        sevo_error *err);

/* Appends the early-exit table of one model (DESIGN §7): the same questions answered at
 * fixed depth K and with the gate's early exit, one column per depth and one for all,
 * rows of accuracy (%), mean reasoning steps, mean generated tokens and ms per sample
 * (each "fixed K" then "early exit"; the timing rows start "| ms per sample"), then a
 * line with the change in mean steps and accuracy. */
void eval_early_exit_table(const char *name, const eval_split_result *fixed, const eval_split_result *early,
                           strbuf *out);

#endif
