/* fuzz_preferences.c: libFuzzer target for the preference-pair reader,
 * preferences_load_jsonl (src/data/preferences.c, over src/data/jsonl.c): the input is
 * the preferences.jsonl that SR-DPO trains on, read strictly and with skip_bad_lines.
 * The scratch directory holds an image "img.png" (and "images/a.png"), so that pairs
 * naming it get past the check that the image exists, to the rest of the parser.
 *
 * Properties checked besides surviving the input: a file that loads strictly loads
 * with skipping too, to as many pairs; and the pairs, written back by
 * preference_write (as the IPR data engine writes them), read back as the same pairs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/preferences.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *or_empty(const char *s) { return s ? s : ""; }

/* Text comes from the file (JSON escapes only shorten it), the image path is joined to
 * the file's directory; reading them also lets ASan check where they point. */
static void check_pairs(const sevo_preferences *p, size_t size) {
    for (int i = 0; i < p->n; i++) {
        const sevo_preference *x = &p->v[i];
        FUZZ_CHECK(x->image && x->question && x->chosen && x->rejected);
        FUZZ_CHECK(x->chosen[0] && x->rejected[0] && x->iteration >= 0 && x->line >= 1);
        FUZZ_CHECK(strlen(x->question) <= size && strlen(x->chosen) <= size &&
                   strlen(x->rejected) <= size && strlen(or_empty(x->ground_truth)) <= size);
        FUZZ_CHECK(strlen(x->image) <= size + 1100);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[1100], rt_path[1100];
    if (!path[0]) {
        char img[1100];
        fuzz_write(fuzz_path(img, sizeof img, "img.png"), "", 0);
        FUZZ_CHECK(mkdir(fuzz_path(img, sizeof img, "images"), 0700) == 0);
        fuzz_write(fuzz_path(img, sizeof img, "images/a.png"), "", 0);
        fuzz_path(rt_path, sizeof rt_path, "written.jsonl");
        fuzz_path(path, sizeof path, "preferences.jsonl");
    }
    fuzz_write(path, data, size);

    sevo_preferences strict, lenient;
    sevo_error err;
    int rc_strict = preferences_load_jsonl(&strict, path, 0, &err);
    if (rc_strict != 0) FUZZ_CHECK(strict.n == 0 && strict.v == NULL && err.msg[0]);
    int rc_lenient = preferences_load_jsonl(&lenient, path, 1, &err);
    if (rc_lenient != 0) FUZZ_CHECK(lenient.n == 0 && lenient.v == NULL && err.msg[0]);
    check_pairs(&strict, size);
    check_pairs(&lenient, size);
    if (rc_strict == 0) FUZZ_CHECK(rc_lenient == 0 && lenient.n == strict.n);

    if (rc_lenient == 0) {
        FILE *f = fopen(rt_path, "w");
        FUZZ_CHECK(f != NULL);
        for (int i = 0; i < lenient.n; i++) {
            const sevo_preference *x = &lenient.v[i];
            FUZZ_CHECK(preference_write(f, x->image, x->question, x->ground_truth, x->chosen,
                                        x->rejected, x->iteration, &err) == 0);
        }
        FUZZ_CHECK(fclose(f) == 0);
        sevo_preferences back;
        FUZZ_CHECK(preferences_load_jsonl(&back, rt_path, 0, &err) == 0);
        FUZZ_CHECK(back.n == lenient.n);
        for (int i = 0; i < back.n; i++) {
            const sevo_preference *x = &lenient.v[i], *y = &back.v[i];
            /* image_path is written as resolved, so it reads back unchanged; an absent
             * ground truth is written as "". */
            FUZZ_CHECK(strcmp(x->image, y->image) == 0 && strcmp(x->question, y->question) == 0 &&
                       strcmp(or_empty(x->ground_truth), or_empty(y->ground_truth)) == 0 &&
                       strcmp(x->chosen, y->chosen) == 0 && strcmp(x->rejected, y->rejected) == 0 &&
                       x->iteration == y->iteration && y->line == i + 1);
        }
        preferences_free(&back);
    }
    preferences_free(&strict);
    preferences_free(&lenient);
    return 0;
}
