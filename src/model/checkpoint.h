/* checkpoint.h: a model checkpoint is a directory (DESIGN §4): config.json (Hugging
 * Face LLaVA layout), model.safetensors (Hugging Face tensor names) and tokenizer.json.
 * Each file is written atomically; loading checks every tensor's presence and shape. */
#ifndef SEVO_MODEL_CHECKPOINT_H
#define SEVO_MODEL_CHECKPOINT_H

#include "core/error.h"
#include "data/tokenizer.h"
#include "model/vlm.h"

int checkpoint_save_model(const char *dir, const vlm *m, const sevo_tokenizer *tok, sevo_error *err);
int checkpoint_load_model(const char *dir, vlm **m, sevo_tokenizer **tok, sevo_error *err);
/* Writes model.safetensors only (used for intermediate checkpoints as well). */
int checkpoint_save_weights(const char *path, const vlm *m, sevo_error *err);
int checkpoint_load_weights(const char *path, vlm *m, sevo_error *err);

#endif
