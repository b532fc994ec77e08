/* generate.c: token sampling and the sub-policies as text-in, text-out functions. */
#include "model/generate.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "data/image.h"

void gen_options_default(gen_options *o) {
    o->temperature = 0.0f;
    o->top_p = 1.0f;
    o->max_new_tokens = 64;
    o->seed = 42;
}

typedef struct idx_prob {
    float p;
    int i;
} idx_prob;

static int cmp_desc(const void *a, const void *b) {
    const idx_prob *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->i - y->i;
}

int sample_token(const float *logits, int V, const gen_options *o, sevo_rng *rng, float *scratch) {
    if (o->temperature <= 0.0f) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    float mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    idx_prob *ip = (idx_prob *)scratch; /* 2*V floats hold V (float,int) pairs */
    double sum = 0;
    for (int i = 0; i < V; i++) {
        ip[i].p = expf((logits[i] - mx) / o->temperature);
        ip[i].i = i;
        sum += ip[i].p;
    }
    int n = V;
    if (o->top_p < 1.0f) {
        qsort(ip, (size_t)V, sizeof *ip, cmp_desc);
        double acc = 0;
        for (n = 0; n < V;) {
            acc += ip[n++].p / sum;
            if (acc >= o->top_p) break;
        }
        sum = 0;
        for (int i = 0; i < n; i++) sum += ip[i].p;
    }
    double u = sevo_rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += ip[i].p;
        if (u < acc) return ip[i].i;
    }
    return ip[n - 1].i;
}

const char *trace_exit_name(trace_exit e) {
    return e == EXIT_EARLY ? "early" : e == EXIT_MAX_STEPS ? "max_steps" : "model_end";
}

struct vlm_policy {
    vlm *m;
    const sevo_tokenizer *tok;
    prompt_ids ids;
    vlm_session *s;
    gen_options opt;
    sevo_rng rng;
    float *scratch;
    float *logits; /* the session's logits with the banned tokens masked */
    float *image;  /* [C,S,S] policy_image */
    tokseq seq;
    int *gen;
    int num_patches;
    struct lane_group *group; /* set while a pool runs it as one of a group's lanes */
    int lane;
    /* policy_seconds: time spent before busy_since, and when the current stretch began */
    double busy, busy_since;
};

/* ---- lanes: several samples per thread, their one-token steps batched ----
 *
 * Generating one token reads every decoder weight for one row of arithmetic. A pool
 * thread therefore runs a group of lanes, one sample each, and steps them together:
 * vlm_sessions_step reads the weights once for every lane's token (at the tiny size
 * 4 tokens cost about twice one). Each lane is a thread of its own running the ordinary
 * sequential code (perceive, reason, refine, ...), but only the lane holding its
 * group's baton runs; the others sleep. A lane that needs a token fed hands the baton
 * to the next lane that can run, and when none can, the one holding it steps every
 * waiting lane at once. So a group keeps one core busy, the batch forms without any
 * lane's code changing shape, and since each row of a step is computed as if alone,
 * every sample comes out bitwise as it would one at a time. */
typedef enum { LANE_RUN, LANE_WAIT, LANE_DONE } lane_state;

typedef struct lane_group {
    pthread_mutex_t mu;
    pthread_cond_t cv[POLICY_POOL_MAX_LANES];
    int n;      /* lanes in the group */
    int holder; /* the lane that may run; -1 once every lane is done */
    lane_state state[POLICY_POOL_MAX_LANES];
    vlm_policy *pol[POLICY_POOL_MAX_LANES]; /* the lanes' policies */
    int tok[POLICY_POOL_MAX_LANES];         /* a waiting lane's token */
    long steps, rows; /* batched steps taken, and the tokens they fed */
} lane_group;

/* Hands the baton on from lane me (g->mu held): to the next lane that can run; when
 * none can, steps every waiting lane and runs on, me first if it was one of them. */
static void group_pass(lane_group *g, int me) {
    for (;;) {
        for (int d = 1; d <= g->n; d++) {
            const int j = (me + d) % g->n;
            if (g->state[j] == LANE_RUN) {
                g->holder = j;
                if (j != me) pthread_cond_signal(&g->cv[j]);
                return;
            }
        }
        vlm_session *ss[POLICY_POOL_MAX_LANES];
        int ids[POLICY_POOL_MAX_LANES], who[POLICY_POOL_MAX_LANES], n = 0;
        for (int j = 0; j < g->n; j++)
            if (g->state[j] == LANE_WAIT) {
                who[n] = j;
                ss[n] = g->pol[j]->s;
                ids[n++] = g->tok[j];
                g->state[j] = LANE_RUN;
            }
        if (n == 0) {
            g->holder = -1;
            return;
        }
        const double t0 = sevo_now();
        vlm_sessions_step(ss, ids, n);
        /* each lane's samples pay an equal share of the step */
        const double share = (sevo_now() - t0) / n;
        for (int k = 0; k < n; k++) g->pol[who[k]]->busy += share;
        g->steps++;
        g->rows += n;
        if (g->state[me] == LANE_RUN) {
            g->holder = me;
            return;
        }
    }
}

static void group_wait_turn(lane_group *g, int me) {
    while (g->holder != me) pthread_cond_wait(&g->cv[me], &g->mu);
}

/* Feeds one token: at once outside a pool, else as part of the group's next step. */
static int feed_token(vlm_policy *p, int t, sevo_error *err) {
    lane_group *g = p->group;
    if (!g || g->n == 1) return vlm_session_feed(p->s, &t, 1, err);
    /* refused here, by this lane, so that a step never fails */
    if (vlm_session_check_feed(p->s, &t, 1, err)) return -1;
    pthread_mutex_lock(&g->mu);
    g->tok[p->lane] = t;
    g->state[p->lane] = LANE_WAIT;
    p->busy += sevo_now() - p->busy_since;
    group_pass(g, p->lane);
    group_wait_turn(g, p->lane);
    p->busy_since = sevo_now();
    pthread_mutex_unlock(&g->mu);
    return 0;
}

int policy_create(vlm_policy **out, vlm *m, const sevo_tokenizer *tok, const gen_options *o,
                  sevo_error *err) {
    *out = NULL;
    vlm_policy *p = sevo_calloc(1, sizeof *p, "policy", err);
    if (!p) return -1;
    p->m = m;
    p->tok = tok;
    p->opt = *o;
    sevo_rng_seed(&p->rng, o->seed, 0x9e4);
    p->busy_since = sevo_now();
    const vlm_config *c = vlm_get_config(m);
    p->num_patches = vlm_config_num_patches(c);
    tokseq_init(&p->seq);
    p->scratch = sevo_malloc((size_t)c->vocab_size * 2 * sizeof(float), "sampling scratch", err);
    p->logits = sevo_malloc((size_t)c->vocab_size * sizeof(float), "sampling logits", err);
    p->gen = sevo_malloc((size_t)c->max_position_embeddings * sizeof(int), "generation buffer", err);
    p->image = sevo_calloc((size_t)c->num_channels * c->image_size * c->image_size, sizeof(float), "image", err);
    if (!p->scratch || !p->logits || !p->gen || !p->image || prompt_ids_resolve(&p->ids, tok, err) ||
        vlm_session_create(&p->s, m, c->max_position_embeddings, err)) {
        policy_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void policy_free(vlm_policy *p) {
    if (!p) return;
    vlm_session_free(p->s);
    free(p->scratch);
    free(p->logits);
    free(p->gen);
    free(p->image);
    tokseq_free(&p->seq);
    free(p);
}

const prompt_ids *policy_ids(const vlm_policy *p) { return &p->ids; }
vlm *policy_model(const vlm_policy *p) { return p->m; }
void policy_set_options(vlm_policy *p, const gen_options *o) {
    p->opt = *o;
    sevo_rng_seed(&p->rng, o->seed, 0x9e4);
}

float *policy_image(vlm_policy *p) { return p->image; }

double policy_seconds(const vlm_policy *p) { return p->busy + (sevo_now() - p->busy_since); }

int policy_load_image(vlm_policy *p, const char *path, sevo_error *err) {
    const vlm_config *c = vlm_get_config(p->m);
    return image_load(path, c->image_size, c->image_mean, c->image_std, p->image, err);
}

/* Restarts p's sampling at the generator keyed by (its seed, key): a pool's sample i
 * draws from generator i whatever was sampled before it. */
static void policy_seed_stream(vlm_policy *p, uint64_t key) { sevo_rng_seed_keyed(&p->rng, p->opt.seed, key, 0x9e4); }

static int is_stop(int id, const int *stops, int n_stops) {
    for (int i = 0; i < n_stops; i++)
        if (id == stops[i]) return 1;
    return 0;
}

/* Samples tokens from the session until one of stops (returned, not fed) or the token
 * budget runs out (returns -1 as the stop). Generated tokens go to out (fed). */
static int generate_until(vlm_policy *p, const int *stops, int n_stops, int *out, int *n_out,
                          int budget, int *tokens_generated, sevo_error *err) {
    int V = vlm_get_config(p->m)->vocab_size;
    /* tokens that only prompts contain are never generated: a sampled <image> would
     * ask for image features that are not there, a sampled <refine> would start a
     * prompt inside an answer */
    const int banned[] = {p->ids.pad, p->ids.bos, p->ids.image, p->ids.perceive, p->ids.text, p->ids.refine};
    *n_out = 0;
    for (int i = 0; i < budget; i++) {
        memcpy(p->logits, vlm_session_logits(p->s), (size_t)V * sizeof(float));
        for (size_t b = 0; b < sizeof banned / sizeof banned[0]; b++)
            if (banned[b] >= 0 && banned[b] < V) p->logits[banned[b]] = -INFINITY;
        int t = sample_token(p->logits, V, &p->opt, &p->rng, p->scratch);
        if (tokens_generated) (*tokens_generated)++;
        if (is_stop(t, stops, n_stops)) return t;
        out[(*n_out)++] = t;
        if (vlm_session_len(p->s) + 1 >= vlm_get_config(p->m)->max_position_embeddings) return -1;
        if (feed_token(p, t, err)) return -2;
    }
    return -1;
}

static void decode(const vlm_policy *p, const int *ids, int n, char *out, size_t cap) {
    if (tokenizer_decode(p->tok, ids, n, out, cap, 1) < 0 && cap) out[0] = '\0';
}

static int start(vlm_policy *p, const float *image, sevo_error *err) {
    vlm_session_reset(p->s);
    if (image) vlm_session_set_image(p->s, image);
    if (vlm_session_feed(p->s, p->seq.ids, p->seq.n, err)) return -1;
    return 0;
}

/* Generates a perception from the current session state (after a <perceive>). */
static int gen_perception(vlm_policy *p, char *out, size_t n, int *stop, int *tokens,
                          sevo_error *err) {
    int stops[3] = {p->ids.step, p->ids.answer, p->ids.eos};
    int k = 0;
    *stop = generate_until(p, stops, 3, p->gen, &k, p->opt.max_new_tokens, tokens, err);
    if (*stop == -2) return -1;
    decode(p, p->gen, k, out, n);
    return 0;
}

int policy_perceive(vlm_policy *p, const float *image, const char *question, char *out, size_t n,
                    sevo_error *err) {
    p->seq.n = 0;
    if (prompt_perceive(&p->seq, &p->ids, p->tok, p->num_patches, question, err) || start(p, image, err))
        return -1;
    int stop;
    return gen_perception(p, out, n, &stop, NULL, err);
}

static int gen_answer(vlm_policy *p, char *out, size_t n, int *tokens, sevo_error *err) {
    int stops[1] = {p->ids.eos};
    int k = 0;
    if (generate_until(p, stops, 1, p->gen, &k, p->opt.max_new_tokens, tokens, err) == -2) return -1;
    decode(p, p->gen, k, out, n);
    return 0;
}

/* Opens a reasoning step (feeds <step>) and generates it into out (TRACE_TEXT bytes) up
 * to the next <step> or <answer>. Returns the token that ended it (not fed), -1 when the
 * budget ran out, -2 on error. */
static int gen_step(vlm_policy *p, char *out, int *tokens, sevo_error *err) {
    int stops[2] = {p->ids.step, p->ids.answer}, k = 0;
    if (feed_token(p, p->ids.step, err)) return -2;
    int stop = generate_until(p, stops, 2, p->gen, &k, p->opt.max_new_tokens, tokens, err);
    if (stop != -2) decode(p, p->gen, k, out, TRACE_TEXT);
    return stop;
}

/* From a session that has just produced a description (stop = the token that ended
 * it): reasoning steps while the model opens them with <step> (at most max_steps; the
 * gate may exit after any), then the answer after <answer>. Fills r's steps, scores,
 * exit type, answer and adds to its token count. */
static int reason_and_answer(vlm_policy *p, int stop, int max_steps, step_gate_fn gate, void *gate_ctx,
                             trace_result *r, sevo_error *err) {
    if (max_steps > TRACE_MAX_STEPS) max_steps = TRACE_MAX_STEPS;
    r->exit_type = EXIT_MODEL_END;
    /* after the perception: <step> opens a reasoning step; anything else goes to the answer */
    while (stop == p->ids.step) {
        if (r->n_steps == max_steps) {
            r->exit_type = EXIT_MAX_STEPS;
            break;
        }
        if ((stop = gen_step(p, r->steps[r->n_steps], &r->tokens_generated, err)) == -2) return -1;
        r->n_steps++;
        if (gate) r->n_scores = r->n_steps;
        if (gate && gate(gate_ctx, r->n_steps, vlm_session_hidden(p->s), &r->scores[r->n_steps - 1])) {
            /* early only if the gate cut the reasoning short: where the model ends the
             * step with <answer> itself, it would have answered there without the gate */
            if (stop == p->ids.step) r->exit_type = EXIT_EARLY;
            break;
        }
    }
    if (r->n_steps == max_steps && stop == p->ids.step) r->exit_type = EXIT_MAX_STEPS;
    /* the answer is generated after <answer>, whether the model or the budget chose it */
    if (feed_token(p, p->ids.answer, err)) return -1;
    return gen_answer(p, r->answer, sizeof r->answer, &r->tokens_generated, err);
}

int policy_trajectory(vlm_policy *p, const float *image, const char *question, int max_steps,
                      float *hidden, trajectory_result *r, sevo_error *err) {
    memset(r, 0, sizeof *r);
    if (max_steps > TRACE_MAX_STEPS) max_steps = TRACE_MAX_STEPS;
    int D = vlm_get_config(p->m)->text.hidden_size;
    p->seq.n = 0;
    if (prompt_perceive(&p->seq, &p->ids, p->tok, p->num_patches, question, err) || start(p, image, err))
        return -1;
    int stop;
    if (gen_perception(p, r->perception, sizeof r->perception, &stop, &r->tokens_generated, err)) return -1;
    while (stop == p->ids.step && r->n_steps < max_steps) {
        if ((stop = gen_step(p, r->steps[r->n_steps], &r->tokens_generated, err)) == -2) return -1;
        memcpy(hidden + (size_t)r->n_steps * D, vlm_session_hidden(p->s), (size_t)D * sizeof(float));
        /* force the answer here, then rewind to the end of the step */
        int len = vlm_session_len(p->s);
        if (feed_token(p, p->ids.answer, err) ||
            gen_answer(p, r->answers[r->n_steps], TRACE_TEXT, &r->tokens_generated, err))
            return -1;
        vlm_session_truncate(p->s, len);
        r->n_steps++;
    }
    return 0;
}

int policy_text_answer(vlm_policy *p, const char *question, const char *perception, char *out,
                       size_t n, sevo_error *err) {
    const int reasoning = vlm_get_config(p->m)->text_reasoning;
    p->seq.n = 0;
    if (prompt_text(&p->seq, &p->ids, p->tok, question, perception, reasoning, err) || start(p, NULL, err))
        return -1;
    /* greedy whatever the sampling settings: this is the verifier of Valid(c), and a
     * sampled verdict would only add noise to it (the rng stream is left untouched) */
    gen_options saved = p->opt;
    p->opt.temperature = 0.0f;
    int rc = 0;
    if (reasoning) {
        /* the model writes its steps and closes them with <answer> itself; only the
         * answer after it is returned (a model that never answers answers ""). The
         * steps get what a full trace's steps get, so a model that rambles costs
         * at most that on every verification, not the whole context */
        int stops[2] = {p->ids.answer, p->ids.eos}, k = 0;
        const int budget = TRACE_MAX_STEPS * p->opt.max_new_tokens;
        int stop = generate_until(p, stops, 2, p->gen, &k, budget, NULL, err);
        if (stop == -2) rc = -1;
        else if (stop != p->ids.answer) {
            if (n) out[0] = '\0';
        }
        else if (feed_token(p, stop, err)) rc = -1;
        else rc = gen_answer(p, out, n, NULL, err);
    } else {
        rc = gen_answer(p, out, n, NULL, err);
    }
    p->opt = saved;
    return rc;
}

int policy_refine(vlm_policy *p, const float *image, const char *question, const char *failed,
                  const char *tmpl, char *out, size_t n, sevo_error *err) {
    p->seq.n = 0;
    if (prompt_refine(&p->seq, &p->ids, p->tok, p->num_patches, question, failed, tmpl, err) ||
        start(p, image, err))
        return -1;
    int stop;
    return gen_perception(p, out, n, &stop, NULL, err);
}

int policy_reason(vlm_policy *p, const float *image, const char *question, int max_steps,
                  step_gate_fn gate, void *gate_ctx, trace_result *r, sevo_error *err) {
    memset(r, 0, sizeof *r);
    p->seq.n = 0;
    if (prompt_perceive(&p->seq, &p->ids, p->tok, p->num_patches, question, err) || start(p, image, err))
        return -1;
    int stop;
    if (gen_perception(p, r->perception, sizeof r->perception, &stop, &r->tokens_generated, err))
        return -1;
    return reason_and_answer(p, stop, max_steps, gate, gate_ctx, r, err);
}

struct policy_pool {
    int n;            /* policies: threads * lanes */
    int lanes;        /* lanes per thread */
    vlm_policy **p;   /* [n] */
    sevo_error *errs; /* [n] each lane's last error */
    lane_group *groups; /* [threads] (a team shorter than asked for uses fewer) */
    int n_groups_init;  /* groups whose mutex and condition variables exist */
};

/* The group's mutex and condition variables; on failure none is left. */
static int lane_group_init(lane_group *g) {
    if (pthread_mutex_init(&g->mu, NULL)) return -1;
    for (int j = 0; j < POLICY_POOL_MAX_LANES; j++)
        if (pthread_cond_init(&g->cv[j], NULL)) {
            while (j-- > 0) pthread_cond_destroy(&g->cv[j]);
            pthread_mutex_destroy(&g->mu);
            return -1;
        }
    return 0;
}

int policy_pool_create(policy_pool **out, vlm *m, const sevo_tokenizer *tok, const gen_options *o, int threads,
                       int lanes, sevo_error *err) {
    *out = NULL;
    if (threads <= 0) threads = omp_get_max_threads();
    if (lanes <= 0) lanes = POLICY_POOL_LANES;
    if (lanes > POLICY_POOL_MAX_LANES) lanes = POLICY_POOL_MAX_LANES;
    policy_pool *pp = sevo_calloc(1, sizeof *pp, "policy pool", err);
    if (!pp) return -1;
    const int n = threads * lanes;
    pp->lanes = lanes;
    pp->p = sevo_calloc((size_t)n, sizeof *pp->p, "policy pool", err);
    pp->errs = sevo_calloc((size_t)n, sizeof *pp->errs, "policy pool", err);
    pp->groups = sevo_calloc((size_t)threads, sizeof *pp->groups, "policy pool", err);
    if (!pp->p || !pp->errs || !pp->groups) {
        policy_pool_free(pp);
        return -1;
    }
    for (; pp->n_groups_init < threads; pp->n_groups_init++) {
        if (lane_group_init(&pp->groups[pp->n_groups_init])) {
            policy_pool_free(pp);
            return sevo_fail(err, "policy pool: cannot create its locks");
        }
    }
    for (; pp->n < n; pp->n++)
        if (policy_create(&pp->p[pp->n], m, tok, o, err)) {
            policy_pool_free(pp);
            return -1;
        }
    *out = pp;
    return 0;
}

void policy_pool_free(policy_pool *pp) {
    if (!pp) return;
    for (int t = 0; pp->p && t < pp->n; t++) policy_free(pp->p[t]);
    for (int i = 0; i < pp->n_groups_init; i++) {
        pthread_mutex_destroy(&pp->groups[i].mu);
        for (int j = 0; j < POLICY_POOL_MAX_LANES; j++) pthread_cond_destroy(&pp->groups[i].cv[j]);
    }
    free(pp->p);
    free(pp->errs);
    free(pp->groups);
    free(pp);
}

int policy_pool_threads(const policy_pool *pp) { return pp->n / pp->lanes; }
int policy_pool_lanes(const policy_pool *pp) { return pp->lanes; }

void policy_pool_step_stats(const policy_pool *pp, long *steps, long *rows) {
    *steps = *rows = 0;
    for (int i = 0; i < pp->n_groups_init; i++) {
        *steps += pp->groups[i].steps;
        *rows += pp->groups[i].rows;
    }
}
vlm *policy_pool_model(const policy_pool *pp) { return pp->p[0]->m; }

int policy_pool_run(policy_pool *pp, int n, uint64_t stream0, policy_work_fn work, policy_done_fn done, void *ctx,
                    sevo_error *err) {
    for (int c0 = 0; c0 < n; c0 += POLICY_POOL_CHUNK) {
        const int c1 = n - c0 > POLICY_POOL_CHUNK ? c0 + POLICY_POOL_CHUNK : n;
        int failed = INT_MAX; /* the lowest i whose work failed */
        int next = c0;        /* the next sample to start */
        /* one lane per OpenMP thread, pp->lanes of them to a group (a team shorter than
         * asked for makes a smaller last group). Samples are taken in order as lanes
         * free up (they differ in length: a refinement, more steps), so that once i
         * failed every lower one has been started and finishes. */
#pragma omp parallel num_threads(pp->n)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            lane_group *g = &pp->groups[t / pp->lanes];
            const int me = t % pp->lanes;
#pragma omp single
            for (int gi = 0; gi * pp->lanes < nt; gi++) {
                lane_group *h = &pp->groups[gi];
                h->n = nt - gi * pp->lanes < pp->lanes ? nt - gi * pp->lanes : pp->lanes;
                h->holder = 0;
                for (int j = 0; j < h->n; j++) {
                    h->state[j] = LANE_RUN;
                    h->pol[j] = pp->p[gi * pp->lanes + j];
                }
            }
            /* (the single's barrier: every group is set before any lane looks at one) */
            vlm_policy *p = pp->p[t];
            p->group = g;
            p->lane = me;
            pthread_mutex_lock(&g->mu);
            group_wait_turn(g, me);
            p->busy_since = sevo_now();
            pthread_mutex_unlock(&g->mu);
            for (;;) {
                int i, lowest;
#pragma omp atomic capture
                i = next++;
#pragma omp atomic read
                lowest = failed;
                if (i >= c1 || i > lowest) break;
                policy_seed_stream(p, stream0 + (uint64_t)i);
                if (work(ctx, p, i, i - c0, &pp->errs[t])) {
#pragma omp critical(policy_pool_failure)
                    if (i < failed) {
#pragma omp atomic write
                        failed = i;
                        if (err) *err = pp->errs[t];
                    }
                }
            }
            pthread_mutex_lock(&g->mu);
            g->state[me] = LANE_DONE;
            p->busy += sevo_now() - p->busy_since;
            group_pass(g, me);
            pthread_mutex_unlock(&g->mu);
            p->group = NULL;
            p->busy_since = sevo_now();
        }
        const int ok_end = failed < c1 ? failed : c1;
        for (int i = c0; i < ok_end; i++)
            if (done(ctx, i, i - c0, err)) return -1;
        if (failed != INT_MAX) return -1;
    }
    return 0;
}
