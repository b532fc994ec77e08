/* args.h: command-line flags. Flags use the reference's names (--model_path,
 * --learning_rate, ...); dashes and underscores are interchangeable, "--flag value" and
 * "--flag=value" both work. Flags bound to a configuration key override the file given
 * with --config, and any "--section.key value" sets that configuration key directly. */
#ifndef SEVO_CLI_ARGS_H
#define SEVO_CLI_ARGS_H

#include "core/config.h"

typedef enum { FLAG_STRING, FLAG_INT, FLAG_FLOAT, FLAG_BOOL, FLAG_CONFIG, FLAG_CONFIG_BOOL } flag_kind;

typedef struct cli_flag {
    const char *name;
    flag_kind kind;
    void *dst;              /* const char ** / int * / float * / int * (bool); NULL for config */
    const char *config_key; /* FLAG_CONFIG*: the dotted key it sets */
    const char *help;
} cli_flag;

/* The sampling flags every generating command takes, bound to a gen_options-like set
 * of variables: float temperature, float top_p, int max_new_tokens, int seed. */
#define CLI_GEN_FLAGS(temperature, top_p, max_new_tokens, seed)                                     \
    {"temperature", FLAG_FLOAT, &(temperature), NULL, "sampling temperature (0 = greedy)"},          \
    {"top_p", FLAG_FLOAT, &(top_p), NULL, "nucleus sampling mass"},                                  \
    {"max_new_tokens", FLAG_INT, &(max_new_tokens), NULL, "token budget per generated segment"},     \
    {"seed", FLAG_INT, &(seed), NULL, "sampling seed"}

/* Checks the values of CLI_GEN_FLAGS; prints the problem and returns -1 when bad. */
int cli_check_gen_flags(const char *cmd, float temperature, float top_p, int max_new_tokens);

/* The path of SPLIT.jsonl in dir, into out (n bytes). Prints "not found (--data_dir must
 * hold SPLIT.jsonl)" and returns 1 when it is not there, else 0. */
int cli_split_path(const char *cmd, const char *dir, const char *split, char *out, size_t n);

/* Parses argv (argv[0] is the command name). Loads --config into cfg first (if cfg is
 * non-NULL), then applies flags in order. Returns 0 on success, 1 if --help was
 * printed, -1 on a usage error (already printed). */
int cli_parse(const char *cmd, const char *summary, int argc, char **argv, const cli_flag *flags,
              int n_flags, sevo_config *cfg);

#endif
