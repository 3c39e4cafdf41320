/* test_workflow.c - the research workflow of issue 19, through the config
 * API and the `pagoda` command:
 *  - repeats: N runs per sweep point named _repeat-K, seeds derived per
 *    repeat (repeat 1 keeps the seed), each run's config.ini reloads to it;
 *  - --set overrides checked like the file, did-you-mean for keys,
 *    sections, policies, KV managers, options and commands;
 *  - the config hash (what changes it and what does not);
 *  - the head-of-line stall warning (budget = context, chunked prefill off)
 *    and its absence with a budget of twice the context;
 *  - `pagoda run` on the sim: runs.csv's offered/achieved rate and
 *    percentile columns, runs_mean.csv's mean and Student-t 95% CI
 *    (checked against the rows it aggregates), --resume (skips the written
 *    runs, redoes a removed one), several --only patterns, refusing to mix
 *    configs in one folder;
 *  - `pagoda table` (columns, md, did-you-mean) and `pagoda plot` (the
 *    files it names; an unknown column is an error);
 *  - `pagoda version` names the commit and the build options;
 *  - `generate --prompt -` reads the prompt from standard input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/csv_table.h"
#include "pagoda/config.h"
#include "test_util.h"
#include "util/suggest.h"

static char dir[256];

static const char *path_in(const char *name) {
    static char buf[8][800];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_text(const char *name, const char *text) {
    FILE *f = fopen(path_in(name), "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

static int has(const char *s, const char *needle) {
    int ok = s && strstr(s, needle) != NULL;
    if (!ok) printf("\n  missing '%s' in: %.600s\n", needle, s ? s : "(null)");
    return ok;
}

static void test_suggest(void) {
    CU_ASSERT_EQUAL(pgd_edit_distance("", ""), 0);
    CU_ASSERT_EQUAL(pgd_edit_distance("rate", "rat"), 1);
    CU_ASSERT_EQUAL(pgd_edit_distance("sjf", "sfj"), 1); /* a swap counts 1 */
    CU_ASSERT_EQUAL(pgd_edit_distance("kitten", "sitting"), 3);
    static const char *const c[] = {"num_requests", "rate", "repeats", NULL};
    CU_ASSERT_STRING_EQUAL(pgd_suggest("num_request", c, (size_t)-1), "num_requests");
    CU_ASSERT_STRING_EQUAL(pgd_suggest("rte", c, (size_t)-1), "rate");
    CU_ASSERT_PTR_NULL(pgd_suggest("zzzzzz", c, (size_t)-1));
    CU_ASSERT_PTR_NULL(pgd_suggest("ab", c, (size_t)-1)); /* too short to guess */
    char buf[64];
    CU_ASSERT_STRING_EQUAL(pgd_names_join(c, ", ", buf, sizeof buf), "num_requests, rate, repeats");
    /* Student t: the table and its large-df tail */
    CU_ASSERT_DOUBLE_EQUAL(csv_t95(1), 12.706, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(csv_t95(2), 4.303, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(csv_t95(30), 2.042, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(csv_t95(60), 2.000, 2e-3);
    CU_ASSERT_DOUBLE_EQUAL(csv_t95(100000), 1.960, 1e-3);
}

static const char *BASE = "[experiment]\nname = wf\nseed = 7\nrepeats = 3\n"
                          "[model]\npath = random:stories260K\n"
                          "[workload]\nnum_requests = 4\n"
                          "[sweep]\nengine.policy = fcfs, sjf\n";

static void test_repeats_and_overrides(void) {
    pgd_experiment *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(BASE, "wf.ini", &e), PGD_OK);
    CU_ASSERT_EQUAL(pgd_experiment_num_runs(e), 6);
    CU_ASSERT_EQUAL(pgd_experiment_num_swept(e), 2);
    CU_ASSERT_STRING_EQUAL(pgd_experiment_swept_key(e, 1), "experiment.repeat");
    const char *names[] = {"policy-fcfs_repeat-1", "policy-fcfs_repeat-2", "policy-fcfs_repeat-3",
                           "policy-sjf_repeat-1", "policy-sjf_repeat-2", "policy-sjf_repeat-3"};
    for (int i = 0; i < 6; i++) {
        const pgd_run_config *r = pgd_experiment_run(e, i);
        CU_ASSERT_STRING_EQUAL(pgd_run_name(r), names[i]);
        int k = i % 3 + 1;
        CU_ASSERT_EQUAL(pgd_run_get_int(r, "experiment", "repeat"), k);
        CU_ASSERT_EQUAL(pgd_run_get_int(r, "experiment", "repeats"), 1);
        CU_ASSERT_EQUAL(pgd_run_get_u64(r, "experiment", "seed"), 7 + (uint64_t)(k - 1) * PGD_REPEAT_SEED_STEP);
    }
    /* a repeat's config.ini reloads to that one run, same seed, same hash */
    const pgd_run_config *r2 = pgd_experiment_run(e, 4);
    char *ini = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&ini, &len);
    CU_ASSERT_EQUAL(pgd_run_write_ini(r2, m), PGD_OK);
    fclose(m);
    pgd_experiment *e2 = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(ini, "config.ini", &e2), PGD_OK);
    CU_ASSERT_EQUAL(pgd_experiment_num_runs(e2), 1);
    CU_ASSERT_EQUAL(pgd_run_get_u64(pgd_experiment_run(e2, 0), "experiment", "seed"),
                    pgd_run_get_u64(r2, "experiment", "seed"));
    CU_ASSERT_EQUAL(pgd_run_config_hash(pgd_experiment_run(e2, 0)), pgd_run_config_hash(r2));
    free(ini);
    pgd_experiment_destroy(e2);
    /* the hash: another repeat or policy differs; a description does not */
    CU_ASSERT_NOT_EQUAL(pgd_run_config_hash(pgd_experiment_run(e, 0)), pgd_run_config_hash(pgd_experiment_run(e, 1)));
    CU_ASSERT_NOT_EQUAL(pgd_run_config_hash(pgd_experiment_run(e, 0)), pgd_run_config_hash(pgd_experiment_run(e, 3)));
    char text[1024];
    snprintf(text, sizeof text, "%sdescription = other words\n", BASE);
    /* description lives in [experiment]: append a section header first */
    snprintf(text, sizeof text, "[experiment]\ndescription = other words\n%s", BASE + strlen("[experiment]\n"));
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(text, "wf.ini", &e2), PGD_OK);
    CU_ASSERT_EQUAL(pgd_run_config_hash(pgd_experiment_run(e2, 0)), pgd_run_config_hash(pgd_experiment_run(e, 0)));
    pgd_experiment_destroy(e2);
    pgd_experiment_destroy(e);
    /* repeats and repeat cannot be swept */
    CU_ASSERT_NOT_EQUAL(pgd_experiment_load_string("[sweep]\nexperiment.repeats = 1, 2\n", "x.ini", &e), PGD_OK);
    CU_ASSERT(has(pgd_last_error(), "cannot be swept"));
    /* did you mean: key, section, policy, KV manager */
    CU_ASSERT_NOT_EQUAL(pgd_experiment_load_string("[workload]\nnum_request = 3\n", "x.ini", &e), PGD_OK);
    CU_ASSERT(has(pgd_last_error(), "x.ini:2: [workload] num_request = '3': unknown key (did you mean 'num_requests'?)"));
    CU_ASSERT_NOT_EQUAL(pgd_experiment_load_string("[engin]\npolicy = sjf\n", "x.ini", &e), PGD_OK);
    CU_ASSERT(has(pgd_last_error(), "unknown section [engin] (did you mean [engine]?)"));
    CU_ASSERT_NOT_EQUAL(pgd_experiment_load_string("[engine]\npolicy = sfj\n", "x.ini", &e), PGD_OK);
    CU_ASSERT(has(pgd_last_error(), "unknown policy (did you mean 'sjf'?) (choices: fcfs|"));
    CU_ASSERT_NOT_EQUAL(pgd_experiment_load_string("[engine]\nkv_manager = orca_max\n", "x.ini", &e), PGD_OK);
    CU_ASSERT(has(pgd_last_error(), "unknown KV manager (did you mean 'orca-max'?) (choices: paged|orca-max|"));
    CU_ASSERT_NOT_EQUAL(pgd_experiment_load_string("[sweep]\nworkload.rte = 1, 2\n", "x.ini", &e), PGD_OK);
    CU_ASSERT(has(pgd_last_error(), "unknown key 'rte' in [workload] (did you mean 'rate'?)"));
    /* --set: replaces the file's value, is checked, names itself in errors */
    write_text("wf.ini", BASE);
    const char *sets[] = {"workload.num_requests=9", "engine.max_num_seqs=2"};
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_overrides(path_in("wf.ini"), sets, 2, &e), PGD_OK);
    CU_ASSERT_EQUAL(pgd_run_get_int(pgd_experiment_run(e, 0), "workload", "num_requests"), 9);
    CU_ASSERT_EQUAL(pgd_run_get_int(pgd_experiment_run(e, 5), "engine", "max_num_seqs"), 2);
    CU_ASSERT(pgd_run_is_set(pgd_experiment_run(e, 0), "engine", "max_num_seqs"));
    char where[600];
    CU_ASSERT(has(pgd_run_where(pgd_experiment_run(e, 0), "workload", "num_requests", where, sizeof where),
                  "--set workload.num_requests=9"));
    pgd_experiment_destroy(e);
    const char *bad[][2] = {{"workload.num_requests=-1", "--set 'workload.num_requests=-1': [workload] num_requests = '-1'"},
                            {"workload.num_reqests=3", "unknown key 'num_reqests' in [workload] (did you mean 'num_requests'?)"},
                            {"worklaod.rate=3", "unknown section [worklaod] (did you mean [workload]?)"},
                            {"engine.policy=sjf", "engine.policy is swept"},
                            {"rate=3", "expected section.key=value"},
                            {"experiment.repeat=2", "repeat is set by repeats"}};
    for (int i = 0; i < 6; i++) {
        CU_ASSERT_NOT_EQUAL(pgd_experiment_load_overrides(path_in("wf.ini"), &bad[i][0], 1, &e), PGD_OK);
        CU_ASSERT(has(pgd_last_error(), bad[i][1]));
    }
}

static void test_hol_warning(void) {
    char model[512];
    snprintf(model, sizeof model, "%s", pgd_test_data("models/stories260K/stories260K.bin"));
    char text[1024];
    /* stories260K: context 512; the budget equal to it stalls, twice it does not */
    for (int budget = 512; budget <= 1024; budget += 512) {
        snprintf(text, sizeof text, "[model]\npath = %s\n[engine]\nmax_num_batched_tokens = %d\n", model, budget);
        pgd_experiment *e = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(text, "hol.ini", &e), PGD_OK);
        const pgd_run_config *r = pgd_experiment_run(e, 0);
        if (budget == 512) {
            CU_ASSERT_EQUAL(pgd_run_num_warnings(r), 1);
            CU_ASSERT(has(pgd_run_warning(r, 0), "[engine] max_num_batched_tokens = 512 with chunked_prefill off: a "
                                                 "prompt of up to 511 tokens"));
            CU_ASSERT(has(pgd_run_warning(r, 0), "set max_num_batched_tokens >= 767 (e.g. 1024) or chunked_prefill = on"));
        } else {
            CU_ASSERT_EQUAL(pgd_run_num_warnings(r), 0);
        }
        pgd_experiment_destroy(e);
    }
    /* chunked prefill, or a synthetic workload of short prompts: no stall */
    snprintf(text, sizeof text, "[model]\npath = %s\n[engine]\nmax_num_batched_tokens = 512\nmax_num_seqs = 8\n"
             "[workload]\ninput_len = fixed\ninput_mean = 100\n", model);
    pgd_experiment *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(text, "hol.ini", &e), PGD_OK);
    CU_ASSERT_EQUAL(pgd_run_num_warnings(pgd_experiment_run(e, 0)), 0);
    pgd_experiment_destroy(e);
    /* a trace replayed at a rate: every run's config.ini (time_scale = 1 written
     * as a default line) loads back (fuzz_config found it did not) */
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load("experiments/study_walkthrough.ini", &e), PGD_OK);
    for (int k = 0; k < pgd_experiment_num_runs(e); k += 7) {
        char *ini = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&ini, &len);
        CU_ASSERT_EQUAL(pgd_run_write_ini(pgd_experiment_run(e, k), m), PGD_OK);
        fclose(m);
        pgd_experiment *back = NULL;
        if (pgd_experiment_load_string(ini, "config.ini", &back) != PGD_OK) printf("\n  %s\n", pgd_last_error());
        CU_ASSERT_PTR_NOT_NULL(back);
        pgd_experiment_destroy(back);
        free(ini);
    }
    pgd_experiment_destroy(e);
    /* the shipped trace configs no longer set it up */
    static const char *const shipped[] = {"experiments/trace_azure.ini", "experiments/trace_mooncake.ini",
                                          "experiments/study_walkthrough.ini"};
    for (int i = 0; i < 3; i++) {
        if (pgd_experiment_load(shipped[i], &e) != PGD_OK) printf("\n  %s\n", pgd_last_error());
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        for (int k = 0; k < pgd_experiment_num_runs(e); k++)
            for (int w = 0; w < pgd_run_num_warnings(pgd_experiment_run(e, k)); w++)
                CU_ASSERT_PTR_NULL(strstr(pgd_run_warning(pgd_experiment_run(e, k), w), "head-of-line"));
        pgd_experiment_destroy(e);
    }
}

/* The sim experiment the CLI tests run: a trace at two rates, 3 repeats. */
static void write_sim_config(const char *name, int num_requests) {
    char text[2048];
    snprintf(text, sizeof text,
             "[experiment]\nname = wfsim\nseed = 3\nrepeats = 3\noutput_dir = %s/results\n"
             "[model]\npath = random:opt-13b\ndtype = f16\nbackend = sim\ndevice = a100-40gb\n"
             "[engine]\nkv_memory = 12G\nmax_num_batched_tokens = 4096\n"
             "[workload]\nsource = trace\npath = %s\nnum_requests = %d\nsample = on\n"
             "[sweep]\nworkload.rate = 0.5, 2\nengine.kv_manager = paged, orca-max\n",
             dir, pgd_test_data("traces/azure2023_conv.csv"), num_requests);
    write_text(name, text);
}

static double num(const csv_table *t, int r, const char *col) {
    int c = csv_table_col(t, col);
    CU_ASSERT_FATAL(c >= 0);
    return atof(csv_table_cell(t, r, c));
}

static void test_run_repeats_resume(void) {
    write_sim_config("wfsim.ini", 40);
    char args[2200], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "run --quiet '%s'", path_in("wfsim.ini"));
    CU_ASSERT_EQUAL_FATAL(pgd_test_run_cli(args, &out, &err), 0);
    free(out);
    free(err);
    csv_table runs, mean;
    CU_ASSERT_FATAL(csv_table_load("test", path_in("results/wfsim/runs.csv"), &runs));
    CU_ASSERT_FATAL(csv_table_load("test", path_in("results/wfsim/runs_mean.csv"), &mean));
    CU_ASSERT_EQUAL(runs.nrows, 12);
    CU_ASSERT_EQUAL(mean.nrows, 4);
    static const char *const cols[] = {"offered_rate", "achieved_rate", "ttft_p50", "ttft_p90", "ttft_p95", "ttft_p99",
                                       "tpot_p95", "itl_p95", "e2e_p95", "norm_latency_p95", "failed", NULL};
    for (int i = 0; cols[i]; i++) CU_ASSERT(csv_table_col(&runs, cols[i]) >= 0);
    /* a trace replayed at a rate: each run's offered rate is the rate */
    for (int r = 0; r < runs.nrows; r++) {
        CU_ASSERT_DOUBLE_EQUAL(num(&runs, r, "offered_rate"), num(&runs, r, "rate"), 1e-6);
        CU_ASSERT(num(&runs, r, "ttft_p50") <= num(&runs, r, "ttft_p90"));
        CU_ASSERT(num(&runs, r, "ttft_p90") <= num(&runs, r, "ttft_p95"));
        CU_ASSERT(num(&runs, r, "ttft_p95") <= num(&runs, r, "ttft_p99"));
    }
    /* runs_mean.csv: mean and t(2) * s / sqrt(3) of each group of three */
    CU_ASSERT_STRING_EQUAL(csv_table_cell(&mean, 0, 0), "rate-0.5_kv_manager-paged");
    CU_ASSERT_EQUAL(csv_table_col(&mean, "repeat"), -1);
    CU_ASSERT_EQUAL(csv_table_col(&mean, "sweep_id"), -1);
    for (int g = 0; g < 4; g++) {
        CU_ASSERT_EQUAL((int)num(&mean, g, "repeats"), 3);
        double v[3], sum = 0, ss = 0;
        for (int k = 0; k < 3; k++) sum += v[k] = num(&runs, 3 * g + k, "e2e_p95");
        double mu = sum / 3;
        for (int k = 0; k < 3; k++) ss += (v[k] - mu) * (v[k] - mu);
        CU_ASSERT_DOUBLE_EQUAL(num(&mean, g, "e2e_p95"), mu, 1e-6 * fabs(mu) + 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(num(&mean, g, "e2e_p95_ci95"), 4.303 * sqrt(ss / 2) / sqrt(3), 1e-6 * fabs(mu) + 1e-12);
    }
    printf("\n  rate 2 paged: e2e p95 %.3f +- %.3f s; orca-max %.3f +- %.3f s\n", num(&mean, 2, "e2e_p95"),
           num(&mean, 2, "e2e_p95_ci95"), num(&mean, 3, "e2e_p95"), num(&mean, 3, "e2e_p95_ci95"));
    csv_table_free(&mean);
    /* the repeats differ (different samples of the trace) */
    CU_ASSERT(num(&runs, 0, "e2e_mean") != num(&runs, 1, "e2e_mean"));
    /* --resume: everything written is kept; a removed run is redone, alone */
    char *before = pgd_test_read_file(path_in("results/wfsim/rate-2_kv_manager-paged_repeat-1/summary.json"), NULL);
    snprintf(args, sizeof args, "rm -rf '%s'", path_in("results/wfsim/rate-0.5_kv_manager-orca-max_repeat-2"));
    CU_ASSERT_EQUAL(system(args), 0);
    snprintf(args, sizeof args, "run --resume '%s'", path_in("wfsim.ini"));
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 0);
    CU_ASSERT(has(err, "--resume: 11 of 12 runs already written whole; running the other 1"));
    /* the plain progress lines (stderr is no terminal here) carry the live figures and an ETA */
    CU_ASSERT(has(err, "pagoda run: [1/1] rate-0.5_kv_manager-orca-max_repeat-2: "));
    CU_ASSERT(has(err, " requests, queue "));
    CU_ASSERT(has(err, ", KV "));
    CU_ASSERT(has(err, ", ETA "));
    CU_ASSERT(has(err, "offered 0.5 req/s, achieved "));
    CU_ASSERT(has(out, "1 of 1 runs written"));
    char *after = pgd_test_read_file(path_in("results/wfsim/rate-2_kv_manager-paged_repeat-1/summary.json"), NULL);
    CU_ASSERT(before && after && !strcmp(before, after)); /* not rewritten */
    free(before);
    free(after);
    free(out);
    free(err);
    csv_table again;
    CU_ASSERT_FATAL(csv_table_load("test", path_in("results/wfsim/runs.csv"), &again));
    CU_ASSERT_EQUAL(again.nrows, 12);
    /* the redone run is the same deterministic run */
    CU_ASSERT_STRING_EQUAL(csv_table_cell(&again, 4, csv_table_col(&again, "e2e_mean")),
                           csv_table_cell(&runs, 4, csv_table_col(&runs, "e2e_mean")));
    csv_table_free(&again);
    csv_table_free(&runs);
    /* several --only patterns, comma list and repeated */
    snprintf(args, sizeof args, "run --dry-run --only rate-2_kv_manager-paged_repeat-1,orca-max_repeat-3 "
             "--only rate-0.5_kv_manager-paged_repeat-2 '%s'", path_in("wfsim.ini"));
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 0);
    CU_ASSERT(has(out, "  rate-0.5_kv_manager-paged_repeat-2\n  rate-0.5_kv_manager-orca-max_repeat-3\n"
                       "  rate-2_kv_manager-paged_repeat-1\n  rate-2_kv_manager-orca-max_repeat-3\n"));
    CU_ASSERT_PTR_NULL(strstr(out, "repeat-1\n  rate-2_kv_manager-orca-max_repeat-1"));
    free(out);
    free(err);
    /* another config (more requests) may not keep these runs */
    snprintf(args, sizeof args, "run --resume --set workload.num_requests=50 '%s'", path_in("wfsim.ini"));
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT(has(err, "was written by another config (config_hash "));
    CU_ASSERT(has(err, "12 runs of"));
    CU_ASSERT(has(err, "came from another config; refusing to mix them"));
    free(out);
    free(err);
    snprintf(args, sizeof args, "run --only repeat-1 --set workload.num_requests=50 '%s'", path_in("wfsim.ini"));
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT(has(err, "8 runs of"));
    free(out);
    free(err);
    /* CLI did-you-means */
    CU_ASSERT_EQUAL(pgd_test_run_cli("run --onyl x y.ini", &out, &err), 2);
    CU_ASSERT(has(err, "pagoda run: unknown option '--onyl' (did you mean '--only'?)"));
    free(out);
    free(err);
    CU_ASSERT_EQUAL(pgd_test_run_cli("run --only", &out, &err), 2);
    CU_ASSERT(has(err, "pagoda run: option '--only' needs a value"));
    free(out);
    free(err);
    CU_ASSERT_EQUAL(pgd_test_run_cli("tabel x", &out, &err), 2);
    CU_ASSERT(has(err, "unknown command 'tabel' (did you mean 'table'?)"));
    free(out);
    free(err);
    /* registry names in help */
    CU_ASSERT_EQUAL(pgd_test_run_cli("run --help", &out, &err), 0);
    CU_ASSERT(has(out, "Policies ([engine] policy): fcfs, "));
    CU_ASSERT(has(out, "KV managers ([engine] kv_manager): paged, orca-max, orca-pow2, orca-oracle, static"));
    free(out);
    free(err);
}

static void test_table_plot_version(void) {
    char args[2200], *out = NULL, *err = NULL;
    char exp[512];
    snprintf(exp, sizeof exp, "%s", path_in("results/wfsim"));
    if (access(path_in("results/wfsim/runs_mean.csv"), R_OK) != 0) {
        write_sim_config("wfsim.ini", 40);
        snprintf(args, sizeof args, "run --quiet '%s' >/dev/null 2>&1", path_in("wfsim.ini"));
        CU_ASSERT_EQUAL_FATAL(pgd_test_run_cli(args, NULL, NULL), 0);
    }
    snprintf(args, sizeof args, "table --columns experiment,run,offered_rate,e2e_p95 '%s' '%s'", exp, exp);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 0);
    CU_ASSERT(has(out, "experiment,run,offered_rate,e2e_p95\nwfsim,rate-0.5_kv_manager-paged_repeat-1,0.5,"));
    int lines = 0;
    for (const char *p = out; p && *p; p++) lines += *p == '\n';
    CU_ASSERT_EQUAL(lines, 1 + 24);
    free(out);
    free(err);
    snprintf(args, sizeof args, "table --mean --format md --columns run,e2e_p95,e2e_p95_ci95 '%s'", exp);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 0);
    CU_ASSERT(has(out, "| run | e2e_p95 | e2e_p95_ci95 |\n|---|---:|---:|\n| rate-0.5_kv_manager-paged | "));
    free(out);
    free(err);
    snprintf(args, sizeof args, "table --columns run,e2e_p955 '%s'", exp);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT(has(err, "no column 'e2e_p955'"));
    CU_ASSERT(has(err, "(did you mean 'e2e_p95'?)"));
    free(out);
    free(err);
    /* plot: the images it names */
    snprintf(args, sizeof args, "plot --metric ttft --percentile p99 --logy '%s'", exp);
    int rc = pgd_test_run_cli(args, &out, &err);
    if (rc == 1 && err && strstr(err, "is gnuplot installed")) {
        printf("\n  no gnuplot: plot images not checked\n");
    } else {
        CU_ASSERT_EQUAL(rc, 0);
        static const char *const imgs[] = {"latency_vs_load", "throughput_vs_load", "pareto", "ttft_cdf", "tpot_cdf",
                                           "e2e_cdf", "norm_latency_cdf", "kv_usage", NULL};
        for (int i = 0; imgs[i]; i++) {
            char p[512];
            struct stat sb;
            snprintf(p, sizeof p, "results/wfsim/plots/%s.png", imgs[i]);
            CU_ASSERT(stat(path_in(p), &sb) == 0 && sb.st_size > 1000);
        }
        char *gp = pgd_test_read_file(path_in("results/wfsim/plots/plots.gp"), NULL);
        CU_ASSERT(has(gp, "ttft_p99 vs offered_rate (error bars: 95% CI)"));
        CU_ASSERT(has(gp, "set title \"rate = 0.5\"")); /* a CDF panel per load */
        CU_ASSERT(has(gp, "set title \"rate = 2\""));
        /* styles follow the values, not the sweep order: paged sorts after orca-max, so it has the
           second color (series 0 is paged, the sweep's first value) */
        CU_ASSERT(has(gp, "$lat_0 using 1:2:3 with yerrorlines lc rgb \"#d62728\" dt 1"));
        free(gp);
    }
    free(out);
    free(err);
    snprintf(args, sizeof args, "plot --percentile p955 '%s'", exp);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT(has(err, "unknown --percentile 'p955' (did you mean 'p95'?)"));
    free(out);
    free(err);
    snprintf(args, sizeof args, "plot --y class9_ttft_p99 '%s'", exp);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT(has(err, "has no column 'class9_ttft_p99'"));
    free(out);
    free(err);
    /* generate --prompt -: the prompt from standard input */
    char model[512], tok[512]; /* pgd_test_data's buffer is reused by its next call */
    snprintf(model, sizeof model, "%s", pgd_test_data("models/stories260K/stories260K.bin"));
    snprintf(tok, sizeof tok, "%s", pgd_test_data("models/stories260K/tok512.bin"));
    char *want = NULL;
    snprintf(args, sizeof args, "generate --model '%s' --tokenizer '%s' --max-tokens 24 --prompt 'Once upon a time'",
             model, tok);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &want, NULL), 0);
    write_text("prompt.txt", "Once upon a time\n");
    snprintf(args, sizeof args, "generate --model '%s' --tokenizer '%s' --max-tokens 24 --prompt - < '%s'", model, tok,
             path_in("prompt.txt"));
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 0);
    CU_ASSERT(want && out && !strcmp(want, out));
    CU_ASSERT(has(out, "Once upon a time, there was a little girl named Lily"));
    free(out);
    free(err);
    free(want);
    snprintf(args, sizeof args, "generate --model '%s' --tokenizer '%s' --prompt - --prompts-file - < '%s'", model, tok,
             path_in("prompt.txt"));
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT(has(err, "standard input can be read once"));
    free(out);
    free(err);
    snprintf(args, sizeof args, "generate --model '%s' --tokenizer '%s' --policy sfj --prompt x", model, tok);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT(has(err, "--policy: unknown policy 'sfj' (did you mean 'sjf'?) (choices: fcfs, "));
    free(out);
    free(err);
    /* version: commit and build options */
    CU_ASSERT_EQUAL(pgd_test_run_cli("--version", &out, &err), 0);
    CU_ASSERT(has(out, "pagoda " PAGODA_VERSION "\ncommit "));
    CU_ASSERT(has(out, "options cuda="));
    CU_ASSERT(has(out, " shared="));
    free(out);
    free(err);
}

static int init(void) {
    snprintf(dir, sizeof dir, "/tmp/pgd_workflow_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int cleanup(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static CU_TestInfo tests[] = {
    {"edit distance, suggestions, Student t", test_suggest},
    {"repeats, config hash, --set, did you mean", test_repeats_and_overrides},
    {"head-of-line stall warning", test_hol_warning},
    {"run: load axis, percentiles, repeats CI, --resume, --only, no mixing", test_run_repeats_resume},
    {"table, plot, version", test_table_plot_version},
    CU_TEST_INFO_NULL};

static CU_SuiteInfo suites[] = {
    {.pName = "workflow", .pInitFunc = init, .pCleanupFunc = cleanup, .pTests = tests}, CU_SUITE_INFO_NULL};

int main(void) { return pgd_test_main(suites); }
