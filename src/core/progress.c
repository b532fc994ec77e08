/* progress.c: terminal progress bar / plain log lines (see progress.h). */
#include "core/progress.h"

#include <unistd.h>

#include "core/threads.h"

void progress_start(sevo_progress *p, FILE *out, const char *label, long total) {
    p->out = out;
    p->label = label;
    p->total = total > 0 ? total : 1;
    p->done = 0;
    p->t0 = p->last_print = sevo_now();
    p->tty = isatty(fileno(out));
    p->last_decile = 0;
}

static void format_time(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) s = 0;
    int m = (int)(s / 60);
    snprintf(buf, n, "%d:%02d", m, (int)s - 60 * m);
}

static void print_line(sevo_progress *p, const char *extra, int final) {
    double el = sevo_now() - p->t0;
    double rate = el > 0 ? (double)p->done / el : 0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
    char e1[16], e2[16];
    format_time(e1, sizeof e1, el);
    format_time(e2, sizeof e2, eta);
    if (p->tty) {
        int width = 24, fill = (int)(width * (double)p->done / (double)p->total);
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(p->out, "\r%s [%s] %ld/%ld %.1f/s elapsed %s eta %s%s%s\033[K%s", p->label, bar, p->done,
                p->total, rate, e1, e2, extra ? "  " : "", extra ? extra : "", final ? "\n" : "");
    } else {
        fprintf(p->out, "%s: %ld/%ld (%.1f/s, elapsed %s, eta %s)%s%s\n", p->label, p->done, p->total, rate, e1,
                e2, extra ? "  " : "", extra ? extra : "");
    }
    fflush(p->out);
}

void progress_update(sevo_progress *p, long done, const char *extra) {
    p->done = done;
    double now = sevo_now();
    if (p->tty) {
        if (now - p->last_print < 0.1 && done < p->total) return;
    } else {
        int decile = (int)(10 * done / p->total);
        if (decile <= p->last_decile && now - p->last_print < 30) return;
        p->last_decile = decile;
    }
    p->last_print = now;
    print_line(p, extra, 0);
}

void progress_finish(sevo_progress *p, const char *extra) {
    p->done = p->total;
    print_line(p, extra, 1);
}
