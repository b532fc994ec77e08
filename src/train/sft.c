/* sft.c: the supervised fine-tuning loop (stage 1). */
#include "train/sft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/threads.h"
#include "data/dataset.h"
#include "model/checkpoint.h"
#include "model/prompt.h"
#include "train/examples.h"
#include "train/trainer_io.h"

/* Every text a WordLevel vocabulary must cover: the data plus the refinement prompt. */
static int build_tokenizer(const sevo_dataset *ds, const char *tmpl, sevo_tokenizer **tok, sevo_error *err) {
    int cap = ds->n * 10 + 1, n = 0;
    const char **texts = malloc((size_t)cap * sizeof *texts);
    if (!texts) return sevo_fail(err, "out of memory (vocabulary)");
    for (int i = 0; i < ds->n; i++) {
        const sevo_sample *s = &ds->samples[i];
        texts[n++] = s->question;
        texts[n++] = s->answer;
        if (s->perception) texts[n++] = s->perception;
        if (s->wrong_perception) texts[n++] = s->wrong_perception;
        for (int k = 0; k < s->n_steps && n < cap - 1; k++) texts[n++] = s->steps[k];
    }
    texts[n++] = tmpl;
    int rc = tokenizer_build_wordlevel(tok, texts, n, PROMPT_SPECIAL_TOKENS, PROMPT_NUM_SPECIAL_TOKENS, err);
    free(texts);
    return rc;
}

/* Appends the response "c <step> z1 ... <step> zK <answer> a <eos>" (trained on). */
static int push_trace_response(tokseq *q, const prompt_ids *p, const sevo_tokenizer *tok,
                               const sevo_sample *s, sevo_error *err) {
    if (tokseq_text(q, tok, s->perception, 1, err)) return -1;
    for (int k = 0; k < s->n_steps; k++)
        if (tokseq_push(q, p->step, 1, err) || tokseq_text(q, tok, s->steps[k], 1, err)) return -1;
    if (tokseq_push(q, p->answer, 1, err) || tokseq_text(q, tok, s->answer, 1, err) ||
        tokseq_push(q, p->eos, 1, err))
        return -1;
    return 0;
}

static int build_examples(const sevo_dataset *ds, const sevo_tokenizer *tok, const vlm_config *c,
                          const char *tmpl, int max_len, example_set *es, sevo_error *err) {
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
            rc = prompt_perceive(&q, &p, tok, np, s->question, err) ||
                 push_trace_response(&q, &p, tok, s, err) || example_set_add(es, &q, img, max_len, err);
            if (rc) break;
            q.n = 0;
            rc = prompt_text(&q, &p, tok, s->question, s->perception, err) ||
                 tokseq_text(&q, tok, s->answer, 1, err) || tokseq_push(&q, p.eos, 1, err) ||
                 example_set_add(es, &q, -1, max_len, err);
            if (rc || !s->wrong_perception) continue;
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
    if (sevo_dir_exists(name)) return checkpoint_load_model(name, m, tok, err);
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
    batch_buf bb;
    adamw opt = {0};
    int *order = NULL, *batch_start = NULL;
    float *logp = NULL, *dlogp = NULL;
    FILE *metrics = NULL;
    int rc = -1;
    example_set_init(&es, 0);
    batch_buf_init(&bb);

    sevo_path_join(path, sizeof path, o->data_dir, "train.jsonl");
    if (!sevo_file_exists(path))
        return sevo_fail(err, "%s: training data not found (expected train.jsonl in --data_dir)", path);
    if (dataset_load_jsonl(&ds, path, o->skip_bad_lines, err)) return -1;
    if (make_model(cfg, &ds, &m, &tok, err)) goto done;
    const vlm_config *c = vlm_get_config(m);
    example_set_free(&es);
    example_set_init(&es, c->num_channels * c->image_size * c->image_size);
    int max_len = h->max_seq_length < c->max_position_embeddings ? h->max_seq_length : c->max_position_embeddings;
    if (build_examples(&ds, tok, c, cfg->ipr.refinement_prompt_template, max_len, &es, err)) goto done;
    if (es.n == 0) {
        sevo_fail(err, "%s: no training examples", path);
        goto done;
    }
    int bs = h->batch_size, accum = h->gradient_accumulation_steps;
    int max_batches = epoch_max_batches(&es, bs);
    batch_start = malloc((size_t)(max_batches + 1) * sizeof *batch_start);
    order = malloc((size_t)es.n * sizeof *order);
    if (!batch_start || !order) {
        sevo_fail(err, "out of memory (batches)");
        goto done;
    }
    /* the batch layout of an epoch depends only on the number of examples */
    int n_batches = epoch_order(&es, bs, (uint64_t)cfg->seed, 0, order, batch_start, err);
    if (n_batches < 0) goto done;
    int steps_per_epoch = (n_batches + accum - 1) / accum;
    int total = steps_per_epoch * h->num_epochs;
    if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;
    int warmup = (int)ceilf(h->warmup_ratio * (float)total);
    if (adamw_init(&opt, vlm_num_params(m), err) || sevo_mkdirs(o->output_dir, err)) goto done;
    /* rows of twice the longest example: packing leaves little padding, and attention
     * cost stays per example */
    int row_len = 0;
    for (int i = 0; i < es.n; i++) row_len = es.ex[i].n > row_len ? es.ex[i].n : row_len;
    row_len *= 2;
    size_t max_tokens = (size_t)bs * row_len;
    logp = malloc(max_tokens * sizeof *logp);
    dlogp = malloc(max_tokens * sizeof *dlogp);
    if (!order || !logp || !dlogp) {
        sevo_fail(err, "out of memory (training buffers)");
        goto done;
    }
    trainer_state st = {.global_step = 0, .total_steps = total, .epoch = 0, .seed = cfg->seed,
                        .num_threads = cfg->num_threads};
    if (o->resume) {
        char ck[4096];
        int found = trainer_find_checkpoint(o->output_dir, ck, sizeof ck, err);
        if (found < 0) goto done;
        if (found == 0) {
            if (trainer_load_checkpoint(ck, m, &opt, &st, err)) goto done;
            if (o->verbose) printf("resuming from %s (step %d of %d)\n", ck, st.global_step, total);
        }
    }
    if (!(metrics = metrics_open(o->output_dir, st.global_step, err))) goto done;
    if (o->verbose)
        printf("sft: %d records -> %d examples, %d images, %zu parameters; %d steps (%d per epoch), "
               "batch %d x %d\n", ds.n, es.n, es.n_images, vlm_num_params(m), total, steps_per_epoch, bs, accum);

    double t_start = sevo_now(), t_log = t_start;
    long long tokens_since_log = 0;
    double loss_sum = 0;
    int loss_count = 0;
    while (st.global_step < total) {
        int epoch = st.global_step / steps_per_epoch;
        int step_in_epoch = st.global_step % steps_per_epoch;
        if (epoch_order(&es, bs, (uint64_t)cfg->seed, epoch, order, batch_start, err) < 0) goto done;
        for (int s = step_in_epoch; s < steps_per_epoch && st.global_step < total; s++) {
            int b0 = s * accum, b1 = b0 + accum < n_batches ? b0 + accum : n_batches;
            /* count the step's target tokens first: the loss is the mean over all of them */
            long long step_targets = 0;
            for (int b = b0; b < b1; b++) {
                int k = batch_start[b], n = batch_start[b + 1] - k;
                for (int i = 0; i < n; i++) {
                    const train_example *e = &es.ex[order[k + i]];
                    for (int t = 1; t < e->n; t++) step_targets += e->loss[t];
                }
            }
            vlm_zero_grads(m);
            double step_loss = 0;
            for (int b = b0; b < b1; b++) {
                int k = batch_start[b], n = batch_start[b + 1] - k;
                if (batch_assemble(&bb, &es, order + k, n, c->pad_token_id, row_len, err)) goto done;
                if (vlm_forward(m, &bb.b, logp, err)) goto done;
                int N = bb.b.B * bb.b.T;
                float scale = step_targets > 0 ? -1.0f / (float)step_targets : 0.0f;
                for (int i = 0; i < N; i++) {
                    dlogp[i] = bb.targets[i] >= 0 ? scale : 0.0f;
                    step_loss -= logp[i];
                }
                vlm_backward(m, dlogp);
                tokens_since_log += N;
            }
            step_loss /= (double)(step_targets > 0 ? step_targets : 1);
            float gnorm = clip_grad_norm(m, h->max_grad_norm);
            float lr = lr_at(st.global_step, total, warmup, h->learning_rate);
            adamw_step(&opt, m, lr, h->weight_decay);
            st.global_step++;
            st.epoch = st.global_step / steps_per_epoch;
            loss_sum += step_loss;
            loss_count++;
            if (st.global_step % cfg->logging_steps == 0 || st.global_step == total) {
                double now = sevo_now();
                double tps = tokens_since_log / (now - t_log > 1e-9 ? now - t_log : 1e-9);
                fprintf(metrics,
                        "{\"step\":%d,\"epoch\":%.4f,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6f,"
                        "\"tokens_per_sec\":%.1f}\n",
                        st.global_step, (double)st.global_step / steps_per_epoch, loss_sum / loss_count, lr,
                        gnorm, tps);
                fflush(metrics);
                if (o->verbose)
                    printf("step %5d/%d  epoch %.2f  loss %.4f  lr %.2e  grad_norm %.3f  %.0f tok/s  %.0fs\n",
                           st.global_step, total, (double)st.global_step / steps_per_epoch,
                           loss_sum / loss_count, lr, gnorm, tps, now - t_start);
                fflush(stdout);
                t_log = now;
                tokens_since_log = 0;
                loss_sum = 0;
                loss_count = 0;
            }
            if (st.global_step % cfg->save_steps == 0 && st.global_step < total) {
                if (trainer_save_checkpoint(o->output_dir, m, tok, &opt, &st, err)) goto done;
            }
        }
    }
    if (trainer_save_final(o->output_dir, m, tok, &opt, &st, err)) goto done;
    if (o->verbose) printf("sft: wrote %s (%.1fs)\n", o->output_dir, sevo_now() - t_start);
    rc = 0;
done:
    if (metrics) fclose(metrics);
    free(order);
    free(batch_start);
    free(logp);
    free(dlogp);
    adamw_release(&opt);
    batch_buf_free(&bb);
    example_set_free(&es);
    vlm_free(m);
    tokenizer_free(tok);
    dataset_free(&ds);
    return rc;
}
