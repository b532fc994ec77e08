/* early_exit.c: loading the HSR-EE gate for the commands that generate (see early_exit.h). */
#include "cli/early_exit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "model/vlm.h"

int cli_early_exit_open(const char *cmd, cli_early_exit *e, const char *gate_path, int use_early_exit,
                        float threshold, const char *model_path) {
    memset(e, 0, sizeof *e);
    if (use_early_exit && !gate_path) {
        fprintf(stderr, "sevo %s: --use_early_exit needs a gate: --confidence_head_path FILE (made by sevo "
                        "train-hsr-ee)\n", cmd);
        return 2;
    }
    if (threshold >= 0 && !(threshold > 0.0f && threshold < 1.0f)) {
        fprintf(stderr, "sevo %s: --threshold %g: tau must be inside (0, 1)\n", cmd, threshold);
        return 2;
    }
    if (!gate_path) return 0;
    if (!use_early_exit) {
        fprintf(stderr, "sevo %s: --confidence_head_path given without --use_early_exit: reasoning at fixed depth\n",
                cmd);
        return 0;
    }
    char path[4096], cfg_path[4096];
    if (sevo_dir_exists(gate_path)) sevo_path_join(path, sizeof path, gate_path, HSR_GATE_FILE);
    else snprintf(path, sizeof path, "%s", gate_path);
    sevo_path_join(cfg_path, sizeof cfg_path, model_path, "config.json");
    vlm_config c;
    sevo_error err;
    if (vlm_config_load(&c, cfg_path, &err) || hsr_gate_load(&e->gate, path, c.text.hidden_size, &err)) {
        fprintf(stderr, "sevo %s: %s\n", cmd, err.msg);
        return 1;
    }
    e->rule = (hsr_gate_exit){.gate = &e->gate, .tau = threshold >= 0 ? threshold : hsr_gate_tau(&e->gate)};
    e->on = 1;
    return 0;
}

void cli_early_exit_close(cli_early_exit *e) {
    hsr_gate_release(&e->gate);
    memset(e, 0, sizeof *e);
}
