/* test_vlm.c: the whole VLM against finite differences, the KV-cache generation path
 * against the training forward, batched generation steps against one token at a time,
 * and the checkpoint round trip.
 *
 * The gradient check perturbs each parameter tensor along the unit direction d = g/|g|
 * of its analytic gradient g and compares (L(θ+hd) - L(θ-hd)) / 2h with g·d = |g|,
 * where L = Σ r_i log p_i over the target tokens with fixed random weights r. The two
 * agree only if g has the right direction and length; a directional derivative over a
 * whole tensor has a much larger signal than one element, so a float32 forward can be
 * checked to about 1%. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "core/fsutil.h"
#include "core/rng.h"
#include "data/tokenizer.h"
#include "kernels/kernels.h"
#include "model/checkpoint.h"
#include "model/prompt.h"
#include "model/vlm.h"

#define VOCAB 24

static void small_config(vlm_config *c, int variant) {
    vlm_config_tiny(c, VOCAB);
    c->image_size = 8;
    c->patch_size = 4; /* 4 patches */
    c->vision.hidden_size = 8;
    c->vision.num_layers = 1;
    c->vision.num_heads = 2;
    c->vision.num_kv_heads = 2;
    c->vision.intermediate_size = 12;
    c->text.hidden_size = 16;
    c->text.num_layers = 2;
    c->text.num_heads = 4;
    c->text.num_kv_heads = 2;
    c->text.intermediate_size = 24;
    c->max_position_embeddings = 64;
    c->bos_token_id = 2;
    c->eos_token_id = 3;
    c->pad_token_id = 0;
    c->image_token_id = 4;
    if (variant == 1) {
        /* the other architecture choices: LayerNorm text tower with biases, plain GELU
         * MLP, multi-head attention, untied LM head, exact-erf GELU vision */
        c->text.norm = VLM_NORM_LAYER;
        c->text.gated = 0;
        c->text.act = VLM_ACT_GELU_TANH;
        c->text.bias = 1;
        c->text.num_kv_heads = 4;
        c->tie_word_embeddings = 0;
        c->vision.act = VLM_ACT_GELU;
        c->vision.norm = VLM_NORM_RMS;
        c->projector_act = VLM_ACT_GELU_TANH;
    }
}

/* Larger-than-default random weights, so every gradient is well above float noise. */
static void random_weights(vlm *m, uint64_t seed) {
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 3);
    float *p = vlm_params(m);
    for (int i = 0; i < vlm_num_tensors(m); i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        int is_norm_w = strstr(t->name, "norm") && strstr(t->name, ".weight");
        for (size_t j = 0; j < t->numel; j++)
            p[t->offset + j] = is_norm_w ? 1.0f + 0.2f * sevo_rng_normal(&rng) : 0.3f * sevo_rng_normal(&rng);
    }
}

/* A model of the given variant with random_weights(seed). */
static vlm *test_model(vlm_config *c, int variant, uint64_t seed) {
    small_config(c, variant);
    vlm *m = NULL;
    sevo_error err;
    if (vlm_create(&m, c, &err)) fail_msg("%s", err.msg);
    random_weights(m, seed);
    return m;
}

typedef struct fixture {
    int ids[2 * 12], tg[2 * 12], image_of[2 * 12];
    float images[3 * 8 * 8];
    float r[2 * 12];
    vlm_batch b;
} fixture;

static void make_batch(fixture *f, uint64_t seed) {
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 5);
    int T = 12;
    /* sequence 0: [bos] 4 image tokens, then text; sequence 1: text only, padded */
    for (int t = 0; t < T; t++) {
        f->ids[t] = t == 0 ? 2 : t <= 4 ? 4 : 5 + (int)sevo_rng_below(&rng, VOCAB - 5);
        f->ids[T + t] = t == 0 ? 2 : t < 9 ? 5 + (int)sevo_rng_below(&rng, VOCAB - 5) : 0;
    }
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < T; t++) {
            int len = b == 0 ? T : 9;
            f->tg[b * T + t] = (t >= 4 && t + 1 < len) ? f->ids[b * T + t + 1] : -1;
        }
    for (int i = 0; i < 3 * 64; i++) f->images[i] = sevo_rng_normal(&rng);
    for (int i = 0; i < 2 * T; i++) f->r[i] = f->tg[i] >= 0 ? 0.5f + sevo_rng_uniform(&rng) : 0.0f;
    for (int i = 0; i < 2 * T; i++) f->image_of[i] = i < T ? 0 : -1;
    f->b = (vlm_batch){.B = 2, .T = T, .ids = f->ids, .targets = f->tg, .images = f->images, .n_images = 1,
                       .image_of = f->image_of};
}

static double loss_of(vlm *m, fixture *f) {
    float logp[24];
    sevo_error err;
    assert_int_equal(vlm_forward(m, &f->b, logp, &err), 0);
    double L = 0;
    for (int i = 0; i < 24; i++) L += (double)f->r[i] * logp[i];
    return L;
}

static void check_gradients(int variant) {
    vlm_config c;
    vlm *m = test_model(&c, variant, 11 + (uint64_t)variant);
    fixture f;
    make_batch(&f, 21);
    loss_of(m, &f);
    vlm_zero_grads(m);
    vlm_backward(m, f.r);
    float *p = vlm_params(m), *g = vlm_grads(m);
    sevo_rng rng;
    sevo_rng_seed(&rng, 99, 1);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < vlm_num_tensors(m); i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        float *d = malloc(t->numel * sizeof(float));
        float *saved = malloc(t->numel * sizeof(float));
        assert_non_null(d);
        assert_non_null(saved);
        memcpy(saved, p + t->offset, t->numel * sizeof(float));
        /* direction: the analytic gradient itself, normalised. Then g.d = |g|, and the
         * finite difference equals it only if the analytic gradient has both the right
         * direction and the right length. */
        double gn = 0;
        for (size_t j = 0; j < t->numel; j++) gn += (double)g[t->offset + j] * g[t->offset + j];
        gn = sqrt(gn);
        double gd = 0;
        for (size_t j = 0; j < t->numel; j++) {
            d[j] = gn > 0 ? (float)(g[t->offset + j] / gn) : sevo_rng_normal(&rng);
            gd += (double)g[t->offset + j] * d[j];
        }
        const char *hs = getenv("FD_H");
        const float h = hs ? (float)atof(hs) : 1e-2f;
        for (size_t j = 0; j < t->numel; j++) p[t->offset + j] = saved[j] + h * d[j];
        double lp = loss_of(m, &f);
        for (size_t j = 0; j < t->numel; j++) p[t->offset + j] = saved[j] - h * d[j];
        double lm = loss_of(m, &f);
        memcpy(p + t->offset, saved, t->numel * sizeof(float));
        double fd = (lp - lm) / (2.0 * h);
        /* floor: float32 noise of the difference quotient is ~1e-4 (k_proj.bias has an exactly
         * zero gradient: softmax is invariant to a per-query constant) */
        double rel = fabs(fd - gd) / fmax(1e-2, fabs(fd) + fabs(gd));
        if (rel > worst) {
            worst = rel;
            worst_name = t->name;
        }
        if (getenv("FD_VERBOSE")) printf("%-70s %.3e %.3e %.2e\n", t->name, gd, fd, rel);
        if (rel > 1e-2)
            fail_msg("variant %d tensor %s: analytic %.6g vs finite difference %.6g (rel %.3g)", variant,
                     t->name, gd, fd, rel);
        free(d);
        free(saved);
    }
    printf("variant %d: %d tensors, worst relative error %.2e (%s)\n", variant, vlm_num_tensors(m), worst,
           worst_name);
    vlm_free(m);
}

static void test_gradients_llama_style(void **state) {
    (void)state;
    check_gradients(0);
}

static void test_gradients_other_choices(void **state) {
    (void)state;
    check_gradients(1);
}

/* Greedy decoding with the KV cache must produce exactly the tokens that recomputing
 * the whole sequence with the training forward produces. */
static void test_kv_cache_matches_full_forward(void **state) {
    (void)state;
    vlm_config c;
    vlm *m = test_model(&c, 0, 5);
    sevo_error err;
    fixture f;
    make_batch(&f, 3);
    int seq[40];
    int n = 8; /* bos, 4 image tokens, 3 prompt tokens */
    memcpy(seq, f.ids, (size_t)n * sizeof(int));
    vlm_session *s = NULL;
    assert_int_equal(vlm_session_create(&s, m, 40, &err), 0);
    vlm_session_set_image(s, f.images);
    assert_int_equal(vlm_session_feed(s, seq, n, &err), 0);
    const vlm_tensor *wte = vlm_find_tensor(m, "language_model.model.embed_tokens.weight");
    assert_non_null(wte);
    int targets[40], image_of[40] = {0};
    float logp[40], logits[VOCAB];
    for (int step = 0; step < 20; step++) {
        /* cached */
        const float *lc = vlm_session_logits(s);
        int next_cached = 0;
        for (int v = 1; v < VOCAB; v++)
            if (lc[v] > lc[next_cached]) next_cached = v;
        /* recomputed from scratch */
        for (int t = 0; t < n; t++) targets[t] = -1;
        vlm_batch b = {.B = 1, .T = n, .ids = seq, .targets = targets, .images = f.images, .n_images = 1,
                       .image_of = image_of};
        assert_int_equal(vlm_forward(m, &b, logp, &err), 0);
        const float *hid = vlm_last_hidden(m) + (size_t)(n - 1) * c.text.hidden_size;
        for (int k = 0; k < c.text.hidden_size; k++)
            assert_true(fabsf(hid[k] - vlm_session_hidden(s)[k]) < 1e-4f * (1.0f + fabsf(hid[k])));
        linear_forward(logits, hid, vlm_params(m) + wte->offset, NULL, 1, c.text.hidden_size, VOCAB);
        int next_full = 0;
        for (int v = 1; v < VOCAB; v++)
            if (logits[v] > logits[next_full]) next_full = v;
        assert_int_equal(next_cached, next_full);
        seq[n++] = next_cached;
        assert_int_equal(vlm_session_feed(s, &next_cached, 1, &err), 0);
    }
    /* truncating and re-feeding gives the same state */
    float before[VOCAB];
    memcpy(before, vlm_session_logits(s), sizeof before);
    vlm_session_truncate(s, n - 3);
    assert_int_equal(vlm_session_feed(s, seq + n - 3, 3, &err), 0);
    for (int v = 0; v < VOCAB; v++) assert_true(fabsf(before[v] - vlm_session_logits(s)[v]) < 1e-4f);
    vlm_session_free(s);
    vlm_free(m);
}


/* A batched step (vlm_sessions_step) leaves every session bitwise as feeding its token
 * alone does, whatever the other rows: sessions of different lengths, with and without
 * an image (image tokens among the stepped ones), 1 to 5 at a time (5 is two batches),
 * on both architecture variants (whose
 * widths, 16 and 24, are not multiples of a vector, so rows start inside vectors). */
static void check_batched_step(int variant) {
    vlm_config c;
    vlm *m = test_model(&c, variant, 11);
    sevo_error err;
    fixture f;
    make_batch(&f, 4);
    enum { NS = 5 };
    vlm_session *batched[NS], *alone[NS];
    int D = c.text.hidden_size;
    for (int i = 0; i < NS; i++) {
        assert_int_equal(vlm_session_create(&batched[i], m, 40, &err), 0);
        assert_int_equal(vlm_session_create(&alone[i], m, 40, &err), 0);
        /* session i: with the image when i is even, a prompt of 3 + 2i tokens */
        int prompt[16], n = 0;
        prompt[n++] = 2;
        if (i % 2 == 0) {
            /* two of the image's four patches here, the other two in the steps */
            vlm_session_set_image(batched[i], f.images);
            vlm_session_set_image(alone[i], f.images);
            for (int p = 0; p < 2; p++) prompt[n++] = 4;
        }
        for (int k = 0; k < 3 + 2 * i; k++) prompt[n++] = 5 + (7 * i + 3 * k) % (VOCAB - 5);
        assert_int_equal(vlm_session_feed(batched[i], prompt, n, &err), 0);
        assert_int_equal(vlm_session_feed(alone[i], prompt, n, &err), 0);
    }
    for (int step = 0; step < 8; step++) {
        int n = 1 + step % NS, ids[NS];
        for (int i = 0; i < n; i++) {
            ids[i] = step < 2 && i % 2 == 0 ? 4 : 5 + (step * 5 + i * 11) % (VOCAB - 5);
            assert_int_equal(vlm_session_check_feed(batched[i], &ids[i], 1, &err), 0);
            assert_int_equal(vlm_session_feed(alone[i], &ids[i], 1, &err), 0);
        }
        vlm_sessions_step(batched, ids, n);
        for (int i = 0; i < n; i++) {
            assert_int_equal(vlm_session_len(batched[i]), vlm_session_len(alone[i]));
            assert_memory_equal(vlm_session_logits(batched[i]), vlm_session_logits(alone[i]), VOCAB * sizeof(float));
            assert_memory_equal(vlm_session_hidden(batched[i]), vlm_session_hidden(alone[i]), (size_t)D * sizeof(float));
        }
    }
    for (int i = 0; i < NS; i++) {
        vlm_session_free(batched[i]);
        vlm_session_free(alone[i]);
    }
    vlm_free(m);
}

static void test_batched_step_llama_style(void **state) {
    (void)state;
    check_batched_step(0);
}

static void test_batched_step_other_choices(void **state) {
    (void)state;
    check_batched_step(1);
}

/* What a feed would refuse is refused by the check too, and nothing is fed. */
static void test_check_feed(void **state) {
    (void)state;
    vlm_config c;
    vlm *m = test_model(&c, 0, 12);
    sevo_error err;
    vlm_session *s = NULL;
    assert_int_equal(vlm_session_create(&s, m, 6, &err), 0);
    int ok[2] = {2, 5}, bad_id[1] = {VOCAB}, image[5] = {4, 4, 4, 4, 4}, many[7] = {2, 5, 5, 5, 5, 5, 5};
    assert_int_equal(vlm_session_check_feed(s, ok, 2, &err), 0);
    assert_int_equal(vlm_session_check_feed(s, bad_id, 1, &err), -1);
    assert_non_null(strstr(err.msg, "outside the vocabulary"));
    assert_int_equal(vlm_session_check_feed(s, image, 1, &err), -1);
    assert_non_null(strstr(err.msg, "no image"));
    assert_int_equal(vlm_session_check_feed(s, many, 7, &err), -1);
    assert_non_null(strstr(err.msg, "exceeds"));
    assert_int_equal(vlm_session_len(s), 0);
    /* with an image: its four patches, not a fifth, counting those already fed */
    fixture f;
    make_batch(&f, 6);
    vlm_session_set_image(s, f.images);
    assert_int_equal(vlm_session_check_feed(s, image, 4, &err), 0);
    assert_int_equal(vlm_session_check_feed(s, image, 5, &err), -1);
    assert_non_null(strstr(err.msg, "more image tokens"));
    assert_int_equal(vlm_session_feed(s, image, 3, &err), 0);
    assert_int_equal(vlm_session_check_feed(s, image, 1, &err), 0);
    assert_int_equal(vlm_session_check_feed(s, image, 2, &err), -1);
    vlm_session_free(s);
    vlm_free(m);
}

/* Packing: three sequences (two with their own image) back to back in one row, then
 * padding, must give the same log-probabilities and gradients as one row each. */
static void test_packed_three_sequences(void **state) {
    (void)state;
    vlm_config c;
    vlm *m = test_model(&c, 0, 29);
    sevo_error err;
    sevo_rng rng;
    sevo_rng_seed(&rng, 31, 2);
    enum { S = 3, L = 14, TP = 48 };
    int len[S] = {14, 9, 12}, has_img[S] = {1, 0, 1};
    int ids[S * L], tg[S * L], img_sep[S * L];
    float r[S * L], images[2 * 3 * 64];
    for (int i = 0; i < 2 * 3 * 64; i++) images[i] = sevo_rng_normal(&rng);
    int img_index[S] = {0, -1, 1};
    for (int q = 0; q < S; q++)
        for (int t = 0; t < L; t++) {
            int k = q * L + t;
            ids[k] = t >= len[q] ? 0 : t == 0 ? 2 : (has_img[q] && t <= 4) ? 4 : 5 + (int)sevo_rng_below(&rng, VOCAB - 5);
            img_sep[k] = has_img[q] ? img_index[q] : -1;
        }
    for (int k = 0; k < S * L; k++) {
        int q = k / L, t = k % L;
        tg[k] = (t >= 5 && t + 1 < len[q]) ? ids[k + 1] : -1;
        r[k] = tg[k] >= 0 ? 0.5f + sevo_rng_uniform(&rng) : 0.0f;
    }
    float lp_sep[S * L];
    vlm_batch bs = {.B = S, .T = L, .ids = ids, .targets = tg, .images = images, .n_images = 2, .image_of = img_sep};
    assert_int_equal(vlm_forward(m, &bs, lp_sep, &err), 0);
    vlm_zero_grads(m);
    vlm_backward(m, r);
    size_t np = vlm_num_params(m);
    float *g_sep = malloc(np * sizeof(float));
    assert_non_null(g_sep);
    memcpy(g_sep, vlm_grads(m), np * sizeof(float));
    int pids[TP], ptg[TP], ppos[TP], pseg[TP], pimg[TP], where[S * L];
    float pr[TP], lp[TP];
    int at = 0;
    for (int q = 0; q < S; q++) {
        int start = at;
        for (int t = 0; t < len[q]; t++, at++) {
            pids[at] = ids[q * L + t];
            ptg[at] = tg[q * L + t];
            pr[at] = r[q * L + t];
            ppos[at] = t;
            pseg[at] = start;
            pimg[at] = img_sep[q * L + t];
            where[q * L + t] = at;
        }
    }
    for (; at < TP; at++) {
        pids[at] = 0;
        ptg[at] = -1;
        pr[at] = 0;
        ppos[at] = 0;
        pseg[at] = at;
        pimg[at] = -1;
    }
    vlm_batch bp = {.B = 1, .T = TP, .ids = pids, .targets = ptg, .pos = ppos, .seg_start = pseg,
                    .images = images, .n_images = 2, .image_of = pimg};
    assert_int_equal(vlm_forward(m, &bp, lp, &err), 0);
    for (int q = 0; q < S; q++)
        for (int t = 0; t < len[q]; t++)
            if (fabsf(lp[where[q * L + t]] - lp_sep[q * L + t]) > 1e-5f)
                fail_msg("sequence %d token %d: packed logp %g, separate %g", q, t, lp[where[q * L + t]], lp_sep[q * L + t]);
    vlm_zero_grads(m);
    vlm_backward(m, pr);
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < np; i++) {
        double d = fabs((double)vlm_grads(m)[i] - g_sep[i]) / (1e-3 + fabs(g_sep[i]));
        if (d > worst) {
            worst = d;
            wi = i;
        }
    }
    const char *wname = "";
    for (int i = 0; i < vlm_num_tensors(m); i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        if (wi >= t->offset && wi < t->offset + t->numel) wname = t->name;
    }
    printf("three packed sequences: worst relative gradient difference %.2e (%s: %g vs %g)\n", worst, wname,
           vlm_grads(m)[wi], g_sep[wi]);
    assert_true(worst < 1e-3);
    free(g_sep);
    vlm_free(m);
}

static void test_checkpoint_round_trip(void **state) {
    (void)state;
    vlm_config c;
    vlm *m = test_model(&c, 1, 8);
    sevo_error err;
    const char *texts[] = {"a b c d e f g h i j k l m n"};
    sevo_tokenizer *tok = NULL;
    assert_int_equal(tokenizer_build_wordlevel(&tok, texts, 1, PROMPT_SPECIAL_TOKENS, PROMPT_NUM_SPECIAL_TOKENS, &err), 0);
    assert_true(tokenizer_vocab_size(tok) <= VOCAB);
    char dir[] = "/tmp/sevo-ckpt-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[256];
    snprintf(sub, sizeof sub, "%s/model", dir);
    assert_int_equal(checkpoint_save_model(sub, m, tok, &err), 0);
    vlm *m2 = NULL;
    sevo_tokenizer *tok2 = NULL;
    if (checkpoint_load_model(sub, &m2, &tok2, &err)) fail_msg("%s", err.msg);
    assert_int_equal(vlm_num_params(m2), vlm_num_params(m));
    assert_memory_equal(vlm_params(m2), vlm_params(m), vlm_num_params(m) * sizeof(float));
    assert_int_equal(vlm_get_config(m2)->tie_word_embeddings, 0);
    assert_int_equal(vlm_get_config(m2)->text.norm, VLM_NORM_LAYER);
    assert_int_equal(tokenizer_vocab_size(tok2), tokenizer_vocab_size(tok));
    vlm_free(m2);
    tokenizer_free(tok2);
    /* not a checkpoint: a clear error naming what is missing */
    assert_int_equal(checkpoint_load_model(dir, &m2, &tok2, &err), -1);
    assert_null(m2);
    assert_non_null(strstr(err.msg, "config.json"));
    sevo_remove_tree(dir);
    vlm_free(m);
    tokenizer_free(tok);
}

/* Saves c to path with one field edited: key in section (NULL: the top level) set to the
 * JSON text value, or removed when value is NULL. */
static void save_edited_config(const vlm_config *c, const char *path, const char *section, const char *key,
                               const char *value) {
    sevo_error err;
    assert_int_equal(vlm_config_save(c, path, &err), 0);
    char *text = NULL;
    assert_int_equal(sevo_read_file(path, &text, NULL, &err), 0);
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    cJSON *obj = section ? cJSON_GetObjectItemCaseSensitive(root, section) : root;
    assert_non_null(obj);
    if (value) {
        cJSON *v = cJSON_Parse(value);
        assert_non_null(v);
        assert_true(cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v));
    } else {
        assert_non_null(cJSON_GetObjectItemCaseSensitive(obj, key));
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    }
    char *edited = cJSON_Print(root);
    assert_int_equal(sevo_write_file_atomic(path, edited, strlen(edited), &err), 0);
    free(text);
    free(edited);
    cJSON_Delete(root);
}

/* How π_text was taught travels with the checkpoint's config.json: saved and loaded
 * back, absent in an older checkpoint (which answers at once), refused when not a
 * boolean, with the file and field named. */
static void test_config_text_reasoning(void **state) {
    (void)state;
    char dir[] = "/tmp/sevo-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    vlm_config c, back;
    vlm_config_tiny(&c, 40);
    c.bos_token_id = c.eos_token_id = c.pad_token_id = c.image_token_id = 1;
    sevo_error err;
    for (int on = 0; on <= 1; on++) {
        c.text_reasoning = on;
        assert_int_equal(vlm_config_save(&c, path, &err), 0);
        assert_int_equal(vlm_config_load(&back, path, &err), 0);
        assert_int_equal(back.text_reasoning, on);
    }
    /* saved with true: an older checkpoint has no such key, a bad one a string */
    save_edited_config(&c, path, NULL, "sevo_text_reasoning", NULL);
    assert_int_equal(vlm_config_load(&back, path, &err), 0);
    assert_int_equal(back.text_reasoning, 0);
    save_edited_config(&c, path, NULL, "sevo_text_reasoning", "\"yes\"");
    assert_int_equal(vlm_config_load(&back, path, &err), -1);
    assert_non_null(strstr(err.msg, "field 'sevo_text_reasoning': expected true or false"));
    assert_non_null(strstr(err.msg, path));
    sevo_remove_tree(dir);
}

/* config.json values that would overflow int arithmetic, or cannot be written back, are
 * refused with the file and field; each case edits one field of a valid saved config. */
static void test_config_json_limits(void **state) {
    (void)state;
    char dir[] = "/tmp/sevo-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    struct {
        const char *section, *key, *value, *why; /* why NULL: loads */
    } cases[] = {
        {"vision_config", "hidden_size", "1e300", "field 'vision_config.hidden_size': expected an integer"},
        {"vision_config", "hidden_size", "131072", "vision_config: sizes above the supported maximum"},
        {"vision_config", "patch_size", "1", NULL}, /* a 30x30 grid: fine */
        {"vision_config", "image_size", "2147483640", "image_size / patch_size above 1024"},
        {"vision_config", "norm_eps", "1e39", "field 'vision_config.norm_eps': expected a finite number"},
        {"vision_config", "image_std", "[0.5, 0, 0.5]", "field 'vision_config.image_std': expected 3 finite numbers, none zero"},
        {"text_config", "vocab_size", "99999999", "text_config.vocab_size must be in [2, 16777216]"},
        {"text_config", "bos_token_id", "-2147483649", "field 'text_config.bos_token_id': expected an integer"},
        {"text_config", "rope_theta", "-1", "text_config.rope_theta must be > 0"},
    };
    vlm_config c;
    vlm_config_tiny(&c, 40);
    c.bos_token_id = c.eos_token_id = c.pad_token_id = c.image_token_id = 1;
    sevo_error err;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        save_edited_config(&c, path, cases[i].section, cases[i].key, cases[i].value);
        vlm_config back;
        int rc = vlm_config_load(&back, path, &err);
        if (!cases[i].why) {
            if (rc) fail_msg("case %zu: %s", i, err.msg);
        } else {
            assert_int_equal(rc, -1);
            if (!strstr(err.msg, cases[i].why) || !strstr(err.msg, path))
                fail_msg("case %zu: '%s' lacks '%s' or the path", i, err.msg, cases[i].why);
        }
    }
    sevo_remove_tree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_json_limits),
        cmocka_unit_test(test_config_text_reasoning),
        cmocka_unit_test(test_gradients_llama_style),
        cmocka_unit_test(test_gradients_other_choices),
        cmocka_unit_test(test_kv_cache_matches_full_forward),
        cmocka_unit_test(test_batched_step_llama_style),
        cmocka_unit_test(test_batched_step_other_choices),
        cmocka_unit_test(test_check_feed),
        cmocka_unit_test(test_packed_three_sequences),
        cmocka_unit_test(test_checkpoint_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
