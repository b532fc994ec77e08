/* test_metrics.c: the evaluation metrics of DESIGN §7 on small hand-computed cases (each
 * case's expected numbers are worked out in the comment above it), the zero-denominator
 * and unparsable-perception rules, bad samples, the results.json keys read back with
 * cJSON, and the Markdown table with its delta column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "data/synth.h"
#include "eval/metrics.h"

#define EPS 1e-9

static void assert_near(double got, double want, const char *what) {
    if (fabs(got - want) > 1e-6) fail_msg("%s = %.9f, want %.9f", what, got, want);
}

/* Adds a sample that has no perception (CHAIR untouched) and no cost. */
static void add_qa(eval_accum *a, const char *qtype, int depth, const char *pred,
                   const char *gt) {
    sevo_error err = {{0}};
    eval_sample s = {.qtype = qtype, .depth = depth, .answer = pred, .ground_truth = gt,
                     .num_objects = -1};
    if (eval_accum_add(a, &s, &err) != 0) fail_msg("eval_accum_add: %s", err.msg);
}

/* Adds a sample whose only content is a perception of an image with these objects. */
static void add_perception(eval_accum *a, const char *perception, const synth_object *objs,
                           int n) {
    sevo_error err = {{0}};
    eval_sample s = {.qtype = "count", .depth = 2, .answer = "1", .ground_truth = "1",
                     .perception = perception, .objects = objs, .num_objects = n};
    if (eval_accum_add(a, &s, &err) != 0) fail_msg("eval_accum_add: %s", err.msg);
}

static synth_object obj(const char *color, const char *shape, const char *pos) {
    synth_object o = {synth_shape_index(shape), synth_color_index(color),
                      synth_position_index(pos)};
    assert_true(o.shape >= 0 && o.color >= 0 && o.position >= 0);
    return o;
}

static void test_type_buckets(void **state) {
    (void)state;
    assert_int_equal(eval_type_bucket("exist"), SYNTH_Q_EXIST);
    assert_int_equal(eval_type_bucket("compare"), SYNTH_Q_COMPARE);
    assert_int_equal(eval_type_bucket(""), EVAL_TYPE_OTHER);
    assert_int_equal(eval_type_bucket(NULL), EVAL_TYPE_OTHER);
    assert_int_equal(eval_type_bucket("Exist"), EVAL_TYPE_OTHER); /* names are exact */
    assert_string_equal(eval_type_name(SYNTH_Q_SPATIAL), "spatial");
    assert_string_equal(eval_type_name(EVAL_TYPE_OTHER), "other");
}

/* Ten predictions over every type and depth bucket:
 *   #  type     depth pred   gt   correct
 *   1  exist    1     yes    yes  1
 *   2  exist    1     No.    no   1
 *   3  exist    1     yes    no   0   (hallucination: "yes" to an absent object)
 *   4  color    2     red    red  1
 *   5  count    2     two    2    1   (number words are normalised)
 *   6  count    2     3      2    0
 *   7  spatial  3     yes    no   0   (a wrong "yes", but not about an absent object)
 *   8  compare  3     no     no   1
 *   9  ""       0     foo    foo  1   -> type other, depth other
 *  10  bogus    12    x      y    0   -> type other, depth other (12 > 8)
 * overall 6/10; exist 2/3, color 1/1, count 1/2, spatial 0/1, compare 1/1, other 1/2;
 * depth 1: 2/3, 2: 2/3, 3: 1/2, other: 1/2.
 * POPE over #1,2,3,7,8: tp 1 (#1), fp 2 (#3,#7), fn 0, tn 2 (#2,#8), accuracy 3/5.
 * Hallucination over existence questions with gt "no" (#2,#3): 1/2. */
static void fill_mixed(eval_accum *a) {
    eval_accum_init(a);
    add_qa(a, "exist", 1, "yes", "yes");
    add_qa(a, "exist", 1, "No.", "no");
    add_qa(a, "exist", 1, "yes", "no");
    add_qa(a, "color", 2, "red", "red");
    add_qa(a, "count", 2, "two", "2");
    add_qa(a, "count", 2, "3", "2");
    add_qa(a, "spatial", 3, "yes", "no");
    add_qa(a, "compare", 3, "no", "no");
    add_qa(a, "", 0, "foo", "foo");
    add_qa(a, "bogus", 12, "x", "y");
}

static void test_accuracy_buckets(void **state) {
    (void)state;
    eval_accum a;
    eval_split_result r;
    fill_mixed(&a);
    eval_accum_finish(&a, &r);
    assert_int_equal(r.n, 10);
    assert_int_equal(r.correct, 6);
    assert_near(r.accuracy, 0.6, "accuracy");

    const long type_n[EVAL_NUM_TYPES] = {3, 1, 2, 1, 1, 2};
    const long type_c[EVAL_NUM_TYPES] = {2, 1, 1, 0, 1, 1};
    for (int t = 0; t < EVAL_NUM_TYPES; t++) {
        assert_int_equal(r.per_type[t].n, type_n[t]);
        assert_int_equal(r.per_type[t].correct, type_c[t]);
        assert_near(r.per_type[t].accuracy, (double)type_c[t] / (double)type_n[t],
                    eval_type_name(t));
    }
    const long depth_n[EVAL_NUM_DEPTHS] = {2, 3, 3, 2, 0, 0, 0, 0, 0};
    const long depth_c[EVAL_NUM_DEPTHS] = {1, 2, 2, 1, 0, 0, 0, 0, 0};
    for (int d = 0; d < EVAL_NUM_DEPTHS; d++) {
        assert_int_equal(r.per_depth[d].n, depth_n[d]);
        assert_int_equal(r.per_depth[d].correct, depth_c[d]);
        assert_near(r.per_depth[d].accuracy,
                    depth_n[d] ? (double)depth_c[d] / (double)depth_n[d] : 0.0, "depth acc");
    }

    assert_int_equal(r.pope.n, 5);
    assert_int_equal(r.pope.tp, 1);
    assert_int_equal(r.pope.fp, 2);
    assert_int_equal(r.pope.fn, 0);
    assert_int_equal(r.pope.tn, 2);
    assert_int_equal(r.pope.invalid, 0);
    assert_near(r.pope.accuracy, 0.6, "pope accuracy");
    assert_int_equal(r.absent_questions, 2);
    assert_int_equal(r.absent_yes, 1);
    assert_near(r.hallucination_rate, 0.5, "hallucination rate");
    /* No perceptions were given: CHAIR is empty, not an error. */
    assert_int_equal(r.chair.perceptions, 0);
    assert_int_equal(r.chair.unparsable, 0);
}

/* The POPE case of the brief: 10 existence predictions,
 *   TP = 3 (yes/yes), FP = 2 (gt no, pred yes), FN = 1 (gt yes, pred no), TN = 4.
 * precision = 3/5 = 0.6, recall = 3/4 = 0.75, F1 = 2*0.6*0.75/1.35 = 0.666667,
 * yes-ratio = (3+2)/10 = 0.5, accuracy = (3+4)/10 = 0.7,
 * hallucination rate = FP / (FP + TN) = 2/6 = 0.333333. */
static void test_pope_hand_case(void **state) {
    (void)state;
    eval_accum a;
    eval_accum_init(&a);
    for (int i = 0; i < 3; i++) add_qa(&a, "exist", 1, "Yes", "yes");
    for (int i = 0; i < 2; i++) add_qa(&a, "exist", 1, "yes.", "no");
    add_qa(&a, "exist", 1, "no", "yes");
    for (int i = 0; i < 4; i++) add_qa(&a, "exist", 1, "NO", "no");
    eval_split_result r;
    eval_accum_finish(&a, &r);
    assert_int_equal(r.pope.n, 10);
    assert_int_equal(r.pope.tp, 3);
    assert_int_equal(r.pope.fp, 2);
    assert_int_equal(r.pope.fn, 1);
    assert_int_equal(r.pope.tn, 4);
    assert_near(r.pope.precision, 0.6, "precision");
    assert_near(r.pope.recall, 0.75, "recall");
    assert_near(r.pope.f1, 2 * 0.6 * 0.75 / 1.35, "f1");
    assert_near(r.pope.f1, 0.6666667, "f1 (decimal)");
    assert_near(r.pope.yes_ratio, 0.5, "yes ratio");
    assert_near(r.pope.accuracy, 0.7, "pope accuracy");
    assert_near(r.accuracy, 0.7, "accuracy");
    assert_int_equal(r.absent_questions, 6);
    assert_near(r.hallucination_rate, 2.0 / 6.0, "hallucination rate");
}

/* Predictions that are neither yes nor no count as "not yes" (negative), are never
 * correct, and are counted in pope.invalid. Untyped questions (qtype NULL, as in a POPE
 * file from elsewhere) count as existence questions.
 *   gt yes, "maybe"     -> fn, invalid
 *   gt no,  "not sure"  -> tn, invalid, wrong (containment would have called it "no")
 *   gt yes, "yes"       -> tp
 *   gt no,  "no"        -> tn
 * n 4, tp 1, fp 0, fn 1, tn 2, invalid 2, correct 2: accuracy 0.5 (not (tp+tn)/n = 0.75),
 * precision 1/1 = 1, recall 1/2 = 0.5, F1 = 2*1*0.5/1.5 = 0.666667, yes-ratio 0.25,
 * hallucination 0/2 = 0. */
static void test_pope_invalid_answers(void **state) {
    (void)state;
    eval_accum a;
    eval_accum_init(&a);
    add_qa(&a, NULL, 1, "maybe", "yes");
    add_qa(&a, NULL, 1, "not sure", "no");
    add_qa(&a, NULL, 1, "yes", "yes");
    add_qa(&a, NULL, 1, "no", "no");
    eval_split_result r;
    eval_accum_finish(&a, &r);
    assert_int_equal(r.pope.n, 4);
    assert_int_equal(r.pope.tp, 1);
    assert_int_equal(r.pope.fp, 0);
    assert_int_equal(r.pope.fn, 1);
    assert_int_equal(r.pope.tn, 2);
    assert_int_equal(r.pope.invalid, 2);
    assert_int_equal(r.pope.correct, 2);
    assert_near(r.pope.accuracy, 0.5, "pope accuracy");
    assert_near(r.pope.precision, 1.0, "precision");
    assert_near(r.pope.recall, 0.5, "recall");
    assert_near(r.pope.f1, 2.0 / 3.0, "f1");
    assert_near(r.pope.yes_ratio, 0.25, "yes ratio");
    assert_int_equal(r.absent_questions, 2);
    assert_near(r.hallucination_rate, 0.0, "hallucination rate");
    /* A NULL answer is an empty answer: negative, invalid, wrong. */
    add_qa(&a, "exist", 1, NULL, "yes");
    eval_accum_finish(&a, &r);
    assert_int_equal(r.pope.fn, 2);
    assert_int_equal(r.pope.invalid, 3);
    assert_int_equal(r.correct, 2);
}

/* Where a false "yes" comes from. Six absent existence questions (and one present):
 *   1 "is there a red circle ?", description names a red circle, answer yes -> named, yes
 *   2 "is there a red circle ?", description names a red circle, answer no  -> named
 *   3 "is there a blue square ?", description has a blue circle and a red square (each
 *     word on another object), answer yes -> not named, yes (the reasoning's)
 *   4 "is there a green cross", no question mark, description names a green cross,
 *     answer yes -> named, yes
 *   5 "is there a red circle ?", description does not parse, answer yes -> not named, yes
 *   6 "how many red circles ?" typed exist (not the existence form), description names a
 *     red circle, answer yes -> not named (the question does not parse), yes
 *   7 "is there a red circle ?" present (gt yes), description names it -> not absent
 * absent 6, yes 5; named 3, named yes 2: rate 5/6, named 2/6, not named 3/6, names 3/6. */
static void test_false_yes_sources(void **state) {
    (void)state;
    static const struct {
        const char *question, *perception, *answer, *gt;
    } c[] = {
        {"is there a red circle ?", "red circle at top left", "yes", "no"},
        {"is there a red circle ?", "blue square at center , red circle at top left", "no", "no"},
        {"is there a blue square ?", "blue circle at top left , red square at center", "yes", "no"},
        {"is there a green cross", "green cross at center", "yes", "no"},
        {"is there a red circle ?", "red circle at the moon", "yes", "no"},
        {"how many red circles ?", "red circle at top left", "yes", "no"},
        {"is there a red circle ?", "red circle at top left", "yes", "yes"},
    };
    eval_accum a;
    eval_accum_init(&a);
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        sevo_error err = {{0}};
        eval_sample s = {.qtype = "exist", .depth = 1, .question = c[i].question, .answer = c[i].answer,
                         .ground_truth = c[i].gt, .perception = c[i].perception, .num_objects = -1};
        if (eval_accum_add(&a, &s, &err) != 0) fail_msg("eval_accum_add: %s", err.msg);
    }
    eval_split_result r;
    eval_accum_finish(&a, &r);
    assert_int_equal(r.absent_questions, 6);
    assert_int_equal(r.absent_yes, 5);
    assert_int_equal(r.absent_named, 3);
    assert_int_equal(r.absent_named_yes, 2);
    assert_near(r.hallucination_rate, 5.0 / 6.0, "hallucination rate");
    assert_near(r.hallucination_named, 2.0 / 6.0, "named part");
    assert_near(r.hallucination_not_named, 3.0 / 6.0, "not-named part");
    assert_near(r.absent_named_rate, 3.0 / 6.0, "named share");

    /* Without the question nothing is attributed to the description. */
    eval_accum_init(&a);
    sevo_error err = {{0}};
    eval_sample s = {.qtype = "exist", .depth = 1, .answer = "yes", .ground_truth = "no",
                     .perception = "red circle at top left", .num_objects = -1};
    assert_int_equal(eval_accum_add(&a, &s, &err), 0);
    eval_accum_finish(&a, &r);
    assert_int_equal(r.absent_named, 0);
    assert_near(r.hallucination_not_named, 1.0, "no question: not named");
}

/* Every rate with a zero denominator is 0, never NaN. */
static void test_zero_denominators(void **state) {
    (void)state;
    eval_accum a;
    eval_split_result r;
    eval_accum_init(&a);
    eval_accum_finish(&a, &r);
    assert_int_equal(r.n, 0);
    const double zeros[] = {r.accuracy,          r.pope.accuracy,     r.pope.precision,
                            r.pope.recall,       r.pope.f1,           r.pope.yes_ratio,
                            r.hallucination_rate, r.chair.chair_i,    r.chair.chair_s,
                            r.chair.object_recall, r.mean_tokens,     r.mean_seconds,
                            r.per_type[0].accuracy, r.per_depth[1].accuracy,
                            r.absent_named_rate, r.hallucination_named, r.hallucination_not_named};
    for (size_t i = 0; i < sizeof zeros / sizeof zeros[0]; i++) {
        if (zeros[i] != 0.0) fail_msg("rate %zu of an empty split = %g, want 0", i, zeros[i]);
    }

    /* All "no" ground truth answered "no": tp + fp = 0 and tp + fn = 0, so precision,
     * recall and F1 are 0 while accuracy is 1. */
    eval_accum_init(&a);
    add_qa(&a, "exist", 1, "no", "no");
    add_qa(&a, "exist", 1, "no", "no");
    eval_accum_finish(&a, &r);
    assert_near(r.pope.accuracy, 1.0, "accuracy");
    assert_true(r.pope.precision == 0.0 && r.pope.recall == 0.0 && r.pope.f1 == 0.0);
    assert_near(r.pope.yes_ratio, 0.0, "yes ratio");

    /* No yes/no ground truth at all: POPE is empty; no "no" existence question: the
     * hallucination rate is 0 over 0 questions. */
    eval_accum_init(&a);
    add_qa(&a, "count", 2, "2", "2");
    add_qa(&a, "exist", 1, "yes", "yes");
    eval_accum_finish(&a, &r);
    assert_int_equal(r.pope.n, 1);
    assert_int_equal(r.absent_questions, 0);
    assert_true(r.hallucination_rate == 0.0);
    eval_accum_init(&a);
    add_qa(&a, "count", 2, "2", "2");
    eval_accum_finish(&a, &r);
    assert_int_equal(r.pope.n, 0);
    assert_true(r.pope.accuracy == 0.0 && r.pope.yes_ratio == 0.0);
}

/* Three parsed perceptions (positions do not matter, only (colour, shape) types):
 *   P1 image {red circle, green triangle};
 *      says "red circle, green triangle": 2 mentions, 0 hallucinated; recall 2/2
 *   P2 image {blue square at top right};
 *      says "blue square (wrong cell), yellow cross, purple circle": 3 mentions,
 *      2 hallucinated; recall 1/1
 *   P3 image {red circle, yellow cross, purple triangle, blue circle};
 *      says "red circle, red circle (again), green circle": 3 mentions, 1 hallucinated
 *      (duplicates count per mention); recall 1/4
 * plus one unparsable perception (excluded), one sample without a perception and one
 * with unknown ground-truth objects (both ignored by CHAIR).
 * CHAIR_i = 3/8 = 0.375, CHAIR_s = 2/3 = 0.666667, object recall = 4/7 = 0.571429. */
static void test_chair(void **state) {
    (void)state;
    eval_accum a;
    eval_accum_init(&a);
    synth_object p1[] = {obj("red", "circle", "top left"), obj("green", "triangle", "center")};
    add_perception(&a, "red circle at top left , green triangle at center", p1, 2);
    synth_object p2[] = {obj("blue", "square", "top right")};
    add_perception(&a,
                   "blue square at bottom right , yellow cross at center , purple circle at "
                   "top left",
                   p2, 1);
    synth_object p3[] = {obj("red", "circle", "top left"), obj("yellow", "cross", "bottom right"),
                         obj("purple", "triangle", "middle right"),
                         obj("blue", "circle", "top center")};
    add_perception(&a,
                   "red circle at top left , red circle at center , green circle at "
                   "bottom left",
                   p3, 4);
    add_perception(&a, "red circle at nowhere", p1, 2);     /* unparsable */
    add_perception(&a, NULL, p1, 2);                        /* no perception generated */
    add_perception(&a, "yellow cross at center", NULL, -1); /* image objects unknown */

    eval_split_result r;
    eval_accum_finish(&a, &r);
    assert_int_equal(r.n, 6);
    assert_int_equal(r.chair.perceptions, 3);
    assert_int_equal(r.chair.unparsable, 1);
    assert_int_equal(r.chair.mentions, 8);
    assert_int_equal(r.chair.hallucinated, 3);
    assert_int_equal(r.chair.hallucinated_perceptions, 2);
    assert_int_equal(r.chair.gt_objects, 7);
    assert_int_equal(r.chair.gt_mentioned, 4);
    assert_near(r.chair.chair_i, 0.375, "CHAIR_i");
    assert_near(r.chair.chair_s, 2.0 / 3.0, "CHAIR_s");
    assert_near(r.chair.object_recall, 4.0 / 7.0, "object recall");
}

/* "none" and "" parse to zero objects: the perception counts (not hallucinated), names
 * nothing, and misses every object of the image. With only such perceptions of an empty
 * image, every CHAIR rate has a zero denominator and is 0. A perception with more
 * objects than EVAL_MAX_MENTIONS is unparsable. */
static void test_chair_edges(void **state) {
    (void)state;
    eval_accum a;
    eval_split_result r;
    eval_accum_init(&a);
    add_perception(&a, "none", NULL, 0);
    add_perception(&a, "", NULL, 0);
    eval_accum_finish(&a, &r);
    assert_int_equal(r.chair.perceptions, 2);
    assert_int_equal(r.chair.mentions, 0);
    assert_true(r.chair.chair_i == 0.0 && r.chair.chair_s == 0.0);
    assert_true(r.chair.object_recall == 0.0);

    /* "none" about an image with one object: CHAIR_s 0/3, recall 0/1. Then a
     * hallucinated mention: CHAIR_s 1/4 and CHAIR_i 1/1. */
    synth_object one[] = {obj("red", "circle", "center")};
    add_perception(&a, "none", one, 1);
    eval_accum_finish(&a, &r);
    assert_int_equal(r.chair.perceptions, 3);
    assert_int_equal(r.chair.gt_objects, 1);
    assert_near(r.chair.object_recall, 0.0, "object recall");
    add_perception(&a, "red square at center", one, 1);
    eval_accum_finish(&a, &r);
    assert_near(r.chair.chair_s, 0.25, "CHAIR_s");
    assert_near(r.chair.chair_i, 1.0, "CHAIR_i");
    assert_near(r.chair.object_recall, 0.0, "object recall");

    /* EVAL_MAX_MENTIONS objects parse; one more does not. */
    strbuf b = {0};
    for (int i = 0; i < EVAL_MAX_MENTIONS; i++)
        strbuf_puts(&b, i ? " , red circle at center" : "red circle at center");
    assert_false(b.oom);
    eval_accum_init(&a);
    add_perception(&a, b.p, one, 1);
    strbuf_puts(&b, " , red circle at center");
    add_perception(&a, b.p, one, 1);
    strbuf_free(&b);
    eval_accum_finish(&a, &r);
    assert_int_equal(r.chair.perceptions, 1);
    assert_int_equal(r.chair.mentions, EVAL_MAX_MENTIONS);
    assert_int_equal(r.chair.hallucinated, 0);
    assert_int_equal(r.chair.unparsable, 1);
    assert_near(r.chair.object_recall, 1.0, "object recall");
}

/* Tokens 10, 20, 35 and seconds 0.1, 0.2, 0.3: means 65/3 = 21.666667 and 0.2. */
static void test_means(void **state) {
    (void)state;
    eval_accum a;
    eval_accum_init(&a);
    const double tok[] = {10, 20, 35}, sec[] = {0.1, 0.2, 0.3};
    for (int i = 0; i < 3; i++) {
        sevo_error err = {{0}};
        eval_sample s = {.answer = "a", .ground_truth = "a", .num_objects = -1,
                         .tokens = tok[i], .seconds = sec[i]};
        assert_int_equal(eval_accum_add(&a, &s, &err), 0);
    }
    eval_split_result r;
    eval_accum_finish(&a, &r);
    assert_near(r.mean_tokens, 65.0 / 3.0, "mean tokens");
    assert_near(r.mean_seconds, 0.2, "mean seconds");
    assert_near(r.tokens_total, 65.0, "tokens total");
}

/* Steps per depth bucket, and the early-exit table built from two such results:
 * fixed depth 5 everywhere (2 depth-1 and 1 depth-3 question, all right); early exit
 * after 1, 2 and 4 steps with the depth-1 question answered after 2 steps wrong. */
static void test_steps_and_early_exit_table(void **state) {
    (void)state;
    eval_accum fa, ea;
    eval_accum_init(&fa);
    eval_accum_init(&ea);
    const int depth[] = {1, 1, 3};
    const double early_steps[] = {1, 2, 4}, tokens[] = {10, 20, 40};
    const char *early_answer[] = {"yes", "no", "2"};
    for (int i = 0; i < 3; i++) {
        sevo_error err = {{0}};
        eval_sample f = {.answer = i == 2 ? "2" : "yes", .ground_truth = i == 2 ? "2" : "yes", .depth = depth[i],
                         .num_objects = -1, .steps = 5, .tokens = 50, .seconds = 0.01};
        eval_sample e = f;
        e.answer = early_answer[i];
        e.steps = early_steps[i];
        e.tokens = tokens[i];
        assert_int_equal(eval_accum_add(&fa, &f, &err), 0);
        assert_int_equal(eval_accum_add(&ea, &e, &err), 0);
    }
    sevo_error err = {{0}};
    eval_sample bad = {.answer = "a", .ground_truth = "a", .num_objects = -1, .steps = -1};
    assert_int_equal(eval_accum_add(&ea, &bad, &err), -1);
    assert_non_null(strstr(err.msg, "steps"));
    eval_split_result f, e;
    eval_accum_finish(&fa, &f);
    eval_accum_finish(&ea, &e);
    assert_near(e.mean_steps, 7.0 / 3.0, "mean steps");
    assert_near(e.per_depth[1].mean_steps, 1.5, "depth-1 steps");
    assert_near(e.per_depth[3].mean_steps, 4.0, "depth-3 steps");
    assert_near(e.per_depth[1].mean_tokens, 15.0, "depth-1 tokens");
    assert_near(e.per_depth[1].accuracy, 0.5, "depth-1 accuracy");
    strbuf b = {0};
    eval_early_exit_table("M", &f, &e, &b);
    assert_false(b.oom);
    assert_non_null(strstr(b.p, "| Early exit, M (test) | depth 1 | depth 3 | all |"));
    assert_non_null(strstr(b.p, "| Questions | 2 | 1 | 3 |"));
    assert_non_null(strstr(b.p, "| Accuracy (%), fixed K | 100.0 | 100.0 | 100.0 |"));
    assert_non_null(strstr(b.p, "| Accuracy (%), early exit | 50.0 | 100.0 | 66.7 |"));
    assert_non_null(strstr(b.p, "| Reasoning steps, early exit | 1.50 | 4.00 | 2.33 |"));
    assert_non_null(strstr(b.p, "| ms per sample, fixed K | 10.00 | 10.00 | 10.00 |"));
    /* 5 -> 7/3 steps is 53.3% fewer; 100% -> 66.7% is -33.3 points */
    assert_non_null(strstr(b.p, "mean reasoning steps 5.00 -> 2.33 (53.3% fewer); accuracy 100.0% -> 66.7% "
                                "(-33.3 points)."));
    strbuf_free(&b);
}

/* Real image 3/4 correct, blank image 1/4: gap 0.5; the other way round -0.5. */
static void test_shortcut_gap(void **state) {
    (void)state;
    eval_accum real, blank;
    eval_accum_init(&real);
    eval_accum_init(&blank);
    const char *gt[] = {"yes", "no", "2", "red"};
    const char *pr[] = {"yes", "no", "2", "blue"};
    const char *pb[] = {"no", "no", "3", "blue"};
    for (int i = 0; i < 4; i++) {
        add_qa(&real, "", 0, pr[i], gt[i]);
        add_qa(&blank, "", 0, pb[i], gt[i]);
    }
    eval_split_result rr, rb;
    eval_accum_finish(&real, &rr);
    eval_accum_finish(&blank, &rb);
    assert_near(rr.accuracy, 0.75, "real accuracy");
    assert_near(rb.accuracy, 0.25, "blank accuracy");
    assert_near(eval_shortcut_gap(&rr, &rb), 0.5, "gap");
    assert_near(eval_shortcut_gap(&rb, &rr), -0.5, "reverse gap");
}

static void expect_bad(const eval_sample *s, const char *needle) {
    eval_accum a;
    eval_accum_init(&a);
    sevo_error err = {{0}};
    assert_int_equal(eval_accum_add(&a, s, &err), -1);
    if (!strstr(err.msg, needle)) fail_msg("error \"%s\" does not name \"%s\"", err.msg, needle);
    assert_int_equal(a.r.n, 0); /* the accumulator is untouched */
}

static void test_bad_samples(void **state) {
    (void)state;
    synth_object bad_shape[] = {{4, 0, 0}}, bad_color[] = {{0, -1, 0}};
    eval_sample s = {.answer = "yes", .ground_truth = NULL, .num_objects = -1};
    expect_bad(&s, "ground_truth");
    s.ground_truth = "yes";
    s.tokens = -1;
    expect_bad(&s, "tokens");
    s.tokens = 0;
    s.seconds = NAN;
    expect_bad(&s, "seconds");
    s.seconds = INFINITY;
    expect_bad(&s, "seconds");
    s.seconds = 0;
    s.num_objects = -2;
    expect_bad(&s, "num_objects");
    s.num_objects = 1;
    expect_bad(&s, "objects is NULL");
    s.objects = bad_shape;
    expect_bad(&s, "object 0");
    s.objects = bad_color;
    expect_bad(&s, "out of range");
}

/* The mixed case of test_accuracy_buckets plus the perception of test_chair's P2
 * (so CHAIR_i 2/3, CHAIR_s 1/1, recall 1/1) and one unparsable perception, both answered
 * correctly as type color, depth 2: n = 12, correct 8. Tokens 121 + 11 over 12 samples
 * (mean 11), 0.5 s on one of them (mean 0.041667). POPE as there: tp 1, fp 2, tn 2, so
 * precision 1/3, recall 1, F1 = 2*(1/3)*1/(4/3) = 0.5, yes-ratio 3/5. */
static void test_json(void **state) {
    (void)state;
    eval_accum a;
    fill_mixed(&a);
    synth_object p2[] = {obj("blue", "square", "top right")};
    sevo_error err = {{0}};
    eval_sample s = {.qtype = "color", .depth = 2, .answer = "blue", .ground_truth = "blue",
                     .perception = "blue square at top right , yellow cross at center , "
                                   "purple circle at top left",
                     .objects = p2, .num_objects = 1, .tokens = 11 * 11, .seconds = 0.5};
    assert_int_equal(eval_accum_add(&a, &s, &err), 0);
    s.perception = "blue blob";
    s.tokens = 11;
    s.seconds = 0;
    assert_int_equal(eval_accum_add(&a, &s, &err), 0);
    eval_split_result r;
    eval_accum_finish(&a, &r);

    cJSON *root = cJSON_CreateObject();
    assert_non_null(root);
    assert_int_equal(eval_result_add_json(root, "test", &r, &err), 0);
    /* The same key twice is refused and leaves the object as it was. */
    assert_int_equal(eval_result_add_json(root, "test", &r, &err), -1);
    assert_non_null(strstr(err.msg, "\"test\""));
    assert_int_equal(cJSON_GetArraySize(root), 1);
    char *text = cJSON_PrintUnformatted(root);
    assert_non_null(text);
    cJSON_Delete(root);

    cJSON *back = cJSON_Parse(text);
    free(text);
    assert_non_null(back);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(back, "test");
    assert_true(cJSON_IsObject(t));
    struct {
        const char *key;
        double want;
    } top[] = {
        {"n", 12},
        {"correct", 8},
        {"accuracy", 8.0 / 12.0},
        {"hallucination_rate", 0.5},
        {"absent_questions", 2},
        {"absent_named", 0}, /* the samples carry no question */
        {"absent_named_yes", 0},
        {"absent_named_rate", 0},
        {"hallucination_named", 0},
        {"hallucination_not_named", 0.5},
        {"chair_i", 2.0 / 3.0},
        {"chair_s", 1.0},
        {"object_recall", 1.0},
        {"perceptions", 1},
        {"unparsable_perceptions", 1},
        {"mean_tokens", 11.0},
        {"mean_seconds", 0.5 / 12.0},
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, top[i].key);
        if (!cJSON_IsNumber(v)) fail_msg("key \"%s\" missing or not a number", top[i].key);
        assert_near(v->valuedouble, top[i].want, top[i].key);
    }
    const cJSON *pope = cJSON_GetObjectItemCaseSensitive(t, "pope");
    assert_true(cJSON_IsObject(pope));
    struct {
        const char *key;
        double want;
    } pk[] = {{"n", 5},         {"tp", 1},           {"fp", 2},      {"fn", 0},
              {"tn", 2},        {"invalid", 0},      {"accuracy", 0.6},
              {"precision", 1.0 / 3.0}, {"recall", 1.0}, {"f1", 0.5}, {"yes_ratio", 0.6}};
    for (size_t i = 0; i < sizeof pk / sizeof pk[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(pope, pk[i].key);
        if (!cJSON_IsNumber(v)) fail_msg("pope key \"%s\" missing", pk[i].key);
        assert_near(v->valuedouble, pk[i].want, pk[i].key);
    }
    /* per_type: color now 3/3 (1 + the two perception samples). */
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(t, "per_type");
    assert_int_equal(cJSON_GetArraySize(types), EVAL_NUM_TYPES);
    const cJSON *color = cJSON_GetObjectItemCaseSensitive(types, "color");
    assert_near(cJSON_GetObjectItemCaseSensitive(color, "n")->valuedouble, 3, "color n");
    assert_near(cJSON_GetObjectItemCaseSensitive(color, "accuracy")->valuedouble, 1.0,
                "color accuracy");
    const cJSON *other = cJSON_GetObjectItemCaseSensitive(types, "other");
    assert_near(cJSON_GetObjectItemCaseSensitive(other, "accuracy")->valuedouble, 0.5,
                "other accuracy");
    /* per_depth: only the non-empty buckets, 1..3 then "other"; depth 2 is now 4/5. */
    const cJSON *depths = cJSON_GetObjectItemCaseSensitive(t, "per_depth");
    assert_int_equal(cJSON_GetArraySize(depths), 4);
    const char *dkeys[] = {"1", "2", "3", "other"};
    const double dn[] = {3, 5, 2, 2}, dacc[] = {2.0 / 3.0, 0.8, 0.5, 0.5};
    const cJSON *d = depths->child;
    for (int i = 0; i < 4; i++, d = d->next) {
        assert_non_null(d);
        assert_string_equal(d->string, dkeys[i]);
        assert_near(cJSON_GetObjectItemCaseSensitive(d, "n")->valuedouble, dn[i], dkeys[i]);
        assert_near(cJSON_GetObjectItemCaseSensitive(d, "accuracy")->valuedouble, dacc[i],
                    dkeys[i]);
    }
    assert_null(cJSON_GetObjectItemCaseSensitive(depths, "4"));
    cJSON_Delete(back);

    /* Empty buckets are left out of per_type. */
    eval_accum_init(&a);
    add_qa(&a, "exist", 1, "yes", "yes");
    eval_accum_finish(&a, &r);
    root = cJSON_CreateObject();
    assert_int_equal(eval_result_add_json(root, "pope_random", &r, &err), 0);
    types = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "pope_random"), "per_type");
    assert_int_equal(cJSON_GetArraySize(types), 1);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(types, "exist"));
    cJSON_Delete(root);
}

/* A finished result set up by hand with just what the table reads. */
static eval_split_result table_result(double acc, double d1, double d2, double d3, double f1,
                                      double halluc, double chair_i, double chair_s,
                                      double tokens, double seconds) {
    eval_split_result r;
    memset(&r, 0, sizeof r);
    r.n = 1000;
    r.accuracy = acc;
    const double dacc[] = {d1, d2, d3};
    for (int d = 1; d <= 3; d++) {
        r.per_depth[d].n = 300;
        r.per_depth[d].accuracy = dacc[d - 1];
    }
    r.pope.n = 600;
    r.pope.f1 = f1;
    r.absent_questions = 300;
    r.hallucination_rate = halluc;
    /* two thirds of the false "yes" from a description that named the object, which
     * names twice as many of the absent objects */
    r.hallucination_named = halluc * 2.0 / 3.0;
    r.hallucination_not_named = halluc / 3.0;
    r.absent_named_rate = halluc * 2.0;
    r.chair.perceptions = 1000;
    r.chair.mentions = 2500;
    r.chair.chair_i = chair_i;
    r.chair.chair_s = chair_s;
    r.mean_tokens = tokens;
    r.mean_seconds = seconds;
    return r;
}

static int contains_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return 1;
    return 0;
}

static void expect_line(const char *text, const char *line) {
    if (!contains_line(text, line)) fail_msg("table lacks the line\n%s\nin\n%s", line, text);
}

/* Two models side by side. A: accuracy 0.7404 -> "74.0", B: 0.7216 -> "72.2"; the delta
 * is taken from the shown values, -1.8 (the raw difference, -1.88, would show -1.9).
 * Depth 1: 90.0 vs 95.0 -> +5.0; depth 2: 70.0 vs 66.6 (0.6656) -> -3.4;
 * depth 3: 60.0 vs 60.0 -> +0.0.
 * POPE F1: random 85.0 vs 87.5 -> +2.5; popular 80.0 vs (B not evaluated) -> "-";
 * adversarial 70.0 vs 75.0 -> +5.0. Hallucination (adversarial) 30.0 vs 20.0 -> -10.0.
 * CHAIR_i 12.5 vs 10.0 -> -2.5; CHAIR_s 20.0 vs 15.0 -> -5.0.
 * Shortcut gap 20.0 vs (B no blank run) -> "-". Tokens 41.2 vs 20.6 -> -20.6;
 * ms 12.34 vs 6.17 -> -6.17. */
static void test_markdown_two_models(void **state) {
    (void)state;
    eval_split_result ta = table_result(0.7404, 0.9, 0.7, 0.6, 0, 0, 0.125, 0.2, 41.2, 0.01234);
    eval_split_result tb =
        table_result(0.7216, 0.95, 0.6656, 0.6, 0, 0, 0.1, 0.15, 20.6, 0.00617);
    eval_split_result ra = table_result(0, 0, 0, 0, 0.85, 0, 0, 0, 0, 0);
    eval_split_result rb = table_result(0, 0, 0, 0, 0.875, 0, 0, 0, 0, 0);
    eval_split_result pa = table_result(0, 0, 0, 0, 0.8, 0, 0, 0, 0, 0);
    eval_split_result aa = table_result(0, 0, 0, 0, 0.7, 0.3, 0, 0, 0, 0);
    eval_split_result ab = table_result(0, 0, 0, 0, 0.75, 0.2, 0, 0, 0, 0);
    eval_model_results m[2] = {
        {.name = "SFT", .test = &ta, .pope_random = &ra, .pope_popular = &pa,
         .pope_adversarial = &aa, .has_shortcut_gap = 1, .shortcut_gap = 0.2},
        {.name = "sevo", .test = &tb, .pope_random = &rb, .pope_popular = NULL,
         .pope_adversarial = &ab, .has_shortcut_gap = 0},
    };
    strbuf b = {0};
    sevo_error err = {{0}};
    assert_int_equal(eval_markdown_table(m, 2, &b, &err), 0);
    const char *t = b.p;
    expect_line(t, "| Metric | SFT | sevo | Δ (sevo − SFT) |");
    expect_line(t, "|---|---:|---:|---:|");
    expect_line(t, "| Accuracy, test (%) | 74.0 | 72.2 | -1.8 |");
    expect_line(t, "| Accuracy, test, depth 1 (%) | 90.0 | 95.0 | +5.0 |");
    expect_line(t, "| Accuracy, test, depth 2 (%) | 70.0 | 66.6 | -3.4 |");
    expect_line(t, "| Accuracy, test, depth 3 (%) | 60.0 | 60.0 | +0.0 |");
    expect_line(t, "| POPE F1, random (%) | 85.0 | 87.5 | +2.5 |");
    expect_line(t, "| POPE F1, popular (%) | 80.0 | - | - |");
    expect_line(t, "| POPE F1, adversarial (%) | 70.0 | 75.0 | +5.0 |");
    expect_line(t, "| Hallucination rate, adversarial (%) | 30.0 | 20.0 | -10.0 |");
    expect_line(t, "| … where the description named the object (pp) | 20.0 | 13.3 | -6.7 |");
    expect_line(t, "| … where it did not (pp) | 10.0 | 6.7 | -3.3 |");
    expect_line(t, "| Absent objects the description names, adversarial (%) | 60.0 | 40.0 | -20.0 |");
    expect_line(t, "| CHAIR_i, test (%) | 12.5 | 10.0 | -2.5 |");
    expect_line(t, "| CHAIR_s, test (%) | 20.0 | 15.0 | -5.0 |");
    expect_line(t, "| Shortcut gap, real − blank image (pp) | 20.0 | - | - |");
    expect_line(t, "| Tokens per sample, test | 41.2 | 20.6 | -20.6 |");
    expect_line(t, "| ms per sample, test | 12.34 | 6.17 | -6.17 |");
    assert_null(strstr(t, "depth 4")); /* only the depths that were evaluated */
    assert_null(strstr(t, "other depth"));
    /* Header, separator and 16 rows, every one ending in a newline. */
    int lines = 0;
    for (const char *p = t; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 18);
    assert_int_equal(t[b.len - 1], '\n');
    strbuf_free(&b);
}

/* One and three models: no delta column; "-" where a split is missing or a metric has
 * nothing to count (CHAIR without mentions); names with '|' are escaped; no models or a
 * missing name is an error. A negative gap of -0.01 pp rounds to "0.0", never "-0.0". */
static void test_markdown_other_counts(void **state) {
    (void)state;
    eval_split_result ta = table_result(0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0, 3, 0.001);
    ta.chair.mentions = 0; /* perceptions that named nothing: CHAIR_i has no denominator */
    ta.per_depth[0].n = 7; /* some questions of unknown depth */
    ta.per_depth[0].accuracy = 1.0 / 7.0;
    eval_model_results m[3] = {
        {.name = "a|b", .test = &ta, .has_shortcut_gap = 1, .shortcut_gap = -0.0001},
        {.name = "two\nlines"},
        {.name = "c", .test = &ta},
    };
    strbuf b = {0};
    sevo_error err = {{0}};
    assert_int_equal(eval_markdown_table(m, 1, &b, &err), 0);
    expect_line(b.p, "| Metric | a\\|b |");
    expect_line(b.p, "|---|---:|");
    expect_line(b.p, "| Accuracy, test (%) | 50.0 |");
    expect_line(b.p, "| Accuracy, test, other depth (%) | 14.3 |");
    expect_line(b.p, "| POPE F1, random (%) | - |");
    /* no adversarial split: the rate and its parts have nothing to count */
    expect_line(b.p, "| Hallucination rate, adversarial (%) | - |");
    expect_line(b.p, "| … where the description named the object (pp) | - |");
    expect_line(b.p, "| … where it did not (pp) | - |");
    expect_line(b.p, "| Absent objects the description names, adversarial (%) | - |");
    expect_line(b.p, "| CHAIR_i, test (%) | - |");
    expect_line(b.p, "| CHAIR_s, test (%) | 0.0 |");
    expect_line(b.p, "| Shortcut gap, real − blank image (pp) | 0.0 |");
    expect_line(b.p, "| ms per sample, test | 1.00 |");
    assert_null(strstr(b.p, "Δ"));
    strbuf_free(&b);

    assert_int_equal(eval_markdown_table(m, 3, &b, &err), 0);
    expect_line(b.p, "| Metric | a\\|b | two lines | c |");
    expect_line(b.p, "|---|---:|---:|---:|");
    expect_line(b.p, "| Accuracy, test (%) | 50.0 | - | 50.0 |");
    expect_line(b.p, "| Tokens per sample, test | 3.0 | - | 3.0 |");
    assert_null(strstr(b.p, "Δ"));
    strbuf_free(&b);

    assert_int_equal(eval_markdown_table(m, 0, &b, &err), -1);
    assert_non_null(strstr(err.msg, "no models"));
    m[1].name = NULL;
    assert_int_equal(eval_markdown_table(m, 2, &b, &err), -1);
    assert_non_null(strstr(err.msg, "model 1"));
    assert_null(b.p); /* nothing was written before the check failed */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_buckets),
        cmocka_unit_test(test_accuracy_buckets),
        cmocka_unit_test(test_pope_hand_case),
        cmocka_unit_test(test_pope_invalid_answers),
        cmocka_unit_test(test_false_yes_sources),
        cmocka_unit_test(test_zero_denominators),
        cmocka_unit_test(test_chair),
        cmocka_unit_test(test_chair_edges),
        cmocka_unit_test(test_means),
        cmocka_unit_test(test_steps_and_early_exit_table),
        cmocka_unit_test(test_shortcut_gap),
        cmocka_unit_test(test_bad_samples),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_markdown_two_models),
        cmocka_unit_test(test_markdown_other_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
