/* trainer_io.h: what every trainer shares around its loop: intermediate checkpoints
 * (checkpoint-<step>/ directories written under a temporary name and renamed, the two
 * newest kept, what a killed run was writing cleared on the next start), resuming from
 * the newest complete one, trainer_state.json, and the metrics.jsonl log (trimmed to
 * the resumed step so a resumed run's log equals an uninterrupted one's). */
#ifndef SEVO_TRAIN_TRAINER_IO_H
#define SEVO_TRAIN_TRAINER_IO_H

#include <stdio.h>

#include "core/error.h"
#include "data/tokenizer.h"
#include "model/vlm.h"
#include "train/optim.h"

typedef struct trainer_state {
    int global_step;
    int total_steps;
    int epoch;
    long long seed;
    int num_threads;
} trainer_state;

int trainer_state_save(const trainer_state *s, const char *path, sevo_error *err);
int trainer_state_load(trainer_state *s, const char *path, sevo_error *err);

/* Writes dir/checkpoint-<step>/ (model, tokenizer, config, optimizer, state) and
 * removes older checkpoints beyond the newest two. */
int trainer_save_checkpoint(const char *dir, const vlm *m, const sevo_tokenizer *tok,
                            const adamw *opt, const trainer_state *st, sevo_error *err);
/* Finds the newest complete checkpoint-<step> in dir with step < before (INT_MAX: any);
 * 0 with path and *step filled if found, 1 if none. */
int trainer_find_checkpoint(const char *dir, int before, char *path, size_t n, int *step);
/* Removes what a run killed while writing into dir left there: "<name>.tmp.<pid>" files
 * of processes that no longer exist, and checkpoint-<step>.tmp (being written) and
 * checkpoint-<step>.removing (being deleted) directories. Training calls it on start,
 * so a killed and resumed run leaves the same files as an uninterrupted one. */
void trainer_remove_stale(const char *dir);
/* Loads weights, optimizer and state from a checkpoint directory into existing objects. */
int trainer_load_checkpoint(const char *ckpt, vlm *m, adamw *opt, trainer_state *st, sevo_error *err);
/* Writes the final model directory: model files, optimizer.safetensors, trainer_state.json. */
int trainer_save_final(const char *dir, const vlm *m, const sevo_tokenizer *tok, const adamw *opt,
                       const trainer_state *st, sevo_error *err);

/* Opens dir/metrics.jsonl for appending, first dropping lines whose "step" is greater
 * than keep_until_step (0 drops everything). */
FILE *metrics_open(const char *dir, int keep_until_step, sevo_error *err);

#endif
