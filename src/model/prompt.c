/* prompt.c: token layouts of the sub-policies (see prompt.h). */
#include "model/prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const PROMPT_SPECIAL_TOKENS[] = {"<pad>", "<unk>", "<bos>", "<eos>", "<image>",
                                             "<perceive>", "<step>", "<answer>", "<text>", "<refine>"};
const int PROMPT_NUM_SPECIAL_TOKENS = 10;

int prompt_ids_resolve(prompt_ids *p, const sevo_tokenizer *tok, sevo_error *err) {
    int *dst[10] = {&p->pad, &p->unk, &p->bos, &p->eos, &p->image,
                    &p->perceive, &p->step, &p->answer, &p->text, &p->refine};
    for (int i = 0; i < PROMPT_NUM_SPECIAL_TOKENS; i++) {
        *dst[i] = tokenizer_token_id(tok, PROMPT_SPECIAL_TOKENS[i]);
        if (*dst[i] < 0)
            return sevo_fail(err, "tokenizer lacks the control token '%s'", PROMPT_SPECIAL_TOKENS[i]);
    }
    return 0;
}

void tokseq_init(tokseq *s) { memset(s, 0, sizeof *s); }

void tokseq_free(tokseq *s) {
    free(s->ids);
    free(s->loss);
    memset(s, 0, sizeof *s);
}

int tokseq_push(tokseq *s, int id, int loss, sevo_error *err) {
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 128;
        int *ids = realloc(s->ids, (size_t)cap * sizeof *ids);
        if (!ids) return sevo_fail(err, "out of memory (token sequence)");
        s->ids = ids;
        unsigned char *loss_mask = realloc(s->loss, (size_t)cap);
        if (!loss_mask) return sevo_fail(err, "out of memory (token sequence)");
        s->loss = loss_mask;
        s->cap = cap;
    }
    s->ids[s->n] = id;
    s->loss[s->n] = (unsigned char)(loss != 0);
    s->n++;
    return 0;
}

int tokseq_text(tokseq *s, const sevo_tokenizer *tok, const char *text, int loss, sevo_error *err) {
    int buf[512];
    int n = tokenizer_encode(tok, text, buf, 512);
    if (n < 0) return sevo_fail(err, "cannot encode text");
    int *ids = buf;
    int *big = NULL;
    if (n > 512) {
        big = malloc((size_t)n * sizeof *big);
        if (!big) return sevo_fail(err, "out of memory (encoding)");
        tokenizer_encode(tok, text, big, n);
        ids = big;
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = tokseq_push(s, ids[i], loss, err);
    free(big);
    return rc;
}

static int push_image(tokseq *s, const prompt_ids *p, int num_patches, sevo_error *err) {
    for (int i = 0; i < num_patches; i++)
        if (tokseq_push(s, p->image, 0, err)) return -1;
    return 0;
}

int prompt_perceive(tokseq *s, const prompt_ids *p, const sevo_tokenizer *tok, int num_patches,
                    const char *question, sevo_error *err) {
    if (tokseq_push(s, p->bos, 0, err) || push_image(s, p, num_patches, err) ||
        tokseq_text(s, tok, question, 0, err) || tokseq_push(s, p->perceive, 0, err))
        return -1;
    return 0;
}

int prompt_text(tokseq *s, const prompt_ids *p, const sevo_tokenizer *tok, const char *question,
                const char *perception, int reasoning, sevo_error *err) {
    if (tokseq_push(s, p->bos, 0, err) || tokseq_push(s, p->text, 0, err) ||
        tokseq_text(s, tok, question, 0, err) || tokseq_push(s, p->perceive, 0, err) ||
        tokseq_text(s, tok, perception, 0, err) || (!reasoning && tokseq_push(s, p->answer, 0, err)))
        return -1;
    return 0;
}

void prompt_fill_template(char *out, size_t n, const char *tmpl, const char *perception) {
    const char *hole = strstr(tmpl, "{perception}");
    if (!hole) {
        snprintf(out, n, "%s", tmpl);
        return;
    }
    snprintf(out, n, "%.*s%s%s", (int)(hole - tmpl), tmpl, perception, hole + strlen("{perception}"));
}

int prompt_refine(tokseq *s, const prompt_ids *p, const sevo_tokenizer *tok, int num_patches,
                  const char *question, const char *failed_perception, const char *tmpl,
                  sevo_error *err) {
    size_t n = strlen(tmpl) + strlen(failed_perception) + 1;
    char *filled = malloc(n);
    if (!filled) return sevo_fail(err, "out of memory (refinement prompt)");
    prompt_fill_template(filled, n, tmpl, failed_perception);
    int rc = -1;
    if (!tokseq_push(s, p->bos, 0, err) && !push_image(s, p, num_patches, err) &&
        !tokseq_text(s, tok, question, 0, err) && !tokseq_push(s, p->refine, 0, err) &&
        !tokseq_text(s, tok, filled, 0, err) && !tokseq_push(s, p->perceive, 0, err))
        rc = 0;
    free(filled);
    return rc;
}

int prompt_answer_only(tokseq *s, const prompt_ids *p, const sevo_tokenizer *tok, int num_patches,
                       const char *question, sevo_error *err) {
    if (tokseq_push(s, p->bos, 0, err) || push_image(s, p, num_patches, err) ||
        tokseq_text(s, tok, question, 0, err) || tokseq_push(s, p->answer, 0, err))
        return -1;
    return 0;
}
