/* fuzz_common.h: what every libFuzzer target of fuzz/ shares.
 *
 * sevo's parsers take file paths (safetensors_open even maps the file), and none has an
 * in-memory entry point; rather than add one only for fuzzing, each target writes the
 * fuzzer's input into a file of a private scratch directory and parses that file, the
 * way sevo itself does. The directory is on tmpfs (/dev/shm) when there is one, so the
 * write costs microseconds, and it is removed at exit. SEVO_FUZZ_TMPDIR names another
 * parent directory: scripts/fuzz.sh points it at one it removes itself, because a run
 * that crashes leaves through _exit and skips the atexit handler.
 *
 * FUZZ_CHECK states a property the code under test must keep (a file that loads must
 * load again after sevo writes it back, ...). A broken property aborts, which libFuzzer
 * reports like any crash, with the input that broke it. */
#ifndef SEVO_FUZZ_COMMON_H
#define SEVO_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sanitizer/common_interface_defs.h>

#include "core/fsutil.h"

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) fuzz_die(__FILE__, __LINE__, #cond);                                          \
    } while (0)

static char fuzz_dir_[1024];

/* The message goes through the sanitizers' report channel: scripts/fuzz.sh silences the
 * targets' own stderr (-close_fd_mask), which would otherwise swallow it. */
static inline void fuzz_die(const char *file, int line, const char *what) {
    char msg[512];
    snprintf(msg, sizeof msg, "fuzz check failed at %s:%d: %s", file, line, what);
    fprintf(stderr, "%s\n", msg);
    __sanitizer_report_error_summary(msg);
    abort();
}

static inline void fuzz_remove_dir(void) {
    if (fuzz_dir_[0]) sevo_remove_tree(fuzz_dir_);
}

/* The scratch directory, created on first use. */
static inline const char *fuzz_dir(void) {
    if (fuzz_dir_[0]) return fuzz_dir_;
    const char *parent = getenv("SEVO_FUZZ_TMPDIR");
    if (!parent || !*parent) parent = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!parent || !*parent) parent = "/tmp";
    snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/sevo-fuzz-XXXXXX", parent);
    if (!mkdtemp(fuzz_dir_)) {
        fuzz_dir_[0] = '\0';
        fuzz_die(__FILE__, __LINE__, "cannot create the scratch directory");
    }
    atexit(fuzz_remove_dir);
    return fuzz_dir_;
}

/* Writes dir/name into out (size n) and returns out. */
static inline const char *fuzz_path(char *out, size_t n, const char *name) {
    int len = snprintf(out, n, "%s/%s", fuzz_dir(), name);
    FUZZ_CHECK(len > 0 && (size_t)len < n);
    return out;
}

/* Replaces the file at path with data[0..size). */
static inline void fuzz_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(size == 0 || fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);
}

#endif
