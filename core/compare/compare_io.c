/* compare_io.c - inputs of `pagoda compare`: thresholds from the
 * [compare] section of an INI file, and pairing of two paths (summary.json
 * files, run directories, experiment directories) into summary pairs.
 *
 * Invariants: experiment directories pair runs by directory name; every
 * baseline run must exist in the current results (else PGD_ERR_INVALID
 * naming it); runs only in the current results are ignored. */
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pagoda/compare.h"
#include "pagoda/config.h"

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

/* A summary file for p: p itself, or p/summary.json. NULL if neither. */
static int summary_of(const char *p, char *buf, size_t n) {
    if (is_file(p)) return snprintf(buf, n, "%s", p) < (int)n;
    if (is_dir(p)) {
        snprintf(buf, n, "%s/summary.json", p);
        return is_file(buf);
    }
    return 0;
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

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

pgd_status pgd_compare_paths(const char *base, const char *cur, const pgd_compare_thresholds *t,
                             pgd_compare_report *rep) {
    char bf[4200], cf[4200];
    int bs = summary_of(base, bf, sizeof bf), cs = summary_of(cur, cf, sizeof cf);
    if (!bs && !is_dir(base)) return pgd_error(PGD_ERR_IO, "%s: no such file or directory", base);
    if (!cs && !is_dir(cur)) return pgd_error(PGD_ERR_IO, "%s: no such file or directory", cur);
    if (bs && cs) return compare_files(bf, cf, "", t, rep);
    if (bs != cs)
        return pgd_error(PGD_ERR_INVALID, "cannot compare a single run (%s) with an experiment directory (%s)",
                         bs ? base : cur, bs ? cur : base);
    /* two experiment directories: pair run subdirectories by name */
    DIR *d = opendir(base);
    if (!d) return pgd_error(PGD_ERR_IO, "%s: cannot open directory: %s", base, strerror(errno));
    char **names = NULL;
    int n = 0;
    pgd_status st = PGD_OK;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.') continue;
        snprintf(bf, sizeof bf, "%s/%s/summary.json", base, de->d_name);
        if (!is_file(bf)) continue;
        char **nn = realloc(names, sizeof *nn * (size_t)(n + 1));
        if (!nn || !(nn[n] = strdup(de->d_name))) {
            if (nn) names = nn;
            st = pgd_error(PGD_ERR_OOM, "compare: out of memory");
            break;
        }
        names = nn;
        n++;
    }
    closedir(d);
    if (st == PGD_OK && n == 0) st = pgd_error(PGD_ERR_INVALID, "%s: no run directories with a summary.json", base);
    if (st == PGD_OK) qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; st == PGD_OK && i < n; i++) {
        snprintf(bf, sizeof bf, "%s/%s/summary.json", base, names[i]);
        snprintf(cf, sizeof cf, "%s/%s/summary.json", cur, names[i]);
        if (!is_file(cf)) st = pgd_error(PGD_ERR_INVALID, "%s: run '%s' of the baseline is missing", cur, names[i]);
        else st = compare_files(bf, cf, names[i], t, rep);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}
