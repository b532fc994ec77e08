/* test_util.h: helpers shared by the cmocka tests that work on files: a fixture with
 * its own temporary directory (created in setup, removed with everything in it in
 * teardown), writing a text file, and capturing what a call prints on stderr. */
#ifndef SEVO_TESTS_TEST_UTIL_H
#define SEVO_TESTS_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/fsutil.h"

/* Allocates a zeroed fixture of `size` bytes and creates a fresh directory
 * /tmp/<prefix>_XXXXXX in its `dir_size`-byte char array at offset `dir_off`. NULL (and
 * nothing left behind) on failure. Use test_fixture_new, which fills in the layout. */
static inline void *test_fixture_alloc(size_t size, size_t dir_off, size_t dir_size,
                                       const char *prefix) {
    char *f = calloc(1, size);
    if (!f) return NULL;
    char *dir = f + dir_off;
    snprintf(dir, dir_size, "/tmp/%s_XXXXXX", prefix);
    if (!mkdtemp(dir)) {
        free(f);
        return NULL;
    }
    return f;
}

/* A new zeroed `type` whose member `char dir[N]` names a fresh temporary directory. */
#define test_fixture_new(type, prefix)                                                       \
    ((type *)test_fixture_alloc(sizeof(type), offsetof(type, dir), sizeof(((type *)0)->dir), \
                                (prefix)))

/* Removes the fixture's directory with everything in it, then frees the fixture. */
static inline void test_fixture_free(void *f, const char *dir) {
    sevo_remove_tree(dir);
    free(f);
}

/* Writes text to path, replacing the file. */
static inline void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* How many times needle occurs in hay (not overlapping). */
static inline int count_substr(const char *hay, const char *needle) {
    int n = 0;
    for (const char *q = hay; (q = strstr(q, needle)); q += strlen(needle)) n++;
    return n;
}

/* Fails unless <dir_a>/<name> and <dir_b>/<name> hold the same bytes (e.g. the
 * weights of an interrupted-and-resumed run against an uninterrupted one). */
static inline void assert_same_file_bytes(const char *dir_a, const char *dir_b, const char *name) {
    char pa[512], pb[512], *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    sevo_error err;
    snprintf(pa, sizeof pa, "%s/%s", dir_a, name);
    snprintf(pb, sizeof pb, "%s/%s", dir_b, name);
    if (sevo_read_file(pa, &a, &la, &err)) fail_msg("%s", err.msg);
    if (sevo_read_file(pb, &b, &lb, &err)) fail_msg("%s", err.msg);
    if (la != lb || memcmp(a, b, la) != 0) fail_msg("%s and %s differ", pa, pb);
    free(a);
    free(b);
}

/* Redirects stderr (fd 2) into a temporary file between capture_stderr_begin and
 * capture_stderr_end, which puts what was written (at most cap - 1 bytes) into out. */
typedef struct stderr_capture {
    char tmp[32];
    int fd, saved;
} stderr_capture;

static inline void capture_stderr_begin(stderr_capture *c) {
    snprintf(c->tmp, sizeof c->tmp, "/tmp/sevo_err_XXXXXX");
    c->fd = mkstemp(c->tmp);
    assert_true(c->fd >= 0);
    fflush(stderr);
    c->saved = dup(2);
    dup2(c->fd, 2);
}

static inline void capture_stderr_end(stderr_capture *c, char *out, size_t cap) {
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    ssize_t n = pread(c->fd, out, cap - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(c->fd);
    unlink(c->tmp);
}

#endif
