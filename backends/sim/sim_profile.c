/* sim_profile.c - calibration tables for the simulator: building one
 * (pgd_sim_table_new/add, what `pagoda profile` does), writing it as CSV
 * (pgd_sim_table_save), reading it back (pgd_sim_table_load) and the
 * interpolated lookup the cost model uses. The file format and the lookup
 * rules are documented once, in sim_cost.h ("CALIBRATION TABLES"); the
 * writer and the reader below are the only code that touches the format.
 *
 * Invariants: rows are sorted by (op, k1, k2, k3, x, y) once built or
 * loaded, and no two rows share all six; a lookup never goes below the
 * smallest measured time of its (op, key) and is exact at measured points. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_cost.h"

typedef struct row {
    char op[PGD_SIM_OP_MAX];
    long k[3];
    double x, y, t;
} row;

struct pgd_sim_table {
    row *rows;
    int n, cap;
    int sorted;
};

static int cmp_key(const row *p, const row *q) {
    int c = strcmp(p->op, q->op);
    if (c) return c;
    for (int i = 0; i < 3; i++)
        if (p->k[i] != q->k[i]) return p->k[i] < q->k[i] ? -1 : 1;
    return 0;
}

static int cmp_row(const void *a, const void *b) {
    const row *p = a, *q = b;
    int c = cmp_key(p, q);
    if (c) return c;
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    return (p->y > q->y) - (p->y < q->y);
}

static int valid_op(const char *op) {
    size_t n = strlen(op);
    if (n == 0 || n >= PGD_SIM_OP_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((op[i] >= 'a' && op[i] <= 'z') || (op[i] >= '0' && op[i] <= '9') || op[i] == '_')) return 0;
    return 1;
}

pgd_status pgd_sim_table_new(pgd_sim_table **out) {
    *out = calloc(1, sizeof **out);
    return *out ? PGD_OK : pgd_error(PGD_ERR_OOM, "sim profile: out of memory");
}

pgd_status pgd_sim_table_add(pgd_sim_table *t, const char *op, long k1, long k2, long k3, double x, double y,
                             double seconds) {
    if (!t || !op || !valid_op(op))
        return pgd_error(PGD_ERR_INVALID, "sim profile: op name '%s' must be 1-%d characters of a-z, 0-9, _",
                         op ? op : "(null)", PGD_SIM_OP_MAX - 1);
    if (!(x >= 0) || !(y >= 0) || !isfinite(x) || !isfinite(y) || !(seconds >= 0) || !isfinite(seconds))
        return pgd_error(PGD_ERR_INVALID, "sim profile: %s at x=%g y=%g: sizes and seconds must be finite and >= 0 "
                         "(got %g s)", op, x, y, seconds);
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 256;
        row *q = realloc(t->rows, sizeof *q * (size_t)cap);
        if (!q) return pgd_error(PGD_ERR_OOM, "sim profile: out of memory");
        t->rows = q;
        t->cap = cap;
    }
    row *r = &t->rows[t->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "%s", op);
    r->k[0] = k1;
    r->k[1] = k2;
    r->k[2] = k3;
    r->x = x;
    r->y = y;
    r->t = seconds;
    t->sorted = 0;
    return PGD_OK;
}

/* Sort, and reject a repeated (op, key, x, y): `where` names the source. */
static pgd_status finish(pgd_sim_table *t, const char *where) {
    if (t->n > 1) qsort(t->rows, (size_t)t->n, sizeof *t->rows, cmp_row);
    for (int i = 1; i < t->n; i++)
        if (!cmp_row(&t->rows[i - 1], &t->rows[i])) {
            const row *r = &t->rows[i];
            return pgd_error(PGD_ERR_FORMAT, "sim profile %s: %s,%ld,%ld,%ld at x=%g y=%g appears twice", where, r->op,
                             r->k[0], r->k[1], r->k[2], r->x, r->y);
        }
    t->sorted = 1;
    return PGD_OK;
}

pgd_status pgd_sim_table_save(pgd_sim_table *t, const char *path, const char *comment) {
    PGD_TRY(finish(t, path));
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return pgd_error(PGD_ERR_INVALID, "sim profile: path too long: %s", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return pgd_error(PGD_ERR_IO, "sim profile: cannot write '%s': %s", tmp, strerror(errno));
    if (comment && *comment) { /* every line of it as a '#' comment */
        const char *p = comment;
        while (*p) {
            size_t n = strcspn(p, "\n");
            fprintf(f, "# %.*s\n", (int)n, p);
            p += n + (p[n] == '\n');
        }
    }
    fprintf(f, "%s\n", PGD_SIM_TABLE_HEADER);
    for (int i = 0; i < t->n; i++) {
        const row *r = &t->rows[i];
        fprintf(f, "%s,%ld,%ld,%ld,%.17g,%.17g,%.9e\n", r->op, r->k[0], r->k[1], r->k[2], r->x, r->y, r->t);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        remove(tmp);
        return pgd_error(PGD_ERR_IO, "sim profile: error writing '%s'", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return pgd_error(PGD_ERR_IO, "sim profile: cannot rename '%s' to '%s': %s", tmp, path, strerror(e));
    }
    return PGD_OK;
}

pgd_status pgd_sim_table_load(const char *path, pgd_sim_table **out) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return pgd_error(PGD_ERR_IO, "sim profile '%s': %s", path, strerror(errno));
    pgd_sim_table *t = NULL;
    int lineno = 0, cols = 0;
    char line[512];
    pgd_status st = pgd_sim_table_new(&t);
    while (st == PGD_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            st = pgd_error(PGD_ERR_FORMAT, "sim profile %s:%d: line longer than %d characters", path, lineno,
                           (int)sizeof line - 2);
            break;
        }
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] == '#' || line[0] == 0) continue;
        if (!cols) { /* the header names the columns */
            if (!strcmp(line, PGD_SIM_TABLE_HEADER)) cols = 7;
            else if (!strcmp(line, "op,k1,k2,k3,x,seconds")) cols = 6; /* version 1: no y */
            else
                st = pgd_error(PGD_ERR_FORMAT, "sim profile %s:%d: expected the header '%s' (a table written by "
                               "`pagoda profile`), got '%.60s'", path, lineno, PGD_SIM_TABLE_HEADER, line);
            continue;
        }
        char op[64], tail;
        long k[3];
        double x, y = 0, s;
        int got = cols == 7 ? sscanf(line, "%63[^,],%ld,%ld,%ld,%lf,%lf,%lf%c", op, &k[0], &k[1], &k[2], &x, &y, &s, &tail)
                            : sscanf(line, "%63[^,],%ld,%ld,%ld,%lf,%lf%c", op, &k[0], &k[1], &k[2], &x, &s, &tail);
        if (got != cols) {
            st = pgd_error(PGD_ERR_FORMAT, "sim profile %s:%d: expected %s (%d comma-separated fields)", path, lineno,
                           cols == 7 ? PGD_SIM_TABLE_HEADER : "op,k1,k2,k3,x,seconds", cols);
            break;
        }
        if ((st = pgd_sim_table_add(t, op, k[0], k[1], k[2], x, y, s)) != PGD_OK)
            st = pgd_error(PGD_ERR_FORMAT, "sim profile %s:%d: %s", path, lineno, pgd_last_error());
    }
    if (st == PGD_OK && !cols) st = pgd_error(PGD_ERR_FORMAT, "sim profile %s: no header (empty file?)", path);
    if (st == PGD_OK && !t->n) st = pgd_error(PGD_ERR_FORMAT, "sim profile %s: no rows", path);
    if (st == PGD_OK) st = finish(t, path);
    fclose(f);
    if (st != PGD_OK) {
        pgd_sim_table_destroy(t);
        return st;
    }
    *out = t;
    return PGD_OK;
}

void pgd_sim_table_destroy(pgd_sim_table *t) {
    if (!t) return;
    free(t->rows);
    free(t);
}

int pgd_sim_table_rows(const pgd_sim_table *t) { return t ? t->n : 0; }

/* Time at y among the rows r[0..n-1] of one x (sorted by y). */
static double along_y(const row *r, int n, double y) {
    if (y <= r[0].y) return r[0].t; /* floored at the first */
    if (y >= r[n - 1].y) return r[n - 1].y > 0 ? r[n - 1].t * y / r[n - 1].y : r[n - 1].t; /* proportional */
    int i = 1;
    while (r[i].y < y) i++;
    double f = (y - r[i - 1].y) / (r[i].y - r[i - 1].y);
    return r[i - 1].t + f * (r[i].t - r[i - 1].t);
}

int pgd_sim_table_lookup(const pgd_sim_table *t, const char *op, long k1, long k2, long k3, double x, double y,
                         double *out) {
    if (!t || !t->sorted) return 0;
    row key = {.k = {k1, k2, k3}};
    snprintf(key.op, sizeof key.op, "%s", op);
    int lo = 0, hi = t->n; /* first row of (op, key) */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cmp_key(&t->rows[mid], &key) < 0) lo = mid + 1;
        else hi = mid;
    }
    int end = lo;
    while (end < t->n && !cmp_key(&t->rows[end], &key)) end++;
    if (end == lo) return 0;
    /* the groups of equal x: [a0, a1) the last with x <= the query (or the first), [a1, a2) the next */
    const row *r = t->rows;
    int a0 = lo, a1 = lo;
    while (a1 < end && r[a1].x == r[a0].x) a1++;
    while (a1 < end && r[a1].x <= x) {
        a0 = a1;
        while (a1 < end && r[a1].x == r[a0].x) a1++;
    }
    double t0 = along_y(r + a0, a1 - a0, y);
    if (x <= r[a0].x) { /* below the first x: floored there */
        *out = t0;
        return 1;
    }
    if (a1 == end) { /* beyond the last x: proportional to x */
        *out = r[a0].x > 0 ? t0 * x / r[a0].x : t0;
        return 1;
    }
    int a2 = a1;
    while (a2 < end && r[a2].x == r[a1].x) a2++;
    double t1 = along_y(r + a1, a2 - a1, y), f = (x - r[a0].x) / (r[a1].x - r[a0].x);
    *out = t0 + f * (t1 - t0);
    return 1;
}
