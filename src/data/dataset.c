/* dataset.c: the JSONL sample reader (reference and LLaVA formats).
 *
 * Each line is parsed on its own, into a template sample holding the fields that every
 * sample of the line shares (image, perception, steps, ...); then either the line's
 * question/answer or each human->gpt pair of its conversation completes a copy of the
 * template. A bad line produces a message without the "path:LINE: " prefix, which the
 * caller adds, so the same message serves the error and the skip warning. */
#include "data/dataset.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/jsonutil.h"
#include "data/answer.h"
#include "data/jsonl.h"
#include "core/strbuf.h"

#define FATAL JSONL_FATAL

static void sample_free(sevo_sample *s) {
    free(s->image);
    free(s->question);
    free(s->answer);
    free(s->perception);
    free(s->caption);
    for (int i = 0; i < s->n_steps; i++)
        free(s->steps[i]);
    free(s->steps);
    for (int i = 0; i < s->n_caption_steps; i++)
        free(s->caption_steps[i]);
    free(s->caption_steps);
    free(s->caption_answer);
    free(s->type);
    free(s->wrong_perception);
    memset(s, 0, sizeof *s);
}

void dataset_free(sevo_dataset *ds) {
    for (int i = 0; i < ds->n; i++)
        sample_free(&ds->samples[i]);
    free(ds->samples);
    ds->samples = NULL;
    ds->n = 0;
}

static char *dup_str(const char *s, sevo_error *err) {
    return sevo_strdup(s, "dataset string", err);
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Removes every "<image>" with the whitespace around it; the pieces it separated are
 * joined by one space, and the result is trimmed. */
static char *strip_image_tag(const char *s, sevo_error *err) {
    char *out = sevo_malloc(strlen(s) + 1, "question", err);
    if (!out) return NULL;
    size_t o = 0;
    const char *p = s;
    for (;;) {
        const char *tag = strstr(p, "<image>");
        const char *a = p, *b = tag ? tag : p + strlen(p);
        while (a < b && is_space(*a))
            a++;
        while (b > a && is_space(b[-1]))
            b--;
        if (b > a) {
            if (o > 0) out[o++] = ' ';
            memcpy(out + o, a, (size_t)(b - a));
            o += (size_t)(b - a);
        }
        if (!tag) break;
        p = tag + strlen("<image>");
    }
    out[o] = '\0';
    return out;
}

/* An error unless s holds more than whitespace: an empty question asks nothing. */
static int nonblank(const char *s, const char *key, sevo_error *err) {
    while (is_space(*s)) s++;
    return *s ? 0 : sevo_fail(err, "field '%s': empty", key);
}

/* An error unless the answer keeps a word once normalised (data/answer.h): one that
 * normalises to nothing ("", "?", "...") would be scored right whenever the model says
 * nothing, and would make every label built on the answer check (Valid(c), the gate's
 * y_k, r_ans) reward silence. */
static int answerable(const char *a, const char *key, sevo_error *err) {
    int rc = nonblank(a, key, err);
    if (rc) return rc;
    size_t n = strlen(a) + 1;
    char *norm = malloc(n);
    if (!norm) return sevo_fail(err, "out of memory (answer)"), FATAL;
    answer_normalize(a, norm, n);
    int empty = norm[0] == '\0';
    free(norm);
    return empty ? sevo_fail(err, "field '%s': no letter or digit in \"%s\" (it would match an empty answer)", key, a)
                 : 0;
}

/* An optional array of strings at key into *out (NULL and 0 when absent or null). */
static int parse_steps(const cJSON *obj, const char *key, char ***out, int *n_out, sevo_error *err) {
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!steps || cJSON_IsNull(steps)) return 0;
    if (!cJSON_IsArray(steps))
        return sevo_fail(err, "field '%s': expected an array of strings, got %s", key, json_kind(steps));
    int n = cJSON_GetArraySize(steps);
    *out = sevo_calloc((size_t)(n ? n : 1), sizeof **out, key, err);
    if (!*out) return FATAL;
    const cJSON *st;
    cJSON_ArrayForEach(st, steps) {
        if (!cJSON_IsString(st))
            return sevo_fail(err, "field '%s[%d]': expected a string, got %s", key, *n_out, json_kind(st));
        if (!((*out)[*n_out] = dup_str(st->valuestring, err))) return FATAL;
        (*n_out)++;
    }
    return 0;
}

/* The fields shared by every sample of a line. */
static int parse_common(const cJSON *obj, const char *dir, sevo_sample *s, sevo_error *err) {
    int rc;
    if ((rc = jsonl_opt_path(obj, "image", dir, &s->image, err)) != 0 ||
        (rc = jsonl_opt_string(obj, "perception", &s->perception, err)) != 0 ||
        (rc = jsonl_opt_string(obj, "caption", &s->caption, err)) != 0 ||
        (rc = jsonl_opt_string(obj, "type", &s->type, err)) != 0 ||
        (rc = jsonl_opt_string(obj, "wrong_perception", &s->wrong_perception, err)) != 0)
        return rc;
    /* a caption replaces the perception only as the perception step's target: the steps
     * and answer still follow the perception, so there must be one */
    if (s->caption && !s->perception) return sevo_fail(err, "field 'caption': given without 'perception'");
    if (s->caption && (rc = nonblank(s->caption, "caption", err)) != 0) return rc;
    const cJSON *depth = cJSON_GetObjectItemCaseSensitive(obj, "depth");
    if (depth && !cJSON_IsNull(depth)) {
        if (!cJSON_IsNumber(depth))
            return sevo_fail(err, "field 'depth': expected a non-negative integer, got %s",
                             json_kind(depth));
        if (json_int_in(depth, 0, INT_MAX, &s->depth))
            return sevo_fail(err, "field 'depth': expected a non-negative integer, got %g",
                             depth->valuedouble);
    }
    if ((rc = parse_steps(obj, "steps", &s->steps, &s->n_steps, err)) != 0 ||
        (rc = parse_steps(obj, "caption_steps", &s->caption_steps, &s->n_caption_steps, err)) != 0 ||
        (rc = jsonl_opt_string(obj, "caption_answer", &s->caption_answer, err)) != 0)
        return rc;
    if ((s->caption_steps || s->caption_answer) && !s->caption)
        return sevo_fail(err, "field '%s': given without 'caption'", s->caption_steps ? "caption_steps" : "caption_answer");
    if (s->caption_steps && !s->caption_answer) return sevo_fail(err, "field 'caption_answer': missing (caption_steps is given)");
    if (s->caption_answer && !s->caption_steps) return sevo_fail(err, "field 'caption_steps': missing (caption_answer is given)");
    if (s->caption_answer && (rc = answerable(s->caption_answer, "caption_answer", err)) != 0) return rc;
    /* the caption's trace is the same question's on another scene: step for step the
     * record's (SFT cuts both at the same step) */
    if (s->caption_steps && s->n_caption_steps == 0) return sevo_fail(err, "field 'caption_steps': empty");
    if (s->caption_steps && s->n_caption_steps != s->n_steps)
        return sevo_fail(err, "field 'caption_steps': %d steps, but 'steps' has %d", s->n_caption_steps, s->n_steps);
    return 0;
}

static int copy_steps(char *const *steps, int n, char ***out, int *n_out, sevo_error *err) {
    if (n == 0) return 0;
    if (!(*out = sevo_calloc((size_t)n, sizeof **out, "steps", err))) return -1;
    for (; *n_out < n; (*n_out)++)
        if (!((*out)[*n_out] = dup_str(steps[*n_out], err))) return -1;
    return 0;
}

/* Deep copy of the template with the question and answer (both taken over). */
static int complete(const sevo_sample *tmpl, char *question, char *answer, sevo_sample *out,
                    sevo_error *err) {
    memset(out, 0, sizeof *out);
    out->question = question;
    out->answer = answer;
    out->depth = tmpl->depth;
    out->line = tmpl->line;
    if ((tmpl->image && !(out->image = dup_str(tmpl->image, err))) ||
        (tmpl->perception && !(out->perception = dup_str(tmpl->perception, err))) ||
        (tmpl->caption && !(out->caption = dup_str(tmpl->caption, err))) ||
        (tmpl->type && !(out->type = dup_str(tmpl->type, err))) ||
        (tmpl->wrong_perception && !(out->wrong_perception = dup_str(tmpl->wrong_perception, err))))
        goto oom;
    if (copy_steps(tmpl->steps, tmpl->n_steps, &out->steps, &out->n_steps, err) ||
        copy_steps(tmpl->caption_steps, tmpl->n_caption_steps, &out->caption_steps, &out->n_caption_steps, err) ||
        (tmpl->caption_answer && !(out->caption_answer = dup_str(tmpl->caption_answer, err))))
        goto oom;
    return 0;
oom:
    sample_free(out);
    return FATAL;
}

/* A growing list of the samples of one file. */
typedef struct sample_list {
    sevo_sample *v;
    int n, cap;
} sample_list;

static int push(sample_list *l, const sevo_sample *tmpl, char *question, char *answer,
                sevo_error *err) {
    if (l->n == l->cap) {
        if (l->cap > INT_MAX / 2) {
            free(question);
            free(answer);
            return sevo_fail(err, "too many samples"), FATAL;
        }
        int cap = l->cap ? l->cap * 2 : 256;
        sevo_sample *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(question);
            free(answer);
            return sevo_fail(err, "out of memory: dataset samples"), FATAL;
        }
        l->v = v;
        l->cap = cap;
    }
    if (complete(tmpl, question, answer, &l->v[l->n], err) != 0) return FATAL;
    l->n++;
    return 0;
}

static int is_role(const char *r, const char *a, const char *b) {
    return !strcmp(r, a) || !strcmp(r, b);
}

/* LLaVA: one sample per human turn followed by a gpt turn; system turns are skipped.
 * ShareGPT's "user"/"assistant" are accepted as synonyms. */
static int parse_conversations(const cJSON *conv, const sevo_sample *tmpl, sample_list *l,
                               sevo_error *err) {
    if (!cJSON_IsArray(conv))
        return sevo_fail(err, "field 'conversations': expected an array, got %s", json_kind(conv));
    int n = cJSON_GetArraySize(conv), first = l->n;
    const char *from[2] = {NULL, NULL}, *value[2] = {NULL, NULL};
    for (int i = 0; i < n; i++) {
        /* Read this turn and the next one (if any) into from/value[0..1]. */
        for (int k = 0; k < 2 && i + k < n; k++) {
            const cJSON *turn = cJSON_GetArrayItem(conv, i + k);
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(turn, "from");
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(turn, "value");
            if (!cJSON_IsString(f))
                return sevo_fail(err, "field 'conversations[%d].from': %s", i + k,
                                 f ? "expected a string" : "missing");
            if (!cJSON_IsString(v))
                return sevo_fail(err, "field 'conversations[%d].value': %s", i + k,
                                 v ? "expected a string" : "missing");
            from[k] = f->valuestring;
            value[k] = v->valuestring;
        }
        if (is_role(from[0], "system", "system")) continue;
        if (is_role(from[0], "gpt", "assistant"))
            return sevo_fail(err,
                             "field 'conversations[%d]': a gpt turn without a human turn "
                             "before it",
                             i);
        if (!is_role(from[0], "human", "user"))
            return sevo_fail(err,
                             "field 'conversations[%d].from': unknown speaker '%s' (expected "
                             "human or gpt)",
                             i, from[0]);
        if (i + 1 >= n || !is_role(from[1], "gpt", "assistant"))
            return sevo_fail(err,
                             "field 'conversations[%d]': a human turn without a gpt reply "
                             "after it",
                             i);
        char qkey[48], akey[48];
        snprintf(qkey, sizeof qkey, "conversations[%d].value", i);
        snprintf(akey, sizeof akey, "conversations[%d].value", i + 1);
        char *q = strip_image_tag(value[0], err);
        char *a = q ? dup_str(value[1], err) : NULL;
        if (!a) {
            free(q);
            return FATAL;
        }
        int rc = nonblank(q, qkey, err);
        if (!rc) rc = answerable(a, akey, err);
        if (rc) {
            free(q);
            free(a);
            return rc;
        }
        rc = push(l, tmpl, q, a, err);
        if (rc) return rc;
        i++; /* the gpt turn is consumed */
    }
    if (l->n == first) return sevo_fail(err, "field 'conversations': no human->gpt pair");
    return 0;
}

/* Parses one line's object into one or more samples appended to the list. On failure
 * the list holds what it held before. */
static int parse_object(void *ctx, const cJSON *obj, const char *dir, int line, sevo_error *err) {
    sample_list *l = ctx;
    int rc, first = l->n;
    sevo_sample tmpl = {.line = line};
    if ((rc = parse_common(obj, dir, &tmpl, err)) != 0) goto done;
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(obj, "conversations");
    if (conv && !cJSON_GetObjectItemCaseSensitive(obj, "question")) {
        /* a caption's answer belongs to one question, a conversation has several */
        rc = tmpl.caption_answer ? sevo_fail(err, "field 'caption_answer': not allowed with 'conversations'")
                                 : parse_conversations(conv, &tmpl, l, err);
    } else {
        char *q = NULL, *a = NULL;
        if ((rc = jsonl_req_string(obj, "question", &q, err)) != 0 ||
            (rc = jsonl_req_string(obj, "answer", &a, err)) != 0 ||
            (rc = nonblank(q, "question", err)) != 0 || (rc = answerable(a, "answer", err)) != 0) {
            free(q);
            free(a);
            goto done;
        }
        rc = push(l, &tmpl, q, a, err);
    }
done:
    if (rc != 0)
        while (l->n > first)
            sample_free(&l->v[--l->n]);
    sample_free(&tmpl);
    return rc;
}

int dataset_load_jsonl(sevo_dataset *ds, const char *path, int skip_bad_lines, sevo_error *err) {
    memset(ds, 0, sizeof *ds);
    snprintf(ds->path, sizeof ds->path, "%s", path);
    sample_list l = {0};
    if (jsonl_read(path, skip_bad_lines, "samples", parse_object, &l, err) < 0) {
        for (int i = 0; i < l.n; i++)
            sample_free(&l.v[i]);
        free(l.v);
        return -1;
    }
    ds->samples = l.v;
    ds->n = l.n;
    return 0;
}
