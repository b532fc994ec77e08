/* error.h: how sevo reports failure.
 *
 * Every fallible function returns int (0 on success, -1 on failure) and takes a
 * `sevo_error *` into which it writes one line naming what failed: the file, the line
 * or field, and why. The CLI prints that line and exits non-zero. There is no global
 * error state: the caller owns the buffer. */
#ifndef SEVO_CORE_ERROR_H
#define SEVO_CORE_ERROR_H

#include <stddef.h>

typedef struct sevo_error {
    char msg[1024];
} sevo_error;

/* Formats the message into err (if err is non-NULL) and returns -1, so that
 * `return sevo_fail(err, "...")` both reports and fails. */
int sevo_fail(sevo_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message with context ("loading model: ..."). Returns -1. */
int sevo_fail_prefix(sevo_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checked allocation: on failure writes "out of memory (N bytes): what" into err. */
void *sevo_malloc(size_t n, const char *what, sevo_error *err);
void *sevo_calloc(size_t count, size_t size, const char *what, sevo_error *err);

#endif
