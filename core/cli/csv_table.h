/* csv_table.h - small CSV tables for the results commands: runs.csv and
 * runs_mean.csv read whole (a header and rows of equal width; fields may be
 * in double quotes, never contain newlines), columns found by name, and the
 * repeats' aggregate (mean and 95% Student-t confidence interval).
 *
 * Invariants: cells has nrows * ncols strings, all owned; a table read
 * back from what csv_table_write wrote is equal to it. */
#ifndef PAGODA_CLI_CSV_TABLE_H
#define PAGODA_CLI_CSV_TABLE_H

#include <stdio.h>

typedef struct csv_table {
    int ncols, nrows;
    char **cols;  /* (ncols) */
    char **cells; /* (nrows, ncols) */
} csv_table;

/* Read path; on failure print "pagoda <who>: ..." naming path:line and
 * return 0 (t is then empty). */
int csv_table_load(const char *who, const char *path, csv_table *t);
void csv_table_free(csv_table *t);
int csv_table_col(const csv_table *t, const char *name); /* -1 when absent */
const char *csv_table_cell(const csv_table *t, int row, int col);
/* Append a column (cells ""); returns its index or -1 (out of memory). */
int csv_table_add_col(csv_table *t, const char *name);
/* Append a row of ncols empty cells; returns its index or -1. */
int csv_table_add_row(csv_table *t);
/* Replace a cell's text (copied); 0 when out of memory. */
int csv_table_set(csv_table *t, int row, int col, const char *value);
/* One CSV line of n fields to f (a field with a comma or quote in double
 * quotes, inner quotes doubled... never produced by pagoda's own files). */
void csv_write_fields(FILE *f, const char *const *fields, int n);
/* Write the whole table to path (results.h: whole or not at all). */
int csv_table_write(const char *who, const csv_table *t, const char *path);

/* The two-sided 95% quantile of Student's t with df degrees of freedom
 * (df >= 1): 12.706 for df 1, 2.262 for df 9, 1.96 as df grows. */
double csv_t95(int df);

/* runs_mean.csv from runs.csv when it has a "repeat" column (written by
 * [experiment] repeats): one row per group of runs equal in every swept
 * column but repeat (columns between "run" and "completed"), in order of
 * first appearance. Columns: run (the name without "_repeat-K"), the
 * swept ones but repeat, "repeats" (rows in the group), then for each
 * numeric column after them: NAME (the mean) and NAME_ci95 (the half-width
 * of the 95% confidence interval of the mean, t(n-1) * s / sqrt(n); empty
 * for one row). A column with any non-numeric cell (sweep_id) is left out.
 * Returns 1 written, 0 nothing to aggregate (no repeat column; no file is
 * written), -1 failure (printed). */
int csv_runs_aggregate(const char *who, const char *runs_csv, const char *out_path);

#endif
