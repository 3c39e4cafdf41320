/* runs_csv.c - the per-experiment table runs.csv: one row per run with its
 * swept values and headline metrics, for scripts and `pagoda plot`.
 *
 * Invariant: every row has 1 + n_swept + n_metrics fields; values never
 * contain commas (swept values are checked words/numbers; a value with a
 * comma or quote is written in double quotes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/results.h"
#include "pagoda/runner.h"

static const char *const columns[] = {
    "completed", "failed", "duration_s", "request_throughput", "output_throughput", "total_token_throughput",
    "goodput", "ttft_mean", "ttft_median", "ttft_p99", "tpot_mean", "tpot_median", "tpot_p99", "itl_mean", "itl_p99",
    "e2e_mean", "e2e_p99", "norm_latency_mean", "norm_latency_p99", "queue_delay_mean", "preemptions", "steps",
    "mean_batch_seqs", "mean_batch_tokens", "mean_kv_usage", "max_kv_usage", "mean_kv_utilization",
    "prefix_hit_rate", "kv_sharing_saving", "wall_time_s", "sweep_id",
    /* added after sweep_id (readers look columns up by name): the load and
     * the latency percentiles of issue 19 */
    "offered_rate", "achieved_rate", "ttft_p50", "ttft_p90", "ttft_p95", "tpot_p50", "tpot_p90", "tpot_p95",
    "itl_p50", "itl_p90", "itl_p95", "e2e_p50", "e2e_p90", "e2e_p95", "norm_latency_p50", "norm_latency_p90",
    "norm_latency_p95", NULL};

const char *const *pgd_runs_csv_columns(void) { return columns; }

struct pgd_runs_csv {
    const pgd_experiment *e;
    char **rows;
    int *index; /* run index of each row (rows are written in run order) */
    int n, cap;
};

pgd_status pgd_runs_csv_create(const pgd_experiment *e, pgd_runs_csv **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return pgd_error(PGD_ERR_OOM, "runs.csv: out of memory");
    (*out)->e = e;
    return PGD_OK;
}

void pgd_runs_csv_destroy(pgd_runs_csv *t) {
    if (!t) return;
    for (int i = 0; i < t->n; i++) free(t->rows[i]);
    free(t->rows);
    free(t->index);
    free(t);
}

/* Column name of sweep key i: the key, or section_key if ambiguous. */
static void swept_name(const pgd_experiment *e, int i, char *buf, size_t n) {
    const char *full = pgd_experiment_swept_key(e, i), *key = strchr(full, '.') + 1;
    int clash = 0;
    for (int j = 0; j < pgd_experiment_num_swept(e); j++)
        if (j != i && !strcmp(strchr(pgd_experiment_swept_key(e, j), '.') + 1, key)) clash = 1;
    snprintf(buf, n, "%s", clash ? full : key);
    if (clash) *strchr(buf, '.') = '_';
}

static pgd_status put_row(pgd_runs_csv *t, int index, const char *row);
/* runs_csv_clients.c: the client and SLO-class columns, after sweep_id */
const char *const *pgd_runs_csv_client_columns(void);
void pgd_runs_csv_client_values(const pgd_run_result *res, char **p, size_t *left);
/* runs_csv_cluster.c: the cluster columns, last */
const char *const *pgd_runs_csv_cluster_columns(void);
void pgd_runs_csv_cluster_values(const pgd_run_result *res, char **p, size_t *left);

static void put(char **p, size_t *left, const char *fmt, double v) {
    int k = snprintf(*p, *left, fmt, v);
    if (k < 0 || (size_t)k >= *left) k = (int)*left - 1;
    *p += k;
    *left -= (size_t)k;
}

pgd_status pgd_runs_csv_add(pgd_runs_csv *t, const pgd_run_config *rc, const pgd_run_result *res) {
    char row[4096], *p = row;
    size_t left = sizeof row;
    int k = snprintf(p, left, "%s", pgd_run_name(rc));
    p += k, left -= (size_t)k;
    for (int i = 0; i < pgd_experiment_num_swept(t->e); i++) {
        const char *v = pgd_run_swept_value(rc, i);
        int quote = strpbrk(v, ",\"") != NULL;
        k = snprintf(p, left, quote ? ",\"%s\"" : ",%s", v);
        if (k < 0 || (size_t)k >= left) return pgd_error(PGD_ERR_INVALID, "runs.csv: row too long");
        p += k, left -= (size_t)k;
    }
    const pgd_metrics_summary *s = &res->summary;
    const double vals[] = {(double)s->completed, (double)s->failed, s->duration, s->request_throughput,
                           s->output_throughput, s->total_token_throughput, s->goodput, s->ttft.mean, s->ttft.median,
                           s->ttft.p99, s->tpot.mean, s->tpot.median, s->tpot.p99, s->itl.mean, s->itl.p99, s->e2e.mean,
                           s->e2e.p99, s->norm_latency.mean, s->norm_latency.p99, s->queue_delay.mean,
                           (double)res->stats.preemptions, (double)res->stats.steps, s->mean_batch_seqs,
                           s->mean_batch_tokens, s->mean_kv_usage, s->max_kv_usage, s->mean_kv_utilization,
                           s->prefix_hit_rate, s->mean_kv_sharing_saving, res->wall_time};
    const double more[] = {res->offered_rate, s->request_throughput, s->ttft.median, s->ttft.p90, s->ttft.p95,
                           s->tpot.median, s->tpot.p90, s->tpot.p95, s->itl.median, s->itl.p90, s->itl.p95,
                           s->e2e.median, s->e2e.p90, s->e2e.p95, s->norm_latency.median, s->norm_latency.p90,
                           s->norm_latency.p95};
    _Static_assert(sizeof vals / sizeof vals[0] + 1 + sizeof more / sizeof more[0] ==
                       sizeof columns / sizeof columns[0] - 1,
                   "one value per column: vals, sweep_id, more");
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) put(&p, &left, ",%.9g", vals[i]);
    k = snprintf(p, left, ",%s", res->sweep_id);
    if (k < 0 || (size_t)k >= left) return pgd_error(PGD_ERR_INVALID, "runs.csv: row too long");
    p += k, left -= (size_t)k;
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) put(&p, &left, ",%.9g", more[i]);
    if (left <= 1) return pgd_error(PGD_ERR_INVALID, "runs.csv: row too long");
    pgd_runs_csv_client_values(res, &p, &left); /* runs_csv_clients.c, after sweep_id */
    pgd_runs_csv_cluster_values(res, &p, &left); /* runs_csv_cluster.c, last */
    return put_row(t, pgd_run_index(rc), row);
}

/* Insert or replace the row of run `index`, keeping rows in run order. */
static pgd_status put_row(pgd_runs_csv *t, int index, const char *row) {
    char *copy = strdup(row);
    if (!copy) return pgd_error(PGD_ERR_OOM, "runs.csv: out of memory");
    int at = 0;
    while (at < t->n && t->index[at] < index) at++;
    if (at < t->n && t->index[at] == index) {
        free(t->rows[at]);
        t->rows[at] = copy;
        return PGD_OK;
    }
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        char **r = realloc(t->rows, sizeof *r * (size_t)cap);
        if (r) t->rows = r;
        int *ix = r ? realloc(t->index, sizeof *ix * (size_t)cap) : NULL;
        if (!ix) {
            free(copy);
            return pgd_error(PGD_ERR_OOM, "runs.csv: out of memory");
        }
        t->index = ix;
        t->cap = cap;
    }
    memmove(t->rows + at + 1, t->rows + at, sizeof *t->rows * (size_t)(t->n - at));
    memmove(t->index + at + 1, t->index + at, sizeof *t->index * (size_t)(t->n - at));
    t->rows[at] = copy;
    t->index[at] = index;
    t->n++;
    return PGD_OK;
}

static void write_header(const pgd_runs_csv *t, FILE *f) {
    fputs("run", f);
    for (int i = 0; i < pgd_experiment_num_swept(t->e); i++) {
        char name[128];
        swept_name(t->e, i, name, sizeof name);
        fprintf(f, ",%s", name);
    }
    for (int i = 0; columns[i]; i++) fprintf(f, ",%s", columns[i]);
    for (const char *const *c = pgd_runs_csv_client_columns(); *c; c++) fprintf(f, ",%s", *c);
    for (const char *const *c = pgd_runs_csv_cluster_columns(); *c; c++) fprintf(f, ",%s", *c);
    fputc('\n', f);
}

pgd_status pgd_runs_csv_merge(pgd_runs_csv *t, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return PGD_OK; /* nothing to keep */
    char *hdr = NULL, *line = NULL;
    size_t hcap = 0, cap = 0, len = 0;
    FILE *mf = open_memstream(&hdr, &len);
    if (!mf) {
        fclose(f);
        return pgd_error(PGD_ERR_OOM, "runs.csv: out of memory");
    }
    write_header(t, mf);
    fclose(mf);
    pgd_status st = PGD_OK;
    ssize_t n = getline(&line, &cap, f);
    (void)hcap;
    if (n > 0 && !strcmp(line, hdr)) { /* same columns: keep the rows of known runs */
        while (st == PGD_OK && (n = getline(&line, &cap, f)) > 0) {
            line[strcspn(line, "\r\n")] = 0;
            size_t name_len = strcspn(line, ",");
            for (int i = 0; i < pgd_experiment_num_runs(t->e); i++) {
                const char *name = pgd_run_name(pgd_experiment_run(t->e, i));
                if (strlen(name) == name_len && !strncmp(name, line, name_len)) {
                    st = put_row(t, i, line);
                    break;
                }
            }
        }
    }
    free(line);
    free(hdr);
    fclose(f);
    return st;
}

pgd_status pgd_runs_csv_write(const pgd_runs_csv *t, const char *path) {
    char tmp[4300];
    FILE *f;
    PGD_TRY(pgd_results_open(path, tmp, sizeof tmp, &f));
    write_header(t, f);
    for (int i = 0; i < t->n; i++) fprintf(f, "%s\n", t->rows[i]);
    return pgd_results_commit(f, tmp, path);
}

void pgd_runs_csv_remove(pgd_runs_csv *t, int index) {
    for (int at = 0; at < t->n; at++)
        if (t->index[at] == index) {
            free(t->rows[at]);
            memmove(t->rows + at, t->rows + at + 1, sizeof *t->rows * (size_t)(t->n - at - 1));
            memmove(t->index + at, t->index + at + 1, sizeof *t->index * (size_t)(t->n - at - 1));
            t->n--;
            return;
        }
}
