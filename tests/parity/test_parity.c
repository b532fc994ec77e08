/* test_parity.c: sevo against PyTorch (docs/parity.md).
 *
 * tests/parity/fixtures/ holds two small checkpoints written by sevo (model_a, model_b:
 * between them every architecture variant the engine has) and, for each, the tensors
 * that an independent PyTorch implementation of the same model computed from the same
 * files (tools/reference/make_fixtures.py, in float64, stored as float32). This test
 * runs sevo's own code paths on the same inputs and compares, item by item:
 *
 *   logits         the generation path (KV cache), token by token and in one chunk
 *   hidden, logp   the packed training forward: final hidden states, per-token log-probs
 *   sft            the masked mean cross-entropy and the gradient of every parameter
 *   adamw          three optimizer steps with warmup, cosine decay and global-norm
 *                  clipping: the learning rates, the gradient norms and the parameters
 *   dpo            sequence log-probs of image-conditioned chosen/rejected pairs, the
 *                  loss (sigmoid, IPO, hinge, label smoothing), its gradient on the
 *                  log-probs and on every parameter through the full backward
 *   gate           the HSR-EE gate's logits, BCE (from logits and from scores), its
 *                  gradients on the weights and the input, REINFORCE's d log P / d theta
 *   tokenizer      ids of fixed strings against what Hugging Face `tokenizers` gives
 *
 * Every comparison is elementwise |sevo - ref| <= atol + rtol * |ref|, with the
 * tolerances stated at each call (and justified in docs/parity.md); every item prints
 * its largest errors. No Python is needed here: the fixtures are committed.
 *
 * The same binary writes the checkpoints the fixtures start from:
 *   parity_test_parity --write-checkpoints DIR
 * (scripts/make-fixtures.sh runs it, then the PyTorch reference). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/rng.h"
#include "data/tokenizer.h"
#include "kernels/kernels.h"
#include "method/hsr_ee.h"
#include "method/rewards.h"
#include "model/checkpoint.h"
#include "model/prompt.h"
#include "model/safetensors.h"
#include "model/vlm.h"
#include "train/examples.h"
#include "train/optim.h"

/* ------------------------------------------------------------------ the checkpoints */

/* The texts the fixtures' WordLevel vocabulary is built from (sevo's builder, with the
 * prompt's control tokens first). Words outside it encode as <unk>. */
static const char *const VOCAB_TEXTS[] = {
    "is there a red circle in the image?",
    "what colour is the square?",
    "a red circle at top-left and a blue square at bottom-right.",
    "the square is blue. the circle is red.",
    "count the objects: there are 2 objects.",
    "yes no blue red green 0 1 2 3",
    "caf\303\251 na\303\257ve \303\251cole", /* UTF-8, in octal: a hex escape would eat the c */
    "don't stop_here 42",
};
#define N_VOCAB_TEXTS ((int)(sizeof VOCAB_TEXTS / sizeof VOCAB_TEXTS[0]))
#define GATE_HIDDEN 8

/* model_a: sevo-tiny's architecture, shrunk: a LayerNorm / tanh-GELU / biased ViT, a GELU
 * projector, and a Llama decoder (RMSNorm, SwiGLU, grouped-query attention 4 -> 2,
 * tied head). model_b: every other choice: an RMSNorm / erf-GELU / bias-free ViT with
 * grouped-query attention, a SiLU projector, and a LayerNorm decoder with a plain SiLU
 * MLP, biases, multi-query attention (4 -> 1), rope_theta 500, an untied head and a
 * vocabulary padded past the tokenizer. */
static void parity_config(vlm_config *c, int variant, const sevo_tokenizer *tok) {
    int vocab = tokenizer_vocab_size(tok);
    vlm_config_tiny(c, vocab);
    c->bos_token_id = tokenizer_token_id(tok, "<bos>");
    c->eos_token_id = tokenizer_token_id(tok, "<eos>");
    c->pad_token_id = tokenizer_token_id(tok, "<pad>");
    c->image_token_id = tokenizer_token_id(tok, "<image>");
    c->max_position_embeddings = 64;
    if (variant == 0) {
        c->image_size = 12;
        c->patch_size = 4; /* 9 patches */
        c->vision = (vlm_tower_config){.hidden_size = 16, .num_layers = 1, .num_heads = 2, .num_kv_heads = 2,
                                       .intermediate_size = 32, .norm = VLM_NORM_LAYER,
                                       .act = VLM_ACT_GELU_TANH, .gated = 0, .bias = 1, .norm_eps = 1e-6f};
        c->projector_act = VLM_ACT_GELU;
        c->text = (vlm_tower_config){.hidden_size = 16, .num_layers = 2, .num_heads = 4, .num_kv_heads = 2,
                                     .intermediate_size = 32, .norm = VLM_NORM_RMS, .act = VLM_ACT_SILU,
                                     .gated = 1, .bias = 0, .norm_eps = 1e-5f};
        c->rope_theta = 10000.0f;
        c->tie_word_embeddings = 1;
    } else {
        c->image_size = 8;
        c->patch_size = 4; /* 4 patches */
        c->vision = (vlm_tower_config){.hidden_size = 16, .num_layers = 2, .num_heads = 4, .num_kv_heads = 2,
                                       .intermediate_size = 24, .norm = VLM_NORM_RMS, .act = VLM_ACT_GELU,
                                       .gated = 0, .bias = 0, .norm_eps = 1e-6f};
        c->projector_act = VLM_ACT_SILU;
        c->text = (vlm_tower_config){.hidden_size = 24, .num_layers = 1, .num_heads = 4, .num_kv_heads = 1,
                                     .intermediate_size = 40, .norm = VLM_NORM_LAYER, .act = VLM_ACT_SILU,
                                     .gated = 0, .bias = 1, .norm_eps = 1e-6f};
        c->rope_theta = 500.0f;
        c->tie_word_embeddings = 0;
        c->vocab_size = vocab + 3;
    }
}

/* sevo's initialisation (vlm_init_weights), then spread out so that every path carries
 * a signal a wrong implementation would change: with GPT-2's std 0.02 in a 16-wide
 * decoder the attention is uniform to 1e-3 (RoPE and the masks would hardly matter),
 * and unit norms and zero biases hide any mistake in applying them. So: the decoder's
 * matrices, the embeddings and the vision position embeddings x10 (std 0.2), norm
 * weights 1 + 0.2 N(0,1), biases 0.1 N(0,1), drawn from sevo's RNG. */
static void spread_weights(vlm *m, uint64_t seed) {
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 0x9a21);
    float *p = vlm_params(m);
    for (int i = 0; i < vlm_num_tensors(m); i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        float *x = p + t->offset;
        size_t len = strlen(t->name);
        int is_bias = len > 5 && !strcmp(t->name + len - 5, ".bias");
        int is_norm = strstr(t->name, "norm") != NULL;
        int scaled = strstr(t->name, "language_model") || strstr(t->name, "position_embedding");
        for (size_t j = 0; j < t->numel; j++) {
            if (is_bias) x[j] = 0.1f * sevo_rng_normal(&rng);
            else if (is_norm) x[j] = 1.0f + 0.2f * sevo_rng_normal(&rng);
            else if (scaled) x[j] *= 10.0f;
        }
    }
}

static int write_checkpoints(const char *dir) {
    sevo_error err;
    sevo_tokenizer *tok = NULL;
    if (tokenizer_build_wordlevel(&tok, VOCAB_TEXTS, N_VOCAB_TEXTS, PROMPT_SPECIAL_TOKENS, PROMPT_NUM_SPECIAL_TOKENS,
                                  &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int rc = 0;
    for (int v = 0; v < 2 && !rc; v++) {
        char sub[4096], path[4096];
        snprintf(sub, sizeof sub, "%s/model_%c", dir, 'a' + v);
        vlm_config c;
        vlm *m = NULL;
        hsr_gate g;
        memset(&g, 0, sizeof g);
        parity_config(&c, v, tok);
        uint64_t seed = 1000 + (uint64_t)v;
        if (vlm_create(&m, &c, &err)) {
            rc = 1;
        } else {
            vlm_init_weights(m, seed);
            spread_weights(m, seed);
            snprintf(path, sizeof path, "%s/%s", sub, HSR_GATE_FILE);
            if (checkpoint_save_model(sub, m, tok, &err) ||
                hsr_gate_init(&g, c.text.hidden_size, GATE_HIDDEN, 0.7f, seed, &err) ||
                hsr_gate_save(&g, path, &err))
                rc = 1;
        }
        if (rc) fprintf(stderr, "%s: %s\n", sub, err.msg);
        else printf("wrote %s (%zu parameters)\n", sub, vlm_num_params(m));
        hsr_gate_release(&g);
        vlm_free(m);
    }
    tokenizer_free(tok);
    return rc;
}

/* ------------------------------------------------------------------ comparisons */

/* The model the current comparisons run on, for the printed lines. */
static char g_model = '-';

static const char *fixture_dir(void) {
    static char dir[4096];
    const char *src = getenv("SEVO_SOURCE_DIR");
    snprintf(dir, sizeof dir, "%s/tests/parity/fixtures", src && *src ? src : ".");
    return dir;
}

/* Running error statistics of a comparison: |got - want| <= atol + rtol |want| per value.
 * max_rel is taken over the values the relative term governs (|want| >= atol / rtol);
 * worst is the largest error as a share of its allowance (<= 1 passes). */
typedef struct tol_stats {
    double max_abs, max_rel, worst;
    size_t n;
    int bad;
} tol_stats;

/* Adds n values to st; returns how many of them are out of tolerance (the first few of
 * each call are printed, named `what`). */
static int stats_add(tol_stats *st, const char *what, const float *got, const float *want, size_t n, double rtol,
                     double atol) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], d = fabs(g - w), allow = atol + rtol * fabs(w);
        if (!(d <= allow)) {
            if (bad < 5) fprintf(stderr, "  %s[%zu]: sevo %.9g, reference %.9g\n", what, i, g, w);
            bad++;
        }
        if (d > st->max_abs || d != d) st->max_abs = d;
        if (rtol > 0 && fabs(w) >= atol / rtol && d / fabs(w) > st->max_rel) st->max_rel = d / fabs(w);
        if (allow > 0 ? d / allow > st->worst : d > 0) st->worst = allow > 0 ? d / allow : INFINITY;
        if (d != d) st->worst = NAN;
    }
    st->n += n;
    st->bad += bad;
    return bad;
}

static void stats_print(const char *what, const tol_stats *st, double rtol, const char *atol_text) {
    printf("parity[%c] %-44s n=%-6zu max_abs %.2e  max_rel %.2e  worst/allowed %.3f  (rtol %.0e, atol %s)%s\n", g_model, what,
           st->n, st->max_abs, st->max_rel, st->worst, rtol, atol_text, st->bad ? "  FAIL" : "");
}

/* Compares n values and prints one line; returns the number out of tolerance. */
static int compare(const char *what, const float *got, const float *want, size_t n, double rtol, double atol) {
    tol_stats st = {0};
    char atol_text[32];
    stats_add(&st, what, got, want, n, rtol, atol);
    snprintf(atol_text, sizeof atol_text, "%.0e", atol);
    stats_print(what, &st, rtol, atol_text);
    return st.bad;
}

static int compare_d(const char *what, const double *got, const float *want, size_t n, double rtol, double atol) {
    float *g = malloc((n ? n : 1) * sizeof *g);
    assert_non_null(g);
    for (size_t i = 0; i < n; i++) g[i] = (float)got[i];
    int bad = compare(what, g, want, n, rtol, atol);
    free(g);
    return bad;
}

/* Largest |x| of a tensor: the scale its absolute tolerance is taken from. */
static double max_abs_of(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* ------------------------------------------------------------------ fixture loading */

typedef struct parity {
    char dir[4096];
    vlm *m;
    sevo_tokenizer *tok;
    sevo_safetensors *ref;
    int P, D, V, image_floats;
} parity;

static float *ref_tensor(const parity *f, const char *name, size_t *numel) {
    sevo_error err;
    int64_t n = safetensors_numel(f->ref, name);
    if (n < 0) fail_msg("reference tensor '%s' is missing (regenerate with scripts/make-fixtures.sh)", name);
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    assert_non_null(x);
    if (safetensors_read_f32(f->ref, name, x, NULL, 0, &err)) fail_msg("%s", err.msg);
    if (numel) *numel = (size_t)n;
    return x;
}

static double ref_scalar(const parity *f, const char *name) {
    size_t n;
    float *x = ref_tensor(f, name, &n);
    assert_int_equal(n, 1);
    double v = x[0];
    free(x);
    return v;
}

static parity *parity_open(char variant) {
    parity *f = calloc(1, sizeof *f);
    assert_non_null(f);
    sevo_error err;
    char path[4200];
    snprintf(f->dir, sizeof f->dir, "%s/model_%c", fixture_dir(), variant);
    g_model = variant;
    if (checkpoint_load_model(f->dir, &f->m, &f->tok, &err)) fail_msg("%s", err.msg);
    snprintf(path, sizeof path, "%s/reference_%c.safetensors", fixture_dir(), variant);
    if (safetensors_open(&f->ref, path, &err)) fail_msg("%s", err.msg);
    const vlm_config *c = vlm_get_config(f->m);
    f->P = vlm_config_num_patches(c);
    f->D = c->text.hidden_size;
    f->V = c->vocab_size;
    f->image_floats = c->num_channels * c->image_size * c->image_size;
    return f;
}

static void parity_close(parity *f) {
    vlm_free(f->m);
    tokenizer_free(f->tok);
    safetensors_close(f->ref);
    free(f);
}

/* A set of token sequences from the fixture ("<set>.ids" concatenated, ".loss" the
 * response mask, ".lengths", ".image" the image of each, -1 for none) with the
 * fixture's images, as sevo's trainers hold their data. */
typedef struct seq_set {
    example_set es;
    int n;
    int *start; /* [n + 1] offset of each sequence in the concatenation */
    int *ids;   /* the concatenation */
} seq_set;

static void seq_set_load(seq_set *s, const parity *f, const char *set) {
    char name[128];
    size_t n_tok, n_loss, n_len, n_img, n_pix;
    snprintf(name, sizeof name, "%s.ids", set);
    float *ids = ref_tensor(f, name, &n_tok);
    snprintf(name, sizeof name, "%s.loss", set);
    float *loss = ref_tensor(f, name, &n_loss);
    snprintf(name, sizeof name, "%s.lengths", set);
    float *len = ref_tensor(f, name, &n_len);
    snprintf(name, sizeof name, "%s.image", set);
    float *img = ref_tensor(f, name, &n_img);
    float *pixels = ref_tensor(f, "images", &n_pix);
    assert_int_equal(n_tok, n_loss);
    assert_int_equal(n_len, n_img);
    assert_int_equal(n_pix % (size_t)f->image_floats, 0);
    example_set_init(&s->es, f->image_floats);
    sevo_error err;
    /* the images, into blank slots (their pixels are given, already normalised) */
    for (size_t i = 0; i < n_pix / (size_t)f->image_floats; i++) {
        int slot;
        if (example_set_blank_image(&s->es, &slot, &err)) fail_msg("%s", err.msg);
        memcpy(s->es.images + (size_t)slot * f->image_floats, pixels + i * f->image_floats,
               (size_t)f->image_floats * sizeof(float));
    }
    s->n = (int)n_len;
    s->start = malloc((size_t)(s->n + 1) * sizeof *s->start);
    s->ids = malloc(n_tok * sizeof *s->ids);
    assert_true(s->start && s->ids);
    tokseq q;
    tokseq_init(&q);
    int off = 0;
    for (int i = 0; i < s->n; i++) {
        s->start[i] = off;
        q.n = 0;
        for (int t = 0; t < (int)len[i]; t++) {
            s->ids[off + t] = (int)ids[off + t];
            if (tokseq_push(&q, (int)ids[off + t], loss[off + t] != 0.0f, &err)) fail_msg("%s", err.msg);
        }
        if (example_set_add(&s->es, &q, (int)img[i], 1 << 20, &err)) fail_msg("%s", err.msg);
        off += (int)len[i];
    }
    s->start[s->n] = off;
    assert_int_equal(off, n_tok);
    tokseq_free(&q);
    free(ids);
    free(loss);
    free(len);
    free(img);
    free(pixels);
}

static void seq_set_free(seq_set *s) {
    example_set_free(&s->es);
    free(s->start);
    free(s->ids);
}

/* All sequences of the set in one batch, packed as the trainers pack (batch_assemble,
 * from rows of twice the longest sequence), attention kept inside each sequence. */
static void seq_set_batch(const seq_set *s, const parity *f, batch_buf *bb) {
    int idx[64], longest = 0;
    assert_true(s->n <= 64);
    for (int i = 0; i < s->n; i++) {
        idx[i] = i;
        longest = s->es.ex[i].n > longest ? s->es.ex[i].n : longest;
    }
    sevo_error err;
    if (batch_assemble(bb, &s->es, idx, s->n, vlm_get_config(f->m)->pad_token_id, 2 * longest, &err))
        fail_msg("%s", err.msg);
}

/* The forward of an assembled batch; logp [B*T]. */
static float *forward(const parity *f, batch_buf *bb) {
    sevo_error err;
    float *logp = malloc((size_t)bb->b.B * bb->b.T * sizeof *logp);
    assert_non_null(logp);
    if (vlm_forward(f->m, &bb->b, logp, &err)) fail_msg("%s", err.msg);
    return logp;
}

/* The SFT loss as sevo's trainer computes it (sft_step: the mean token cross-entropy over
 * the response tokens), its gradient accumulated into the model; returns the loss. */
static double sft_loss_backward(const parity *f, const seq_set *s, batch_buf *bb) {
    int idx[64];
    for (int i = 0; i < s->n; i++) idx[i] = i;
    seq_set_batch(s, f, bb);
    float *logp = forward(f, bb);
    float *dlogp = malloc((size_t)bb->b.B * bb->b.T * sizeof *dlogp);
    assert_non_null(dlogp);
    double weight = examples_target_weight(&s->es, idx, s->n);
    double nll = batch_weighted_nll(bb, &s->es, idx, s->n, logp, (float)(-1.0 / weight), dlogp);
    vlm_backward(f->m, dlogp);
    free(logp);
    free(dlogp);
    return nll / weight;
}

/* Every parameter tensor of the model (params or grads arena) against
 * "<prefix><tensor name>", one summary line for all (and one per failing tensor).
 * atol is atol_scale times the largest |value| of the whole reference set: gradients
 * of different tensors come from one loss, and a float32 sum carries an error set by
 * the size of its terms, not of its result, so one scale serves every tensor. */
static int compare_all_tensors(const parity *f, const float *arena, const char *prefix, double rtol,
                               double atol_scale) {
    vlm *m = f->m;
    int nt = vlm_num_tensors(m);
    float **want = calloc((size_t)nt, sizeof *want);
    assert_non_null(want);
    double scale = 0;
    for (int i = 0; i < nt; i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        char name[160];
        size_t n;
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        want[i] = ref_tensor(f, name, &n);
        assert_int_equal(n, t->numel);
        double s = max_abs_of(want[i], n);
        scale = s > scale ? s : scale;
    }
    double atol = atol_scale * scale;
    tol_stats all = {0};
    for (int i = 0; i < nt; i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        char what[200];
        snprintf(what, sizeof what, "%s%s", prefix, t->name);
        if (stats_add(&all, what, arena + t->offset, want[i], t->numel, rtol, atol))
            compare(what, arena + t->offset, want[i], t->numel, rtol, atol);
        free(want[i]);
    }
    free(want);
    char what[200], atol_text[64];
    snprintf(what, sizeof what, "%s* (%d tensors)", prefix, nt);
    snprintf(atol_text, sizeof atol_text, "%.1e = %.0e x max|ref|", atol, atol_scale);
    stats_print(what, &all, rtol, atol_text);
    return all.bad;
}

/* ------------------------------------------------------------------ the tests */

/* Tolerances (docs/parity.md explains each). Relative: 1e-4 at most everywhere, tighter
 * where the computation is short. Absolute: a small multiple of float32's resolution at
 * the scale of the quantity, since a float32 result that is a sum of terms of size S
 * carries an error of a few 1e-7 S whatever its own size. */
#define RTOL 1e-4
#define RTOL_TIGHT 1e-5

/* Logits of every sequence through the generation path (vlm_session, KV cache), fed one
 * token at a time; and the last logits when each sequence is fed in one chunk. */
static void check_logits(char variant) {
    parity *f = parity_open(variant);
    seq_set s;
    seq_set_load(&s, f, "sft");
    size_t n_ref;
    float *want = ref_tensor(f, "logits", &n_ref);
    int n_tok = s.start[s.n];
    assert_int_equal(n_ref, (size_t)n_tok * f->V);
    float *got = malloc(n_ref * sizeof *got), *got_chunk = malloc((size_t)s.n * f->V * sizeof *got);
    float *want_chunk = malloc((size_t)s.n * f->V * sizeof *got);
    assert_true(got && got_chunk && want_chunk);
    sevo_error err;
    vlm_session *sess = NULL;
    if (vlm_session_create(&sess, f->m, 64, &err)) fail_msg("%s", err.msg);
    for (int i = 0; i < s.n; i++) {
        const train_example *e = &s.es.ex[i];
        for (int pass = 0; pass < 2; pass++) {
            vlm_session_reset(sess);
            if (e->image >= 0) vlm_session_set_image(sess, s.es.images + (size_t)e->image * f->image_floats);
            if (pass == 1) {
                if (vlm_session_feed(sess, e->ids, e->n, &err)) fail_msg("%s", err.msg);
                memcpy(got_chunk + (size_t)i * f->V, vlm_session_logits(sess), (size_t)f->V * sizeof(float));
                memcpy(want_chunk + (size_t)i * f->V, want + (size_t)(s.start[i] + e->n - 1) * f->V,
                       (size_t)f->V * sizeof(float));
                continue;
            }
            for (int t = 0; t < e->n; t++) {
                if (vlm_session_feed(sess, e->ids + t, 1, &err)) fail_msg("%s", err.msg);
                memcpy(got + (size_t)(s.start[i] + t) * f->V, vlm_session_logits(sess), (size_t)f->V * sizeof(float));
            }
        }
    }
    /* logits are O(1): a 1e-5 floor is ~100 float32 ulps at that scale */
    int bad = compare("logits (KV cache, token by token)", got, want, n_ref, RTOL, 1e-5);
    bad += compare("logits (KV cache, whole sequence)", got_chunk, want_chunk, (size_t)s.n * f->V, RTOL, 1e-5);
    vlm_session_free(sess);
    free(got);
    free(got_chunk);
    free(want_chunk);
    free(want);
    seq_set_free(&s);
    parity_close(f);
    assert_int_equal(bad, 0);
}

/* The training forward over the packed batch: final hidden states and the log-prob of
 * every next token (not just the response tokens). */
static void check_forward(char variant) {
    parity *f = parity_open(variant);
    seq_set s;
    seq_set_load(&s, f, "sft");
    batch_buf bb;
    batch_buf_init(&bb);
    seq_set_batch(&s, f, &bb);
    int n_tok = s.start[s.n];
    for (int i = 0; i < s.n; i++)
        for (int t = 0; t < s.es.ex[i].n; t++)
            bb.targets[bb.ex_start[i] + t] = t + 1 < s.es.ex[i].n ? s.es.ex[i].ids[t + 1] : -1;
    float *logp = forward(f, &bb);
    const float *hid = vlm_last_hidden(f->m);
    float *got_lp = malloc((size_t)n_tok * sizeof *got_lp), *got_h = malloc((size_t)n_tok * f->D * sizeof *got_h);
    assert_true(got_lp && got_h);
    for (int i = 0; i < s.n; i++)
        for (int t = 0; t < s.es.ex[i].n; t++) {
            got_lp[s.start[i] + t] = logp[bb.ex_start[i] + t];
            memcpy(got_h + (size_t)(s.start[i] + t) * f->D, hid + (size_t)(bb.ex_start[i] + t) * f->D,
                   (size_t)f->D * sizeof(float));
        }
    size_t n;
    float *want_h = ref_tensor(f, "hidden", &n);
    assert_int_equal(n, (size_t)n_tok * f->D);
    /* normalised hidden states are O(1) */
    int bad = compare("hidden (training forward, packed)", got_h, want_h, n, RTOL, 1e-5);
    float *want_lp = ref_tensor(f, "logp_all", &n);
    assert_int_equal(n, (size_t)n_tok);
    /* log-probs are O(1..10) and computed as x_t - max - log(sum): 1e-5 absolute */
    bad += compare("per-token log-probs (training forward)", got_lp, want_lp, n, RTOL, 1e-5);
    free(want_h);
    free(want_lp);
    free(got_lp);
    free(got_h);
    free(logp);
    batch_buf_free(&bb);
    seq_set_free(&s);
    parity_close(f);
    assert_int_equal(bad, 0);
}

/* The SFT loss and the gradient of every parameter. */
static void check_sft(char variant) {
    parity *f = parity_open(variant);
    seq_set s;
    seq_set_load(&s, f, "sft");
    batch_buf bb;
    batch_buf_init(&bb);
    vlm_zero_grads(f->m);
    double loss = sft_loss_backward(f, &s, &bb);
    float want = (float)ref_scalar(f, "sft.loss_value");
    int bad = compare_d("sft loss (masked mean cross-entropy)", &loss, &want, 1, RTOL_TIGHT, 0);
    /* gradients: atol 1e-5 of the largest gradient (near-zero entries are sums of
     * terms of that size, carrying float32 errors of ~1e-7 of it times sqrt(terms)) */
    bad += compare_all_tensors(f, vlm_grads(f->m), "sft.grad.", RTOL, 1e-5);
    batch_buf_free(&bb);
    seq_set_free(&s);
    parity_close(f);
    assert_int_equal(bad, 0);
}

/* The parameters after the AdamW steps. Adam moves each parameter by about lr per step
 * whatever its gradient's size, so the error of a parameter is lr times the relative
 * error of its gradient history, and for the smallest gradients (1e-6 of the largest)
 * float32 leaves that at 1e-4..1e-3: atol = 1e-3 x the peak lr, rtol 1e-4.
 * The attention's key biases are left out: softmax is invariant to adding the same
 * q.b_k to every score of a row, so their true gradient is exactly 0 and the float32
 * one (sevo's or PyTorch's) is rounding noise of ~1e-9, which Adam, normalising each
 * element by its own size, turns into steps of up to lr in a random direction (torch's
 * own float32 run lands 1e-3 from its float64 run there). Their gradients are compared
 * (with everything else, in check_sft); here only that they stayed within 3 lr. */
static int compare_params_after_adamw(const parity *f, float peak) {
    vlm *m = f->m;
    double atol = 1e-3 * peak;
    tol_stats all = {0};
    int bad = 0;
    for (int i = 0; i < vlm_num_tensors(m); i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        char name[160];
        size_t n;
        snprintf(name, sizeof name, "adamw.param.%s", t->name);
        float *want = ref_tensor(f, name, &n);
        assert_int_equal(n, t->numel);
        const float *got = vlm_params(m) + t->offset;
        if (strstr(t->name, "self_attn.k_proj.bias")) bad += compare(name, got, want, n, 0, 3.0 * peak);
        else if (stats_add(&all, name, got, want, n, RTOL, atol)) compare(name, got, want, n, RTOL, atol);
        free(want);
    }
    char atol_text[32];
    snprintf(atol_text, sizeof atol_text, "%.0e = 1e-3 x lr", atol);
    stats_print("adamw.param.* (3 steps; key biases apart)", &all, RTOL, atol_text);
    return bad + all.bad;
}

/* Three optimizer steps on the SFT batch exactly as trainer_run takes them: zero the
 * gradients, forward/backward, grad_global_norm, lr_at, adamw_step with the clipping
 * factor. */
static void check_adamw(char variant) {
    parity *f = parity_open(variant);
    seq_set s;
    seq_set_load(&s, f, "sft");
    batch_buf bb;
    batch_buf_init(&bb);
    float peak = (float)ref_scalar(f, "adamw.lr_peak"), wd = (float)ref_scalar(f, "adamw.weight_decay");
    float max_norm = (float)ref_scalar(f, "adamw.max_grad_norm");
    int total = (int)ref_scalar(f, "adamw.total_steps"), warmup = (int)ref_scalar(f, "adamw.warmup_steps");
    size_t n_steps;
    float *want_lr = ref_tensor(f, "adamw.lr", &n_steps);
    float *want_gn = ref_tensor(f, "adamw.grad_norm", NULL);
    float lr[8], gn[8];
    assert_true(n_steps <= 8);
    sevo_error err;
    adamw opt;
    if (adamw_init(&opt, vlm_num_params(f->m), &err)) fail_msg("%s", err.msg);
    for (size_t k = 0; k < n_steps; k++) {
        vlm_zero_grads(f->m);
        sft_loss_backward(f, &s, &bb);
        gn[k] = grad_global_norm(f->m);
        lr[k] = lr_at((int)k, total, warmup, peak);
        adamw_step(&opt, f->m, lr[k], wd, grad_clip_scale(gn[k], max_norm));
    }
    /* the fixture must exercise clipping and the warmup */
    int clipped = 0;
    for (size_t k = 0; k < n_steps; k++) clipped += want_gn[k] > max_norm;
    assert_true(clipped > 0 && warmup > 1);
    int bad = compare("adamw learning rates (warmup, cosine)", lr, want_lr, n_steps, 1e-6, 0);
    bad += compare("adamw gradient norms before clipping", gn, want_gn, n_steps, RTOL, 0);
    bad += compare_params_after_adamw(f, peak);
    adamw_release(&opt);
    free(want_lr);
    free(want_gn);
    batch_buf_free(&bb);
    seq_set_free(&s);
    parity_close(f);
    assert_int_equal(bad, 0);
}

/* SR-DPO on two image-conditioned pairs (chosen and rejected share their image, as in
 * sr_dpo.c): the policy's sequence log-probs, then for each loss variant the loss and its
 * gradient on the log-probs (rewards.c dpo_loss), and, for the sigmoid loss, the
 * gradient of every parameter through the full backward: d loss / d log pi(y) on each of
 * y's target tokens, as dpo_step hands it to vlm_backward. */
static const struct {
    const char *name;
    dpo_loss_type type;
    int smoothed, dpop; /* label smoothing; DPO-Positive (their values are in the fixture) */
} DPO_VARIANTS[] = {{"sigmoid", DPO_LOSS_SIGMOID, 0, 0},    {"ipo", DPO_LOSS_IPO, 0, 0},
                    {"hinge", DPO_LOSS_HINGE, 0, 0},        {"sigmoid_ls", DPO_LOSS_SIGMOID, 1, 0},
                    {"sigmoid_dpop", DPO_LOSS_SIGMOID, 0, 1}};

static void check_dpo(char variant) {
    parity *f = parity_open(variant);
    seq_set s;
    seq_set_load(&s, f, "dpo");
    assert_int_equal(s.n, 4); /* pair 0 chosen, rejected; pair 1 chosen, rejected */
    batch_buf bb;
    batch_buf_init(&bb);
    seq_set_batch(&s, f, &bb);
    float *logp = forward(f, &bb);
    double pol[4], ref[4];
    for (int i = 0; i < 4; i++) {
        pol[i] = 0;
        for (int t = 0; t < s.es.ex[i].n; t++) pol[i] += logp[bb.ex_start[i] + t];
    }
    float *want_pol = ref_tensor(f, "dpo.policy_logp", NULL), *ref_f = ref_tensor(f, "dpo.ref_logp", NULL);
    for (int i = 0; i < 4; i++) ref[i] = ref_f[i];
    /* sums of ~20 log-probs of size ~3: rtol 1e-5 of ~50 is 5e-4 */
    int bad = compare_d("dpo sequence log-probs (image-conditioned)", pol, want_pol, 4, RTOL_TIGHT, 1e-5);
    double pc[2] = {pol[0], pol[2]}, pr[2] = {pol[1], pol[3]}, rc[2] = {ref[0], ref[2]}, rr[2] = {ref[1], ref[3]};
    dpo_batch db = {.policy_chosen_logp = pc, .policy_rejected_logp = pr, .ref_chosen_logp = rc,
                    .ref_rejected_logp = rr, .n = 2};
    double beta = ref_scalar(f, "dpo.beta"), eps = ref_scalar(f, "dpo.label_smoothing");
    double dpop = ref_scalar(f, "dpo.dpop_lambda");
    double g_sig[4] = {0};
    for (size_t k = 0; k < sizeof DPO_VARIANTS / sizeof DPO_VARIANTS[0]; k++) {
        dpo_settings set = {.beta = beta, .label_smoothing = DPO_VARIANTS[k].smoothed ? eps : 0.0,
                            .loss_type = DPO_VARIANTS[k].type, .dpop_lambda = DPO_VARIANTS[k].dpop ? dpop : 0.0};
        double gc[2], gr[2], got_g[4];
        dpo_metrics dm;
        sevo_error err;
        if (dpo_loss(&db, &set, gc, gr, &dm, &err)) fail_msg("%s", err.msg);
        for (int i = 0; i < 2; i++) {
            got_g[2 * i] = gc[i];
            got_g[2 * i + 1] = gr[i];
        }
        if (k == 0) memcpy(g_sig, got_g, sizeof g_sig);
        char name[96], what[96];
        snprintf(name, sizeof name, "dpo.%s.loss", DPO_VARIANTS[k].name);
        snprintf(what, sizeof what, "dpo loss (%s)", DPO_VARIANTS[k].name);
        float want_loss = (float)ref_scalar(f, name);
        /* the policy log-probs carry ~1e-5 absolute error, beta scales it: the loss and
         * its gradients (O(0.1..1)) inherit ~1e-6 */
        bad += compare_d(what, &dm.loss, &want_loss, 1, RTOL, 1e-6);
        snprintf(name, sizeof name, "dpo.%s.grad_logp", DPO_VARIANTS[k].name);
        snprintf(what, sizeof what, "dpo d loss / d log pi (%s)", DPO_VARIANTS[k].name);
        float *want_g = ref_tensor(f, name, NULL);
        bad += compare_d(what, got_g, want_g, 4, RTOL, 1e-6);
        free(want_g);
    }
    /* the full backward of the sigmoid loss */
    int N = bb.b.B * bb.b.T;
    float *dlogp = calloc((size_t)N, sizeof *dlogp);
    assert_non_null(dlogp);
    for (int i = 0; i < 4; i++)
        for (int t = bb.ex_start[i]; t < bb.ex_start[i] + s.es.ex[i].n; t++)
            if (bb.targets[t] >= 0) dlogp[t] = (float)g_sig[i];
    vlm_zero_grads(f->m);
    vlm_backward(f->m, dlogp);
    bad += compare_all_tensors(f, vlm_grads(f->m), "dpo.sigmoid.grad.", RTOL, 1e-5);
    free(dlogp);
    free(want_pol);
    free(ref_f);
    free(logp);
    batch_buf_free(&bb);
    seq_set_free(&s);
    parity_close(f);
    assert_int_equal(bad, 0);
}

/* The HSR-EE gate (inference mode: dropout's masks come from different random streams
 * by construction, so they are not compared) on final hidden states of the model: its
 * logits, the BCE (Eq. 11) from logits and from clamped scores, the gradients of its
 * weights (hsr_gate_backward) and of its input (the same chain through sevo's linear
 * kernels: the gate's trainer does not need it, an end-to-end one would); and
 * REINFORCE's d log P(decisions) / d theta_tau. */
static void check_gate(char variant) {
    parity *f = parity_open(variant);
    sevo_error err;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", f->dir, HSR_GATE_FILE);
    hsr_gate g;
    if (hsr_gate_load(&g, path, f->D, &err)) fail_msg("%s", err.msg);
    size_t n, nd;
    float *x = ref_tensor(f, "gate.x", &nd), *y = ref_tensor(f, "gate.labels", &n);
    assert_int_equal(nd, n * (size_t)f->D);
    int h = g.h;
    float *act = malloc(n * h * sizeof *act), *scratch = malloc(n * h * sizeof *scratch);
    float *logits = malloc(n * sizeof *logits), *dlogits = malloc(n * sizeof *dlogits);
    float *dx = calloc(n * f->D, sizeof *dx), *dact = calloc(n * h, sizeof *dact);
    double *z = malloc(n * sizeof *z), *yd = malloc(n * sizeof *yd), *dz = malloc(n * sizeof *dz);
    double *sc = malloc(n * sizeof *sc);
    assert_true(act && scratch && logits && dlogits && dx && dact && z && yd && dz && sc);
    hsr_gate_forward(&g, x, (int)n, act, logits, NULL);
    for (size_t i = 0; i < n; i++) {
        z[i] = logits[i];
        yd[i] = y[i];
        sc[i] = stable_sigmoid(z[i]);
    }
    double bce = gate_bce_with_logits(z, yd, (int)n, dz), bce_s = gate_bce_from_scores(sc, yd, (int)n);
    for (size_t i = 0; i < n; i++) dlogits[i] = (float)dz[i];
    memset(g.grads, 0, g.n_params * sizeof(float));
    hsr_gate_backward(&g, x, (int)n, act, 0, dlogits, scratch);
    /* dL/dx = ((dL/dz w2) * 1[pre > 0]) W1 */
    linear_backward(dact, NULL, NULL, dlogits, act, g.w2, (int)n, h, 1);
    for (size_t i = 0; i < n * h; i++) dact[i] = act[i] > 0.0f ? dact[i] : 0.0f;
    linear_backward(dx, NULL, NULL, dact, x, g.w1, (int)n, f->D, h);

    float *w = ref_tensor(f, "gate.logits", NULL);
    /* a two-layer product of O(1) numbers: logits O(1) */
    int bad = compare("gate logits", logits, w, n, RTOL, 1e-6);
    free(w);
    float wb = (float)ref_scalar(f, "gate.bce"), wbs = (float)ref_scalar(f, "gate.bce_scores");
    bad += compare_d("gate BCE with logits (mean)", &bce, &wb, 1, RTOL_TIGHT, 0);
    bad += compare_d("gate BCE from clamped scores", &bce_s, &wbs, 1, RTOL_TIGHT, 0);
    const char *names[4] = {"gate.grad.w1", "gate.grad.b1", "gate.grad.w2", "gate.grad.b2"};
    const float *got[4] = {g.dw1, g.db1, g.dw2, g.db2};
    size_t sizes[4] = {(size_t)h * f->D, (size_t)h, (size_t)h, 1};
    for (int k = 0; k < 4; k++) {
        size_t m;
        w = ref_tensor(f, names[k], &m);
        assert_int_equal(m, sizes[k]);
        /* gradients of O(0.01..0.1): atol 1e-5 of the largest of the tensor */
        bad += compare(names[k], got[k], w, m, RTOL, 1e-5 * max_abs_of(w, m));
        free(w);
    }
    size_t m;
    w = ref_tensor(f, "gate.grad.x", &m);
    assert_int_equal(m, n * f->D);
    bad += compare("gate.grad.x (input)", dx, w, m, RTOL, 1e-5 * max_abs_of(w, m));
    free(w);

    float *scores = ref_tensor(f, "reinforce.scores", &m), *dec = ref_tensor(f, "reinforce.decisions", NULL);
    double sd[16];
    int di[16];
    assert_true(m <= 16);
    for (size_t i = 0; i < m; i++) {
        sd[i] = scores[i];
        di[i] = dec[i] != 0.0f;
    }
    double gt = hsr_log_prob_grad_theta(sd, di, (int)m, ref_scalar(f, "reinforce.theta"),
                                        ref_scalar(f, "reinforce.temperature"));
    float wg = (float)ref_scalar(f, "reinforce.grad_theta");
    /* double precision throughout: only float32 storage rounding remains */
    bad += compare_d("reinforce d log P / d theta_tau", &gt, &wg, 1, RTOL_TIGHT, 0);
    free(scores);
    free(dec);
    free(x);
    free(y);
    free(act);
    free(scratch);
    free(logits);
    free(dlogits);
    free(dx);
    free(dact);
    free(z);
    free(yd);
    free(dz);
    free(sc);
    hsr_gate_release(&g);
    parity_close(f);
    assert_int_equal(bad, 0);
}

/* lr_at over a whole schedule (warmup, then cosine to zero) against the reference's
 * LambdaLR with the same rule. */
static void check_schedule(char variant) {
    parity *f = parity_open(variant);
    size_t n;
    float *want = ref_tensor(f, "schedule.lr", &n);
    float peak = (float)ref_scalar(f, "schedule.peak");
    int total = (int)ref_scalar(f, "schedule.total"), warmup = (int)ref_scalar(f, "schedule.warmup");
    assert_int_equal(n, (size_t)total);
    float *got = malloc(n * sizeof *got);
    assert_non_null(got);
    for (int k = 0; k < total; k++) got[k] = lr_at(k, total, warmup, peak);
    /* float32 arithmetic: a few ulps, amplified near the end of the cosine where
     * 1 + cos(pi p) cancels (3.9e-7 seen at p = 6/7): rtol 1e-5; atol for a final 0 */
    int bad = compare("learning-rate schedule", got, want, n, RTOL_TIGHT, 1e-12);
    free(got);
    free(want);
    parity_close(f);
    assert_int_equal(bad, 0);
}

/* sevo's tokenizer.json encodes fixed strings to the ids Hugging Face `tokenizers`
 * gave for the same file. */
static void test_tokenizer(void **state) {
    (void)state;
    char path[4200], *text = NULL;
    sevo_error err;
    snprintf(path, sizeof path, "%s/tokenizer_cases.json", fixture_dir());
    if (sevo_read_file(path, &text, NULL, &err)) fail_msg("%s", err.msg);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(root, "tokenizer");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    assert_true(cJSON_IsString(tp) && cJSON_IsArray(cases));
    snprintf(path, sizeof path, "%s/%s", fixture_dir(), tp->valuestring);
    sevo_tokenizer *tok = NULL;
    if (tokenizer_load(&tok, path, &err)) fail_msg("%s", err.msg);
    int n_cases = 0, bad = 0, n_ids = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "text");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(c, "ids");
        assert_true(cJSON_IsString(t) && cJSON_IsArray(ids));
        int got[256], n = tokenizer_encode(tok, t->valuestring, got, 256);
        int want_n = cJSON_GetArraySize(ids), same = n == want_n;
        for (int i = 0; same && i < n; i++) same = got[i] == (int)cJSON_GetArrayItem(ids, i)->valuedouble;
        if (!same) {
            fprintf(stderr, "  tokenizer: \"%s\": sevo gives %d ids, tokenizers %d (or different ids)\n",
                    t->valuestring, n, want_n);
            bad++;
        }
        n_cases++;
        n_ids += want_n;
    }
    printf("parity[-] %-44s %d strings, %d ids, %d differ\n", "tokenizer ids vs HF tokenizers", n_cases, n_ids, bad);
    cJSON_Delete(root);
    tokenizer_free(tok);
    assert_true(n_cases >= 10);
    assert_int_equal(bad, 0);
}

static void test_logits_a(void **state) { (void)state; check_logits('a'); }
static void test_logits_b(void **state) { (void)state; check_logits('b'); }
static void test_forward_a(void **state) { (void)state; check_forward('a'); }
static void test_forward_b(void **state) { (void)state; check_forward('b'); }
static void test_sft_a(void **state) { (void)state; check_sft('a'); }
static void test_sft_b(void **state) { (void)state; check_sft('b'); }
static void test_adamw_a(void **state) { (void)state; check_adamw('a'); }
static void test_adamw_b(void **state) { (void)state; check_adamw('b'); }
static void test_dpo_a(void **state) { (void)state; check_dpo('a'); }
static void test_dpo_b(void **state) { (void)state; check_dpo('b'); }
static void test_gate_a(void **state) { (void)state; check_gate('a'); }
static void test_gate_b(void **state) { (void)state; check_gate('b'); }
static void test_schedule(void **state) { (void)state; check_schedule('a'); }

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-checkpoints")) return write_checkpoints(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--write-checkpoints DIR]\n", argv[0]);
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_a), cmocka_unit_test(test_logits_b), cmocka_unit_test(test_forward_a),
        cmocka_unit_test(test_forward_b), cmocka_unit_test(test_sft_a),   cmocka_unit_test(test_sft_b),
        cmocka_unit_test(test_adamw_a),  cmocka_unit_test(test_adamw_b),   cmocka_unit_test(test_dpo_a),
        cmocka_unit_test(test_dpo_b),    cmocka_unit_test(test_gate_a),    cmocka_unit_test(test_gate_b),
        cmocka_unit_test(test_schedule), cmocka_unit_test(test_tokenizer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
