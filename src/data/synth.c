/* synth.c: the synthetic visual world (DESIGN §2): scene sampling with a co-occurrence
 * prior, anti-aliased noisy rendering, questions with exact answers and K-step traces,
 * wrong perceptions, POPE splits, and synth_generate, which writes the data set.
 *
 * Determinism: every sample draws from its own PCG32 generators, seeded from
 * (seed, purpose, index). So sample i of a split is the same whatever num_train or
 * num_test is, and scene, faint-mark, annotation, question, rendering and
 * wrong-perception draws never shift each other when one of them changes. */
#include "data/synth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stb/stb_image_write.h>
#include <unistd.h>

#include "core/fsutil.h"

const char *const synth_shape_names[SYNTH_NUM_SHAPES] = {"circle", "square", "triangle",
                                                         "cross"};
const char *const synth_shape_plurals[SYNTH_NUM_SHAPES] = {"circles", "squares", "triangles",
                                                           "crosses"};
const char *const synth_color_names[SYNTH_NUM_COLORS] = {"red", "green", "blue", "yellow",
                                                         "purple"};
const unsigned char synth_color_rgb[SYNTH_NUM_COLORS][3] = {
    {220, 40, 40}, {40, 170, 60}, {50, 80, 220}, {225, 205, 40}, {150, 60, 190}};
const char *const synth_position_names[SYNTH_NUM_POSITIONS] = {
    "top left",    "top center", "top right",     "middle left",  "center",
    "middle right", "bottom left", "bottom center", "bottom right"};
const char *const synth_qtype_names[SYNTH_NUM_QTYPES] = {"exist", "color", "count", "spatial",
                                                         "compare"};
const int synth_qtype_depth[SYNTH_NUM_QTYPES] = {1, 2, 2, 3, 3};
const char *const synth_relation_names[SYNTH_NUM_RELATIONS] = {"left of", "right of", "above",
                                                               "below"};

/* Question-type mix of the train and test splits, in synth_qtype order. */
static const float k_qtype_mix[SYNTH_NUM_QTYPES] = {0.30f, 0.15f, 0.20f, 0.20f, 0.15f};
/* When a scene cannot support the drawn type, the type of the same depth that always
 * can: color -> count, spatial -> compare (exist, count and compare always work). */
static const int k_qtype_fallback[SYNTH_NUM_QTYPES] = {SYNTH_Q_EXIST, SYNTH_Q_COUNT,
                                                       SYNTH_Q_COUNT, SYNTH_Q_COMPARE,
                                                       SYNTH_Q_COMPARE};
/* P(a wrong perception is a hallucinated partner rather than a dropped object). */
static const float k_wrong_add_prob = 0.6f;
/* POPE "popular" negatives are drawn among this many most frequent absent types. */
enum { POPE_POPULAR_TOP = 3 };

static int name_index(const char *const *table, int n, const char *name) {
    if (!name) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(table[i], name) == 0) return i;
    return -1;
}

int synth_shape_index(const char *name) {
    return name_index(synth_shape_names, SYNTH_NUM_SHAPES, name);
}
int synth_color_index(const char *name) {
    return name_index(synth_color_names, SYNTH_NUM_COLORS, name);
}
int synth_position_index(const char *name) {
    return name_index(synth_position_names, SYNTH_NUM_POSITIONS, name);
}
int synth_qtype_index(const char *name) {
    return name_index(synth_qtype_names, SYNTH_NUM_QTYPES, name);
}

int synth_type(int shape, int color) { return shape * SYNTH_NUM_COLORS + color; }
int synth_type_shape(int type) { return type / SYNTH_NUM_COLORS; }
int synth_type_color(int type) { return type % SYNTH_NUM_COLORS; }

int synth_partner(int type) {
    int s = synth_type_shape(type), c = synth_type_color(type);
    return synth_type((s + 2) % SYNTH_NUM_SHAPES, (c + 1) % SYNTH_NUM_COLORS);
}

static int object_type(const synth_object *o) { return synth_type(o->shape, o->color); }

/* Marks the types present in a scene. */
static void present_types(const synth_scene *s, int present[SYNTH_NUM_TYPES]) {
    memset(present, 0, sizeof(int) * SYNTH_NUM_TYPES);
    for (int i = 0; i < s->n; i++) present[object_type(&s->obj[i])] = 1;
}

/* Indices of the objects whose partner is absent: the ones a co-occurrence prior would
 * "complete" and a hallucinating model would. */
static int objects_with_absent_partner(const synth_scene *s, int idx[SYNTH_SCENE_CAP]) {
    int present[SYNTH_NUM_TYPES];
    present_types(s, present);
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (!present[synth_partner(object_type(&s->obj[i]))]) idx[k++] = i;
    return k;
}

/* A uniform type absent from the scene (there are always at least 16). */
static int uniform_absent_type(const synth_scene *s, sevo_rng *r) {
    int present[SYNTH_NUM_TYPES], absent[SYNTH_NUM_TYPES], k = 0;
    present_types(s, present);
    for (int t = 0; t < SYNTH_NUM_TYPES; t++)
        if (!present[t]) absent[k++] = t;
    return absent[sevo_rng_below(r, (uint32_t)k)];
}

static void sort_by_position(synth_object *o, int n) {
    for (int i = 1; i < n; i++) {
        synth_object x = o[i];
        int j = i - 1;
        while (j >= 0 && o[j].position > x.position) {
            o[j + 1] = o[j];
            j--;
        }
        o[j + 1] = x;
    }
}

/* Picks a uniform free cell of the scene. */
static int uniform_free_cell(const synth_scene *s, sevo_rng *r) {
    int used[SYNTH_NUM_POSITIONS] = {0}, free_cells[SYNTH_NUM_POSITIONS], k = 0;
    for (int i = 0; i < s->n; i++) used[s->obj[i].position] = 1;
    for (int p = 0; p < SYNTH_NUM_POSITIONS; p++)
        if (!used[p]) free_cells[k++] = p;
    return free_cells[sevo_rng_below(r, (uint32_t)k)];
}

void synth_scene_sample(sevo_rng *r, float cooccurrence, synth_scene *s) {
    int n = 1 + (int)sevo_rng_below(r, SYNTH_MAX_OBJECTS);
    s->n = 0;
    int t = (int)sevo_rng_below(r, SYNTH_NUM_TYPES);
    while (1) {
        s->obj[s->n].shape = synth_type_shape(t);
        s->obj[s->n].color = synth_type_color(t);
        s->obj[s->n].position = -1;
        s->n++;
        if (s->n >= n) break;
        /* u is drawn before looking for a partner, so P(partner) is exactly
         * `cooccurrence` whenever one is available. */
        float u = sevo_rng_uniform(r);
        int idx[SYNTH_SCENE_CAP];
        int k = objects_with_absent_partner(s, idx);
        if (u < cooccurrence && k > 0)
            t = synth_partner(object_type(&s->obj[idx[sevo_rng_below(r, (uint32_t)k)]]));
        else
            t = uniform_absent_type(s, r);
    }
    /* Cells: each object in turn takes a uniform free cell. */
    int free_cells[SYNTH_NUM_POSITIONS], nf = SYNTH_NUM_POSITIONS;
    for (int p = 0; p < SYNTH_NUM_POSITIONS; p++) free_cells[p] = p;
    for (int i = 0; i < s->n; i++) {
        int j = (int)sevo_rng_below(r, (uint32_t)nf);
        s->obj[i].position = free_cells[j];
        free_cells[j] = free_cells[--nf];
    }
    sort_by_position(s->obj, s->n);
    memset(s->faint, 0, sizeof s->faint);
}

void synth_mark_faint(synth_scene *s, float fraction, sevo_rng *r) {
    int is_partner[SYNTH_NUM_TYPES] = {0};
    for (int i = 0; i < s->n; i++) is_partner[synth_partner(object_type(&s->obj[i]))] = 1;
    for (int i = 0; i < s->n; i++) {
        float u = sevo_rng_uniform(r); /* one draw per object, whatever it is */
        s->faint[i] = is_partner[object_type(&s->obj[i])] && u < fraction;
    }
}

int synth_annotate(const synth_scene *s, float noise, sevo_rng *r, synth_scene *out) {
    *out = *s;
    memset(out->faint, 0, sizeof out->faint);
    float u = sevo_rng_uniform(r);
    int idx[SYNTH_SCENE_CAP];
    int k = objects_with_absent_partner(s, idx);
    if (!(u < noise) || k == 0 || s->n >= SYNTH_SCENE_CAP) return 0;
    int t = synth_partner(object_type(&s->obj[idx[sevo_rng_below(r, (uint32_t)k)]]));
    synth_object *o = &out->obj[out->n];
    o->shape = synth_type_shape(t);
    o->color = synth_type_color(t);
    o->position = uniform_free_cell(s, r);
    out->n++;
    sort_by_position(out->obj, out->n);
    return 1;
}

/* ---- rendering ---- */

/* Analytic inside-test in object-local coordinates (y grows downwards), h = half size. */
static int inside_shape(int shape, float dx, float dy, float h) {
    switch (shape) {
    case 0: /* circle */
        return dx * dx + dy * dy <= h * h;
    case 1: /* axis-aligned square */
        return fabsf(dx) <= h && fabsf(dy) <= h;
    case 2: /* upward triangle: apex (0, -h), base from (-h, h) to (h, h) */
        return dy <= h && dy >= -h && fabsf(dx) <= 0.5f * (dy + h);
    default: { /* plus-shaped cross, bars a third of the size wide */
        float w = h / 3.0f;
        return (fabsf(dx) <= w && fabsf(dy) <= h) || (fabsf(dy) <= w && fabsf(dx) <= h);
    }
    }
}

typedef struct drawn_object {
    int shape;
    float cx, cy, h;
    float rgb[3];
} drawn_object;

static float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

/* Uniform in [-a, a). */
static float jitter(sevo_rng *r, float a) { return a * (2.0f * sevo_rng_uniform(r) - 1.0f); }

void synth_render(const synth_scene *s, int image_size, float noise, float faint_contrast, sevo_rng *r,
                  unsigned char *rgb) {
    const int S = image_size;
    const float cell = (float)S / (float)SYNTH_GRID;
    /* Background: light grey with a per-image brightness and tint, so that the model
     * cannot identify objects by absolute intensity alone. */
    float bg[3];
    float bright = 200.0f / 255.0f + jitter(r, 0.04f);
    for (int c = 0; c < 3; c++) bg[c] = clamp01(bright + jitter(r, 0.025f));

    drawn_object d[SYNTH_SCENE_CAP];
    float opacity[SYNTH_SCENE_CAP];
    int n = s ? s->n : 0;
    for (int i = 0; i < n; i++) {
        const synth_object *o = &s->obj[i];
        int row = o->position / SYNTH_GRID, col = o->position % SYNTH_GRID;
        d[i].shape = o->shape;
        opacity[i] = s->faint[i] ? faint_contrast : 1.0f;
        d[i].cx = ((float)col + 0.5f + jitter(r, 0.08f)) * cell;
        d[i].cy = ((float)row + 0.5f + jitter(r, 0.08f)) * cell;
        d[i].h = 0.5f * cell * (0.55f + 0.20f * sevo_rng_uniform(r));
        for (int c = 0; c < 3; c++)
            d[i].rgb[c] = clamp01((float)synth_color_rgb[o->color][c] / 255.0f + jitter(r, 0.05f));
    }

    for (int py = 0; py < S; py++) {
        for (int px = 0; px < S; px++) {
            float v[3] = {bg[0], bg[1], bg[2]};
            for (int i = 0; i < n; i++) {
                const drawn_object *o = &d[i];
                /* Skip pixels outside the bounding box (with a pixel of margin). */
                if ((float)px > o->cx + o->h + 1.0f || (float)px + 1.0f < o->cx - o->h - 1.0f ||
                    (float)py > o->cy + o->h + 1.0f || (float)py + 1.0f < o->cy - o->h - 1.0f)
                    continue;
                /* 4x4 supersampling of the inside-test gives the coverage. */
                int hits = 0;
                for (int sy = 0; sy < 4; sy++)
                    for (int sx = 0; sx < 4; sx++) {
                        float x = (float)px + ((float)sx + 0.5f) * 0.25f;
                        float y = (float)py + ((float)sy + 0.5f) * 0.25f;
                        hits += inside_shape(o->shape, x - o->cx, y - o->cy, o->h);
                    }
                if (hits == 0) continue;
                float a = opacity[i] * (float)hits / 16.0f;
                for (int c = 0; c < 3; c++) v[c] = v[c] * (1.0f - a) + o->rgb[c] * a;
            }
            unsigned char *out = rgb + ((size_t)py * (size_t)S + (size_t)px) * 3;
            for (int c = 0; c < 3; c++) {
                float x = v[c];
                if (noise > 0.0f) x += noise * sevo_rng_normal(r);
                out[c] = (unsigned char)(clamp01(x) * 255.0f + 0.5f);
            }
        }
    }
}

/* ---- text ---- */

/* Appends formatted text at *len, never past cap (the world's strings always fit). */
static void appendf(char *out, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void appendf(char *out, size_t cap, size_t *len, const char *fmt, ...) {
    if (*len >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    *len += (size_t)k;
    if (*len >= cap) *len = cap - 1;
}

/* How the world names an object: "<c> <s> at <p>", or "<s> at <p>" without its colour.
 * Perceptions and the steps that quote them both go through here, so a quote is the
 * perception's own words by construction. */
static void name_object(char *out, size_t cap, size_t *len, const synth_object *o, int with_color) {
    if (with_color) appendf(out, cap, len, "%s ", synth_color_names[o->color]);
    appendf(out, cap, len, "%s at %s", synth_shape_names[o->shape], synth_position_names[o->position]);
}

void synth_format_perception(const synth_object *objs, int n, char *out, size_t cap) {
    if (!out || cap == 0) return;
    out[0] = '\0';
    if (n <= 0) {
        snprintf(out, cap, "none");
        return;
    }
    /* Sort a copy: callers may hand objects in any order. Perceptions are never longer
     * than a few objects, but a malformed caller's n must not overflow the copy. */
    synth_object tmp[SYNTH_NUM_POSITIONS];
    if (n > SYNTH_NUM_POSITIONS) n = SYNTH_NUM_POSITIONS;
    memcpy(tmp, objs, sizeof(synth_object) * (size_t)n);
    sort_by_position(tmp, n);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (i) appendf(out, cap, &len, " , ");
        name_object(out, cap, &len, &tmp[i], 1);
    }
}

/* Reads the next space-separated token into buf; returns its length, 0 at the end, or
 * -1 if it does not fit (no world word is that long, so the text is malformed). */
static int next_token(const char **p, char *buf, size_t cap) {
    const char *s = *p;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t n = 0;
    while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') {
        if (n + 1 >= cap) return -1;
        buf[n++] = *s++;
    }
    buf[n] = '\0';
    *p = s;
    return (int)n;
}

int synth_parse_perception(const char *text, synth_object *objs, int max) {
    if (!text) return -1;
    const char *p = text;
    char tok[32], tok2[32], pos[72];
    int t = next_token(&p, tok, sizeof tok);
    if (t < 0) return -1;
    if (t == 0) return 0;
    if (strcmp(tok, "none") == 0) return next_token(&p, tok, sizeof tok) == 0 ? 0 : -1;
    int count = 0;
    for (;;) {
        synth_object o;
        o.color = synth_color_index(tok);
        if (o.color < 0) return -1;
        if (next_token(&p, tok, sizeof tok) <= 0 || (o.shape = synth_shape_index(tok)) < 0)
            return -1;
        if (next_token(&p, tok, sizeof tok) <= 0 || strcmp(tok, "at") != 0) return -1;
        if (next_token(&p, tok, sizeof tok) <= 0) return -1;
        if (strcmp(tok, "center") == 0) {
            o.position = synth_position_index(tok);
        } else {
            if (next_token(&p, tok2, sizeof tok2) <= 0) return -1;
            snprintf(pos, sizeof pos, "%s %s", tok, tok2);
            o.position = synth_position_index(pos);
            if (o.position < 0) return -1;
        }
        if (count >= max) return -1;
        objs[count++] = o;
        t = next_token(&p, tok, sizeof tok);
        if (t == 0) return count;
        if (t < 0 || strcmp(tok, ",") != 0) return -1;
        if (next_token(&p, tok, sizeof tok) <= 0) return -1;
    }
}

int synth_parse_exist_question(const char *text, int *type) {
    if (!text) return -1;
    const char *p = text;
    char tok[32];
    static const char *const lead[] = {"is", "there", "a"};
    for (int i = 0; i < 3; i++)
        if (next_token(&p, tok, sizeof tok) <= 0 || strcmp(tok, lead[i]) != 0) return -1;
    if (next_token(&p, tok, sizeof tok) <= 0) return -1;
    int color = synth_color_index(tok);
    if (color < 0 || next_token(&p, tok, sizeof tok) <= 0) return -1;
    int shape = synth_shape_index(tok);
    if (shape < 0) return -1;
    /* the question mark is optional: "is there a red circle" asks the same */
    int t = next_token(&p, tok, sizeof tok);
    if (t > 0 && (strcmp(tok, "?") != 0 || next_token(&p, tok, sizeof tok) != 0)) return -1;
    if (t < 0) return -1;
    *type = synth_type(shape, color);
    return 0;
}

/* ---- questions ---- */

static const char *yes_no(int b) { return b ? "yes" : "no"; }

/* Steps from `from` (0-based) to K-1 re-check the answer. */
static void fill_checks(synth_question *q, int from) {
    for (int k = from; k < SYNTH_NUM_STEPS; k++)
        snprintf(q->steps[k], sizeof q->steps[k], "check : %s", q->answer);
}

static int find_type(const synth_scene *s, int type) {
    for (int i = 0; i < s->n; i++)
        if (object_type(&s->obj[i]) == type) return i;
    return -1;
}

static int count_shape(const synth_scene *s, int shape) {
    int k = 0;
    for (int i = 0; i < s->n; i++) k += s->obj[i].shape == shape;
    return k;
}

/* A step that finds something quotes the perception from the words it looks for on:
 * "find red square : red square at top left", and for a shape alone "find squares :
 * square at top left , square at center". Each copied word then continues the words just
 * written, the pattern a small decoder learns first. The first version wrote only the
 * position ("find red square : at top left"): the copy had to match the key across the
 * step's own ": at", and the tiny model learned that poorly (docs/synthetic-world.md). A
 * quote that starts before the key (the colour of a shape found by its shape alone) needs
 * a copy backwards, which it learned worse: 72.0% against 85.4% on the seed-42 world. */
static void quote_object(char *out, size_t cap, size_t *len, const synth_object *o, int with_color) {
    appendf(out, cap, len, " ");
    name_object(out, cap, len, o, with_color);
}

/* " <s> at <p> , ..." for every object of the shape, row-major, or " none". */
static void quote_objects_of_shape(char *out, size_t cap, size_t *len, const synth_scene *s, int shape) {
    int found = 0;
    for (int p = 0; p < SYNTH_NUM_POSITIONS; p++)
        for (int i = 0; i < s->n; i++)
            if (s->obj[i].position == p && s->obj[i].shape == shape) {
                if (found++) appendf(out, cap, len, " ,");
                quote_object(out, cap, len, &s->obj[i], 0);
            }
    if (!found) appendf(out, cap, len, " none");
}

static void begin_question(synth_question *q, int qtype) {
    memset(q, 0, sizeof *q);
    q->qtype = qtype;
    q->depth = synth_qtype_depth[qtype];
}

void synth_make_exist_question(const synth_scene *s, int type, synth_question *q) {
    begin_question(q, SYNTH_Q_EXIST);
    q->arg[0] = type;
    const char *c = synth_color_names[synth_type_color(type)];
    const char *sh = synth_shape_names[synth_type_shape(type)];
    int i = find_type(s, type);
    snprintf(q->question, sizeof q->question, "is there a %s %s ?", c, sh);
    snprintf(q->answer, sizeof q->answer, "%s", yes_no(i >= 0));
    size_t len = 0;
    appendf(q->steps[0], sizeof q->steps[0], &len, "find %s %s :", c, sh);
    if (i >= 0)
        quote_object(q->steps[0], sizeof q->steps[0], &len, &s->obj[i], 1);
    else
        appendf(q->steps[0], sizeof q->steps[0], &len, " none");
    fill_checks(q, 1);
}

static void make_exist(const synth_scene *s, sevo_rng *r, synth_question *q) {
    int type;
    if (sevo_rng_below(r, 2) == 0) {
        type = object_type(&s->obj[sevo_rng_below(r, (uint32_t)s->n)]);
    } else {
        /* Half the negatives are the hallucination bait: the absent partner of a present
         * object, which a model leaning on the co-occurrence prior says "yes" to. */
        int idx[SYNTH_SCENE_CAP];
        int k = objects_with_absent_partner(s, idx);
        if (sevo_rng_below(r, 2) == 0 && k > 0)
            type = synth_partner(object_type(&s->obj[idx[sevo_rng_below(r, (uint32_t)k)]]));
        else
            type = uniform_absent_type(s, r);
    }
    synth_make_exist_question(s, type, q);
}

/* "what color is the <shape> ?": -1 unless the shape is in the scene exactly once. */
static int build_color(const synth_scene *s, int sh, synth_question *q) {
    if (count_shape(s, sh) != 1) return -1;
    const synth_object *o = NULL;
    for (int i = 0; i < s->n; i++)
        if (s->obj[i].shape == sh) o = &s->obj[i];
    begin_question(q, SYNTH_Q_COLOR);
    q->arg[0] = sh;
    snprintf(q->question, sizeof q->question, "what color is the %s ?", synth_shape_names[sh]);
    snprintf(q->answer, sizeof q->answer, "%s", synth_color_names[o->color]);
    size_t len = 0;
    appendf(q->steps[0], sizeof q->steps[0], &len, "find %s :", synth_shape_names[sh]);
    quote_object(q->steps[0], sizeof q->steps[0], &len, o, 0);
    snprintf(q->steps[1], sizeof q->steps[1], "color : %s", q->answer);
    fill_checks(q, 2);
    return 0;
}

static int make_color(const synth_scene *s, sevo_rng *r, synth_question *q) {
    int shapes[SYNTH_NUM_SHAPES], k = 0;
    for (int sh = 0; sh < SYNTH_NUM_SHAPES; sh++)
        if (count_shape(s, sh) == 1) shapes[k++] = sh;
    if (k == 0) return -1;
    return build_color(s, shapes[sevo_rng_below(r, (uint32_t)k)], q);
}

static void build_count(const synth_scene *s, int sh, synth_question *q) {
    begin_question(q, SYNTH_Q_COUNT);
    q->arg[0] = sh;
    const char *pl = synth_shape_plurals[sh];
    snprintf(q->question, sizeof q->question, "how many %s are there ?", pl);
    snprintf(q->answer, sizeof q->answer, "%d", count_shape(s, sh));
    size_t len = 0;
    appendf(q->steps[0], sizeof q->steps[0], &len, "find %s :", pl);
    quote_objects_of_shape(q->steps[0], sizeof q->steps[0], &len, s, sh);
    snprintf(q->steps[1], sizeof q->steps[1], "count : %s", q->answer);
    fill_checks(q, 2);
}

static void make_count(const synth_scene *s, sevo_rng *r, synth_question *q) {
    /* Half the time a shape that is present, so that counts above zero are common. */
    int sh = sevo_rng_below(r, 2) == 0 ? s->obj[sevo_rng_below(r, (uint32_t)s->n)].shape
                                       : (int)sevo_rng_below(r, SYNTH_NUM_SHAPES);
    build_count(s, sh, q);
}

/* "is the <a> <relation> the <b> ?" about objects of types ta and tb: -1 unless both
 * are in the scene. */
static int build_spatial(const synth_scene *s, int ta, int rel, int tb, synth_question *q) {
    int i = find_type(s, ta), j = find_type(s, tb);
    if (i < 0 || j < 0 || i == j) return -1;
    const synth_object *a = &s->obj[i], *b = &s->obj[j];
    int ra = a->position / SYNTH_GRID, ca = a->position % SYNTH_GRID;
    int rb = b->position / SYNTH_GRID, cb = b->position % SYNTH_GRID;
    int yes = rel == 0 ? ca < cb : rel == 1 ? ca > cb : rel == 2 ? ra < rb : ra > rb;
    begin_question(q, SYNTH_Q_SPATIAL);
    q->arg[0] = ta;
    q->arg[1] = rel;
    q->arg[2] = tb;
    snprintf(q->question, sizeof q->question, "is the %s %s %s the %s %s ?",
             synth_color_names[a->color], synth_shape_names[a->shape], synth_relation_names[rel],
             synth_color_names[b->color], synth_shape_names[b->shape]);
    snprintf(q->answer, sizeof q->answer, "%s", yes_no(yes));
    for (int k = 0; k < 2; k++) {
        const synth_object *o = k ? b : a;
        size_t len = 0;
        appendf(q->steps[k], sizeof q->steps[k], &len, "find %s %s :", synth_color_names[o->color],
                synth_shape_names[o->shape]);
        quote_object(q->steps[k], sizeof q->steps[k], &len, o, 1);
    }
    snprintf(q->steps[2], sizeof q->steps[2], "%s : %s", synth_relation_names[rel], q->answer);
    fill_checks(q, 3);
    return 0;
}

static int make_spatial(const synth_scene *s, sevo_rng *r, synth_question *q) {
    if (s->n < 2) return -1;
    int i = (int)sevo_rng_below(r, (uint32_t)s->n);
    int j = (int)sevo_rng_below(r, (uint32_t)(s->n - 1));
    if (j >= i) j++;
    int rel = (int)sevo_rng_below(r, SYNTH_NUM_RELATIONS);
    return build_spatial(s, object_type(&s->obj[i]), rel, object_type(&s->obj[j]), q);
}

static void build_compare(const synth_scene *s, int s1, int s2, synth_question *q) {
    int n1 = count_shape(s, s1), n2 = count_shape(s, s2);
    begin_question(q, SYNTH_Q_COMPARE);
    q->arg[0] = s1;
    q->arg[1] = s2;
    snprintf(q->question, sizeof q->question, "are there more %s than %s ?",
             synth_shape_plurals[s1], synth_shape_plurals[s2]);
    snprintf(q->answer, sizeof q->answer, "%s", yes_no(n1 > n2));
    /* each count lists what it counts, as the count question's find step does */
    for (int k = 0; k < 2; k++) {
        int sh = k ? s2 : s1;
        size_t len = 0;
        appendf(q->steps[k], sizeof q->steps[k], &len, "count %s :", synth_shape_plurals[sh]);
        quote_objects_of_shape(q->steps[k], sizeof q->steps[k], &len, s, sh);
        appendf(q->steps[k], sizeof q->steps[k], &len, " : %d", k ? n2 : n1);
    }
    snprintf(q->steps[2], sizeof q->steps[2], "%d more than %d : %s", n1, n2, q->answer);
    fill_checks(q, 3);
}

static void make_compare(const synth_scene *s, sevo_rng *r, synth_question *q) {
    /* One shape is present and the other is any other shape; the order is random, so
     * "yes" and "no" are both common. */
    int s1 = s->obj[sevo_rng_below(r, (uint32_t)s->n)].shape;
    int o = (int)sevo_rng_below(r, SYNTH_NUM_SHAPES - 1);
    int s2 = o >= s1 ? o + 1 : o;
    if (sevo_rng_below(r, 2)) {
        int t = s1;
        s1 = s2;
        s2 = t;
    }
    build_compare(s, s1, s2, q);
}

int synth_make_question(const synth_scene *s, int qtype, sevo_rng *r, synth_question *q) {
    if (!s || s->n < 1) return -1;
    switch (qtype) {
    case SYNTH_Q_EXIST: make_exist(s, r, q); return 0;
    case SYNTH_Q_COLOR: return make_color(s, r, q);
    case SYNTH_Q_COUNT: make_count(s, r, q); return 0;
    case SYNTH_Q_SPATIAL: return make_spatial(s, r, q);
    case SYNTH_Q_COMPARE: make_compare(s, r, q); return 0;
    default: return -1;
    }
}

int synth_question_on_scene(const synth_question *q, const synth_scene *s, synth_question *out) {
    switch (q->qtype) {
    case SYNTH_Q_EXIST: synth_make_exist_question(s, q->arg[0], out); return 0;
    case SYNTH_Q_COLOR: return build_color(s, q->arg[0], out);
    case SYNTH_Q_COUNT: build_count(s, q->arg[0], out); return 0;
    case SYNTH_Q_SPATIAL: return build_spatial(s, q->arg[0], q->arg[1], q->arg[2], out);
    case SYNTH_Q_COMPARE: build_compare(s, q->arg[0], q->arg[1], out); return 0;
    default: return -1;
    }
}

/* A question from the train/test mix, falling back to a same-depth type the scene
 * supports. */
static void make_mixed_question(const synth_scene *s, sevo_rng *r, synth_question *q) {
    float u = sevo_rng_uniform(r), acc = 0.0f;
    int qtype = SYNTH_NUM_QTYPES - 1;
    for (int i = 0; i < SYNTH_NUM_QTYPES; i++) {
        acc += k_qtype_mix[i];
        if (u < acc) {
            qtype = i;
            break;
        }
    }
    if (synth_make_question(s, qtype, r, q) != 0)
        (void)synth_make_question(s, k_qtype_fallback[qtype], r, q);
}

void synth_wrong_perception(const synth_scene *s, sevo_rng *r, char *out, size_t cap) {
    synth_scene w = *s;
    float u = sevo_rng_uniform(r);
    int idx[SYNTH_SCENE_CAP];
    int k = objects_with_absent_partner(s, idx);
    if (u < k_wrong_add_prob && k > 0 && s->n < SYNTH_NUM_POSITIONS) {
        /* Hallucination: the co-occurrence prior's favourite absent object. */
        int t = synth_partner(object_type(&s->obj[idx[sevo_rng_below(r, (uint32_t)k)]]));
        int cell = uniform_free_cell(s, r);
        synth_object extra[SYNTH_SCENE_CAP];
        memcpy(extra, s->obj, sizeof(synth_object) * (size_t)s->n);
        extra[s->n].shape = synth_type_shape(t);
        extra[s->n].color = synth_type_color(t);
        extra[s->n].position = cell;
        synth_format_perception(extra, s->n + 1, out, cap);
        return;
    }
    if (s->n >= 2) {
        int i = (int)sevo_rng_below(r, (uint32_t)s->n);
        for (int j = i; j + 1 < w.n; j++) w.obj[j] = w.obj[j + 1];
        w.n--;
    } else {
        /* One object: misperceive its colour, to a type not already in the scene. */
        int present[SYNTH_NUM_TYPES], colors[SYNTH_NUM_COLORS], nc = 0;
        present_types(s, present);
        int i = (int)sevo_rng_below(r, (uint32_t)s->n);
        for (int c = 0; c < SYNTH_NUM_COLORS; c++)
            if (c != s->obj[i].color && !present[synth_type(s->obj[i].shape, c)]) colors[nc++] = c;
        w.obj[i].color = colors[sevo_rng_below(r, (uint32_t)nc)];
    }
    synth_format_perception(w.obj, w.n, out, cap);
}

/* ---- synth_generate ---- */

/* Purposes of the per-sample generators (see the comment at the top of the file). */
enum {
    P_TRAIN_SCENE = 1,
    P_TRAIN_QUESTION,
    P_TRAIN_RENDER,
    P_TRAIN_WRONG,
    P_TEST_SCENE,
    P_TEST_QUESTION,
    P_TEST_RENDER,
    P_POPE_RANDOM,
    P_POPE_POPULAR,
    P_POPE_ADVERSARIAL,
    P_TRAIN_FAINT,
    P_TEST_FAINT,
    P_TRAIN_ANNOTATION,
};

enum { POPE_RANDOM, POPE_POPULAR, POPE_ADVERSARIAL, NUM_POPE };
static const char *const k_pope_names[NUM_POPE] = {"random", "popular", "adversarial"};

/* The generator of one (purpose, index): nearby indices give unrelated generators. */
static void sample_rng(sevo_rng *r, uint64_t seed, int purpose, int index) {
    uint64_t key = ((uint64_t)(unsigned)purpose << 40) ^ (uint64_t)(unsigned)index;
    sevo_rng_seed_keyed(r, seed, key, (uint64_t)(unsigned)purpose);
}

void synth_options_default(synth_options *o) {
    o->output_dir = "data/synthetic";
    o->num_train = 4000;
    o->num_test = 1000;
    o->seed = 42;
    o->image_size = 30;
    o->cooccurrence = 0.8f;
    o->noise = 0.04f;
    o->faint_fraction = 0.0f;
    o->faint_contrast = 0.25f;
    o->annotation_noise = 0.0f;
    o->caption_reasoning = 0;
}

/* PNG bytes are collected in memory and then written atomically. */
typedef struct png_buffer {
    unsigned char *data;
    size_t len, cap;
    int failed;
} png_buffer;

static void png_append(void *ctx, void *data, int size) {
    png_buffer *b = ctx;
    if (b->failed || size <= 0) return;
    if (b->len + (size_t)size > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)size) cap *= 2;
        unsigned char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, (size_t)size);
    b->len += (size_t)size;
}

/* Images are many small files, and an fsync for each (as sevo_write_file_atomic does)
 * costs seconds when the disk is busy. So an image is written under a temporary name and
 * renamed into place, which is still atomic for readers, and all images are made durable
 * together by one sync() before world.json, whose presence marks a complete set. */
static int write_file_nosync(const char *path, const void *data, size_t len, sevo_error *err) {
    char tmp[4160];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return sevo_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    int bad = fwrite(data, 1, len, f) != len;
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        remove(tmp);
        return sevo_fail(err, "%s: write failed", path);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return sevo_fail(err, "%s: cannot rename into place: %s", path, strerror(e));
    }
    return 0;
}

static int write_png(const char *path, const unsigned char *rgb, int size, png_buffer *b,
                     sevo_error *err) {
    b->len = 0;
    b->failed = 0;
    /* stbi_write_png's encoder, into memory, so that the file can be written atomically. */
    if (!stbi_write_png_to_func(png_append, b, size, size, 3, rgb, size * 3) || b->failed)
        return sevo_fail(err, "%s: cannot encode PNG (out of memory?)", path);
    return write_file_nosync(path, b->data, b->len, err);
}

/* What world.json reports about a split. */
typedef struct split_stats {
    long samples;
    long per_qtype[SYNTH_NUM_QTYPES];
    long yes, no;
    long type_counts[SYNTH_NUM_TYPES];
    long num_objects[SYNTH_MAX_OBJECTS + 1];
    /* Over scenes with n >= 2: objects whose partner is present, objects, and objects
     * after the first (n - 1 per scene). */
    long partner_present, objects_n2, added_n2;
    long noisy_annotations; /* records with a caption (synth_annotate) */
    long caption_traces;    /* of those, records with the trace written from the caption */
    long caption_answers_differ; /* of those, records whose caption answer is not the answer */
} split_stats;

static void count_scene(split_stats *st, const synth_scene *s, const synth_question *q) {
    st->samples++;
    if (q) {
        st->per_qtype[q->qtype]++;
        if (strcmp(q->answer, "yes") == 0) st->yes++;
        if (strcmp(q->answer, "no") == 0) st->no++;
    }
    st->num_objects[s->n]++;
    int present[SYNTH_NUM_TYPES];
    present_types(s, present);
    for (int i = 0; i < s->n; i++) st->type_counts[object_type(&s->obj[i])]++;
    if (s->n >= 2) {
        for (int i = 0; i < s->n; i++)
            st->partner_present += present[synth_partner(object_type(&s->obj[i]))];
        st->objects_n2 += s->n;
        st->added_n2 += s->n - 1;
    }
}

/* Adds to obj; remembers a failure in *ok (cJSON returns NULL when out of memory). */
static void add_string(cJSON *obj, const char *key, const char *value, int *ok) {
    if (!cJSON_AddStringToObject(obj, key, value)) *ok = 0;
}
static void add_number(cJSON *obj, const char *key, double value, int *ok) {
    if (!cJSON_AddNumberToObject(obj, key, value)) *ok = 0;
}

static void add_steps(cJSON *rec, const char *key, const synth_question *q, int *ok) {
    cJSON *steps = cJSON_AddArrayToObject(rec, key);
    if (!steps) *ok = 0;
    for (int k = 0; *ok && k < SYNTH_NUM_STEPS; k++) {
        cJSON *st = cJSON_CreateString(q->steps[k]);
        if (!st || !cJSON_AddItemToArray(steps, st)) {
            cJSON_Delete(st);
            *ok = 0;
        }
    }
}

/* One JSONL record; keys in the documented order. caption, cq (the question on the
 * caption's scene), wrong and pope_split may be NULL. */
static cJSON *make_record(const char *image, const synth_question *q, const char *perception,
                          const char *caption, const synth_question *cq, const synth_scene *s, const char *wrong,
                          const char *pope_split) {
    cJSON *rec = cJSON_CreateObject();
    if (!rec) return NULL;
    int ok = 1;
    add_string(rec, "image", image, &ok);
    add_string(rec, "question", q->question, &ok);
    add_string(rec, "answer", q->answer, &ok);
    add_string(rec, "perception", perception, &ok);
    if (caption) add_string(rec, "caption", caption, &ok);
    add_steps(rec, "steps", q, &ok);
    if (cq) {
        add_steps(rec, "caption_steps", cq, &ok);
        add_string(rec, "caption_answer", cq->answer, &ok);
    }
    add_string(rec, "type", synth_qtype_names[q->qtype], &ok);
    add_number(rec, "depth", q->depth, &ok);
    cJSON *objs = cJSON_AddArrayToObject(rec, "objects");
    if (!objs) ok = 0;
    for (int i = 0; ok && i < s->n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(objs, o)) {
            cJSON_Delete(o);
            ok = 0;
            break;
        }
        add_string(o, "shape", synth_shape_names[s->obj[i].shape], &ok);
        add_string(o, "color", synth_color_names[s->obj[i].color], &ok);
        add_string(o, "position", synth_position_names[s->obj[i].position], &ok);
    }
    if (wrong) add_string(rec, "wrong_perception", wrong, &ok);
    if (pope_split) add_string(rec, "pope_split", pope_split, &ok);
    if (!ok) {
        cJSON_Delete(rec);
        return NULL;
    }
    return rec;
}

/* Writes a record as one line and frees it. */
static int write_record(sevo_atomic_file *af, cJSON *rec, sevo_error *err) {
    if (!rec) return sevo_fail(err, "%s: out of memory building a record", af->path);
    char *line = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    if (!line) return sevo_fail(err, "%s: out of memory printing a record", af->path);
    int bad = fputs(line, af->f) < 0 || fputc('\n', af->f) == EOF;
    cJSON_free(line);
    if (bad) return sevo_fail(err, "%s: write failed", af->path);
    return 0;
}

static double round4(double x) { return floor(x * 10000.0 + 0.5) / 10000.0; }

static void type_name(int type, char *out, size_t cap) {
    snprintf(out, cap, "%s %s", synth_color_names[synth_type_color(type)],
             synth_shape_names[synth_type_shape(type)]);
}

static cJSON *string_array(const char *const *names, int n, int *ok) {
    cJSON *a = cJSON_CreateStringArray(names, n);
    if (!a) *ok = 0;
    return a;
}

static void add_item(cJSON *obj, const char *key, cJSON *item, int *ok) {
    if (!item || !cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        *ok = 0;
    }
}

static cJSON *stats_json(const split_stats *st, int with_cooccurrence, int with_noise, int *ok) {
    cJSON *j = cJSON_CreateObject();
    if (!j) {
        *ok = 0;
        return NULL;
    }
    char name[64];
    add_number(j, "samples", (double)st->samples, ok);
    cJSON *pq = cJSON_CreateObject();
    for (int i = 0; pq && i < SYNTH_NUM_QTYPES; i++)
        add_number(pq, synth_qtype_names[i], (double)st->per_qtype[i], ok);
    add_item(j, "questions_per_type", pq, ok);
    add_number(j, "answers_yes", (double)st->yes, ok);
    add_number(j, "answers_no", (double)st->no, ok);
    cJSON *no = cJSON_CreateArray();
    for (int i = 0; no && i <= SYNTH_MAX_OBJECTS; i++) {
        cJSON *v = cJSON_CreateNumber((double)st->num_objects[i]);
        if (!v || !cJSON_AddItemToArray(no, v)) {
            cJSON_Delete(v);
            *ok = 0;
        }
    }
    add_item(j, "scenes_per_object_count", no, ok);
    cJSON *tc = cJSON_CreateObject();
    for (int t = 0; tc && t < SYNTH_NUM_TYPES; t++) {
        type_name(t, name, sizeof name);
        add_number(tc, name, (double)st->type_counts[t], ok);
    }
    add_item(j, "objects_per_type", tc, ok);
    if (with_cooccurrence) {
        cJSON *c = cJSON_CreateObject();
        double link = st->added_n2 ? (double)st->partner_present / (double)st->added_n2 : 0.0;
        double given = st->objects_n2 ? (double)st->partner_present / (double)st->objects_n2 : 0.0;
        if (c) {
            add_number(c, "partner_link_rate", round4(link), ok);
            add_number(c, "p_partner_given_object", round4(given), ok);
            add_number(c, "objects_with_partner_present", (double)st->partner_present, ok);
            add_number(c, "objects", (double)st->objects_n2, ok);
            add_number(c, "objects_after_first", (double)st->added_n2, ok);
            add_string(c, "definition",
                       "over scenes with n >= 2: partner_link_rate = objects whose partner is "
                       "present / (n - 1) summed over scenes (the rate at which an added object "
                       "is a partner, which the co-occurrence option controls); "
                       "p_partner_given_object = the same count / n, i.e. P(partner present | "
                       "object present)",
                       ok);
        }
        add_item(j, "cooccurrence_measured", c, ok);
    }
    if (with_noise) /* only with annotation noise: the file as before otherwise */
        add_number(j, "noisy_annotations", (double)st->noisy_annotations, ok);
    if (with_noise > 1) { /* and with caption reasoning */
        add_number(j, "caption_traces", (double)st->caption_traces, ok);
        add_number(j, "caption_answers_differ", (double)st->caption_answers_differ, ok);
    }
    return j;
}

static int write_world(const synth_options *o, const split_stats *train, const split_stats *test,
                       const long pope_yes[NUM_POPE], const long pope_no[NUM_POPE],
                       sevo_error *err) {
    int ok = 1;
    char name[64], pname[64], path[4096];
    cJSON *w = cJSON_CreateObject();
    if (!w) return sevo_fail(err, "world.json: out of memory");
    /* 2: finding steps quote the objects they find (docs/synthetic-world.md) */
    add_number(w, "version", 2, &ok);
    add_item(w, "shapes", string_array(synth_shape_names, SYNTH_NUM_SHAPES, &ok), &ok);
    add_item(w, "shape_plurals", string_array(synth_shape_plurals, SYNTH_NUM_SHAPES, &ok), &ok);
    add_item(w, "colors", string_array(synth_color_names, SYNTH_NUM_COLORS, &ok), &ok);
    cJSON *rgb = cJSON_CreateObject();
    for (int c = 0; rgb && c < SYNTH_NUM_COLORS; c++) {
        int v[3] = {synth_color_rgb[c][0], synth_color_rgb[c][1], synth_color_rgb[c][2]};
        add_item(rgb, synth_color_names[c], cJSON_CreateIntArray(v, 3), &ok);
    }
    add_item(w, "color_rgb", rgb, &ok);
    add_item(w, "positions", string_array(synth_position_names, SYNTH_NUM_POSITIONS, &ok), &ok);
    add_item(w, "relations", string_array(synth_relation_names, SYNTH_NUM_RELATIONS, &ok), &ok);
    add_number(w, "num_types", SYNTH_NUM_TYPES, &ok);
    add_string(w, "partner_rule",
               "partner(shape s, colour c) = (shape (s + 2) mod 4, colour (c + 1) mod 5)", &ok);
    cJSON *partners = cJSON_CreateObject();
    for (int t = 0; partners && t < SYNTH_NUM_TYPES; t++) {
        type_name(t, name, sizeof name);
        type_name(synth_partner(t), pname, sizeof pname);
        add_string(partners, name, pname, &ok);
    }
    add_item(w, "partners", partners, &ok);
    add_number(w, "num_steps", SYNTH_NUM_STEPS, &ok);
    cJSON *qt = cJSON_CreateObject();
    for (int i = 0; qt && i < SYNTH_NUM_QTYPES; i++) {
        cJSON *e = cJSON_CreateObject();
        if (e) {
            add_number(e, "depth", synth_qtype_depth[i], &ok);
            add_number(e, "mix", round4(k_qtype_mix[i]), &ok);
        }
        add_item(qt, synth_qtype_names[i], e, &ok);
    }
    add_item(w, "question_types", qt, &ok);

    cJSON *opt = cJSON_CreateObject();
    if (opt) {
        /* A double holds integers exactly only up to 2^53; larger seeds go as text. */
        if (o->seed <= (1ULL << 53)) {
            add_number(opt, "seed", (double)o->seed, &ok);
        } else {
            char s[32];
            snprintf(s, sizeof s, "%llu", (unsigned long long)o->seed);
            add_string(opt, "seed", s, &ok);
        }
        add_number(opt, "num_train", o->num_train, &ok);
        add_number(opt, "num_test", o->num_test, &ok);
        add_number(opt, "image_size", o->image_size, &ok);
        add_number(opt, "cooccurrence", round4(o->cooccurrence), &ok);
        add_number(opt, "noise", round4(o->noise), &ok);
        if (o->faint_fraction > 0.0f) { /* absent otherwise: the file as before the option */
            add_number(opt, "faint_fraction", round4(o->faint_fraction), &ok);
            add_number(opt, "faint_contrast", round4(o->faint_contrast), &ok);
        }
        if (o->annotation_noise > 0.0f) /* likewise */
            add_number(opt, "annotation_noise", round4(o->annotation_noise), &ok);
        if (o->caption_reasoning && !cJSON_AddTrueToObject(opt, "caption_reasoning")) /* likewise */
            ok = 0;
    }
    add_item(w, "options", opt, &ok);
    int noise_stats = o->annotation_noise > 0.0f ? 1 + (o->caption_reasoning != 0) : 0;
    add_item(w, "train", stats_json(train, 1, noise_stats, &ok), &ok);
    add_item(w, "test", stats_json(test, 0, 0, &ok), &ok);
    cJSON *pope = cJSON_CreateObject();
    for (int p = 0; pope && p < NUM_POPE; p++) {
        cJSON *e = cJSON_CreateObject();
        if (e) {
            add_number(e, "yes", (double)pope_yes[p], &ok);
            add_number(e, "no", (double)pope_no[p], &ok);
        }
        add_item(pope, k_pope_names[p], e, &ok);
    }
    add_item(w, "pope", pope, &ok);

    char *text = ok ? cJSON_Print(w) : NULL;
    cJSON_Delete(w);
    if (!text) return sevo_fail(err, "world.json: out of memory");
    sevo_path_join(path, sizeof path, o->output_dir, "world.json");
    /* With a trailing newline, as text files should have. */
    size_t len = strlen(text);
    int rc = -1;
    char *withnl = malloc(len + 2);
    if (!withnl) {
        sevo_fail(err, "world.json: out of memory");
    } else {
        memcpy(withnl, text, len);
        withnl[len] = '\n';
        rc = sevo_write_file_atomic(path, withnl, len + 1, err);
        free(withnl);
    }
    cJSON_free(text);
    return rc;
}

static int check_options(const synth_options *o, sevo_error *err) {
    if (!o->output_dir || !o->output_dir[0]) return sevo_fail(err, "synth: no output directory");
    if (o->num_train < 0 || o->num_train > 10000000)
        return sevo_fail(err, "synth: num_train %d out of range [0, 10000000]", o->num_train);
    if (o->num_test < 0 || o->num_test > 10000000)
        return sevo_fail(err, "synth: num_test %d out of range [0, 10000000]", o->num_test);
    if (o->image_size < 8 || o->image_size > 1024)
        return sevo_fail(err, "synth: image_size %d out of range [8, 1024]", o->image_size);
    if (!(o->cooccurrence >= 0.0f && o->cooccurrence <= 1.0f))
        return sevo_fail(err, "synth: cooccurrence %g out of range [0, 1]", (double)o->cooccurrence);
    if (!(o->noise >= 0.0f && o->noise <= 1.0f))
        return sevo_fail(err, "synth: noise %g out of range [0, 1]", (double)o->noise);
    if (!(o->faint_fraction >= 0.0f && o->faint_fraction <= 1.0f))
        return sevo_fail(err, "synth: faint_fraction %g out of range [0, 1]", (double)o->faint_fraction);
    if (!(o->faint_contrast > 0.0f && o->faint_contrast <= 1.0f))
        return sevo_fail(err, "synth: faint_contrast %g out of range (0, 1]", (double)o->faint_contrast);
    if (!(o->annotation_noise >= 0.0f && o->annotation_noise <= 1.0f))
        return sevo_fail(err, "synth: annotation_noise %g out of range [0, 1]", (double)o->annotation_noise);
    /* without captions there is no caption to write a trace from: refused rather than
     * silently a world without the option */
    if (o->caption_reasoning && !(o->annotation_noise > 0.0f))
        return sevo_fail(err, "synth: caption_reasoning needs annotation_noise > 0 (the traces are written from the captions)");
    return 0;
}

/* Renders and writes images <split>_<first + i> for the n scenes, in parallel: each
 * image draws from its own generator, so the thread schedule cannot change a byte. */
static int write_images(const synth_options *o, const char *split, int purpose, int first,
                        const synth_scene *scenes, int n, sevo_error *err) {
    size_t npix = (size_t)o->image_size * (size_t)o->image_size * 3;
    int failed = 0;
#pragma omp parallel
    {
        sevo_error local;
        png_buffer png = {0};
        unsigned char *rgb = sevo_malloc(npix, "synth image", &local);
        if (!rgb) {
#pragma omp critical(synth_error)
            {
                if (!failed && err) *err = local;
#pragma omp atomic write
                failed = 1;
            }
        }
#pragma omp for schedule(dynamic, 8)
        for (int i = 0; i < n; i++) {
            int stop;
#pragma omp atomic read
            stop = failed;
            if (stop || !rgb) continue;
            char rel[64], path[4096];
            sevo_rng rr;
            sample_rng(&rr, o->seed, purpose, first + i);
            synth_render(&scenes[i], o->image_size, o->noise, o->faint_contrast, &rr, rgb);
            snprintf(rel, sizeof rel, "images/%s_%06d.png", split, first + i);
            sevo_path_join(path, sizeof path, o->output_dir, rel);
            if (write_png(path, rgb, o->image_size, &png, &local) != 0) {
#pragma omp critical(synth_error)
                {
                    if (!failed && err) *err = local;
#pragma omp atomic write
                    failed = 1;
                }
            }
        }
        free(png.data);
        free(rgb);
    }
    return failed ? -1 : 0;
}

/* Scenes are made and drawn in chunks, which bounds memory for large splits. */
enum { CHUNK = 4096 };

/* Generates one split's scenes, images and records. For train, wrong perceptions are
 * added; for test, scenes are kept in `keep` for the POPE splits. */
static int generate_split(const synth_options *o, int is_train, synth_scene *chunk,
                          synth_scene *keep, split_stats *st, sevo_error *err) {
    const char *split = is_train ? "train" : "test";
    int count = is_train ? o->num_train : o->num_test;
    char path[4096], rel[64], perception[SYNTH_TEXT_MAX], wrong[SYNTH_TEXT_MAX], caption[SYNTH_TEXT_MAX];
    snprintf(rel, sizeof rel, "%s.jsonl", split);
    sevo_path_join(path, sizeof path, o->output_dir, rel);
    sevo_atomic_file af;
    if (sevo_atomic_open(&af, path, err) != 0) return -1;
    for (int first = 0; first < count; first += CHUNK) {
        int n = count - first < CHUNK ? count - first : CHUNK;
        for (int j = 0; j < n; j++) {
            sevo_rng rs;
            sample_rng(&rs, o->seed, is_train ? P_TRAIN_SCENE : P_TEST_SCENE, first + j);
            synth_scene_sample(&rs, o->cooccurrence, &chunk[j]);
            /* a stream of its own: with no faint objects the world is what it was */
            sample_rng(&rs, o->seed, is_train ? P_TRAIN_FAINT : P_TEST_FAINT, first + j);
            synth_mark_faint(&chunk[j], o->faint_fraction, &rs);
            if (keep) keep[first + j] = chunk[j];
        }
        if (write_images(o, split, is_train ? P_TRAIN_RENDER : P_TEST_RENDER, first, chunk, n,
                         err) != 0) {
            sevo_atomic_abort(&af);
            return -1;
        }
        for (int j = 0; j < n; j++) {
            int i = first + j;
            const synth_scene *s = &chunk[j];
            sevo_rng rq, rw;
            synth_question q;
            sample_rng(&rq, o->seed, is_train ? P_TRAIN_QUESTION : P_TEST_QUESTION, i);
            make_mixed_question(s, &rq, &q);
            /* With annotation noise, some train records carry a caption that describes
             * the scene with one absent partner more; everything else stays exact. */
            synth_scene noisy;
            int captioned = 0;
            if (is_train && o->annotation_noise > 0.0f) {
                sample_rng(&rw, o->seed, P_TRAIN_ANNOTATION, i);
                if ((captioned = synth_annotate(s, o->annotation_noise, &rw, &noisy)) != 0) {
                    st->noisy_annotations++;
                    synth_format_perception(noisy.obj, noisy.n, caption, sizeof caption);
                }
            }
            /* With caption reasoning, the record's trace as a writer who had only the
             * caption would give it (reasoning data written from captions, as in
             * LLaVA-Instruct); the answer stays the scene's */
            synth_question cq;
            int caption_trace = captioned && o->caption_reasoning && synth_question_on_scene(&q, &noisy, &cq) == 0;
            if (caption_trace) {
                st->caption_traces++;
                st->caption_answers_differ += strcmp(cq.answer, q.answer) != 0;
            }
            synth_format_perception(s->obj, s->n, perception, sizeof perception);
            if (is_train) {
                sample_rng(&rw, o->seed, P_TRAIN_WRONG, i);
                synth_wrong_perception(s, &rw, wrong, sizeof wrong);
            }
            count_scene(st, s, &q);
            snprintf(rel, sizeof rel, "images/%s_%06d.png", split, i);
            if (write_record(&af, make_record(rel, &q, perception, captioned ? caption : NULL,
                                                  caption_trace ? &cq : NULL, s, is_train ? wrong : NULL, NULL),
                             err) != 0) {
                sevo_atomic_abort(&af);
                return -1;
            }
        }
    }
    return sevo_atomic_commit(&af, err);
}

/* The negative type of a POPE line, or -1 if the scene has none for this split. */
static int pope_negative(int split, const synth_scene *s, const int *popular_rank, sevo_rng *r) {
    int idx[SYNTH_SCENE_CAP], present[SYNTH_NUM_TYPES];
    switch (split) {
    case POPE_RANDOM:
        return uniform_absent_type(s, r);
    case POPE_POPULAR: {
        int top[POPE_POPULAR_TOP], k = 0;
        present_types(s, present);
        for (int i = 0; i < SYNTH_NUM_TYPES && k < POPE_POPULAR_TOP; i++)
            if (!present[popular_rank[i]]) top[k++] = popular_rank[i];
        return top[sevo_rng_below(r, (uint32_t)k)];
    }
    default: {
        int k = objects_with_absent_partner(s, idx);
        if (k == 0) return -1;
        return synth_partner(object_type(&s->obj[idx[sevo_rng_below(r, (uint32_t)k)]]));
    }
    }
}

static int generate_pope(const synth_options *o, int split, const synth_scene *scenes,
                         const int *popular_rank, long *yes, long *no, sevo_error *err) {
    static const int purposes[NUM_POPE] = {P_POPE_RANDOM, P_POPE_POPULAR, P_POPE_ADVERSARIAL};
    char path[4096], rel[64], perception[SYNTH_TEXT_MAX];
    snprintf(rel, sizeof rel, "pope_%s.jsonl", k_pope_names[split]);
    sevo_path_join(path, sizeof path, o->output_dir, rel);
    sevo_atomic_file af;
    if (sevo_atomic_open(&af, path, err) != 0) return -1;
    for (int i = 0; i < o->num_test; i++) {
        sevo_rng r;
        sample_rng(&r, o->seed, purposes[split], i);
        int si = i, type = -1;
        if (i % 2 == 0) {
            /* Positives and negatives alternate, so the split is exactly balanced. */
            const synth_scene *s = &scenes[si];
            type = object_type(&s->obj[sevo_rng_below(&r, (uint32_t)s->n)]);
        } else {
            /* A scene that has a negative of this kind: the test scene with this index,
             * else the next one that does. In this world every scene has one (an
             * absent partner always exists, see synth_partner), so the search is a
             * safeguard for other worlds, and random negatives the last resort. */
            for (int d = 0; d < o->num_test && type < 0; d++) {
                si = (i + d) % o->num_test;
                type = pope_negative(split, &scenes[si], popular_rank, &r);
            }
            if (type < 0) {
                si = i;
                type = uniform_absent_type(&scenes[si], &r);
            }
        }
        const synth_scene *s = &scenes[si];
        synth_question q;
        synth_make_exist_question(s, type, &q);
        if (strcmp(q.answer, "yes") == 0)
            (*yes)++;
        else
            (*no)++;
        synth_format_perception(s->obj, s->n, perception, sizeof perception);
        snprintf(rel, sizeof rel, "images/test_%06d.png", si);
        if (write_record(&af, make_record(rel, &q, perception, NULL, NULL, s, NULL, k_pope_names[split]),
                         err) != 0) {
            sevo_atomic_abort(&af);
            return -1;
        }
    }
    return sevo_atomic_commit(&af, err);
}

int synth_generate(const synth_options *o, sevo_error *err) {
    if (!o) return sevo_fail(err, "synth: no options");
    if (check_options(o, err) != 0) return -1;
    char images[4096];
    sevo_path_join(images, sizeof images, o->output_dir, "images");
    if (sevo_mkdirs(images, err) != 0) return -1;

    int rc = -1;
    split_stats train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    long pope_yes[NUM_POPE] = {0}, pope_no[NUM_POPE] = {0};
    synth_scene *chunk = sevo_calloc(CHUNK, sizeof(synth_scene), "synth scenes", err);
    synth_scene *scenes =
        chunk ? sevo_calloc((size_t)o->num_test, sizeof(synth_scene), "test scenes", err) : NULL;
    if (!chunk || !scenes) goto done;

    if (generate_split(o, 1, chunk, NULL, &train, err) != 0) goto done;
    if (generate_split(o, 0, chunk, scenes, &test, err) != 0) goto done;

    /* Types ranked by frequency in train (ties: lower type first) for POPE popular. */
    int rank[SYNTH_NUM_TYPES];
    for (int t = 0; t < SYNTH_NUM_TYPES; t++) rank[t] = t;
    for (int i = 1; i < SYNTH_NUM_TYPES; i++) {
        int x = rank[i], j = i - 1;
        while (j >= 0 && train.type_counts[rank[j]] < train.type_counts[x]) {
            rank[j + 1] = rank[j];
            j--;
        }
        rank[j + 1] = x;
    }
    for (int p = 0; p < NUM_POPE; p++)
        if (generate_pope(o, p, scenes, rank, &pope_yes[p], &pope_no[p], err) != 0) goto done;

    /* Last, so that a complete world.json means a complete data set; the images (written
     * without fsync) reach the disk first. */
    sync();
    if (write_world(o, &train, &test, pope_yes, pope_no, err) != 0) goto done;
    rc = 0;
done:
    free(chunk);
    free(scenes);
    return rc;
}
