/* sim_profile.c - calibration tables for the simulator: a CSV written by
 * `pagoda profile` with the header
 *     op,k1,k2,k3,x,seconds
 * one row per measured (op, shape key k1..k3, size x), and piecewise-linear
 * interpolation in x among the rows of one (op, key) (sim_cost.h says how
 * lookups outside the measured range behave).
 *
 * Invariants: rows are sorted by (op, k1, k2, k3, x) after loading; a
 * lookup never extrapolates below the smallest measured time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_cost.h"

typedef struct row {
    char op[24];
    long k[3];
    double x, t;
} row;

struct pgd_sim_table {
    row *rows;
    int n;
};

static int cmp_row(const void *a, const void *b) {
    const row *p = a, *q = b;
    int c = strcmp(p->op, q->op);
    if (c) return c;
    for (int i = 0; i < 3; i++)
        if (p->k[i] != q->k[i]) return p->k[i] < q->k[i] ? -1 : 1;
    return (p->x > q->x) - (p->x < q->x);
}

pgd_status pgd_sim_table_load(const char *path, pgd_sim_table **out) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return pgd_error(PGD_ERR_IO, "sim profile '%s': %s", path, strerror(errno));
    pgd_sim_table *t = calloc(1, sizeof *t);
    int cap = 0, lineno = 0;
    char line[256];
    pgd_status st = PGD_OK;
    if (!t) { st = pgd_error(PGD_ERR_OOM, "sim profile: out of memory"); goto fail; }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (lineno == 1 && !strncmp(line, "op,", 3)) continue;
        if (line[0] == '#' || line[0] == '\n') continue;
        row r = {0};
        if (sscanf(line, "%23[^,],%ld,%ld,%ld,%lf,%lf", r.op, &r.k[0], &r.k[1], &r.k[2], &r.x, &r.t) != 6 ||
            !(r.x >= 0) || !(r.t >= 0)) {
            st = pgd_error(PGD_ERR_FORMAT, "sim profile %s:%d: expected op,k1,k2,k3,x,seconds", path, lineno);
            goto fail;
        }
        if (t->n == cap) {
            cap = cap ? 2 * cap : 256;
            row *q = realloc(t->rows, sizeof *q * (size_t)cap);
            if (!q) { st = pgd_error(PGD_ERR_OOM, "sim profile: out of memory"); goto fail; }
            t->rows = q;
        }
        t->rows[t->n++] = r;
    }
    if (!t->n) { st = pgd_error(PGD_ERR_FORMAT, "sim profile %s: no rows", path); goto fail; }
    qsort(t->rows, (size_t)t->n, sizeof *t->rows, cmp_row);
    fclose(f);
    *out = t;
    return PGD_OK;
fail:
    fclose(f);
    pgd_sim_table_destroy(t);
    return st;
}

void pgd_sim_table_destroy(pgd_sim_table *t) {
    if (!t) return;
    free(t->rows);
    free(t);
}

int pgd_sim_table_rows(const pgd_sim_table *t) { return t ? t->n : 0; }

int pgd_sim_table_lookup(const pgd_sim_table *t, const char *op, long k1, long k2, long k3, double x, double *out) {
    if (!t) return 0;
    row key = {.k = {k1, k2, k3}, .x = -1};
    snprintf(key.op, sizeof key.op, "%s", op);
    /* first row of (op, key): lower bound by binary search */
    int lo = 0, hi = t->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cmp_row(&t->rows[mid], &key) < 0) lo = mid + 1;
        else hi = mid;
    }
    int a = lo, b = lo;
    while (b < t->n && !strcmp(t->rows[b].op, key.op) && t->rows[b].k[0] == k1 && t->rows[b].k[1] == k2 &&
           t->rows[b].k[2] == k3)
        b++;
    if (b == a) return 0;
    const row *r = t->rows + a;
    int n = b - a;
    if (x <= r[0].x) {
        *out = r[0].t;
        return 1;
    }
    if (x >= r[n - 1].x) {
        *out = r[n - 1].x > 0 ? r[n - 1].t * x / r[n - 1].x : r[n - 1].t;
        return 1;
    }
    int i = 1;
    while (r[i].x < x) i++;
    double f = (x - r[i - 1].x) / (r[i].x - r[i - 1].x);
    *out = r[i - 1].t + f * (r[i].t - r[i - 1].t);
    return 1;
}
