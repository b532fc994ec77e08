/* sr_dpo.c: the SR-DPO trainer (see sr_dpo.h). */
#include "method/sr_dpo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "data/preferences.h"
#include "method/rewards.h"
#include "model/checkpoint.h"
#include "model/prompt.h"
#include "train/examples.h"
#include "train/trainer.h"

/* Examples: with k = per_pair, pair i is ki (chosen), ki+1 (rejected) with its image,
 * ki+2, ki+3 the same texts with the blank image, and, with the conditional term on
 * (k = 5), ki+4 the chosen text with the masked image. */
enum { EX_CHOSEN = 0, EX_REJECTED = 1, EX_BLANK_CHOSEN = 2, EX_BLANK_REJECTED = 3, EX_MASKED_CHOSEN = 4 };
enum { EX_PER_PAIR = 4, EX_PER_PAIR_WITH_TERM = 5 };

/* The conditional term's masked copy keeps each patch of the image with this probability. */
#define MASK_KEEP 0.2

typedef struct dpo_ctx {
    example_set es;
    batch_buf bb;
    int n_pairs, row_len, pad_id;
    dpo_settings set;
    double rpo_alpha;
    double image_weight; /* mDPO's conditional term (sr_dpo.image_preference_weight) */
    int per_pair;        /* examples per pair: 4, or 5 with the conditional term */
    double *ref;   /* [n_pairs * per_pair]: log π_ref of every example */
    float *logp, *dlogp;
    int *idx;      /* scratch: example indices of a micro-batch */
    double *pol_c, *pol_r, *ref_c, *ref_r, *g_c, *g_r; /* scratch per micro-batch pair */
    double *lp;    /* scratch: sequence log-probs of a micro-batch, up to 3 per pair */
    double *ref_m, *g_cc, *g_m; /* scratch per pair: the conditional term's (image_preference) */
} dpo_ctx;

/* "<perceive> |" prompt, then y and the <step> that ends a perception (both trained). */
static int add_example(example_set *es, const prompt_ids *p, const sevo_tokenizer *tok, int num_patches,
                       const char *question, const char *response, int image, int max_len, tokseq *q,
                       sevo_error *err) {
    q->n = 0;
    return prompt_perceive(q, p, tok, num_patches, question, err) || tokseq_text(q, tok, response, 1, err) ||
                   tokseq_push(q, p->step, 1, err) || example_set_add(es, q, image, max_len, err)
               ? -1
               : 0;
}

static int build_examples(dpo_ctx *x, const sevo_preferences *prefs, const sevo_tokenizer *tok, const vlm_config *c,
                          int max_len, uint64_t seed, sevo_error *err) {
    prompt_ids p;
    if (prompt_ids_resolve(&p, tok, err)) return -1;
    int P = vlm_config_num_patches(c), blank;
    if (example_set_blank_image(&x->es, &blank, err)) return -1;
    /* each pair's own mask, the same in every run with this seed */
    sevo_rng r;
    sevo_rng_seed(&r, seed, 0x6d61736bu);
    tokseq q;
    tokseq_init(&q);
    int rc = 0;
    for (int i = 0; i < prefs->n && !rc; i++) {
        const sevo_preference *s = &prefs->v[i];
        int img;
        if (example_set_image(&x->es, s->image, c, &img, err)) {
            rc = sevo_fail_prefix(err, "%s:%d: field 'image_path'", prefs->path, s->line);
            break;
        }
        rc = add_example(&x->es, &p, tok, P, s->question, s->chosen, img, max_len, &q, err) ||
             add_example(&x->es, &p, tok, P, s->question, s->rejected, img, max_len, &q, err) ||
             add_example(&x->es, &p, tok, P, s->question, s->chosen, blank, max_len, &q, err) ||
             add_example(&x->es, &p, tok, P, s->question, s->rejected, blank, max_len, &q, err);
        if (!rc && x->per_pair == EX_PER_PAIR_WITH_TERM) {
            int masked;
            rc = example_set_masked_image(&x->es, img, c->image_size, c->patch_size, MASK_KEEP, &r, &masked, err) ||
                 add_example(&x->es, &p, tok, P, s->question, s->chosen, masked, max_len, &q, err);
        }
    }
    tokseq_free(&q);
    return rc ? -1 : 0;
}

/* Forward over examples idx[0..n) as one packed batch; out[i] = log π(example idx[i]). */
static int sequence_logps(dpo_ctx *x, vlm *m, const int *idx, int n, double *out, sevo_error *err) {
    if (batch_assemble(&x->bb, &x->es, idx, n, x->pad_id, x->row_len, err) || vlm_forward(m, &x->bb.b, x->logp, err))
        return -1;
    for (int i = 0; i < n; i++) {
        double s = 0;
        int len = x->es.ex[idx[i]].n;
        for (int t = 0; t < len; t++) s += x->logp[x->bb.ex_start[i] + t];
        out[i] = s;
    }
    return 0;
}

/* π_ref's log-probs of every example, in batches of batch_size pairs. */
static int reference_logps(dpo_ctx *x, vlm *m, int batch_size, sevo_error *err) {
    int n = x->n_pairs * x->per_pair, chunk = batch_size * x->per_pair;
    for (int a = 0; a < n; a += chunk) {
        int k = n - a < chunk ? n - a : chunk;
        for (int i = 0; i < k; i++) x->idx[i] = a + i;
        if (sequence_logps(x, m, x->idx, k, x->ref + a, err)) return -1;
    }
    return 0;
}

enum {
    M_LOSS, M_ACC, M_MARGIN, M_CHOSEN, M_REJECTED, M_LOGP_C, M_LOGP_R, M_GRAD_W, M_NLL, M_IMG_MARGIN,
    M_IMG_LOGP_C, M_IMG_LOGP_R,
    M_IMG_PREF, /* last: left out of the logs when the conditional term is off */
    M_COUNT
};
static const char *const METRIC_NAMES[M_COUNT] = {
    "loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected", "logps/chosen",
    "logps/rejected", "gradient_weight", "nll_loss", "rewards/imageless_margins", "logps/imageless_chosen",
    "logps/imageless_rejected", "image_preference_loss"};

/* mDPO's conditional preference (Wang et al. 2024): the same chosen text with its image
 * preferred over a corrupted copy of the image, so that the chosen text's reward cannot
 * rise without what is in the image. The corruption keeps a random MASK_KEEP of the
 * patches: a blank image would be a poor negative, since a model meets the term by
 * recognising the blank input and lowering every text under it. Plain sigmoid DPO at
 * the trainer's beta, with x->pol_c and x->ref_c (set by the caller) as the preferred
 * side and masked_logp[i] (example masked_ex[i]) as the other; the mean loss into *loss,
 * its gradients into grad_c and grad_m. */
static int image_preference(dpo_ctx *x, int n, const double *masked_logp, const int *masked_ex, double *grad_c,
                            double *grad_m, double *loss, sevo_error *err) {
    for (int i = 0; i < n; i++) x->ref_m[i] = x->ref[masked_ex[i]];
    dpo_batch cb = {.policy_chosen_logp = x->pol_c, .policy_rejected_logp = masked_logp,
                    .ref_chosen_logp = x->ref_c, .ref_rejected_logp = x->ref_m, .n = n};
    dpo_settings cs = {.beta = x->set.beta, .loss_type = DPO_LOSS_SIGMOID};
    dpo_metrics cm;
    if (dpo_loss(&cb, &cs, grad_c, grad_m, &cm, err)) return -1;
    *loss = cm.loss;
    return 0;
}

static int dpo_step(void *vctx, vlm *m, const int *order, const int *batch_start, int b0, int b1,
                    trainer_step_result *r, sevo_error *err) {
    dpo_ctx *x = vctx;
    int step_pairs = batch_start[b1] - batch_start[b0], k = x->per_pair;
    for (int b = b0; b < b1; b++) {
        const int *pairs = order + batch_start[b];
        int n = batch_start[b + 1] - batch_start[b];
        double w = (double)n / step_pairs; /* the step's loss is the mean over all its pairs */
        /* with the conditional term the chosen text under the masked image is trained
         * too: examples 2n..3n-1 */
        int cond = k == EX_PER_PAIR_WITH_TERM, n_ex = cond ? 3 * n : 2 * n;
        for (int i = 0; i < n; i++) {
            x->idx[2 * i] = k * pairs[i] + EX_CHOSEN;
            x->idx[2 * i + 1] = k * pairs[i] + EX_REJECTED;
            if (cond) x->idx[2 * n + i] = k * pairs[i] + EX_MASKED_CHOSEN;
        }
        double *lp = x->lp;
        if (sequence_logps(x, m, x->idx, n_ex, lp, err)) return -1;
        for (int i = 0; i < n; i++) {
            x->pol_c[i] = lp[2 * i];
            x->pol_r[i] = lp[2 * i + 1];
            x->ref_c[i] = x->ref[x->idx[2 * i]];
            x->ref_r[i] = x->ref[x->idx[2 * i + 1]];
        }
        dpo_batch db = {.policy_chosen_logp = x->pol_c, .policy_rejected_logp = x->pol_r,
                        .ref_chosen_logp = x->ref_c, .ref_rejected_logp = x->ref_r, .n = n};
        dpo_metrics dm;
        if (dpo_loss(&db, &x->set, x->g_c, x->g_r, &dm, err)) return -1;
        double cond_loss = 0;
        if (cond) {
            if (image_preference(x, n, lp + 2 * n, x->idx + 2 * n, x->g_cc, x->g_m, &cond_loss, err)) return -1;
            for (int i = 0; i < n; i++) x->g_c[i] += x->image_weight * x->g_cc[i];
        }
        /* d(step loss)/d(token log-prob) = the sequence's gradient, on each of its
         * targets: DPO's (plus the conditional term's, weighted) on the chosen and
         * rejected texts, the conditional term's on the masked-image chosen texts; with
         * RPO, the chosen texts' mean token NLL adds -alpha/(n len) */
        int N = x->bb.b.B * x->bb.b.T;
        memset(x->dlogp, 0, (size_t)N * sizeof *x->dlogp);
        double nll = 0;
        for (int i = 0; i < n_ex; i++) {
            const train_example *e = &x->es.ex[x->idx[i]];
            int s0 = x->bb.ex_start[i], len = e->n, n_targets = e->n_targets;
            double g = i >= 2 * n ? x->image_weight * x->g_m[i - 2 * n] : i % 2 ? x->g_r[i / 2] : x->g_c[i / 2];
            if (i < 2 * n && i % 2 == 0 && n_targets > 0) {
                nll += -lp[i] / n_targets / n;
                g -= x->rpo_alpha / ((double)n_targets * n);
            }
            for (int t = s0; t < s0 + len; t++)
                if (x->bb.targets[t] >= 0) x->dlogp[t] = (float)(w * g);
        }
        dm.loss += x->rpo_alpha * nll + x->image_weight * cond_loss;
        vlm_backward(m, x->dlogp);
        r->tokens += N;
        double vals[] = {dm.loss, dm.rewards_accuracies, dm.rewards_margins, dm.rewards_chosen, dm.rewards_rejected,
                         dm.logps_chosen, dm.logps_rejected, dm.grad_weight};
        for (int j = 0; j <= M_GRAD_W; j++) r->metrics[j] += w * vals[j];
        r->metrics[M_NLL] += w * nll;
        if (cond) r->metrics[M_IMG_PREF] += w * cond_loss;
        /* the same pairs under the blank image (forward only, after the backward) */
        for (int i = 0; i < n; i++) {
            x->idx[2 * i] = k * pairs[i] + EX_BLANK_CHOSEN;
            x->idx[2 * i + 1] = k * pairs[i] + EX_BLANK_REJECTED;
        }
        if (sequence_logps(x, m, x->idx, 2 * n, lp, err)) return -1;
        for (int i = 0; i < n; i++) {
            double hc = lp[2 * i] - x->ref[x->idx[2 * i]], hr = lp[2 * i + 1] - x->ref[x->idx[2 * i + 1]];
            r->metrics[M_IMG_MARGIN] += w / n * x->set.beta * (hc - hr);
            r->metrics[M_IMG_LOGP_C] += w / n * lp[2 * i];
            r->metrics[M_IMG_LOGP_R] += w / n * lp[2 * i + 1];
        }
    }
    return 0;
}

int sr_dpo_run(const sr_dpo_options *o, sevo_error *err) {
    const sevo_config *cfg = o->cfg;
    const sevo_sr_dpo_section *h = &cfg->sr_dpo;
    sevo_preferences prefs = {0};
    vlm *m = NULL;
    sevo_tokenizer *tok = NULL;
    dpo_ctx x = {0};
    int rc = -1;
    example_set_init(&x.es, 0);
    batch_buf_init(&x.bb);
    int lt = dpo_loss_type_from_name(h->loss_type);
    if (lt < 0) return sevo_fail(err, "sr_dpo.loss_type '%s': expected sigmoid, ipo or hinge", h->loss_type);
    if (h->label_smoothing != 0 && lt != DPO_LOSS_SIGMOID)
        return sevo_fail(err, "sr_dpo.label_smoothing %g: applies to loss_type sigmoid only (got %s)",
                         h->label_smoothing, h->loss_type);
    x.rpo_alpha = h->rpo_alpha;
    x.image_weight = h->image_preference_weight;
    x.per_pair = x.image_weight > 0 ? EX_PER_PAIR_WITH_TERM : EX_PER_PAIR;
    x.set = (dpo_settings){.beta = h->beta, .label_smoothing = h->label_smoothing, .loss_type = (dpo_loss_type)lt,
                           .dpop_lambda = h->dpop_lambda};
    if (preferences_load_jsonl(&prefs, o->preference_path, o->skip_bad_lines, err)) return -1;
    if (checkpoint_load_model(o->model_path, &m, &tok, err)) goto done;
    const vlm_config *c = vlm_get_config(m);
    example_set_free(&x.es);
    example_set_init(&x.es, c->num_channels * c->image_size * c->image_size);
    int max_len = h->max_seq_length < c->max_position_embeddings ? h->max_seq_length : c->max_position_embeddings;
    x.n_pairs = prefs.n;
    if (build_examples(&x, &prefs, tok, c, max_len, cfg->seed, err)) goto done;
    for (int i = 0; i < x.es.n; i++) x.row_len = x.es.ex[i].n > x.row_len ? x.es.ex[i].n : x.row_len;
    x.row_len *= 2;
    x.pad_id = c->pad_token_id;
    int mb = h->batch_size * x.per_pair;
    size_t max_tokens = (size_t)mb * x.row_len;
    x.ref = malloc((size_t)x.es.n * sizeof *x.ref);
    x.logp = malloc(max_tokens * sizeof *x.logp);
    x.dlogp = malloc(max_tokens * sizeof *x.dlogp);
    x.idx = malloc((size_t)mb * sizeof *x.idx);
    double *scratch = malloc((size_t)12 * h->batch_size * sizeof *scratch);
    if (!x.ref || !x.logp || !x.dlogp || !x.idx || !scratch) {
        free(scratch);
        sevo_fail(err, "out of memory (SR-DPO buffers)");
        goto done;
    }
    x.pol_c = scratch;
    x.pol_r = scratch + h->batch_size;
    x.ref_c = scratch + 2 * h->batch_size;
    x.ref_r = scratch + 3 * h->batch_size;
    x.g_c = scratch + 4 * h->batch_size;
    x.g_r = scratch + 5 * h->batch_size;
    x.lp = scratch + 6 * h->batch_size;
    x.ref_m = scratch + 9 * h->batch_size;
    x.g_cc = scratch + 10 * h->batch_size;
    x.g_m = scratch + 11 * h->batch_size;
    /* π_ref = the starting weights, measured before any step (and before a resumed
     * checkpoint replaces them) */
    if (reference_logps(&x, m, h->batch_size, err)) goto done;
    if (o->verbose)
        printf("sr_dpo: %d pairs from %s, beta %g, loss %s, label smoothing %g\n", prefs.n, prefs.path, h->beta,
               h->loss_type, h->label_smoothing);
    /* without the term its metric, the last, is left out */
    int n_metrics = x.per_pair == EX_PER_PAIR_WITH_TERM ? M_COUNT : M_IMG_PREF;
    trainer_task task = {.name = "sr_dpo", .n_items = x.n_pairs, .n_metrics = n_metrics, .metric_names = METRIC_NAMES,
                         .ctx = &x, .step = dpo_step};
    trainer_options to = TRAINER_OPTIONS(h, cfg, o->output_dir, o->resume, o->max_steps, o->verbose);
    /* DPO runs are short (tens of steps): log at least 20 points of the reward curves,
     * with logging_steps as the longest interval */
    int total = (epoch_num_batches(x.n_pairs, h->batch_size) + h->gradient_accumulation_steps - 1) /
                h->gradient_accumulation_steps * h->num_epochs;
    if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;
    if (total / 20 < to.logging_steps) to.logging_steps = total / 20 > 1 ? total / 20 : 1;
    rc = trainer_run(&task, &to, m, tok, err);
done:
    free(x.pol_c);
    free(x.ref);
    free(x.logp);
    free(x.dlogp);
    free(x.idx);
    batch_buf_free(&x.bb);
    example_set_free(&x.es);
    vlm_free(m);
    tokenizer_free(tok);
    preferences_free(&prefs);
    return rc;
}
