/* progress.h: progress reporting for long work. On a terminal: one self-overwriting
 * line with a bar, rate and ETA. Otherwise (logs, CI): a plain line every 10% or every
 * 30 seconds, whichever comes first, so logs stay short. */
#ifndef SEVO_CORE_PROGRESS_H
#define SEVO_CORE_PROGRESS_H

#include <stdio.h>

typedef struct sevo_progress {
    FILE *out;
    const char *label;
    long total;
    long done;
    double t0, last_print;
    int tty;
    int last_decile;
} sevo_progress;

void progress_start(sevo_progress *p, FILE *out, const char *label, long total);
/* Sets the amount done; extra (may be NULL) is appended to the line, e.g. "acc 0.81". */
void progress_update(sevo_progress *p, long done, const char *extra);
void progress_finish(sevo_progress *p, const char *extra);

#endif
