/* dataset.h: training and evaluation samples read from JSONL (DESIGN §4).
 *
 * One JSON object a line, in the reference's format
 *   {"image": "path", "question": "...", "answer": "..."}
 * with optional "perception", "caption", "steps", "caption_steps", "caption_answer",
 * "type", "depth", "wrong_perception"
 * ("objects" is accepted and ignored), or in the LLaVA format
 *   {"image": "path", "conversations": [{"from": "human", "value": "<image>\nQ"},
 *                                       {"from": "gpt", "value": "A"}, ...]}
 * which expands into one sample per human->gpt pair. Image paths are resolved against
 * the JSONL file's directory unless absolute. */
#ifndef SEVO_DATA_DATASET_H
#define SEVO_DATA_DATASET_H

#include "core/error.h"

typedef struct sevo_sample {
    char *image;      /* resolved path; NULL for a text-only sample */
    char *question;   /* required */
    char *answer;     /* required */
    char *perception; /* optional: NULL; the description the steps and answer follow */
    /* optional: NULL; an annotator's description of the image, which may name what is not
     * there. When given, the perception step is trained toward it instead of perception
     * (docs/synthetic-world.md, annotation noise). */
    char *caption;
    char **steps;     /* optional: NULL, n_steps 0 */
    int n_steps;
    /* optional (NULL, 0), with a caption, and both or neither: the trace and answer as
     * written from the caption, which SFT trains the perceive-and-reason trace on
     * instead (reasoning data written from captions). answer stays the ground truth. */
    char **caption_steps;
    int n_caption_steps;
    char *caption_answer;
    char *type;             /* optional: NULL */
    int depth;              /* optional: 0 */
    char *wrong_perception; /* optional: NULL */
    int line;               /* 1-based line in the file */
} sevo_sample;

typedef struct sevo_dataset {
    sevo_sample *samples;
    int n;
    char path[1024];
} sevo_dataset;

/* Loads path into ds (which is overwritten; free it with dataset_free). A bad line is an
 * error "path:LINE: field 'answer': missing" unless skip_bad_lines, in which case it is
 * reported on stderr as "warning: path:LINE: ... (skipped)" and left out. A file with no
 * samples is an error. On error ds is left empty. */
int dataset_load_jsonl(sevo_dataset *ds, const char *path, int skip_bad_lines, sevo_error *err);
void dataset_free(sevo_dataset *ds);

#endif
