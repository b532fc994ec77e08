/* preferences.h: preference pairs for SR-DPO (DESIGN §4), read and written as JSONL in
 * the reference's format
 *   {"image_path", "question", "ground_truth", "chosen", "rejected", "iteration"}
 * Reading also accepts "winner"/"loser" for chosen/rejected and "image" for image_path.
 * Every pair needs its image (SR-DPO conditions on it; the reference's trainer drops it
 * and sevo must not), a question, and non-empty chosen and rejected texts; the image
 * file must exist when the file is read, so a bad pair is reported with its line before
 * any training starts. Image paths are relative to the JSONL file's directory unless
 * absolute. */
#ifndef SEVO_DATA_PREFERENCES_H
#define SEVO_DATA_PREFERENCES_H

#include <stdio.h>

#include "core/error.h"

typedef struct sevo_preference {
    char *image;        /* resolved path */
    char *question;
    char *ground_truth; /* optional: NULL */
    char *chosen;       /* y_w */
    char *rejected;     /* y_l */
    int iteration;      /* the refinement round that produced chosen (0 if absent) */
    int line;           /* 1-based line in the file */
} sevo_preference;

typedef struct sevo_preferences {
    sevo_preference *v;
    int n;
    char path[1024];
} sevo_preferences;

int preferences_load_jsonl(sevo_preferences *p, const char *path, int skip_bad_lines, sevo_error *err);
void preferences_free(sevo_preferences *p);

/* Writes one pair as a JSONL line (image_path as given). */
int preference_write(FILE *f, const char *image_path, const char *question, const char *ground_truth,
                     const char *chosen, const char *rejected, int iteration, sevo_error *err);

#endif
