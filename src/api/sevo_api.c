/* sevo_api.c: the public interface (include/sevo/sevo.h) over the engine. */
#include "sevo/sevo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "method/hsr_ee.h"
#include "model/checkpoint.h"
#include "model/generate.h"

struct sevo_model {
    vlm *m;
    sevo_tokenizer *tok;
    vlm_policy *policy;
    int has_gate;
    hsr_gate gate;
    hsr_gate_exit rule;
};

const char *sevo_version(void) { return SEVO_VERSION; }

static int report(const sevo_error *e, char *err, size_t n) {
    if (err && n) snprintf(err, n, "%s", e->msg);
    return -1;
}

void sevo_model_free(sevo_model *m) {
    if (!m) return;
    policy_free(m->policy);
    vlm_free(m->m);
    tokenizer_free(m->tok);
    hsr_gate_release(&m->gate);
    free(m);
}

int sevo_model_load(sevo_model **out, const char *dir, char *err, size_t err_len) {
    sevo_error e;
    *out = NULL;
    sevo_model *m = sevo_calloc(1, sizeof *m, "model", &e);
    if (!m) return report(&e, err, err_len);
    if (checkpoint_load_model(dir, &m->m, &m->tok, &e)) goto fail;
    gen_options go;
    gen_options_default(&go);
    if (policy_create(&m->policy, m->m, m->tok, &go, &e)) goto fail;
    *out = m;
    return 0;
fail:
    sevo_model_free(m);
    return report(&e, err, err_len);
}

int sevo_model_use_gate(sevo_model *m, const char *path, char *err, size_t err_len) {
    sevo_error e;
    char file[4096];
    if (sevo_dir_exists(path)) sevo_path_join(file, sizeof file, path, HSR_GATE_FILE);
    else snprintf(file, sizeof file, "%s", path);
    hsr_gate g;
    if (hsr_gate_load(&g, file, vlm_get_config(m->m)->text.hidden_size, &e)) return report(&e, err, err_len);
    hsr_gate_release(&m->gate);
    m->gate = g;
    m->rule = (hsr_gate_exit){.gate = &m->gate, .tau = hsr_gate_tau(&m->gate)};
    m->has_gate = 1;
    return 0;
}

int sevo_model_ask(sevo_model *m, const char *image_path, const char *question, int max_steps,
                   sevo_answer *out, char *err, size_t err_len) {
    sevo_error e;
    memset(out, 0, sizeof *out);
    if (max_steps < 1) {
        sevo_fail(&e, "max_steps must be >= 1, got %d", max_steps);
        return report(&e, err, err_len);
    }
    if (policy_load_image(m->policy, image_path, &e)) return report(&e, err, err_len);
    trace_result r;
    if (policy_reason(m->policy, policy_image(m->policy), question, max_steps, m->has_gate ? hsr_gate_step : NULL,
                      m->has_gate ? &m->rule : NULL, &r, &e))
        return report(&e, err, err_len);
    snprintf(out->perception, sizeof out->perception, "%s", r.perception);
    snprintf(out->answer, sizeof out->answer, "%s", r.answer);
    out->num_steps = r.n_steps;
    out->tokens_generated = r.tokens_generated;
    out->exited_early = r.exit_type == EXIT_EARLY;
    return 0;
}
