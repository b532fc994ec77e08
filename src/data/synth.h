/* synth.h: the embedded synthetic visual world (DESIGN §2).
 *
 * A fixed world of 4 shapes x 5 colours = 20 object types on a 3x3 grid. Scenes hold
 * 1-4 objects; every type has a partner type that is added to a scene with probability
 * `cooccurrence`, which is the language prior a small VLM learns and then hallucinates
 * from. synth_generate renders scenes to PNG and writes question/answer records with
 * their perception (exact, or with annotation noise naming one absent partner; see
 * synth_annotate), K = 5 exact reasoning steps, wrong perceptions (for the refine
 * sub-policy) and POPE-style existence splits. See docs/synthetic-world.md.
 *
 * Everything here is deterministic: the same options give byte-identical files. */
#ifndef SEVO_DATA_SYNTH_H
#define SEVO_DATA_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"

#define SYNTH_NUM_SHAPES 4
#define SYNTH_NUM_COLORS 5
#define SYNTH_NUM_TYPES (SYNTH_NUM_SHAPES * SYNTH_NUM_COLORS)
#define SYNTH_GRID 3
#define SYNTH_NUM_POSITIONS (SYNTH_GRID * SYNTH_GRID)
#define SYNTH_MAX_OBJECTS 4
/* A scene's object capacity: a sampled scene holds at most SYNTH_MAX_OBJECTS, a noisy
 * annotation of it one more (synth_annotate). */
#define SYNTH_SCENE_CAP (SYNTH_MAX_OBJECTS + 1)
#define SYNTH_NUM_STEPS 5 /* K: every question has exactly this many reasoning steps */
#define SYNTH_NUM_QTYPES 5

/* Text capacities (bytes, NUL included); every string the world makes fits. */
#define SYNTH_TEXT_MAX 256

/* Name tables. Shapes: circle, square, triangle, cross. Colours: red, green, blue,
 * yellow, purple. Positions in row-major order: "top left", "top center", "top right",
 * "middle left", "center", "middle right", "bottom left", "bottom center",
 * "bottom right" (the middle cell is the single word "center"). */
extern const char *const synth_shape_names[SYNTH_NUM_SHAPES];
extern const char *const synth_shape_plurals[SYNTH_NUM_SHAPES];
extern const char *const synth_color_names[SYNTH_NUM_COLORS];
extern const unsigned char synth_color_rgb[SYNTH_NUM_COLORS][3];
extern const char *const synth_position_names[SYNTH_NUM_POSITIONS];

/* Question types, in this order, with their depth (the reasoning step after which the
 * answer is determined): exist 1, color 2, count 2, spatial 3, compare 3. */
enum { SYNTH_Q_EXIST, SYNTH_Q_COLOR, SYNTH_Q_COUNT, SYNTH_Q_SPATIAL, SYNTH_Q_COMPARE };
extern const char *const synth_qtype_names[SYNTH_NUM_QTYPES];
extern const int synth_qtype_depth[SYNTH_NUM_QTYPES];

/* Spatial relations of the "spatial" question: "left of", "right of", "above", "below". */
#define SYNTH_NUM_RELATIONS 4
extern const char *const synth_relation_names[SYNTH_NUM_RELATIONS];

/* Index of a name in the tables above, or -1. */
int synth_shape_index(const char *name);
int synth_color_index(const char *name);
int synth_position_index(const char *name);
int synth_qtype_index(const char *name);

/* An object type is shape * SYNTH_NUM_COLORS + color, in 0..SYNTH_NUM_TYPES-1. */
int synth_type(int shape, int color);
int synth_type_shape(int type);
int synth_type_color(int type);

/* The partner of a type: partner(shape s, colour c) = (shape (s+2) mod 4,
 * colour (c+1) mod 5), e.g. red circle -> green triangle. It is not symmetric: following
 * partners walks a cycle of length lcm(2, 5) = 10, so the 20 types form two cycles and
 * no scene of at most 4 objects can contain every partner of its objects: there is
 * always an absent partner to ask about (the hallucination bait). */
int synth_partner(int type);

typedef struct synth_object {
    int shape;
    int color;
    int position; /* 0..8, row-major; row = position / 3, column = position % 3 */
} synth_object;

/* A scene: n objects of distinct types in distinct cells, sorted by position. */
typedef struct synth_scene {
    int n;
    synth_object obj[SYNTH_SCENE_CAP];
    unsigned char faint[SYNTH_SCENE_CAP]; /* 1: obj[i] is drawn faint (see synth_mark_faint) */
} synth_scene;

/* Samples a scene: n uniform in 1..4; the first type uniform; then, while fewer than
 * n, with probability `cooccurrence` the absent partner of a random present object
 * whose partner is absent, else a uniform absent type; cells uniform over free ones. */
void synth_scene_sample(sevo_rng *r, float cooccurrence, synth_scene *s);

/* Marks each partner object (an object whose type is the partner of another object's
 * in the scene) faint with probability `fraction`, drawing one number per object from r.
 * A faint object is in the ground truth like any other but drawn at a fraction of its
 * contrast: meant as the small detail a model misses and fills in from the co-occurrence
 * prior (docs/synthetic-world.md says what it did to the tiny model). */
void synth_mark_faint(synth_scene *s, float fraction, sevo_rng *r);

/* The scene as a noisy annotator describes it. With probability `noise` (one draw from
 * r, always made) the description names one object that is not there: the absent
 * partner of a random present object whose partner is absent, at a uniform free cell,
 * in its row-major place. That is how caption data teaches real VLMs to hallucinate: an
 * object that usually co-occurs with what is seen, named as if seen. Otherwise the
 * description is the scene. Returns 1 when an object was added. Faint marks are
 * cleared (a description is text, never drawn). */
int synth_annotate(const synth_scene *s, float noise, sevo_rng *r, synth_scene *out);

/* Renders a scene (n = 0 gives the background only, e.g. a "blank image") into rgb
 * (image_size * image_size * 3 bytes, row-major RGB). Draws only from r. Faint objects
 * are blended at opacity faint_contrast (1 draws them like the rest). */
void synth_render(const synth_scene *s, int image_size, float noise, float faint_contrast, sevo_rng *r,
                  unsigned char *rgb);

/* Formats objects as a perception: "<colour> <shape> at <position>" joined by " , ",
 * in row-major cell order (objs need not be sorted); "none" when n == 0. */
void synth_format_perception(const synth_object *objs, int n, char *out, size_t cap);

/* Parses a perception back into objects, in text order. Returns the number of objects,
 * or -1 when the text does not follow the format exactly or holds more than max
 * objects. "none" (or an empty/blank text) parses to 0 objects. */
int synth_parse_perception(const char *text, synth_object *objs, int max);

/* The object type an existence question asks about: "is there a <colour> <shape> ?"
 * (the question mark optional, tokens as synth_parse_perception reads them) sets *type
 * and returns 0; any other text returns -1 and leaves *type alone. */
int synth_parse_exist_question(const char *text, int *type);

/* One question with its exact answer and reasoning trace. */
typedef struct synth_question {
    int qtype;
    int depth;
    char question[SYNTH_TEXT_MAX];
    char answer[16];
    char steps[SYNTH_NUM_STEPS][SYNTH_TEXT_MAX];
    int arg[3]; /* what the question asks about, per type: exist (type), color (shape),
                 * count (shape), spatial (type a, relation, type b), compare (shape 1,
                 * shape 2) */
} synth_question;

/* Makes a question of type qtype about the scene, drawing from r. Returns 0, or -1 if
 * the scene cannot support that type (color needs a shape present exactly once,
 * spatial needs two objects); r is then left untouched. */
int synth_make_question(const synth_scene *s, int qtype, sevo_rng *r, synth_question *q);

/* The existence question "is there a <colour> <shape> ?" about a given type. */
void synth_make_exist_question(const synth_scene *s, int type, synth_question *q);

/* The same question (q's type and arguments, so the same text) asked about another
 * scene, with that scene's answer and trace: how a caption's scene answers a record's
 * question. Returns -1 when that scene cannot support it (a colour question whose shape
 * is not there exactly once, a spatial question about an object that is not there);
 * out is then unspecified. */
int synth_question_on_scene(const synth_question *q, const synth_scene *s, synth_question *out);

/* A plausible wrong perception of the scene (for training the refine sub-policy):
 * with probability 0.6 the true one plus the absent partner of a present object at a
 * free cell (a hallucination), else with one object dropped (n >= 2), else with one
 * object's colour changed. Formatted like synth_format_perception. */
void synth_wrong_perception(const synth_scene *s, sevo_rng *r, char *out, size_t cap);

typedef struct synth_options {
    const char *output_dir;
    int num_train;
    int num_test;
    uint64_t seed;
    int image_size;     /* pixels per side, 8..1024 */
    float cooccurrence; /* P(add a partner), in [0, 1] */
    float noise;        /* std of Gaussian pixel noise, [0, 1] units */
    float faint_fraction; /* P(a partner object is drawn faint), in [0, 1] */
    float faint_contrast; /* a faint object's opacity, in (0, 1] */
    float annotation_noise; /* P(a train record has a caption naming an absent partner), [0, 1] */
    int caption_reasoning;  /* 1: a captioned record also carries its question's trace and
                             * answer on the caption's scene (caption_steps, caption_answer);
                             * needs annotation_noise > 0 */
} synth_options;

/* Defaults: output_dir "data/synthetic", 4000 train, 1000 test, seed 42, 30 px,
 * co-occurrence 0.8, noise 0.04, faint fraction 0 (contrast 0.25), annotation noise 0,
 * no caption reasoning. */
void synth_options_default(synth_options *o);

/* Writes the data set into o->output_dir (created if needed): images/train_%06d.png and
 * images/test_%06d.png (0-based), train.jsonl, test.jsonl, pope_random.jsonl,
 * pope_popular.jsonl, pope_adversarial.jsonl and world.json (written last, so its
 * presence means the set is complete). Every file is written atomically. */
int synth_generate(const synth_options *o, sevo_error *err);

#endif
