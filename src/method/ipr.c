/* ipr.c: Iterative Perception Refinement (see ipr.h). */
#include "method/ipr.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/jsonutil.h"
#include "core/progress.h"
#include "core/threads.h"
#include "data/answer.h"
#include "data/dataset.h"
#include "data/preferences.h"
#include "model/checkpoint.h"

static int is_blank(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n') s++;
    return *s == '\0';
}

/* Valid(c): π_text, answering from the description alone, gets the ground truth. A
 * blank description is never valid (and could not be a pair's text). */
static int perception_valid(vlm_policy *p, const char *question, const char *c, const char *gt, char *answer,
                            int *valid, sevo_error *err) {
    answer[0] = '\0';
    *valid = 0;
    if (is_blank(c)) return 0;
    if (policy_text_answer(p, question, c, answer, TRACE_TEXT, err)) return -1;
    *valid = answer_correct(answer, gt);
    return 0;
}

int ipr_process_sample(vlm_policy *p, const float *image, const char *question, const char *ground_truth,
                       int max_refinement, const char *tmpl, ipr_sample_result *r, sevo_error *err) {
    memset(r, 0, sizeof *r);
    if (max_refinement > IPR_MAX_ITERATIONS) max_refinement = IPR_MAX_ITERATIONS;
    int valid;
    if (policy_perceive(p, image, question, r->initial, sizeof r->initial, err) ||
        perception_valid(p, question, r->initial, ground_truth, r->answer, &valid, err))
        return -1;
    if (valid) {
        r->outcome = IPR_INITIALLY_CORRECT;
        return 0;
    }
    r->outcome = IPR_FAILED;
    /* a blank c_0 cannot be the rejected side of a pair */
    if (is_blank(r->initial)) return 0;
    char prev[TRACE_TEXT];
    snprintf(prev, sizeof prev, "%s", r->initial);
    for (int i = 1; i <= max_refinement; i++) {
        if (policy_refine(p, image, question, prev, tmpl, r->refined, sizeof r->refined, err) ||
            perception_valid(p, question, r->refined, ground_truth, r->answer, &valid, err))
            return -1;
        if (valid) {
            r->outcome = IPR_REFINED;
            r->iteration = i;
            return 0;
        }
        snprintf(prev, sizeof prev, "%s", r->refined);
    }
    return 0;
}

void ipr_stats_add(ipr_stats *s, const ipr_sample_result *r) {
    s->total_samples++;
    if (r->outcome == IPR_INITIALLY_CORRECT) {
        s->initially_correct++;
    } else if (r->outcome == IPR_REFINED) {
        s->refined_success++;
        s->pairs_generated++;
        if (r->iteration >= 1 && r->iteration <= IPR_MAX_ITERATIONS) s->success_per_iteration[r->iteration]++;
    } else {
        s->refined_failed++;
    }
}

void ipr_stats_add_verifier(ipr_stats *s, const ipr_sample_result *r, const char *ground_truth_perception,
                            int gt_valid) {
    s->verifier_checked++;
    s->verifier_valid += gt_valid != 0;
    s->ground_truth_rejected += r->outcome != IPR_INITIALLY_CORRECT && !strcmp(r->initial, ground_truth_perception);
}

double ipr_success_rate(const ipr_stats *s) {
    int failed_first = s->total_samples - s->initially_correct;
    return failed_first > 0 ? (double)s->refined_success / failed_first : 0.0;
}

double ipr_pair_yield(const ipr_stats *s) {
    return s->total_samples > 0 ? (double)s->pairs_generated / s->total_samples : 0.0;
}

int ipr_stats_save(const ipr_stats *s, const char *path, sevo_error *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON *per = o ? cJSON_AddObjectToObject(o, "success_per_iteration") : NULL;
    if (!per) {
        cJSON_Delete(o);
        return sevo_fail(err, "out of memory (ipr_stats)");
    }
    cJSON_AddNumberToObject(o, "total_samples", s->total_samples);
    cJSON_AddNumberToObject(o, "initially_correct", s->initially_correct);
    cJSON_AddNumberToObject(o, "refined_success", s->refined_success);
    cJSON_AddNumberToObject(o, "refined_failed", s->refined_failed);
    cJSON_AddNumberToObject(o, "pairs_generated", s->pairs_generated);
    int n = s->max_refinement < IPR_MAX_ITERATIONS ? s->max_refinement : IPR_MAX_ITERATIONS;
    for (int i = 1; i <= n; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        cJSON_AddNumberToObject(per, key, s->success_per_iteration[i]);
    }
    cJSON_AddNumberToObject(o, "success_rate", ipr_success_rate(s));
    cJSON_AddNumberToObject(o, "pair_yield", ipr_pair_yield(s));
    if (s->verifier_checked > 0) {
        cJSON *v = cJSON_AddObjectToObject(o, "verifier_on_ground_truth");
        if (!v) {
            cJSON_Delete(o);
            return sevo_fail(err, "out of memory (ipr_stats)");
        }
        cJSON_AddNumberToObject(v, "checked", s->verifier_checked);
        cJSON_AddNumberToObject(v, "valid", s->verifier_valid);
        cJSON_AddNumberToObject(v, "accuracy", (double)s->verifier_valid / s->verifier_checked);
        cJSON_AddNumberToObject(v, "ground_truth_rejected", s->ground_truth_rejected);
    }
    int rc = json_write_file_atomic(path, o, err);
    cJSON_Delete(o);
    return rc;
}

/* ipr_run's samples, processed in parallel by a policy_pool and written in order. */
typedef struct ipr_run_ctx {
    const ipr_options *o;
    const sevo_dataset *ds;
    ipr_sample_result *result;  /* [POLICY_POOL_CHUNK] */
    int *gt_valid;              /* [POLICY_POOL_CHUNK] the verifier on the ground truth; -1 none */
    ipr_stats *stats;
    FILE *pairs, *failed;       /* failed: NULL when discarded */
    sevo_progress pr;
} ipr_run_ctx;

static int ipr_work(void *ctx, vlm_policy *p, int i, int slot, sevo_error *err) {
    ipr_run_ctx *x = ctx;
    const sevo_sample *s = &x->ds->samples[i];
    if (!s->image)
        return sevo_fail(err, "%s:%d: field 'image': missing (IPR re-examines the image)", x->ds->path, s->line);
    if (policy_load_image(p, s->image, err))
        return sevo_fail_prefix(err, "%s:%d: field 'image'", x->ds->path, s->line);
    if (ipr_process_sample(p, policy_image(p), s->question, s->answer, x->o->max_refinement,
                           x->o->cfg->ipr.refinement_prompt_template, &x->result[slot], err))
        return sevo_fail_prefix(err, "%s:%d", x->ds->path, s->line);
    x->gt_valid[slot] = -1;
    if (s->perception) {
        /* greedy: the pairs are the same with or without this check */
        char gt_answer[TRACE_TEXT];
        if (perception_valid(p, s->question, s->perception, s->answer, gt_answer, &x->gt_valid[slot], err))
            return sevo_fail_prefix(err, "%s:%d", x->ds->path, s->line);
    }
    return 0;
}

static int ipr_done(void *ctx, int i, int slot, sevo_error *err) {
    ipr_run_ctx *x = ctx;
    const sevo_sample *s = &x->ds->samples[i];
    const ipr_sample_result *r = &x->result[slot];
    char rel[4096];
    ipr_stats_add(x->stats, r);
    if (x->gt_valid[slot] >= 0) ipr_stats_add_verifier(x->stats, r, s->perception, x->gt_valid[slot]);
    /* image paths relative to the output directory, so the set moves as a whole */
    sevo_path_relative(rel, sizeof rel, x->o->output_dir, s->image);
    if (r->outcome == IPR_REFINED &&
        preference_write(x->pairs, rel, s->question, s->answer, r->refined, r->initial, r->iteration, err))
        return -1;
    /* every failed sample is kept when asked (DESIGN: kept, with no pair), a blank c_0
     * too, which was never refined because it cannot be a pair's rejected side */
    if (r->outcome == IPR_FAILED && x->failed) {
        cJSON *j = cJSON_CreateObject();
        char *line = NULL;
        if (j && cJSON_AddStringToObject(j, "image_path", rel) && cJSON_AddStringToObject(j, "question", s->question) &&
            cJSON_AddStringToObject(j, "ground_truth", s->answer) &&
            cJSON_AddStringToObject(j, "rejected", r->initial) &&
            cJSON_AddStringToObject(j, "last_refinement", r->refined) &&
            cJSON_AddNumberToObject(j, "iteration", is_blank(r->initial) ? 0 : x->o->max_refinement))
            line = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        if (!line) return sevo_fail(err, "out of memory (failed sample)");
        fprintf(x->failed, "%s\n", line);
        free(line);
    }
    char extra[96];
    snprintf(extra, sizeof extra, "pairs %d  correct %d", x->stats->pairs_generated, x->stats->initially_correct);
    progress_update(&x->pr, i + 1, extra);
    return 0;
}

int ipr_run(const ipr_options *o, ipr_stats *stats, sevo_error *err) {
    const sevo_config *cfg = o->cfg;
    memset(stats, 0, sizeof *stats);
    stats->max_refinement = o->max_refinement;
    sevo_dataset ds = {0};
    vlm *m = NULL;
    sevo_tokenizer *tok = NULL;
    policy_pool *pool = NULL;
    ipr_run_ctx x = {.o = o, .ds = &ds, .stats = stats};
    sevo_atomic_file pairs = {0}, failed = {0};
    int rc = -1, failed_open = 0;
    char path[4096];
    if (o->max_refinement < 0 || o->max_refinement > IPR_MAX_ITERATIONS)
        return sevo_fail(err, "--max_refinement %d: expected 0..%d", o->max_refinement, IPR_MAX_ITERATIONS);
    if (checkpoint_load_model(o->model_path, &m, &tok, err)) return -1;
    if (dataset_load_jsonl(&ds, o->data_path, o->skip_bad_lines, err) ||
        policy_pool_create(&pool, m, tok, &o->gen, 0, 0, err))
        goto done;
    x.result = sevo_malloc(POLICY_POOL_CHUNK * sizeof *x.result, "IPR results", err);
    x.gt_valid = sevo_malloc(POLICY_POOL_CHUNK * sizeof *x.gt_valid, "IPR results", err);
    if (!x.result || !x.gt_valid) goto done;
    if (sevo_mkdirs(o->output_dir, err)) goto done;
    sevo_path_join(path, sizeof path, o->output_dir, "preferences.jsonl");
    if (sevo_atomic_open(&pairs, path, err)) goto done;
    x.pairs = pairs.f;
    if (!cfg->ipr.discard_failed_samples) {
        sevo_path_join(path, sizeof path, o->output_dir, "failed_samples.jsonl");
        if (sevo_atomic_open(&failed, path, err)) goto done;
        failed_open = 1;
        x.failed = failed.f;
    }
    int n = o->max_samples > 0 && o->max_samples < ds.n ? o->max_samples : ds.n;
    progress_start(&x.pr, stderr, "ipr", n);
    if (policy_pool_run(pool, n, 0, ipr_work, ipr_done, &x, err)) goto done;
    progress_finish(&x.pr, NULL);
    /* stats last: its presence says the set is complete */
    if (sevo_atomic_commit(&pairs, err) || (failed_open && sevo_atomic_commit(&failed, err))) goto done;
    failed_open = 0;
    sevo_path_join(path, sizeof path, o->output_dir, "ipr_stats.json");
    if (ipr_stats_save(stats, path, err)) goto done;
    rc = 0;
done:
    if (rc) {
        if (pairs.f) sevo_atomic_abort(&pairs);
        if (failed_open && failed.f) sevo_atomic_abort(&failed);
    }
    free(x.result);
    free(x.gt_valid);
    policy_pool_free(pool);
    vlm_free(m);
    tokenizer_free(tok);
    dataset_free(&ds);
    return rc;
}
