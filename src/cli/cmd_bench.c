/* cmd_bench.c: `sevo bench` measures the engine on this machine: training tokens/s
 * (forward + backward + AdamW) of the tiny default model, prefill and decode tokens/s
 * with the KV cache, peak resident memory, and the sgemm GFLOP/s OpenBLAS reaches here,
 * so the model's FLOP/s can be read as a fraction of what the BLAS can do. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/rng.h"
#include "core/threads.h"
#include "model/vlm.h"
#include "train/optim.h"

static double sgemm_gflops(int n, int reps) {
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float)),
          *c = malloc((size_t)n * n * sizeof(float));
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return 0;
    }
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = sevo_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * (double)n * n / (sevo_now() - t0) / 1e9;
        best = g > best ? g : best;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

int cmd_bench(int argc, char **argv) {
    sevo_config cfg;
    config_defaults(&cfg);
    int B = 16, T = 96, steps = 10, vocab = 96, decode_n = 64;
    const cli_flag flags[] = {
        {"batch_size", FLAG_INT, &B, NULL, "training sequences per step (default 16)"},
        {"seq_len", FLAG_INT, &T, NULL, "training sequence length (default 96)"},
        {"steps", FLAG_INT, &steps, NULL, "timed training steps (default 10)"},
        {"num_threads", FLAG_CONFIG, NULL, "num_threads", "threads (0 = all cores)"},
    };
    int rc = cli_parse("bench", "Measure training, prefill and decode speed, memory, and the sgemm peak.",
                       argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    int threads = sevo_threads_init(cfg.num_threads);
    sevo_error err;
    vlm_config c;
    vlm_config_tiny(&c, vocab);
    c.bos_token_id = 2;
    c.eos_token_id = 3;
    c.pad_token_id = 0;
    c.image_token_id = 4;
    int P = vlm_config_num_patches(&c);
    if (B < 1 || T < P + 8 || steps < 1) {
        fprintf(stderr, "sevo bench: need --batch_size >= 1, --seq_len >= %d, --steps >= 1\n", P + 8);
        return 2;
    }
    vlm *m = NULL;
    if (vlm_create(&m, &c, &err)) {
        fprintf(stderr, "sevo bench: %s\n", err.msg);
        return 1;
    }
    vlm_init_weights(m, 1);
    size_t N = (size_t)B * T, img_floats = (size_t)3 * c.image_size * c.image_size;
    int *ids = malloc(N * sizeof(int)), *tg = malloc(N * sizeof(int)), *image_of = malloc(N * sizeof(int));
    float *images = malloc((size_t)B * img_floats * sizeof(float));
    float *logp = malloc(N * sizeof(float)), *dlogp = malloc(N * sizeof(float));
    adamw opt;
    if (!ids || !tg || !image_of || !images || !logp || !dlogp || adamw_init(&opt, vlm_num_params(m), &err)) {
        fprintf(stderr, "sevo bench: out of memory\n");
        return 1;
    }
    sevo_rng rng;
    sevo_rng_seed(&rng, 7, 1);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            int id = t == 0 ? c.bos_token_id : t <= P ? c.image_token_id : 10 + (int)sevo_rng_below(&rng, vocab - 10);
            ids[b * T + t] = id;
            image_of[b * T + t] = b;
        }
        for (int t = 0; t < T; t++) tg[b * T + t] = t + 1 < T && t >= P ? ids[b * T + t + 1] : -1;
    }
    for (size_t i = 0; i < (size_t)B * img_floats; i++) images[i] = sevo_rng_normal(&rng) * 0.5f;
    for (size_t i = 0; i < N; i++) dlogp[i] = tg[i] >= 0 ? -1.0f / (float)N : 0.0f;
    vlm_batch batch = {.B = B, .T = T, .ids = ids, .targets = tg, .images = images, .n_images = B, .image_of = image_of};
    double t_train = 0;
    for (int s = -2; s < steps; s++) { /* two warmup steps */
        double t0 = sevo_now();
        vlm_zero_grads(m);
        if (vlm_forward(m, &batch, logp, &err)) {
            fprintf(stderr, "sevo bench: %s\n", err.msg);
            return 1;
        }
        vlm_backward(m, dlogp);
        clip_grad_norm(m, 1.0f);
        adamw_step(&opt, m, 1e-4f, 0.0f);
        if (s >= 0) t_train += sevo_now() - t0;
    }
    double train_tps = (double)N * steps / t_train;
    /* Model FLOPs per token (fwd+bwd = 6 per parameter use, plus attention scores and
     * values): decoder parameters act on every token; vision tower and projector
     * parameters only on the P patches of each sequence's image. */
    double params = (double)vlm_num_params(m), vis_params = 0;
    for (int i = 0; i < vlm_num_tensors(m); i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        if (!strncmp(t->name, "vision_tower", 12) || !strncmp(t->name, "multi_modal", 11)) vis_params += (double)t->numel;
    }
    double attn = 12.0 * c.text.num_layers * c.text.hidden_size * (double)T / 2 +
                  12.0 * c.vision.num_layers * c.vision.hidden_size * (double)P * P / T;
    double flops_per_token = 6.0 * (params - vis_params) + 6.0 * vis_params * P / T + attn;
    double train_gflops = train_tps * flops_per_token / 1e9;

    vlm_session *sess = NULL;
    if (vlm_session_create(&sess, m, P + 64 + decode_n + 8, &err)) {
        fprintf(stderr, "sevo bench: %s\n", err.msg);
        return 1;
    }
    int prompt_len = P + 40, reps = 20;
    double t_prefill = 0, t_decode = 0;
    for (int r = -1; r < reps; r++) {
        vlm_session_reset(sess);
        double t0 = sevo_now();
        vlm_session_set_image(sess, images);
        if (vlm_session_feed(sess, ids, prompt_len, &err)) {
            fprintf(stderr, "sevo bench: %s\n", err.msg);
            return 1;
        }
        double t1 = sevo_now();
        for (int k = 0; k < decode_n; k++) {
            int id = ids[P + 1 + k % (T - P - 1)];
            if (vlm_session_feed(sess, &id, 1, &err)) {
                fprintf(stderr, "sevo bench: %s\n", err.msg);
                return 1;
            }
        }
        if (r >= 0) {
            t_prefill += t1 - t0;
            t_decode += sevo_now() - t1;
        }
    }
    double gf = sgemm_gflops(1024, 5);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("sevo bench: tiny model (%.2fM parameters), %d threads\n", params / 1e6, threads);
    printf("  train step (fwd+bwd+AdamW), batch %dx%d : %10.0f tokens/s  (%.1f GFLOP/s, %.1f%% of sgemm peak)\n",
           B, T, train_tps, train_gflops, gf > 0 ? 100.0 * train_gflops / gf : 0.0);
    printf("  prefill (%d tokens, image included)      : %10.0f tokens/s\n", prompt_len,
           (double)prompt_len * reps / t_prefill);
    printf("  decode (KV cache, %d tokens)              : %10.0f tokens/s\n", decode_n,
           (double)decode_n * reps / t_decode);
    printf("  peak resident memory                     : %10.1f MiB\n", ru.ru_maxrss / 1024.0);
    printf("  sgemm 1024^3 (OpenBLAS)                  : %10.1f GFLOP/s\n", gf);
    vlm_session_free(sess);
    adamw_release(&opt);
    free(ids);
    free(tg);
    free(image_of);
    free(images);
    free(logp);
    free(dlogp);
    vlm_free(m);
    return 0;
}
