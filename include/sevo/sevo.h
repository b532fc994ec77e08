/* sevo.h: the public interface of libsevo.
 *
 * A small, stable surface for programs that embed sevo: load a checkpoint directory
 * (config.json, model.safetensors, tokenizer.json) and ask it about an image; the model
 * perceives, reasons step by step and answers. Handles are opaque; every call that can
 * fail returns 0 or -1 and writes a one-line message into the caller's buffer.
 * The engine's internal headers (src/) are not part of this interface. */
#ifndef SEVO_SEVO_H
#define SEVO_SEVO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SEVO_VERSION "0.1.0"

const char *sevo_version(void);

typedef struct sevo_model sevo_model;

/* Loads a checkpoint directory. On failure *out is NULL and err holds the reason. */
int sevo_model_load(sevo_model **out, const char *dir, char *err, size_t err_len);
void sevo_model_free(sevo_model *m);

typedef struct sevo_answer {
    char perception[512];
    char answer[256];
    int num_steps;
    int tokens_generated;
    int exited_early; /* 1 when the HSR-EE gate stopped the reasoning */
} sevo_answer;

/* Loads an HSR-EE confidence gate (confidence_head.safetensors, or a directory holding
 * one, as `sevo train-hsr-ee` writes): from then on sevo_model_ask answers right after a
 * reasoning step whose gate score exceeds the gate's learned threshold. The gate must
 * have been trained for a model of this width. */
int sevo_model_use_gate(sevo_model *m, const char *path, char *err, size_t err_len);

/* Greedy perceive -> reason (at most max_steps steps, fewer with a gate) -> answer for
 * one image file (PNG or JPEG, any size: it is resized to the model's input). */
int sevo_model_ask(sevo_model *m, const char *image_path, const char *question, int max_steps,
                   sevo_answer *out, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
