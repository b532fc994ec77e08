/* checkpoint.c: saving and loading model directories. */
#include "model/checkpoint.h"

#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "model/safetensors.h"

int checkpoint_save_weights(const char *path, const vlm *m, sevo_error *err) {
    int nt = vlm_num_tensors(m);
    safetensors_entry *e = sevo_calloc((size_t)nt, sizeof *e, "checkpoint entries", err);
    if (!e) return -1;
    const float *p = vlm_params((vlm *)m);
    for (int i = 0; i < nt; i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        e[i].name = t->name;
        e[i].data = p + t->offset;
        e[i].ndim = t->ndim;
        memcpy(e[i].shape, t->shape, sizeof t->shape);
    }
    const char *meta[] = {"format", "pt", "producer", "sevo"};
    int rc = safetensors_write_f32(path, e, nt, meta, 2, err);
    free(e);
    return rc;
}

int checkpoint_load_weights(const char *path, vlm *m, sevo_error *err) {
    sevo_safetensors *st = NULL;
    if (safetensors_open(&st, path, err)) return -1;
    int rc = 0;
    float *p = vlm_params(m);
    for (int i = 0; i < vlm_num_tensors(m) && !rc; i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        rc = safetensors_read_f32(st, t->name, p + t->offset, t->shape, t->ndim, err);
    }
    safetensors_close(st);
    return rc;
}

int checkpoint_save_model(const char *dir, const vlm *m, const sevo_tokenizer *tok, sevo_error *err) {
    char path[4096];
    if (sevo_mkdirs(dir, err)) return -1;
    sevo_path_join(path, sizeof path, dir, "model.safetensors");
    if (checkpoint_save_weights(path, m, err)) return -1;
    sevo_path_join(path, sizeof path, dir, "tokenizer.json");
    if (tokenizer_save(tok, path, err)) return -1;
    /* config.json last: its presence marks a complete model directory */
    sevo_path_join(path, sizeof path, dir, "config.json");
    return vlm_config_save(vlm_get_config(m), path, err);
}

int checkpoint_load_model(const char *dir, vlm **out, sevo_tokenizer **tok_out, sevo_error *err) {
    char path[4096];
    *out = NULL;
    *tok_out = NULL;
    if (!sevo_dir_exists(dir)) return sevo_fail(err, "%s: model directory does not exist", dir);
    sevo_path_join(path, sizeof path, dir, "config.json");
    if (!sevo_file_exists(path))
        return sevo_fail(err, "%s: not a checkpoint directory (no config.json)", dir);
    vlm_config cfg;
    if (vlm_config_load(&cfg, path, err)) return -1;
    sevo_path_join(path, sizeof path, dir, "tokenizer.json");
    sevo_tokenizer *tok = NULL;
    if (tokenizer_load(&tok, path, err)) return -1;
    int n_tokens = tokenizer_vocab_size(tok);
    if (n_tokens > cfg.vocab_size) {
        /* counted before the free: the message once read the freed tokenizer */
        tokenizer_free(tok);
        return sevo_fail(err, "%s: tokenizer has %d tokens but config.json vocab_size is %d", dir, n_tokens,
                         cfg.vocab_size);
    }
    vlm *m = NULL;
    if (vlm_create(&m, &cfg, err)) {
        tokenizer_free(tok);
        return -1;
    }
    sevo_path_join(path, sizeof path, dir, "model.safetensors");
    if (checkpoint_load_weights(path, m, err)) {
        vlm_free(m);
        tokenizer_free(tok);
        return -1;
    }
    *out = m;
    *tok_out = tok;
    return 0;
}
