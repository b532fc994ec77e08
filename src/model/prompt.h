/* prompt.h: how the sub-policies of DESIGN §1 are laid out as token sequences.
 *
 * One model plays every sub-policy; a control token selects which:
 *   perceive+reason  [bos] [image]*P Q <perceive> | c <step> z1 <step> z2 ... <answer> a <eos>
 *   text (no image)  [bos] <text> Q <perceive> c <answer> | a <eos>
 *   text, reasoning  [bos] <text> Q <perceive> c | <step> z1 ... <step> zd <answer> a <eos>
 *   refine           [bos] [image]*P Q <refine> R(c_failed) <perceive> | c' <eos>
 *   answer only      [bos] [image]*P Q <answer> | a <eos>      (data without perceptions)
 * where "|" separates prompt from response and R is the refinement template with
 * {perception} filled in. A perception ends at the first <step>, <answer> or <eos>;
 * a reasoning step at the next <step> or <answer>; an answer at <eos>. */
#ifndef SEVO_MODEL_PROMPT_H
#define SEVO_MODEL_PROMPT_H

#include "core/error.h"
#include "data/tokenizer.h"

/* The control tokens, in id order for a tokenizer built from scratch. */
extern const char *const PROMPT_SPECIAL_TOKENS[];
extern const int PROMPT_NUM_SPECIAL_TOKENS;

typedef struct prompt_ids {
    int pad, unk, bos, eos, image, perceive, step, answer, text, refine;
} prompt_ids;

int prompt_ids_resolve(prompt_ids *p, const sevo_tokenizer *tok, sevo_error *err);

/* A growable token sequence with a per-token loss mask. */
typedef struct tokseq {
    int *ids;
    unsigned char *loss; /* 1 = this token is a response token (predicted, trained on) */
    int n, cap;
} tokseq;

void tokseq_init(tokseq *s);
void tokseq_free(tokseq *s);
int tokseq_push(tokseq *s, int id, int loss, sevo_error *err);
/* Encodes text and appends it. */
int tokseq_text(tokseq *s, const sevo_tokenizer *tok, const char *text, int loss, sevo_error *err);

/* Prompt builders (append to s; the caller resets it). num_patches image tokens are
 * added when with_image. */
int prompt_perceive(tokseq *s, const prompt_ids *p, const sevo_tokenizer *tok, int num_patches,
                    const char *question, sevo_error *err);
/* reasoning: the model writes the question's steps before its answer (the prompt ends
 * after c), else it answers at once (the prompt ends with <answer>). */
int prompt_text(tokseq *s, const prompt_ids *p, const sevo_tokenizer *tok, const char *question,
                const char *perception, int reasoning, sevo_error *err);
int prompt_refine(tokseq *s, const prompt_ids *p, const sevo_tokenizer *tok, int num_patches,
                  const char *question, const char *failed_perception, const char *tmpl,
                  sevo_error *err);
int prompt_answer_only(tokseq *s, const prompt_ids *p, const sevo_tokenizer *tok, int num_patches,
                       const char *question, sevo_error *err);
/* Fills {perception} in the refinement template into out. */
void prompt_fill_template(char *out, size_t n, const char *tmpl, const char *perception);

#endif
