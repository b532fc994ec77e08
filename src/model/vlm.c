/* vlm.c: the model's configuration (config.json), its parameter table and arenas,
 * weight initialisation, and the transformer block shared by both towers. */
#include "model/vlm_internal.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/jsonutil.h"
#include "core/rng.h"
#include "kernels/kernels.h"

/* ------------------------------------------------------------------ config */

void vlm_config_tiny(vlm_config *c, int vocab_size) {
    memset(c, 0, sizeof *c);
    c->image_size = 30;
    c->patch_size = 10;
    c->num_channels = 3;
    for (int i = 0; i < 3; i++) {
        c->image_mean[i] = 0.5f;
        c->image_std[i] = 0.5f;
    }
    c->vision = (vlm_tower_config){.hidden_size = 96, .num_layers = 2, .num_heads = 4,
                                   .num_kv_heads = 4, .intermediate_size = 256,
                                   .norm = VLM_NORM_LAYER, .act = VLM_ACT_GELU_TANH, .gated = 0,
                                   .bias = 1, .norm_eps = 1e-6f};
    c->projector_act = VLM_ACT_GELU;
    c->text = (vlm_tower_config){.hidden_size = 128, .num_layers = 4, .num_heads = 4,
                                 .num_kv_heads = 2, .intermediate_size = 320,
                                 .norm = VLM_NORM_RMS, .act = VLM_ACT_SILU, .gated = 1,
                                 .bias = 0, .norm_eps = 1e-5f};
    c->vocab_size = vocab_size;
    c->max_position_embeddings = 512;
    c->rope_theta = 10000.0f;
    c->tie_word_embeddings = 1;
    c->bos_token_id = c->eos_token_id = c->pad_token_id = c->image_token_id = -1;
    c->text_reasoning = 0;
}

int vlm_config_num_patches(const vlm_config *c) {
    int g = c->image_size / c->patch_size;
    return g * g;
}

/* Upper bounds on a config's sizes: far above any published VLM (Llama 3 405B has width
 * 16384 and 126 layers), low enough that every size product computed in int (patch grid,
 * sequence length, head dimension times heads) cannot overflow, so a hostile config.json
 * is refused here rather than met with undefined arithmetic or a huge allocation. */
#define VLM_MAX_WIDTH 65536
#define VLM_MAX_LAYERS 1024
#define VLM_MAX_GRID 1024      /* patches per image side */
#define VLM_MAX_PATCH 1024     /* pixels per patch side */
#define VLM_MAX_VOCAB (1 << 24)
#define VLM_MAX_POSITIONS (1 << 20)

static int check_tower(const vlm_tower_config *t, const char *src, const char *name,
                       sevo_error *err) {
    if (t->hidden_size < 1 || t->num_layers < 0 || t->num_heads < 1 || t->num_kv_heads < 1 ||
        t->intermediate_size < 1)
        return sevo_fail(err, "%s: %s: sizes must be positive", src, name);
    if (t->hidden_size > VLM_MAX_WIDTH || t->intermediate_size > 4 * VLM_MAX_WIDTH ||
        t->num_layers > VLM_MAX_LAYERS)
        return sevo_fail(err, "%s: %s: sizes above the supported maximum (hidden_size %d, "
                         "intermediate_size %d, num_hidden_layers %d)", src, name,
                         VLM_MAX_WIDTH, 4 * VLM_MAX_WIDTH, VLM_MAX_LAYERS);
    if (t->hidden_size % t->num_heads)
        return sevo_fail(err, "%s: %s.hidden_size %d is not divisible by num_attention_heads %d",
                         src, name, t->hidden_size, t->num_heads);
    if (t->num_heads % t->num_kv_heads)
        return sevo_fail(err, "%s: %s.num_attention_heads %d is not divisible by "
                         "num_key_value_heads %d", src, name, t->num_heads, t->num_kv_heads);
    if ((t->hidden_size / t->num_heads) % 2)
        return sevo_fail(err, "%s: %s: head dimension must be even", src, name);
    if (!(t->norm_eps > 0)) return sevo_fail(err, "%s: %s: norm eps must be > 0", src, name);
    if (t->gated && t->act != VLM_ACT_SILU)
        return sevo_fail(err, "%s: %s: a gated MLP needs hidden_act 'silu'", src, name);
    return 0;
}

int vlm_config_validate(const vlm_config *c, const char *src, sevo_error *err) {
    if (c->image_size < 1 || c->patch_size < 1 || c->image_size % c->patch_size)
        return sevo_fail(err, "%s: vision_config.image_size %d must be a multiple of patch_size %d",
                         src, c->image_size, c->patch_size);
    if (c->image_size / c->patch_size > VLM_MAX_GRID || c->patch_size > VLM_MAX_PATCH)
        return sevo_fail(err, "%s: vision_config: patch_size above %d or image_size / "
                         "patch_size above %d", src, VLM_MAX_PATCH, VLM_MAX_GRID);
    if (c->num_channels != 3)
        return sevo_fail(err, "%s: vision_config.num_channels must be 3", src);
    if (check_tower(&c->vision, src, "vision_config", err)) return -1;
    if (check_tower(&c->text, src, "text_config", err)) return -1;
    if (c->vocab_size < 2 || c->vocab_size > VLM_MAX_VOCAB)
        return sevo_fail(err, "%s: text_config.vocab_size must be in [2, %d]", src, VLM_MAX_VOCAB);
    if (c->max_position_embeddings < 8 || c->max_position_embeddings > VLM_MAX_POSITIONS)
        return sevo_fail(err, "%s: text_config.max_position_embeddings must be in [8, %d]", src,
                         VLM_MAX_POSITIONS);
    if (!(c->rope_theta > 0)) return sevo_fail(err, "%s: text_config.rope_theta must be > 0", src);
    const int *ids[4] = {&c->bos_token_id, &c->eos_token_id, &c->pad_token_id, &c->image_token_id};
    const char *names[4] = {"bos_token_id", "eos_token_id", "pad_token_id", "image_token_index"};
    for (int i = 0; i < 4; i++)
        if (*ids[i] < 0 || *ids[i] >= c->vocab_size)
            return sevo_fail(err, "%s: %s %d is outside the vocabulary [0, %d)", src, names[i],
                             *ids[i], c->vocab_size);
    return 0;
}

static const char *act_name(vlm_act a) {
    return a == VLM_ACT_GELU ? "gelu" : a == VLM_ACT_GELU_TANH ? "gelu_pytorch_tanh" : "silu";
}

static int parse_act(const char *s, vlm_act *a) {
    if (!strcmp(s, "gelu")) *a = VLM_ACT_GELU;
    else if (!strcmp(s, "gelu_pytorch_tanh") || !strcmp(s, "gelu_new")) *a = VLM_ACT_GELU_TANH;
    else if (!strcmp(s, "silu") || !strcmp(s, "swish")) *a = VLM_ACT_SILU;
    else return -1;
    return 0;
}

static cJSON *tower_to_json(const vlm_tower_config *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "hidden_size", t->hidden_size);
    cJSON_AddNumberToObject(o, "intermediate_size", t->intermediate_size);
    cJSON_AddNumberToObject(o, "num_hidden_layers", t->num_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", t->num_heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", t->num_kv_heads);
    cJSON_AddStringToObject(o, "hidden_act", act_name(t->act));
    cJSON_AddBoolToObject(o, "gated_mlp", t->gated);
    cJSON_AddStringToObject(o, "norm_type", t->norm == VLM_NORM_RMS ? "rmsnorm" : "layernorm");
    cJSON_AddNumberToObject(o, "norm_eps", t->norm_eps);
    cJSON_AddBoolToObject(o, "attention_bias", t->bias);
    cJSON_AddBoolToObject(o, "mlp_bias", t->bias);
    return o;
}

int vlm_config_save(const vlm_config *c, const char *path, sevo_error *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model_type", "llava");
    cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlavaForConditionalGeneration"));
    cJSON_AddStringToObject(root, "sevo_architecture", "sevo-vlm");
    cJSON_AddNumberToObject(root, "image_token_index", c->image_token_id);
    cJSON_AddStringToObject(root, "projector_hidden_act", act_name(c->projector_act));
    cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddBoolToObject(root, "sevo_text_reasoning", c->text_reasoning);
    cJSON *v = tower_to_json(&c->vision);
    cJSON_AddStringToObject(v, "model_type", "siglip_vision_model");
    cJSON_AddNumberToObject(v, "image_size", c->image_size);
    cJSON_AddNumberToObject(v, "patch_size", c->patch_size);
    cJSON_AddNumberToObject(v, "num_channels", c->num_channels);
    cJSON_AddItemToObject(v, "image_mean", cJSON_CreateFloatArray(c->image_mean, 3));
    cJSON_AddItemToObject(v, "image_std", cJSON_CreateFloatArray(c->image_std, 3));
    cJSON_AddItemToObject(root, "vision_config", v);
    cJSON *t = tower_to_json(&c->text);
    cJSON_AddStringToObject(t, "model_type", "llama");
    cJSON_AddNumberToObject(t, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(t, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(t, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(t, "rms_norm_eps", c->text.norm_eps);
    cJSON_AddBoolToObject(t, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddNumberToObject(t, "bos_token_id", c->bos_token_id);
    cJSON_AddNumberToObject(t, "eos_token_id", c->eos_token_id);
    cJSON_AddNumberToObject(t, "pad_token_id", c->pad_token_id);
    cJSON_AddItemToObject(root, "text_config", t);
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s) return sevo_fail(err, "%s: out of memory", path);
    int rc = sevo_write_file_atomic(path, s, strlen(s), err);
    free(s);
    return rc;
}

/* Field readers that name the file and key on error. */
static int get_int(const cJSON *o, const char *sect, const char *key, int *dst, int required,
                   const char *path, sevo_error *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return required ? sevo_fail(err, "%s: field '%s%s': missing", path, sect, key) : 0;
    if (json_int_in(it, INT_MIN, INT_MAX, dst))
        return sevo_fail(err, "%s: field '%s%s': expected an integer", path, sect, key);
    return 0;
}

static int get_float(const cJSON *o, const char *sect, const char *key, float *dst,
                     const char *path, sevo_error *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return 0;
    /* a number beyond float's range would be infinity, which config.json cannot hold */
    if (json_float(it, dst))
        return sevo_fail(err, "%s: field '%s%s': expected a finite number", path, sect, key);
    return 0;
}

static int get_bool(const cJSON *o, const char *sect, const char *key, int *dst, const char *path,
                    sevo_error *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return 0;
    if (!cJSON_IsBool(it)) return sevo_fail(err, "%s: field '%s%s': expected true or false", path, sect, key);
    *dst = cJSON_IsTrue(it);
    return 0;
}

static int get_act(const cJSON *o, const char *sect, const char *key, vlm_act *dst,
                   const char *path, sevo_error *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return 0;
    if (!cJSON_IsString(it) || parse_act(it->valuestring, dst))
        return sevo_fail(err, "%s: field '%s%s': expected one of gelu, gelu_pytorch_tanh, silu",
                         path, sect, key);
    return 0;
}

static int tower_from_json(const cJSON *o, const char *sect, vlm_tower_config *t,
                           const char *path, sevo_error *err) {
    if (get_int(o, sect, "hidden_size", &t->hidden_size, 1, path, err) ||
        get_int(o, sect, "intermediate_size", &t->intermediate_size, 1, path, err) ||
        get_int(o, sect, "num_hidden_layers", &t->num_layers, 1, path, err) ||
        get_int(o, sect, "num_attention_heads", &t->num_heads, 1, path, err))
        return -1;
    t->num_kv_heads = t->num_heads;
    if (get_int(o, sect, "num_key_value_heads", &t->num_kv_heads, 0, path, err) ||
        get_act(o, sect, "hidden_act", &t->act, path, err) ||
        get_bool(o, sect, "gated_mlp", &t->gated, path, err) ||
        get_float(o, sect, "norm_eps", &t->norm_eps, path, err) ||
        get_bool(o, sect, "attention_bias", &t->bias, path, err))
        return -1;
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(o, "norm_type");
    if (nt) {
        if (cJSON_IsString(nt) && !strcmp(nt->valuestring, "rmsnorm")) t->norm = VLM_NORM_RMS;
        else if (cJSON_IsString(nt) && !strcmp(nt->valuestring, "layernorm")) t->norm = VLM_NORM_LAYER;
        else return sevo_fail(err, "%s: field '%snorm_type': expected rmsnorm or layernorm", path, sect);
    }
    return 0;
}

int vlm_config_load(vlm_config *c, const char *path, sevo_error *err) {
    char *text = NULL;
    if (sevo_read_file(path, &text, NULL, err)) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sevo_fail(err, "%s: invalid JSON", path);
    }
    vlm_config_tiny(c, 0);
    int rc = -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (!cJSON_IsObject(v)) {
        sevo_fail(err, "%s: field 'vision_config': missing or not an object", path);
        goto done;
    }
    if (!cJSON_IsObject(t)) {
        sevo_fail(err, "%s: field 'text_config': missing or not an object", path);
        goto done;
    }
    if (tower_from_json(v, "vision_config.", &c->vision, path, err) ||
        tower_from_json(t, "text_config.", &c->text, path, err) ||
        get_int(v, "vision_config.", "image_size", &c->image_size, 1, path, err) ||
        get_int(v, "vision_config.", "patch_size", &c->patch_size, 1, path, err) ||
        get_int(v, "vision_config.", "num_channels", &c->num_channels, 0, path, err) ||
        get_int(t, "text_config.", "vocab_size", &c->vocab_size, 1, path, err) ||
        get_int(t, "text_config.", "max_position_embeddings", &c->max_position_embeddings, 0, path, err) ||
        get_float(t, "text_config.", "rope_theta", &c->rope_theta, path, err) ||
        get_float(t, "text_config.", "rms_norm_eps", &c->text.norm_eps, path, err) ||
        get_int(t, "text_config.", "bos_token_id", &c->bos_token_id, 1, path, err) ||
        get_int(t, "text_config.", "eos_token_id", &c->eos_token_id, 1, path, err) ||
        get_int(t, "text_config.", "pad_token_id", &c->pad_token_id, 1, path, err) ||
        get_int(root, "", "image_token_index", &c->image_token_id, 1, path, err) ||
        get_bool(root, "", "tie_word_embeddings", &c->tie_word_embeddings, path, err) ||
        get_bool(root, "", "sevo_text_reasoning", &c->text_reasoning, path, err) ||
        get_act(root, "", "projector_hidden_act", &c->projector_act, path, err))
        goto done;
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "image_std" : "image_mean";
        float *dst = k ? c->image_std : c->image_mean;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(v, key);
        if (!a) continue;
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3) {
            sevo_fail(err, "%s: field 'vision_config.%s': expected 3 numbers", path, key);
            goto done;
        }
        for (int i = 0; i < 3; i++) {
            const cJSON *x = cJSON_GetArrayItem(a, i);
            if (json_float(x, &dst[i]) || (k && dst[i] == 0.0f)) {
                sevo_fail(err, "%s: field 'vision_config.%s': expected 3 finite numbers%s", path,
                          key, k ? ", none zero" : "");
                goto done;
            }
        }
    }
    rc = vlm_config_validate(c, path, err);
done:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------- parameter table */

typedef struct table_builder {
    vlm_tensor *t;
    int n, cap;
    size_t offset;
    int failed;
} table_builder;

static void add_tensor(table_builder *tb, const char *name, int decay, int ndim, int64_t d0,
                       int64_t d1, int64_t d2, int64_t d3) {
    if (tb->failed) return;
    if (tb->n == tb->cap) {
        int cap = tb->cap ? tb->cap * 2 : 64;
        vlm_tensor *nt = realloc(tb->t, (size_t)cap * sizeof *nt);
        if (!nt) {
            tb->failed = 1;
            return;
        }
        tb->t = nt;
        tb->cap = cap;
    }
    vlm_tensor *x = &tb->t[tb->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ndim = ndim;
    int64_t dims[4] = {d0, d1, d2, d3};
    x->numel = 1;
    for (int i = 0; i < ndim; i++) {
        x->shape[i] = dims[i];
        x->numel *= (size_t)dims[i];
    }
    x->offset = tb->offset;
    x->decay = decay;
    /* keep every tensor 16-float aligned for vector loads */
    tb->offset += (x->numel + 15) & ~(size_t)15;
}

static void add_block(table_builder *tb, const char *prefix, const vlm_tower_config *t, int vision) {
    char nm[96];
    int D = t->hidden_size, F = t->intermediate_size;
    int hd = D / t->num_heads, Dkv = hd * t->num_kv_heads;
    const char *n1 = vision ? "layer_norm1" : "input_layernorm";
    const char *n2 = vision ? "layer_norm2" : "post_attention_layernorm";
    int has_norm_bias = t->norm == VLM_NORM_LAYER;
#define T1(suffix, dec, a) (snprintf(nm, sizeof nm, "%s.%s", prefix, suffix), add_tensor(tb, nm, dec, 1, a, 0, 0, 0))
#define T2(suffix, dec, a, b) (snprintf(nm, sizeof nm, "%s.%s", prefix, suffix), add_tensor(tb, nm, dec, 2, a, b, 0, 0))
    char s[64];
    snprintf(s, sizeof s, "%s.weight", n1); T1(s, 0, D);
    if (has_norm_bias) { snprintf(s, sizeof s, "%s.bias", n1); T1(s, 0, D); }
    T2("self_attn.q_proj.weight", 1, D, D);
    if (t->bias) T1("self_attn.q_proj.bias", 0, D);
    T2("self_attn.k_proj.weight", 1, Dkv, D);
    if (t->bias) T1("self_attn.k_proj.bias", 0, Dkv);
    T2("self_attn.v_proj.weight", 1, Dkv, D);
    if (t->bias) T1("self_attn.v_proj.bias", 0, Dkv);
    const char *o = vision ? "self_attn.out_proj" : "self_attn.o_proj";
    snprintf(s, sizeof s, "%s.weight", o); T2(s, 1, D, D);
    if (t->bias) { snprintf(s, sizeof s, "%s.bias", o); T1(s, 0, D); }
    snprintf(s, sizeof s, "%s.weight", n2); T1(s, 0, D);
    if (has_norm_bias) { snprintf(s, sizeof s, "%s.bias", n2); T1(s, 0, D); }
    if (t->gated) {
        T2("mlp.gate_proj.weight", 1, F, D);
        if (t->bias) T1("mlp.gate_proj.bias", 0, F);
        T2("mlp.up_proj.weight", 1, F, D);
        if (t->bias) T1("mlp.up_proj.bias", 0, F);
        T2("mlp.down_proj.weight", 1, D, F);
        if (t->bias) T1("mlp.down_proj.bias", 0, D);
    } else {
        T2("mlp.fc1.weight", 1, F, D);
        if (t->bias) T1("mlp.fc1.bias", 0, F);
        T2("mlp.fc2.weight", 1, D, F);
        if (t->bias) T1("mlp.fc2.bias", 0, D);
    }
#undef T1
#undef T2
}

static int build_table(vlm *m, sevo_error *err) {
    const vlm_config *c = &m->cfg;
    table_builder tb = {0};
    int Dv = c->vision.hidden_size, Dt = c->text.hidden_size;
    const char *vp = "vision_tower.vision_model";
    char nm[96];
    snprintf(nm, sizeof nm, "%s.embeddings.patch_embedding.weight", vp);
    add_tensor(&tb, nm, 1, 4, Dv, c->num_channels, c->patch_size, c->patch_size);
    snprintf(nm, sizeof nm, "%s.embeddings.patch_embedding.bias", vp);
    add_tensor(&tb, nm, 0, 1, Dv, 0, 0, 0);
    snprintf(nm, sizeof nm, "%s.embeddings.position_embedding.weight", vp);
    add_tensor(&tb, nm, 0, 2, m->num_patches, Dv, 0, 0);
    for (int l = 0; l < c->vision.num_layers; l++) {
        char pre[96];
        snprintf(pre, sizeof pre, "%s.encoder.layers.%d", vp, l);
        add_block(&tb, pre, &c->vision, 1);
    }
    snprintf(nm, sizeof nm, "%s.post_layernorm.weight", vp);
    add_tensor(&tb, nm, 0, 1, Dv, 0, 0, 0);
    if (c->vision.norm == VLM_NORM_LAYER) {
        snprintf(nm, sizeof nm, "%s.post_layernorm.bias", vp);
        add_tensor(&tb, nm, 0, 1, Dv, 0, 0, 0);
    }
    add_tensor(&tb, "multi_modal_projector.linear_1.weight", 1, 2, Dt, Dv, 0, 0);
    add_tensor(&tb, "multi_modal_projector.linear_1.bias", 0, 1, Dt, 0, 0, 0);
    add_tensor(&tb, "multi_modal_projector.linear_2.weight", 1, 2, Dt, Dt, 0, 0);
    add_tensor(&tb, "multi_modal_projector.linear_2.bias", 0, 1, Dt, 0, 0, 0);
    add_tensor(&tb, "language_model.model.embed_tokens.weight", 1, 2, c->vocab_size, Dt, 0, 0);
    for (int l = 0; l < c->text.num_layers; l++) {
        char pre[96];
        snprintf(pre, sizeof pre, "language_model.model.layers.%d", l);
        add_block(&tb, pre, &c->text, 0);
    }
    add_tensor(&tb, "language_model.model.norm.weight", 0, 1, Dt, 0, 0, 0);
    if (c->text.norm == VLM_NORM_LAYER)
        add_tensor(&tb, "language_model.model.norm.bias", 0, 1, Dt, 0, 0, 0);
    if (!c->tie_word_embeddings)
        add_tensor(&tb, "language_model.lm_head.weight", 1, 2, c->vocab_size, Dt, 0, 0);
    if (tb.failed) {
        free(tb.t);
        return sevo_fail(err, "out of memory building the parameter table");
    }
    m->tensors = tb.t;
    m->n_tensors = tb.n;
    m->n_params = tb.offset;
    return 0;
}

const vlm_tensor *vlm_find_tensor(const vlm *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

static float *ptr(float *arena, const vlm *m, const char *name) {
    const vlm_tensor *t = vlm_find_tensor(m, name);
    return t ? arena + t->offset : NULL;
}

static void bind_block(block_params *b, float *arena, const vlm *m, const char *prefix, int vision) {
    char nm[128];
#define P(field, suffix) (snprintf(nm, sizeof nm, "%s.%s", prefix, suffix), b->field = ptr(arena, m, nm))
    P(n1w, vision ? "layer_norm1.weight" : "input_layernorm.weight");
    P(n1b, vision ? "layer_norm1.bias" : "input_layernorm.bias");
    P(qw, "self_attn.q_proj.weight");
    P(qb, "self_attn.q_proj.bias");
    P(kw, "self_attn.k_proj.weight");
    P(kb, "self_attn.k_proj.bias");
    P(vw, "self_attn.v_proj.weight");
    P(vb, "self_attn.v_proj.bias");
    P(ow, vision ? "self_attn.out_proj.weight" : "self_attn.o_proj.weight");
    P(ob, vision ? "self_attn.out_proj.bias" : "self_attn.o_proj.bias");
    P(n2w, vision ? "layer_norm2.weight" : "post_attention_layernorm.weight");
    P(n2b, vision ? "layer_norm2.bias" : "post_attention_layernorm.bias");
    P(f1w, "mlp.gate_proj.weight");
    if (!b->f1w) P(f1w, "mlp.fc1.weight");
    P(f1b, "mlp.gate_proj.bias");
    if (!b->f1b) P(f1b, "mlp.fc1.bias");
    P(upw, "mlp.up_proj.weight");
    P(upb, "mlp.up_proj.bias");
    P(f2w, "mlp.down_proj.weight");
    if (!b->f2w) P(f2w, "mlp.fc2.weight");
    P(f2b, "mlp.down_proj.bias");
    if (!b->f2b) P(f2b, "mlp.fc2.bias");
#undef P
}

static int bind_weights(vlm_weights *w, float *arena, const vlm *m, sevo_error *err) {
    const vlm_config *c = &m->cfg;
    const char *vp = "vision_tower.vision_model";
    char nm[128];
    memset(w, 0, sizeof *w);
    snprintf(nm, sizeof nm, "%s.embeddings.patch_embedding.weight", vp);
    w->patch_w = ptr(arena, m, nm);
    snprintf(nm, sizeof nm, "%s.embeddings.patch_embedding.bias", vp);
    w->patch_b = ptr(arena, m, nm);
    snprintf(nm, sizeof nm, "%s.embeddings.position_embedding.weight", vp);
    w->pos_emb = ptr(arena, m, nm);
    snprintf(nm, sizeof nm, "%s.post_layernorm.weight", vp);
    w->vpost_w = ptr(arena, m, nm);
    snprintf(nm, sizeof nm, "%s.post_layernorm.bias", vp);
    w->vpost_b = ptr(arena, m, nm);
    w->proj1_w = ptr(arena, m, "multi_modal_projector.linear_1.weight");
    w->proj1_b = ptr(arena, m, "multi_modal_projector.linear_1.bias");
    w->proj2_w = ptr(arena, m, "multi_modal_projector.linear_2.weight");
    w->proj2_b = ptr(arena, m, "multi_modal_projector.linear_2.bias");
    w->wte = ptr(arena, m, "language_model.model.embed_tokens.weight");
    w->tnorm_w = ptr(arena, m, "language_model.model.norm.weight");
    w->tnorm_b = ptr(arena, m, "language_model.model.norm.bias");
    w->lm_head = c->tie_word_embeddings ? w->wte : ptr(arena, m, "language_model.lm_head.weight");
    w->vblocks = calloc((size_t)(c->vision.num_layers + 1), sizeof *w->vblocks);
    w->tblocks = calloc((size_t)(c->text.num_layers + 1), sizeof *w->tblocks);
    if (!w->vblocks || !w->tblocks) return sevo_fail(err, "out of memory binding weights");
    for (int l = 0; l < c->vision.num_layers; l++) {
        char pre[96];
        snprintf(pre, sizeof pre, "%s.encoder.layers.%d", vp, l);
        bind_block(&w->vblocks[l], arena, m, pre, 1);
    }
    for (int l = 0; l < c->text.num_layers; l++) {
        char pre[96];
        snprintf(pre, sizeof pre, "language_model.model.layers.%d", l);
        bind_block(&w->tblocks[l], arena, m, pre, 0);
    }
    return 0;
}

int block_geom_tower(block_geom *g, const vlm_tower_config *t, int causal, int rope) {
    g->D = t->hidden_size;
    g->H = t->num_heads;
    g->KVH = t->num_kv_heads;
    g->hd = t->hidden_size / t->num_heads;
    g->F = t->intermediate_size;
    g->norm = t->norm;
    g->act = t->act;
    g->gated = t->gated;
    g->causal = causal;
    g->rope = rope;
    g->eps = t->norm_eps;
    return 0;
}

int vlm_create(vlm **out, const vlm_config *c, sevo_error *err) {
    *out = NULL;
    if (vlm_config_validate(c, "model config", err)) return -1;
    vlm *m = sevo_calloc(1, sizeof *m, "model", err);
    if (!m) return -1;
    m->cfg = *c;
    m->num_patches = vlm_config_num_patches(c);
    m->patch_dim = c->num_channels * c->patch_size * c->patch_size;
    block_geom_tower(&m->vgeom, &c->vision, 0, 0);
    block_geom_tower(&m->tgeom, &c->text, 1, 1);
    if (build_table(m, err)) goto fail;
    m->params = sevo_calloc(m->n_params, sizeof(float), "parameters", err);
    m->grads = sevo_calloc(m->n_params, sizeof(float), "gradients", err);
    if (!m->params || !m->grads) goto fail;
    if (bind_weights(&m->w, m->params, m, err) || bind_weights(&m->g, m->grads, m, err)) goto fail;
    int hd = m->tgeom.hd, maxp = c->max_position_embeddings;
    m->rope_cos = sevo_malloc((size_t)maxp * (hd / 2) * sizeof(float), "rope table", err);
    m->rope_sin = sevo_malloc((size_t)maxp * (hd / 2) * sizeof(float), "rope table", err);
    if (!m->rope_cos || !m->rope_sin) goto fail;
    rope_table_init(m->rope_cos, m->rope_sin, maxp, hd, c->rope_theta);
    *out = m;
    return 0;
fail:
    vlm_free(m);
    return -1;
}

void vlm_free(vlm *m) {
    if (!m) return;
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->w.vblocks);
    free(m->w.tblocks);
    free(m->g.vblocks);
    free(m->g.tblocks);
    free(m->rope_cos);
    free(m->rope_sin);
    free(m->tmem);
    free(m->tblocks);
    free(m->pos);
    free(m->bmem);
    free(m->splice_rows);
    free(m->splice_feat);
    vision_acts_free(&m->vis, m);
    free(m);
}

const vlm_config *vlm_get_config(const vlm *m) { return &m->cfg; }
void vlm_set_text_reasoning(vlm *m, int on) { m->cfg.text_reasoning = on != 0; }
int vlm_num_tensors(const vlm *m) { return m->n_tensors; }
const vlm_tensor *vlm_tensor_at(const vlm *m, int i) { return &m->tensors[i]; }
size_t vlm_num_params(const vlm *m) { return m->n_params; }
float *vlm_params(vlm *m) { return m->params; }
float *vlm_grads(vlm *m) { return m->grads; }
void vlm_zero_grads(vlm *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

void vlm_init_weights(vlm *m, uint64_t seed) {
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 0x5e70);
    memset(m->params, 0, m->n_params * sizeof(float));
    for (int i = 0; i < m->n_tensors; i++) {
        const vlm_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        const char *n = t->name;
        size_t len = strlen(n);
        int is_bias = len > 5 && !strcmp(n + len - 5, ".bias");
        int is_norm = strstr(n, "norm") != NULL;
        if (is_bias) continue;
        if (is_norm) {
            for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
            continue;
        }
        float std = 0.02f;
        /* The vision tower and projector start from scratch under a language-model loss:
         * with GPT-style 0.02 weights the projector attenuates image content ~20x while
         * its biases grow, and the decoder settles on constant image tokens before it
         * learns to read them. LeCun-normal weights (std 1/sqrt(fan_in), as ViT and
         * SigLIP initialise) keep image content at unit scale. */
        if ((strstr(n, "vision_tower") || strstr(n, "multi_modal_projector")) && t->ndim >= 2 &&
            !strstr(n, "position_embedding")) {
            size_t fan_in = t->numel / (size_t)t->shape[0];
            std = 1.0f / sqrtf((float)fan_in);
        }
        /* residual-stream outputs: scale so the residual variance stays O(1) with depth */
        if (strstr(n, "o_proj") || strstr(n, "out_proj") || strstr(n, "down_proj") || strstr(n, "fc2")) {
            int L = strstr(n, "vision") ? m->cfg.vision.num_layers : m->cfg.text.num_layers;
            std /= sqrtf(2.0f * (float)(L > 0 ? L : 1));
        }
        for (size_t j = 0; j < t->numel; j++) p[j] = std * sevo_rng_normal(&rng);
    }
}

/* -------------------------------------------------------- transformer block */

void norm_forward(const block_geom *g, float *out, float *mean, float *rstd, const float *inp,
                  const float *w, const float *b, int N) {
    if (g->norm == VLM_NORM_RMS) rmsnorm_forward(out, rstd, inp, w, N, g->D, g->eps);
    else layernorm_forward(out, mean, rstd, inp, w, b, N, g->D, g->eps);
}

static void norm_backward(const block_geom *g, float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, const float *mean, const float *rstd,
                          int N) {
    if (g->norm == VLM_NORM_RMS) rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, g->D);
    else layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, g->D);
}

/* SiLU is accepted for the ungated MLP and the projector (config hidden_act /
 * projector_hidden_act "silu"); these once fell through to erf-GELU, found by the
 * PyTorch parity test (tests/parity). */
void act_forward(vlm_act act, float *out, const float *inp, size_t n) {
    if (act == VLM_ACT_SILU) silu_forward(out, inp, n);
    else gelu_forward(out, inp, n, act == VLM_ACT_GELU_TANH);
}

void act_backward(vlm_act act, float *dinp, const float *inp, const float *dout, size_t n) {
    if (act == VLM_ACT_SILU) silu_backward(dinp, inp, dout, n);
    else gelu_backward(dinp, inp, dout, n, act == VLM_ACT_GELU_TANH);
}

size_t block_acts_floats(const block_geom *g, int N, int B, int T) {
    size_t D = (size_t)g->D, Dkv = (size_t)g->KVH * g->hd, F = (size_t)g->F, n = (size_t)N;
    return n * D * 5 + n * 4 + n * (D + 2 * Dkv) + (size_t)B * g->H * T * T + n * F * 3 + n * D;
}

void block_acts_bind(block_acts *a, const block_geom *g, float **cur, int N, int B, int T) {
    size_t D = (size_t)g->D, Dkv = (size_t)g->KVH * g->hd, F = (size_t)g->F, n = (size_t)N;
#define TAKE(field, count) (a->field = *cur, *cur += (count))
    TAKE(n1, n * D);
    TAKE(n1_mean, n);
    TAKE(n1_rstd, n);
    TAKE(q, n * D);
    TAKE(k, n * Dkv);
    TAKE(v, n * Dkv);
    TAKE(att, (size_t)B * g->H * T * T);
    TAKE(ao, n * D);
    TAKE(x_mid, n * D);
    TAKE(n2, n * D);
    TAKE(n2_mean, n);
    TAKE(n2_rstd, n);
    TAKE(h1, n * F);
    TAKE(hup, n * F);
    TAKE(hact, n * F);
    TAKE(x_out, n * D);
#undef TAKE
}

/* The first half of a pre-norm block for N rows: Norm1, the q, k, v projections (k and v
 * into the buffers given: the block's own, or a KV cache), q and k rotated by pos. */
void block_qkv_forward(const block_geom *g, const block_params *p, block_acts *a, const float *x_in, int N,
                       const int *pos, const float *rope_cos, const float *rope_sin, float *k, float *v) {
    int D = g->D, Dkv = g->KVH * g->hd;
    a->x_in = (float *)x_in;
    norm_forward(g, a->n1, a->n1_mean, a->n1_rstd, x_in, p->n1w, p->n1b, N);
    linear_forward(a->q, a->n1, p->qw, p->qb, N, D, D);
    linear_forward(k, a->n1, p->kw, p->kb, N, D, Dkv);
    linear_forward(v, a->n1, p->vw, p->vb, N, D, Dkv);
    if (g->rope) {
        rope_forward(a->q, rope_cos, rope_sin, pos, N, g->H, g->hd);
        rope_forward(k, rope_cos, rope_sin, pos, N, g->KVH, g->hd);
    }
}

/* The second half, from the attention output a->ao of N rows: x_mid = x_in + O(ao);
 * x_out = x_mid + MLP(Norm2(x_mid)). */
void block_out_forward(const block_geom *g, const block_params *p, block_acts *a, int N) {
    int D = g->D, F = g->F;
    linear_forward(a->x_mid, a->ao, p->ow, p->ob, N, D, D);
    add_inplace(a->x_mid, a->x_in, (size_t)N * D);
    norm_forward(g, a->n2, a->n2_mean, a->n2_rstd, a->x_mid, p->n2w, p->n2b, N);
    linear_forward(a->h1, a->n2, p->f1w, p->f1b, N, D, F);
    if (g->gated) {
        linear_forward(a->hup, a->n2, p->upw, p->upb, N, D, F);
        swiglu_forward(a->hact, a->h1, a->hup, (size_t)N * F);
    } else {
        act_forward(g->act, a->hact, a->h1, (size_t)N * F);
    }
    linear_forward(a->x_out, a->hact, p->f2w, p->f2b, N, F, D);
    add_inplace(a->x_out, a->x_mid, (size_t)N * D);
}

/* One pre-norm block: x_mid = x_in + Attn(Norm1(x_in)); x_out = x_mid + MLP(Norm2(x_mid)).
 * With kcache != NULL (generation, B = 1) keys and values of the T new rows are written
 * into the cache at rows cache_start.. and attention runs against the whole cache. */
void block_forward(const block_geom *g, const block_params *p, block_acts *a, const float *x_in,
                   int B, int T, const int *pos, const int *seg_start, const float *rope_cos,
                   const float *rope_sin, float *kcache, float *vcache, int cache_start, float *scratch) {
    int N = B * T, Dkv = g->KVH * g->hd;
    float *k = kcache ? kcache + (size_t)cache_start * Dkv : a->k;
    float *v = vcache ? vcache + (size_t)cache_start * Dkv : a->v;
    block_qkv_forward(g, p, a, x_in, N, pos, rope_cos, rope_sin, k, v);
    if (kcache)
        attention_cached_forward(a->ao, a->q, kcache, vcache, T, cache_start + T, g->H, g->KVH,
                                 g->hd, scratch);
    else
        attention_forward(a->ao, a->att, a->q, k, v, B, T, g->H, g->KVH, g->hd, g->causal,
                          seg_start);
    block_out_forward(g, p, a, N);
}

/* Backward of block_forward (training only). dx holds dL/dx_out on entry and
 * dL/dx_in on exit (updated in place: the residual path is the identity). */
void block_backward(const block_geom *g, const block_params *p, const block_params *gp,
                    const block_acts *a, float *dx, int B, int T, const int *pos, const int *seg_start,
                    const float *rope_cos, const float *rope_sin, vlm *m) {
    size_t N = (size_t)B * T;
    int D = g->D, Dkv = g->KVH * g->hd, F = g->F;
    /* MLP. The first contribution to each input gradient writes it (the *_set
     * kernels), so no buffer is zeroed before it is overwritten. */
    linear_backward_set(m->dhact, gp->f2w, gp->f2b, dx, a->hact, p->f2w, (int)N, F, D);
    if (g->gated) {
        swiglu_backward_set(m->dh1, m->dup, m->dhact, a->h1, a->hup, N * F);
        linear_backward_set(m->dn, gp->upw, gp->upb, m->dup, a->n2, p->upw, (int)N, D, F);
        linear_backward(m->dn, gp->f1w, gp->f1b, m->dh1, a->n2, p->f1w, (int)N, D, F);
    } else {
        memset(m->dh1, 0, N * F * sizeof(float));
        act_backward(g->act, m->dh1, a->h1, m->dhact, N * F);
        linear_backward_set(m->dn, gp->f1w, gp->f1b, m->dh1, a->n2, p->f1w, (int)N, D, F);
    }
    norm_backward(g, dx, gp->n2w, gp->n2b, m->dn, a->x_mid, p->n2w, a->n2_mean, a->n2_rstd, (int)N);
    /* attention */
    linear_backward_set(m->dao, gp->ow, gp->ob, dx, a->ao, p->ow, (int)N, D, D);
    memset(m->dq, 0, N * D * sizeof(float));
    memset(m->dk, 0, N * Dkv * sizeof(float));
    memset(m->dv, 0, N * Dkv * sizeof(float));
    attention_backward(m->dq, m->dk, m->dv, m->dao, a->att, a->q, a->k, a->v, B, T, g->H, g->KVH,
                       g->hd, g->causal, seg_start, m->att_scratch);
    if (g->rope) {
        rope_backward(m->dq, rope_cos, rope_sin, pos, (int)N, g->H, g->hd);
        rope_backward(m->dk, rope_cos, rope_sin, pos, (int)N, g->KVH, g->hd);
    }
    linear_backward_set(m->dn, gp->qw, gp->qb, m->dq, a->n1, p->qw, (int)N, D, D);
    linear_backward(m->dn, gp->kw, gp->kb, m->dk, a->n1, p->kw, (int)N, D, Dkv);
    linear_backward(m->dn, gp->vw, gp->vb, m->dv, a->n1, p->vw, (int)N, D, Dkv);
    norm_backward(g, dx, gp->n1w, gp->n1b, m->dn, a->x_in, p->n1w, a->n1_mean, a->n1_rstd, (int)N);
}
