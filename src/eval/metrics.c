/* metrics.c: accuracy, POPE, hallucination rate, CHAIR and cost per sample for one split,
 * and the results.json / Markdown writers (definitions in metrics.h, DESIGN §7). */
#include "eval/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "data/answer.h"

/* 0 when the denominator is 0: an empty bucket has no accuracy, and reporting 0 next to
 * its count of 0 is clearer than a NaN that breaks JSON and averages. */
static double ratio(double num, double den) { return den > 0 ? num / den : 0.0; }

const char *eval_type_name(int bucket) {
    if (bucket >= 0 && bucket < SYNTH_NUM_QTYPES) return synth_qtype_names[bucket];
    return "other";
}

int eval_type_bucket(const char *qtype) {
    int t = synth_qtype_index(qtype);
    return t >= 0 ? t : EVAL_TYPE_OTHER;
}

void eval_accum_init(eval_accum *a) { memset(a, 0, sizeof *a); }

static int check_sample(const eval_sample *s, sevo_error *err) {
    if (!s->ground_truth) return sevo_fail(err, "eval sample: ground_truth is missing");
    if (!isfinite(s->steps) || s->steps < 0)
        return sevo_fail(err, "eval sample: steps must be a number >= 0, got %g", s->steps);
    if (!isfinite(s->tokens) || s->tokens < 0)
        return sevo_fail(err, "eval sample: tokens must be a number >= 0, got %g", s->tokens);
    if (!isfinite(s->seconds) || s->seconds < 0)
        return sevo_fail(err, "eval sample: seconds must be a number >= 0, got %g", s->seconds);
    if (s->num_objects < -1)
        return sevo_fail(err, "eval sample: num_objects must be >= -1, got %d", s->num_objects);
    if (s->num_objects > 0 && !s->objects)
        return sevo_fail(err, "eval sample: objects is NULL but num_objects is %d",
                         s->num_objects);
    for (int i = 0; i < s->num_objects; i++) {
        const synth_object *o = &s->objects[i];
        if (o->shape < 0 || o->shape >= SYNTH_NUM_SHAPES || o->color < 0 ||
            o->color >= SYNTH_NUM_COLORS)
            return sevo_fail(err, "eval sample: object %d has shape %d, colour %d (out of range)",
                             i, o->shape, o->color);
    }
    return 0;
}

/* CHAIR and object recall of one perception, parsed into named[0..n) (n < 0: it did
 * not parse), against the image's objects. */
static void add_chair(eval_chair *c, const synth_object *named, int n, const synth_object *gt, int n_gt) {
    if (n < 0) {
        c->unparsable++;
        return;
    }
    /* Types, not objects: CHAIR asks whether what is named exists in the image at all. */
    int present[SYNTH_NUM_TYPES] = {0}, mentioned[SYNTH_NUM_TYPES] = {0};
    for (int i = 0; i < n_gt; i++) present[synth_type(gt[i].shape, gt[i].color)] = 1;
    long halluc = 0;
    for (int i = 0; i < n; i++) {
        int t = synth_type(named[i].shape, named[i].color);
        mentioned[t] = 1;
        if (!present[t]) halluc++;
    }
    c->perceptions++;
    c->mentions += n;
    c->hallucinated += halluc;
    if (halluc > 0) c->hallucinated_perceptions++;
    c->gt_objects += n_gt;
    for (int i = 0; i < n_gt; i++)
        if (mentioned[synth_type(gt[i].shape, gt[i].color)]) c->gt_mentioned++;
}

/* Whether the parsed perception named[0..n) names the object the existence question
 * asks about (never when the question has another form or the perception did not parse). */
static int names_asked(const char *question, const synth_object *named, int n) {
    int asked = -1;
    if (synth_parse_exist_question(question, &asked) != 0) return 0;
    for (int i = 0; i < n; i++)
        if (synth_type(named[i].shape, named[i].color) == asked) return 1;
    return 0;
}

int eval_accum_add(eval_accum *a, const eval_sample *s, sevo_error *err) {
    if (check_sample(s, err) != 0) return -1;
    eval_split_result *r = &a->r;
    const char *pred = s->answer ? s->answer : "";
    int correct = answer_correct(pred, s->ground_truth);
    /* The perception is parsed once, for CHAIR and for the source of a false "yes". */
    synth_object named[EVAL_MAX_MENTIONS];
    int n_named = s->perception ? synth_parse_perception(s->perception, named, EVAL_MAX_MENTIONS) : -1;

    r->n++;
    r->correct += correct;
    int t = eval_type_bucket(s->qtype);
    int d = s->depth >= 1 && s->depth <= EVAL_MAX_DEPTH ? s->depth : 0;
    eval_bucket *buckets[2] = {&r->per_type[t], &r->per_depth[d]};
    for (int i = 0; i < 2; i++) {
        buckets[i]->n++;
        buckets[i]->correct += correct;
        buckets[i]->steps += s->steps;
        buckets[i]->tokens += s->tokens;
        buckets[i]->seconds += s->seconds;
    }

    int gt_yes = answer_correct(s->ground_truth, "yes");
    int gt_no = !gt_yes && answer_correct(s->ground_truth, "no");
    if (gt_yes || gt_no) {
        int pred_yes = answer_correct(pred, "yes");
        int pred_no = !pred_yes && answer_correct(pred, "no");
        eval_pope *p = &r->pope;
        p->n++;
        p->correct += correct;
        if (!pred_yes && !pred_no) p->invalid++;
        if (gt_yes) {
            if (pred_yes) p->tp++;
            else p->fn++;
        } else {
            if (pred_yes) p->fp++;
            else p->tn++;
        }
        int existence = t == SYNTH_Q_EXIST || !s->qtype || !s->qtype[0];
        if (gt_no && existence) {
            r->absent_questions++;
            r->absent_yes += pred_yes;
            if (names_asked(s->question, named, n_named)) {
                r->absent_named++;
                r->absent_named_yes += pred_yes;
            }
        }
    }

    if (s->perception && s->num_objects >= 0)
        add_chair(&r->chair, named, n_named, s->objects, s->num_objects);

    r->steps_total += s->steps;
    r->tokens_total += s->tokens;
    r->seconds_total += s->seconds;
    return 0;
}

void eval_accum_finish(const eval_accum *a, eval_split_result *out) {
    *out = a->r;
    out->accuracy = ratio((double)out->correct, (double)out->n);
    for (int i = 0; i < EVAL_NUM_TYPES + EVAL_NUM_DEPTHS; i++) {
        eval_bucket *b = i < EVAL_NUM_TYPES ? &out->per_type[i] : &out->per_depth[i - EVAL_NUM_TYPES];
        b->accuracy = ratio((double)b->correct, (double)b->n);
        b->mean_steps = ratio(b->steps, (double)b->n);
        b->mean_tokens = ratio(b->tokens, (double)b->n);
        b->mean_seconds = ratio(b->seconds, (double)b->n);
    }

    eval_pope *p = &out->pope;
    p->accuracy = ratio((double)p->correct, (double)p->n);
    p->precision = ratio((double)p->tp, (double)(p->tp + p->fp));
    p->recall = ratio((double)p->tp, (double)(p->tp + p->fn));
    p->f1 = ratio(2.0 * p->precision * p->recall, p->precision + p->recall);
    p->yes_ratio = ratio((double)(p->tp + p->fp), (double)p->n);
    out->hallucination_rate = ratio((double)out->absent_yes, (double)out->absent_questions);
    out->absent_named_rate = ratio((double)out->absent_named, (double)out->absent_questions);
    out->hallucination_named = ratio((double)out->absent_named_yes, (double)out->absent_questions);
    out->hallucination_not_named =
        ratio((double)(out->absent_yes - out->absent_named_yes), (double)out->absent_questions);

    eval_chair *c = &out->chair;
    c->chair_i = ratio((double)c->hallucinated, (double)c->mentions);
    c->chair_s = ratio((double)c->hallucinated_perceptions, (double)c->perceptions);
    c->object_recall = ratio((double)c->gt_mentioned, (double)c->gt_objects);

    out->mean_steps = ratio(out->steps_total, (double)out->n);
    out->mean_tokens = ratio(out->tokens_total, (double)out->n);
    out->mean_seconds = ratio(out->seconds_total, (double)out->n);
}

double eval_shortcut_gap(const eval_split_result *real, const eval_split_result *blank) {
    return real->accuracy - blank->accuracy;
}

/* ---- results.json ---- */

static void add_num(cJSON *obj, const char *key, double v, int *ok) {
    if (*ok && !cJSON_AddNumberToObject(obj, key, v)) *ok = 0;
}

static void add_bucket(cJSON *parent, const char *key, const eval_bucket *b, int *ok) {
    if (!*ok) return;
    cJSON *o = cJSON_AddObjectToObject(parent, key);
    if (!o) {
        *ok = 0;
        return;
    }
    add_num(o, "n", (double)b->n, ok);
    add_num(o, "correct", (double)b->correct, ok);
    add_num(o, "accuracy", b->accuracy, ok);
    add_num(o, "mean_steps", b->mean_steps, ok);
    add_num(o, "mean_tokens", b->mean_tokens, ok);
    add_num(o, "mean_seconds", b->mean_seconds, ok);
}

/* The object of one split, or NULL when memory ran out. */
static cJSON *result_json(const eval_split_result *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    int ok = 1;
    add_num(o, "n", (double)r->n, &ok);
    add_num(o, "correct", (double)r->correct, &ok);
    add_num(o, "accuracy", r->accuracy, &ok);

    cJSON *types = ok ? cJSON_AddObjectToObject(o, "per_type") : NULL;
    if (!types) ok = 0;
    for (int i = 0; ok && i < EVAL_NUM_TYPES; i++)
        if (r->per_type[i].n > 0) add_bucket(types, eval_type_name(i), &r->per_type[i], &ok);

    cJSON *depths = ok ? cJSON_AddObjectToObject(o, "per_depth") : NULL;
    if (!depths) ok = 0;
    /* Depths 1..8 first, in order, then the "other" bucket, as a reader scans them. */
    for (int i = 1; ok && i <= EVAL_NUM_DEPTHS; i++) {
        int d = i % EVAL_NUM_DEPTHS;
        if (r->per_depth[d].n == 0) continue;
        char key[16];
        if (d == 0) snprintf(key, sizeof key, "other");
        else snprintf(key, sizeof key, "%d", d);
        add_bucket(depths, key, &r->per_depth[d], &ok);
    }

    cJSON *pope = ok ? cJSON_AddObjectToObject(o, "pope") : NULL;
    if (!pope) ok = 0;
    if (ok) {
        const eval_pope *p = &r->pope;
        add_num(pope, "n", (double)p->n, &ok);
        add_num(pope, "tp", (double)p->tp, &ok);
        add_num(pope, "fp", (double)p->fp, &ok);
        add_num(pope, "fn", (double)p->fn, &ok);
        add_num(pope, "tn", (double)p->tn, &ok);
        add_num(pope, "invalid", (double)p->invalid, &ok);
        add_num(pope, "accuracy", p->accuracy, &ok);
        add_num(pope, "precision", p->precision, &ok);
        add_num(pope, "recall", p->recall, &ok);
        add_num(pope, "f1", p->f1, &ok);
        add_num(pope, "yes_ratio", p->yes_ratio, &ok);
    }

    add_num(o, "hallucination_rate", r->hallucination_rate, &ok);
    add_num(o, "absent_questions", (double)r->absent_questions, &ok);
    add_num(o, "absent_named", (double)r->absent_named, &ok);
    add_num(o, "absent_named_yes", (double)r->absent_named_yes, &ok);
    add_num(o, "absent_named_rate", r->absent_named_rate, &ok);
    add_num(o, "hallucination_named", r->hallucination_named, &ok);
    add_num(o, "hallucination_not_named", r->hallucination_not_named, &ok);
    add_num(o, "chair_i", r->chair.chair_i, &ok);
    add_num(o, "chair_s", r->chair.chair_s, &ok);
    add_num(o, "object_recall", r->chair.object_recall, &ok);
    add_num(o, "perceptions", (double)r->chair.perceptions, &ok);
    add_num(o, "unparsable_perceptions", (double)r->chair.unparsable, &ok);
    add_num(o, "mean_steps", r->mean_steps, &ok);
    add_num(o, "mean_tokens", r->mean_tokens, &ok);
    add_num(o, "mean_seconds", r->mean_seconds, &ok);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int eval_result_add_json(cJSON *parent, const char *key, const eval_split_result *r,
                         sevo_error *err) {
    if (!parent || !cJSON_IsObject(parent) || !key)
        return sevo_fail(err, "eval results: no JSON object or key to add to");
    /* A second "test" would make the file ambiguous: cJSON would keep both keys. */
    if (cJSON_GetObjectItemCaseSensitive(parent, key))
        return sevo_fail(err, "eval results: key \"%s\" is already present", key);
    cJSON *o = result_json(r);
    if (!o) return sevo_fail(err, "out of memory: eval results of \"%s\"", key);
    if (!cJSON_AddItemToObject(parent, key, o)) {
        cJSON_Delete(o);
        return sevo_fail(err, "out of memory: eval results of \"%s\"", key);
    }
    return 0;
}

/* ---- Markdown table ---- */

/* How a row's numbers are shown: the value is scaled and printed with `decimals`. */
typedef struct row_format {
    double scale;
    int decimals;
} row_format;

static const row_format k_percent = {100.0, 1};
static const row_format k_tokens = {1.0, 1};
static const row_format k_ms = {1000.0, 2};

/* The shown value: scaled and rounded to the printed precision, so that the delta column
 * is computed from exactly the numbers a reader sees. */
static double shown(double v, row_format f) {
    double p = pow(10.0, f.decimals);
    return round(v * f.scale * p) / p;
}

static void put_name(strbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '|') strbuf_puts(b, "\\|");
        else if (*s == '\n' || *s == '\r') strbuf_puts(b, " ");
        else strbuf_put(b, s, 1);
    }
}

/* One row; value(m, &v) returns 1 and sets v when model m has this metric. */
typedef int (*metric_fn)(const eval_model_results *m, int arg, double *v);

static void put_row(strbuf *b, const char *label, const eval_model_results *models, int n,
                    metric_fn fn, int arg, row_format f) {
    strbuf_printf(b, "| %s |", label);
    double v[2] = {0, 0};
    int have[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        double x;
        if (fn(&models[i], arg, &x)) {
            x = shown(x, f);
            if (x == 0) x = 0.0; /* a tiny negative value must not print as "-0.0" */
            strbuf_printf(b, " %.*f |", f.decimals, x);
            if (i < 2) {
                v[i] = x;
                have[i] = 1;
            }
        } else {
            strbuf_puts(b, " - |");
        }
    }
    if (n == 2) {
        if (have[0] && have[1]) {
            /* Both are rounded to the printed precision, so the printed difference is
             * exactly the difference of the printed columns. */
            double d = v[1] - v[0];
            if (d == 0) d = 0.0; /* print "+0.0", not "-0.0" */
            strbuf_printf(b, " %+.*f |", f.decimals, d);
        } else {
            strbuf_puts(b, " - |");
        }
    }
    strbuf_puts(b, "\n");
}

static int m_accuracy(const eval_model_results *m, int arg, double *v) {
    (void)arg;
    if (!m->test || m->test->n == 0) return 0;
    *v = m->test->accuracy;
    return 1;
}

static int m_depth(const eval_model_results *m, int d, double *v) {
    if (!m->test || m->test->per_depth[d].n == 0) return 0;
    *v = m->test->per_depth[d].accuracy;
    return 1;
}

static const eval_split_result *pope_split(const eval_model_results *m, int which) {
    return which == 0 ? m->pope_random : which == 1 ? m->pope_popular : m->pope_adversarial;
}

static int m_pope_f1(const eval_model_results *m, int which, double *v) {
    const eval_split_result *r = pope_split(m, which);
    if (!r || r->pope.n == 0) return 0;
    *v = r->pope.f1;
    return 1;
}

/* arg 0: the hallucination rate; 1 and 2: its parts (points of the rate) with the
 * object named in the description and not. */
static int m_halluc(const eval_model_results *m, int arg, double *v) {
    const eval_split_result *r = m->pope_adversarial;
    if (!r || r->absent_questions == 0) return 0;
    *v = arg == 0 ? r->hallucination_rate : arg == 1 ? r->hallucination_named : r->hallucination_not_named;
    return 1;
}

static int m_absent_named(const eval_model_results *m, int arg, double *v) {
    (void)arg;
    const eval_split_result *r = m->pope_adversarial;
    if (!r || r->absent_questions == 0) return 0;
    *v = r->absent_named_rate;
    return 1;
}

static int m_chair(const eval_model_results *m, int sentence, double *v) {
    if (!m->test) return 0;
    const eval_chair *c = &m->test->chair;
    if (sentence ? c->perceptions == 0 : c->mentions == 0) return 0;
    *v = sentence ? c->chair_s : c->chair_i;
    return 1;
}

static int m_gap(const eval_model_results *m, int arg, double *v) {
    (void)arg;
    if (!m->has_shortcut_gap) return 0;
    *v = m->shortcut_gap;
    return 1;
}

static int m_cost(const eval_model_results *m, int seconds, double *v) {
    if (!m->test || m->test->n == 0) return 0;
    *v = seconds ? m->test->mean_seconds : m->test->mean_tokens;
    return 1;
}

int eval_markdown_table(const eval_model_results *models, int n_models, strbuf *out,
                        sevo_error *err) {
    if (!models || n_models < 1) return sevo_fail(err, "results table: no models given");
    for (int i = 0; i < n_models; i++)
        if (!models[i].name) return sevo_fail(err, "results table: model %d has no name", i);

    strbuf_puts(out, "| Metric |");
    for (int i = 0; i < n_models; i++) {
        strbuf_puts(out, " ");
        put_name(out, models[i].name);
        strbuf_puts(out, " |");
    }
    if (n_models == 2) {
        strbuf_puts(out, " Δ (");
        put_name(out, models[1].name);
        strbuf_puts(out, " − ");
        put_name(out, models[0].name);
        strbuf_puts(out, ") |");
    }
    strbuf_puts(out, "\n|---|");
    for (int i = 0; i < n_models + (n_models == 2); i++) strbuf_puts(out, "---:|");
    strbuf_puts(out, "\n");

    put_row(out, "Accuracy, test (%)", models, n_models, m_accuracy, 0, k_percent);
    /* Only the depths some model was evaluated on: the synthetic world uses 1..3 of 8. */
    for (int i = 1; i <= EVAL_NUM_DEPTHS; i++) {
        int d = i % EVAL_NUM_DEPTHS, any = 0;
        for (int m = 0; m < n_models; m++)
            if (models[m].test && models[m].test->per_depth[d].n > 0) any = 1;
        if (!any) continue;
        char label[64];
        if (d == 0) snprintf(label, sizeof label, "Accuracy, test, other depth (%%)");
        else snprintf(label, sizeof label, "Accuracy, test, depth %d (%%)", d);
        put_row(out, label, models, n_models, m_depth, d, k_percent);
    }
    put_row(out, "POPE F1, random (%)", models, n_models, m_pope_f1, 0, k_percent);
    put_row(out, "POPE F1, popular (%)", models, n_models, m_pope_f1, 1, k_percent);
    put_row(out, "POPE F1, adversarial (%)", models, n_models, m_pope_f1, 2, k_percent);
    put_row(out, "Hallucination rate, adversarial (%)", models, n_models, m_halluc, 0,
            k_percent);
    put_row(out, "… where the description named the object (pp)", models, n_models, m_halluc, 1,
            k_percent);
    put_row(out, "… where it did not (pp)", models, n_models, m_halluc, 2, k_percent);
    put_row(out, "Absent objects the description names, adversarial (%)", models, n_models,
            m_absent_named, 0, k_percent);
    put_row(out, "CHAIR_i, test (%)", models, n_models, m_chair, 0, k_percent);
    put_row(out, "CHAIR_s, test (%)", models, n_models, m_chair, 1, k_percent);
    put_row(out, "Shortcut gap, real − blank image (pp)", models, n_models, m_gap, 0,
            k_percent);
    put_row(out, "Tokens per sample, test", models, n_models, m_cost, 0, k_tokens);
    put_row(out, "ms per sample, test", models, n_models, m_cost, 1, k_ms);

    if (out->oom) return sevo_fail(err, "out of memory: results table");
    return 0;
}

/* One row of the early-exit table: a metric of each depth bucket, then of the split. */
static void early_exit_row(strbuf *out, const char *label, const eval_split_result *r, int field, double scale,
                           int decimals, const int *depths, int n_depths) {
    strbuf_printf(out, "| %s |", label);
    for (int i = 0; i <= n_depths; i++) {
        const eval_bucket *b = i < n_depths ? &r->per_depth[depths[i]] : NULL;
        double v = field == 0 ? (b ? b->accuracy : r->accuracy)
                 : field == 1 ? (b ? b->mean_steps : r->mean_steps)
                 : field == 2 ? (b ? b->mean_tokens : r->mean_tokens)
                              : (b ? b->mean_seconds : r->mean_seconds);
        strbuf_printf(out, " %.*f |", decimals, scale * v);
    }
    strbuf_puts(out, "\n");
}

void eval_early_exit_table(const char *name, const eval_split_result *fixed, const eval_split_result *early,
                           strbuf *out) {
    int depths[EVAL_NUM_DEPTHS], n_depths = 0;
    for (int i = 1; i <= EVAL_NUM_DEPTHS; i++)
        if (fixed->per_depth[i % EVAL_NUM_DEPTHS].n > 0) depths[n_depths++] = i % EVAL_NUM_DEPTHS;
    strbuf_printf(out, "\n| Early exit, %s (test) |", name);
    for (int i = 0; i < n_depths; i++) {
        if (depths[i] == 0) strbuf_puts(out, " depth other |");
        else strbuf_printf(out, " depth %d |", depths[i]);
    }
    strbuf_puts(out, " all |\n|---|");
    for (int i = 0; i <= n_depths; i++) strbuf_puts(out, "---:|");
    strbuf_puts(out, "\n| Questions |");
    for (int i = 0; i < n_depths; i++) strbuf_printf(out, " %ld |", fixed->per_depth[depths[i]].n);
    strbuf_printf(out, " %ld |\n", fixed->n);
    static const struct {
        const char *label;
        int field, decimals;
        double scale;
    } rows[] = {{"Accuracy (%%), %s", 0, 1, 100.0}, {"Reasoning steps, %s", 1, 2, 1.0},
                {"Tokens per sample, %s", 2, 1, 1.0}, {"ms per sample, %s", 3, 2, 1000.0}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        for (int e = 0; e < 2; e++) {
            char label[64];
            snprintf(label, sizeof label, rows[i].label, e ? "early exit" : "fixed K");
            early_exit_row(out, label, e ? early : fixed, rows[i].field, rows[i].scale, rows[i].decimals, depths,
                           n_depths);
        }
    double cut = fixed->mean_steps > 0 ? 100.0 * (1.0 - early->mean_steps / fixed->mean_steps) : 0.0;
    strbuf_printf(out, "\nEarly exit, %s: mean reasoning steps %.2f -> %.2f (%.1f%% fewer); accuracy %.1f%% -> "
                       "%.1f%% (%+.1f points).\n",
                  name, fixed->mean_steps, early->mean_steps, cut, 100.0 * fixed->accuracy, 100.0 * early->accuracy,
                  100.0 * (early->accuracy - fixed->accuracy));
}
