/* trainer.c: the optimisation loop shared by every trainer (see trainer.h). */
#include "train/trainer.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/fsutil.h"
#include "core/rng.h"
#include "core/threads.h"
#include "train/optim.h"
#include "train/trainer_io.h"

int epoch_num_batches(int n, int bs) { return (n + bs - 1) / bs; }

int epoch_order(int n, int bs, uint64_t seed, int epoch, int *order, int *batch_start) {
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 0xe90c + (uint64_t)epoch);
    for (int i = 0; i < n; i++) order[i] = i;
    sevo_rng_shuffle(&rng, order, n);
    int nb = 0;
    for (int b = 0; b < n; b += bs) batch_start[nb++] = b;
    batch_start[nb] = n;
    return nb;
}

/* One metrics.jsonl line and (verbose) one log line for the interval that just ended. */
static void log_interval(FILE *metrics, const trainer_task *t, const trainer_options *o, int step, int total,
                         double epoch, const double *sums, int count, float lr, float gnorm, double tps,
                         double elapsed) {
    fprintf(metrics, "{\"step\":%d,\"epoch\":%.4f", step, epoch);
    for (int i = 0; i < t->n_metrics; i++) fprintf(metrics, ",\"%s\":%.6f", t->metric_names[i], sums[i] / count);
    fprintf(metrics, ",\"lr\":%.6g,\"grad_norm\":%.6f,\"tokens_per_sec\":%.1f}\n", lr, gnorm, tps);
    fflush(metrics);
    if (!o->verbose) return;
    printf("step %5d/%d  epoch %.2f  %s %.4f", step, total, epoch, t->metric_names[0], sums[0] / count);
    /* the loss and up to three more metrics keep the line short; the file has them all */
    for (int i = 1; i < t->n_metrics && i < 4; i++) printf("  %s %.3f", t->metric_names[i], sums[i] / count);
    printf("  lr %.2e  grad_norm %.3f  %.0f tok/s  %.0fs\n", lr, gnorm, tps, elapsed);
    fflush(stdout);
}

int trainer_run(const trainer_task *t, const trainer_options *o, vlm *m, const sevo_tokenizer *tok,
                sevo_error *err) {
    if (t->n_items <= 0) return sevo_fail(err, "%s: nothing to train on", t->name);
    if (t->n_metrics < 1 || t->n_metrics > TRAINER_MAX_METRICS)
        return sevo_fail(err, "%s: %d metrics (1..%d allowed)", t->name, t->n_metrics, TRAINER_MAX_METRICS);
    int bs = o->batch_size, accum = o->gradient_accumulation_steps;
    int n_batches = epoch_num_batches(t->n_items, bs);
    int steps_per_epoch = (n_batches + accum - 1) / accum;
    int total = steps_per_epoch * o->num_epochs;
    if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;
    int warmup = (int)ceilf(o->warmup_ratio * (float)total);
    int *order = malloc((size_t)t->n_items * sizeof *order);
    int *batch_start = malloc((size_t)(n_batches + 1) * sizeof *batch_start);
    adamw opt = {0};
    FILE *metrics = NULL;
    int rc = -1;
    if (!order || !batch_start) {
        sevo_fail(err, "out of memory (%s batches)", t->name);
        goto done;
    }
    if (adamw_init(&opt, vlm_num_params(m), err) || sevo_mkdirs(o->output_dir, err)) goto done;
    trainer_remove_stale(o->output_dir);
    trainer_state st = {.global_step = 0, .total_steps = total, .epoch = 0, .seed = o->seed,
                        .num_threads = o->num_threads};
    if (o->resume) {
        /* newest first; a checkpoint that does not load (a checksum mismatch, a truncated
         * file) is reported and the one before it tried. If checkpoints exist and none
         * loads, training stops: starting over would throw away what they hold. */
        char ck[4096];
        int before = INT_MAX, step, tried = 0;
        while (trainer_find_checkpoint(o->output_dir, before, ck, sizeof ck, &step) == 0) {
            tried++;
            if (trainer_load_checkpoint(ck, m, &opt, &st, err) == 0) {
                if (o->verbose) printf("resuming from %s (step %d of %d)\n", ck, st.global_step, total);
                tried = 0;
                break;
            }
            fprintf(stderr, "warning: %s: %s; trying the checkpoint before it\n", ck, err->msg);
            before = step;
        }
        if (tried) {
            sevo_fail(err, "%s: none of its %d checkpoints loads (see the warnings); move them away to train "
                           "from the start",
                      o->output_dir, tried);
            goto done;
        }
    }
    if (!(metrics = metrics_open(o->output_dir, st.global_step, err))) goto done;
    if (o->verbose)
        printf("%s: %d items, %zu parameters; %d steps (%d per epoch), batch %d x %d\n", t->name, t->n_items,
               vlm_num_params(m), total, steps_per_epoch, bs, accum);

    double t_start = sevo_now(), t_log = t_start;
    long long tokens_since_log = 0;
    double sums[TRAINER_MAX_METRICS] = {0};
    int count = 0;
    while (st.global_step < total) {
        int epoch = st.global_step / steps_per_epoch;
        epoch_order(t->n_items, bs, (uint64_t)o->seed, epoch, order, batch_start);
        for (int s = st.global_step % steps_per_epoch; s < steps_per_epoch && st.global_step < total; s++) {
            int b0 = s * accum, b1 = b0 + accum < n_batches ? b0 + accum : n_batches;
            trainer_step_result r = {0};
            vlm_zero_grads(m);
            if (t->step(t->ctx, m, order, batch_start, b0, b1, &r, err)) goto done;
            float gnorm = grad_global_norm(m);
            float lr = lr_at(st.global_step, total, warmup, o->learning_rate);
            adamw_step(&opt, m, lr, o->weight_decay, grad_clip_scale(gnorm, o->max_grad_norm));
            st.global_step++;
            st.epoch = st.global_step / steps_per_epoch;
            for (int i = 0; i < t->n_metrics; i++) sums[i] += r.metrics[i];
            count++;
            tokens_since_log += r.tokens;
            if (st.global_step % o->logging_steps == 0 || st.global_step == total) {
                double now = sevo_now();
                double tps = tokens_since_log / (now - t_log > 1e-9 ? now - t_log : 1e-9);
                log_interval(metrics, t, o, st.global_step, total, (double)st.global_step / steps_per_epoch, sums,
                             count, lr, gnorm, tps, now - t_start);
                t_log = now;
                tokens_since_log = 0;
                for (int i = 0; i < t->n_metrics; i++) sums[i] = 0;
                count = 0;
            }
            if (st.global_step % o->save_steps == 0 && st.global_step < total &&
                trainer_save_checkpoint(o->output_dir, m, tok, &opt, &st, err))
                goto done;
        }
    }
    if (trainer_save_final(o->output_dir, m, tok, &opt, &st, err)) goto done;
    if (o->verbose) printf("%s: wrote %s (%.1fs)\n", t->name, o->output_dir, sevo_now() - t_start);
    rc = 0;
done:
    if (metrics) fclose(metrics);
    free(order);
    free(batch_start);
    adamw_release(&opt);
    return rc;
}
