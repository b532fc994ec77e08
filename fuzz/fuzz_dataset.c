/* fuzz_dataset.c: libFuzzer target for the dataset reader, dataset_load_jsonl
 * (src/data/dataset.c, over the line loop of src/data/jsonl.c): the input is a
 * train/test JSONL file, in the reference's format or LLaVA's conversations, read once
 * strictly and once with skip_bad_lines, the two ways sevo reads one.
 *
 * Properties checked besides surviving the input: a file that loads strictly loads
 * with skipping too, to the same samples; every sample has its question and answer, a
 * line number inside the file, and as many steps as it says; on failure the dataset is
 * left empty and the error says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_lines(const uint8_t *data, size_t size) {
    int n = 1;
    for (size_t i = 0; i < size; i++) n += data[i] == '\n';
    return n;
}

static int same(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* A text field comes from the file (JSON escapes only shorten it): it cannot be longer.
 * Reading it also lets ASan see a field that points at freed or foreign memory. */
static int fits(const char *s, size_t size) { return !s || strlen(s) <= size; }

static void check_samples(const sevo_dataset *ds, int lines, size_t size) {
    for (int i = 0; i < ds->n; i++) {
        const sevo_sample *s = &ds->samples[i];
        FUZZ_CHECK(s->question && s->answer);
        FUZZ_CHECK(s->line >= 1 && s->line <= lines);
        FUZZ_CHECK(s->depth >= 0 && s->n_steps >= 0);
        FUZZ_CHECK(s->n_steps == 0 || s->steps);
        FUZZ_CHECK(fits(s->question, size) && fits(s->answer, size) && fits(s->perception, size) &&
                   fits(s->type, size) && fits(s->wrong_perception, size));
        FUZZ_CHECK(fits(s->image, size + 1100)); /* joined to the file's directory */
        for (int k = 0; k < s->n_steps; k++) FUZZ_CHECK(fits(s->steps[k], size));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[1100];
    if (!path[0]) fuzz_path(path, sizeof path, "data.jsonl");
    fuzz_write(path, data, size);
    int lines = count_lines(data, size);

    sevo_dataset strict, lenient;
    sevo_error err;
    int rc_strict = dataset_load_jsonl(&strict, path, 0, &err);
    if (rc_strict != 0) FUZZ_CHECK(strict.n == 0 && strict.samples == NULL && err.msg[0]);
    int rc_lenient = dataset_load_jsonl(&lenient, path, 1, &err);
    if (rc_lenient != 0)
        FUZZ_CHECK(lenient.n == 0 && lenient.samples == NULL && err.msg[0]);
    else
        FUZZ_CHECK(lenient.n > 0);
    check_samples(&strict, lines, size);
    check_samples(&lenient, lines, size);

    if (rc_strict == 0) {
        FUZZ_CHECK(rc_lenient == 0 && lenient.n == strict.n);
        for (int i = 0; i < strict.n; i++) {
            const sevo_sample *a = &strict.samples[i], *b = &lenient.samples[i];
            FUZZ_CHECK(same(a->question, b->question) && same(a->answer, b->answer) &&
                       same(a->image, b->image) && a->line == b->line && a->n_steps == b->n_steps);
        }
    }
    dataset_free(&strict);
    dataset_free(&lenient);
    return 0;
}
