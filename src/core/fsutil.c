/* fsutil.c: atomic writes, whole-file reads and path helpers (POSIX). */
#include "core/fsutil.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sevo_read_file(const char *path, char **out, size_t *len, sevo_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return sevo_fail(err, "%s: cannot open: %s", path, strerror(errno));
    /* fopen opens a directory for reading, and its "size" (LONG_MAX from ftell) would
     * then be reported as an allocation failure */
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return sevo_fail(err, "%s: is a directory, not a file", path);
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return sevo_fail(err, "%s: cannot seek: %s", path, strerror(errno));
    }
    long n = ftell(f);
    if (n < 0) {
        fclose(f);
        return sevo_fail(err, "%s: cannot tell size: %s", path, strerror(errno));
    }
    rewind(f);
    char *buf = sevo_malloc((size_t)n + 1, path, err);
    if (!buf) {
        fclose(f);
        return -1;
    }
    if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return sevo_fail(err, "%s: short read", path);
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    if (len) *len = (size_t)n;
    return 0;
}

int sevo_atomic_open(sevo_atomic_file *af, const char *path, sevo_error *err) {
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) return sevo_fail(err, "%s: cannot create: %s", af->tmp, strerror(errno));
    return 0;
}

int sevo_atomic_commit(sevo_atomic_file *af, sevo_error *err) {
    int bad = ferror(af->f);
    if (fflush(af->f) != 0) bad = 1;
    if (!bad && fsync(fileno(af->f)) != 0) bad = 1;
    if (fclose(af->f) != 0) bad = 1;
    af->f = NULL;
    if (bad) {
        remove(af->tmp);
        return sevo_fail(err, "%s: write failed: %s", af->path, strerror(errno));
    }
    if (rename(af->tmp, af->path) != 0) {
        int e = errno;
        remove(af->tmp);
        return sevo_fail(err, "%s: cannot rename into place: %s", af->path, strerror(e));
    }
    return 0;
}

void sevo_atomic_abort(sevo_atomic_file *af) {
    if (af->f) fclose(af->f);
    af->f = NULL;
    remove(af->tmp);
}

int sevo_write_file_atomic(const char *path, const void *data, size_t len, sevo_error *err) {
    sevo_atomic_file af;
    if (sevo_atomic_open(&af, path, err) != 0) return -1;
    if (len && fwrite(data, 1, len, af.f) != len) {
        sevo_atomic_abort(&af);
        return sevo_fail(err, "%s: write failed", path);
    }
    return sevo_atomic_commit(&af, err);
}

int sevo_mkdirs(const char *path, sevo_error *err) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = strlen(buf);
    if (n == 0) return 0;
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return sevo_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    if (!sevo_dir_exists(path)) return sevo_fail(err, "%s: exists and is not a directory", path);
    return 0;
}

int sevo_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int sevo_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void sevo_path_join(char *out, size_t n, const char *dir, const char *name) {
    if (name[0] == '/' || dir == NULL || dir[0] == '\0') {
        snprintf(out, n, "%s", name);
        return;
    }
    size_t dl = strlen(dir);
    snprintf(out, n, "%s%s%s", dir, dir[dl - 1] == '/' ? "" : "/", name);
}

void sevo_path_dirname(char *out, size_t n, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, n, ".");
        return;
    }
    if (slash == path) {
        snprintf(out, n, "/");
        return;
    }
    snprintf(out, n, "%.*s", (int)(slash - path), path);
}

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

int sevo_remove_tree(const char *path) {
    if (!sevo_dir_exists(path) && !sevo_file_exists(path)) return 0;
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int sevo_path_relative(char *out, size_t n, const char *dir, const char *path) {
    char a[PATH_MAX], b[PATH_MAX];
    if (!realpath(dir, a) || !realpath(path, b)) {
        snprintf(out, n, "%s", path);
        return -1;
    }
    /* both are absolute and canonical: skip their common leading components, then one
     * ".." per remaining component of dir, then the rest of path */
    size_t i = 0, ca = 0, cb = 0; /* ca, cb: where the first differing component starts */
    for (;;) {
        size_t ea = i, eb = i;
        while (a[ea] && a[ea] != '/') ea++;
        while (b[eb] && b[eb] != '/') eb++;
        if (ea != eb || strncmp(a + i, b + i, ea - i) != 0) break;
        ca = cb = ea;
        if (!a[ea] || !b[eb]) break;
        i = ea + 1;
    }
    size_t o = 0;
    out[0] = '\0';
    for (size_t k = ca; a[k]; k++)
        if (a[k] == '/' && a[k + 1]) o += (size_t)snprintf(out + (o < n ? o : n), o < n ? n - o : 0, "../");
    const char *rest = b + cb + (b[cb] == '/');
    o += (size_t)snprintf(out + (o < n ? o : n), o < n ? n - o : 0, "%s", rest);
    return o < n ? 0 : -1;
}
