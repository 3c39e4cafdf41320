/* runner_io.c - writes one run's results directory: summary.json (the
 * metrics summary plus run identity, swept values, engine counters and
 * fingerprints), requests.csv and timeline.csv (metrics writers),
 * op_times.csv (backend ops and engine step phases; runner.h),
 * config.ini (the resolved config) and env.json (pgd_env_json), then the
 * complete.json marker (results.h) listing them all.
 *
 * Invariant: every file is written to a temporary name and renamed, so it
 * is whole or absent; the marker is written last, only when all are whole;
 * a failure is PGD_ERR_IO naming the path. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pagoda/results.h"
#include "pagoda/runner.h"
#include "util/json_text.h"

static json_t *hex(uint64_t x) {
    char b[20];
    snprintf(b, sizeof b, "%016llx", (unsigned long long)x);
    return json_string(b);
}

/* A failure reason's kind: the message with each run of digits replaced by
 * N, so "prompt of 159 tokens" and "prompt of 173 tokens" count together. */
static void reason_kind(const char *why, char *buf, size_t n) {
    size_t k = 0;
    for (const char *p = why; *p && k + 1 < n; p++) {
        if (*p >= '0' && *p <= '9') {
            while (p[1] >= '0' && p[1] <= '9') p++;
            buf[k++] = 'N';
        } else {
            buf[k++] = *p;
        }
    }
    buf[k] = 0;
}

/* "failures": how many requests failed and why: the kinds of reasons
 * (reason_kind), most frequent first, at most 10 (the rest counted as
 * "other reasons"), each with its count and its first message. */
static json_t *failures_json(const pgd_run_result *res) {
    enum { MAXR = 10 };
    char kind[MAXR][256], k1[256];
    const char *example[MAXR];
    int64_t count[MAXR] = {0}, other = 0, failed = 0, aborted = 0;
    int nr = 0;
    int64_t n = res->metrics ? pgd_metrics_num_requests(res->metrics) : 0;
    for (int64_t i = 0; i < n; i++) {
        const pgd_request_record *r = pgd_metrics_request(res->metrics, i);
        if (!strcmp(r->finish_reason, "stop") || !strcmp(r->finish_reason, "length")) continue;
        failed++;
        aborted += !strcmp(r->finish_reason, "abort");
        const char *w = r->error ? r->error : r->finish_reason;
        reason_kind(w, k1, sizeof k1);
        int k = 0;
        while (k < nr && strcmp(kind[k], k1)) k++;
        if (k == nr && nr < MAXR) {
            snprintf(kind[nr], sizeof kind[nr], "%s", k1);
            example[nr++] = w;
        }
        if (k < nr) count[k]++;
        else other++;
    }
    json_t *o = json_object(), *rs = json_array();
    json_object_set_new(o, "failed", json_integer(failed));
    json_object_set_new(o, "rejected", json_integer(res->rejected));
    json_object_set_new(o, "aborted", json_integer(aborted));
    json_object_set_new(o, "failed_share", json_real(res->num_requests > 0 ? (double)failed / res->num_requests : 0));
    json_object_set_new(o, "max_failed_share", json_real(PGD_RUN_MAX_FAILED_SHARE));
    for (int done = 0; done < nr; done++) { /* most frequent first */
        int best = -1;
        for (int k = 0; k < nr; k++)
            if (count[k] >= 0 && (best < 0 || count[k] > count[best])) best = k;
        json_array_append_new(rs, json_pack("{s:s,s:I,s:s}", "reason", kind[best], "count", (json_int_t)count[best],
                                            "example", example[best]));
        count[best] = -1;
    }
    if (other) json_array_append_new(rs, json_pack("{s:s,s:I}", "reason", "other reasons", "count", (json_int_t)other));
    json_object_set_new(o, "reasons", rs);
    return o;
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
    /* JSON has no inf: a load with every request at once is null */
    json_object_set_new(wl, "offered_rate", isfinite(res->offered_rate) ? json_real(res->offered_rate) : json_null());
    json_object_set_new(wl, "achieved_rate", json_real(res->summary.request_throughput));
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
    json_object_set_new(o, "sweep_id", json_string(res->sweep_id));
    json_object_set_new(o, "config_hash", hex(pgd_run_config_hash(rc)));
    json_object_set_new(o, "failures", failures_json(res));
    json_t *turns = res->metrics ? pgd_metrics_turns_json(res->metrics) : NULL;
    if (turns) json_object_set_new(o, "turns", turns); /* multi-turn: per-turn prefix hits and latencies */
    if (res->cluster) json_object_set(o, "cluster", res->cluster); /* [cluster] replicas > 1: per replica */
    if (res->extra) json_object_update(o, res->extra);
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
    char tmp[4300];
    FILE *f;
    PGD_TRY(pgd_results_open(path, tmp, sizeof tmp, &f));
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
    return pgd_results_commit(f, tmp, path);
}

pgd_status pgd_run_write_outputs(const pgd_run_config *rc, const pgd_run_result *res, const char *dir) {
    const char *files[] = {
        "summary.json", "requests.csv", "timeline.csv", "op_times.csv", "config.ini", "env.json", NULL, NULL, NULL};
    int nfiles = 6;
    char path[4200], tmp[4300];
    PGD_TRY(pgd_mkdir_p(dir));
    /* an old marker must not vouch for the new files while they are written */
    PGD_TRY(path_of(path, sizeof path, dir, PGD_RESULTS_MARKER));
    if (unlink(path) != 0 && errno != ENOENT) return pgd_error(PGD_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
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
    FILE *f;
    PGD_TRY(pgd_results_open(path, tmp, sizeof tmp, &f));
    st = pgd_run_write_ini(rc, f);
    if (st != PGD_OK) {
        fclose(f);
        unlink(tmp);
        return st;
    }
    PGD_TRY(pgd_results_commit(f, tmp, path));
    PGD_TRY(path_of(path, sizeof path, dir, "env.json"));
    json_t *env = pgd_env_json(res->threads);
    if (!env) return pgd_error(PGD_ERR_OOM, "runner: out of memory");
    st = pgd_results_write_json(env, JSON_INDENT(2) | JSON_SORT_KEYS, path);
    json_decref(env);
    PGD_TRY(st);
    PGD_TRY(path_of(path, sizeof path, dir, "steps.jsonl"));
    if (res->steps_trace) { /* [experiment] trace_steps: the decision trace */
        PGD_TRY(pgd_results_open(path, tmp, sizeof tmp, &f));
        if (res->steps_trace_len) fwrite(res->steps_trace, 1, res->steps_trace_len, f);
        PGD_TRY(pgd_results_commit(f, tmp, path));
        files[nfiles++] = "steps.jsonl";
    } else if (unlink(path) != 0 && errno != ENOENT) { /* an older run's trace would not be this run's */
        return pgd_error(PGD_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    }
    PGD_TRY(path_of(path, sizeof path, dir, "kv_transfers.csv"));
    if (res->kv_transfers_csv) { /* [cluster] prefill/decode: the KV link's timeline */
        PGD_TRY(pgd_results_open(path, tmp, sizeof tmp, &f));
        if (res->kv_transfers_csv_len) fwrite(res->kv_transfers_csv, 1, res->kv_transfers_csv_len, f);
        PGD_TRY(pgd_results_commit(f, tmp, path));
        files[nfiles++] = "kv_transfers.csv";
    } else if (unlink(path) != 0 && errno != ENOENT) {
        return pgd_error(PGD_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    }
    return pgd_results_seal(dir, pgd_run_name(rc), res->sweep_id, files);
}

int pgd_run_failed(const pgd_run_config *rc, const pgd_run_result *res, char *msg, size_t n) {
    int64_t failed = res->summary.failed, total = res->summary.num_requests;
    if (msg && n) msg[0] = 0;
    if (failed <= 0) return 0;
    int bad = failed >= total || (double)failed > PGD_RUN_MAX_FAILED_SHARE * (double)total;
    const char *why = "";
    for (int64_t i = 0; res->metrics && i < pgd_metrics_num_requests(res->metrics) && !*why; i++) {
        const pgd_request_record *r = pgd_metrics_request(res->metrics, i);
        if (strcmp(r->finish_reason, "stop") && strcmp(r->finish_reason, "length"))
            why = r->error ? r->error : r->finish_reason;
    }
    if (msg && n)
        snprintf(msg, n, "run %s: %s%lld of %lld requests failed (%s %.0f%%); the first: %s (every reason: "
                 "summary.json \"failures\", requests.csv column error)", pgd_run_name(rc),
                 failed == total ? "all " : "", (long long)failed, (long long)total,
                 bad ? "a run fails above" : "within the", PGD_RUN_MAX_FAILED_SHARE * 100, why);
    return bad;
}
