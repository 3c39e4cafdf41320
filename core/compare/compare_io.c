/* compare_io.c - inputs of `pagoda compare`: thresholds from the
 * [compare] section of an INI file, and pairing of two paths (summary.json
 * files, run directories, experiment directories) into summary pairs.
 *
 * Invariants: experiment directories pair runs by directory name; a run
 * directory is read only when complete (results.h); a baseline run that
 * is missing, incomplete or stale in the current results, an incomplete
 * baseline run, and an incomplete run only in the current results are
 * problem rows naming the directory (compare.h); complete runs only in the
 * current results are ignored. */
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <ini.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pagoda/compare.h"
#include "pagoda/config.h"
#include "pagoda/results.h"

typedef struct th_state {
    const char *path;
    pgd_compare_thresholds *t;
    int line, failed, metrics_set;
    FILE *f;
} th_state;

/* One physical line per call (a longer line is cut, not split). */
static char *th_reader(char *str, int num, void *stream) {
    th_state *s = stream;
    int c, n = 0;
    while ((c = fgetc(s->f)) != EOF) {
        if (n < num - 2) str[n++] = (char)c;
        if (c == '\n') break;
    }
    if (c == EOF && n == 0) return NULL;
    str[n] = 0;
    s->line++;
    return str;
}

static int th_handler(void *user, const char *section, const char *name, const char *value) {
    th_state *s = user;
    if (s->failed || strcmp(section, "compare")) return 1;
    const pgd_cfg_key *k = pgd_config_find_key("compare", name);
    if (!k) {
        pgd_error(PGD_ERR_INVALID, "%s:%d: [compare] %s = '%s': unknown key (keys of [compare]: throughput, latency, "
                  "counts, metrics)", s->path, s->line, name, value);
        return s->failed = 1, 0;
    }
    if (pgd_config_check_value(k, value) != PGD_OK) {
        pgd_error(PGD_ERR_INVALID, "%s:%d: [compare] %s = '%s': %s", s->path, s->line, name, value, pgd_last_error());
        return s->failed = 1, 0;
    }
    if (!strcmp(name, "throughput")) s->t->throughput_pct = strtod(value, NULL);
    else if (!strcmp(name, "latency")) s->t->latency_pct = strtod(value, NULL);
    else if (!strcmp(name, "counts")) s->t->counts_pct = strtod(value, NULL);
    else if (s->metrics_set) { /* continuation line of the list */
        size_t len = strlen(s->t->metrics);
        snprintf(s->t->metrics + len, sizeof s->t->metrics - len, ",%s", value);
    } else {
        snprintf(s->t->metrics, sizeof s->t->metrics, "%s", value);
        s->metrics_set = 1;
    }
    return 1;
}

pgd_status pgd_compare_thresholds_load(const char *path, pgd_compare_thresholds *t) {
    th_state s = {.path = path, .t = t};
    if (!(s.f = fopen(path, "r"))) return pgd_error(PGD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int rc = ini_parse_stream(th_reader, &s, th_handler, &s);
    fclose(s.f);
    if (s.failed) return PGD_ERR_INVALID;
    if (rc != 0) return pgd_error(PGD_ERR_INVALID, "%s:%d: syntax error (expected [section] or key = value)", path, rc);
    return PGD_OK;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static pgd_status load_json(const char *path, json_t **out) {
    json_error_t err;
    if (!is_file(path)) return pgd_error(PGD_ERR_IO, "%s: no such file", path);
    *out = json_load_file(path, 0, &err);
    if (!*out) return pgd_error(PGD_ERR_FORMAT, "%s:%d: not valid JSON: %s", path, err.line, err.text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        return pgd_error(PGD_ERR_FORMAT, "%s: expected a JSON object (a summary.json)", path);
    }
    return PGD_OK;
}

/* A problem row (compare.h): MISSING, INCOMPLETE or STALE for a whole run. */
static pgd_status problem(pgd_compare_report *rep, const char *run, const char *verdict, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static pgd_status problem(pgd_compare_report *rep, const char *run, const char *verdict, const char *fmt, ...) {
    pgd_compare_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.run, sizeof r.run, "%s", run);
    snprintf(r.metric, sizeof r.metric, "(run)");
    r.verdict = verdict;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.note, sizeof r.note, fmt, ap);
    va_end(ap);
    if (rep->n == rep->cap) {
        int cap = rep->cap ? 2 * rep->cap : 64;
        pgd_compare_row *rows = realloc(rep->rows, sizeof *rows * (size_t)cap);
        if (!rows) return pgd_error(PGD_ERR_OOM, "compare: out of memory");
        rep->rows = rows;
        rep->cap = cap;
    }
    rep->rows[rep->n++] = r;
    rep->missing++;
    return PGD_OK;
}

static const char *const NEED[] = {"summary.json", NULL};

/* 1: an experiment directory (runs.csv or a visible subdirectory, or a
 * .partial run); 0: one run (any other file); -1: empty, either. */
static int is_experiment(const char *p) {
    char buf[4200];
    snprintf(buf, sizeof buf, "%s/runs.csv", p);
    if (is_file(buf)) return 1;
    DIR *d = opendir(p);
    int kind = -1;
    for (struct dirent *de; d && kind != 1 && (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(buf, sizeof buf, "%s/%s", p, de->d_name);
        if (de->d_name[0] == '.') {
            if (strstr(de->d_name, PGD_RESULTS_PARTIAL_SUFFIX) && is_dir(buf)) kind = 1;
        } else if (is_dir(buf)) {
            kind = 1;
        } else {
            kind = 0;
        }
    }
    if (d) closedir(d);
    return kind;
}

/* Run names of an experiment directory: visible subdirectories (not plots/),
 * and runs whose writing was cut short (.<run>.partial), flagged. */
typedef struct run_list {
    char **names;
    int *partial;
    int n;
} run_list;

static void run_list_free(run_list *l) {
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    free(l->partial);
    memset(l, 0, sizeof *l);
}

static int run_find(const run_list *l, const char *name, int partial) {
    for (int i = 0; i < l->n; i++)
        if (l->partial[i] == partial && !strcmp(l->names[i], name)) return i;
    return -1;
}

static int cmp_run(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static pgd_status list_runs(const char *dir, run_list *l) {
    memset(l, 0, sizeof *l);
    DIR *d = opendir(dir);
    if (!d) return pgd_error(PGD_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    char buf[4200];
    size_t sl = strlen(PGD_RESULTS_PARTIAL_SUFFIX);
    pgd_status st = PGD_OK;
    for (struct dirent *de; (de = readdir(d));) {
        const char *nm = de->d_name;
        size_t len = strlen(nm);
        int partial = nm[0] == '.' && len > 1 + sl && !strcmp(nm + len - sl, PGD_RESULTS_PARTIAL_SUFFIX);
        snprintf(buf, sizeof buf, "%s/%s", dir, nm);
        if ((nm[0] == '.' && !partial) || !strcmp(nm, "plots") || !is_dir(buf)) continue;
        char **nn = realloc(l->names, sizeof *nn * (size_t)(l->n + 1));
        if (nn) l->names = nn;
        int *pp = nn ? realloc(l->partial, sizeof *pp * (size_t)(l->n + 1)) : NULL;
        if (pp) l->partial = pp;
        char *copy = pp ? (partial ? strndup(nm + 1, len - 1 - sl) : strdup(nm)) : NULL;
        if (!copy) {
            st = pgd_error(PGD_ERR_OOM, "compare: out of memory");
            break;
        }
        l->names[l->n] = copy;
        l->partial[l->n++] = partial;
    }
    closedir(d);
    /* sort names (keeping each name's flag) */
    for (int i = 1; st == PGD_OK && i < l->n; i++)
        for (int j = i; j > 0 && cmp_run(&l->names[j - 1], &l->names[j]) > 0; j--) {
            char *t = l->names[j];
            l->names[j] = l->names[j - 1];
            l->names[j - 1] = t;
            int f = l->partial[j];
            l->partial[j] = l->partial[j - 1];
            l->partial[j - 1] = f;
        }
    return st;
}

/* Check run `name` of experiment directory `exp` (side: "baseline" or
 * "current"): 1 when complete (sid gets its sweep id), else 0 after adding
 * a problem row. */
static int run_ok(const char *exp, const run_list *l, const char *name, const char *side, char *sid, size_t n,
                  pgd_compare_report *rep, pgd_status *st) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", exp, name);
    if (run_find(l, name, 1) >= 0) {
        *st = problem(rep, name, "INCOMPLETE", "%s run %s was interrupted while being written (%s/.%s%s); re-run it",
                      side, dir, exp, name, PGD_RESULTS_PARTIAL_SUFFIX);
        return 0;
    }
    if (run_find(l, name, 0) < 0) {
        *st = problem(rep, name, "MISSING", "%s: run '%s' of the baseline is missing", exp, name);
        return 0;
    }
    if (pgd_results_check_run(dir, NEED, sid, n) != PGD_OK) {
        *st = problem(rep, name, "INCOMPLETE", "%s: %s", side, pgd_last_error());
        return 0;
    }
    return 1;
}

static pgd_status compare_files(const char *bf, const char *cf, const char *run, const pgd_compare_thresholds *t,
                                pgd_compare_report *rep) {
    json_t *b = NULL, *c = NULL;
    pgd_status st = load_json(bf, &b);
    if (st == PGD_OK) st = load_json(cf, &c);
    if (st == PGD_OK) st = pgd_compare_json(b, c, run, t, rep);
    json_decref(b);
    json_decref(c);
    return st;
}

/* One run directory (or summary file) of either side: 1 when readable. */
static int single_ok(const char *p, const char *side, char *file, size_t n, pgd_compare_report *rep,
                     pgd_status *st) {
    if (is_file(p)) return snprintf(file, n, "%s", p) < (int)n;
    if (pgd_results_check_run(p, NEED, NULL, 0) != PGD_OK) {
        const char *slash = strrchr(p, '/');
        *st = problem(rep, slash && slash[1] ? slash + 1 : p, "INCOMPLETE", "%s: %s", side, pgd_last_error());
        return 0;
    }
    snprintf(file, n, "%s/summary.json", p);
    return 1;
}

pgd_status pgd_compare_paths(const char *base, const char *cur, const pgd_compare_thresholds *t,
                             pgd_compare_report *rep) {
    char bf[4200], cf[4200], bsid[80], csid[80], rsid[80];
    if (!is_file(base) && !is_dir(base)) return pgd_error(PGD_ERR_IO, "%s: no such file or directory", base);
    if (!is_file(cur) && !is_dir(cur)) return pgd_error(PGD_ERR_IO, "%s: no such file or directory", cur);
    int be = is_dir(base) ? is_experiment(base) : 0, ce = is_dir(cur) ? is_experiment(cur) : 0;
    if (be < 0) be = ce > 0; /* an empty directory is what the other side is */
    if (ce < 0) ce = be > 0;
    if (be != ce)
        return pgd_error(PGD_ERR_INVALID, "cannot compare a single run (%s) with an experiment directory (%s)",
                         be ? cur : base, be ? base : cur);
    pgd_status st = PGD_OK;
    if (!be) {
        int ok = single_ok(base, "baseline", bf, sizeof bf, rep, &st);
        if (st == PGD_OK) ok &= single_ok(cur, "current", cf, sizeof cf, rep, &st);
        if (st != PGD_OK || !ok) return st;
        return compare_files(bf, cf, "", t, rep);
    }
    /* two experiment directories: pair runs by name */
    run_list bl, cl;
    PGD_TRY(list_runs(base, &bl));
    if ((st = list_runs(cur, &cl)) != PGD_OK) {
        run_list_free(&bl);
        return st;
    }
    if (bl.n == 0) st = pgd_error(PGD_ERR_INVALID, "%s: no run directories", base);
    for (int i = 0; st == PGD_OK && i < bl.n; i++) {
        const char *name = bl.names[i];
        if (bl.partial[i] && run_find(&bl, name, 0) >= 0) continue; /* reported with the directory */
        if (!run_ok(base, &bl, name, "baseline", bsid, sizeof bsid, rep, &st)) continue;
        if (!run_ok(cur, &cl, name, "current", csid, sizeof csid, rep, &st)) continue;
        int listed = pgd_results_runs_csv_sweep(cur, name, rsid, sizeof rsid);
        if (listed == 0) {
            st = problem(rep, name, "STALE", "current run %s/%s is not in %s/runs.csv (left from another sweep, or "
                         "its sweep was cut short); re-run it", cur, name, cur);
            continue;
        }
        if (listed == 1 && strcmp(rsid, csid)) {
            st = problem(rep, name, "STALE", "current run %s/%s was written by sweep %s but %s/runs.csv lists sweep "
                         "%s for it; re-run it", cur, name, csid[0] ? csid : "(none)", cur, rsid);
            continue;
        }
        snprintf(bf, sizeof bf, "%s/%s/summary.json", base, name);
        snprintf(cf, sizeof cf, "%s/%s/summary.json", cur, name);
        st = compare_files(bf, cf, name, t, rep);
    }
    /* incomplete runs only in the current results are named too */
    for (int i = 0; st == PGD_OK && i < cl.n; i++) {
        const char *name = cl.names[i];
        if (run_find(&bl, name, 0) >= 0 || run_find(&bl, name, 1) >= 0) continue;
        if (cl.partial[i]) {
            st = problem(rep, name, "INCOMPLETE", "current run %s/%s was interrupted while being written "
                             "(%s/.%s%s)", cur, name, cur, name, PGD_RESULTS_PARTIAL_SUFFIX);
            continue;
        }
        if (run_find(&cl, name, 1) >= 0) continue; /* reported with the .partial entry */
        snprintf(cf, sizeof cf, "%s/%s", cur, name);
        if (pgd_results_check_run(cf, NEED, NULL, 0) != PGD_OK)
            st = problem(rep, name, "INCOMPLETE", "current: %s", pgd_last_error());
    }
    run_list_free(&bl);
    run_list_free(&cl);
    return st;
}
