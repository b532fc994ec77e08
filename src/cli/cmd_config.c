/* cmd_config.c: `sevo config` prints the effective configuration (file + flags). */
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/cli.h"

int cmd_config(int argc, char **argv) {
    sevo_config cfg;
    config_defaults(&cfg);
    int print = 0;
    const cli_flag flags[] = {
        {"print", FLAG_BOOL, &print, NULL, "print the effective configuration as JSON (the default)"},
    };
    int rc = cli_parse("config", "Load --config, apply --SECTION.KEY overrides, validate, and print the "
                       "effective configuration.",
                       argc, argv, flags, 1, &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    sevo_error err;
    if (config_validate(&cfg, "configuration", &err)) {
        fprintf(stderr, "sevo config: %s\n", err.msg);
        return 1;
    }
    char *json = config_to_json(&cfg);
    if (!json) {
        fprintf(stderr, "sevo config: out of memory\n");
        return 1;
    }
    printf("%s\n", json);
    free(json);
    return 0;
}
