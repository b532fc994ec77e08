/* strbuf.c: the growing string buffer and checked string copies (see strbuf.h). */
#include "core/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void strbuf_puts(strbuf *b, const char *s) { strbuf_put(b, s, strlen(s)); }

void strbuf_printf(strbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    if ((size_t)n < sizeof tmp) {
        strbuf_put(b, tmp, (size_t)n);
        return;
    }
    /* Too long for the stack buffer: format again into the heap. */
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    strbuf_put(b, big, (size_t)n);
    free(big);
}

void strbuf_json_string(strbuf *b, const char *s) {
    strbuf_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char esc[2] = {'\\', (char)*c};
            strbuf_put(b, esc, 2);
        } else if (*c < 0x20) {
            strbuf_printf(b, "\\u%04x", *c);
        } else {
            strbuf_put(b, (const char *)c, 1);
        }
    }
    strbuf_put(b, "\"", 1);
}

void strbuf_free(strbuf *b) {
    free(b->p);
    *b = (strbuf){0};
}

char *sevo_strndup(const char *s, size_t n, const char *what, sevo_error *err) {
    char *p = sevo_malloc(n + 1, what, err);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sevo_strdup(const char *s, const char *what, sevo_error *err) {
    return s ? sevo_strndup(s, strlen(s), what, err) : NULL;
}
