/* config.c: loading, overriding, validating and printing the configuration (DESIGN §6).
 *
 * Everything is driven by one table, KEYS, with a row per dotted key: its type, where it
 * lives in sevo_config, its allowed range, its default, and whether sevo honours it.
 * Loading a file, setting a key from the command line, validating the struct, filling
 * in defaults and printing the effective configuration are all short loops over that
 * table, so adding a key means adding one row. The table's order is the file's layout. */
#include "core/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/jsonutil.h"
#include "core/strbuf.h"

typedef enum { T_INT, T_I64, T_FLOAT, T_BOOL, T_STRING, T_ANY } key_type;

enum {
    GT = 1 << 0,           /* value > lo */
    GE = 1 << 1,           /* value >= lo */
    LT = 1 << 2,           /* value < hi */
    LE = 1 << 3,           /* value <= hi */
    NONEMPTY = 1 << 4,     /* strings: must not be "" */
    NOT_HONOURED = 1 << 5, /* a reference key sevo ignores: warn when given */
    ONLY_ZERO = 1 << 6,    /* honoured only at 0 (model.lora_rank): warn otherwise */
};

#define NO_FIELD ((size_t)-1)

typedef struct key_def {
    const char *name; /* dotted: "section.key" or "key" */
    key_type type;
    size_t offset; /* into sevo_config, or NO_FIELD when sevo does not keep the value */
    size_t size;   /* of the field (the buffer size for strings) */
    unsigned flags;
    double lo, hi;
    const char *dflt; /* the default, as config_set would receive it */
    /* an extra rule for strings: returns NULL when s is fine, else why not */
    const char *(*check)(const char *s);
    const char *note; /* why sevo does not honour the key */
} key_def;

static const char *check_template(const char *s) {
    return strstr(s, "{perception}") ? NULL : "must contain '{perception}'";
}

static const char *check_loss_type(const char *s) {
    if (!strcmp(s, "sigmoid") || !strcmp(s, "ipo") || !strcmp(s, "hinge")) return NULL;
    return "must be one of sigmoid, ipo, hinge";
}

#define FIELD(f) .offset = offsetof(sevo_config, f), .size = sizeof(((sevo_config *)0)->f)
#define KEY(n, t, f, ...)                                                                          \
    { .name = n, .type = t, FIELD(f), __VA_ARGS__ }
#define IGNORED(n, t, why)                                                                         \
    { .name = n, .type = t, .offset = NO_FIELD, .flags = NOT_HONOURED, .note = why }

static const char DEFAULT_TEMPLATE[] =
    "The description '{perception}' was insufficient to answer the question correctly. Please "
    "re-examine the image. Focus on spatial relationships and small details that were missed. "
    "Provide a refined description.";

static const key_def KEYS[] = {
    KEY("model.model_name_or_path", T_STRING, model.model_name_or_path, .flags = NONEMPTY,
        .dflt = "sevo-tiny"),
    IGNORED("model.use_flash_attention", T_BOOL, "sevo has its own attention kernels"),
    IGNORED("model.bf16", T_BOOL, "float32 training"),
    IGNORED("model.gradient_checkpointing", T_BOOL, "activations are kept in memory"),
    KEY("model.lora_rank", T_INT, model.lora_rank, .flags = GE | ONLY_ZERO, .lo = 0, .dflt = "0",
        .note = "LoRA is not implemented; all weights are trained"),
    IGNORED("model.lora_alpha", T_FLOAT, "LoRA is not implemented"),
    IGNORED("model.device_map", T_ANY, "sevo places the model itself"),

    KEY("hsr_ee.confidence_threshold", T_FLOAT, hsr_ee.confidence_threshold, .flags = GT | LT,
        .lo = 0, .hi = 1, .dflt = "0.7"),
    KEY("hsr_ee.max_reasoning_steps", T_INT, hsr_ee.max_reasoning_steps, .flags = GE, .lo = 1,
        .dflt = "5"),
    KEY("hsr_ee.length_penalty_lambda", T_FLOAT, hsr_ee.length_penalty_lambda, .flags = GE, .lo = 0,
        .dflt = "0.1"),
    KEY("hsr_ee.confidence_head_hidden_dim", T_INT, hsr_ee.confidence_head_hidden_dim, .flags = GE | LE,
        .lo = 1, .hi = 4096, .dflt = "256"),
    KEY("hsr_ee.adaptive_threshold", T_BOOL, hsr_ee.adaptive_threshold, .dflt = "true"),
    KEY("hsr_ee.threshold_lr", T_FLOAT, hsr_ee.threshold_lr, .flags = GT, .lo = 0, .dflt = "0.001"),
    KEY("hsr_ee.gate_learning_rate", T_FLOAT, hsr_ee.gate_learning_rate, .flags = GT, .lo = 0,
        .dflt = "0.001"),
    KEY("hsr_ee.exit_temperature", T_FLOAT, hsr_ee.exit_temperature, .flags = GT, .lo = 0, .dflt = "0.05"),
    KEY("hsr_ee.num_epochs", T_INT, hsr_ee.num_epochs, .flags = GE, .lo = 1, .dflt = "5"),
    KEY("hsr_ee.num_samples", T_INT, hsr_ee.num_samples, .flags = GE, .lo = 1, .dflt = "2000"),
    KEY("hsr_ee.exit_samples", T_INT, hsr_ee.exit_samples, .flags = GE, .lo = 1, .dflt = "8"),

    KEY("ipr.max_refinement_iterations", T_INT, ipr.max_refinement_iterations, .flags = GE, .lo = 0,
        .dflt = "2"),
    KEY("ipr.refinement_prompt_template", T_STRING, ipr.refinement_prompt_template,
        .dflt = DEFAULT_TEMPLATE, .check = check_template),
    KEY("ipr.discard_failed_samples", T_BOOL, ipr.discard_failed_samples, .dflt = "true"),
    KEY("ipr.num_samples", T_INT, ipr.num_samples, .flags = GE, .lo = 1, .dflt = "50000"),
    KEY("ipr.temperature", T_FLOAT, ipr.temperature, .flags = GE, .lo = 0, .dflt = "0"),
    KEY("ipr.top_p", T_FLOAT, ipr.top_p, .flags = GT | LE, .lo = 0, .hi = 1, .dflt = "1"),

    KEY("sr_dpo.beta", T_FLOAT, sr_dpo.beta, .flags = GT, .lo = 0, .dflt = "0.1"),
    KEY("sr_dpo.learning_rate", T_FLOAT, sr_dpo.learning_rate, .flags = GT, .lo = 0,
        .dflt = "5e-7"),
    KEY("sr_dpo.batch_size", T_INT, sr_dpo.batch_size, .flags = GE, .lo = 1, .dflt = "64"),
    KEY("sr_dpo.num_epochs", T_INT, sr_dpo.num_epochs, .flags = GE, .lo = 1, .dflt = "3"),
    KEY("sr_dpo.gradient_accumulation_steps", T_INT, sr_dpo.gradient_accumulation_steps,
        .flags = GE, .lo = 1, .dflt = "4"),
    KEY("sr_dpo.max_seq_length", T_INT, sr_dpo.max_seq_length, .flags = GE, .lo = 16,
        .dflt = "2048"),
    KEY("sr_dpo.warmup_ratio", T_FLOAT, sr_dpo.warmup_ratio, .flags = GE | LE, .lo = 0, .hi = 1,
        .dflt = "0.1"),
    KEY("sr_dpo.weight_decay", T_FLOAT, sr_dpo.weight_decay, .flags = GE, .lo = 0, .dflt = "0.01"),
    KEY("sr_dpo.max_grad_norm", T_FLOAT, sr_dpo.max_grad_norm, .flags = GT, .lo = 0, .dflt = "1.0"),
    KEY("sr_dpo.label_smoothing", T_FLOAT, sr_dpo.label_smoothing, .flags = GE | LT, .lo = 0,
        .hi = 0.5, .dflt = "0"),
    KEY("sr_dpo.loss_type", T_STRING, sr_dpo.loss_type, .dflt = "sigmoid",
        .check = check_loss_type),
    KEY("sr_dpo.rpo_alpha", T_FLOAT, sr_dpo.rpo_alpha, .flags = GE, .lo = 0, .dflt = "0"),
    KEY("sr_dpo.dpop_lambda", T_FLOAT, sr_dpo.dpop_lambda, .flags = GE, .lo = 0, .dflt = "0"),
    KEY("sr_dpo.image_preference_weight", T_FLOAT, sr_dpo.image_preference_weight, .flags = GE, .lo = 0,
        .dflt = "0"),

    KEY("sft.num_epochs", T_INT, sft.num_epochs, .flags = GE, .lo = 1, .dflt = "1"),
    KEY("sft.learning_rate", T_FLOAT, sft.learning_rate, .flags = GT, .lo = 0, .dflt = "5e-5"),
    KEY("sft.batch_size", T_INT, sft.batch_size, .flags = GE, .lo = 1, .dflt = "4"),
    KEY("sft.gradient_accumulation_steps", T_INT, sft.gradient_accumulation_steps, .flags = GE,
        .lo = 1, .dflt = "4"),
    KEY("sft.dataset_name", T_STRING, sft.dataset_name, .flags = NOT_HONOURED,
        .dflt = "llava_instruct_150k", .note = "SFT data comes from data_dir"),
    KEY("sft.max_seq_length", T_INT, sft.max_seq_length, .flags = GE, .lo = 16, .dflt = "2048"),
    KEY("sft.warmup_ratio", T_FLOAT, sft.warmup_ratio, .flags = GE | LE, .lo = 0, .hi = 1,
        .dflt = "0.03"),
    KEY("sft.weight_decay", T_FLOAT, sft.weight_decay, .flags = GE, .lo = 0, .dflt = "0.0"),
    KEY("sft.max_grad_norm", T_FLOAT, sft.max_grad_norm, .flags = GT, .lo = 0, .dflt = "1.0"),
    KEY("sft.text_loss_weight", T_FLOAT, sft.text_loss_weight, .flags = GT, .lo = 0, .dflt = "1"),
    KEY("sft.early_answer_fraction", T_FLOAT, sft.early_answer_fraction, .flags = GE | LE, .lo = 0, .hi = 1,
        .dflt = "0.25"),
    KEY("sft.text_reasoning", T_BOOL, sft.text_reasoning, .dflt = "false"),

    KEY("ppo.learning_rate", T_FLOAT, ppo.learning_rate, .flags = GT, .lo = 0, .dflt = "5e-6"),
    KEY("ppo.batch_size", T_INT, ppo.batch_size, .flags = GE, .lo = 1, .dflt = "8"),
    KEY("ppo.num_epochs", T_INT, ppo.num_epochs, .flags = GE, .lo = 1, .dflt = "2"),
    KEY("ppo.gradient_accumulation_steps", T_INT, ppo.gradient_accumulation_steps, .flags = GE, .lo = 1,
        .dflt = "1"),
    KEY("ppo.warmup_ratio", T_FLOAT, ppo.warmup_ratio, .flags = GE | LE, .lo = 0, .hi = 1, .dflt = "0.1"),
    KEY("ppo.weight_decay", T_FLOAT, ppo.weight_decay, .flags = GE, .lo = 0, .dflt = "0.01"),
    KEY("ppo.max_grad_norm", T_FLOAT, ppo.max_grad_norm, .flags = GT, .lo = 0, .dflt = "1.0"),
    KEY("ppo.num_rounds", T_INT, ppo.num_rounds, .flags = GE, .lo = 1, .dflt = "2"),
    KEY("ppo.num_samples", T_INT, ppo.num_samples, .flags = GE, .lo = 1, .dflt = "256"),
    KEY("ppo.clip_epsilon", T_FLOAT, ppo.clip_epsilon, .flags = GT | LT, .lo = 0, .hi = 1, .dflt = "0.2"),
    KEY("ppo.kl_coef", T_FLOAT, ppo.kl_coef, .flags = GE, .lo = 0, .dflt = "0.05"),
    KEY("ppo.temperature", T_FLOAT, ppo.temperature, .flags = GT, .lo = 0, .dflt = "0.7"),
    KEY("ppo.top_p", T_FLOAT, ppo.top_p, .flags = GT | LE, .lo = 0, .hi = 1, .dflt = "1"),

    KEY("synth.num_train", T_INT, synth.num_train, .flags = GE, .lo = 1, .dflt = "4000"),
    KEY("synth.num_test", T_INT, synth.num_test, .flags = GE, .lo = 1, .dflt = "1000"),
    KEY("synth.image_size", T_INT, synth.image_size, .flags = GE, .lo = 8, .dflt = "30"),
    KEY("synth.cooccurrence", T_FLOAT, synth.cooccurrence, .flags = GE | LE, .lo = 0, .hi = 1,
        .dflt = "0.8"),
    KEY("synth.noise", T_FLOAT, synth.noise, .flags = GE | LE, .lo = 0, .hi = 1, .dflt = "0.04"),
    KEY("synth.faint_fraction", T_FLOAT, synth.faint_fraction, .flags = GE | LE, .lo = 0, .hi = 1, .dflt = "0"),
    KEY("synth.faint_contrast", T_FLOAT, synth.faint_contrast, .flags = GT | LE, .lo = 0, .hi = 1, .dflt = "0.25"),
    KEY("synth.annotation_noise", T_FLOAT, synth.annotation_noise, .flags = GE | LE, .lo = 0, .hi = 1, .dflt = "0"),
    KEY("synth.caption_reasoning", T_BOOL, synth.caption_reasoning, .dflt = "false"),

    KEY("output_dir", T_STRING, output_dir, .flags = NONEMPTY, .dflt = "./output"),
    KEY("sft_output_dir", T_STRING, sft_output_dir, .flags = NONEMPTY, .dflt = "./output/sft_ckpt"),
    KEY("ipr_data_dir", T_STRING, ipr_data_dir, .flags = NONEMPTY, .dflt = "./output/ipr_data"),
    KEY("hsr_ee_output_dir", T_STRING, hsr_ee_output_dir, .flags = NONEMPTY,
        .dflt = "./output/hsr_ee_ckpt"),
    KEY("sr_dpo_output_dir", T_STRING, sr_dpo_output_dir, .flags = NONEMPTY,
        .dflt = "./output/sr_dpo_ckpt"),
    KEY("eval_output_dir", T_STRING, eval_output_dir, .flags = NONEMPTY,
        .dflt = "./output/eval_results"),
    KEY("data_dir", T_STRING, data_dir, .flags = NONEMPTY, .dflt = "./output/data"),
    KEY("logging_steps", T_INT, logging_steps, .flags = GE, .lo = 1, .dflt = "10"),
    KEY("save_steps", T_INT, save_steps, .flags = GE, .lo = 1, .dflt = "500"),
    KEY("eval_steps", T_INT, eval_steps, .flags = GE, .lo = 1, .dflt = "500"),
    /* Seeds travel through JSON numbers (doubles): keep them exact. */
    KEY("seed", T_I64, seed, .flags = GE | LE, .lo = 0, .hi = 9007199254740992.0, .dflt = "42"),
    KEY("num_threads", T_INT, num_threads, .flags = GE, .lo = 0, .dflt = "0"),
};
#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

/* ---- values ---- */

/* A parsed value, before it is checked and stored. */
typedef struct value {
    double num;    /* T_INT, T_FLOAT; T_I64 as well, for range checks */
    int64_t i64;   /* T_I64 */
    int b;         /* T_BOOL */
    const char *s; /* T_STRING */
} value;

static const key_def *find_key(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(KEYS[i].name, name) == 0) return &KEYS[i];
    return NULL;
}

/* Describes the allowed range of k into buf ("> 0", "in [0, 1]"). */
static void describe_range(const key_def *k, char *buf, size_t n) {
    int lo = k->flags & (GT | GE), hi = k->flags & (LT | LE);
    if (lo && hi)
        snprintf(buf, n, "in %c%g, %g%c", (k->flags & GT) ? '(' : '[', k->lo, k->hi,
                 (k->flags & LT) ? ')' : ']');
    else if (lo)
        snprintf(buf, n, "%s %g", (k->flags & GT) ? ">" : ">=", k->lo);
    else
        snprintf(buf, n, "%s %g", (k->flags & LT) ? "<" : "<=", k->hi);
}

/* Checks v against k's rules; on failure writes why into `why` and returns -1. */
static int check_value(const key_def *k, const value *v, char *why, size_t n) {
    if (k->type == T_INT || k->type == T_I64 || k->type == T_FLOAT) {
        double x = v->num;
        if (((k->flags & GT) && !(x > k->lo)) || ((k->flags & GE) && !(x >= k->lo)) ||
            ((k->flags & LT) && !(x < k->hi)) || ((k->flags & LE) && !(x <= k->hi))) {
            char range[64];
            describe_range(k, range, sizeof range);
            snprintf(why, n, "must be %s, got %.9g", range, x);
            return -1;
        }
    } else if (k->type == T_STRING && k->offset != NO_FIELD) {
        size_t len = strlen(v->s);
        if (len >= k->size) {
            snprintf(why, n, "string too long (%zu bytes, at most %zu)", len, k->size - 1);
            return -1;
        }
        if ((k->flags & NONEMPTY) && len == 0) {
            snprintf(why, n, "must not be empty");
            return -1;
        }
        const char *bad = k->check ? k->check(v->s) : NULL;
        if (bad) {
            snprintf(why, n, "%s", bad);
            return -1;
        }
    }
    return 0;
}

static void store_value(const key_def *k, sevo_config *c, const value *v) {
    if (k->offset == NO_FIELD) return;
    char *field = (char *)c + k->offset;
    switch (k->type) {
    case T_INT: {
        int x = (int)v->num;
        memcpy(field, &x, sizeof x);
        break;
    }
    case T_I64:
        memcpy(field, &v->i64, sizeof v->i64);
        break;
    case T_FLOAT: {
        float x = (float)v->num;
        memcpy(field, &x, sizeof x);
        break;
    }
    case T_BOOL:
        memcpy(field, &v->b, sizeof v->b);
        break;
    case T_STRING:
        memcpy(field, v->s, strlen(v->s) + 1); /* length checked by check_value */
        break;
    case T_ANY:
        break;
    }
}

/* Reads the field of k back into a value (for validation and printing). */
static value load_value(const key_def *k, const sevo_config *c) {
    value v = {0};
    const char *field = (const char *)c + k->offset;
    switch (k->type) {
    case T_INT: {
        int x;
        memcpy(&x, field, sizeof x);
        v.num = x;
        break;
    }
    case T_I64:
        memcpy(&v.i64, field, sizeof v.i64);
        v.num = (double)v.i64;
        break;
    case T_FLOAT: {
        float x;
        memcpy(&x, field, sizeof x);
        v.num = x;
        break;
    }
    case T_BOOL:
        memcpy(&v.b, field, sizeof v.b);
        break;
    case T_STRING:
        v.s = field;
        break;
    case T_ANY:
        break;
    }
    return v;
}

/* The checks every number goes through, whether it came from JSON or a string. */
static int number_value(const key_def *k, double x, value *v, char *why, size_t n) {
    if (!isfinite(x)) {
        snprintf(why, n, "expected a finite number");
        return -1;
    }
    v->num = x;
    if (k->type == T_FLOAT) {
        if (fabs(x) > FLT_MAX) {
            snprintf(why, n, "%g is out of range for a 32-bit float", x);
            return -1;
        }
        return 0;
    }
    if (x != floor(x)) {
        snprintf(why, n, "expected an integer, got %.17g", x);
        return -1;
    }
    if (k->type == T_INT && (x < INT_MIN || x > INT_MAX)) {
        snprintf(why, n, "%.17g is out of range for an int", x);
        return -1;
    }
    if (k->type == T_I64) {
        if (!(fabs(x) < 9223372036854775808.0)) {
            snprintf(why, n, "%.17g is out of range for a 64-bit integer", x);
            return -1;
        }
        v->i64 = (int64_t)x;
    }
    return 0;
}

static int value_from_json(const key_def *k, const cJSON *j, value *v, char *why, size_t n) {
    switch (k->type) {
    case T_INT:
    case T_I64:
    case T_FLOAT:
        if (!cJSON_IsNumber(j)) {
            snprintf(why, n, "expected %s, got %s", k->type == T_FLOAT ? "a number" : "an integer",
                     json_kind(j));
            return -1;
        }
        return number_value(k, j->valuedouble, v, why, n);
    case T_BOOL:
        if (!cJSON_IsBool(j)) {
            snprintf(why, n, "expected true or false, got %s", json_kind(j));
            return -1;
        }
        v->b = cJSON_IsTrue(j);
        return 0;
    case T_STRING:
        if (!cJSON_IsString(j)) {
            snprintf(why, n, "expected a string, got %s", json_kind(j));
            return -1;
        }
        v->s = j->valuestring;
        return 0;
    case T_ANY:
        return 0;
    }
    return 0;
}

static int value_from_string(const key_def *k, const char *s, value *v, char *why, size_t n) {
    switch (k->type) {
    case T_INT:
    case T_I64:
    case T_FLOAT: {
        char *end;
        errno = 0;
        if (k->type == T_I64) { /* exact beyond 2^53, where strtod would round */
            long long x = strtoll(s, &end, 10);
            if (end != s && *end == '\0' && errno == 0) {
                v->i64 = x;
                v->num = (double)x;
                return 0;
            }
            errno = 0;
        }
        double x = strtod(s, &end);
        if (end == s || *end != '\0') {
            snprintf(why, n, "expected %s, got '%s'",
                     k->type == T_FLOAT ? "a number" : "an integer", s);
            return -1;
        }
        return number_value(k, x, v, why, n);
    }
    case T_BOOL:
        if (!strcmp(s, "true") || !strcmp(s, "1"))
            v->b = 1;
        else if (!strcmp(s, "false") || !strcmp(s, "0"))
            v->b = 0;
        else {
            snprintf(why, n, "expected true, false, 1 or 0, got '%s'", s);
            return -1;
        }
        return 0;
    case T_STRING:
        v->s = s;
        return 0;
    case T_ANY:
        return 0;
    }
    return 0;
}

/* One warning line on stderr; source is the file, or NULL for the command line. */
static void warn(const char *source, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(const char *source, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (source)
        fprintf(stderr, "warning: %s: %s\n", source, msg);
    else
        fprintf(stderr, "warning: %s\n", msg);
}

/* Checks and stores a parsed value, warning once if sevo does not honour the key. */
static int apply(const key_def *k, sevo_config *c, const value *v, const char *source,
                 sevo_error *err) {
    char why[512];
    if (check_value(k, v, why, sizeof why) != 0) {
        if (source) return sevo_fail(err, "%s: %s: %s", source, k->name, why);
        return sevo_fail(err, "%s: %s", k->name, why);
    }
    if ((k->flags & NOT_HONOURED) || ((k->flags & ONLY_ZERO) && v->num != 0))
        warn(source, "%s is not honoured by sevo (%s); ignored", k->name, k->note);
    store_value(k, c, v);
    return 0;
}

/* ---- public functions ---- */

void config_defaults(sevo_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &KEYS[i];
        value v = {0};
        char why[256];
        /* The defaults are valid by construction (the tests check every one). */
        if (k->dflt && value_from_string(k, k->dflt, &v, why, sizeof why) == 0 &&
            check_value(k, &v, why, sizeof why) == 0)
            store_value(k, c, &v);
    }
}

int config_set(sevo_config *c, const char *key, const char *value_str, sevo_error *err) {
    const key_def *k = find_key(key);
    if (!k) return sevo_fail(err, "unknown configuration key '%s'", key);
    value v = {0};
    char why[512];
    if (value_from_string(k, value_str, &v, why, sizeof why) != 0)
        return sevo_fail(err, "%s: %s", key, why);
    return apply(k, c, &v, NULL, err);
}

int config_validate(const sevo_config *c, const char *source, sevo_error *err) {
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &KEYS[i];
        if (k->offset == NO_FIELD) continue;
        if (k->type == T_STRING && !memchr((const char *)c + k->offset, '\0', k->size))
            return sevo_fail(err, "%s%s%s: not a terminated string", source ? source : "",
                             source ? ": " : "", k->name);
        value v = load_value(k, c);
        char why[512];
        if (check_value(k, &v, why, sizeof why) != 0)
            return sevo_fail(err, "%s%s%s: %s", source ? source : "", source ? ": " : "", k->name,
                             why);
    }
    return 0;
}

/* Is name the section of at least one key ("model", "sr_dpo", ...)? */
static int is_section(const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < N_KEYS; i++)
        if (strncmp(KEYS[i].name, name, n) == 0 && KEYS[i].name[n] == '.') return 1;
    return 0;
}

/* A JSON object may repeat a key; the last would silently win, so refuse it. */
static const cJSON *repeated_key(const cJSON *obj) {
    for (const cJSON *a = obj->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (strcmp(a->string, b->string) == 0) return b;
    return NULL;
}

static int load_member(sevo_config *c, const char *dotted, const cJSON *j, const char *path,
                       sevo_error *err) {
    const key_def *k = find_key(dotted);
    if (!k) {
        warn(path, "unknown key '%s'; ignored", dotted);
        return 0;
    }
    value v = {0};
    char why[512];
    if (value_from_json(k, j, &v, why, sizeof why) != 0)
        return sevo_fail(err, "%s: %s: %s", path, dotted, why);
    return apply(k, c, &v, path, err);
}

static int load_root(sevo_config *c, const cJSON *root, const char *path, sevo_error *err) {
    if (!cJSON_IsObject(root))
        return sevo_fail(err, "%s: expected a JSON object, got %s", path, json_kind(root));
    const cJSON *dup = repeated_key(root);
    if (dup) return sevo_fail(err, "%s: key '%s' appears twice", path, dup->string);
    const cJSON *j;
    cJSON_ArrayForEach(j, root) {
        if (!is_section(j->string)) {
            if (load_member(c, j->string, j, path, err) != 0) return -1;
            continue;
        }
        if (!cJSON_IsObject(j))
            return sevo_fail(err, "%s: %s: expected an object, got %s", path, j->string,
                             json_kind(j));
        if ((dup = repeated_key(j)))
            return sevo_fail(err, "%s: key '%s.%s' appears twice", path, j->string, dup->string);
        const cJSON *m;
        cJSON_ArrayForEach(m, j) {
            char dotted[256];
            snprintf(dotted, sizeof dotted, "%s.%s", j->string, m->string);
            if (load_member(c, dotted, m, path, err) != 0) return -1;
        }
    }
    return 0;
}

int config_load(sevo_config *c, const char *path, sevo_error *err) {
    char *text = NULL;
    size_t len = 0;
    if (sevo_read_file(path, &text, &len, err) != 0) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root) { /* nothing but whitespace may follow the value */
        while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (end < text + len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root) {
        int line = 1;
        for (const char *p = text; end && p < end && p < text + len; p++)
            line += *p == '\n';
        free(text);
        return sevo_fail(err, "%s:%d: invalid JSON", path, line);
    }
    free(text);
    /* Work on a copy so that a bad file leaves *c untouched. */
    sevo_config *tmp = sevo_malloc(sizeof *tmp, "configuration", err);
    if (!tmp) {
        cJSON_Delete(root);
        return -1;
    }
    *tmp = *c;
    int rc = load_root(tmp, root, path, err);
    cJSON_Delete(root);
    if (rc == 0) rc = config_validate(tmp, path, err);
    if (rc == 0) *c = *tmp;
    free(tmp);
    return rc;
}

/* ---- printing ---- */

/* The shortest %g form that reads back as the same float (at most %.9g, which always
 * does), written with a decimal point so that it reads as a number with a fraction. */
static void format_float(char *buf, size_t n, float x) {
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)x);
        if ((float)strtod(buf, NULL) == x) break;
    }
    if (!strpbrk(buf, ".eE")) strncat(buf, ".0", n - strlen(buf) - 1);
}

char *config_to_json(const sevo_config *c) { return config_to_json_except(c, NULL); }

char *config_to_json_except(const sevo_config *c, const char *skip_section) {
    strbuf b = {0};
    char section[64] = ""; /* the open section, "" at top level */
    int first = 1;
    strbuf_puts(&b, "{");
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &KEYS[i];
        /* Keys sevo does not honour are not part of the effective configuration; printing
         * them would only make the printed file warn when loaded back. */
        if (k->offset == NO_FIELD || (k->flags & NOT_HONOURED)) continue;
        const char *dot = strchr(k->name, '.');
        size_t slen = dot ? (size_t)(dot - k->name) : 0;
        const char *leaf = dot ? dot + 1 : k->name;
        if (skip_section && slen == strlen(skip_section) && !strncmp(k->name, skip_section, slen)) continue;
        if (strlen(section) != slen || strncmp(section, k->name, slen) != 0) {
            if (section[0]) strbuf_puts(&b, "\n  }");
            snprintf(section, sizeof section, "%.*s", (int)slen, k->name);
            if (slen) {
                strbuf_puts(&b, first ? "\n  " : ",\n  ");
                strbuf_json_string(&b, section);
                strbuf_puts(&b, ": {");
                first = 1;
            }
        }
        strbuf_puts(&b, first ? "\n" : ",\n");
        strbuf_puts(&b, slen ? "    " : "  ");
        first = 0;
        strbuf_json_string(&b, leaf);
        strbuf_puts(&b, ": ");
        value v = load_value(k, c);
        char num[64];
        switch (k->type) {
        case T_INT:
            snprintf(num, sizeof num, "%d", (int)v.num);
            strbuf_puts(&b, num);
            break;
        case T_I64:
            snprintf(num, sizeof num, "%lld", (long long)v.i64);
            strbuf_puts(&b, num);
            break;
        case T_FLOAT:
            format_float(num, sizeof num, (float)v.num);
            strbuf_puts(&b, num);
            break;
        case T_BOOL:
            strbuf_puts(&b, v.b ? "true" : "false");
            break;
        case T_STRING:
            strbuf_json_string(&b, v.s);
            break;
        case T_ANY:
            break;
        }
    }
    if (section[0]) strbuf_puts(&b, "\n  }");
    strbuf_puts(&b, "\n}\n");
    if (b.oom) {
        strbuf_free(&b);
        return NULL;
    }
    return b.p;
}
