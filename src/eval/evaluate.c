/* evaluate.c: the evaluation runner (see evaluate.h). */
#include "eval/evaluate.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/progress.h"
#include "data/answer.h"
#include "data/dataset.h"
#include "model/checkpoint.h"

const char *const EVAL_SPLITS[EVAL_NUM_SPLITS] = {"test", "pope_random", "pope_popular", "pope_adversarial"};

static cJSON *prediction_json(const sevo_sample *s, const trace_result *r, int correct, double seconds) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "question", s->question);
    cJSON_AddStringToObject(o, "answer", r->answer);
    cJSON_AddStringToObject(o, "ground_truth", s->answer);
    cJSON_AddBoolToObject(o, "correct", correct);
    cJSON_AddStringToObject(o, "perception", r->perception);
    cJSON *steps = cJSON_AddArrayToObject(o, "steps");
    for (int k = 0; steps && k < r->n_steps; k++) cJSON_AddItemToArray(steps, cJSON_CreateString(r->steps[k]));
    cJSON_AddNumberToObject(o, "num_steps", r->n_steps);
    cJSON *scores = cJSON_AddArrayToObject(o, "confidence_scores");
    for (int k = 0; scores && k < r->n_scores; k++)
        cJSON_AddItemToArray(scores, cJSON_CreateNumber(r->scores[k]));
    cJSON_AddStringToObject(o, "exit_type", trace_exit_name(r->exit_type));
    cJSON_AddNumberToObject(o, "tokens_generated", r->tokens_generated);
    cJSON_AddNumberToObject(o, "seconds", seconds);
    if (s->type) cJSON_AddStringToObject(o, "type", s->type);
    if (s->depth) cJSON_AddNumberToObject(o, "depth", s->depth);
    if (s->image) cJSON_AddStringToObject(o, "image", s->image);
    return o;
}

/* eval_split's samples, generated in parallel by a policy_pool and taken in order. */
typedef struct split_run {
    const eval_split_options *o;
    const sevo_dataset *ds;
    trace_result *trace; /* [POLICY_POOL_CHUNK] */
    double *seconds;     /* [POLICY_POOL_CHUNK] */
    eval_accum acc;
    FILE *predictions;   /* NULL: not written */
    sevo_progress pr;
} split_run;

static int split_work(void *ctx, vlm_policy *p, int i, int slot, sevo_error *err) {
    split_run *x = ctx;
    const sevo_sample *s = &x->ds->samples[i];
    float *img = policy_image(p);
    /* a blank image: every pixel at the normalisation mean (zeros once normalised) */
    if (x->o->blank_image) {
        const vlm_config *c = vlm_get_config(policy_model(p));
        memset(img, 0, (size_t)c->num_channels * c->image_size * c->image_size * sizeof(float));
    } else if (!s->image) {
        return sevo_fail(err, "%s:%d: field 'image': missing (the trace is conditioned on the image)", x->ds->path,
                         s->line);
    } else if (policy_load_image(p, s->image, err)) {
        return sevo_fail_prefix(err, "%s:%d: field 'image'", x->ds->path, s->line);
    }
    double t0 = policy_seconds(p);
    if (policy_reason(p, img, s->question, x->o->max_steps, x->o->gate,
                      x->o->gate_ctx, &x->trace[slot], err))
        return sevo_fail_prefix(err, "%s:%d", x->ds->path, s->line);
    x->seconds[slot] = policy_seconds(p) - t0;
    return 0;
}

static int split_done(void *ctx, int i, int slot, sevo_error *err) {
    split_run *x = ctx;
    const sevo_sample *s = &x->ds->samples[i];
    const trace_result *r = &x->trace[slot];
    double dt = x->seconds[slot];
    int ok = answer_correct(r->answer, s->answer);
    synth_object objs[EVAL_MAX_MENTIONS];
    int n_obj = s->perception ? synth_parse_perception(s->perception, objs, EVAL_MAX_MENTIONS) : -1;
    eval_sample es = {.qtype = s->type, .depth = s->depth, .question = s->question,
                      .answer = r->answer, .ground_truth = s->answer, .perception = r->perception,
                      .objects = objs, .num_objects = n_obj < 0 ? -1 : n_obj,
                      .steps = r->n_steps, .tokens = r->tokens_generated, .seconds = dt};
    if (eval_accum_add(&x->acc, &es, err)) return sevo_fail_prefix(err, "%s:%d", x->ds->path, s->line);
    if (x->predictions) {
        cJSON *j = prediction_json(s, r, ok, dt);
        char *line = j ? cJSON_PrintUnformatted(j) : NULL;
        cJSON_Delete(j);
        if (!line) return sevo_fail(err, "out of memory (predictions)");
        fprintf(x->predictions, "%s\n", line);
        free(line);
    }
    char extra[64];
    snprintf(extra, sizeof extra, "acc %.3f", (double)x->acc.r.correct / (i + 1));
    progress_update(&x->pr, i + 1, extra);
    return 0;
}

int eval_split(policy_pool *pool, const eval_split_options *o, eval_split_result *out, sevo_error *err) {
    split_run x = {.o = o};
    sevo_dataset ds;
    if (dataset_load_jsonl(&ds, o->data_path, o->skip_bad_lines, err)) return -1;
    x.ds = &ds;
    x.trace = sevo_malloc(POLICY_POOL_CHUNK * sizeof *x.trace, "traces", err);
    x.seconds = sevo_malloc(POLICY_POOL_CHUNK * sizeof *x.seconds, "traces", err);
    sevo_atomic_file af = {0};
    int rc = -1;
    if (!x.trace || !x.seconds) goto done;
    if (o->predictions_path && sevo_atomic_open(&af, o->predictions_path, err)) goto done;
    x.predictions = af.f;
    int n = o->max_samples > 0 && o->max_samples < ds.n ? o->max_samples : ds.n;
    eval_accum_init(&x.acc);
    progress_start(&x.pr, stderr, o->label ? o->label : "eval", n);
    if (policy_pool_run(pool, n, 0, split_work, split_done, &x, err)) goto done;
    progress_finish(&x.pr, NULL);
    if (af.f && sevo_atomic_commit(&af, err)) goto done;
    eval_accum_finish(&x.acc, out);
    rc = 0;
done:
    if (rc && af.f) sevo_atomic_abort(&af);
    free(x.trace);
    free(x.seconds);
    dataset_free(&ds);
    return rc;
}

/* The last component of a path, for a default model name. */
static void base_name(char *out, size_t n, const char *path) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/') start--;
    snprintf(out, n, "%.*s", (int)(len - start), path + start);
}

static int eval_one_model(const eval_options *o, int k, eval_model_eval *me, sevo_error *err) {
    vlm *m = NULL;
    sevo_tokenizer *tok = NULL;
    policy_pool *pool = NULL;
    char dir[4096], path[4096], pred[4096], label[256];
    if (checkpoint_load_model(o->model_paths[k], &m, &tok, err)) return -1;
    int rc = -1;
    if (policy_pool_create(&pool, m, tok, &o->gen, 0, 0, err)) goto done;
    sevo_path_join(dir, sizeof dir, o->output_dir, me->name);
    if (sevo_mkdirs(dir, err)) goto done;
    /* the splits, then test with a blank image, then test with early exit */
    int passes = EVAL_NUM_SPLITS + 1 + (o->gate != NULL);
    for (int s = 0; s < passes; s++) {
        int blank = s == EVAL_NUM_SPLITS, early = s == EVAL_NUM_SPLITS + 1;
        const char *split = s >= EVAL_NUM_SPLITS ? "test" : EVAL_SPLITS[s];
        const char *suffix = blank ? "_blank" : early ? "_early_exit" : "";
        char name[256];
        snprintf(name, sizeof name, "%s.jsonl", split);
        sevo_path_join(path, sizeof path, o->data_dir, name);
        snprintf(name, sizeof name, "%s%s_predictions.jsonl", split, suffix);
        sevo_path_join(pred, sizeof pred, dir, name);
        snprintf(label, sizeof label, "%s %s%s", me->name, split,
                 blank ? " (blank image)" : early ? " (early exit)" : "");
        eval_split_options so = {.data_path = path, .max_samples = o->max_samples,
                                 .max_steps = o->cfg->hsr_ee.max_reasoning_steps, .blank_image = blank,
                                 .predictions_path = pred, .label = label, .skip_bad_lines = o->skip_bad_lines,
                                 .gate = early ? o->gate : NULL, .gate_ctx = early ? o->gate_ctx : NULL};
        eval_split_result *dst = blank ? &me->test_blank : early ? &me->test_early_exit : &me->split[s];
        if (eval_split(pool, &so, dst, err)) goto done;
    }
    me->has_early_exit = o->gate != NULL;
    me->shortcut_gap = eval_shortcut_gap(&me->split[0], &me->test_blank);
    rc = 0;
done:
    policy_pool_free(pool);
    vlm_free(m);
    tokenizer_free(tok);
    return rc;
}

static int write_results(const eval_options *o, const eval_model_eval *models, strbuf *table, sevo_error *err) {
    char path[4096];
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "models") : NULL;
    if (!arr) goto oom;
    cJSON_AddStringToObject(root, "data_dir", o->data_dir);
    for (int k = 0; k < o->n_models; k++) {
        const eval_model_eval *me = &models[k];
        cJSON *mj = cJSON_CreateObject();
        if (!mj) goto oom;
        cJSON_AddItemToArray(arr, mj);
        cJSON_AddStringToObject(mj, "name", me->name);
        cJSON_AddStringToObject(mj, "model_path", me->path);
        cJSON *splits = cJSON_AddObjectToObject(mj, "splits");
        if (!splits) goto oom;
        for (int s = 0; s < EVAL_NUM_SPLITS; s++)
            if (eval_result_add_json(splits, EVAL_SPLITS[s], &me->split[s], err)) goto fail;
        if (eval_result_add_json(splits, "test_blank_image", &me->test_blank, err)) goto fail;
        if (me->has_early_exit && eval_result_add_json(splits, "test_early_exit", &me->test_early_exit, err))
            goto fail;
        cJSON_AddNumberToObject(mj, "shortcut_gap", me->shortcut_gap);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    root = NULL;
    if (!text) goto oom;
    sevo_path_join(path, sizeof path, o->output_dir, "results.json");
    int rc = sevo_write_file_atomic(path, text, strlen(text), err);
    free(text);
    if (rc) return -1;
    eval_model_results cols[2];
    for (int k = 0; k < o->n_models; k++)
        cols[k] = (eval_model_results){.name = models[k].name, .test = &models[k].split[0],
                                       .pope_random = &models[k].split[1], .pope_popular = &models[k].split[2],
                                       .pope_adversarial = &models[k].split[3], .has_shortcut_gap = 1,
                                       .shortcut_gap = models[k].shortcut_gap};
    size_t before = table->len;
    if (eval_markdown_table(cols, o->n_models, table, err)) return -1;
    for (int k = 0; k < o->n_models; k++)
        if (models[k].has_early_exit)
            eval_early_exit_table(models[k].name, &models[k].split[0], &models[k].test_early_exit, table);
    if (table->oom) return sevo_fail(err, "out of memory (results table)");
    sevo_path_join(path, sizeof path, o->output_dir, "results.md");
    return sevo_write_file_atomic(path, table->p + before, table->len - before, err);
oom:
    sevo_fail(err, "out of memory (results.json)");
fail:
    cJSON_Delete(root);
    return -1;
}

int eval_run(const eval_options *o, eval_model_eval *models, strbuf *table, sevo_error *err) {
    char path[4096];
    for (int s = 0; s < EVAL_NUM_SPLITS; s++) {
        char name[256];
        snprintf(name, sizeof name, "%s.jsonl", EVAL_SPLITS[s]);
        sevo_path_join(path, sizeof path, o->data_dir, name);
        if (!sevo_file_exists(path))
            return sevo_fail(err, "%s: not found (the data directory must hold test.jsonl, pope_random.jsonl, "
                             "pope_popular.jsonl and pope_adversarial.jsonl)", path);
    }
    if (o->n_models < 1 || o->n_models > 2) return sevo_fail(err, "eval: 1 or 2 models (got %d)", o->n_models);
    /* A run that fails leaves nothing behind: when it made the output directory, it
     * removes it again (an existing one keeps what it had; files inside are atomic). */
    int fresh = !sevo_dir_exists(o->output_dir);
    if (sevo_mkdirs(o->output_dir, err)) return -1;
    /* names first: each model's predictions go into a directory of its name */
    for (int k = 0; k < o->n_models; k++) {
        eval_model_eval *me = &models[k];
        memset(me, 0, sizeof *me);
        if (o->model_names[k])
            snprintf(me->name, sizeof me->name, "%s", o->model_names[k]);
        else
            base_name(me->name, sizeof me->name, o->model_paths[k]);
        if (k == 1 && !strcmp(me->name, models[0].name)) snprintf(me->name, sizeof me->name, "%.100s_2", models[0].name);
        snprintf(me->path, sizeof me->path, "%s", o->model_paths[k]);
    }
    int rc = 0;
    for (int k = 0; k < o->n_models && !rc; k++) rc = eval_one_model(o, k, &models[k], err);
    if (!rc) rc = write_results(o, models, table, err);
    if (rc && fresh) sevo_remove_tree(o->output_dir);
    return rc;
}
