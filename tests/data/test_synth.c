/* test_synth.c: the synthetic world. The data set is generated once into a temporary
 * directory; the tests then check it independently of the generator: byte-identical
 * regeneration, file counts, decodable images, every answer recomputed from the
 * record's objects, the step formats, POPE balance and negatives, the measured
 * co-occurrence, and the perception parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stb/stb_image.h>

#include "core/fsutil.h"
#include "data/synth.h"

#define NUM_TRAIN 300
#define NUM_TEST 100
#define IMAGE_SIZE 32

typedef struct fixture {
    char dir[64];
    synth_options opt;
} fixture;

static void make_tmpdir(char *buf, size_t cap) {
    snprintf(buf, cap, "/tmp/sevo_synth_XXXXXX");
    assert_non_null(mkdtemp(buf));
}

static int group_setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/sevo_synth_XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    synth_options_default(&f->opt);
    f->opt.output_dir = f->dir;
    f->opt.num_train = NUM_TRAIN;
    f->opt.num_test = NUM_TEST;
    f->opt.seed = 7;
    f->opt.image_size = IMAGE_SIZE;
    sevo_error err = {{0}};
    if (synth_generate(&f->opt, &err) != 0) {
        fprintf(stderr, "synth_generate: %s\n", err.msg);
        sevo_remove_tree(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state) {
    fixture *f = *state;
    if (f) {
        sevo_remove_tree(f->dir);
        free(f);
    }
    return 0;
}

/* ---- helpers ---- */

static char *read_text(const char *dir, const char *name) {
    char path[512];
    sevo_path_join(path, sizeof path, dir, name);
    char *buf = NULL;
    sevo_error err;
    if (sevo_read_file(path, &buf, NULL, &err) != 0) fail_msg("%s", err.msg);
    return buf;
}

/* Splits JSONL text into parsed records; returns the count. */
static int load_jsonl(const char *dir, const char *name, cJSON ***out) {
    char *text = read_text(dir, name);
    int n = 0, cap = 16;
    cJSON **recs = malloc(sizeof(cJSON *) * (size_t)cap);
    assert_non_null(recs);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        if (!j) fail_msg("%s: line %d is not JSON", name, n + 1);
        if (n == cap) {
            cap *= 2;
            recs = realloc(recs, sizeof(cJSON *) * (size_t)cap);
            assert_non_null(recs);
        }
        recs[n++] = j;
    }
    free(text);
    *out = recs;
    return n;
}

static void free_records(cJSON **recs, int n) {
    for (int i = 0; i < n; i++) cJSON_Delete(recs[i]);
    free(recs);
}

static const char *str_field(const cJSON *rec, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!cJSON_IsString(v)) fail_msg("field %s missing or not a string", key);
    return v->valuestring;
}

/* The record's objects, checked for the scene invariants. */
static int record_objects(const cJSON *rec, synth_object *objs) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(rec, "objects");
    assert_true(cJSON_IsArray(arr));
    int n = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, arr) {
        assert_true(n < SYNTH_MAX_OBJECTS);
        objs[n].shape = synth_shape_index(str_field(o, "shape"));
        objs[n].color = synth_color_index(str_field(o, "color"));
        objs[n].position = synth_position_index(str_field(o, "position"));
        assert_true(objs[n].shape >= 0 && objs[n].color >= 0 && objs[n].position >= 0);
        n++;
    }
    assert_true(n >= 1 && n <= SYNTH_MAX_OBJECTS);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            assert_true(objs[i].position < objs[j].position); /* row-major, distinct cells */
            assert_false(objs[i].shape == objs[j].shape && objs[i].color == objs[j].color);
        }
    return n;
}

static int has_type(const synth_object *o, int n, int shape, int color) {
    for (int i = 0; i < n; i++)
        if (o[i].shape == shape && o[i].color == color) return i;
    return -1;
}

static int count_shape(const synth_object *o, int n, int shape) {
    int k = 0;
    for (int i = 0; i < n; i++) k += o[i].shape == shape;
    return k;
}

static int plural_index(const char *w) {
    for (int s = 0; s < SYNTH_NUM_SHAPES; s++)
        if (strcmp(w, synth_shape_plurals[s]) == 0) return s;
    return -1;
}

/* Splits a copy of text on single spaces; returns the token count. */
static int tokens(const char *text, char *buf, size_t cap, char **tok, int max) {
    snprintf(buf, cap, "%s", text);
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t && n < max; t = strtok_r(NULL, " ", &save))
        tok[n++] = t;
    return n;
}

/* Recomputes the answer of a question from the objects alone, independently of the
 * generator's code. Also returns the question type index. */
/* The finding step the world must write, rebuilt here independently of synth.c: head,
 * " :", then each object of the shape (and colour, when color >= 0) in the order of o
 * (row-major), quoted from the key on (" <c> <s> at <p>", or " <s> at <p>" for a shape
 * alone), joined by " ,"; " none" when there is none; then tail. */
static void want_quote(char *out, size_t cap, const char *head, const synth_object *o, int n, int shape,
                       int color, const char *tail) {
    size_t len = (size_t)snprintf(out, cap, "%s :", head);
    int found = 0;
    for (int i = 0; i < n && len < cap; i++) {
        if (o[i].shape != shape || (color >= 0 && o[i].color != color)) continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%s%s %s at %s", found++ ? " ," : "",
                                color >= 0 ? " " : "", color >= 0 ? synth_color_names[color] : "",
                                synth_shape_names[shape], synth_position_names[o[i].position]);
    }
    if (!found && len < cap) len += (size_t)snprintf(out + len, cap - len, " none");
    if (len < cap) snprintf(out + len, cap - len, "%s", tail);
}

/* Recomputes the answer of a question from the objects, its type, and the finding steps
 * it must open with (want_steps[0..*n_find-1]). */
static void recompute(const char *question, const synth_object *o, int n, char *ans, size_t cap,
                      int *qtype, char want_steps[2][SYNTH_TEXT_MAX], int *n_find) {
    char head[64], tail[16];
    *n_find = 1;
    char buf[256], *t[32] = {0};
    int k = tokens(question, buf, sizeof buf, t, 32);
    assert_string_equal(t[k - 1], "?");
    if (k == 6 && !strcmp(t[0], "is") && !strcmp(t[1], "there") && !strcmp(t[2], "a")) {
        int c = synth_color_index(t[3]), s = synth_shape_index(t[4]);
        assert_true(c >= 0 && s >= 0);
        snprintf(ans, cap, "%s", has_type(o, n, s, c) >= 0 ? "yes" : "no");
        *qtype = SYNTH_Q_EXIST;
        snprintf(head, sizeof head, "find %s %s", t[3], t[4]);
        want_quote(want_steps[0], SYNTH_TEXT_MAX, head, o, n, s, c, "");
    } else if (k == 6 && !strcmp(t[0], "what") && !strcmp(t[1], "color")) {
        int s = synth_shape_index(t[4]);
        assert_true(s >= 0);
        assert_int_equal(count_shape(o, n, s), 1);
        for (int i = 0; i < n; i++)
            if (o[i].shape == s) snprintf(ans, cap, "%s", synth_color_names[o[i].color]);
        *qtype = SYNTH_Q_COLOR;
        snprintf(head, sizeof head, "find %s", t[4]);
        want_quote(want_steps[0], SYNTH_TEXT_MAX, head, o, n, s, -1, "");
    } else if (k == 6 && !strcmp(t[0], "how") && !strcmp(t[1], "many")) {
        int s = plural_index(t[2]);
        assert_true(s >= 0);
        snprintf(ans, cap, "%d", count_shape(o, n, s));
        *qtype = SYNTH_Q_COUNT;
        snprintf(head, sizeof head, "find %s", t[2]);
        want_quote(want_steps[0], SYNTH_TEXT_MAX, head, o, n, s, -1, "");
    } else if (k == 7 && !strcmp(t[0], "are") && !strcmp(t[2], "more")) {
        int s1 = plural_index(t[3]), s2 = plural_index(t[5]);
        assert_true(s1 >= 0 && s2 >= 0 && s1 != s2);
        snprintf(ans, cap, "%s", count_shape(o, n, s1) > count_shape(o, n, s2) ? "yes" : "no");
        *qtype = SYNTH_Q_COMPARE;
        for (int k = 0; k < 2; k++) {
            int sk = k ? s2 : s1;
            snprintf(head, sizeof head, "count %s", t[k ? 5 : 3]);
            snprintf(tail, sizeof tail, " : %d", count_shape(o, n, sk));
            want_quote(want_steps[k], SYNTH_TEXT_MAX, head, o, n, sk, -1, tail);
        }
        *n_find = 2;
    } else {
        /* is the c1 s1 <rel: 1 or 2 words> the c2 s2 ? */
        assert_true(k == 9 || k == 10);
        assert_string_equal(t[0], "is");
        assert_string_equal(t[1], "the");
        int c1 = synth_color_index(t[2]), s1 = synth_shape_index(t[3]);
        int two = k == 10;
        assert_string_equal(t[5 + two], "the");
        int c2 = synth_color_index(t[6 + two]), s2 = synth_shape_index(t[7 + two]);
        int a = has_type(o, n, s1, c1), b = has_type(o, n, s2, c2);
        assert_true(a >= 0 && b >= 0 && a != b);
        int ra = o[a].position / 3, ca = o[a].position % 3;
        int rb = o[b].position / 3, cb = o[b].position % 3;
        int yes = 0;
        if (two && !strcmp(t[4], "left") && !strcmp(t[5], "of"))
            yes = ca < cb;
        else if (two && !strcmp(t[4], "right") && !strcmp(t[5], "of"))
            yes = ca > cb;
        else if (!two && !strcmp(t[4], "above"))
            yes = ra < rb;
        else if (!two && !strcmp(t[4], "below"))
            yes = ra > rb;
        else
            fail_msg("unknown question: %s", question);
        snprintf(ans, cap, "%s", yes ? "yes" : "no");
        *qtype = SYNTH_Q_SPATIAL;
        snprintf(head, sizeof head, "find %s %s", t[2], t[3]);
        want_quote(want_steps[0], SYNTH_TEXT_MAX, head, o, n, s1, c1, "");
        snprintf(head, sizeof head, "find %s %s", t[6 + two], t[7 + two]);
        want_quote(want_steps[1], SYNTH_TEXT_MAX, head, o, n, s2, c2, "");
        *n_find = 2;
    }
}

/* Checks a caption against the scene's n objects o: the scene's objects in order with
 * one more among them (synth_annotate): an absent type that is the partner of a present
 * object, in a free cell, in its row-major place. */
static void check_caption(const char *caption, const synth_object *o, int n) {
    synth_object back[8];
    int nb = synth_parse_perception(caption, back, 8);
    assert_int_equal(nb, n + 1);
    int x = -1;
    for (int i = 0, j = 0; i < nb; i++) {
        if (j < n && !memcmp(&back[i], &o[j], sizeof o[j])) {
            j++;
            continue;
        }
        assert_int_equal(x, -1);
        x = i;
    }
    assert_true(x >= 0);
    if (x > 0) assert_true(back[x - 1].position < back[x].position);
    if (x + 1 < nb) assert_true(back[x].position < back[x + 1].position);
    int tx = synth_type(back[x].shape, back[x].color), partner_of_present = 0;
    for (int i = 0; i < n; i++) {
        assert_int_not_equal(synth_type(o[i].shape, o[i].color), tx);
        partner_of_present |= synth_partner(synth_type(o[i].shape, o[i].color)) == tx;
    }
    assert_true(partner_of_present);
}

/* Checks one record: keys, answer, depth, perception, steps. With annotated, a train
 * record may carry a caption, right after the perception (check_caption); everything
 * else still follows the scene. Returns 1 for such a record. */
static int check_record(const cJSON *rec, int is_train, int is_pope, int annotated) {
    static const char *const keys[] = {"image", "question", "answer",  "perception",
                                       "steps", "type",     "depth",   "objects"};
    const cJSON *c = rec->child;
    int captioned = 0;
    for (int i = 0; i < 8; i++, c = c->next) {
        assert_non_null(c);
        if (i == 4 && !strcmp(c->string, "caption")) {
            assert_true(annotated && is_train);
            captioned = 1;
            c = c->next;
            assert_non_null(c);
        }
        assert_string_equal(c->string, keys[i]);
    }
    if (is_train) {
        assert_non_null(c);
        assert_string_equal(c->string, "wrong_perception");
        c = c->next;
    }
    if (is_pope) {
        assert_non_null(c);
        assert_string_equal(c->string, "pope_split");
        c = c->next;
    }
    assert_null(c);

    synth_object o[SYNTH_MAX_OBJECTS];
    int n = record_objects(rec, o);
    if (captioned) check_caption(str_field(rec, "caption"), o, n);
    const char *question = str_field(rec, "question");
    const char *answer = str_field(rec, "answer");
    char want[32];
    int qtype = -1, n_find = 0;
    char want_steps[2][SYNTH_TEXT_MAX];
    recompute(question, o, n, want, sizeof want, &qtype, want_steps, &n_find);
    if (strcmp(want, answer) != 0)
        fail_msg("\"%s\": answer \"%s\", recomputed \"%s\"", question, answer, want);
    assert_int_equal(synth_qtype_index(str_field(rec, "type")), qtype);
    const cJSON *depth = cJSON_GetObjectItemCaseSensitive(rec, "depth");
    assert_true(cJSON_IsNumber(depth));
    static const int want_depth[SYNTH_NUM_QTYPES] = {1, 2, 2, 3, 3};
    assert_int_equal(depth->valueint, want_depth[qtype]);

    /* The perception lists exactly the objects, and parses back to them. */
    const char *perception = str_field(rec, "perception");
    synth_object back[8];
    assert_int_equal(synth_parse_perception(perception, back, 8), n);
    assert_memory_equal(back, o, sizeof(synth_object) * (size_t)n);

    /* Five steps; the answer appears from step `depth` on, and the last ones re-check. */
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(rec, "steps");
    assert_int_equal(cJSON_GetArraySize(steps), SYNTH_NUM_STEPS);
    char check[64];
    snprintf(check, sizeof check, "check : %s", answer);
    int d = want_depth[qtype];
    for (int k = 0; k < SYNTH_NUM_STEPS; k++) {
        const cJSON *s = cJSON_GetArrayItem(steps, k);
        assert_true(cJSON_IsString(s));
        if (k >= d) assert_string_equal(s->valuestring, check);
        if (k + 1 == d && qtype != SYNTH_Q_EXIST) {
            /* The deciding step ends with ": <answer>". */
            size_t ls = strlen(s->valuestring), la = strlen(answer);
            assert_true(ls > la + 3);
            assert_memory_equal(s->valuestring + ls - la - 3, " : ", 3);
            assert_string_equal(s->valuestring + ls - la, answer);
        }
    }
    /* The finding steps quote the perception from their key on, exactly as rebuilt here;
     * an exist question's decides its answer at depth 1. */
    for (int k = 0; k < n_find; k++)
        assert_string_equal(cJSON_GetArrayItem(steps, k)->valuestring, want_steps[k]);

    if (is_train) {
        const char *wrong = str_field(rec, "wrong_perception");
        synth_object w[8];
        int nw = synth_parse_perception(wrong, w, 8);
        assert_true(nw >= 1);
        assert_true(strcmp(wrong, perception) != 0);
        assert_true(nw == n + 1 || nw == n - 1 || nw == n);
    }
    return captioned;
}

/* ---- tests ---- */

static void test_line_counts(void **state) {
    fixture *f = *state;
    static const struct {
        const char *name;
        int n;
    } files[] = {{"train.jsonl", NUM_TRAIN},
                 {"test.jsonl", NUM_TEST},
                 {"pope_random.jsonl", NUM_TEST},
                 {"pope_popular.jsonl", NUM_TEST},
                 {"pope_adversarial.jsonl", NUM_TEST}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *text = read_text(f->dir, files[i].name);
        int lines = 0;
        for (char *p = text; *p; p++) lines += *p == '\n';
        assert_int_equal(lines, files[i].n);
        assert_true(strlen(text) == 0 || text[strlen(text) - 1] == '\n');
        free(text);
    }
    char *world = read_text(f->dir, "world.json");
    cJSON *w = cJSON_Parse(world);
    assert_non_null(w);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(w, "positions")), 9);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(w, "partners"), "red circle")
                            ->valuestring,
                        "green triangle");
    cJSON_Delete(w);
    free(world);
}

static void test_records(void **state) {
    fixture *f = *state;
    cJSON **recs;
    int n = load_jsonl(f->dir, "train.jsonl", &recs);
    int per_type[SYNTH_NUM_QTYPES] = {0};
    for (int i = 0; i < n; i++) {
        check_record(recs[i], 1, 0, 0);
        char want[64];
        snprintf(want, sizeof want, "images/train_%06d.png", i);
        assert_string_equal(str_field(recs[i], "image"), want);
        per_type[synth_qtype_index(str_field(recs[i], "type"))]++;
    }
    /* Every type occurs; existence is the largest share (30 % of the mix). */
    for (int t = 0; t < SYNTH_NUM_QTYPES; t++) assert_true(per_type[t] > 0);
    assert_true(fabs(per_type[SYNTH_Q_EXIST] / (double)n - 0.30) < 0.08);
    free_records(recs, n);

    n = load_jsonl(f->dir, "test.jsonl", &recs);
    for (int i = 0; i < n; i++) {
        check_record(recs[i], 0, 0, 0);
        char want[64];
        snprintf(want, sizeof want, "images/test_%06d.png", i);
        assert_string_equal(str_field(recs[i], "image"), want);
    }
    free_records(recs, n);
}

static void test_images(void **state) {
    fixture *f = *state;
    static const char *const files[] = {"train.jsonl", "test.jsonl"};
    for (int k = 0; k < 2; k++) {
        cJSON **recs;
        int n = load_jsonl(f->dir, files[k], &recs);
        for (int i = 0; i < n; i++) {
            char path[512];
            sevo_path_join(path, sizeof path, f->dir, str_field(recs[i], "image"));
            int w = 0, h = 0, c = 0;
            unsigned char *px = stbi_load(path, &w, &h, &c, 0);
            if (!px) fail_msg("%s does not decode", path);
            assert_int_equal(w, IMAGE_SIZE);
            assert_int_equal(h, IMAGE_SIZE);
            assert_int_equal(c, 3);
            stbi_image_free(px);
        }
        free_records(recs, n);
    }
}

static void test_pope(void **state) {
    fixture *f = *state;
    static const char *const splits[] = {"random", "popular", "adversarial"};
    cJSON **test;
    int nt = load_jsonl(f->dir, "test.jsonl", &test);
    for (int s = 0; s < 3; s++) {
        char name[64];
        snprintf(name, sizeof name, "pope_%s.jsonl", splits[s]);
        cJSON **recs;
        int n = load_jsonl(f->dir, name, &recs);
        int yes = 0, no = 0;
        for (int i = 0; i < n; i++) {
            const cJSON *r = recs[i];
            check_record(r, 0, 1, 0);
            assert_string_equal(str_field(r, "pope_split"), splits[s]);
            assert_string_equal(str_field(r, "type"), "exist");
            const char *ans = str_field(r, "answer");
            assert_string_equal(ans, i % 2 == 0 ? "yes" : "no"); /* alternating */
            yes += !strcmp(ans, "yes");
            no += !strcmp(ans, "no");
            /* The image is a test image, and the objects are that image's. */
            int idx = -1;
            assert_int_equal(sscanf(str_field(r, "image"), "images/test_%d.png", &idx), 1);
            assert_true(idx >= 0 && idx < nt);
            assert_string_equal(str_field(r, "perception"), str_field(test[idx], "perception"));
            if (s == 2 && !strcmp(ans, "no")) {
                /* Adversarial negatives: the absent partner of a present object. */
                synth_object o[SYNTH_MAX_OBJECTS];
                int no_ = record_objects(r, o);
                char buf[128], *t[8] = {0};
                tokens(str_field(r, "question"), buf, sizeof buf, t, 8);
                int type = synth_type(synth_shape_index(t[4]), synth_color_index(t[3]));
                int is_partner = 0;
                for (int j = 0; j < no_; j++)
                    is_partner |= synth_partner(synth_type(o[j].shape, o[j].color)) == type;
                assert_true(is_partner);
            }
        }
        assert_int_equal(yes, NUM_TEST / 2);
        assert_int_equal(no, NUM_TEST / 2);
        free_records(recs, n);
    }
    free_records(test, nt);
}

/* Every file under a, recursively, equals the one under b, and b has no others. */
static int compare_trees(const char *a, const char *b) {
    DIR *d = opendir(a);
    if (!d) fail_msg("cannot open %s", a);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char pa[512], pb[512];
        sevo_path_join(pa, sizeof pa, a, e->d_name);
        sevo_path_join(pb, sizeof pb, b, e->d_name);
        if (sevo_dir_exists(pa)) {
            files += compare_trees(pa, pb);
            continue;
        }
        char *x = NULL, *y = NULL;
        size_t lx = 0, ly = 0;
        sevo_error err;
        if (sevo_read_file(pa, &x, &lx, &err) != 0 || sevo_read_file(pb, &y, &ly, &err) != 0)
            fail_msg("%s", err.msg);
        if (lx != ly || memcmp(x, y, lx) != 0) fail_msg("%s and %s differ", pa, pb);
        free(x);
        free(y);
        files++;
    }
    closedir(d);
    return files;
}

static void test_determinism(void **state) {
    fixture *f = *state;
    char dir2[64], dir3[64];
    make_tmpdir(dir2, sizeof dir2);
    make_tmpdir(dir3, sizeof dir3);
    synth_options o = f->opt;
    sevo_error err;
    o.output_dir = dir2;
    if (synth_generate(&o, &err) != 0) fail_msg("%s", err.msg);
    int na = compare_trees(f->dir, dir2);
    int nb = compare_trees(dir2, f->dir);
    assert_int_equal(na, nb);
    assert_int_equal(na, NUM_TRAIN + NUM_TEST + 6); /* images + 5 jsonl + world.json */

    /* A different seed changes the data (a small set is enough to see it). */
    o.output_dir = dir3;
    o.seed = f->opt.seed + 1;
    o.num_train = 20;
    o.num_test = 4;
    if (synth_generate(&o, &err) != 0) fail_msg("%s", err.msg);
    char *x = read_text(f->dir, "train.jsonl"), *y = read_text(dir3, "train.jsonl");
    assert_true(strncmp(x, y, strlen(y)) != 0);
    free(x);
    free(y);
    char pa[512], pb[512];
    size_t lx = 0, ly = 0;
    sevo_path_join(pa, sizeof pa, f->dir, "images/test_000000.png");
    sevo_path_join(pb, sizeof pb, dir3, "images/test_000000.png");
    if (sevo_read_file(pa, &x, &lx, &err) != 0 || sevo_read_file(pb, &y, &ly, &err) != 0)
        fail_msg("%s", err.msg);
    assert_true(lx != ly || memcmp(x, y, lx) != 0);
    free(x);
    free(y);
    sevo_remove_tree(dir2);
    sevo_remove_tree(dir3);
}

static void test_cooccurrence(void **state) {
    (void)state;
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    synth_options o;
    synth_options_default(&o);
    o.output_dir = dir;
    o.num_train = 2000;
    o.num_test = 0;
    o.image_size = 8; /* the images do not matter here; small ones are quicker */
    o.seed = 123;
    sevo_error err;
    if (synth_generate(&o, &err) != 0) fail_msg("%s", err.msg);
    cJSON **recs;
    int n = load_jsonl(dir, "train.jsonl", &recs);
    long with_partner = 0, objects = 0, added = 0;
    for (int i = 0; i < n; i++) {
        synth_object ob[SYNTH_MAX_OBJECTS];
        int k = record_objects(recs[i], ob);
        if (k < 2) continue;
        for (int a = 0; a < k; a++) {
            int p = synth_partner(synth_type(ob[a].shape, ob[a].color));
            for (int b = 0; b < k; b++) with_partner += synth_type(ob[b].shape, ob[b].color) == p;
        }
        objects += k;
        added += k - 1;
    }
    free_records(recs, n);
    double link = (double)with_partner / (double)added;
    double given = (double)with_partner / (double)objects;
    print_message("co-occurrence: partner_link_rate %.4f, P(partner | object) %.4f\n", link,
                  given);
    assert_true(fabs(link - 0.8) < 0.05);

    char *text = read_text(dir, "world.json");
    cJSON *w = cJSON_Parse(text);
    assert_non_null(w);
    cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(w, "train"), "cooccurrence_measured");
    assert_non_null(c);
    assert_true(fabs(cJSON_GetObjectItem(c, "partner_link_rate")->valuedouble - link) < 1e-4);
    assert_true(fabs(cJSON_GetObjectItem(c, "p_partner_given_object")->valuedouble - given) < 1e-4);
    cJSON_Delete(w);
    free(text);

    sevo_remove_tree(dir);

    /* With no co-occurrence, partners meet only by chance (the sampler alone). */
    sevo_rng r;
    sevo_rng_seed(&r, 3, 3);
    with_partner = added = 0;
    for (int i = 0; i < 2000; i++) {
        synth_scene sc;
        synth_scene_sample(&r, 0.0f, &sc);
        for (int a = 0; a < sc.n; a++)
            for (int b = 0; b < sc.n; b++)
                with_partner += synth_type(sc.obj[b].shape, sc.obj[b].color) ==
                                synth_partner(synth_type(sc.obj[a].shape, sc.obj[a].color));
        added += sc.n - 1;
    }
    assert_true((double)with_partner / (double)added < 0.3);
}

static void test_partner(void **state) {
    (void)state;
    int red_circle = synth_type(0, 0);
    assert_int_equal(synth_partner(red_circle), synth_type(2, 1)); /* green triangle */
    int seen[SYNTH_NUM_TYPES] = {0};
    for (int t = 0; t < SYNTH_NUM_TYPES; t++) {
        int p = synth_partner(t);
        assert_true(p >= 0 && p < SYNTH_NUM_TYPES && p != t);
        seen[p]++;
        /* Following partners returns after exactly 10 steps. */
        int x = t, steps = 0;
        do {
            x = synth_partner(x);
            steps++;
        } while (x != t);
        assert_int_equal(steps, 10);
    }
    for (int t = 0; t < SYNTH_NUM_TYPES; t++) assert_int_equal(seen[t], 1); /* a bijection */
    assert_int_equal(synth_shape_index("cross"), 3);
    assert_int_equal(synth_color_index("purple"), 4);
    assert_int_equal(synth_position_index("center"), 4);
    assert_int_equal(synth_position_index("middle center"), -1);
}

static void test_parse_perception(void **state) {
    (void)state;
    sevo_rng r;
    sevo_rng_seed(&r, 99, 1);
    char text[SYNTH_TEXT_MAX];
    for (int i = 0; i < 500; i++) {
        synth_scene s;
        synth_scene_sample(&r, 0.8f, &s);
        synth_format_perception(s.obj, s.n, text, sizeof text);
        synth_object back[SYNTH_MAX_OBJECTS];
        assert_int_equal(synth_parse_perception(text, back, SYNTH_MAX_OBJECTS), s.n);
        assert_memory_equal(back, s.obj, sizeof(synth_object) * (size_t)s.n);
        /* Wrong perceptions parse too. */
        synth_wrong_perception(&s, &r, text, sizeof text);
        synth_object w[SYNTH_MAX_OBJECTS + 1];
        assert_true(synth_parse_perception(text, w, SYNTH_MAX_OBJECTS + 1) >= 1);
    }
    synth_object o[4];
    assert_int_equal(synth_parse_perception("red circle at top left , blue square at center", o, 4),
                     2);
    assert_int_equal(o[0].shape, 0);
    assert_int_equal(o[0].color, 0);
    assert_int_equal(o[0].position, 0);
    assert_int_equal(o[1].shape, 1);
    assert_int_equal(o[1].color, 2);
    assert_int_equal(o[1].position, 4);
    /* Any order is accepted; the parser keeps the text's order. */
    assert_int_equal(synth_parse_perception("purple cross at bottom right , red circle at top left",
                                            o, 4),
                     2);
    assert_int_equal(o[0].position, 8);
    assert_int_equal(synth_parse_perception("none", o, 4), 0);
    assert_int_equal(synth_parse_perception("", o, 4), 0);
    assert_int_equal(synth_parse_perception("  ", o, 4), 0);
    static const char *const bad[] = {
        "red circle at",
        "red circle at middle center",
        "red circle top left",
        "red circle at top left ,",
        "red circle at top left , ",
        "red circle at top left blue square at center",
        "red circle at center extra",
        "Red circle at top left",
        "red star at top left",
        "none extra",
        "red circle at top",
        ", red circle at top left",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (synth_parse_perception(bad[i], o, 4) != -1) fail_msg("accepted \"%s\"", bad[i]);
    /* More objects than max. */
    assert_int_equal(synth_parse_perception("red circle at top left , blue square at center", o, 1),
                     -1);
}

/* The asked type of an existence question: every type round-trips through the question
 * the world writes; other questions and malformed ones are refused and leave *type. */
static void test_parse_exist_question(void **state) {
    (void)state;
    synth_scene empty = {0};
    for (int t = 0; t < SYNTH_NUM_TYPES; t++) {
        synth_question q;
        synth_make_exist_question(&empty, t, &q);
        int back = -1;
        assert_int_equal(synth_parse_exist_question(q.question, &back), 0);
        assert_int_equal(back, t);
    }
    int type = -1;
    assert_int_equal(synth_parse_exist_question("  is there a blue square  ", &type), 0);
    assert_int_equal(type, synth_type(synth_shape_index("square"), synth_color_index("blue")));
    static const char *const bad[] = {
        "", "is there a", "is there a blue", "is there a blue ?", "is there a square blue ?",
        "is there a blue square ? ?", "is there a blue square !", "are there blue squares ?",
        "how many blue squares ?", "is there a pink square ?", "is there a blue squares ?",
        "is there an blue square ?", "is there a blue square ? yes",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        type = -7;
        if (synth_parse_exist_question(bad[i], &type) != -1) fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(type, -7);
    }
    assert_int_equal(synth_parse_exist_question(NULL, &type), -1);
}

/* Rendering: without noise, each object's cell holds its colour, empty cells do not. */
static void test_render(void **state) {
    (void)state;
    enum { S = 48 };
    synth_scene s = {.n = 4,
                     .obj = {{0, 0, 0}, {1, 2, 2}, {2, 3, 4}, {3, 4, 7}}}; /* shape, color, pos */
    static unsigned char rgb[S * S * 3];
    sevo_rng r;
    sevo_rng_seed(&r, 5, 5);
    synth_render(&s, S, 0.0f, 1.0f, &r, rgb);
    const float cell = S / 3.0f;
    for (int p = 0; p < 9; p++) {
        int obj = -1;
        for (int i = 0; i < s.n; i++)
            if (s.obj[i].position == p) obj = i;
        /* The pixel in the cell farthest from the (corner) background colour. */
        /* Cell 1 (top center) is empty: its centre pixel is pure background. */
        const unsigned char *bg = rgb + ((S / 6) * S + S / 2) * 3;
        int best = -1, bestd = -1;
        int x0 = (int)ceilf((float)(p % 3) * cell), y0 = (int)ceilf((float)(p / 3) * cell);
        for (int y = y0; y < (int)((float)(p / 3 + 1) * cell); y++)
            for (int x = x0; x < (int)((float)(p % 3 + 1) * cell); x++) {
                const unsigned char *px = rgb + (y * S + x) * 3;
                int d = 0;
                for (int c = 0; c < 3; c++) d += abs(px[c] - bg[c]);
                if (d > bestd) {
                    bestd = d;
                    best = (y * S + x) * 3;
                }
            }
        if (obj < 0) {
            assert_true(bestd == 0);
            continue;
        }
        int nearest = -1, nd = 1 << 30;
        for (int c = 0; c < SYNTH_NUM_COLORS; c++) {
            int d = 0;
            for (int k = 0; k < 3; k++) d += abs(rgb[best + k] - synth_color_rgb[c][k]);
            if (d < nd) {
                nd = d;
                nearest = c;
            }
        }
        assert_int_equal(nearest, s.obj[obj].color);
        assert_true(nd < 60);
    }
}

/* Faint objects: with fraction 1 exactly the partner objects are marked (an object whose
 * type is the partner of another present object's), with 0 none; and a faint object is
 * blended at its opacity: without noise, its centre pixel lies that fraction of the way
 * from the background to the drawn colour. */
static void test_faint(void **state) {
    (void)state;
    sevo_rng r;
    sevo_rng_seed(&r, 9, 9);
    int marked = 0, partners = 0;
    for (int i = 0; i < 500; i++) {
        synth_scene s;
        synth_scene_sample(&r, 0.8f, &s);
        synth_scene z = s;
        synth_mark_faint(&z, 0.0f, &r);
        synth_mark_faint(&s, 1.0f, &r);
        for (int a = 0; a < s.n; a++) {
            int is_partner = 0;
            for (int b = 0; b < s.n; b++)
                is_partner |= synth_partner(synth_type(s.obj[b].shape, s.obj[b].color)) ==
                              synth_type(s.obj[a].shape, s.obj[a].color);
            assert_int_equal(s.faint[a], is_partner);
            assert_int_equal(z.faint[a], 0);
            partners += is_partner;
            marked += s.faint[a];
        }
    }
    assert_true(partners > 100); /* the co-occurrence prior makes many */
    assert_int_equal(marked, partners);

    enum { S = 48 };
    static unsigned char full[S * S * 3], faint[S * S * 3];
    synth_scene s = {.n = 1, .obj = {{1, 0, 4}}}; /* a square of colour 0 at the centre */
    sevo_rng_seed(&r, 5, 5);
    synth_render(&s, S, 0.0f, 0.25f, &r, full); /* not marked: drawn in full */
    s.faint[0] = 1;
    sevo_rng_seed(&r, 5, 5); /* the same draws: the same background and jitter */
    synth_render(&s, S, 0.0f, 0.25f, &r, faint);
    const unsigned char *bg = full + ((S / 6) * S + S / 6) * 3; /* an empty corner cell */
    const int c = ((S / 2) * S + S / 2) * 3;
    for (int k = 0; k < 3; k++) {
        float want = 0.75f * (float)bg[k] + 0.25f * (float)full[c + k];
        assert_true(fabsf((float)faint[c + k] - want) <= 1.0f);
    }
    int contrast = 0;
    for (int k = 0; k < 3; k++) contrast += abs(full[c + k] - bg[k]);
    assert_true(contrast > 60); /* the full square does stand out */
}

/* Generates the world of o into a new temporary directory (its name in dir). */
static void generate_variant(synth_options *o, char *dir, size_t cap) {
    make_tmpdir(dir, cap);
    o->output_dir = dir;
    sevo_error err;
    if (synth_generate(o, &err) != 0) fail_msg("%s", err.msg);
}

/* Asserts that the named files are the same text in both directories. */
static void assert_same_files(const char *a, const char *b, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *x = read_text(a, names[i]), *y = read_text(b, names[i]);
        assert_string_equal(x, y);
        free(x);
        free(y);
    }
}

/* How many of the NUM_TRAIN train images differ byte-wise between the two worlds. */
static int differing_train_images(const char *a, const char *b) {
    int differ = 0;
    for (int i = 0; i < NUM_TRAIN; i++) {
        char rel[64], pa[512], pb[512];
        snprintf(rel, sizeof rel, "images/train_%06d.png", i);
        sevo_path_join(pa, sizeof pa, a, rel);
        sevo_path_join(pb, sizeof pb, b, rel);
        char *x = NULL, *y = NULL;
        size_t lx = 0, ly = 0;
        sevo_error err;
        if (sevo_read_file(pa, &x, &lx, &err) != 0 || sevo_read_file(pb, &y, &ly, &err) != 0)
            fail_msg("%s", err.msg);
        differ += lx != ly || memcmp(x, y, lx) != 0;
        free(x);
        free(y);
    }
    return differ;
}

/* A world with faint partners: the same records and POPE files as without (the marks
 * draw from a stream of their own), other images, and world.json naming the options,
 * which the world without them does not. */
static void test_faint_world(void **state) {
    fixture *f = *state;
    char dir2[64];
    synth_options o = f->opt;
    o.faint_fraction = 1.0f;
    generate_variant(&o, dir2, sizeof dir2);
    static const char *const same[] = {"train.jsonl", "test.jsonl", "pope_random.jsonl",
                                       "pope_popular.jsonl", "pope_adversarial.jsonl"};
    assert_same_files(f->dir, dir2, same, sizeof same / sizeof same[0]);
    char *x = read_text(f->dir, "world.json"), *y = read_text(dir2, "world.json");
    assert_null(strstr(x, "faint_fraction"));
    assert_non_null(strstr(y, "\"faint_fraction\""));
    free(x);
    free(y);
    int differ = differing_train_images(f->dir, dir2);
    assert_true(differ > NUM_TRAIN / 10); /* scenes with a partner pair are common */
    assert_true(differ < NUM_TRAIN);      /* one-object scenes have no partner */
    sevo_remove_tree(dir2);
}

/* synth_annotate: with noise 0 the scene itself; with noise 1 the scene and one more
 * object in its row-major place: an absent partner of a present object in a free cell. */
static void test_annotate(void **state) {
    (void)state;
    sevo_rng r;
    sevo_rng_seed(&r, 3, 3);
    for (int i = 0; i < 500; i++) {
        synth_scene s, a;
        synth_scene_sample(&r, 0.8f, &s);
        assert_int_equal(synth_annotate(&s, 0.0f, &r, &a), 0);
        assert_int_equal(a.n, s.n);
        assert_memory_equal(a.obj, s.obj, sizeof(synth_object) * (size_t)s.n);
        assert_int_equal(synth_annotate(&s, 1.0f, &r, &a), 1); /* this world always has one */
        assert_int_equal(a.n, s.n + 1);
        int x = -1;
        for (int k = 0, j = 0; k < a.n; k++) {
            if (k > 0) assert_true(a.obj[k - 1].position < a.obj[k].position);
            if (j < s.n && !memcmp(&a.obj[k], &s.obj[j], sizeof s.obj[j])) {
                j++;
            } else {
                assert_int_equal(x, -1); /* one object added, the scene's in order */
                x = k;
            }
        }
        assert_true(x >= 0);
        for (int k = 0; k < a.n; k++) assert_int_equal(a.faint[k], 0);
        int t = synth_type(a.obj[x].shape, a.obj[x].color), partner_of_present = 0;
        for (int k = 0; k < s.n; k++) {
            assert_int_not_equal(synth_type(s.obj[k].shape, s.obj[k].color), t);
            partner_of_present |= synth_partner(synth_type(s.obj[k].shape, s.obj[k].color)) == t;
        }
        assert_true(partner_of_present);
    }
}

/* A world with annotation noise: test, POPE files and every image as without it (the
 * annotations draw from a stream of their own and never reach the pixels); each train
 * record as without it, with or without a caption that names one absent partner more
 * (check_record); about the asked share of them with one; and world.json naming the
 * option and the count, which the world without it does not. */
static void test_annotation_world(void **state) {
    fixture *f = *state;
    char dir2[64];
    synth_options o = f->opt;
    o.annotation_noise = 0.5f;
    generate_variant(&o, dir2, sizeof dir2);
    static const char *const same[] = {"test.jsonl", "pope_random.jsonl", "pope_popular.jsonl",
                                       "pope_adversarial.jsonl"};
    assert_same_files(f->dir, dir2, same, sizeof same / sizeof same[0]);
    assert_int_equal(differing_train_images(f->dir, dir2), 0);
    cJSON **clean, **recs;
    int n = load_jsonl(f->dir, "train.jsonl", &clean);
    assert_int_equal(load_jsonl(dir2, "train.jsonl", &recs), n);
    int noisy = 0;
    for (int i = 0; i < n; i++) {
        noisy += check_record(recs[i], 1, 0, 1);
        /* everything but the caption as without the noise */
        cJSON_DeleteItemFromObjectCaseSensitive(recs[i], "caption");
        char *x = cJSON_PrintUnformatted(clean[i]), *y = cJSON_PrintUnformatted(recs[i]);
        assert_string_equal(x, y);
        free(x);
        free(y);
    }
    free_records(clean, n);
    free_records(recs, n);
    assert_true(noisy > NUM_TRAIN * 3 / 10 && noisy < NUM_TRAIN * 7 / 10);
    char *x = read_text(f->dir, "world.json"), *y = read_text(dir2, "world.json");
    assert_null(strstr(x, "annotation_noise"));
    assert_null(strstr(x, "noisy_annotations"));
    cJSON *w = cJSON_Parse(y);
    assert_non_null(w);
    const cJSON *opt = cJSON_GetObjectItem(w, "options"), *train = cJSON_GetObjectItem(w, "train");
    assert_true(fabs(cJSON_GetObjectItem(opt, "annotation_noise")->valuedouble - 0.5) < 1e-9);
    assert_int_equal(cJSON_GetObjectItem(train, "noisy_annotations")->valueint, noisy);
    cJSON_Delete(w);
    free(x);
    free(y);
    sevo_remove_tree(dir2);
}

/* With caption reasoning, each captioned train record also carries its question's trace
 * and answer on the caption's scene, checked against the independent recomputation on
 * the caption's objects; without those two fields the record is the annotation-only
 * world's, byte for byte; only a colour question whose shape the caption names twice has
 * none; and world.json names the option and both counts. */
static void test_caption_reasoning_world(void **state) {
    fixture *f = *state;
    char dir_a[64], dir_c[64];
    synth_options a = f->opt, c = f->opt;
    a.annotation_noise = c.annotation_noise = 0.5f;
    c.caption_reasoning = 1;
    generate_variant(&a, dir_a, sizeof dir_a);
    generate_variant(&c, dir_c, sizeof dir_c);
    static const char *const same[] = {"test.jsonl", "pope_random.jsonl", "pope_popular.jsonl",
                                       "pope_adversarial.jsonl"};
    assert_same_files(dir_a, dir_c, same, sizeof same / sizeof same[0]);
    cJSON **plain, **recs;
    int n = load_jsonl(dir_a, "train.jsonl", &plain);
    assert_int_equal(load_jsonl(dir_c, "train.jsonl", &recs), n);
    int traces = 0, differ = 0, captioned = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *cap = cJSON_GetObjectItemCaseSensitive(recs[i], "caption");
        const cJSON *steps = cJSON_GetObjectItemCaseSensitive(recs[i], "caption_steps");
        const cJSON *ans = cJSON_GetObjectItemCaseSensitive(recs[i], "caption_answer");
        assert_int_equal(steps != NULL, ans != NULL);
        captioned += cap != NULL;
        synth_object o[8];
        int no = cap ? synth_parse_perception(cap->valuestring, o, 8) : 0;
        const char *question = str_field(recs[i], "question");
        if (cap && !steps) {
            /* the one question a caption's scene cannot take */
            assert_string_equal(str_field(recs[i], "type"), "color");
            char buf[256], *t[32] = {0};
            tokens(question, buf, sizeof buf, t, 32);
            assert_int_equal(count_shape(o, no, synth_shape_index(t[4])), 2);
        }
        if (steps) {
            assert_non_null(cap);
            traces++;
            char want[32], want_steps[2][SYNTH_TEXT_MAX];
            int qtype, n_find;
            recompute(question, o, no, want, sizeof want, &qtype, want_steps, &n_find);
            assert_string_equal(ans->valuestring, want);
            differ += strcmp(want, str_field(recs[i], "answer")) != 0;
            assert_int_equal(cJSON_GetArraySize(steps), SYNTH_NUM_STEPS);
            for (int k = 0; k < n_find; k++)
                assert_string_equal(cJSON_GetArrayItem(steps, k)->valuestring, want_steps[k]);
            char check[64];
            snprintf(check, sizeof check, "check : %s", want);
            assert_string_equal(cJSON_GetArrayItem(steps, SYNTH_NUM_STEPS - 1)->valuestring, check);
            /* right after the steps, in that order */
            assert_ptr_equal(cJSON_GetObjectItemCaseSensitive(recs[i], "steps")->next, steps);
            assert_ptr_equal(steps->next, ans);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(recs[i], "caption_steps");
        cJSON_DeleteItemFromObjectCaseSensitive(recs[i], "caption_answer");
        char *x = cJSON_PrintUnformatted(plain[i]), *y = cJSON_PrintUnformatted(recs[i]);
        assert_string_equal(x, y);
        free(x);
        free(y);
    }
    free_records(plain, n);
    free_records(recs, n);
    assert_true(traces > captioned * 8 / 10 && traces <= captioned);
    assert_true(differ > 0 && differ < traces);
    char *x = read_text(dir_a, "world.json"), *y = read_text(dir_c, "world.json");
    assert_null(strstr(x, "caption_reasoning"));
    assert_null(strstr(x, "caption_traces"));
    cJSON *w = cJSON_Parse(y);
    assert_non_null(w);
    const cJSON *opt = cJSON_GetObjectItem(w, "options"), *train = cJSON_GetObjectItem(w, "train");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(opt, "caption_reasoning")));
    assert_int_equal(cJSON_GetObjectItem(train, "caption_traces")->valueint, traces);
    assert_int_equal(cJSON_GetObjectItem(train, "caption_answers_differ")->valueint, differ);
    cJSON_Delete(w);
    free(x);
    free(y);
    sevo_remove_tree(dir_a);
    sevo_remove_tree(dir_c);
}

/* synth_question_on_scene: on the question's own scene it rebuilds the question exactly;
 * on a scene with one object more the text stays and the answer is that scene's; it
 * refuses a colour question whose shape is there twice and a spatial question about an
 * object that is not there. */
static void test_question_on_scene(void **state) {
    (void)state;
    sevo_rng r;
    sevo_rng_seed(&r, 5, 5);
    for (int i = 0; i < 400; i++) {
        synth_scene s, cap;
        synth_scene_sample(&r, 0.8f, &s);
        synth_question q, back;
        int qtype = (int)sevo_rng_below(&r, SYNTH_NUM_QTYPES);
        if (synth_make_question(&s, qtype, &r, &q)) continue;
        assert_int_equal(synth_question_on_scene(&q, &s, &back), 0);
        assert_string_equal(back.question, q.question);
        assert_string_equal(back.answer, q.answer);
        for (int k = 0; k < SYNTH_NUM_STEPS; k++) assert_string_equal(back.steps[k], q.steps[k]);
        assert_int_equal(back.depth, q.depth);
        if (!synth_annotate(&s, 1.0f, &r, &cap)) continue;
        if (synth_question_on_scene(&q, &cap, &back)) {
            assert_int_equal(q.qtype, SYNTH_Q_COLOR);
            continue;
        }
        assert_string_equal(back.question, q.question);
        char want[32], want_steps[2][SYNTH_TEXT_MAX];
        int t, n_find;
        recompute(q.question, cap.obj, cap.n, want, sizeof want, &t, want_steps, &n_find);
        assert_string_equal(back.answer, want);
        for (int k = 0; k < n_find; k++) assert_string_equal(back.steps[k], want_steps[k]);
    }
    synth_scene two = {.n = 2, .obj = {{0, 0, 0}, {1, 1, 4}}};
    synth_scene circles = {.n = 3, .obj = {{0, 0, 0}, {1, 1, 4}, {0, 2, 8}}};
    synth_scene one = {.n = 1, .obj = {{0, 0, 0}}};
    synth_question q, out;
    sevo_rng_seed(&r, 1, 1);
    int seen_color = 0, seen_spatial = 0;
    for (int i = 0; i < 64; i++) {
        if (synth_make_question(&two, SYNTH_Q_COLOR, &r, &q) == 0 && !strcmp(q.question, "what color is the circle ?")) {
            assert_int_equal(synth_question_on_scene(&q, &circles, &out), -1);
            seen_color = 1;
        }
        assert_int_equal(synth_make_question(&two, SYNTH_Q_SPATIAL, &r, &q), 0);
        assert_int_equal(synth_question_on_scene(&q, &one, &out), -1);
        seen_spatial = 1;
    }
    assert_true(seen_color && seen_spatial);
}

static void test_questions_unsupported(void **state) {
    (void)state;
    synth_scene one = {.n = 1, .obj = {{0, 0, 4}}};
    synth_scene two_circles = {.n = 2, .obj = {{0, 0, 0}, {0, 1, 1}}};
    sevo_rng r, r0;
    sevo_rng_seed(&r, 1, 1);
    r0 = r;
    synth_question q;
    assert_int_equal(synth_make_question(&one, SYNTH_Q_SPATIAL, &r, &q), -1);
    assert_int_equal(synth_make_question(&two_circles, SYNTH_Q_COLOR, &r, &q), -1);
    assert_memory_equal(&r, &r0, sizeof r); /* untouched: the fallback stays deterministic */
    assert_int_equal(synth_make_question(&two_circles, SYNTH_Q_COUNT, &r, &q), 0);
    assert_int_equal(synth_make_question(&one, SYNTH_Q_COLOR, &r, &q), 0);
    assert_string_equal(q.question, "what color is the circle ?");
    assert_string_equal(q.answer, "red");
    assert_string_equal(q.steps[0], "find circle : circle at center");
    assert_string_equal(q.steps[1], "color : red");
    assert_string_equal(q.steps[4], "check : red");
    synth_make_exist_question(&one, synth_type(2, 1), &q);
    assert_string_equal(q.question, "is there a green triangle ?");
    assert_string_equal(q.answer, "no");
    assert_string_equal(q.steps[0], "find green triangle : none");
    synth_make_exist_question(&two_circles, synth_type(0, 1), &q);
    assert_string_equal(q.steps[0], "find green circle : green circle at top center");
    /* count questions until both kinds have come: the shape present, and one absent */
    int seen_present = 0, seen_absent = 0;
    for (int i = 0; i < 64 && !(seen_present && seen_absent); i++) {
        assert_int_equal(synth_make_question(&two_circles, SYNTH_Q_COUNT, &r, &q), 0);
        if (!strcmp(q.question, "how many circles are there ?")) {
            assert_string_equal(q.steps[0], "find circles : circle at top left , circle at top center");
            assert_string_equal(q.steps[1], "count : 2");
            seen_present = 1;
        } else {
            assert_string_equal(strstr(q.steps[0], " : "), " : none");
            assert_string_equal(q.steps[1], "count : 0");
            seen_absent = 1;
        }
    }
    assert_true(seen_present && seen_absent);
    assert_int_equal(synth_make_question(&two_circles, SYNTH_Q_COMPARE, &r, &q), 0);
    const char *circles = strstr(q.steps[0], "count circles") ? q.steps[0] : q.steps[1];
    assert_string_equal(circles, "count circles : circle at top left , circle at top center : 2");
    const char *other = circles == q.steps[0] ? q.steps[1] : q.steps[0];
    assert_string_equal(strstr(other, " : "), " : none : 0");
    char p[SYNTH_TEXT_MAX];
    synth_format_perception(two_circles.obj, 2, p, sizeof p);
    assert_string_equal(p, "red circle at top left , green circle at top center");
    synth_format_perception(NULL, 0, p, sizeof p);
    assert_string_equal(p, "none");
}

static void test_bad_options(void **state) {
    (void)state;
    synth_options o;
    synth_options_default(&o);
    o.output_dir = "/tmp/sevo_synth_never_created";
    sevo_error err = {{0}};
    o.image_size = 4;
    assert_int_equal(synth_generate(&o, &err), -1);
    assert_non_null(strstr(err.msg, "image_size"));
    o.image_size = 32;
    o.cooccurrence = 1.5f;
    assert_int_equal(synth_generate(&o, &err), -1);
    assert_non_null(strstr(err.msg, "cooccurrence"));
    o.cooccurrence = 0.8f;
    o.faint_fraction = -0.1f;
    assert_int_equal(synth_generate(&o, &err), -1);
    assert_non_null(strstr(err.msg, "faint_fraction"));
    o.faint_fraction = 0.5f;
    o.faint_contrast = 0.0f;
    assert_int_equal(synth_generate(&o, &err), -1);
    assert_non_null(strstr(err.msg, "faint_contrast"));
    o.faint_contrast = 0.25f;
    o.annotation_noise = 1.5f;
    assert_int_equal(synth_generate(&o, &err), -1);
    assert_non_null(strstr(err.msg, "annotation_noise"));
    /* caption reasoning without captions would be a world without the option */
    o.annotation_noise = 0.0f;
    o.caption_reasoning = 1;
    assert_int_equal(synth_generate(&o, &err), -1);
    assert_non_null(strstr(err.msg, "caption_reasoning needs annotation_noise"));
    assert_false(sevo_dir_exists("/tmp/sevo_synth_never_created"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_counts),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_images),
        cmocka_unit_test(test_pope),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_cooccurrence),
        cmocka_unit_test(test_partner),
        cmocka_unit_test(test_parse_perception),
        cmocka_unit_test(test_parse_exist_question),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_faint),
        cmocka_unit_test(test_faint_world),
        cmocka_unit_test(test_annotate),
        cmocka_unit_test(test_annotation_world),
        cmocka_unit_test(test_caption_reasoning_world),
        cmocka_unit_test(test_question_on_scene),
        cmocka_unit_test(test_questions_unsupported),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
