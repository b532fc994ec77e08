/* sft.c: the supervised fine-tuning loop (stage 1). */
#include "train/sft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/dataset.h"
#include "model/checkpoint.h"
#include "model/prompt.h"
#include "train/examples.h"
#include "train/trainer.h"

/* Every text a WordLevel vocabulary must cover: the data plus the refinement prompt. */
static int build_tokenizer(const sevo_dataset *ds, const char *tmpl, sevo_tokenizer **tok, sevo_error *err) {
    size_t cap = 1, n = 0; /* the template */
    for (int i = 0; i < ds->n; i++)
        cap += 6 + (size_t)ds->samples[i].n_steps + (size_t)ds->samples[i].n_caption_steps;
    const char **texts = malloc(cap * sizeof *texts);
    if (!texts) return sevo_fail(err, "out of memory (vocabulary)");
    for (int i = 0; i < ds->n; i++) {
        const sevo_sample *s = &ds->samples[i];
        texts[n++] = s->question;
        texts[n++] = s->answer;
        if (s->perception) texts[n++] = s->perception;
        if (s->caption) texts[n++] = s->caption;
        if (s->wrong_perception) texts[n++] = s->wrong_perception;
        for (int k = 0; k < s->n_steps; k++) texts[n++] = s->steps[k];
        if (s->caption_answer) texts[n++] = s->caption_answer;
        for (int k = 0; k < s->n_caption_steps; k++) texts[n++] = s->caption_steps[k];
    }
    /* The template goes in unfilled, so its "'{" and "}'" become words and the quotes
     * around a filled-in description encode as <unk>: one consistent token, which the
     * model learns like any other. Building from the filled template would be tidier but
     * changes every vocabulary, and so every trained number this project reports; it
     * waits for the next re-baseline (docs/self-evolving-loop.md). */
    texts[n++] = tmpl;
    int rc = tokenizer_build_wordlevel(tok, texts, (int)n, PROMPT_SPECIAL_TOKENS, PROMPT_NUM_SPECIAL_TOKENS, err);
    free(texts);
    return rc;
}

/* Appends "<step> z1 ... <step> zn <answer> a <eos>", trained on, <answer> only when
 * answer_target. A perceive-and-reason trace cut at n < the sample's steps is an early
 * exit, where the answer is asked for (HSR-EE): its forced <answer> is not a target, so
 * the model never learns to stop early by itself; it learns to answer when stopped. */
static int push_steps_answer(tokseq *q, const prompt_ids *p, const sevo_tokenizer *tok, char *const *steps,
                             const char *answer, int n, int answer_target, sevo_error *err) {
    for (int k = 0; k < n; k++)
        if (tokseq_push(q, p->step, 1, err) || tokseq_text(q, tok, steps[k], 1, err)) return -1;
    if (tokseq_push(q, p->answer, answer_target, err) || tokseq_text(q, tok, answer, 1, err) ||
        tokseq_push(q, p->eos, 1, err))
        return -1;
    return 0;
}

int sft_build_examples(const sevo_dataset *ds, const sevo_tokenizer *tok, const vlm_config *c,
                       const sevo_config *cfg, int max_len, example_set *es, sevo_error *err) {
    const char *tmpl = cfg->ipr.refinement_prompt_template;
    /* which traces are cut, and where: a stream of its own, so that the choice does not
     * move with anything else drawn from the seed */
    sevo_rng cut_rng;
    sevo_rng_seed(&cut_rng, (uint64_t)cfg->seed, 0xea51);
    prompt_ids p;
    if (prompt_ids_resolve(&p, tok, err)) return -1;
    int P = vlm_config_num_patches(c);
    tokseq q;
    tokseq_init(&q);
    int rc = 0;
    for (int i = 0; i < ds->n && !rc; i++) {
        const sevo_sample *s = &ds->samples[i];
        int img = -1;
        if (s->image && example_set_image(es, s->image, c, &img, err)) {
            rc = sevo_fail_prefix(err, "%s:%d: field 'image'", ds->path, s->line);
            break;
        }
        int np = img >= 0 ? P : 0;
        q.n = 0;
        if (s->perception) {
            /* two draws per record whatever the outcome, so records keep their cuts */
            float u = sevo_rng_uniform(&cut_rng);
            uint32_t v = sevo_rng_u32(&cut_rng);
            /* cut at a step k in [depth, K - 1]: from the step that reaches the answer on,
             * answering is what a reasoner that has finished does; before it the answer is
             * not in the trace, and the model is not taught to guess */
            int n_steps = s->n_steps, first = s->depth > 1 ? s->depth : 1;
            if (first < s->n_steps && u < cfg->sft.early_answer_fraction)
                n_steps = first + (int)(v % (uint32_t)(s->n_steps - first));
            /* With a caption, the perception step learns to write the caption, in an
             * example of its own that ends where the first step begins, while the trace
             * reads the perception without learning to write it: the reasoning is
             * taught on descriptions that are right, as in reasoning data, and the
             * description on the annotator's, as in caption data. With the trace written
             * from the caption (caption_steps), the trace is the caption's: it writes
             * the caption and reasons and answers from it, as reasoning data written
             * from captions does; the steps follow the description, right or not. */
            if (s->caption_steps) {
                /* cut where the trace would have been (the dataset checks that the two
                 * traces have as many steps) */
                rc = prompt_perceive(&q, &p, tok, np, s->question, err) || tokseq_text(&q, tok, s->caption, 1, err) ||
                     push_steps_answer(&q, &p, tok, s->caption_steps, s->caption_answer, n_steps,
                                       n_steps == s->n_caption_steps, err) ||
                     example_set_add(es, &q, img, max_len, err);
            } else if (s->caption) {
                rc = prompt_perceive(&q, &p, tok, np, s->question, err) || tokseq_text(&q, tok, s->caption, 1, err) ||
                     tokseq_push(&q, p.step, 1, err) || example_set_add(es, &q, img, max_len, err);
                if (rc) break;
                q.n = 0;
            }
            if (!s->caption_steps)
                rc = prompt_perceive(&q, &p, tok, np, s->question, err) ||
                     tokseq_text(&q, tok, s->perception, !s->caption, err) ||
                     push_steps_answer(&q, &p, tok, s->steps, s->answer, n_steps, n_steps == s->n_steps, err) ||
                     example_set_add(es, &q, img, max_len, err);
            if (rc) break;
            q.n = 0;
            /* π_text: with text_reasoning it writes the steps that reach the answer (up to
             * the question's depth; later ones only re-check it) and then answers, where
             * the model stops by itself: a verifier that reads the description the way
             * the reasoner does, rather than answering a depth-3 question in one token */
            int reasoning = cfg->sft.text_reasoning;
            int text_steps = s->depth > 0 && s->depth < s->n_steps ? s->depth : s->n_steps;
            rc = prompt_text(&q, &p, tok, s->question, s->perception, reasoning, err) ||
                 (reasoning ? push_steps_answer(&q, &p, tok, s->steps, s->answer, text_steps, 1, err)
                            : tokseq_text(&q, tok, s->answer, 1, err) || tokseq_push(&q, p.eos, 1, err)) ||
                 example_set_add(es, &q, -1, max_len, err);
            if (rc) break;
            es->ex[es->n - 1].weight = cfg->sft.text_loss_weight;
            if (!s->wrong_perception) continue;
            q.n = 0;
            rc = prompt_refine(&q, &p, tok, np, s->question, s->wrong_perception, tmpl, err) ||
                 tokseq_text(&q, tok, s->perception, 1, err) || tokseq_push(&q, p.eos, 1, err) ||
                 example_set_add(es, &q, img, max_len, err);
        } else {
            rc = prompt_answer_only(&q, &p, tok, np, s->question, err) ||
                 tokseq_text(&q, tok, s->answer, 1, err) || tokseq_push(&q, p.eos, 1, err) ||
                 example_set_add(es, &q, img, max_len, err);
        }
    }
    tokseq_free(&q);
    return rc ? -1 : 0;
}

/* The model to start from: a checkpoint directory, or a built-in architecture. */
static int make_model(const sevo_config *cfg, const sevo_dataset *ds, vlm **m, sevo_tokenizer **tok,
                      sevo_error *err) {
    const char *name = cfg->model.model_name_or_path;
    if (sevo_dir_exists(name)) {
        if (checkpoint_load_model(name, m, tok, err)) return -1;
        /* the examples teach π_text the configured way from here on */
        vlm_set_text_reasoning(*m, cfg->sft.text_reasoning);
        return 0;
    }
    if (strcmp(name, "sevo-tiny") != 0)
        return sevo_fail(err, "model.model_name_or_path '%s': neither a checkpoint directory nor a "
                         "built-in architecture (sevo-tiny); sevo does not download models", name);
    if (build_tokenizer(ds, cfg->ipr.refinement_prompt_template, tok, err)) return -1;
    vlm_config c;
    vlm_config_tiny(&c, tokenizer_vocab_size(*tok));
    c.bos_token_id = tokenizer_token_id(*tok, "<bos>");
    c.eos_token_id = tokenizer_token_id(*tok, "<eos>");
    c.pad_token_id = tokenizer_token_id(*tok, "<pad>");
    c.image_token_id = tokenizer_token_id(*tok, "<image>");
    if (vlm_create(m, &c, err)) {
        tokenizer_free(*tok);
        *tok = NULL;
        return -1;
    }
    vlm_init_weights(*m, (uint64_t)cfg->seed);
    vlm_set_text_reasoning(*m, cfg->sft.text_reasoning);
    return 0;
}

/* One SFT step: the weighted mean token cross-entropy over every target token of its
 * micro-batches (a token weighs what its example does). */
typedef struct sft_ctx {
    const example_set *es;
    batch_buf bb;
    float *logp, *dlogp;
    int row_len, pad_id;
} sft_ctx;

static int sft_step(void *vctx, vlm *m, const int *order, const int *batch_start, int b0, int b1,
                    trainer_step_result *r, sevo_error *err) {
    sft_ctx *x = vctx;
    /* weigh the step's target tokens first: the loss is the mean over all of them */
    double step_weight = 0;
    for (int b = b0; b < b1; b++)
        step_weight += examples_target_weight(x->es, order + batch_start[b], batch_start[b + 1] - batch_start[b]);
    float scale = step_weight > 0 ? (float)(-1.0 / step_weight) : 0.0f;
    double loss = 0;
    for (int b = b0; b < b1; b++) {
        int k = batch_start[b], n = batch_start[b + 1] - k;
        if (batch_assemble(&x->bb, x->es, order + k, n, x->pad_id, x->row_len, err) ||
            vlm_forward(m, &x->bb.b, x->logp, err))
            return -1;
        loss += batch_weighted_nll(&x->bb, x->es, order + k, n, x->logp, scale, x->dlogp);
        vlm_backward(m, x->dlogp);
        r->tokens += x->bb.b.B * x->bb.b.T;
    }
    r->metrics[0] = loss / (step_weight > 0 ? step_weight : 1.0);
    return 0;
}

int sft_run(const sft_options *o, sevo_error *err) {
    const sevo_config *cfg = o->cfg;
    const sevo_sft_section *h = &cfg->sft;
    char path[4096];
    sevo_dataset ds = {0};
    vlm *m = NULL;
    sevo_tokenizer *tok = NULL;
    example_set es;
    sft_ctx x = {.es = &es};
    int rc = -1;
    example_set_init(&es, 0);
    batch_buf_init(&x.bb);

    sevo_path_join(path, sizeof path, o->data_dir, "train.jsonl");
    if (!sevo_file_exists(path))
        return sevo_fail(err, "%s: training data not found (expected train.jsonl in --data_dir)", path);
    if (dataset_load_jsonl(&ds, path, o->skip_bad_lines, err)) return -1;
    if (make_model(cfg, &ds, &m, &tok, err)) goto done;
    const vlm_config *c = vlm_get_config(m);
    example_set_free(&es);
    example_set_init(&es, c->num_channels * c->image_size * c->image_size);
    int max_len = h->max_seq_length < c->max_position_embeddings ? h->max_seq_length : c->max_position_embeddings;
    if (sft_build_examples(&ds, tok, c, cfg, max_len, &es, err)) goto done;
    if (es.n == 0) {
        sevo_fail(err, "%s: no training examples", path);
        goto done;
    }
    /* rows of twice the longest example: packing leaves little padding, and attention
     * cost stays per example */
    for (int i = 0; i < es.n; i++) x.row_len = es.ex[i].n > x.row_len ? es.ex[i].n : x.row_len;
    x.row_len *= 2;
    x.pad_id = c->pad_token_id;
    size_t max_tokens = (size_t)h->batch_size * x.row_len;
    x.logp = malloc(max_tokens * sizeof *x.logp);
    x.dlogp = malloc(max_tokens * sizeof *x.dlogp);
    if (!x.logp || !x.dlogp) {
        sevo_fail(err, "out of memory (training buffers)");
        goto done;
    }
    if (o->verbose)
        printf("sft: %d records -> %d examples, %d images\n", ds.n, es.n, es.n_images);
    static const char *const names[] = {"loss"};
    trainer_task task = {.name = "sft", .n_items = es.n, .n_metrics = 1, .metric_names = names, .ctx = &x,
                         .step = sft_step};
    trainer_options to = TRAINER_OPTIONS(h, cfg, o->output_dir, o->resume, o->max_steps, o->verbose);
    rc = trainer_run(&task, &to, m, tok, err);
done:
    free(x.logp);
    free(x.dlogp);
    batch_buf_free(&x.bb);
    example_set_free(&es);
    vlm_free(m);
    tokenizer_free(tok);
    dataset_free(&ds);
    return rc;
}
