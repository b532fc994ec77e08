/* args.c: flag parsing shared by every subcommand (see args.h). */
#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"

static void normalise(char *dst, size_t n, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++) dst[i] = src[i] == '-' ? '_' : src[i];
    dst[i] = '\0';
}

static void print_help(const char *cmd, const char *summary, const cli_flag *flags, int n, int has_cfg) {
    printf("usage: sevo %s [flags]\n\n%s\n\nflags:\n", cmd, summary);
    if (has_cfg) printf("  --%-28s %s\n", "config PATH", "JSON configuration file (reference format)");
    for (int i = 0; i < n; i++) {
        char left[64];
        const char *arg = flags[i].kind == FLAG_BOOL || flags[i].kind == FLAG_CONFIG_BOOL ? ""
                          : flags[i].kind == FLAG_STRING                                  ? " STR"
                          : flags[i].kind == FLAG_INT                                     ? " N"
                                                                                          : " X";
        snprintf(left, sizeof left, "%s%s", flags[i].name, arg);
        printf("  --%-28s %s%s%s%s\n", left, flags[i].help, flags[i].config_key ? " [" : "",
               flags[i].config_key ? flags[i].config_key : "", flags[i].config_key ? "]" : "");
    }
    if (has_cfg) printf("  --%-28s %s\n", "SECTION.KEY VALUE", "set any configuration key");
    printf("  --%-28s %s\n", "help", "show this help");
}

static int parse_int(const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < -2147483647L || v > 2147483647L) return -1;
    *out = (int)v;
    return 0;
}

static int parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || end == s) return -1;
    *out = v;
    return 0;
}

int cli_parse(const char *cmd, const char *summary, int argc, char **argv, const cli_flag *flags,
              int n_flags, sevo_config *cfg) {
    sevo_error err;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_help(cmd, summary, flags, n_flags, cfg != NULL);
            return 1;
        }
    }
    /* the configuration file first, so that every other flag overrides it */
    if (cfg) {
        for (int i = 1; i < argc; i++) {
            const char *path = NULL;
            if (!strcmp(argv[i], "--config")) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "sevo %s: --config needs a value\n", cmd);
                    return -1;
                }
                path = argv[i + 1];
            } else if (!strncmp(argv[i], "--config=", 9)) {
                path = argv[i] + 9;
            }
            if (path && config_load(cfg, path, &err)) {
                fprintf(stderr, "sevo %s: %s\n", cmd, err.msg);
                return -1;
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "sevo %s: unexpected argument '%s' (see --help)\n", cmd, a);
            return -1;
        }
        char name[128];
        normalise(name, sizeof name, a + 2);
        const char *value = NULL;
        char *eq = strchr(name, '=');
        if (eq) {
            *eq = '\0';
            value = strchr(a, '=') + 1;
        }
        if (!strcmp(name, "config")) {
            if (!value) i++;
            continue;
        }
        const cli_flag *f = NULL;
        for (int k = 0; k < n_flags && !f; k++)
            if (!strcmp(flags[k].name, name)) f = &flags[k];
        if (!f && cfg && strchr(name, '.')) {
            if (!value) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "sevo %s: --%s needs a value\n", cmd, name);
                    return -1;
                }
                value = argv[++i];
            }
            if (config_set(cfg, name, value, &err)) {
                fprintf(stderr, "sevo %s: --%s: %s\n", cmd, name, err.msg);
                return -1;
            }
            continue;
        }
        if (!f) {
            fprintf(stderr, "sevo %s: unknown flag '%s' (see --help)\n", cmd, a);
            return -1;
        }
        if (f->kind == FLAG_BOOL || f->kind == FLAG_CONFIG_BOOL) {
            const char *v = value ? value : "true";
            int b;
            if (!strcmp(v, "true") || !strcmp(v, "1")) b = 1;
            else if (!strcmp(v, "false") || !strcmp(v, "0")) b = 0;
            else {
                fprintf(stderr, "sevo %s: --%s: expected true or false, got '%s'\n", cmd, f->name, v);
                return -1;
            }
            if (f->kind == FLAG_BOOL) *(int *)f->dst = b;
            else if (config_set(cfg, f->config_key, b ? "true" : "false", &err)) {
                fprintf(stderr, "sevo %s: --%s: %s\n", cmd, f->name, err.msg);
                return -1;
            }
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sevo %s: --%s needs a value\n", cmd, f->name);
                return -1;
            }
            value = argv[++i];
        }
        int bad = 0;
        switch (f->kind) {
        case FLAG_STRING: *(const char **)f->dst = value; break;
        case FLAG_INT: bad = parse_int(value, (int *)f->dst); break;
        case FLAG_FLOAT: bad = parse_float(value, (float *)f->dst); break;
        case FLAG_CONFIG:
            if (config_set(cfg, f->config_key, value, &err)) {
                fprintf(stderr, "sevo %s: --%s: %s\n", cmd, f->name, err.msg);
                return -1;
            }
            break;
        default: break;
        }
        if (bad) {
            fprintf(stderr, "sevo %s: --%s: expected a %s, got '%s'\n", cmd, f->name,
                    f->kind == FLAG_INT ? "whole number" : "number", value);
            return -1;
        }
    }
    return 0;
}

int cli_check_gen_flags(const char *cmd, float temperature, float top_p, int max_new_tokens) {
    if (temperature >= 0 && top_p > 0 && top_p <= 1 && max_new_tokens >= 1) return 0;
    fprintf(stderr, "sevo %s: need --temperature >= 0, --top_p in (0,1], --max_new_tokens >= 1\n", cmd);
    return -1;
}

int cli_split_path(const char *cmd, const char *dir, const char *split, char *out, size_t n) {
    char name[512];
    snprintf(name, sizeof name, "%s.jsonl", split);
    sevo_path_join(out, n, dir, name);
    if (sevo_file_exists(out)) return 0;
    fprintf(stderr, "sevo %s: %s: not found (--data_dir must hold %s)\n", cmd, out, name);
    return 1;
}
