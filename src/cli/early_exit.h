/* early_exit.h: the early-exit flags shared by `sevo inference`, `sevo eval` and the
 * pipeline: --confidence_head_path (a gate file, or a directory holding
 * confidence_head.safetensors), --use_early_exit, and --threshold to override the gate's
 * learned tau. */
#ifndef SEVO_CLI_EARLY_EXIT_H
#define SEVO_CLI_EARLY_EXIT_H

#include "method/hsr_ee.h"

typedef struct cli_early_exit {
    int on;          /* use the gate */
    hsr_gate gate;
    hsr_gate_exit rule;
} cli_early_exit;

/* Loads and checks the gate against the model at model_path. Returns 0 when the flags
 * are consistent (e->on says whether to exit early), else prints the problem and returns
 * the exit status (2 for a usage error, 1 for a bad file). threshold < 0: the gate's tau. */
int cli_early_exit_open(const char *cmd, cli_early_exit *e, const char *gate_path, int use_early_exit,
                        float threshold, const char *model_path);
void cli_early_exit_close(cli_early_exit *e);

#endif
