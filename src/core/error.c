/* error.c: formatting of one-line error messages and checked allocation. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sevo_fail(sevo_error *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int sevo_fail_prefix(sevo_error *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return -1;
}

void *sevo_malloc(size_t n, const char *what, sevo_error *err) {
    void *p = malloc(n ? n : 1);
    if (!p) sevo_fail(err, "out of memory (%zu bytes): %s", n, what);
    return p;
}

void *sevo_calloc(size_t count, size_t size, const char *what, sevo_error *err) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) sevo_fail(err, "out of memory (%zu x %zu bytes): %s", count, size, what);
    return p;
}
