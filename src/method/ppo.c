/* ppo.c: the binary-reward PPO baseline (see ppo.h). */
#include "method/ppo.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/progress.h"
#include "core/jsonutil.h"
#include "data/answer.h"
#include "data/dataset.h"
#include "model/checkpoint.h"
#include "model/generate.h"
#include "model/prompt.h"
#include "train/examples.h"
#include "train/trainer.h"

double ppo_token_loss(double logp, double old_logp, double ref_logp, double advantage, double epsilon,
                      double kl_coef, double *dlogp, int *clipped) {
    double ratio = exp(logp - old_logp);
    double lo = 1.0 - epsilon, hi = 1.0 + epsilon;
    double clipped_ratio = ratio < lo ? lo : ratio > hi ? hi : ratio;
    double unclipped_term = ratio * advantage, clipped_term = clipped_ratio * advantage;
    /* min(ρA, clip(ρ)A): the clipped term is the smaller one exactly when the ratio has
     * left the interval in the direction the advantage rewards; it is then constant in θ */
    int clip_active = clipped_term < unclipped_term;
    double surrogate = clip_active ? clipped_term : unclipped_term;
    double d_surrogate = clip_active ? 0.0 : unclipped_term; /* d(ρA)/dlogp = ρA */
    double delta = ref_logp - logp;
    double kl = exp(delta) - delta - 1.0;
    double d_kl = 1.0 - exp(delta); /* d k3 / d logp */
    *dlogp = -d_surrogate + kl_coef * d_kl;
    *clipped = clip_active;
    return -surrogate + kl_coef * kl;
}

double ppo_advantages(const float *rewards, int n, float *advantages) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += rewards[i];
    mean /= n > 0 ? n : 1;
    for (int i = 0; i < n; i++) var += (rewards[i] - mean) * (rewards[i] - mean);
    double sd = n > 0 ? sqrt(var / n) : 0;
    for (int i = 0; i < n; i++) advantages[i] = sd > 1e-12 ? (float)((rewards[i] - mean) / sd) : 0.0f;
    return mean;
}

typedef struct ppo_ctx {
    example_set es;
    batch_buf bb;
    float *reward, *advantage; /* per rollout (= example) */
    long *offset;              /* first token of each example in old/ref */
    float *old, *ref;          /* per token: log π_old, log π_ref of ids[t+1] (targets only) */
    float *logp, *dlogp;
    int *idx;
    int row_len, pad_id, batch_size;
    double epsilon, kl_coef, mean_reward;
} ppo_ctx;

enum { M_LOSS, M_KL, M_CLIP, M_RATIO, M_REWARD, M_COUNT };
static const char *const METRIC_NAMES[M_COUNT] = {"loss", "kl", "clip_fraction", "ratio", "reward"};

/* The tokens of a sampled trace, laid out as SFT lays out a perceive-and-reason trace;
 * every sampled token is a response token. */
static int add_trace(example_set *es, const prompt_ids *p, const sevo_tokenizer *tok, int num_patches,
                     const char *question, const trace_result *r, int image, int max_len, tokseq *q,
                     sevo_error *err) {
    q->n = 0;
    if (prompt_perceive(q, p, tok, num_patches, question, err) || tokseq_text(q, tok, r->perception, 1, err))
        return -1;
    for (int k = 0; k < r->n_steps; k++)
        if (tokseq_push(q, p->step, 1, err) || tokseq_text(q, tok, r->steps[k], 1, err)) return -1;
    /* an <answer> forced by the step budget was not sampled: no loss on it */
    if (tokseq_push(q, p->answer, r->exit_type == EXIT_MODEL_END, err) || tokseq_text(q, tok, r->answer, 1, err) ||
        tokseq_push(q, p->eos, 1, err))
        return -1;
    return example_set_add(es, q, image, max_len, err);
}

/* collect_rollouts' traces, sampled in parallel by a policy_pool and added in order. */
typedef struct rollout_ctx {
    ppo_ctx *x;
    const sevo_dataset *ds;
    const sevo_tokenizer *tok;
    prompt_ids p;
    int first, K, num_patches, max_len, correct;
    int *image;           /* [n] the rollout's image in x->es */
    trace_result *trace;  /* [POLICY_POOL_CHUNK] */
    tokseq q;
    sevo_progress pr;
} rollout_ctx;

static int rollout_work(void *ctx, vlm_policy *p, int i, int slot, sevo_error *err) {
    rollout_ctx *r = ctx;
    const sevo_sample *s = &r->ds->samples[(r->first + i) % r->ds->n];
    return policy_reason(p, r->x->es.images + (size_t)r->image[i] * r->x->es.image_floats, s->question, r->K, NULL,
                         NULL, &r->trace[slot], err);
}

static int rollout_done(void *ctx, int i, int slot, sevo_error *err) {
    rollout_ctx *r = ctx;
    const sevo_sample *s = &r->ds->samples[(r->first + i) % r->ds->n];
    if (add_trace(&r->x->es, &r->p, r->tok, r->num_patches, s->question, &r->trace[slot], r->image[i], r->max_len,
                  &r->q, err))
        return -1;
    r->x->reward[i] = (float)answer_correct(r->trace[slot].answer, s->answer);
    r->correct += r->x->reward[i] > 0;
    char extra[48];
    snprintf(extra, sizeof extra, "reward %.3f", (double)r->correct / (i + 1));
    progress_update(&r->pr, i + 1, extra);
    return 0;
}

/* Samples one trace per prompt of the round with policy m and scores it with r_ans.
 * Rollout i samples from the generator keyed by stream0 + i, so every round draws afresh. */
static int collect_rollouts(ppo_ctx *x, const sevo_dataset *ds, int first, int n, uint64_t stream0, vlm *m,
                            const sevo_tokenizer *tok, const gen_options *gen, int K, sevo_error *err) {
    const vlm_config *c = vlm_get_config(m);
    rollout_ctx r = {.x = x, .ds = ds, .tok = tok, .first = first, .K = K, .num_patches = vlm_config_num_patches(c),
                     .max_len = c->max_position_embeddings};
    policy_pool *pool = NULL;
    int rc = -1;
    tokseq_init(&r.q);
    r.image = sevo_malloc((size_t)(n > 0 ? n : 1) * sizeof *r.image, "rollouts", err);
    r.trace = sevo_malloc(POLICY_POOL_CHUNK * sizeof *r.trace, "rollouts", err);
    if (!r.image || !r.trace || prompt_ids_resolve(&r.p, tok, err)) goto done;
    /* the images first, on this thread: the example set grows as they are added */
    for (int i = 0; i < n; i++) {
        const sevo_sample *s = &ds->samples[(first + i) % ds->n];
        if (!s->image) {
            sevo_fail(err, "%s:%d: field 'image': missing (rollouts are conditioned on the image)", ds->path, s->line);
            goto done;
        }
        if (example_set_image(&x->es, s->image, c, &r.image[i], err)) {
            sevo_fail_prefix(err, "%s:%d: field 'image'", ds->path, s->line);
            goto done;
        }
    }
    if (policy_pool_create(&pool, m, tok, gen, 0, 0, err)) goto done;
    progress_start(&r.pr, stderr, "ppo rollouts", n);
    if (policy_pool_run(pool, n, stream0, rollout_work, rollout_done, &r, err)) goto done;
    progress_finish(&r.pr, NULL);
    rc = 0;
done:
    policy_pool_free(pool);
    tokseq_free(&r.q);
    free(r.image);
    free(r.trace);
    return rc;
}

/* out[offset[i] + t] = log π(ids[t+1]) of example i under m, for every target token. */
static int token_logps(ppo_ctx *x, vlm *m, float *out, sevo_error *err) {
    for (int a = 0; a < x->es.n; a += x->batch_size) {
        int k = x->es.n - a < x->batch_size ? x->es.n - a : x->batch_size;
        for (int i = 0; i < k; i++) x->idx[i] = a + i;
        if (batch_assemble(&x->bb, &x->es, x->idx, k, x->pad_id, x->row_len, err) ||
            vlm_forward(m, &x->bb.b, x->logp, err))
            return -1;
        for (int i = 0; i < k; i++) {
            const train_example *e = &x->es.ex[a + i];
            for (int t = 0; t < e->n; t++) {
                int f = x->bb.ex_start[i] + t;
                out[x->offset[a + i] + t] = x->bb.targets[f] >= 0 ? x->logp[f] : 0.0f;
            }
        }
    }
    return 0;
}

static int ppo_step(void *vctx, vlm *m, const int *order, const int *batch_start, int b0, int b1,
                    trainer_step_result *r, sevo_error *err) {
    ppo_ctx *x = vctx;
    /* the step's loss is the mean over all its sampled tokens */
    double n_tokens = 0;
    for (int b = b0; b < b1; b++)
        n_tokens += examples_target_weight(&x->es, order + batch_start[b], batch_start[b + 1] - batch_start[b]);
    double scale = n_tokens > 0 ? 1.0 / n_tokens : 0.0;
    for (int b = b0; b < b1; b++) {
        const int *items = order + batch_start[b];
        int n = batch_start[b + 1] - batch_start[b];
        if (batch_assemble(&x->bb, &x->es, items, n, x->pad_id, x->row_len, err) ||
            vlm_forward(m, &x->bb.b, x->logp, err))
            return -1;
        int N = x->bb.b.B * x->bb.b.T;
        memset(x->dlogp, 0, (size_t)N * sizeof *x->dlogp);
        for (int i = 0; i < n; i++) {
            const train_example *e = &x->es.ex[items[i]];
            long off = x->offset[items[i]];
            for (int t = 0; t < e->n; t++) {
                int f = x->bb.ex_start[i] + t;
                if (x->bb.targets[f] < 0) continue;
                double g, lp = x->logp[f], old = x->old[off + t], ref = x->ref[off + t];
                int clipped;
                double loss = ppo_token_loss(lp, old, ref, x->advantage[items[i]], x->epsilon, x->kl_coef, &g,
                                             &clipped);
                x->dlogp[f] = (float)(g * scale);
                double delta = ref - lp;
                r->metrics[M_LOSS] += loss * scale;
                r->metrics[M_KL] += (exp(delta) - delta - 1.0) * scale;
                r->metrics[M_CLIP] += clipped * scale;
                r->metrics[M_RATIO] += exp(lp - old) * scale;
            }
        }
        vlm_backward(m, x->dlogp);
        r->tokens += N;
    }
    r->metrics[M_REWARD] = x->mean_reward;
    return 0;
}

static int save_round_stats(const char *dir, int round, int n, double mean_reward, sevo_error *err) {
    char path[4096];
    sevo_path_join(path, sizeof path, dir, "rollouts.json");
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "round", round) || !cJSON_AddNumberToObject(o, "samples", n) ||
        !cJSON_AddNumberToObject(o, "mean_reward", mean_reward)) {
        cJSON_Delete(o);
        return sevo_fail(err, "out of memory (rollouts.json)");
    }
    int rc = json_write_file_atomic(path, o, err);
    cJSON_Delete(o);
    return rc;
}

static void ppo_ctx_free(ppo_ctx *x) {
    free(x->reward);
    free(x->advantage);
    free(x->offset);
    free(x->old);
    free(x->ref);
    free(x->logp);
    free(x->dlogp);
    free(x->idx);
    batch_buf_free(&x->bb);
    example_set_free(&x->es);
}

/* One round: rollouts from the weights in start_dir, then the clipped objective, written
 * into dir. ref: the reference model (NULL in round 0, where it is the start itself). */
static int ppo_round(const ppo_options *o, const sevo_dataset *ds, vlm *ref, const char *start_dir, const char *dir,
                     int round, sevo_error *err) {
    const sevo_config *cfg = o->cfg;
    const sevo_ppo_section *h = &cfg->ppo;
    vlm *m = NULL;
    sevo_tokenizer *tok = NULL;
    ppo_ctx x = {.epsilon = h->clip_epsilon, .kl_coef = h->kl_coef, .batch_size = h->batch_size};
    int rc = -1, n = h->num_samples;
    example_set_init(&x.es, 0);
    batch_buf_init(&x.bb);
    if (checkpoint_load_model(start_dir, &m, &tok, err)) return -1;
    const vlm_config *c = vlm_get_config(m);
    example_set_free(&x.es);
    example_set_init(&x.es, c->num_channels * c->image_size * c->image_size);
    x.reward = malloc((size_t)n * sizeof *x.reward);
    x.advantage = malloc((size_t)n * sizeof *x.advantage);
    x.offset = malloc((size_t)n * sizeof *x.offset);
    x.idx = malloc((size_t)h->batch_size * sizeof *x.idx);
    if (!x.reward || !x.advantage || !x.offset || !x.idx) {
        sevo_fail(err, "out of memory (PPO rollouts)");
        goto done;
    }
    /* each round its own questions (wrapping around the data) and its own sampling stream */
    gen_options gen;
    gen_options_default(&gen);
    gen.temperature = h->temperature;
    gen.top_p = h->top_p;
    gen.seed = (uint64_t)cfg->seed + (uint64_t)round;
    if (o->verbose) printf("ppo: round %d: %d rollouts from %s\n", round + 1, n, start_dir);
    if (collect_rollouts(&x, ds, (int)(((long long)round * n) % ds->n), n, (uint64_t)round * n, m, tok, &gen,
                         cfg->hsr_ee.max_reasoning_steps, err))
        goto done;
    x.mean_reward = ppo_advantages(x.reward, n, x.advantage);
    long total = 0;
    for (int i = 0; i < x.es.n; i++) {
        x.offset[i] = total;
        total += x.es.ex[i].n;
        x.row_len = x.es.ex[i].n > x.row_len ? x.es.ex[i].n : x.row_len;
    }
    x.row_len *= 2;
    x.pad_id = c->pad_token_id;
    size_t max_tokens = (size_t)h->batch_size * x.row_len;
    x.old = malloc((size_t)total * sizeof *x.old);
    x.ref = malloc((size_t)total * sizeof *x.ref);
    x.logp = malloc(max_tokens * sizeof *x.logp);
    x.dlogp = malloc(max_tokens * sizeof *x.dlogp);
    if (!x.old || !x.ref || !x.logp || !x.dlogp) {
        sevo_fail(err, "out of memory (PPO log-probs)");
        goto done;
    }
    /* π_old: the weights that sampled the round, measured once before its first step */
    if (token_logps(&x, m, x.old, err)) goto done;
    if (ref) {
        if (token_logps(&x, ref, x.ref, err)) goto done;
    } else {
        memcpy(x.ref, x.old, (size_t)total * sizeof *x.ref);
    }
    if (o->verbose) printf("ppo: round %d: mean reward %.4f\n", round + 1, x.mean_reward);
    if (sevo_mkdirs(dir, err) || save_round_stats(dir, round + 1, n, x.mean_reward, err)) goto done;
    trainer_task task = {.name = "ppo", .n_items = x.es.n, .n_metrics = M_COUNT, .metric_names = METRIC_NAMES,
                         .ctx = &x, .step = ppo_step};
    trainer_options to = TRAINER_OPTIONS(h, cfg, dir, 1, 0, o->verbose);
    to.seed = cfg->seed + round;
    int steps = (epoch_num_batches(x.es.n, h->batch_size) + h->gradient_accumulation_steps - 1) /
                h->gradient_accumulation_steps * h->num_epochs;
    if (steps / 20 < to.logging_steps) to.logging_steps = steps / 20 > 1 ? steps / 20 : 1;
    rc = trainer_run(&task, &to, m, tok, err);
done:
    ppo_ctx_free(&x);
    vlm_free(m);
    tokenizer_free(tok);
    return rc;
}

int ppo_run(const ppo_options *o, sevo_error *err) {
    const sevo_ppo_section *h = &o->cfg->ppo;
    sevo_dataset ds = {0};
    vlm *ref = NULL;
    sevo_tokenizer *ref_tok = NULL;
    char dir[4096], prev[4096], path[4096];
    int rc = -1;
    if (dataset_load_jsonl(&ds, o->data_path, 0, err)) return -1;
    snprintf(prev, sizeof prev, "%s", o->model_path);
    for (int r = 0; r < h->num_rounds; r++) {
        if (r == h->num_rounds - 1) {
            snprintf(dir, sizeof dir, "%s", o->output_dir);
        } else {
            char name[32];
            snprintf(name, sizeof name, "round-%d", r + 1);
            sevo_path_join(dir, sizeof dir, o->output_dir, name);
        }
        sevo_path_join(path, sizeof path, dir, "trainer_state.json");
        if (sevo_file_exists(path)) {
            if (o->verbose) printf("ppo: round %d: %s is complete\n", r + 1, dir);
        } else {
            if (r > 0 && !ref && checkpoint_load_model(o->model_path, &ref, &ref_tok, err)) goto done;
            if (ppo_round(o, &ds, r > 0 ? ref : NULL, prev, dir, r, err)) goto done;
        }
        snprintf(prev, sizeof prev, "%s", dir);
    }
    rc = 0;
done:
    vlm_free(ref);
    tokenizer_free(ref_tok);
    dataset_free(&ds);
    return rc;
}
