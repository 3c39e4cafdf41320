/* compare.c - regression verdicts between two summaries: flatten both
 * JSON objects to dotted metric names, classify each metric (compare.h),
 * compute the change and judge it against the class's threshold.
 *
 * Invariants: a metric is judged only when both sides have it with the
 * same kind (number or string); a judged metric that the current side
 * lacks is a MISSING row (report->missing), never skipped; rows keep
 * baseline order; report->regressions counts rows whose verdict is
 * "REGRESSION". */
#include <fnmatch.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/compare.h"
#include "util/json_text.h"

void pgd_compare_thresholds_default(pgd_compare_thresholds *t) {
    memset(t, 0, sizeof *t);
    t->throughput_pct = 5;
    t->latency_pct = 10;
    t->counts_pct = 10;
}

static int in_list(const char *name, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(name, *list)) return 1;
    return 0;
}

pgd_cmp_class pgd_compare_classify(const char *m) {
    static const char *const lat[] = {"ttft.", "tpot.", "itl.", "e2e.", "normalized_latency.", "queue_delay.", NULL};
    static const char *const lat_stats[] = {"mean", "median", "p90", "p99", NULL};
    static const char *const lower[] = {"preemptions", "swaps", "failed", "engine.steps", "engine.preemptions",
                                        "engine.tokens_computed", "workload.rejected", NULL};
    static const char *const higher[] = {"completed", "good_requests", "batch.mean_seqs", "batch.mean_tokens",
                                         "kv.mean_utilization", "prefix_hit_rate", "engine.prefix_hits", NULL};
    static const char *const equal[] = {"total_input_tokens", "total_output_tokens", "engine.tokens_generated",
                                        "workload.requests", "num_requests", "engine.kv_num_blocks",
                                        "engine.block_size", NULL};
    size_t n = strlen(m);
    if (n >= 11 && !strcmp(m + n - 11, "fingerprint")) return PGD_CMP_EQUAL;
    for (int i = 0; lat[i]; i++) {
        size_t k = strlen(lat[i]);
        if (!strncmp(m, lat[i], k)) return in_list(m + k, lat_stats) ? PGD_CMP_LATENCY : PGD_CMP_INFO;
    }
    if ((n >= 10 && !strcmp(m + n - 10, "throughput")) || !strcmp(m, "goodput")) return PGD_CMP_THROUGHPUT;
    if (in_list(m, lower)) return PGD_CMP_COUNT_LOWER;
    if (in_list(m, higher)) return PGD_CMP_COUNT_HIGHER;
    if (in_list(m, equal)) return PGD_CMP_EQUAL;
    return PGD_CMP_INFO;
}

const char *pgd_cmp_class_name(pgd_cmp_class c) {
    switch (c) {
    case PGD_CMP_THROUGHPUT: return "throughput";
    case PGD_CMP_LATENCY: return "latency";
    case PGD_CMP_COUNT_LOWER: return "lower-better";
    case PGD_CMP_COUNT_HIGHER: return "higher-better";
    case PGD_CMP_EQUAL: return "equal";
    case PGD_CMP_INFO: break;
    }
    return "info";
}

static int selected(const pgd_compare_thresholds *t, const char *metric) {
    if (!t->metrics[0]) return 1;
    char list[sizeof t->metrics];
    memcpy(list, t->metrics, sizeof list);
    for (char *save = NULL, *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
        if (!strcmp(tok, metric) || fnmatch(tok, metric, 0) == 0) return 1;
    return 0;
}

static pgd_compare_row *new_row(pgd_compare_report *rep) {
    if (rep->n == rep->cap) {
        int cap = rep->cap ? 2 * rep->cap : 64;
        pgd_compare_row *r = realloc(rep->rows, sizeof *r * (size_t)cap);
        if (!r) return NULL;
        rep->rows = r;
        rep->cap = cap;
    }
    pgd_compare_row *r = &rep->rows[rep->n++];
    memset(r, 0, sizeof *r);
    return r;
}

static void judge(pgd_compare_row *r, const pgd_compare_thresholds *t) {
    r->verdict = "info";
    if (r->is_string) {
        r->change_pct = strcmp(r->sbase, r->scur) ? NAN : 0;
        if (r->cls == PGD_CMP_EQUAL) r->verdict = isnan(r->change_pct) ? "REGRESSION" : "ok";
        return;
    }
    double b = r->base, c = r->cur;
    if (b == c) r->change_pct = 0;
    else if (b == 0) r->change_pct = c > 0 ? INFINITY : -INFINITY;
    else r->change_pct = (c - b) / fabs(b) * 100.0;
    double ch = r->change_pct;
    switch (r->cls) {
    case PGD_CMP_INFO: return;
    case PGD_CMP_EQUAL:
        r->limit_pct = 0;
        r->verdict = fabs(c - b) <= 1e-9 * fmax(fabs(b), 1.0) ? "ok" : "REGRESSION";
        return;
    case PGD_CMP_THROUGHPUT: r->limit_pct = -t->throughput_pct; break;
    case PGD_CMP_COUNT_HIGHER: r->limit_pct = -t->counts_pct; break;
    case PGD_CMP_LATENCY: r->limit_pct = t->latency_pct; break;
    case PGD_CMP_COUNT_LOWER: r->limit_pct = t->counts_pct; break;
    }
    int higher_better = r->cls == PGD_CMP_THROUGHPUT || r->cls == PGD_CMP_COUNT_HIGHER;
    if (higher_better) r->verdict = ch < r->limit_pct ? "REGRESSION" : ch > 0 ? "better" : "ok";
    else r->verdict = ch > r->limit_pct ? "REGRESSION" : ch < 0 ? "better" : "ok";
}

static pgd_status walk(const json_t *base, const json_t *cur, const char *prefix, const char *run,
                       const pgd_compare_thresholds *t, pgd_compare_report *rep) {
    const char *key;
    json_t *bv;
    json_object_foreach((json_t *)base, key, bv) {
        char name[96];
        snprintf(name, sizeof name, "%s%s", prefix, key);
        json_t *cv = json_object_get(cur, key); /* NULL when cur is not an object */
        if (json_is_object(bv)) {
            char sub[100];
            snprintf(sub, sizeof sub, "%s.", name);
            PGD_TRY(walk(bv, json_is_object(cv) ? cv : NULL, sub, run, t, rep));
            continue;
        }
        int bnum = json_is_number(bv), bstr = json_is_string(bv);
        if (!(bnum || bstr) || !selected(t, name)) continue;
        pgd_cmp_class cls = pgd_compare_classify(name);
        if (bstr && cls != PGD_CMP_EQUAL) continue; /* names, descriptions */
        int absent = !cv || (bnum && !json_is_number(cv)) || (bstr && !json_is_string(cv));
        if (absent && cls == PGD_CMP_INFO) continue;
        pgd_compare_row *r = new_row(rep);
        if (!r) return pgd_error(PGD_ERR_OOM, "compare: out of memory");
        snprintf(r->run, sizeof r->run, "%s", run);
        snprintf(r->metric, sizeof r->metric, "%s", name);
        r->cls = cls;
        r->is_string = bstr;
        if (absent) { /* a judged metric the current results lack: a failure, not a skip */
            r->verdict = "MISSING";
            r->change_pct = NAN;
            if (bstr) snprintf(r->sbase, sizeof r->sbase, "%s", json_string_value(bv));
            else r->base = json_number_value(bv);
            snprintf(r->note, sizeof r->note, "metric %s is missing from the current results%s%s", name,
                     run && *run ? " of run " : "", run ? run : "");
            rep->missing++;
            continue;
        }
        if (bstr) {
            snprintf(r->sbase, sizeof r->sbase, "%s", json_string_value(bv));
            snprintf(r->scur, sizeof r->scur, "%s", json_string_value(cv));
        } else {
            r->base = json_number_value(bv);
            r->cur = json_number_value(cv);
        }
        judge(r, t);
        if (r->cls != PGD_CMP_INFO) rep->compared++;
        if (!strcmp(r->verdict, "REGRESSION")) rep->regressions++;
    }
    return PGD_OK;
}

pgd_status pgd_compare_json(const json_t *base, const json_t *cur, const char *run, const pgd_compare_thresholds *t,
                            pgd_compare_report *rep) {
    if (!json_is_object(base) || !json_is_object(cur))
        return pgd_error(PGD_ERR_FORMAT, "compare: summaries must be JSON objects");
    rep->runs++;
    return walk(base, cur, "", run ? run : "", t, rep);
}

void pgd_compare_report_free(pgd_compare_report *rep) {
    free(rep->rows);
    memset(rep, 0, sizeof *rep);
}

static void fmt_num(char *buf, size_t n, double v) {
    if (v != 0 && (fabs(v) >= 1e6 || fabs(v) < 1e-3)) snprintf(buf, n, "%.4g", v);
    else snprintf(buf, n, "%.4f", v);
}

void pgd_compare_print(const pgd_compare_report *rep, int all, FILE *f) {
    int w = 3;
    for (int i = 0; i < rep->n; i++)
        if ((int)strlen(rep->rows[i].run) > w) w = (int)strlen(rep->rows[i].run);
    fprintf(f, "%-*s %-28s %14s %14s %9s %7s  %s\n", w, "run", "metric", "baseline", "current", "change", "limit",
            "verdict");
    for (int i = 0; i < rep->n; i++) {
        const pgd_compare_row *r = &rep->rows[i];
        if (!all && r->cls == PGD_CMP_INFO) continue;
        char b[40], c[40], ch[16], lim[16];
        if (r->note[0] && strcmp(r->verdict, "MISSING")) { /* a whole run: incomplete, stale or missing */
            fprintf(f, "%-*s %-28.28s %14s %14s %9s %7s  %s\n", w, r->run[0] ? r->run : "-", "(run)", "-", "-", "-",
                    "-", r->verdict);
            continue;
        }
        if (!strcmp(r->verdict, "MISSING")) {
            if (r->is_string) snprintf(b, sizeof b, "%.14s", r->sbase);
            else fmt_num(b, sizeof b, r->base);
            fprintf(f, "%-*s %-28.28s %14s %14s %9s %7s  %s\n", w, r->run[0] ? r->run : "-", r->metric, b, "(none)",
                    "-", "-", r->verdict);
            continue;
        }
        if (r->is_string) {
            snprintf(b, sizeof b, "%.14s", r->sbase);
            snprintf(c, sizeof c, "%.14s", r->scur);
            snprintf(ch, sizeof ch, "%s", isnan(r->change_pct) ? "differs" : "same");
        } else {
            fmt_num(b, sizeof b, r->base);
            fmt_num(c, sizeof c, r->cur);
            if (isinf(r->change_pct)) snprintf(ch, sizeof ch, "%s", r->change_pct > 0 ? "+inf%" : "-inf%");
            else snprintf(ch, sizeof ch, "%+.1f%%", r->change_pct);
        }
        if (r->cls == PGD_CMP_INFO) snprintf(lim, sizeof lim, "-");
        else if (r->cls == PGD_CMP_EQUAL) snprintf(lim, sizeof lim, "=");
        else if (r->limit_pct == 0) snprintf(lim, sizeof lim, "0%%");
        else snprintf(lim, sizeof lim, "%+.0f%%", r->limit_pct);
        fprintf(f, "%-*s %-28.28s %14s %14s %9s %7s  %s\n", w, r->run[0] ? r->run : "-", r->metric, b, c, ch, lim,
                r->verdict);
    }
    fprintf(f, "%d run%s, %d metrics compared: %d regression%s", rep->runs, rep->runs == 1 ? "" : "s", rep->compared,
            rep->regressions, rep->regressions == 1 ? "" : "s");
    if (rep->missing) fprintf(f, ", %d missing, incomplete or stale", rep->missing);
    fputc('\n', f);
    for (int i = 0; i < rep->n; i++)
        if (rep->rows[i].note[0]) fprintf(f, "  %s: %s\n", rep->rows[i].verdict, rep->rows[i].note);
}

json_t *pgd_compare_report_json(const pgd_compare_report *rep, const pgd_compare_thresholds *t, const char *base,
                                const char *cur) {
    json_t *o = json_object(), *rows = json_array(), *th = json_object();
    json_object_set_new(o, "baseline", pgd_json_text(base));
    json_object_set_new(o, "current", pgd_json_text(cur));
    json_object_set_new(th, "throughput_pct", json_real(t->throughput_pct));
    json_object_set_new(th, "latency_pct", json_real(t->latency_pct));
    json_object_set_new(th, "counts_pct", json_real(t->counts_pct));
    json_object_set_new(th, "metrics", json_string(t->metrics));
    json_object_set_new(o, "thresholds", th);
    json_object_set_new(o, "runs", json_integer(rep->runs));
    json_object_set_new(o, "compared", json_integer(rep->compared));
    json_object_set_new(o, "regressions", json_integer(rep->regressions));
    json_object_set_new(o, "missing", json_integer(rep->missing));
    json_object_set_new(o, "verdict", json_string(rep->missing ? "missing" : rep->regressions ? "regression" : "ok"));
    for (int i = 0; i < rep->n; i++) {
        const pgd_compare_row *r = &rep->rows[i];
        json_t *j = json_object();
        json_object_set_new(j, "run", pgd_json_text(r->run));
        json_object_set_new(j, "metric", pgd_json_text(r->metric));
        json_object_set_new(j, "class", json_string(pgd_cmp_class_name(r->cls)));
        int problem = r->note[0] != 0;
        if (problem) { /* nothing to show for the current side */
            json_object_set_new(j, "baseline", r->is_string ? pgd_json_text(r->sbase) : json_real(r->base));
            json_object_set_new(j, "current", json_null());
        } else if (r->is_string) {
            json_object_set_new(j, "baseline", pgd_json_text(r->sbase));
            json_object_set_new(j, "current", pgd_json_text(r->scur));
        } else {
            json_object_set_new(j, "baseline", json_real(r->base));
            json_object_set_new(j, "current", json_real(r->cur));
            /* JSON has no inf/nan: null for an undefined change */
            json_object_set_new(j, "change_pct", isfinite(r->change_pct) ? json_real(r->change_pct) : json_null());
        }
        if (r->cls != PGD_CMP_INFO) json_object_set_new(j, "limit_pct", json_real(r->limit_pct));
        json_object_set_new(j, "verdict", json_string(r->verdict));
        if (r->note[0]) json_object_set_new(j, "note", json_string(r->note));
        json_array_append_new(rows, j);
    }
    json_object_set_new(o, "metrics", rows);
    return o;
}
