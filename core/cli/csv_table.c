/* csv_table.c - CSV tables for the results commands (csv_table.h). */
#include "csv_table.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/results.h"

static int split(char *line, char ***out, int *cap) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == *cap) {
            int c = *cap ? 2 * *cap : 32;
            char **v = realloc(*out, sizeof *v * (size_t)c);
            if (!v) return -1;
            *out = v;
            *cap = c;
        }
        char *start = p;
        if (*p == '"') {
            start = ++p;
            char *w = p;
            while (*p) {
                if (*p == '"' && p[1] == '"') *w++ = '"', p += 2;
                else if (*p == '"') break;
                else *w++ = *p++;
            }
            if (*p) p++;
            *w = 0;
            while (*p && *p != ',') p++;
        } else {
            while (*p && *p != ',') p++;
        }
        int end = *p != ',';
        if (*p) *p++ = 0;
        (*out)[n++] = start;
        if (end) break;
    }
    return n;
}

void csv_table_free(csv_table *t) {
    for (int i = 0; i < t->ncols && t->cols; i++) free(t->cols[i]);
    for (int i = 0; t->cells && i < t->nrows * t->ncols; i++) free(t->cells[i]);
    free(t->cols);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

int csv_table_load(const char *who, const char *path, csv_table *t) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "pagoda %s: cannot open %s: %s\n", who, path, strerror(errno));
        return 0;
    }
    char *line = NULL, **fields = NULL;
    size_t cap = 0;
    int fcap = 0, ok = 1, lineno = 0;
    ssize_t len;
    while (ok && (len = getline(&line, &cap, f)) > 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!*line && lineno > 1) continue;
        int n = split(line, &fields, &fcap);
        if (n < 0) {
            ok = 0;
            fprintf(stderr, "pagoda %s: out of memory reading %s\n", who, path);
            break;
        }
        if (lineno == 1) {
            if (!(t->cols = calloc((size_t)n, sizeof *t->cols))) { ok = 0; break; }
            t->ncols = n;
            for (int i = 0; i < n; i++)
                if (!(t->cols[i] = strdup(fields[i]))) ok = 0;
            continue;
        }
        if (n != t->ncols) {
            fprintf(stderr, "pagoda %s: %s:%d: expected %d fields as in the header (got %d)\n", who, path, lineno,
                    t->ncols, n);
            ok = 0;
            break;
        }
        int r = csv_table_add_row(t);
        if (r < 0) { ok = 0; break; }
        for (int i = 0; i < n; i++) ok &= csv_table_set(t, r, i, fields[i]);
    }
    free(line);
    free(fields);
    fclose(f);
    if (ok && t->ncols == 0) {
        fprintf(stderr, "pagoda %s: %s is empty\n", who, path);
        ok = 0;
    }
    if (!ok) csv_table_free(t);
    return ok;
}

int csv_table_col(const csv_table *t, const char *name) {
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->cols[i], name)) return i;
    return -1;
}

const char *csv_table_cell(const csv_table *t, int row, int col) { return t->cells[row * t->ncols + col]; }

int csv_table_add_col(csv_table *t, const char *name) {
    char **cols = realloc(t->cols, sizeof *cols * (size_t)(t->ncols + 1));
    if (!cols) return -1;
    t->cols = cols;
    char **cells = calloc((size_t)t->nrows * (size_t)(t->ncols + 1) + 1, sizeof *cells);
    char *nm = strdup(name);
    if (!cells || !nm) {
        free(cells);
        free(nm);
        return -1;
    }
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) cells[r * (t->ncols + 1) + c] = t->cells[r * t->ncols + c];
        cells[r * (t->ncols + 1) + t->ncols] = strdup("");
    }
    free(t->cells);
    t->cells = cells;
    t->cols[t->ncols] = nm;
    return t->ncols++;
}

int csv_table_add_row(csv_table *t) {
    char **c = realloc(t->cells, sizeof *c * (size_t)(t->nrows + 1) * (size_t)(t->ncols ? t->ncols : 1));
    if (!c) return -1;
    t->cells = c;
    for (int i = 0; i < t->ncols; i++) c[t->nrows * t->ncols + i] = strdup("");
    return t->nrows++;
}

int csv_table_set(csv_table *t, int row, int col, const char *value) {
    char *v = strdup(value ? value : "");
    if (!v) return 0;
    free(t->cells[row * t->ncols + col]);
    t->cells[row * t->ncols + col] = v;
    return 1;
}

void csv_write_fields(FILE *f, const char *const *fields, int n) {
    for (int i = 0; i < n; i++) {
        const char *v = fields[i] ? fields[i] : "";
        if (i) fputc(',', f);
        if (strpbrk(v, ",\"")) {
            fputc('"', f);
            for (; *v; v++) {
                if (*v == '"') fputc('"', f);
                fputc(*v, f);
            }
            fputc('"', f);
        } else {
            fputs(v, f);
        }
    }
    fputc('\n', f);
}

int csv_table_write(const char *who, const csv_table *t, const char *path) {
    char tmp[4300];
    FILE *f;
    if (pgd_results_open(path, tmp, sizeof tmp, &f) != PGD_OK) {
        fprintf(stderr, "pagoda %s: %s\n", who, pgd_last_error());
        return 0;
    }
    csv_write_fields(f, (const char *const *)t->cols, t->ncols);
    for (int r = 0; r < t->nrows; r++) csv_write_fields(f, (const char *const *)t->cells + r * t->ncols, t->ncols);
    if (pgd_results_commit(f, tmp, path) != PGD_OK) {
        fprintf(stderr, "pagoda %s: %s\n", who, pgd_last_error());
        return 0;
    }
    return 1;
}

double csv_t95(int df) {
    static const double t[] = {0,      12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                               2.201,  2.179,  2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080,
                               2.074,  2.069,  2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    if (df < 1) return NAN;
    if (df <= 30) return t[df];
    /* Cornish-Fisher expansion around z = 1.959964 (error < 1e-3 past 30) */
    double z = 1.959964, d = df;
    return z + (z * z * z + z) / (4 * d) + (5 * pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * d * d);
}

static int is_num(const char *s, double *v) {
    char *end;
    if (!*s) return 0;
    *v = strtod(s, &end);
    return *end == 0;
}

int csv_runs_aggregate(const char *who, const char *runs_csv, const char *out_path) {
    csv_table in, out = {0};
    if (!csv_table_load(who, runs_csv, &in)) return -1;
    int rep = csv_table_col(&in, "repeat"), first_metric = csv_table_col(&in, "completed");
    if (rep < 0 || first_metric < 0) {
        csv_table_free(&in);
        return 0;
    }
    int ok = 1, *group = calloc((size_t)in.nrows + 1, sizeof *group), ng = 0, *gfirst = calloc((size_t)in.nrows + 1, sizeof *gfirst);
    int *numeric = calloc((size_t)in.ncols, sizeof *numeric);
    if (!group || !gfirst || !numeric) ok = 0;
    for (int r = 0; ok && r < in.nrows; r++) { /* group by the swept columns but repeat */
        int g = 0;
        for (; g < ng; g++) {
            int same = 1;
            for (int c = 1; c < first_metric && same; c++)
                if (c != rep) same = !strcmp(csv_table_cell(&in, r, c), csv_table_cell(&in, gfirst[g], c));
            if (same) break;
        }
        if (g == ng) gfirst[ng++] = r;
        group[r] = g;
    }
    for (int c = first_metric; ok && c < in.ncols; c++) {
        double v;
        numeric[c] = in.nrows > 0;
        for (int r = 0; r < in.nrows && numeric[c]; r++) numeric[c] = is_num(csv_table_cell(&in, r, c), &v);
    }
    if (ok) ok = csv_table_add_col(&out, "run") >= 0;
    for (int c = 1; ok && c < first_metric; c++)
        if (c != rep) ok = csv_table_add_col(&out, in.cols[c]) >= 0;
    if (ok) ok = csv_table_add_col(&out, "repeats") >= 0;
    for (int c = first_metric; ok && c < in.ncols; c++) {
        if (!numeric[c]) continue;
        char name[300];
        snprintf(name, sizeof name, "%s_ci95", in.cols[c]);
        ok = csv_table_add_col(&out, in.cols[c]) >= 0 && csv_table_add_col(&out, name) >= 0;
    }
    for (int g = 0; ok && g < ng; g++) {
        int r = csv_table_add_row(&out), oc = 0, n = 0;
        if (r < 0) { ok = 0; break; }
        char name[1024], buf[64];
        snprintf(name, sizeof name, "%s", csv_table_cell(&in, gfirst[g], 0));
        char *suffix = strstr(name, "_repeat-");
        if (suffix) *suffix = 0;
        else if (!strncmp(name, "repeat-", 7)) snprintf(name, sizeof name, "run");
        ok &= csv_table_set(&out, r, oc++, name);
        for (int c = 1; c < first_metric; c++)
            if (c != rep) ok &= csv_table_set(&out, r, oc++, csv_table_cell(&in, gfirst[g], c));
        for (int i = 0; i < in.nrows; i++) n += group[i] == g;
        snprintf(buf, sizeof buf, "%d", n);
        ok &= csv_table_set(&out, r, oc++, buf);
        for (int c = first_metric; c < in.ncols; c++) {
            if (!numeric[c]) continue;
            double sum = 0, ss = 0, v;
            for (int i = 0; i < in.nrows; i++)
                if (group[i] == g && is_num(csv_table_cell(&in, i, c), &v)) sum += v;
            double mean = sum / n;
            for (int i = 0; i < in.nrows; i++)
                if (group[i] == g && is_num(csv_table_cell(&in, i, c), &v)) ss += (v - mean) * (v - mean);
            snprintf(buf, sizeof buf, "%.9g", mean);
            ok &= csv_table_set(&out, r, oc++, buf);
            if (n >= 2 && isfinite(mean)) snprintf(buf, sizeof buf, "%.9g", csv_t95(n - 1) * sqrt(ss / (n - 1)) / sqrt(n));
            else buf[0] = 0;
            ok &= csv_table_set(&out, r, oc++, buf);
        }
    }
    if (!ok) fprintf(stderr, "pagoda %s: out of memory aggregating %s\n", who, runs_csv);
    else ok = csv_table_write(who, &out, out_path);
    free(group);
    free(gfirst);
    free(numeric);
    csv_table_free(&in);
    csv_table_free(&out);
    return ok ? 1 : -1;
}
