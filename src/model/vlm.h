/* vlm.h: the LLaVA-style vision-language model (DESIGN §3).
 *
 *   image -> ViT (patch embedding, position embedding, pre-norm bidirectional blocks,
 *            final norm) -> projector (Linear, act, Linear) -> image features
 *   [bos] [image tokens] [prompt] [response] -> decoder LM (Llama-style: RMSNorm, RoPE,
 *            grouped-query causal attention, SwiGLU, tied or untied LM head)
 *
 * Parameters, gradients and optimizer moments live in flat arenas with one layout
 * (a table of named tensors, Hugging Face names), so the optimizer, clipping and
 * checkpoint code walk one array. The training forward stores every activation the
 * backward needs; the backward takes a gradient on per-token log-probabilities, so SFT
 * (cross-entropy), DPO and policy gradients all drive the same code. Generation uses a
 * separate single-sequence path with a KV cache (vlm_session). */
#ifndef SEVO_MODEL_VLM_H
#define SEVO_MODEL_VLM_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum { VLM_NORM_LAYER = 0, VLM_NORM_RMS = 1 } vlm_norm;
typedef enum { VLM_ACT_GELU = 0, VLM_ACT_GELU_TANH = 1, VLM_ACT_SILU = 2 } vlm_act;

typedef struct vlm_tower_config {
    int hidden_size;
    int num_layers;
    int num_heads;
    int num_kv_heads;
    int intermediate_size;
    vlm_norm norm;
    vlm_act act;      /* gated MLP (act(gate)*up) when `gated`, else fc1 -> act -> fc2 */
    int gated;
    int bias;         /* biases on attention and MLP linears */
    float norm_eps;
} vlm_tower_config;

typedef struct vlm_config {
    /* vision tower */
    int image_size, patch_size, num_channels;
    float image_mean[3], image_std[3];
    vlm_tower_config vision;
    /* projector: Linear(vision.hidden -> text.hidden), act, Linear(text.hidden -> text.hidden) */
    vlm_act projector_act;
    /* decoder */
    vlm_tower_config text;
    int vocab_size;
    int max_position_embeddings;
    float rope_theta;
    int tie_word_embeddings;
    /* special token ids (from the tokenizer) */
    int bos_token_id, eos_token_id, pad_token_id, image_token_id;
    /* How the checkpoint was taught to play π_text (config.json "sevo_text_reasoning"):
     * 1 = it writes reasoning steps before its answer, 0 = it answers at once. Not
     * architecture, but a property of the weights that every verifier must honour;
     * checkpoints without the key answer at once. */
    int text_reasoning;
} vlm_config;

/* A named parameter tensor inside the arenas. */
typedef struct vlm_tensor {
    char name[96];
    int ndim;
    int64_t shape[4];
    size_t offset; /* in floats, into params / grads / optimizer arenas */
    size_t numel;
    int decay;     /* weight decay applies (matrices and embeddings, not norms/biases) */
} vlm_tensor;

typedef struct vlm vlm; /* opaque */

/* The built-in architecture "sevo-tiny" (about 1M parameters) for a vocabulary size. */
void vlm_config_tiny(vlm_config *c, int vocab_size);
int vlm_config_num_patches(const vlm_config *c);
int vlm_config_validate(const vlm_config *c, const char *source, sevo_error *err);
/* config.json in Hugging Face LLaVA layout (vision_config, text_config, ...). */
int vlm_config_save(const vlm_config *c, const char *path, sevo_error *err);
int vlm_config_load(vlm_config *c, const char *path, sevo_error *err);

int vlm_create(vlm **out, const vlm_config *c, sevo_error *err);
void vlm_free(vlm *m);
const vlm_config *vlm_get_config(const vlm *m);
/* Records how SFT teaches this model's π_text (saved with its config). */
void vlm_set_text_reasoning(vlm *m, int on);
/* Normal(0, 0.02) weights (residual outputs scaled by 1/sqrt(2L)), unit norms, zero biases. */
void vlm_init_weights(vlm *m, uint64_t seed);

/* The parameter table and arenas. */
int vlm_num_tensors(const vlm *m);
const vlm_tensor *vlm_tensor_at(const vlm *m, int i);
const vlm_tensor *vlm_find_tensor(const vlm *m, const char *name);
size_t vlm_num_params(const vlm *m);
float *vlm_params(vlm *m);
float *vlm_grads(vlm *m);
void vlm_zero_grads(vlm *m);

/* ---- training forward / backward over a packed batch ----
 * B rows of T tokens. A row holds one or more sequences back to back (packing, so that
 * no compute goes to padding): seg_start[i] is the column (0..T-1, within the row) of
 * the first token of token i's sequence, and pos[i] its position within that sequence; attention never
 * crosses sequences. NULL seg_start / pos mean one sequence per row starting at 0.
 * targets[i] is the token to predict at i (ids[i+1] for response positions), -1 where
 * nothing is predicted. images: [n_images, C, S, S] normalised pixels; image_of[i] is
 * the image of image token i (-1 for other tokens; NULL when no image is used). Each
 * run of image tokens holds exactly num_patches tokens, which take that image's
 * features in order; several runs may name one image (a DPO pair shares its image).
 * logp [B*T] receives log p(target) (0 where target is -1). */
typedef struct vlm_batch {
    int B, T;
    const int *ids;
    const int *targets;
    const int *pos;
    const int *seg_start;
    const float *images;
    int n_images;
    const int *image_of;
} vlm_batch;

int vlm_forward(vlm *m, const vlm_batch *batch, float *logp, sevo_error *err);
/* Backpropagates dL/dlogp [B*T] through the last vlm_forward into the gradient arena
 * (accumulating). */
void vlm_backward(vlm *m, const float *dlogp);
/* Final hidden states (after the final norm) of the last forward, [B*T, hidden]. */
const float *vlm_last_hidden(const vlm *m);
/* Logits of the last forward are not kept (the buffer holds probabilities). */

/* ---- generation: one sequence with a KV cache ---- */
typedef struct vlm_session vlm_session;
int vlm_session_create(vlm_session **out, vlm *m, int max_len, sevo_error *err);
void vlm_session_free(vlm_session *s);
/* Empties the sequence and forgets the image: image tokens fed after it need a new
 * vlm_session_set_image. */
void vlm_session_reset(vlm_session *s);
int vlm_session_len(const vlm_session *s);
/* Computes the image features of one image [C,S,S] into the session, to be used by the
 * image tokens of the next vlm_session_feed calls. */
void vlm_session_set_image(vlm_session *s, const float *image);
/* Feeds n tokens at positions len..len+n-1. Image tokens take the next rows of the
 * image features set with vlm_session_set_image. Afterwards the logits [vocab] and the
 * final hidden state [hidden] of the last fed token are available. */
int vlm_session_feed(vlm_session *s, const int *ids, int n, sevo_error *err);
/* Checks what vlm_session_feed would refuse (length, token ids, image tokens) without
 * feeding anything. */
int vlm_session_check_feed(const vlm_session *s, const int *ids, int n, sevo_error *err);
/* One token ids[i] for each of n sessions of the same model, in batches of
 * VLM_STEP_MAX_ROWS rows; each session ends bitwise as vlm_session_feed(ss[i], &ids[i], 1)
 * leaves it.
 * Each feed must have passed vlm_session_check_feed; the sessions must be distinct. */
#define VLM_STEP_MAX_ROWS 4
void vlm_sessions_step(vlm_session *const *ss, const int *ids, int n);
const float *vlm_session_logits(const vlm_session *s);
const float *vlm_session_hidden(const vlm_session *s);
/* Truncates the cache to len tokens (len <= current length), to branch a rollout. */
void vlm_session_truncate(vlm_session *s, int len);

#endif
