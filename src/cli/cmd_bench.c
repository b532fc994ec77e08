/* cmd_bench.c: `sevo bench` measures the engine on this machine: training tokens/s
 * (forward + backward + clipping + AdamW), prefill and decode tokens/s with the KV
 * cache, and peak resident memory, for the tiny default model, a benchmark size (a
 * decoder of width 256, 512 or 768 with a vision tower to match), or any checkpoint.
 * `--sgemm_only` measures the sgemm GFLOP/s OpenBLAS reaches here, against which the
 * model's FLOP/s is read; with `--sgemm_shape MxNxK` on one product of that shape
 * (bench/gemm-shapes.sh compares the model's own shapes with PyTorch's matmul).
 * `--memory_only` measures how fast this machine's cores read memory: decoding one
 * sequence reads every decoder weight once per token, so that rate divided by the bytes
 * a decode step reads (`decode_bytes_per_token` in the model's JSON line) is the most
 * tokens/s any program can decode here in float32.
 *
 * bench/compare.sh runs this and tools/reference/bench_torch.py (the same model in
 * PyTorch, loaded from the files `--write_model` writes) on the same batch, alternately,
 * and prints the ratios; `--json` prints one line for it to read. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/fsutil.h"
#include "core/rng.h"
#include "core/threads.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "model/vlm.h"
#include "train/optim.h"

/* Best GFLOP/s of reps products C[M,N] = A[M,K] B[K,N], after one warmup. */
static double sgemm_gflops(int M, int N, int K, int reps) {
    float *a = malloc((size_t)M * K * sizeof(float)), *b = malloc((size_t)K * N * sizeof(float)),
          *c = malloc((size_t)M * N * sizeof(float));
    double best = 0;
    if (a && b && c) {
        for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)K * N; i++) b[i] = (float)(i % 5) * 0.1f;
        for (int r = -1; r < reps; r++) {
            double t0 = sevo_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
            double g = 2.0 * M * (double)N * K / (sevo_now() - t0) / 1e9;
            if (r >= 0 && g > best) best = g;
        }
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* Best GB/s of reps passes summing a buffer of mib MiB (larger than any cache, as the
 * weights of the larger models are) on all threads, after one warmup pass. Each thread
 * keeps 64 running sums (four 16-float vectors), so that the adds never wait on each
 * other and only memory limits the loop. */
#define READ_LANES 64
static double read_gbps(size_t mib, int reps) {
    const size_t n = mib << 18, nblk = n / READ_LANES; /* floats, blocks of READ_LANES */
    float *a = malloc(n * sizeof(float));
    double best = 0;
    if (!a) return 0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 7);
    volatile float sink = 0;
    for (int r = -1; r < reps; r++) {
        double t0 = sevo_now();
        float total = 0;
#pragma omp parallel reduction(+ : total)
        {
            float acc[READ_LANES] = {0};
#pragma omp for schedule(static)
            for (size_t blk = 0; blk < nblk; blk++) {
                const float *p = a + blk * READ_LANES;
#pragma omp simd
                for (int j = 0; j < READ_LANES; j++) acc[j] += p[j];
            }
            for (int j = 0; j < READ_LANES; j++) total += acc[j];
        }
        double g = (double)n * sizeof(float) / (sevo_now() - t0) / 1e9;
        sink = total; /* the sums are used, so the loop stays */
        if (r >= 0 && g > best) best = g;
    }
    (void)sink;
    free(a);
    return best;
}

/* The benchmark sizes: the tiny default, and Llama-style decoders of width W with
 * W/64 heads (half as many KV heads), a SwiGLU MLP of 8W/3 rounded up to 64, RMSNorm
 * and an untied head over 8192 tokens, fed by a SigLIP-style vision tower of the same
 * width and half the layers on 64x64 images in 8x8 patches (64 image tokens). */
static int bench_config(vlm_config *c, const char *size) {
    int W = 0, L = 0;
    if (!strcmp(size, "tiny")) {
        vlm_config_tiny(c, 96);
    } else if (!strcmp(size, "256")) {
        W = 256, L = 4;
    } else if (!strcmp(size, "512")) {
        W = 512, L = 8;
    } else if (!strcmp(size, "768")) {
        W = 768, L = 12;
    } else {
        return -1;
    }
    if (W) {
        vlm_config_tiny(c, 8192);
        c->image_size = 64;
        c->patch_size = 8;
        c->max_position_embeddings = 2048;
        c->tie_word_embeddings = 0;
        c->vision.hidden_size = W;
        c->vision.num_layers = L / 2;
        c->vision.num_heads = c->vision.num_kv_heads = W / 64;
        c->vision.intermediate_size = 4 * W;
        c->text.hidden_size = W;
        c->text.num_layers = L;
        c->text.num_heads = W / 64;
        c->text.num_kv_heads = W / 128;
        c->text.intermediate_size = (8 * W / 3 + 63) / 64 * 64;
    }
    c->pad_token_id = 0;
    c->bos_token_id = 2;
    c->eos_token_id = 3;
    c->image_token_id = 4;
    return 0;
}

static int bench_fail(const char *what) {
    fprintf(stderr, "sevo bench: %s\n", what);
    return 1;
}

static int load_model(const char *dir, vlm **m, sevo_error *err) {
    char path[4096];
    vlm_config c;
    sevo_path_join(path, sizeof path, dir, "config.json");
    if (vlm_config_load(&c, path, err) || vlm_create(m, &c, err)) return -1;
    sevo_path_join(path, sizeof path, dir, "model.safetensors");
    return checkpoint_load_weights(path, *m, err);
}

/* The vision tower and the projector run once per image; everything else per token. */
static int is_image_side(const vlm_tensor *t) {
    return !strncmp(t->name, "vision_tower", 12) || !strncmp(t->name, "multi_modal", 11);
}

/* An untied input embedding: a lookup of one row per token, not a product. */
static int is_untied_input_embedding(const vlm_config *c, const vlm_tensor *t) {
    return !c->tie_word_embeddings && !strcmp(t->name, "language_model.model.embed_tokens.weight");
}

/* Model FLOPs per training token (forward + backward = 6 per parameter use, plus the
 * attention scores and values): decoder parameters act on every token; vision tower and
 * projector parameters only on the P patches of each row's image; an untied input
 * embedding is a lookup, not a product, and counts nothing. */
static double train_flops_per_token(const vlm *m, int T) {
    const vlm_config *c = vlm_get_config(m);
    int P = vlm_config_num_patches(c);
    double params = (double)vlm_num_params(m), vis = 0;
    for (int i = 0; i < vlm_num_tensors(m); i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        if (is_image_side(t)) vis += (double)t->numel;
        if (is_untied_input_embedding(c, t)) params -= (double)t->numel;
    }
    double attn = 12.0 * c->text.num_layers * c->text.hidden_size * (double)T / 2 +
                  12.0 * c->vision.num_layers * c->vision.hidden_size * (double)P * P / T;
    return 6.0 * (params - vis) + 6.0 * vis * P / T + attn;
}

/* Bytes a decode step reads with `len` tokens in the cache: every decoder weight once
 * (the blocks, the final norm, the head; the tied embedding table is the head), one row
 * of an untied input embedding, and the cached keys and values of every layer. The
 * vision tower and projector run once per image, not per token. */
static double decode_bytes_per_token(const vlm *m, double len) {
    const vlm_config *c = vlm_get_config(m);
    double floats = 0;
    for (int i = 0; i < vlm_num_tensors(m); i++) {
        const vlm_tensor *t = vlm_tensor_at(m, i);
        if (is_image_side(t)) continue;
        if (is_untied_input_embedding(c, t)) floats += c->text.hidden_size;
        else floats += (double)t->numel;
    }
    const double kv_width = (double)c->text.num_kv_heads * (c->text.hidden_size / c->text.num_heads);
    floats += 2.0 * c->text.num_layers * len * kv_width;
    return floats * sizeof(float);
}

typedef struct bench_result {
    double train_tps, train_gflops, prefill_tps, decode_tps, decode_bytes;
} bench_result;

/* The batch both sevo and bench_torch.py build: row b is BOS, P image tokens of image
 * b, then tokens drawn from [10, vocab) with seed 7; the text positions predict the
 * next token. */
static void make_batch(const vlm_config *c, int B, int T, int *ids, int *tg, int *image_of, float *images) {
    int P = vlm_config_num_patches(c);
    size_t img_floats = (size_t)3 * c->image_size * c->image_size;
    sevo_rng rng;
    sevo_rng_seed(&rng, 7, 1);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            int id = t == 0 ? c->bos_token_id : t <= P ? c->image_token_id
                                                       : 10 + (int)sevo_rng_below(&rng, (uint64_t)c->vocab_size - 10);
            ids[b * T + t] = id;
            image_of[b * T + t] = t >= 1 && t <= P ? b : -1;
        }
        for (int t = 0; t < T; t++) tg[b * T + t] = t + 1 < T && t >= P ? ids[b * T + t + 1] : -1;
    }
    for (size_t i = 0; i < (size_t)B * img_floats; i++) images[i] = sevo_rng_normal(&rng) * 0.5f;
}

/* Writes DIR/config.json and DIR/model.safetensors of the size (seeded weights), and
 * DIR/batch.safetensors: the B x T batch of make_batch (ids and targets as exact float32
 * integers, -1 for no target; images), so that bench_torch.py runs on the same input. */
static int write_model(const vlm_config *c, int B, int T, const char *dir) {
    sevo_error err;
    vlm *m = NULL;
    char path[4096];
    size_t N = (size_t)B * T, img_floats = (size_t)3 * c->image_size * c->image_size;
    int *ids = malloc(N * sizeof(int)), *tg = malloc(N * sizeof(int)), *image_of = malloc(N * sizeof(int));
    float *images = malloc((size_t)B * img_floats * sizeof(float)), *fids = malloc(N * sizeof(float)),
          *ftg = malloc(N * sizeof(float));
    int rc = !ids || !tg || !image_of || !images || !fids || !ftg ? sevo_fail(&err, "out of memory") : 0;
    if (!rc) rc = sevo_mkdirs(dir, &err) || vlm_create(&m, c, &err);
    if (!rc) {
        vlm_init_weights(m, 1);
        sevo_path_join(path, sizeof path, dir, "model.safetensors");
        rc = checkpoint_save_weights(path, m, &err);
    }
    if (!rc) {
        make_batch(c, B, T, ids, tg, image_of, images);
        for (size_t i = 0; i < N; i++) {
            fids[i] = (float)ids[i];
            ftg[i] = (float)tg[i];
        }
        safetensors_entry e[3] = {
            {.name = "ids", .data = fids, .ndim = 2, .shape = {B, T}},
            {.name = "targets", .data = ftg, .ndim = 2, .shape = {B, T}},
            {.name = "images", .data = images, .ndim = 4, .shape = {B, 3, c->image_size, c->image_size}},
        };
        sevo_path_join(path, sizeof path, dir, "batch.safetensors");
        rc = safetensors_write_f32(path, e, 3, NULL, 0, &err);
    }
    if (!rc) {
        sevo_path_join(path, sizeof path, dir, "config.json");
        rc = vlm_config_save(c, path, &err);
    }
    double params = m ? (double)vlm_num_params(m) : 0;
    vlm_free(m);
    free(ids);
    free(tg);
    free(image_of);
    free(images);
    free(fids);
    free(ftg);
    if (rc) return bench_fail(err.msg);
    printf("wrote %s: config.json, model.safetensors (%.2fM parameters), batch.safetensors (%dx%d)\n", dir,
           params / 1e6, B, T);
    return 0;
}

static int run_bench(vlm *m, int B, int T, int steps, int prefill_len, int decode_len, int reps,
                     bench_result *r, sevo_error *err) {
    const vlm_config *c = vlm_get_config(m);
    size_t N = (size_t)B * T, img_floats = (size_t)3 * c->image_size * c->image_size;
    int *ids = malloc(N * sizeof(int)), *tg = malloc(N * sizeof(int)), *image_of = malloc(N * sizeof(int));
    float *images = malloc((size_t)B * img_floats * sizeof(float));
    float *logp = malloc(N * sizeof(float)), *dlogp = malloc(N * sizeof(float));
    adamw opt = {0};
    vlm_session *sess = NULL;
    int rc = -1;
    if (!ids || !tg || !image_of || !images || !logp || !dlogp) {
        sevo_fail(err, "out of memory");
        goto done;
    }
    if (adamw_init(&opt, vlm_num_params(m), err)) goto done;
    make_batch(c, B, T, ids, tg, image_of, images);
    size_t n_targets = 0;
    for (size_t i = 0; i < N; i++) n_targets += tg[i] >= 0;
    /* the mean negative log-likelihood over the targets, as an SFT step */
    for (size_t i = 0; i < N; i++) dlogp[i] = tg[i] >= 0 ? -1.0f / (float)n_targets : 0.0f;
    vlm_batch batch = {.B = B, .T = T, .ids = ids, .targets = tg, .images = images, .n_images = B, .image_of = image_of};
    double t_train = 0;
    for (int s = -2; s < steps; s++) { /* two warmup steps */
        double t0 = sevo_now();
        vlm_zero_grads(m);
        if (vlm_forward(m, &batch, logp, err)) goto done;
        vlm_backward(m, dlogp);
        adamw_step(&opt, m, 1e-4f, 0.0f, grad_clip_scale(grad_global_norm(m), 1.0f));
        if (s >= 0) t_train += sevo_now() - t0;
    }
    adamw_release(&opt);
    r->train_tps = (double)N * steps / t_train;
    r->train_gflops = r->train_tps * train_flops_per_token(m, T) / 1e9;

    /* generation: one sequence, the image and prefill_len tokens (the first row's
     * BOS, image tokens and text), then decode_len tokens one at a time */
    if (vlm_session_create(&sess, m, prefill_len + decode_len + 1, err)) goto done;
    double t_prefill = 0, t_decode = 0;
    for (int rep = -1; rep < reps; rep++) { /* one warmup */
        vlm_session_reset(sess);
        double t0 = sevo_now();
        vlm_session_set_image(sess, images);
        if (vlm_session_feed(sess, ids, prefill_len, err)) goto done;
        double t1 = sevo_now();
        for (int k = 0; k < decode_len; k++) {
            int id = 10 + k % (c->vocab_size - 10);
            if (vlm_session_feed(sess, &id, 1, err)) goto done;
        }
        if (rep >= 0) {
            t_prefill += t1 - t0;
            t_decode += sevo_now() - t1;
        }
    }
    r->prefill_tps = (double)prefill_len * reps / t_prefill;
    r->decode_tps = (double)decode_len * reps / t_decode;
    /* the decoded tokens see caches of prefill_len + 1 ... prefill_len + decode_len */
    r->decode_bytes = decode_bytes_per_token(m, prefill_len + (decode_len + 1) / 2.0);
    rc = 0;
done:
    vlm_session_free(sess);
    adamw_release(&opt);
    free(ids);
    free(tg);
    free(image_of);
    free(images);
    free(logp);
    free(dlogp);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    sevo_config cfg;
    config_defaults(&cfg);
    const char *size = "tiny", *model_path = NULL, *write_dir = NULL, *shape = "1024x1024x1024";
    int B = 16, T = 96, steps = 10, prefill_len = 0, decode_len = 64, reps = 20, json = 0, sgemm_only = 0;
    int memory_only = 0, memory_mib = 1024;
    const cli_flag flags[] = {
        {"size", FLAG_STRING, &size, NULL, "tiny (default), 256, 512 or 768: the decoder width"},
        {"model_path", FLAG_STRING, &model_path, NULL, "measure this model (config.json, model.safetensors)"},
        {"write_model", FLAG_STRING, &write_dir, NULL, "write --size's config.json and seeded weights here, then stop"},
        {"batch_size", FLAG_INT, &B, NULL, "training rows per step (default 16)"},
        {"seq_len", FLAG_INT, &T, NULL, "training row length, image tokens included (default 96)"},
        {"steps", FLAG_INT, &steps, NULL, "timed training steps, after 2 warmup steps (default 10)"},
        {"prefill_len", FLAG_INT, &prefill_len, NULL, "prompt tokens, image tokens included (default: patches + 40)"},
        {"decode_len", FLAG_INT, &decode_len, NULL, "tokens decoded one at a time (default 64)"},
        {"reps", FLAG_INT, &reps, NULL, "timed prefill+decode repetitions, after 1 warmup (default 20)"},
        {"json", FLAG_BOOL, &json, NULL, "print one JSON line instead of the table"},
        {"sgemm_only", FLAG_BOOL, &sgemm_only, NULL, "only measure OpenBLAS's sgemm (best of 40 products)"},
        {"sgemm_shape", FLAG_STRING, &shape, NULL, "MxNxK: --sgemm_only's product (default 1024x1024x1024)"},
        {"memory_only", FLAG_BOOL, &memory_only, NULL, "only measure the memory read rate (best of 10 passes)"},
        {"memory_mib", FLAG_INT, &memory_mib, NULL, "--memory_only's buffer in MiB (default 1024: larger than any cache)"},
        {"num_threads", FLAG_CONFIG, NULL, "num_threads", "threads (0 = all cores)"},
    };
    int rc = cli_parse("bench", "Measure training, prefill and decode speed, memory, and the sgemm peak.",
                       argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    int threads = sevo_threads_init(cfg.num_threads);
    if (memory_only) {
        if (memory_mib < 1 || memory_mib > 65536) {
            fprintf(stderr, "sevo bench: --memory_mib: expected 1 to 65536, got %d\n", memory_mib);
            return 2;
        }
        double gbps = read_gbps((size_t)memory_mib, 10);
        if (gbps <= 0) return bench_fail("out of memory (for --memory_mib's buffer)");
        /* the last-level cache: weights that fit in it are not read from memory */
        long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
        if (json) printf("{\"threads\": %d, \"read_gbps\": %.2f, \"l3_bytes\": %ld}\n", threads, gbps, l3 > 0 ? l3 : 0);
        else printf("memory read, %d threads: %.1f GB/s (L3 cache %.1f MiB)\n", threads, gbps, l3 > 0 ? l3 / 1048576.0 : 0.0);
        return 0;
    }
    if (sgemm_only) {
        int M, N, K, used = 0;
        if (sscanf(shape, "%dx%dx%d%n", &M, &N, &K, &used) != 3 || shape[used] || M < 1 || N < 1 || K < 1 ||
            (double)M * K > 1e8 || (double)K * N > 1e8 || (double)M * N > 1e8) {
            fprintf(stderr, "sevo bench: --sgemm_shape: expected MxNxK (positive, each matrix under 1e8 "
                            "floats), got '%s'\n", shape);
            return 2;
        }
        double gf = sgemm_gflops(M, N, K, 40);
        if (json)
            printf("{\"threads\": %d, \"shape\": \"%dx%dx%d\", \"sgemm_gflops\": %.2f}\n", threads, M, N, K, gf);
        else printf("sgemm %dx%dx%d (OpenBLAS), %d threads: %.1f GFLOP/s\n", M, N, K, threads, gf);
        return 0;
    }
    vlm_config c;
    if (bench_config(&c, size)) {
        fprintf(stderr, "sevo bench: --size: expected tiny, 256, 512 or 768, got '%s'\n", size);
        return 2;
    }
    if (write_dir) {
        if (B < 1 || T < vlm_config_num_patches(&c) + 8) {
            fprintf(stderr, "sevo bench: need --batch_size >= 1, --seq_len >= %d\n", vlm_config_num_patches(&c) + 8);
            return 2;
        }
        return write_model(&c, B, T, write_dir);
    }
    sevo_error err;
    vlm *m = NULL;
    if (model_path ? load_model(model_path, &m, &err) : vlm_create(&m, &c, &err)) {
        vlm_free(m);
        return bench_fail(err.msg);
    }
    if (!model_path) vlm_init_weights(m, 1);
    const vlm_config *mc = vlm_get_config(m);
    int P = vlm_config_num_patches(mc);
    if (!prefill_len) prefill_len = P + 41;
    if (B < 1 || T < P + 8 || steps < 1 || prefill_len < P + 1 || decode_len < 1 || reps < 1 ||
        prefill_len > T || prefill_len + decode_len + 1 > mc->max_position_embeddings) {
        fprintf(stderr, "sevo bench: need --batch_size >= 1, --seq_len >= %d, --steps >= 1, --reps >= 1, "
                        "--prefill_len in [%d, seq_len], --decode_len >= 1, prefill_len + decode_len < %d\n",
                P + 8, P + 1, mc->max_position_embeddings);
        vlm_free(m);
        return 2;
    }
    bench_result r;
    if (run_bench(m, B, T, steps, prefill_len, decode_len, reps, &r, &err)) {
        vlm_free(m);
        return bench_fail(err.msg);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double params = (double)vlm_num_params(m);
    const char *name = model_path ? model_path : size;
    if (json) {
        printf("{\"framework\": \"sevo\", \"model\": \"%s\", \"params\": %.0f, \"threads\": %d, "
               "\"batch_size\": %d, \"seq_len\": %d, \"prefill_len\": %d, \"decode_len\": %d, "
               "\"train_tokens_per_s\": %.2f, \"train_gflops\": %.3f, \"prefill_tokens_per_s\": %.2f, "
               "\"decode_tokens_per_s\": %.2f, \"decode_bytes_per_token\": %.0f, \"peak_rss_mib\": %.1f}\n",
               name, params, threads, B, T, prefill_len, decode_len, r.train_tps, r.train_gflops,
               r.prefill_tps, r.decode_tps, r.decode_bytes, ru.ru_maxrss / 1024.0);
    } else {
        printf("sevo bench: %s (%.2fM parameters), %d threads\n", name, params / 1e6, threads);
        printf("  train step (fwd+bwd+AdamW), batch %dx%d : %10.0f tokens/s  (%.1f GFLOP/s)\n", B, T,
               r.train_tps, r.train_gflops);
        printf("  prefill (%d tokens, image included)       : %10.0f tokens/s\n", prefill_len, r.prefill_tps);
        printf("  decode (KV cache, %d tokens)              : %10.0f tokens/s  (%.1f MB read per token)\n",
               decode_len, r.decode_tps, r.decode_bytes / 1e6);
        printf("  peak resident memory                      : %10.1f MiB\n", ru.ru_maxrss / 1024.0);
    }
    vlm_free(m);
    return 0;
}
