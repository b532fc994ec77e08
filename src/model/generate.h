/* generate.h: sampling and the sub-policy API (DESIGN §1) on top of a KV-cache session.
 *
 * A vlm_policy bundles a model, its tokenizer, one generation session and the sampling
 * settings, and exposes the sub-policies as functions on text: perceive, reason (the
 * full perception -> steps -> answer trace, with an optional per-step exit decision for
 * HSR-EE), answer from a description alone (no image), and refine a failed perception. */
#ifndef SEVO_MODEL_GENERATE_H
#define SEVO_MODEL_GENERATE_H

#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/tokenizer.h"
#include "model/prompt.h"
#include "model/vlm.h"

typedef struct gen_options {
    float temperature; /* 0 = greedy */
    float top_p;       /* nucleus sampling mass, (0,1]; 1 = off */
    int max_new_tokens;
    uint64_t seed;
} gen_options;

void gen_options_default(gen_options *o);

/* Picks the next token from logits[V]: argmax when temperature is 0, else samples from
 * softmax(logits / T) restricted to the smallest set with mass >= top_p. scratch holds
 * 2*V floats. Ties in argmax go to the lowest id. */
int sample_token(const float *logits, int V, const gen_options *o, sevo_rng *rng, float *scratch);

#define TRACE_MAX_STEPS 16
#define TRACE_TEXT 512

/* How a trace's reasoning ended: the model answered by itself (model_end; also when a
 * step ran out of tokens), it reached the step limit (max_steps), or the gate stopped it
 * at a step after which the model would have reasoned on (early). */
typedef enum { EXIT_MODEL_END = 0, EXIT_MAX_STEPS = 1, EXIT_EARLY = 2 } trace_exit;
const char *trace_exit_name(trace_exit e);

typedef struct trace_result {
    char perception[TRACE_TEXT];
    char steps[TRACE_MAX_STEPS][TRACE_TEXT];
    float scores[TRACE_MAX_STEPS]; /* gate scores when a gate was used */
    int n_scores;                  /* n_steps with a gate, else 0 */
    int n_steps;
    char answer[TRACE_TEXT];
    trace_exit exit_type;
    int tokens_generated;
} trace_result;

/* Called after reasoning step k (1-based) with the final hidden state of the step's last
 * token; returns 1 to exit now (answer from here), 0 to think on. *score may be set. */
typedef int (*step_gate_fn)(void *ctx, int k, const float *hidden, float *score);

typedef struct vlm_policy vlm_policy;

int policy_create(vlm_policy **out, vlm *m, const sevo_tokenizer *tok, const gen_options *o,
                  sevo_error *err);
void policy_free(vlm_policy *p);
const prompt_ids *policy_ids(const vlm_policy *p);
vlm *policy_model(const vlm_policy *p);
void policy_set_options(vlm_policy *p, const gen_options *o);
/* The policy's own image buffer: normalised pixels [C,S,S] of its model's image size. */
float *policy_image(vlm_policy *p);
/* The time this policy's work has cost so far, in seconds: wall time while it runs
 * alone; as a pool's lane, its own running time plus an equal share of every batched
 * step it took part in (so the costs of a pool's samples add up to its threads' busy
 * time, not to their latencies). Differences between two calls time one sample. */
double policy_seconds(const vlm_policy *p);
/* Decodes, resizes and normalises an image file into policy_image(p); on failure err
 * names the file. */
int policy_load_image(vlm_policy *p, const char *path, sevo_error *err);

/* image: normalised pixels [C,S,S] of the model's image size. */
int policy_perceive(vlm_policy *p, const float *image, const char *question, char *out, size_t n,
                    sevo_error *err);
/* Answers from the description alone (no image), always greedily: it is the verifier
 * of IPR's Valid(c). A checkpoint taught to reason as π_text (vlm_config.text_reasoning)
 * first writes its steps; only the answer after them is returned. */
int policy_text_answer(vlm_policy *p, const char *question, const char *perception, char *out,
                       size_t n, sevo_error *err);
int policy_refine(vlm_policy *p, const float *image, const char *question, const char *failed,
                  const char *tmpl, char *out, size_t n, sevo_error *err);
/* The full trace with at most max_steps reasoning steps. gate may be NULL. */
int policy_reason(vlm_policy *p, const float *image, const char *question, int max_steps,
                  step_gate_fn gate, void *gate_ctx, trace_result *r, sevo_error *err);

/* A gate-training rollout (DESIGN "Gate training"): the perception, then up to max_steps
 * reasoning steps; after every step k the answer is forced (<answer> is fed and the
 * answer generated), then the cache is rolled back to the end of step k and reasoning
 * goes on. Stops early when the model itself closes its reasoning (its answer after the
 * last step is then that step's forced answer). */
typedef struct trajectory_result {
    char perception[TRACE_TEXT];
    int n_steps;
    char steps[TRACE_MAX_STEPS][TRACE_TEXT];
    char answers[TRACE_MAX_STEPS][TRACE_TEXT]; /* the answer forced after step k+1 */
    int tokens_generated;
} trajectory_result;

/* hidden receives H_k for k = 1..n_steps: max_steps * hidden_size floats, row k-1 =
 * the final hidden state of step k's last token (what the gate sees at inference). */
int policy_trajectory(vlm_policy *p, const float *image, const char *question, int max_steps,
                      float *hidden, trajectory_result *r, sevo_error *err);

/* ---- Many samples at once ----
 *
 * A policy_pool holds policies over the same model (its weights are only read; each
 * policy owns its session, KV cache and sampling state) and runs independent samples in
 * parallel: `threads` groups, each keeping one core busy with `lanes` samples in
 * flight whose one-token steps are computed together (vlm_sessions_step; see
 * generate.c). Why: generating one token of a small model is a chain of small
 * products and row loops, bound by reading the weights, where a second thread helps
 * little (1.2-1.3x at the tiny size); samples side by side keep the cores busy, and a
 * step of several samples reads the weights once for all. Every sample comes out
 * bitwise as it would alone. Each policy holds a session of the model's full context
 * (its KV cache), so memory grows with threads * lanes.
 *
 * policy_pool_run calls work(ctx, p, i, slot, err) for every i in [0, n), in parallel,
 * and then done(ctx, i, slot, err) for each i in order, on one thread, in chunks of
 * POLICY_POOL_CHUNK samples: slot = i % POLICY_POOL_CHUNK names the caller's result
 * buffer for sample i; p is the running lane's policy (policy_image(p) its image
 * buffer). Before work, p's sampling restarts at the generator keyed by stream0 + i
 * (sevo_rng_seed_keyed), so the results are the same for every thread and lane count
 * and order. work runs on a thread of the pool's OpenMP team, which has more threads
 * than cores (only one lane of a group runs at a time); it may call the policy's
 * functions but must not open OpenMP constructs of its own. On failure the error
 * reported is the one of the lowest failing i (work's or done's), as a loop in order
 * would report. */
#define POLICY_POOL_CHUNK 64
/* Lanes per thread by default, and at most: a step of VLM_STEP_MAX_ROWS rows computes
 * each row as if alone. */
#define POLICY_POOL_LANES VLM_STEP_MAX_ROWS
#define POLICY_POOL_MAX_LANES VLM_STEP_MAX_ROWS
typedef struct policy_pool policy_pool;
typedef int (*policy_work_fn)(void *ctx, vlm_policy *p, int i, int slot, sevo_error *err);
typedef int (*policy_done_fn)(void *ctx, int i, int slot, sevo_error *err);

/* threads <= 0: omp_get_max_threads(); lanes <= 0: POLICY_POOL_LANES (at most
 * POLICY_POOL_MAX_LANES). */
int policy_pool_create(policy_pool **out, vlm *m, const sevo_tokenizer *tok, const gen_options *o, int threads,
                       int lanes, sevo_error *err);
void policy_pool_free(policy_pool *pp);
int policy_pool_threads(const policy_pool *pp);
int policy_pool_lanes(const policy_pool *pp);
/* Batched steps the pool's lanes have taken so far, and the tokens they fed (rows /
 * steps is the mean batch; one-lane pools feed alone and count nothing). */
void policy_pool_step_stats(const policy_pool *pp, long *steps, long *rows);
vlm *policy_pool_model(const policy_pool *pp);
int policy_pool_run(policy_pool *pp, int n, uint64_t stream0, policy_work_fn work, policy_done_fn done, void *ctx,
                    sevo_error *err);

#endif
