/* cli.h: the subcommands of the `sevo` binary. Each takes argv after the command name
 * (argv[0] is the command) and returns the process exit status. */
#ifndef SEVO_CLI_H
#define SEVO_CLI_H

int cmd_synth(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_inference(int argc, char **argv);
int cmd_ipr(int argc, char **argv);
int cmd_hsr_ee(int argc, char **argv);
int cmd_dpo(int argc, char **argv);
int cmd_ppo(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_pipeline(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
