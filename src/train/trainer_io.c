/* trainer_io.c: checkpoints, resume, trainer_state.json and metrics.jsonl. */
#include "train/trainer_io.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "model/checkpoint.h"

int trainer_state_save(const trainer_state *s, const char *path, sevo_error *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "global_step", s->global_step);
    cJSON_AddNumberToObject(o, "total_steps", s->total_steps);
    cJSON_AddNumberToObject(o, "epoch", s->epoch);
    cJSON_AddNumberToObject(o, "seed", (double)s->seed);
    cJSON_AddNumberToObject(o, "num_threads", s->num_threads);
    char *txt = cJSON_Print(o);
    cJSON_Delete(o);
    if (!txt) return sevo_fail(err, "%s: out of memory", path);
    int rc = sevo_write_file_atomic(path, txt, strlen(txt), err);
    free(txt);
    return rc;
}

int trainer_state_load(trainer_state *s, const char *path, sevo_error *err) {
    char *txt = NULL;
    if (sevo_read_file(path, &txt, NULL, err)) return -1;
    cJSON *o = cJSON_Parse(txt);
    free(txt);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return sevo_fail(err, "%s: invalid JSON", path);
    }
    const char *keys[] = {"global_step", "total_steps", "epoch", "seed", "num_threads"};
    double vals[5];
    for (int i = 0; i < 5; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!cJSON_IsNumber(it)) {
            cJSON_Delete(o);
            return sevo_fail(err, "%s: field '%s': missing or not a number", path, keys[i]);
        }
        vals[i] = it->valuedouble;
    }
    cJSON_Delete(o);
    s->global_step = (int)vals[0];
    s->total_steps = (int)vals[1];
    s->epoch = (int)vals[2];
    s->seed = (long long)vals[3];
    s->num_threads = (int)vals[4];
    return 0;
}

static int write_checkpoint_files(const char *dir, const vlm *m, const sevo_tokenizer *tok,
                                  const adamw *opt, const trainer_state *st, sevo_error *err) {
    char path[4096];
    if (checkpoint_save_model(dir, m, tok, err)) return -1;
    sevo_path_join(path, sizeof path, dir, "optimizer.safetensors");
    if (adamw_save(opt, m, path, err)) return -1;
    sevo_path_join(path, sizeof path, dir, "trainer_state.json");
    return trainer_state_save(st, path, err);
}

/* Lists checkpoint-<step> directories of dir; returns the count, steps sorted ascending. */
static int list_checkpoints(const char *dir, int *steps, int max) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int step;
        char tail;
        if (sscanf(e->d_name, "checkpoint-%d%c", &step, &tail) == 1 && n < max) steps[n++] = step;
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && steps[j - 1] > steps[j]; j--) {
            int t = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = t;
        }
    return n;
}

int trainer_save_checkpoint(const char *dir, const vlm *m, const sevo_tokenizer *tok,
                            const adamw *opt, const trainer_state *st, sevo_error *err) {
    char final[4096], tmp[4200];
    snprintf(final, sizeof final, "%s/checkpoint-%d", dir, st->global_step);
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    sevo_remove_tree(tmp);
    if (write_checkpoint_files(tmp, m, tok, opt, st, err)) {
        sevo_remove_tree(tmp);
        return -1;
    }
    sevo_remove_tree(final);
    if (rename(tmp, final) != 0) {
        sevo_remove_tree(tmp);
        return sevo_fail(err, "%s: cannot rename checkpoint into place", final);
    }
    int steps[4096];
    int n = list_checkpoints(dir, steps, 4096);
    for (int i = 0; i + 2 < n; i++) {
        /* renamed first, so that a kill halfway through the removal leaves a name the
         * next run clears (trainer_remove_stale), not a half-deleted checkpoint-N */
        char old[4096], doomed[4200];
        snprintf(old, sizeof old, "%s/checkpoint-%d", dir, steps[i]);
        snprintf(doomed, sizeof doomed, "%s.removing", old);
        sevo_remove_tree(doomed);
        sevo_remove_tree(rename(old, doomed) == 0 ? doomed : old);
    }
    return 0;
}

/* The pid of an atomic write's "<name>.tmp.<pid>", or 0 for any other name. */
static long temp_file_pid(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t) return 0;
    char *end;
    long pid = strtol(t + 5, &end, 10);
    return *end == '\0' && pid > 0 ? pid : 0;
}

void trainer_remove_stale(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[4400], tail[16];
        int step;
        long pid = temp_file_pid(e->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        /* an atomic write whose writer is gone (a live pid may be another run's: kept) */
        if (pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH) remove(path);
        /* a checkpoint being written or removed when its run stopped */
        else if (sscanf(e->d_name, "checkpoint-%d.%15s", &step, tail) == 2 &&
                 (!strcmp(tail, "tmp") || !strcmp(tail, "removing")))
            sevo_remove_tree(path);
    }
    closedir(d);
}

int trainer_find_checkpoint(const char *dir, int before, char *path, size_t n, int *step) {
    int steps[4096];
    int k = list_checkpoints(dir, steps, 4096);
    for (int i = k - 1; i >= 0; i--) {
        if (steps[i] >= before) continue;
        char state[4200];
        snprintf(path, n, "%s/checkpoint-%d", dir, steps[i]);
        snprintf(state, sizeof state, "%s/trainer_state.json", path);
        if (sevo_file_exists(state)) {
            *step = steps[i];
            return 0;
        }
    }
    return 1;
}

int trainer_load_checkpoint(const char *ckpt, vlm *m, adamw *opt, trainer_state *st, sevo_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", ckpt);
    if (checkpoint_load_weights(path, m, err)) return -1;
    snprintf(path, sizeof path, "%s/optimizer.safetensors", ckpt);
    if (adamw_load(opt, m, path, err)) return -1;
    snprintf(path, sizeof path, "%s/trainer_state.json", ckpt);
    return trainer_state_load(st, path, err);
}

int trainer_save_final(const char *dir, const vlm *m, const sevo_tokenizer *tok, const adamw *opt,
                       const trainer_state *st, sevo_error *err) {
    return write_checkpoint_files(dir, m, tok, opt, st, err);
}

FILE *metrics_open(const char *dir, int keep_until_step, sevo_error *err) {
    char path[4096];
    sevo_path_join(path, sizeof path, dir, "metrics.jsonl");
    char *old = NULL;
    size_t len = 0;
    if (keep_until_step > 0 && sevo_file_exists(path) && sevo_read_file(path, &old, &len, NULL) == 0) {
        /* keep the lines up to the resumed step */
        sevo_atomic_file af;
        if (sevo_atomic_open(&af, path, err)) {
            free(old);
            return NULL;
        }
        char *save = NULL;
        for (char *line = strtok_r(old, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            const char *k = strstr(line, "\"step\":");
            if (k && atoi(k + 7) <= keep_until_step) fprintf(af.f, "%s\n", line);
        }
        free(old);
        if (sevo_atomic_commit(&af, err)) return NULL;
    } else if (sevo_write_file_atomic(path, "", 0, err)) {
        return NULL;
    }
    FILE *f = fopen(path, "a");
    if (!f) sevo_fail(err, "%s: cannot open for appending", path);
    return f;
}
