/* test_kill_resume.c: `sevo sft` and `sevo train-sr-dpo` killed with SIGKILL at random
 * points and resumed with --resume must end bitwise identical to an uninterrupted run:
 * the final weights, optimizer moments, trainer_state.json, the kept checkpoints, the
 * metrics log (but for its tokens/s), and the directory itself (no temporary file left
 * behind). The kill points come from a seeded RNG: stratified over the run's progress
 * (so some land before the first checkpoint and some late), plus kills fired while a
 * checkpoint or the final model is being written; some resumed runs are killed again.
 * Each kill prints what was being written, the newest complete checkpoint it left, and
 * the step the run then resumed from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../test_util.h"
#include "../test_world.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/preferences.h"
#include "train/trainer_io.h"

/* Kills per trainer: the first N_STRATIFIED at a point drawn from the i-th slice of the
 * run (counted in steps), the rest while a checkpoint is being written. */
enum { N_STRATIFIED = 4, N_AT_WRITE = 2, N_TRIALS = N_STRATIFIED + N_AT_WRITE, MAX_ARGS = 48 };

typedef struct fixture {
    char dir[64];
} fixture;

/* Preference pairs for SR-DPO in the reference format, from the world's own records:
 * the true perception chosen over the record's wrong one. */
static int write_pairs(const char *dir) {
    char data[256], out[256];
    snprintf(data, sizeof data, "%s/data/train.jsonl", dir);
    snprintf(out, sizeof out, "%s/data/pairs.jsonl", dir);
    sevo_dataset ds = {0};
    sevo_error err;
    if (dataset_load_jsonl(&ds, data, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    FILE *fp = fopen(out, "wb");
    int rc = fp ? 0 : -1;
    for (int i = 0; i < ds.n && !rc; i++) {
        const sevo_sample *s = &ds.samples[i];
        if (s->image && s->perception && s->wrong_perception)
            rc = preference_write(fp, s->image, s->question, s->answer, s->perception, s->wrong_perception, 1, &err);
    }
    if (fp && fclose(fp) != 0) rc = -1;
    dataset_free(&ds);
    return rc;
}

static int setup(void **state) {
    fixture *f = test_fixture_new(fixture, "sevo-kill");
    if (!f) return -1;
    if (test_world_data(f->dir, 8, 2) || write_pairs(f->dir)) {
        test_fixture_free(f, f->dir);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    test_fixture_free(f, f->dir);
    return 0;
}

static double now_secs(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A command line: the binary, a subcommand's fixed flags, the output directory, and
 * optionally --resume. */
typedef struct command {
    char *argv[MAX_ARGS];
    int argc;
} command;

static void command_make(command *c, const char *const *args, const char *out, int resume) {
    const char *bin = getenv("SEVO_BIN");
    if (!bin) skip();
    c->argc = 0;
    c->argv[c->argc++] = (char *)bin;
    for (int i = 0; args[i]; i++) c->argv[c->argc++] = (char *)args[i];
    c->argv[c->argc++] = "--output_dir";
    c->argv[c->argc++] = (char *)out;
    if (resume) c->argv[c->argc++] = "--resume";
    c->argv[c->argc] = NULL;
    assert_true(c->argc < MAX_ARGS);
}

/* Whether dir holds an entry being written: a checkpoint-N.tmp directory or an atomic
 * write's <name>.tmp.<pid>. Copies the first one's name into name (n bytes). */
static int find_temp(const char *dir, char *name, size_t n) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp")) {
            snprintf(name, n, "%s", e->d_name);
            found = 1;
        }
    closedir(d);
    return found;
}

/* When to kill a run, by its progress (so that the points do not move with the load
 * on the machine): once metrics.jsonl logs after_step steps (0: at once), `delay`
 * seconds later; with at_write, at the first moment after that when a temporary entry
 * exists in the output directory, plus `write_delay` seconds into the write.
 * after_step < 0: never. */
typedef struct kill_plan {
    int after_step, at_write;
    double delay, write_delay;
} kill_plan;

static const kill_plan NEVER = {.after_step = -1};

/* Runs c with stdout and stderr appended to log. Returns 1 if it was killed, 0 if it
 * exited with status 0 first (anything else fails the test); *secs is its wall time.
 * When killed, the temporary entry being written then goes into writing (else ""). */
static int run(const command *c, const char *out, const char *log, kill_plan k, double *secs, char *writing,
               size_t n) {
    char metrics[300];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", out);
    double t0 = now_secs();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(126);
        execv(c->argv[0], c->argv);
        _exit(127);
    }
    if (writing) writing[0] = '\0';
    double reached = -1, fire = -1; /* when after_step was reached; when the kill is due */
    for (;;) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        assert_true(w >= 0);
        double t = now_secs();
        if (w == pid) {
            *secs = t - t0;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("%s %s failed (see %s)", c->argv[0], c->argv[1], log);
            return 0;
        }
        char name[256];
        if (reached < 0 && k.after_step >= 0 && (k.after_step == 0 || test_count_lines(metrics) >= k.after_step))
            reached = t;
        if (fire < 0 && reached >= 0 && t >= reached + k.delay && (!k.at_write || find_temp(out, name, sizeof name)))
            fire = t + (k.at_write ? k.write_delay : 0);
        if (fire >= 0 && t >= fire) {
            if (writing) find_temp(out, writing, n);
            kill(pid, SIGKILL);
            assert_int_equal(waitpid(pid, &st, 0), pid);
            *secs = now_secs() - t0;
            if (WIFSIGNALED(st)) return 1;
            /* it exited on its own just before the signal */
            if (WEXITSTATUS(st) != 0) fail_msg("%s %s failed (see %s)", c->argv[0], c->argv[1], log);
            return 0;
        }
        struct timespec d = {0, 200000};
        nanosleep(&d, NULL);
    }
}

/* The step of the newest complete checkpoint in out (0 if none); its name into buf. */
static int newest_checkpoint(const char *out, char *buf, size_t n) {
    char path[4096];
    int step;
    if (trainer_find_checkpoint(out, INT_MAX, path, sizeof path, &step) == 0) {
        snprintf(buf, n, "checkpoint-%d", step);
        return step;
    }
    snprintf(buf, n, "none");
    return 0;
}

/* The step the last "resuming from" line of log names, or -1 (started from scratch). */
static int resumed_step(const char *log) {
    char *txt = NULL;
    sevo_error err;
    if (sevo_read_file(log, &txt, NULL, &err)) fail_msg("%s", err.msg);
    int step = -1;
    for (const char *p = txt; (p = strstr(p, "resuming from ")) != NULL; p++) {
        const char *s = strstr(p, "(step ");
        if (s) step = atoi(s + 6);
    }
    free(txt);
    return step;
}

/* The sorted names in dir, one per line, into a malloc'ed string. */
static char *listing(const char *dir) {
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    assert_true(n >= 0);
    size_t cap = 1;
    for (int i = 0; i < n; i++) cap += strlen(names[i]->d_name) + 1;
    char *s = malloc(cap);
    assert_non_null(s);
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        strcat(strcat(s, names[i]->d_name), "\n");
        free(names[i]);
    }
    free(names);
    return s;
}

/* metrics.jsonl of dir with every "tokens_per_sec" value (wall-clock) cut out. */
static char *metrics_without_speed(const char *dir) {
    char path[512], *txt = NULL;
    sevo_error err;
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    if (sevo_read_file(path, &txt, NULL, &err)) fail_msg("%s", err.msg);
    char *p;
    while ((p = strstr(txt, ",\"tokens_per_sec\":")) != NULL) {
        char *end = strchr(p, '}');
        assert_non_null(end);
        memmove(p, end, strlen(end) + 1);
    }
    return txt;
}

/* Fails unless out holds what the uninterrupted run wrote into ref, byte for byte. */
static void expect_same_run(const char *ref, const char *out) {
    static const char *const files[] = {"model.safetensors", "optimizer.safetensors", "trainer_state.json",
                                        "config.json", "tokenizer.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) assert_same_file_bytes(ref, out, files[i]);
    char *a = listing(ref), *b = listing(out);
    if (strcmp(a, b) != 0) fail_msg("%s holds\n%sbut %s holds\n%s", ref, a, out, b);
    /* the kept checkpoints too */
    for (char *line = a; *line;) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        if (!strncmp(line, "checkpoint-", 11)) {
            char ca[512], cb[512];
            snprintf(ca, sizeof ca, "%s/%s", ref, line);
            snprintf(cb, sizeof cb, "%s/%s", out, line);
            assert_same_file_bytes(ca, cb, "model.safetensors");
            assert_same_file_bytes(ca, cb, "optimizer.safetensors");
            assert_same_file_bytes(ca, cb, "trainer_state.json");
        }
        line = nl + 1;
    }
    free(a);
    free(b);
    char *ma = metrics_without_speed(ref), *mb = metrics_without_speed(out);
    if (strcmp(ma, mb) != 0) fail_msg("metrics.jsonl differs:\n%s\n%s", ma, mb);
    free(ma);
    free(mb);
}

/* The kill plan of trial i (of a run of `total` steps, `step_secs` each). */
static kill_plan trial_plan(sevo_rng *rng, int i, int total, double step_secs) {
    if (i < N_STRATIFIED) {
        /* a point drawn from the i-th slice of the run; slice 0 starts at the launch */
        double p = (i + sevo_rng_uniform(rng)) / N_STRATIFIED * total;
        return (kill_plan){.after_step = (int)p, .delay = (p - (int)p) * step_secs};
    }
    /* up to 30 ms into the first write after a random step */
    return (kill_plan){.after_step = (int)sevo_rng_below(rng, (uint32_t)total), .at_write = 1,
                       .write_delay = 0.03 * sevo_rng_uniform(rng)};
}

/* Runs `args` uninterrupted into <dir>/<name>-ref, then N_TRIALS times into
 * <dir>/<name>-<i>: killed at a random point, resumed (and in odd trials killed once
 * more) until it completes, and compared with the reference. */
static void kill_and_resume(const fixture *f, const char *name, const char *const *args, uint64_t seed) {
    char ref[256], log[512], path[512];
    command c;
    snprintf(ref, sizeof ref, "%s/%s-ref", f->dir, name);
    snprintf(log, sizeof log, "%s.log", ref);
    double T, t_start = now_secs();
    command_make(&c, args, ref, 0);
    assert_int_equal(run(&c, ref, log, NEVER, &T, NULL, 0), 0);
    trainer_state ts;
    sevo_error err;
    snprintf(path, sizeof path, "%s/trainer_state.json", ref);
    if (trainer_state_load(&ts, path, &err)) fail_msg("%s", err.msg);
    int total = ts.total_steps;
    double step_secs = T / total;
    print_message("%s: uninterrupted run of %d steps, %.2f s\n", name, total, T);
    sevo_rng rng;
    sevo_rng_seed(&rng, seed, 0x6b11);
    for (int i = 0; i < N_TRIALS; i++) {
        char out[256], ck[64], writing[256];
        snprintf(out, sizeof out, "%s/%s-%d", f->dir, name, i);
        snprintf(log, sizeof log, "%s.log", out);
        kill_plan k = trial_plan(&rng, i, total, step_secs);
        double secs;
        int killed = 0;
        /* a run that beat its kill (the machine sped up) is redone with an earlier one */
        for (int attempt = 0; attempt < 4 && !killed; attempt++) {
            sevo_remove_tree(out);
            command_make(&c, args, out, 0);
            killed = run(&c, out, log, k, &secs, writing, sizeof writing);
            k.after_step /= 2;
            k.delay /= 2;
        }
        assert_true(killed);
        int ck_step = newest_checkpoint(out, ck, sizeof ck);
        print_message("%s trial %d: killed at %.3f s (%s%s%s); newest complete checkpoint: %s\n", name, i, secs,
                      k.at_write ? "while writing" : "random point", writing[0] ? ", in progress: " : "", writing,
                      ck);
        int done = 0;
        if (i % 2) {
            /* the resumed run killed too, at a random moment of what is left (by time:
             * until it trims metrics.jsonl, the file still counts the killed run's steps) */
            k = (kill_plan){.after_step = 0, .delay = sevo_rng_uniform(&rng) * step_secs * (total - ck_step)};
            command_make(&c, args, out, 1);
            if (run(&c, out, log, k, &secs, writing, sizeof writing)) {
                newest_checkpoint(out, ck, sizeof ck);
                print_message("%s trial %d: resumed run killed at %.3f s (%s%s); newest complete checkpoint: %s\n",
                              name, i, secs, writing[0] ? "in progress: " : "random point", writing, ck);
            } else {
                print_message("%s trial %d: resumed run finished before its kill, in %.2f s\n", name, i, secs);
                done = 1;
            }
        }
        if (!done) {
            /* a log of its own: the step it resumed from is the one its log names */
            snprintf(log, sizeof log, "%s.final.log", out);
            command_make(&c, args, out, 1);
            assert_int_equal(run(&c, out, log, NEVER, &secs, NULL, 0), 0);
            int from = resumed_step(log);
            if (from >= 0)
                print_message("%s trial %d: resumed from step %d, completed in %.2f s\n", name, i, from, secs);
            else
                print_message("%s trial %d: no checkpoint to resume from, trained from the start in %.2f s\n", name,
                              i, secs);
        }
        expect_same_run(ref, out);
    }
    print_message("%s: %d trials, bitwise identical, %.1f s in all\n", name, N_TRIALS, now_secs() - t_start);
}

/* SFT of the tiny model on 8 records: 24 examples, batches of 4, 2 epochs = 12 steps,
 * a checkpoint every 2. */
static const char *const *sft_args(const fixture *f, char *data, size_t n) {
    static const char *args[] = {"sft", "--data_dir", NULL, "--batch_size", "4", "--gradient_accumulation_steps",
                                 "1", "--num_epochs", "2", "--learning_rate", "0.001", "--warmup_ratio", "0.1",
                                 "--save_steps", "2", "--logging_steps", "1", "--seed", "5", "--num_threads", "2",
                                 NULL};
    snprintf(data, n, "%s/data", f->dir);
    args[2] = data;
    return args;
}

static void test_sft_killed_and_resumed_is_bitwise_identical(void **state) {
    fixture *f = *state;
    char data[256];
    kill_and_resume(f, "sft", sft_args(f, data, sizeof data), 11);
}

static void test_sr_dpo_killed_and_resumed_is_bitwise_identical(void **state) {
    fixture *f = *state;
    char data[256], model[256], pairs[256], ref[256];
    /* the policy to align: the SFT reference run (made here if that test did not run) */
    snprintf(ref, sizeof ref, "%s/sft-ref", f->dir);
    if (!sevo_dir_exists(ref)) {
        command c;
        double secs;
        char log[300];
        snprintf(log, sizeof log, "%s.log", ref);
        command_make(&c, sft_args(f, data, sizeof data), ref, 0);
        assert_int_equal(run(&c, ref, log, NEVER, &secs, NULL, 0), 0);
    }
    snprintf(model, sizeof model, "%s", ref);
    snprintf(pairs, sizeof pairs, "%s/data/pairs.jsonl", f->dir);
    /* 8 pairs, 2 per step, 2 epochs = 8 steps, a checkpoint every 2 */
    const char *args[] = {"train-sr-dpo", "--model_path", model, "--preference_data", pairs, "--batch_size", "2",
                          "--gradient_accumulation_steps", "1", "--num_epochs", "2", "--learning_rate", "0.0005",
                          "--beta", "0.1", "--save_steps", "2", "--logging_steps", "1", "--seed", "5",
                          "--num_threads", "2", NULL};
    kill_and_resume(f, "sr_dpo", args, 12);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sft_killed_and_resumed_is_bitwise_identical),
        cmocka_unit_test(test_sr_dpo_killed_and_resumed_is_bitwise_identical),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
