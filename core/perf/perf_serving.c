/* perf_serving.c - the perf gate's host-side workloads:
 *   sched_preempt      40 engine steps on the sim backend with ~1000
 *                      requests waiting (1200 queued, 60 steps run in the
 *                      set-up) and a KV cache of 4096 blocks too small for
 *                      the ~190 running ones: the scheduler and the paged KV
 *                      manager grow, admit and preempt (recompute; ~16
 *                      preemptions in the 40 steps)
 *   tokenize_sharegpt  encode the first 100 ShareGPT prompts with the
 *                      32000-token Llama 2 tokenizer
 *   run_sim            execute experiments/perf/run_sim.ini (one run on the
 *                      sim backend, virtual clock; no files written)
 *   config_load        load and validate experiments/perf/config_load.ini
 *                      (48 sweep points; destroying it is not measured)
 * Set-up reads files and builds engines; only the work named above is in
 * the measured part. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/config.h"
#include "pagoda/engine.h"
#include "pagoda/exec.h"
#include "pagoda/runner.h"
#include "pagoda/tokenizer.h"
#include "perf/perf_impl.h"
#include "util/rng.h"

static const char *data_dir(const pgd_perf_env *env) {
    return env && env->data_dir ? env->data_dir : "../shared/data";
}
static const char *root_dir(const pgd_perf_env *env) { return env && env->root ? env->root : "."; }

/* ---- scheduler + KV manager under preemption (sim backend) ---- */

#define SCHED_REQUESTS 1200
#define SCHED_WARMUP 60 /* steps before the measured ones: running set full, preempting */
#define SCHED_STEPS 40

typedef struct sched_state {
    pgd_clock *clock;
    pgd_exec *x;
    pgd_engine *e;
} sched_state;

static void sched_teardown(void *p) {
    sched_state *s = p;
    if (!s) return;
    pgd_engine_destroy(s->e);
    pgd_exec_destroy(s->x);
    pgd_clock_destroy(s->clock);
    free(s);
}

static pgd_status sched_setup(const pgd_perf_env *env, void **out) {
    sched_state *s = calloc(1, sizeof *s);
    if (!s) return pgd_error(PGD_ERR_OOM, "perf: out of memory");
    pgd_status st;
    int32_t *prompt = malloc(sizeof(int32_t) * 512);
    if (!prompt) {
        free(s);
        return pgd_error(PGD_ERR_OOM, "perf: out of memory");
    }
    if ((st = pgd_clock_create(PGD_CLOCK_VIRTUAL, &s->clock)) != PGD_OK) goto fail;
    /* Llama-7B's width on 2 layers: the sim prices few ops, the step is the scheduler's */
    pgd_exec_config xc = {.model = "random:llama-7b,layers=2",
                          .load = {.seed = 1234, .random_dtype = PGD_F16},
                          .backend = {.name = "sim", .options = (const char *const[]){"device=a100-40gb", NULL}},
                          .clock = s->clock};
    if ((st = pgd_exec_create(&xc, &s->x)) != PGD_OK) goto fail;
    pgd_engine_config ec = {.block_size = 16, .num_blocks = 4097, .max_num_seqs = 256,
                            .max_num_batched_tokens = 2048, .policy = "fcfs",
                            .preemption = PGD_PREEMPT_RECOMPUTE, .clock = s->clock};
    if ((st = pgd_engine_create(&ec, s->x, NULL, &s->e)) != PGD_OK) goto fail;
    pgd_rng r;
    pgd_rng_seed(&r, 42);
    for (int i = 0; i < SCHED_REQUESTS && st == PGD_OK; i++) {
        int n = (int)pgd_rng_range(&r, 16, 513), out_len = (int)pgd_rng_range(&r, 16, 513);
        for (int k = 0; k < n; k++) prompt[k] = (int32_t)pgd_rng_range(&r, 1, 32000);
        pgd_request_params rp = {.prompt = prompt, .n_prompt = n, .max_tokens = out_len,
                                 .true_output_len = out_len, .ignore_eos = 1};
        int64_t id;
        st = pgd_engine_add_request(s->e, &rp, &id);
    }
    for (int i = 0; i < SCHED_WARMUP && st == PGD_OK; i++) st = pgd_engine_step(s->e, NULL);
    if (st != PGD_OK) goto fail;
    free(prompt);
    *out = s;
    return PGD_OK;
fail:
    free(prompt);
    sched_teardown(s);
    return st;
}

static pgd_status sched_run(void *p) {
    sched_state *s = p;
    for (int i = 0; i < SCHED_STEPS; i++) PGD_TRY(pgd_engine_step(s->e, NULL));
    return PGD_OK;
}

static uint64_t sched_check(void *p) {
    sched_state *s = p;
    pgd_engine_stats es;
    pgd_engine_get_stats(s->e, &es);
    int64_t v[6] = {es.steps, es.preemptions, es.tokens_computed, es.tokens_generated, es.num_waiting,
                    es.num_running};
    return pgd_perf_hash(PGD_PERF_HASH0, v, sizeof v);
}

const pgd_perf_workload pgd_perf_sched_preempt = {
    .name = "sched_preempt",
    .what = "40 engine steps on the sim: ~1000 requests waiting, ~190 running, 4096 KV blocks, preempting",
    .setup = sched_setup, .run = sched_run, .check = sched_check, .teardown = sched_teardown};

/* ---- tokenizer: 100 ShareGPT prompts ---- */

#define TOK_PROMPTS 100

typedef struct tok_state {
    pgd_tokenizer *t;
    char *texts[TOK_PROMPTS];
    int32_t *toks[TOK_PROMPTS]; /* the measured part's output */
    int ntok[TOK_PROMPTS];
    int n;
} tok_state;

static void tok_teardown(void *p) {
    tok_state *s = p;
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        free(s->texts[i]);
        free(s->toks[i]);
    }
    pgd_tokenizer_destroy(s->t);
    free(s);
}

static pgd_status tok_setup(const pgd_perf_env *env, void **out) {
    tok_state *s = calloc(1, sizeof *s);
    if (!s) return pgd_error(PGD_ERR_OOM, "perf: out of memory");
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizers/llama2_tokenizer.bin", data_dir(env));
    pgd_status st = pgd_tokenizer_load_llama2c(path, 32000, &s->t);
    if (st != PGD_OK) goto fail;
    snprintf(path, sizeof path, "%s/traces/sharegpt_v3_filtered_500.json", data_dir(env));
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root || !json_is_array(root)) {
        st = pgd_error(PGD_ERR_FORMAT, "perf: %s: %s", path, root ? "not a JSON array" : je.text);
        json_decref(root);
        goto fail;
    }
    /* the first human turn of each entry, in file order */
    for (size_t i = 0; i < json_array_size(root) && s->n < TOK_PROMPTS; i++) {
        json_t *conv = json_object_get(json_array_get(root, i), "conversations");
        for (size_t k = 0; k < json_array_size(conv); k++) {
            json_t *turn = json_array_get(conv, k);
            const char *from = json_string_value(json_object_get(turn, "from"));
            const char *v = json_string_value(json_object_get(turn, "value"));
            if (from && v && *v && (!strcmp(from, "human") || !strcmp(from, "user"))) {
                s->texts[s->n++] = strdup(v);
                break;
            }
        }
    }
    json_decref(root);
    if (s->n < TOK_PROMPTS) {
        st = pgd_error(PGD_ERR_FORMAT, "perf: %s has %d prompts, need %d", path, s->n, TOK_PROMPTS);
        goto fail;
    }
    *out = s;
    return PGD_OK;
fail:
    tok_teardown(s);
    return st;
}

static pgd_status tok_run(void *p) {
    tok_state *s = p;
    for (int i = 0; i < s->n; i++) {
        free(s->toks[i]);
        s->toks[i] = NULL;
        PGD_TRY(pgd_tokenizer_encode(s->t, s->texts[i], 1, 0, &s->toks[i], &s->ntok[i]));
    }
    return PGD_OK;
}

static uint64_t tok_check(void *p) {
    tok_state *s = p;
    uint64_t h = PGD_PERF_HASH0;
    for (int i = 0; i < s->n; i++) h = pgd_perf_hash(h, s->toks[i], sizeof(int32_t) * (size_t)s->ntok[i]);
    return h;
}

const pgd_perf_workload pgd_perf_tokenize_sharegpt = {
    .name = "tokenize_sharegpt",
    .what = "encode the first 100 ShareGPT prompts (Llama 2 tokenizer, 32000 tokens)",
    .setup = tok_setup, .run = tok_run, .check = tok_check, .teardown = tok_teardown};

/* ---- a small `pagoda run` on the sim ---- */

typedef struct run_state {
    pgd_experiment *exp;
    uint64_t check;
} run_state;

static void run_teardown(void *p) {
    run_state *s = p;
    if (!s) return;
    pgd_experiment_destroy(s->exp);
    free(s);
}

static pgd_status run_setup(const pgd_perf_env *env, void **out) {
    run_state *s = calloc(1, sizeof *s);
    if (!s) return pgd_error(PGD_ERR_OOM, "perf: out of memory");
    char path[4096];
    snprintf(path, sizeof path, "%s/experiments/perf/run_sim.ini", root_dir(env));
    pgd_status st = pgd_experiment_load(path, &s->exp);
    if (st != PGD_OK) {
        run_teardown(s);
        return st;
    }
    *out = s;
    return PGD_OK;
}

static pgd_status run_run(void *p) {
    run_state *s = p;
    pgd_run_result res;
    PGD_TRY(pgd_run_execute(pgd_experiment_run(s->exp, 0), NULL, &res));
    /* what `pagoda run` reads back for its files (a few words, no hashing) */
    s->check = res.token_fingerprint ^ (res.workload_fingerprint * 31) ^ ((uint64_t)res.stats.steps << 32) ^
               (uint64_t)res.stats.preemptions;
    pgd_run_result_free(&res);
    return PGD_OK;
}

static uint64_t run_check(void *p) { return ((run_state *)p)->check; }

const pgd_perf_workload pgd_perf_run_sim = {
    .name = "run_sim",
    .what = "pagoda run of experiments/perf/run_sim.ini on the sim (engine, workload, metrics; no files)",
    .setup = run_setup, .run = run_run, .check = run_check, .teardown = run_teardown};

/* ---- loading a config ---- */

typedef struct cfg_state {
    char path[4096];
    pgd_experiment *e; /* the measured part's output */
} cfg_state;

static void cfg_teardown(void *p) {
    cfg_state *s = p;
    if (!s) return;
    pgd_experiment_destroy(s->e);
    free(s);
}

static pgd_status cfg_setup(const pgd_perf_env *env, void **out) {
    cfg_state *s = calloc(1, sizeof *s);
    if (!s) return pgd_error(PGD_ERR_OOM, "perf: out of memory");
    snprintf(s->path, sizeof s->path, "%s/experiments/perf/config_load.ini", root_dir(env));
    FILE *f = fopen(s->path, "r");
    if (!f) {
        pgd_status st = pgd_error(PGD_ERR_IO, "perf: cannot open %s", s->path);
        free(s);
        return st;
    }
    fclose(f);
    *out = s;
    return PGD_OK;
}

/* Load (the measured part); the experiment is destroyed in the tear-down. */
static pgd_status cfg_run(void *p) {
    cfg_state *s = p;
    pgd_experiment_destroy(s->e);
    s->e = NULL;
    return pgd_experiment_load(s->path, &s->e);
}

static uint64_t cfg_check(void *p) {
    cfg_state *s = p;
    uint64_t h = PGD_PERF_HASH0;
    int n = pgd_experiment_num_runs(s->e);
    h = pgd_perf_hash(h, &n, sizeof n);
    for (int i = 0; i < n; i++) {
        const pgd_run_config *r = pgd_experiment_run(s->e, i);
        const char *name = pgd_run_name(r);
        h = pgd_perf_hash(h, name, strlen(name));
        double rate = pgd_run_get_num(r, "workload", "rate");
        h = pgd_perf_hash(h, &rate, sizeof rate);
    }
    return h;
}

const pgd_perf_workload pgd_perf_config_load = {
    .name = "config_load",
    .what = "load and validate experiments/perf/config_load.ini (48 sweep points)",
    .setup = cfg_setup, .run = cfg_run, .check = cfg_check, .teardown = cfg_teardown};
