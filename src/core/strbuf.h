/* strbuf.h: a growing, always NUL-terminated string for building text (a printed
 * configuration, a safetensors header), and checked string copies.
 *
 * A strbuf starts zeroed (`strbuf b = {0};`). Appending never fails loudly: on out of
 * memory the buffer stops growing and remembers it in `oom`, so a writer appends freely
 * and checks `oom` once at the end. `p` is NULL until the first append. */
#ifndef SEVO_CORE_STRBUF_H
#define SEVO_CORE_STRBUF_H

#include <stddef.h>

#include "core/error.h"

typedef struct strbuf {
    char *p;         /* the text, NUL-terminated; NULL while empty */
    size_t len, cap; /* bytes used (without the NUL) and allocated */
    int oom;         /* set once an append ran out of memory; later appends do nothing */
} strbuf;

/* Appends n bytes of s. */
void strbuf_put(strbuf *b, const char *s, size_t n);
/* Appends the NUL-terminated string s. */
void strbuf_puts(strbuf *b, const char *s);
/* Appends printf-formatted text. */
void strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal: quoted, with '"' and '\\' backslash-escaped and
 * control bytes written as \u00XX; other bytes (UTF-8 included) are copied as they are. */
void strbuf_json_string(strbuf *b, const char *s);
/* Frees the text and leaves b empty (zeroed). */
void strbuf_free(strbuf *b);

/* A malloc'd copy of the first n bytes of s, NUL-terminated; NULL (with an out-of-memory
 * message naming `what` in err) if allocation fails. */
char *sevo_strndup(const char *s, size_t n, const char *what, sevo_error *err);
/* A malloc'd copy of s, as sevo_strndup; NULL without error if s is NULL. */
char *sevo_strdup(const char *s, const char *what, sevo_error *err);

#endif
