/* runner_io.c - writes one run's results directory: summary.json (the
 * metrics summary plus run identity, swept values, engine counters and
 * fingerprints), requests.csv and timeline.csv (metrics writers),
 * op_times.csv (backend ops and engine step phases; runner.h),
 * config.ini (the resolved config) and env.json (pgd_env_json).
 *
 * Invariant: every file is written completely or the call fails with
 * PGD_ERR_IO naming the path. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pagoda/runner.h"
#include "util/json_text.h"

static json_t *hex(uint64_t x) {
    char b[20];
    snprintf(b, sizeof b, "%016llx", (unsigned long long)x);
    return json_string(b);
}

static json_t *extra_json(const pgd_run_config *rc, const pgd_run_result *res) {
    const pgd_experiment *e = pgd_run_experiment(rc);
    json_t *o = json_object(), *sw = json_object(), *eng = json_object(), *wl = json_object();
    json_object_set_new(o, "experiment", pgd_json_text(pgd_experiment_name(e)));
    json_object_set_new(o, "run", pgd_json_text(pgd_run_name(rc)));
    json_object_set_new(o, "config_file", pgd_json_text(pgd_experiment_path(e)));
    const char *desc = pgd_run_get_str(rc, "experiment", "description");
    if (*desc) json_object_set_new(o, "description", pgd_json_text(desc));
    for (int i = 0; i < pgd_experiment_num_swept(e); i++)
        json_object_set_new(sw, pgd_experiment_swept_key(e, i), pgd_json_text(pgd_run_swept_value(rc, i)));
    json_object_set_new(o, "swept", sw);
    if (pgd_run_num_warnings(rc) > 0) { /* config warnings (pgd_run_warning), e.g. priority without priorities */
        json_t *w = json_array();
        for (int i = 0; i < pgd_run_num_warnings(rc); i++) json_array_append_new(w, pgd_json_text(pgd_run_warning(rc, i)));
        json_object_set_new(o, "warnings", w);
    }
    const pgd_engine_stats *st = &res->stats;
    json_object_set_new(eng, "steps", json_integer(st->steps));
    json_object_set_new(eng, "tokens_computed", json_integer(st->tokens_computed));
    json_object_set_new(eng, "tokens_generated", json_integer(st->tokens_generated));
    json_object_set_new(eng, "preemptions", json_integer(st->preemptions));
    json_object_set_new(eng, "max_batch_seqs", json_integer(st->max_batch_seqs));
    json_object_set_new(eng, "max_batch_tokens", json_integer(st->max_batch_tokens));
    json_object_set_new(eng, "kv_num_blocks", json_integer(st->kv.num_blocks));
    json_object_set_new(eng, "block_size", json_integer(pgd_run_get_int(rc, "engine", "block_size")));
    json_object_set_new(eng, "prefix_queries", json_integer(st->kv.prefix_queries));
    json_object_set_new(eng, "prefix_hits", json_integer(st->kv.prefix_hits));
    json_object_set_new(o, "engine", eng);
    json_object_set_new(wl, "requests", json_integer(res->num_requests));
    json_object_set_new(wl, "rejected", json_integer(res->rejected));
    json_object_set_new(wl, "fingerprint", hex(res->workload_fingerprint));
    json_object_set_new(wl, "description", pgd_json_text(res->workload_desc));
    json_object_set_new(o, "workload", wl);
    json_object_set_new(o, "token_fingerprint", hex(res->token_fingerprint));
    json_object_set_new(o, "model", pgd_json_text(res->model_desc));
    json_object_set_new(o, "backend", pgd_json_text(res->backend_desc));
    json_object_set_new(o, "layout", pgd_json_text(res->layout_desc));
    if (res->num_stages > 0) { /* the sim's pipeline stages: busy share of the run */
        json_t *sb = json_array();
        for (int i = 0; i < res->num_stages; i++)
            json_array_append_new(sb, json_real(res->run_time > 0 ? res->stage_busy[i] / res->run_time : 0));
        json_object_set_new(o, "stage_busy", sb);
    }
    json_object_set_new(o, "wall_time_s", json_real(res->wall_time));
    return o;
}

static pgd_status path_of(char *buf, size_t n, const char *dir, const char *file) {
    if (snprintf(buf, n, "%s/%s", dir, file) >= (int)n) return pgd_error(PGD_ERR_INVALID, "path too long: %s", dir);
    return PGD_OK;
}

static void csv_row(FILE *f, const char *kind, const char *name, int64_t calls, double sec, double total) {
    fprintf(f, "%s,%s,", kind, name);
    if (calls >= 0) fprintf(f, "%lld", (long long)calls);
    fprintf(f, ",%.9g,", sec);
    if (total > 0) fprintf(f, "%.9g", sec / total);
    fputc('\n', f);
}

/* op_times.csv (format in runner.h). */
static pgd_status write_op_times(const pgd_run_result *res, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return pgd_error(PGD_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    const pgd_engine_stats *st = &res->stats;
    double total = res->run_time > 0 && isfinite(res->run_time) ? res->run_time : 0;
    fputs("kind,name,calls,seconds,share\n", f);
    for (int i = 0; i < res->num_op_times && i < PGD_BACKEND_NUM_OPS; i++)
        csv_row(f, "op", res->op_times[i].op, res->op_times[i].calls, res->op_times[i].seconds, total);
    double busy = st->schedule_seconds + st->forward_seconds + st->logits_seconds, idle = total - busy;
    csv_row(f, "step", "schedule", st->steps, st->schedule_seconds, total);
    csv_row(f, "step", "forward", st->forward_steps, st->forward_seconds, total);
    csv_row(f, "step", "logits", st->steps, st->logits_seconds, total);
    csv_row(f, "step", "idle", -1, idle > 0 ? idle : 0, total);
    for (int i = 0; i < res->num_stages && i < 64; i++) {
        char name[16];
        snprintf(name, sizeof name, "stage%d", i);
        csv_row(f, "stage", name, -1, res->stage_busy[i], total);
    }
    int err = ferror(f);
    if (fclose(f) != 0 || err) return pgd_error(PGD_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return PGD_OK;
}

pgd_status pgd_run_write_outputs(const pgd_run_config *rc, const pgd_run_result *res, const char *dir) {
    char path[4200];
    PGD_TRY(pgd_mkdir_p(dir));
    json_t *extra = extra_json(rc, res);
    if (!extra) return pgd_error(PGD_ERR_OOM, "runner: out of memory");
    pgd_status st = path_of(path, sizeof path, dir, "summary.json");
    if (st == PGD_OK) st = pgd_metrics_write_summary_json(&res->summary, extra, path);
    json_decref(extra);
    PGD_TRY(st);
    PGD_TRY(path_of(path, sizeof path, dir, "requests.csv"));
    PGD_TRY(pgd_metrics_write_requests_csv(res->metrics, path));
    PGD_TRY(path_of(path, sizeof path, dir, "timeline.csv"));
    PGD_TRY(pgd_metrics_write_timeline_csv(res->metrics, path));
    PGD_TRY(path_of(path, sizeof path, dir, "op_times.csv"));
    PGD_TRY(write_op_times(res, path));
    PGD_TRY(path_of(path, sizeof path, dir, "config.ini"));
    FILE *f = fopen(path, "w");
    if (!f) return pgd_error(PGD_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    st = pgd_run_write_ini(rc, f);
    if (fclose(f) != 0 && st == PGD_OK) st = pgd_error(PGD_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    PGD_TRY(st);
    PGD_TRY(path_of(path, sizeof path, dir, "env.json"));
    json_t *env = pgd_env_json(res->threads);
    if (!env) return pgd_error(PGD_ERR_OOM, "runner: out of memory");
    int rc2 = json_dump_file(env, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(env);
    if (rc2 != 0) return pgd_error(PGD_ERR_IO, "cannot write %s", path);
    return PGD_OK;
}
