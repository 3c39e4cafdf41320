/* llm.c - offline generation facade (llm.h): one CPU executor and
 * tokenizer per pgd_llm; each pgd_llm_generate builds an engine for its
 * batch, runs it to completion and decodes each request's first sequence.
 *
 * Invariants: an engine lives only inside one generate call, so calls are
 * independent (same prompts and seed, same texts); on any failure every
 * text already decoded is freed and texts[] is all NULL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/engine.h"
#include "pagoda/exec.h"
#include "pagoda/llm.h"
#include "pagoda/results.h"
#include "pagoda/runner.h"
#include "pagoda/sampler.h"
#include "pagoda/tokenizer.h"

struct pgd_llm {
    pgd_exec *ex;
    pgd_tokenizer *own_tok;
    const pgd_tokenizer *tok;
};

pgd_status pgd_llm_create(const char *model, const char *tokenizer, int num_threads, pgd_llm **out) {
    if (!out) return pgd_error(PGD_ERR_INVALID, "pgd_llm_create: out is NULL");
    *out = NULL;
    if (!model || !*model) return pgd_error(PGD_ERR_INVALID, "pgd_llm_create: no model given");
    if (num_threads < 0) return pgd_error(PGD_ERR_INVALID, "pgd_llm_create: num_threads %d < 0", num_threads);
    pgd_llm *l = calloc(1, sizeof *l);
    if (!l) return pgd_error(PGD_ERR_OOM, "pgd_llm_create: out of memory");
    pgd_exec_config xc = {.model = model, .backend = {.name = "cpu", .num_threads = num_threads}};
    pgd_status st = pgd_exec_create(&xc, &l->ex);
    if (st != PGD_OK) goto fail;
    l->tok = pgd_exec_tokenizer(l->ex);
    if (tokenizer && *tokenizer) {
        st = pgd_tokenizer_load_llama2c(tokenizer, pgd_exec_model_config(l->ex)->vocab_size, &l->own_tok);
        if (st != PGD_OK) goto fail;
        l->tok = l->own_tok;
    }
    if (!l->tok) {
        st = pgd_error(PGD_ERR_INVALID, "model '%s' has no tokenizer of its own: give a tokenizer file", model);
        goto fail;
    }
    *out = l;
    return PGD_OK;
fail:
    pgd_llm_destroy(l);
    return st;
}

void pgd_llm_destroy(pgd_llm *l) {
    if (!l) return;
    pgd_tokenizer_destroy(l->own_tok);
    pgd_exec_destroy(l->ex);
    free(l);
}

int pgd_llm_context(const pgd_llm *l) { return l ? pgd_exec_model_config(l->ex)->max_seq_len : 0; }
int pgd_llm_vocab_size(const pgd_llm *l) { return l ? pgd_exec_model_config(l->ex)->vocab_size : 0; }
void pgd_llm_free_text(char *text) { free(text); }

pgd_status pgd_llm_generate(pgd_llm *l, const char *const *prompts, int n, int max_tokens, float temperature,
                            int top_k, float top_p, uint64_t seed, char **texts) {
    if (!l || !prompts || !texts || n < 1)
        return pgd_error(PGD_ERR_INVALID, "pgd_llm_generate: needs an llm, n >= 1 prompts and n text slots");
    for (int i = 0; i < n; i++) texts[i] = NULL;
    if (max_tokens < 1) return pgd_error(PGD_ERR_INVALID, "pgd_llm_generate: max_tokens %d < 1", max_tokens);
    const pgd_model_config *mc = pgd_exec_model_config(l->ex);
    pgd_sampling_params sp = {.temperature = temperature, .top_k = top_k, .top_p = top_p, .seed = seed};
    PGD_TRY(pgd_sampling_params_validate(&sp, mc->vocab_size));
    pgd_engine_config ec = {0};
    pgd_engine *eng = NULL;
    int64_t *ids = calloc((size_t)n, sizeof *ids);
    pgd_status st = ids ? pgd_engine_create(&ec, l->ex, l->tok, &eng) : pgd_error(PGD_ERR_OOM, "out of memory");
    for (int i = 0; st == PGD_OK && i < n; i++) {
        int32_t *pt = NULL;
        int np = 0;
        if (!prompts[i]) {
            st = pgd_error(PGD_ERR_INVALID, "pgd_llm_generate: prompt %d is NULL", i);
            break;
        }
        st = pgd_tokenizer_encode(l->tok, prompts[i], 1, 0, &pt, &np);
        if (st == PGD_OK) {
            sp.seed = seed + (uint64_t)i;
            pgd_request_params rp = {.prompt = pt, .n_prompt = np, .sampling = sp, .max_tokens = max_tokens, .n = 1};
            st = pgd_engine_add_request(eng, &rp, &ids[i]);
        }
        free(pt);
    }
    if (st == PGD_OK) st = pgd_engine_run(eng);
    for (int i = 0; st == PGD_OK && i < n; i++) {
        const pgd_request_output *ro = NULL;
        st = pgd_engine_get_output(eng, ids[i], &ro);
        if (st == PGD_OK && ro->error) st = pgd_error(PGD_ERR_INVALID, "prompt %d: %s", i, ro->error);
        if (st == PGD_OK && ro->num_seqs < 1) st = pgd_error(PGD_ERR_INVALID, "prompt %d: no output", i);
        if (st == PGD_OK)
            st = pgd_tokenizer_decode_all(l->tok, ro->prompt[ro->n_prompt - 1], ro->seqs[0].tokens,
                                          ro->seqs[0].n_tokens, &texts[i]);
    }
    if (st != PGD_OK)
        for (int i = 0; i < n; i++) {
            free(texts[i]);
            texts[i] = NULL;
        }
    pgd_engine_destroy(eng);
    free(ids);
    return st;
}

pgd_status pgd_experiment_run_file(const char *config, const char *output_dir, char **runs_dir) {
    if (runs_dir) *runs_dir = NULL;
    if (!config) return pgd_error(PGD_ERR_INVALID, "pgd_experiment_run_file: no config given");
    pgd_experiment *e = NULL;
    PGD_TRY(pgd_experiment_load(config, &e));
    if (!output_dir) output_dir = pgd_run_get_str(pgd_experiment_run(e, 0), "experiment", "output_dir");
    char expdir[4096], rundir[4400], csv[4200], sweep[64];
    int lock = -1, moved = 0;
    pgd_runs_csv *table = NULL;
    pgd_status st = PGD_OK;
    if (snprintf(expdir, sizeof expdir, "%s/%s", output_dir, pgd_experiment_name(e)) >= (int)sizeof expdir)
        st = pgd_error(PGD_ERR_INVALID, "output directory too long: %s", output_dir);
    if (st == PGD_OK) st = pgd_results_lock(expdir, &lock);
    if (st == PGD_OK) st = pgd_results_begin_sweep(expdir, 1, &moved);
    if (st == PGD_OK) st = pgd_runs_csv_create(e, &table);
    snprintf(csv, sizeof csv, "%s/runs.csv", expdir);
    pgd_results_new_sweep_id(sweep, sizeof sweep);
    for (int i = 0; st == PGD_OK && i < pgd_experiment_num_runs(e); i++) {
        const pgd_run_config *r = pgd_experiment_run(e, i);
        pgd_run_result res;
        snprintf(rundir, sizeof rundir, "%s/%s", expdir, pgd_run_name(r));
        st = pgd_run_execute(r, NULL, &res);
        if (st == PGD_OK) {
            snprintf(res.sweep_id, sizeof res.sweep_id, "%s", sweep);
            st = pgd_run_write_outputs(r, &res, rundir);
            if (st == PGD_OK) st = pgd_runs_csv_add(table, r, &res);
            if (st == PGD_OK) st = pgd_runs_csv_write(table, csv);
        }
        pgd_run_result_free(&res);
    }
    if (st == PGD_OK && runs_dir && !(*runs_dir = strdup(expdir))) st = pgd_error(PGD_ERR_OOM, "out of memory");
    pgd_runs_csv_destroy(table);
    pgd_results_unlock(lock);
    pgd_experiment_destroy(e);
    return st;
}
