/* pipeline.c: Algorithm 2 with resumable stages (see pipeline.h). */
#include "pipeline/pipeline.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/threads.h"
#include "data/synth.h"
#include "eval/evaluate.h"
#include "method/hsr_ee.h"
#include "method/ipr.h"
#include "method/ppo.h"
#include "method/sr_dpo.h"
#include "pipeline/ablation.h"
#include "pipeline/report.h"
#include "train/sft.h"

#define STAMP ".sevo_stage.json"

/* FNV-1a over the effective configuration: any change of it is a different run. The
 * main stages leave out the `ppo` section, which only the no_sr_dpo ablation reads (so
 * tuning the baseline does not redo the method's stages); the ablation stages cover
 * everything. */
static int config_fingerprint(const sevo_config *cfg, int with_ppo, char out[17], sevo_error *err) {
    char *json = with_ppo ? config_to_json(cfg) : config_to_json_except(cfg, "ppo");
    if (!json) return sevo_fail(err, "out of memory (configuration fingerprint)");
    uint64_t h = 1469598103934665603ull;
    for (const char *p = json; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    free(json);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return 0;
}

typedef enum { STAGE_FRESH, STAGE_RESUME, STAGE_DONE } stage_state;

/* Reads dir's stamp: DONE when complete with this fingerprint, RESUME when started with
 * it, FRESH when the directory is absent or empty; another run's directory is an error. */
static int stage_check(const char *stage, const char *dir, const char *fp, stage_state *st, sevo_error *err) {
    char path[4096];
    sevo_path_join(path, sizeof path, dir, STAMP);
    *st = STAGE_FRESH;
    if (!sevo_dir_exists(dir)) return 0;
    if (!sevo_file_exists(path)) {
        /* A run killed while it wrote its first stamp leaves only the stamp's temporary
         * file (sevo_write_file_atomic's "<stamp>.tmp.<pid>"): the stage never started,
         * so the file is removed and the directory counts as empty. */
        DIR *d = opendir(dir);
        struct dirent *e;
        int empty = 1;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char tmp[4096];
            sevo_path_join(tmp, sizeof tmp, dir, e->d_name);
            if (!strncmp(e->d_name, STAMP ".tmp.", strlen(STAMP ".tmp.")) && remove(tmp) == 0) continue;
            empty = 0;
        }
        if (d) closedir(d);
        if (empty) return 0;
        return sevo_fail(err, "%s: %s holds files the pipeline did not write; remove it or set another "
                         "directory for this stage", stage, dir);
    }
    char *text = NULL;
    if (sevo_read_file(path, &text, NULL, err)) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "fingerprint");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "complete");
    int ok = cJSON_IsString(f) && cJSON_IsBool(c);
    int same = ok && !strcmp(f->valuestring, fp), complete = ok && cJSON_IsTrue(c);
    cJSON_Delete(j);
    if (!ok) return sevo_fail(err, "%s: field 'fingerprint'/'complete': malformed stage stamp", path);
    if (!same)
        return sevo_fail(err, "%s: %s holds a run made with another configuration; remove it (or set "
                         "another directory) to run this one", stage, dir);
    *st = complete ? STAGE_DONE : STAGE_RESUME;
    return 0;
}

static int stage_mark(const char *dir, const char *fp, int complete, sevo_error *err) {
    char path[4096], text[160];
    if (sevo_mkdirs(dir, err)) return -1;
    sevo_path_join(path, sizeof path, dir, STAMP);
    int n = snprintf(text, sizeof text, "{\"fingerprint\": \"%s\", \"complete\": %s}\n", fp,
                     complete ? "true" : "false");
    return sevo_write_file_atomic(path, text, (size_t)n, err);
}

static int stage_synth(const pipeline_options *o, sevo_error *err) {
    const sevo_config *cfg = o->cfg;
    char path[4096];
    sevo_path_join(path, sizeof path, cfg->data_dir, "train.jsonl");
    if (sevo_file_exists(path)) {
        if (o->verbose) printf("[synth] %s has train.jsonl: used as it is\n", cfg->data_dir);
        return 0;
    }
    if (strcmp(cfg->model.model_name_or_path, "sevo-tiny") != 0)
        return sevo_fail(err, "%s: not found; the synthetic world is rendered only for the built-in sevo-tiny "
                         "model (model.model_name_or_path is '%s')", path, cfg->model.model_name_or_path);
    synth_options so;
    synth_options_default(&so);
    so.output_dir = cfg->data_dir;
    so.num_train = cfg->synth.num_train;
    so.num_test = cfg->synth.num_test;
    so.seed = (uint64_t)cfg->seed;
    so.image_size = cfg->synth.image_size;
    so.cooccurrence = cfg->synth.cooccurrence;
    so.noise = cfg->synth.noise;
    so.faint_fraction = cfg->synth.faint_fraction;
    so.faint_contrast = cfg->synth.faint_contrast;
    so.annotation_noise = cfg->synth.annotation_noise;
    so.caption_reasoning = cfg->synth.caption_reasoning;
    if (o->verbose) printf("[synth] rendering %d + %d scenes into %s\n", so.num_train, so.num_test, so.output_dir);
    return synth_generate(&so, err);
}

/* Prints how long the stage that just ended took, and restarts the clock. */
static void stage_time(const pipeline_options *o, const char *stage, double *t) {
    double now = sevo_now();
    if (o->verbose) printf("[%s] %.1fs\n", stage, now - *t);
    *t = now;
}

/* An evaluation stage: the models in paths, side by side, on the data's held-out sets,
 * each also answering test with the SFT model's gate (Algorithm 2 applies it to the
 * final model). A complete stage only gives back its table. */
static int eval_stage(const pipeline_options *o, const char *stage, const char *fp, const char *dir,
                      const char *const *paths, const char *const *names, int n, strbuf *table, sevo_error *err) {
    const sevo_config *cfg = o->cfg;
    char label[64], path[4096];
    stage_state st;
    snprintf(label, sizeof label, "pipeline, %s", stage);
    if (stage_check(label, dir, fp, &st, err)) return -1;
    if (st == STAGE_DONE) {
        char *text = NULL;
        sevo_path_join(path, sizeof path, dir, "results.md");
        if (sevo_read_file(path, &text, NULL, err)) return -1;
        if (o->verbose) printf("[%s] %s is complete: skipped\n", stage, dir);
        strbuf_puts(table, text);
        free(text);
        return 0;
    }
    eval_options eo = {.cfg = cfg, .data_dir = cfg->data_dir, .output_dir = dir, .n_models = n};
    for (int i = 0; i < n; i++) {
        eo.model_paths[i] = paths[i];
        eo.model_names[i] = names[i];
    }
    gen_options_default(&eo.gen);
    eo.gen.seed = (uint64_t)cfg->seed;
    hsr_gate gate = {0};
    char cpath[4096];
    vlm_config c;
    sevo_path_join(path, sizeof path, cfg->hsr_ee_output_dir, HSR_GATE_FILE);
    sevo_path_join(cpath, sizeof cpath, cfg->sft_output_dir, "config.json");
    if (vlm_config_load(&c, cpath, err) || hsr_gate_load(&gate, path, c.text.hidden_size, err))
        return sevo_fail_prefix(err, "%s", label);
    hsr_gate_exit rule = {.gate = &gate, .tau = hsr_gate_tau(&gate)};
    eo.gate = hsr_gate_step;
    eo.gate_ctx = &rule;
    eval_model_eval models[2];
    if (o->verbose) printf("[%s] %s%s%s on %s -> %s\n", stage, names[0], n > 1 ? " and " : "", n > 1 ? names[1] : "",
                           cfg->data_dir, dir);
    int bad = stage_mark(dir, fp, 0, err) || eval_run(&eo, models, table, err) || stage_mark(dir, fp, 1, err);
    hsr_gate_release(&gate);
    return bad ? sevo_fail_prefix(err, "%s", label) : 0;
}

/* A training stage of the ablation: run(ctx) into dir unless dir's stamp says done. */
static int ablation_train_stage(const pipeline_options *o, const char *stage, const char *fp, const char *dir,
                                int (*run)(const pipeline_options *, const char *, sevo_error *),
                                sevo_error *err) {
    char label[64];
    stage_state st;
    snprintf(label, sizeof label, "pipeline, %s", stage);
    if (stage_check(label, dir, fp, &st, err)) return -1;
    if (st == STAGE_DONE) {
        if (o->verbose) printf("[%s] %s is complete: skipped\n", stage, dir);
        return 0;
    }
    if (o->verbose) printf("[%s] -> %s%s\n", stage, dir, st == STAGE_RESUME ? " (resuming)" : "");
    if (stage_mark(dir, fp, 0, err) || run(o, dir, err) || stage_mark(dir, fp, 1, err))
        return sevo_fail_prefix(err, "%s", label);
    return 0;
}

/* no_ipr: IPR's pairs with random negatives, then DPO with SR-DPO's settings. */
static int run_random_negative_dpo(const pipeline_options *o, const char *dir, sevo_error *err) {
    const sevo_config *cfg = o->cfg;
    char in[4096], prefs[4096], ckpt[4096];
    sevo_path_join(in, sizeof in, cfg->ipr_data_dir, "preferences.jsonl");
    sevo_path_join(prefs, sizeof prefs, dir, "preferences.jsonl");
    sevo_path_join(ckpt, sizeof ckpt, dir, "dpo_ckpt");
    if (ablation_random_negatives(in, prefs, (uint64_t)cfg->seed, err)) return -1;
    sr_dpo_options so = {.cfg = cfg, .model_path = cfg->sft_output_dir, .preference_path = prefs,
                         .output_dir = ckpt, .resume = 1, .verbose = o->verbose};
    return sr_dpo_run(&so, err);
}

/* no_sr_dpo: the binary-reward PPO baseline from the SFT model. */
static int run_ppo(const pipeline_options *o, const char *dir, sevo_error *err) {
    char data_path[4096], ckpt[4096];
    sevo_path_join(data_path, sizeof data_path, o->cfg->data_dir, "train.jsonl");
    sevo_path_join(ckpt, sizeof ckpt, dir, "ppo_ckpt");
    ppo_options po = {.cfg = o->cfg, .model_path = o->cfg->sft_output_dir, .data_path = data_path,
                      .output_dir = ckpt, .verbose = o->verbose};
    return ppo_run(&po, err);
}

/* The variants of o->ablation after the main stages (ablation.h); their stages live under
 * output_dir/ablation, and the table goes to ablation.md / ablation.json there. */
static int run_ablation(const pipeline_options *o, strbuf *table, double *t, sevo_error *err) {
    const sevo_config *cfg = o->cfg;
    char fps[2][17], root[4096], dir[4096], ckpt[4096], eval_dir[4096], path[4096];
    if (config_fingerprint(cfg, 0, fps[0], err) || config_fingerprint(cfg, 1, fps[1], err)) return -1;
    sevo_path_join(root, sizeof root, cfg->output_dir, "ablation");
    ablation_row rows[ABLATION_NUM_VARIANTS];
    memset(rows, 0, sizeof rows);
    sevo_path_join(path, sizeof path, cfg->eval_output_dir, "results.json");
    if ((o->ablation & ABLATION_FULL) && ablation_row_read(path, 1, 1, &rows[0], err)) return -1;
    if ((o->ablation & ABLATION_NO_HSR_EE) && ablation_row_read(path, 1, 0, &rows[1], err)) return -1;
    static const struct {
        int bit;
        const char *name, *ckpt;
        int (*run)(const pipeline_options *, const char *, sevo_error *);
        int uses_ppo; /* which fingerprint: only the PPO stages read the ppo section */
    } trained[] = {{ABLATION_NO_IPR, "no_ipr", "dpo_ckpt", run_random_negative_dpo, 0},
                   {ABLATION_NO_SR_DPO, "no_sr_dpo", "ppo_ckpt", run_ppo, 1}};
    for (int v = 0; v < 2; v++) {
        if (!(o->ablation & trained[v].bit)) continue;
        char stage[64];
        sevo_path_join(dir, sizeof dir, root, trained[v].name);
        sevo_path_join(ckpt, sizeof ckpt, dir, trained[v].ckpt);
        sevo_path_join(eval_dir, sizeof eval_dir, dir, "eval_results");
        snprintf(stage, sizeof stage, "ablation %s", trained[v].name);
        const char *fp = fps[trained[v].uses_ppo];
        if (ablation_train_stage(o, stage, fp, dir, trained[v].run, err)) return -1;
        stage_time(o, stage, t);
        const char *paths[1] = {ckpt}, *names[1] = {trained[v].name};
        strbuf ignored = {0};
        snprintf(stage, sizeof stage, "ablation %s eval", trained[v].name);
        int bad = eval_stage(o, stage, fp, eval_dir, paths, names, 1, &ignored, err);
        strbuf_free(&ignored);
        if (bad) return -1;
        stage_time(o, stage, t);
        sevo_path_join(path, sizeof path, eval_dir, "results.json");
        if (ablation_row_read(path, 0, 1, &rows[v + 2], err)) return -1;
    }
    strbuf md = {0};
    sevo_path_join(path, sizeof path, root, "ablation.json");
    int bad = sevo_mkdirs(root, err) || ablation_table_write(o->ablation, rows, path, &md, err);
    if (!bad) {
        sevo_path_join(path, sizeof path, root, "ablation.md");
        bad = sevo_write_file_atomic(path, md.p, md.len, err);
    }
    if (!bad) {
        strbuf_puts(table, "\nAblations (the same data, SFT model, gate and seed; full and no_hsr_ee are the "
                           "SR-DPO model with and without early exit):\n\n");
        strbuf_puts(table, md.p);
    }
    strbuf_free(&md);
    return bad ? -1 : 0;
}

int pipeline_run(const pipeline_options *o, strbuf *table, sevo_error *err) {
    const sevo_config *cfg = o->cfg;
    char fp[17], prefs[4096], data_path[4096];
    if (config_fingerprint(cfg, 0, fp, err)) return -1;
    double t0 = sevo_now();
    stage_state st;
    double t = sevo_now();
    if (stage_synth(o, err)) return sevo_fail_prefix(err, "pipeline, synth");
    stage_time(o, "synth", &t);

    /* stage 1: SFT */
    if (stage_check("pipeline, sft", cfg->sft_output_dir, fp, &st, err)) return -1;
    if (st == STAGE_DONE) {
        if (o->verbose) printf("[sft] %s is complete: skipped\n", cfg->sft_output_dir);
    } else {
        if (o->verbose) printf("[sft] %s -> %s%s\n", cfg->data_dir, cfg->sft_output_dir, st == STAGE_RESUME ? " (resuming)" : "");
        sft_options so = {.cfg = cfg, .data_dir = cfg->data_dir, .output_dir = cfg->sft_output_dir, .resume = 1,
                          .verbose = o->verbose};
        if (stage_mark(cfg->sft_output_dir, fp, 0, err) || sft_run(&so, err) ||
            stage_mark(cfg->sft_output_dir, fp, 1, err))
            return sevo_fail_prefix(err, "pipeline, sft");
    }
    stage_time(o, "sft", &t);

    /* stage 2: IPR preference pairs from the SFT model's failed perceptions */
    if (stage_check("pipeline, ipr", cfg->ipr_data_dir, fp, &st, err)) return -1;
    if (st == STAGE_DONE) {
        if (o->verbose) printf("[ipr] %s is complete: skipped\n", cfg->ipr_data_dir);
    } else {
        sevo_path_join(data_path, sizeof data_path, cfg->data_dir, "train.jsonl");
        ipr_options io = {.cfg = cfg, .model_path = cfg->sft_output_dir, .data_path = data_path,
                          .output_dir = cfg->ipr_data_dir, .max_refinement = cfg->ipr.max_refinement_iterations,
                          .max_samples = cfg->ipr.num_samples, .verbose = o->verbose};
        gen_options_default(&io.gen);
        io.gen.temperature = cfg->ipr.temperature;
        io.gen.top_p = cfg->ipr.top_p;
        io.gen.seed = (uint64_t)cfg->seed;
        ipr_stats is;
        if (o->verbose) printf("[ipr] %s on %s -> %s\n", cfg->sft_output_dir, data_path, cfg->ipr_data_dir);
        if (stage_mark(cfg->ipr_data_dir, fp, 0, err) || ipr_run(&io, &is, err))
            return sevo_fail_prefix(err, "pipeline, ipr");
        if (o->verbose)
            printf("[ipr] %d samples: %d initially correct, %d refined, %d failed; %d pairs (yield %.3f)\n",
                   is.total_samples, is.initially_correct, is.refined_success, is.refined_failed, is.pairs_generated,
                   ipr_pair_yield(&is));
        if (o->verbose && is.verifier_checked > 0)
            printf("[ipr] verifier on ground-truth perceptions: %.3f valid; %d right c_0 rejected\n",
                   (double)is.verifier_valid / is.verifier_checked, is.ground_truth_rejected);
        if (is.pairs_generated == 0)
            return sevo_fail(err, "pipeline, ipr: no preference pairs (every perception was either right or "
                             "beyond repair); nothing for SR-DPO to learn from");
        if (stage_mark(cfg->ipr_data_dir, fp, 1, err)) return -1;
    }
    stage_time(o, "ipr", &t);

    /* stage 2, continued: the HSR-EE gate on the SFT model's trajectories */
    if (stage_check("pipeline, hsr_ee", cfg->hsr_ee_output_dir, fp, &st, err)) return -1;
    if (st == STAGE_DONE) {
        if (o->verbose) printf("[hsr_ee] %s is complete: skipped\n", cfg->hsr_ee_output_dir);
    } else {
        sevo_path_join(data_path, sizeof data_path, cfg->data_dir, "train.jsonl");
        hsr_train_options ho = {.cfg = cfg, .model_path = cfg->sft_output_dir, .data_path = data_path,
                                .output_dir = cfg->hsr_ee_output_dir, .num_epochs = cfg->hsr_ee.num_epochs,
                                .max_samples = cfg->hsr_ee.num_samples};
        gen_options_default(&ho.gen);
        ho.gen.seed = (uint64_t)cfg->seed;
        hsr_train_summary hs;
        if (o->verbose) printf("[hsr_ee] %s on %s -> %s\n", cfg->sft_output_dir, data_path, cfg->hsr_ee_output_dir);
        if (stage_mark(cfg->hsr_ee_output_dir, fp, 0, err) || hsr_train_run(&ho, &hs, err) ||
            stage_mark(cfg->hsr_ee_output_dir, fp, 1, err))
            return sevo_fail_prefix(err, "pipeline, hsr_ee");
        if (o->verbose)
            printf("[hsr_ee] %d trajectories; tau %.3f -> %.3f; R_HSR %.3f -> %.3f; held-out AUROC %.3f, exit after "
                   "%.2f steps\n",
                   hs.trajectories, hs.tau_start, hs.tau_end, hs.reward_start, hs.reward_end, hs.auroc,
                   hs.mean_exit_step);
    }
    stage_time(o, "hsr_ee", &t);

    /* stage 3: SR-DPO from π_ref */
    if (stage_check("pipeline, sr_dpo", cfg->sr_dpo_output_dir, fp, &st, err)) return -1;
    if (st == STAGE_DONE) {
        if (o->verbose) printf("[sr_dpo] %s is complete: skipped\n", cfg->sr_dpo_output_dir);
    } else {
        sevo_path_join(prefs, sizeof prefs, cfg->ipr_data_dir, "preferences.jsonl");
        if (o->verbose) printf("[sr_dpo] %s + %s -> %s%s\n", cfg->sft_output_dir, prefs, cfg->sr_dpo_output_dir,
                               st == STAGE_RESUME ? " (resuming)" : "");
        sr_dpo_options so = {.cfg = cfg, .model_path = cfg->sft_output_dir, .preference_path = prefs,
                             .output_dir = cfg->sr_dpo_output_dir, .resume = 1, .verbose = o->verbose};
        if (stage_mark(cfg->sr_dpo_output_dir, fp, 0, err) || sr_dpo_run(&so, err) ||
            stage_mark(cfg->sr_dpo_output_dir, fp, 1, err))
            return sevo_fail_prefix(err, "pipeline, sr_dpo");
    }
    stage_time(o, "sr_dpo", &t);

    /* evaluation of both stages' models on the same held-out sets (redone when not
     * complete; its table is what the pipeline prints) */
    const char *paths[2] = {cfg->sft_output_dir, cfg->sr_dpo_output_dir}, *names[2] = {"SFT", "SR-DPO"};
    if (eval_stage(o, "eval", fp, cfg->eval_output_dir, paths, names, 2, table, err)) return -1;
    stage_time(o, "eval", &t);
    if (o->ablation && run_ablation(o, table, &t, err)) return -1;
    /* the report covers the ablations whenever their table is there */
    char report[4096], ablation_md[4096];
    sevo_path_join(report, sizeof report, cfg->output_dir, "report.html");
    sevo_path_join(ablation_md, sizeof ablation_md, cfg->output_dir, "ablation/ablation.md");
    if (report_write(cfg, sevo_file_exists(ablation_md) ? ablation_md : NULL, report, err))
        return sevo_fail_prefix(err, "pipeline, report");
    if (o->verbose) printf("[report] %s\n", report);
    if (o->verbose) printf("pipeline: done in %.1fs\n", sevo_now() - t0);
    return 0;
}
