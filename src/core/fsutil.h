/* fsutil.h: file-system helpers. All writes that produce user-visible files go through
 * sevo_atomic_* so that a crash never leaves a half-written file under the final name:
 * data is written to "<path>.tmp.<pid>", flushed, fsync'ed and renamed. */
#ifndef SEVO_CORE_FSUTIL_H
#define SEVO_CORE_FSUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "core/error.h"

/* Reads a whole file into a NUL-terminated malloc'ed buffer. */
int sevo_read_file(const char *path, char **out, size_t *len, sevo_error *err);

/* Writes len bytes to path atomically. */
int sevo_write_file_atomic(const char *path, const void *data, size_t len, sevo_error *err);

/* Streaming atomic write: open a temporary file, write through f, then commit (rename
 * to path) or abort (delete). */
typedef struct sevo_atomic_file {
    FILE *f;
    char path[4096];
    char tmp[4160];
} sevo_atomic_file;
int sevo_atomic_open(sevo_atomic_file *af, const char *path, sevo_error *err);
int sevo_atomic_commit(sevo_atomic_file *af, sevo_error *err);
void sevo_atomic_abort(sevo_atomic_file *af);

/* mkdir -p. */
int sevo_mkdirs(const char *path, sevo_error *err);
int sevo_file_exists(const char *path);
int sevo_dir_exists(const char *path);
/* Joins dir and name into out (size n); if name is absolute it is copied as is. */
void sevo_path_join(char *out, size_t n, const char *dir, const char *name);
/* Writes the directory part of path into out ("." when there is none). */
void sevo_path_dirname(char *out, size_t n, const char *path);
/* Writes path relative to dir into out ("../images/x.png"), both resolved through
 * realpath; when either does not exist, path itself. 0, or -1 when it fell back or
 * out was too small. */
int sevo_path_relative(char *out, size_t n, const char *dir, const char *path);
/* Removes a directory tree (used for replacing checkpoint directories). */
int sevo_remove_tree(const char *path);

#endif
