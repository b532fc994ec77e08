/* main.c: the `sevo` command-line entry point; dispatches to one subcommand. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} subcommand;

static const subcommand SUBCOMMANDS[] = {
    {"pipeline", cmd_pipeline, "the whole loop: synth -> SFT -> IPR + HSR-EE gate -> SR-DPO -> eval (resumable)"},
    {"synth", cmd_synth, "render the embedded synthetic visual world"},
    {"sft", cmd_sft, "supervised fine-tuning (stage 1)"},
    {"generate-ipr-data", cmd_ipr, "stage 2: IPR preference pairs from the model's failed perceptions"},
    {"train-hsr-ee", cmd_hsr_ee, "stage 2: the HSR-EE confidence gate (and its learned threshold)"},
    {"train-sr-dpo", cmd_dpo, "stage 3: SR-DPO on the preference pairs, conditioned on the image"},
    {"train-ppo", cmd_ppo, "the no_sr_dpo ablation's baseline: binary-reward PPO from the SFT model"},
    {"inference", cmd_inference, "perceive, reason and answer (one image or a JSONL set)"},
    {"eval", cmd_eval, "accuracy, POPE, hallucination, CHAIR, shortcut gap (one model or two)"},
    {"config", cmd_config, "print or check the effective configuration"},
    {"bench", cmd_bench, "measure training, prefill and decode speed"},
};
#define N_SUBCOMMANDS (int)(sizeof SUBCOMMANDS / sizeof SUBCOMMANDS[0])

static void usage(FILE *f) {
    fprintf(f, "usage: sevo <command> [flags]   (sevo <command> --help for its flags)\n\n");
    for (int i = 0; i < N_SUBCOMMANDS; i++)
        fprintf(f, "  %-20s %s\n", SUBCOMMANDS[i].name, SUBCOMMANDS[i].help);
}

/* OpenBLAS 0.3.21 (Debian 12) does not know recent Xeon models and, when
 * OPENBLAS_CORETYPE is unset, falls back to its Prescott (SSE3) kernels: about 7x
 * slower sgemm here (30 vs 210 GFLOP/s on 2 cores). When the variable is unset, the
 * chosen core is Prescott and the CPU has AVX2/AVX-512, re-run this process once with
 * the kernel family the CPU supports. A value the user or the machine set is never
 * touched, and SEVO_KEEP_BLAS_CORETYPE=1 turns this off. */
static void fix_blas_coretype(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("SEVO_KEEP_BLAS_CORETYPE")) return;
    const char *core = openblas_get_corename();
    if (!core || strcmp(core, "Prescott") != 0) return;
    __builtin_cpu_init();
    const char *want = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    if (!want) return;
    if (setenv("OPENBLAS_CORETYPE", want, 1) != 0) return;
    fprintf(stderr, "sevo: OpenBLAS chose its Prescott kernels for this CPU; using %s "
            "(set OPENBLAS_CORETYPE to choose, SEVO_KEEP_BLAS_CORETYPE=1 to keep Prescott)\n", want);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on with what we have */
}

int main(int argc, char **argv) {
    fix_blas_coretype(argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < N_SUBCOMMANDS; i++)
        if (!strcmp(argv[1], SUBCOMMANDS[i].name)) return SUBCOMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "sevo: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
